"""Reference log-probs for preference losses: a frozen copy, the LoRA base with adapters off, or a precomputed table.

Every strategy answers one question, ``logps(batch, split) -> (chosen [B], rejected [B])``, for the batches of the
preference DataModules, so any objective that needs ``log pi_ref(y | x)`` (DPO, a future SFT/DPO interleaving module)
builds one with :func:`build_reference` and never cares which it got.

- ``copy``: a frozen deep copy of the initial policy (eval mode, no grad, outside the optimizer). Its weights are
  *not* written to checkpoints: on resume the model factory rebuilds them (the initial policy), and a fingerprint
  stored in the checkpoint proves they came back identical. Under FSDP2 (``trainer=fsdp2``) the copy is sharded like
  the policy (``src/modules/sharding.py``), so it costs 1/W of a model per rank.
- ``adapter``: the policy itself under peft's ``disable_adapter()`` in eval mode and no_grad, i.e. the base model
  (TRL/torchtune's LoRA reference): no second copy in memory.
- ``precomputed``: one no-grad pass of the initial policy over every train/val pair before training, cached on disk
  under a key of (dataset fingerprint, model fingerprint, sum-or-mean, precision) and reused across runs; training
  then holds no reference model at all (TRL's ``precompute_ref_log_probs``). The table also rides in the checkpoint.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from array import array
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader

from src.losses.logprobs import split_pairs
from src.modules.head_path import PLAIN, HeadPath
from src.modules.pairs import pair_batch
from src.modules.sharding import full_tensor
from src.utils.checks import require_choice

log = logging.getLogger(__name__)

KINDS = ("copy", "adapter", "precomputed", "none")
PAIR_KEYS = ("chosen_input_ids", "chosen_labels", "rejected_input_ids", "rejected_labels")
Batch = dict[str, torch.Tensor]


@torch.no_grad()
def pair_logps(model: torch.nn.Module, batch: Batch, average: bool,
               path: HeadPath = PLAIN) -> tuple[torch.Tensor, torch.Tensor]:
    """One no-grad forward of ``model`` over the concatenated pair batch; ``([B], [B])`` chosen/rejected log-probs.

    ``path`` is the policy's head path (:mod:`src.modules.head_path`) for a reference (``HeadPath.for_reference``):
    plain builds the logits; chunked computes from the last hidden states and the LM head, a chunk at a time, so the
    reference never builds ``[2B, T, V]`` logits either; cce/liger go through that fused CE kernel. A packed batch
    (``data.packing``) runs as the policy's does: its rows, restarting positions, sums per sequence
    (``src/modules/pairs.py``).
    """
    pairs = pair_batch(batch)
    return split_pairs(pairs.logps(pairs.run(model, path), average).float())  # (2B,) -> (B,), (B,)


class Reference(Protocol):
    def logps(self, batch: Batch, split: str) -> tuple[torch.Tensor, torch.Tensor]: ...

    def checkpoint_state(self) -> dict[str, Any]: ...

    def load_checkpoint_state(self, state: dict[str, Any]) -> None: ...


class FrozenCopy(torch.nn.Module):
    """A frozen deep copy of the initial policy. A registered submodule, so it follows the policy's device and
    precision, but its weights are dropped from ``state_dict`` (a second full model per checkpoint is waste)."""

    def __init__(self, policy: torch.nn.Module, average: bool, path: HeadPath = PLAIN):
        super().__init__()
        self.model = copy.deepcopy(policy).eval().requires_grad_(False)
        self.average, self.path = average, path
        self.fingerprint = model_fingerprint(self.model)
        self.register_state_dict_post_hook(_drop_keys_under_prefix)
        self.register_load_state_dict_pre_hook(_keep_current_weights)

    def train(self, mode: bool = True) -> FrozenCopy:
        return super().train(False)  # Lightning calls .train() on the whole module at fit start: stay in eval

    def logps(self, batch: Batch, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return pair_logps(self.model, batch, self.average, self.path)

    def checkpoint_state(self) -> dict[str, Any]:
        return {"kind": "copy", "fingerprint": self.fingerprint}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        if state.get("kind") == "copy" and state["fingerprint"] != self.fingerprint:
            raise RuntimeError(
                "module.reference='copy': the rebuilt reference differs from the one this checkpoint trained against "
                f"(fingerprint {self.fingerprint[:12]} != {state['fingerprint'][:12]}). The reference is rebuilt from "
                "the model config on resume, so resume with the same model.* settings and seed."
            )


def _drop_keys_under_prefix(module: torch.nn.Module, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    for key in [k for k in state_dict if k.startswith(prefix)]:
        del state_dict[key]


def _keep_current_weights(module: torch.nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """Checkpoints hold no reference weights: load the current (rebuilt) ones onto themselves, so strict loading
    passes; a checkpoint that does hold them wins (``setdefault``)."""
    for key, value in module.model.state_dict(prefix=prefix + "model.").items():
        state_dict.setdefault(key, value)


class AdapterReference:
    """The LoRA policy with its adapters disabled: exactly the base model, no extra weights in memory."""

    def __init__(self, policy: torch.nn.Module, average: bool, path: HeadPath = PLAIN):
        if not (hasattr(policy, "disable_adapter") and getattr(policy, "peft_config", None)):
            raise ValueError(
                "module.reference='adapter' needs a peft LoRA policy (reference = the base model with adapters "
                f"disabled), but the model is a {type(policy).__name__} without adapters: set model.lora "
                "(e.g. model.lora={r: 16, alpha: 16}) or use module.reference=copy|precomputed"
            )
        self.policy, self.average = policy, average  # a plain attribute: not registered twice in the module tree
        self.path = path

    def logps(self, batch: Batch, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        was_training = self.policy.training
        self.policy.eval()  # no dropout, exactly like the frozen copy
        try:
            with self.policy.disable_adapter():
                return pair_logps(self.policy, batch, self.average, self.path)
        finally:
            self.policy.train(was_training)

    def checkpoint_state(self) -> dict[str, Any]:
        return {"kind": "adapter"}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        pass


class PrecomputedReference:
    """Reference log-probs looked up by the example ``index`` each pair batch carries: a ``[N, 2]`` table per split.

    The table comes from the checkpoint (resume), else from ``cache_dir`` (an earlier run with the same data, initial
    weights and settings), else from one no-grad pass of the policy *before its first update*.
    """

    def __init__(self, policy: torch.nn.Module, average: bool, cache_dir: str | os.PathLike | None = None,
                 path: HeadPath = PLAIN):
        self.average, self.path = average, path
        self.model_fingerprint = model_fingerprint(policy)  # of the initial weights: taken before any update
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.tables: dict[str, torch.Tensor] = {}  # split -> (N, 2) float32 on CPU: [chosen, rejected]
        self.computed_batches = 0  # reference forwards run by this object (0 when every table came from a cache)

    def cache_path(self, examples: list[dict], tag: str) -> Path:
        key = {"data": examples_fingerprint(examples), "model": self.model_fingerprint, "average": self.average,
               "tag": tag}
        if self.path.name != "plain":  # the same numbers to rounding, but not the same computation
            key["chunked"] = True
            if self.path.name != "chunked":
                key["impl"] = self.path.name
        return self.cache_dir / f"{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]}.pt"

    def prepare(self, model: torch.nn.Module, splits: dict[str, list[dict]], collate_fn: Callable, batch_size: int,
                context: Callable[[], ContextManager] = nullcontext, tag: str = "") -> None:
        """Fill the table of every split in ``splits`` that has none; ``tag`` (e.g. the precision) joins the key.

        Only the initial policy is the reference: if ``model`` no longer has the initial weights (a resumed run whose
        checkpoint and cache lack the table), computing is refused instead of silently using trained weights.
        """
        for split, examples in splits.items():
            if split in self.tables:
                continue
            path = self.cache_path(examples, tag)
            if path.exists():
                self.tables[split] = torch.load(path, weights_only=True)["logps"]
                log.info("reference log-probs for %d %s pairs loaded from %s", len(examples), split, path)
            elif model_fingerprint(model) != self.model_fingerprint:
                raise RuntimeError(
                    f"module.reference='precomputed': no reference log-probs for the {split} split in the checkpoint "
                    f"or in {self.cache_dir}, and the policy is no longer the initial one, so they cannot be "
                    "recomputed. Resume with the data and reference_cache_dir of the original run."
                )
            else:
                self.tables[split] = self._compute(model, examples, collate_fn, batch_size, context)
                _atomic_save({"logps": self.tables[split]}, path)
                log.info("reference log-probs for %d %s pairs computed and cached at %s", len(examples), split, path)
            if self.tables[split].shape != (len(examples), 2):
                raise ValueError(f"cached reference table {path} has shape {tuple(self.tables[split].shape)}, "
                                 f"expected ({len(examples)}, 2); delete it to recompute")

    def _compute(self, model: torch.nn.Module, examples: list[dict], collate_fn: Callable, batch_size: int,
                 context: Callable[[], ContextManager]) -> torch.Tensor:
        device = next(model.parameters()).device
        table = torch.full((len(examples), 2), float("nan"))
        was_training = model.training
        model.eval()
        try:
            # Its own generator: a cache miss must leave the global random state (dropout's) as a cache hit does.
            loader = DataLoader(examples, batch_size=batch_size, shuffle=False, collate_fn=collate_fn,
                                generator=torch.Generator())
            for batch in loader:
                index = _index_of(batch)
                with context():
                    chosen, rejected = pair_logps(model, {k: v.to(device) for k, v in batch.items()}, self.average,
                                                  self.path)
                table[index] = torch.stack([chosen, rejected], dim=-1).cpu()  # (B, 2)
                self.computed_batches += 1
        finally:
            model.train(was_training)
        if torch.isnan(table).any():
            raise ValueError("precomputed reference: some pairs got no log-prob; example 'index' must be 0..N-1")
        return table

    def logps(self, batch: Batch, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split not in self.tables:
            raise RuntimeError(f"no precomputed reference log-probs for split {split!r}; prepare() must run first")
        index = _index_of(batch)  # (B,) padded or packed alike
        rows = self.tables[split][index.cpu()].to(index.device)  # (B, 2)
        return rows[:, 0], rows[:, 1]

    def checkpoint_state(self) -> dict[str, Any]:
        return {"kind": "precomputed", "model": self.model_fingerprint, "average": self.average, "tables": self.tables}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        if state.get("kind") == "precomputed" and (state["model"], state["average"]) == (self.model_fingerprint,
                                                                                          self.average):
            self.tables = dict(state["tables"])


def default_cache_dir() -> Path:
    """``$POSTTRAIN_CACHE/reference_logps`` (default ``~/.cache/posttrain``), next to the toy tokenizer's cache."""
    return Path(os.environ.get("POSTTRAIN_CACHE", Path.home() / ".cache" / "posttrain")) / "reference_logps"


