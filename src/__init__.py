"""posttrain: Hydra + Lightning experiments for LLM post-training research."""
