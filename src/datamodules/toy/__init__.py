"""The toy-world DataModules: SFT tasks, correctness and style preference pairs, and the LM corpus."""
