"""The ``README.md`` model card of a Hugging Face export: what was trained, on what, how far, and how to redo it.

``model_card`` is a pure function of the resolved config, the final validation metrics, the command and the step
count; ``write_model_card`` puts its text next to the exported weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# Hydra's instantiation keys: how a node is built, not a setting of the run.
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


def short_name(target: str | None) -> str:
    """``src.modules.dpo.DPOModule`` -> ``DPOModule``."""
    return (target or "").rsplit(".", 1)[-1]


def objective_name(module_cfg: dict[str, Any]) -> str:
    """The objective a module class trains: ``CEModule`` -> ``ce``, ``DPOModule`` -> ``dpo``."""
    name = short_name(module_cfg.get("_target_"))
    return (name.removesuffix("Module") or name or "unknown").lower()


def settings(node: Any) -> Any:
    """A config node without Hydra's keys; a nested built object (optimizer, scheduler) keeps its ``type``."""
    if isinstance(node, dict):
        found = {"type": short_name(node["_target_"])} if "_target_" in node else {}
        found.update({k: settings(v) for k, v in node.items() if k not in HYDRA_KEYS})
        return found
    if isinstance(node, list):
        return [settings(v) for v in node]
    return node


def _yaml_block(node: dict[str, Any]) -> str:
    body = {k: settings(v) for k, v in node.items() if k not in HYDRA_KEYS}  # the heading names the class
    return "```yaml\n" + (yaml.safe_dump(body, sort_keys=False) if body else "{}\n") + "```"


def _metrics_table(metrics: dict[str, float]) -> str:
    if not metrics:
        return "No validation ran."
    rows = [f"| `{name}` | {value:.4f} |" for name, value in sorted(metrics.items())]
    return "\n".join(["| metric | value |", "|---|---|", *rows])


def front_matter(cfg: dict[str, Any]) -> dict[str, Any]:
    """The card's metadata: the Hub reads ``base_model`` as a repository id, so a local path is left out."""
    base = (cfg.get("model") or {}).get("name_or_path")
    tags = ["posttrain", objective_name(cfg.get("module") or {})]
    tags += [t for t in [cfg.get("experiment_name"), *(cfg.get("tags") or [])] if t and t not in tags]
    meta: dict[str, Any] = {"library_name": "transformers", "pipeline_tag": "text-generation"}
    if base and not base.startswith(("/", ".", "~")):
        meta["base_model"] = base
    return {**meta, "tags": tags}


def model_card(cfg: dict[str, Any], metrics: dict[str, float], command: str, steps: int,
               curves: str | None = None) -> str:
    """The card for a run: ``cfg`` is the resolved config (a plain dict), ``metrics`` the final validation,
    ``curves`` the training curves' PNG, relative to the card."""
    module, data, model = cfg.get("module") or {}, cfg.get("data") or {}, cfg.get("model") or {}
    objective = objective_name(module)
    base, backbone = model.get("name_or_path"), short_name(model.get("_target_"))
    origin = f"fine-tuned from `{base}`" if base else f"(`{backbone}`, randomly initialised) trained"
    sections = [
        "---\n" + yaml.safe_dump(front_matter(cfg), sort_keys=False) + "---",
        f"# {cfg.get('run_name') or objective}",
        (f"A causal language model {origin} with the **{objective}** objective for {steps} optimizer steps "
         "(posttrain: Hydra + PyTorch Lightning)."),
        f"## Objective: `{short_name(module.get('_target_'))}`\n\n{_yaml_block(module)}",
        f"## Data: `{short_name(data.get('_target_'))}`\n\n{_yaml_block(data)}",
        f"## Model: `{backbone}`\n\n{_yaml_block(model)}",
        f"## Final validation metrics\n\n{_metrics_table(metrics)}",
        *([f"## Training curves\n\n![training and validation curves]({curves})"] if curves else []),
        f"## Reproduce\n\n```bash\n{command}\n```",
        ("## Use\n\n```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
         'model = AutoModelForCausalLM.from_pretrained("<this directory>")\n'
         'tokenizer = AutoTokenizer.from_pretrained("<this directory>")\n```'),
    ]
    return "\n\n".join(sections) + "\n"


def write_model_card(out_dir: str | Path, cfg: dict[str, Any], metrics: dict[str, float], command: str,
                     steps: int, curves: str | None = None) -> Path:
    """Write the card as ``<out_dir>/README.md``, where the Hub and ``huggingface_hub`` look for it."""
    path = Path(out_dir) / "README.md"
    path.write_text(model_card(cfg, metrics, command, steps, curves))
    return path
