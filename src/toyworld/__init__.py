"""Toy world: a deterministic, generated task suite so every objective can be trained and measured on a CPU."""
