"""Generation: the model loaded, its prompts rendered, and responses sampled (Hugging Face, vLLM, lm-eval)."""
