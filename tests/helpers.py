"""Shared test helpers: compose the real config, tiny overrides, and local stand-ins for hub data and models."""

from __future__ import annotations

import json
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))

# A model and run small enough for a CPU test: a few seconds per experiment.
TINY = [
    "trainer.accelerator=cpu",
    "trainer.precision=32-true",
    "trainer.devices=1",
    "++callbacks.progress_bar=null",
    "logger=csv",
]
TINY_MODEL = ["++model.hidden_size=32", "++model.num_layers=2", "++model.num_heads=2"]


def compose_cfg(overrides: list[str], output_dir: Path) -> DictConfig:
    """The composed ``train.yaml`` with ``overrides``, writing under ``output_dir``; ``${hydra:...}`` resolves."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides + [f"paths.output_dir={output_dir}", f"paths.log_dir={output_dir}"],
                      return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} resolves as in a real run
    with open_dict(cfg):
        del cfg["hydra"]  # a real run's cfg has no hydra node either
    return cfg


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def alpaca_rows(n: int = 24) -> list[dict]:
    rows = [{"instruction": f"Add {i} and {i + 1}.", "input": "" if i % 2 else f"numbers {i}, {i + 1}",
             "output": f"{i} + {i + 1} = {2 * i + 1}. The answer is {2 * i + 1}."} for i in range(n)]
    return rows


def ultrafeedback_sft_rows(n: int = 24) -> list[dict]:
    rows = []
    for i in range(n):
        messages = [{"role": "user", "content": f"What is {i} + 1?"},
                    {"role": "assistant", "content": f"{i} + 1 = {i + 1}. The answer is {i + 1}."}]
        if i % 3 == 0:  # multi-turn
            messages += [{"role": "user", "content": "And times two?"},
                         {"role": "assistant", "content": f"The answer is {2 * (i + 1)}."}]
        rows.append({"prompt": messages[0]["content"], "messages": messages})
    return rows


def ultrafeedback_pref_rows(n: int = 24) -> list[dict]:
    """UltraFeedback-binarized-style pairs: ``chosen`` / ``rejected`` message lists sharing the prompt turns."""
    rows = []
    for i in range(n):
        prompt = [{"role": "user", "content": f"What is {i} + 1?"}]
        if i % 3 == 0:  # multi-turn: an earlier exchange is part of the shared prompt
            prompt = [{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}."}] + prompt
        chosen = prompt + [{"role": "assistant", "content": f"{i} + 1 = {i + 1}. The answer is {i + 1}."}]
        rejected = prompt + [{"role": "assistant", "content": f"{i} + 1 = {i + 2}. The answer is {i + 2}."}]
        rows.append({"prompt": prompt[-1]["content"], "chosen": chosen, "rejected": rejected,
                     "score_chosen": 9.0, "score_rejected": 2.0})
    return rows


def hh_rows(n: int = 24) -> list[dict]:
    """Anthropic-HH-style pairs: two transcripts that differ in the final Assistant turn only."""
    rows = []
    for i in range(n):
        history = f"\n\nHuman: Hi, I am {i}.\n\nAssistant: Hello {i}." if i % 3 == 0 else ""
        prompt = f"{history}\n\nHuman: What is {i} + 1?\n\nAssistant:"
        rows.append({"chosen": f"{prompt} {i} + 1 = {i + 1}. The answer is {i + 1}.",
                     "rejected": f"{prompt} I do not know."})
    return rows