def _index_of(batch: Batch) -> torch.Tensor:
    if "index" not in batch:
        raise KeyError("module.reference='precomputed' needs pair batches with an 'index' (the example's position in "
                       "its split); the preference DataModules add it")
    return batch["index"]


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")  # parallel runs may race: the last rename wins, same bytes
    torch.save(obj, tmp)
    os.replace(tmp, path)


def model_fingerprint(model: torch.nn.Module, samples: int = 1024) -> str:
    """sha256 of ``name_or_path``, every tensor's name/shape/dtype and ``samples`` evenly spaced exact values.

    Exact sampled values rather than a float checksum: a sum depends on the device's reduction order, these bytes do
    not, so CPU and GPU runs of the same weights share a cache entry. Any real weight change (another checkpoint,
    another seed, a fine-tuned model) moves the sampled values.
    """
    digest = hashlib.sha256(str(getattr(getattr(model, "config", None), "_name_or_path", "")).encode())
    for name, tensor in sorted(model.state_dict().items()):
        flat = full_tensor(tensor.detach()).reshape(-1)  # an FSDP2 shard: gathered, so every rank hashes the same
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        if flat.numel():
            step = max(1, flat.numel() // samples)
            index = torch.arange(0, flat.numel(), step)[:samples].to(flat.device)
            digest.update(flat[index].float().cpu().numpy().tobytes())  # bf16/fp16 -> fp32 is exact
    return digest.hexdigest()


def examples_fingerprint(examples: list[dict], keys: tuple[str, ...] = PAIR_KEYS) -> str:
    """sha256 over every example's encoded ids and labels, in order (the position is the lookup ``index``)."""
    digest = hashlib.sha256()
    for ex in examples:
        for key in keys:
            ids = ex[key]
            digest.update(len(ids).to_bytes(8, "little"))
            digest.update(array("q", ids).tobytes())
    return digest.hexdigest()


def prepare_for_trainer(reference: Reference | None, policy: torch.nn.Module, trainer: Any) -> None:
    """Fill a precomputed table from the trainer's DataModule (``datasets``, ``collate_fn``, ``eval_batch_size``)
    under the trainer's precision; a no-op for the live strategies. Call it from ``on_fit_start`` and
    ``on_validation_start``: the work happens once, before any update (a resumed run brings its table along)."""
    if not isinstance(reference, PrecomputedReference):
        return
    dm = trainer.datamodule
    if dm is None or not hasattr(dm, "datasets"):
        raise ValueError("module.reference='precomputed' needs trainer.fit(..., datamodule=<a preference DataModule>)")
    splits = {split: dataset.examples for split, dataset in dm.datasets.items()}
    reference.prepare(policy, splits, dm.collate_fn(), dm.eval_batch_size, trainer.precision_plugin.forward_context,
                      tag=str(trainer.precision))


def build_reference(
    kind: str, policy: torch.nn.Module, average: bool, cache_dir: str | None = None, path: HeadPath = PLAIN,
) -> Reference | None:
    """The strategy named ``kind`` (``module.reference``) for ``policy``, built before its first update; its
    log-probs computed through the policy's head ``path`` (:func:`pair_logps`)."""
    require_choice("module.reference", kind, KINDS)
    if kind == "copy":
        return FrozenCopy(policy, average, path)
    if kind == "adapter":
        return AdapterReference(policy, average, path)
    if kind == "precomputed":
        return PrecomputedReference(policy, average, cache_dir, path)
    return None
