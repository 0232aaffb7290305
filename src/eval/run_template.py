"""Which prompt template an evaluation renders with: the one the evaluated model was trained with, when it is known.

A task's ``template: null`` (every task's default but the SDFT tasks that prompt with Alpaca, and ``bleu``) renders
with the training template: the one in ``<run>/.hydra/config.yaml`` for ``eval.py model_path=<run dir>`` (or its
``hf/`` export), the run's own data for ``train.py ... eval=<task>``, else ``chat``. A task whose template is set and
differs from the training template is warned about, naming both, since its prompts are not the ones the model saw.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import DictConfig, OmegaConf

from src.datamodules.preference import HHPreferenceDataModule, UltraFeedbackPreferenceDataModule
from src.datamodules.sft import UltraFeedbackSFTDataModule
from src.datamodules.wikitext import WikiTextDataModule

log = logging.getLogger(__name__)

DEFAULT = "chat"  # an HF directory or hub id: most are instruction models with a chat template


class TrainingTemplate(NamedTuple):
    name: str | None  # an eval template (src.eval.engine.prompts.TEMPLATES); None: not known
    why: str  # where it was read, for the log line


def data_template(data: Any, key: str = "data") -> TrainingTemplate:
    """The eval template that renders prompts as the DataModule ``data`` (its config node or the object) trains on.

    ``data.template`` where the DataModule has one (``hh`` for HH transcripts, whose ``raw`` keeps the
    "Human:/Assistant:" form); the tokenizer's chat template for UltraFeedback; the text as is for LM blocks
    (WikiText, the toy corpus). An interleaving DataModule answers for its SFT stream. (A file of conversations is
    rendered with the chat template whatever ``data.template`` says: that is read from the rows, not the config.)
    """
    sft = _field(data, "sft") or (_field(data, "sources") or {}).get("sft")
    if sft is not None:
        return data_template(sft, f"{key}.sft")
    if isinstance(data, DictConfig) and "_target_" not in data:
        return TrainingTemplate(None, f"{key} names no DataModule")
    cls = _class(data._target_) if isinstance(data, DictConfig) else type(data)
    if issubclass(cls, WikiTextDataModule):
        return TrainingTemplate("raw", f"{key} is {cls.__name__}, raw text blocks")
    if issubclass(cls, (UltraFeedbackSFTDataModule, UltraFeedbackPreferenceDataModule)):
        return TrainingTemplate("chat", f"{key} is {cls.__name__}, in the chat template")
    template = _field(data, "template")
    if template is None:
        return TrainingTemplate(None, f"{key} ({cls.__name__}) names no template")
    name = "hh" if template == "raw" and issubclass(cls, HHPreferenceDataModule) else template
    return TrainingTemplate(name, f"{key}.template={template}")


def run_template(model_path: str) -> TrainingTemplate:
    """The training template of ``model_path`` when it is a ``train.py`` run directory or its ``hf/`` export."""
    path = Path(model_path).expanduser()
    run = path if (path / ".hydra").is_dir() else path.parent if path.name == "hf" else path
    config = run / ".hydra" / "config.yaml"
    if not config.is_file():
        return TrainingTemplate(None, f"model_path={model_path} is not a train.py run (no .hydra/config.yaml)")
    found = data_template(OmegaConf.load(config).data)
    return found._replace(why=f"{found.why} in {config}")


def announce(tasks: dict[str, Any], found: TrainingTemplate, nodes: dict[str, tuple[str, Any]]) -> str:
    """Log one INFO line saying which template each generating task uses and why, and a warning for each task whose
    own template differs from the training template; returns the INFO text (for the report's header).

    ``nodes``: each task's config key (``eval`` or ``eval.tasks.<name>``) and node (``src.eval.keys.task_nodes``), so
    the line and the warnings name what to set.
    """
    uses: dict[tuple[str, str], list[str]] = {}  # (template, why) -> the tasks that render with it
    mismatched = []  # (key, template, task)
    for name, task in tasks.items():
        at = nodes[name][0] if name in nodes else "eval"
        if getattr(task, "data", None) is not None and found.name:  # eval=ppl: its DataModule renders the rows
            ppl = data_template(task.data, f"{at}.data")
            if ppl.name is not None and ppl.name != found.name:
                mismatched.append((f"{at}.data.template", ppl.name, name))
        if not hasattr(task, "template"):
            continue
        if task.template is not None:
            uses.setdefault((task.template, f"{at}.template"), []).append(name)
            if found.name and task.template != found.name:
                mismatched.append((f"{at}.template", task.template, name))
        elif found.name:
            uses.setdefault((found.name, f"the training template: {found.why}"), []).append(name)
        else:
            uses.setdefault((DEFAULT, f"the default: {found.why}"), []).append(name)
    text = "prompt template: " + "; ".join(f"{t} for {', '.join(names)} ({why})" for (t, why), names in uses.items())
    if uses:
        log.info(text)
    for key, template, name in mismatched:
        log.warning("%s=%s differs from %s, the template the model was trained with (%s): task %s shows the model "
                    "text in a format it was not trained on", key, template, found.name, found.why, name)
    return text if uses else ""


def _class(target: str) -> type:
    """The class a ``_target_`` names; ``object`` when this checkout has no such class (a run saved by another one:
    its ``template`` key still says what it trained with)."""
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return object


def _field(node: Any, name: str) -> Any:
    if isinstance(node, DictConfig):
        return node.get(name)
    return getattr(node, name, None)
