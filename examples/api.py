"""From Python, what ``python train.py experiment=gem_toy trainer.max_steps=20`` does: compose, build, train.

Run from anywhere: ``python examples/api.py``. In a notebook in the project folder, the same three calls.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project folder: src/ and train.py

import train  # noqa: E402
from src.api import build, compose  # noqa: E402

cfg = compose(["experiment=gem_toy", "trainer.max_steps=20", "trainer.val_check_interval=10"])
parts = build(cfg)  # the objects train.py builds, to inspect or to use with your own Trainer
parts.module.configure_model()
print(f"{type(parts.module).__name__} on {sum(p.numel() for p in parts.module.parameters()):,} parameters, "
      f"{len(parts.datamodule.tokenizer)} tokens of vocabulary; beta={cfg.module.beta}")
metrics = train.train(cfg)  # the whole recipe: fit, final validation, metrics.json, export
print(f"val/ce after 20 steps: {metrics['val/ce']:.4f}; run directory {cfg.paths.output_dir}")
