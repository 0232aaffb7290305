"""Config nodes generated from the Python signatures, so every setting shows in ``--cfg job`` with one default."""

from src.configs.store import register_configs, register_objective

__all__ = ["register_configs", "register_objective"]
