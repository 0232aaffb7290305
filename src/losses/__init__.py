"""Pure loss functions on tensors. No model, device or logger enters here."""
