"""Self-distillation fine-tuning (SDFT, Yang et al. 2024): the seed model rewrites the training responses."""
