"""DPO training throughput, this framework (precomputed and copy references) vs TRL's ``DPOTrainer`` default.

    python experiments/bench_dpo_trl.py [--pairs 128] [--threads 1] [--repeats 2] [--out experiments/results/x.md]
                                        [--sides "ours packed" ...]

TRL runs from its own environment, ``.venv-trl`` (see ``experiments/bench_sft_trl.py``). The same on every side: the
model (``bench_sft_trl.MODEL``, ~30M parameters, SmolLM2 tokenizer, one seed), the same tokenized pairs, 4 pairs per
step, AdamW (fused) at a constant lr 1e-5, beta 0.1, sigmoid loss, fp32, sdpa, one epoch, no evaluation.

Pairs (documented rule): the first ``--pairs`` training rows of the Alpaca sample, the prompt its instruction (and
input) as a user turn, chosen = its own output, rejected = the output of the next row (a fluent answer to another
question). They are encoded once by this framework's ``UltraFeedbackPreferenceDataModule`` (chat template, at most
256 tokens, the prompt shared) and handed to TRL pre-tokenized as ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids``
(its tokenization step skipped), so both sides see the same token ids.

Sides: ours with ``module.reference=precomputed`` (one no-grad pass over the pairs before training, then no
reference model) and with ``copy`` (a frozen copy, a live reference forward per step), and "ours packed": precomputed
with ``data.packing=true`` (each step's 8 sequences packed into rows of at most 256 tokens); TRL with its default (a
live reference copy, ``precompute_ref_log_probs=False``). ``--sides`` runs a subset (without "trl default", no ratio
column). Throughput is pairs per second of the optimizer steps after two warm-up steps; "incl. setup" adds the
precomputed reference's one-off pass. Each case in a fresh process, sides alternating; peak memory is the process's
peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.bench_sft_trl import (  # noqa: E402
    DATA,
    MODEL,
    SEED,
    TOKENIZER,
    Clock,
    peak_rss_mib,
    run_worker,
    time_trl_steps,
)

MAX_LENGTH, PAIRS_PER_STEP, LR, BETA = 256, 4, 1e-5, 0.1
SIDES = ("ours precomputed", "ours copy", "ours packed", "trl default")
OURS = {"ours precomputed": ("precomputed", False), "ours copy": ("copy", False), "ours packed": ("precomputed", True)}


def write_pairs(path: Path, n: int) -> None:
    rows = json.loads(DATA.read_text())[: n + 1]
    pairs = []
    for row, other in zip(rows, rows[1:]):
        user = f"{row['instruction']}\n\n{row['input']}" if row.get("input", "").strip() else row["instruction"]
        prompt = [{"role": "user", "content": user}]
        pairs.append({"chosen": prompt + [{"role": "assistant", "content": row["output"]}],
                      "rejected": prompt + [{"role": "assistant", "content": other["output"]}]})
    path.write_text(json.dumps(pairs))


def datamodule(pairs: Path, packing: bool = False):
    from src.datamodules.preference import UltraFeedbackPreferenceDataModule

    # val_size 1: the local file's hold-out; every other pair trains.
    return UltraFeedbackPreferenceDataModule(path=str(pairs), val_split=None, val_size=1, tokenizer=str(TOKENIZER),
                                             max_length=MAX_LENGTH, batch_size=PAIRS_PER_STEP, seed=SEED,
                                             packing=packing)


def dump_tokenized(pairs: Path, out: Path) -> None:
    dm = datamodule(pairs)
    dm.setup()
    rows = []
    for ex in dm.datasets["train"].examples:
        prompt_len = next(i for i, y in enumerate(ex["chosen_labels"]) if y != -100)
        rows.append({"prompt_ids": ex["chosen_input_ids"][:prompt_len],
                     "chosen_ids": ex["chosen_input_ids"][prompt_len:],
                     "rejected_ids": ex["rejected_input_ids"][prompt_len:]})
    out.write_text(json.dumps(rows))


def build_model(tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **MODEL)
    return LlamaForCausalLM(config).float()


def run_ours(args, reference: str, packing: bool) -> dict:
    from functools import partial

    import torch
    from lightning.pytorch import Callback, Trainer

    from src.modules.dpo import DPOModule

    torch.set_num_threads(args.threads)
    dm = datamodule(Path(args.pairs), packing)
    clock = Clock()

    class Timer(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            clock.begin()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            clock.end(int(batch["index"].shape[0]))  # pairs, padded or packed

    optimizer = partial(torch.optim.AdamW, lr=LR, fused=True)
    module = DPOModule(model=partial(build_model, dm.tokenizer), optimizer=optimizer, beta=BETA, reference=reference,
                       reference_cache_dir=tempfile.mkdtemp())
    trainer = Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                      num_sanity_val_steps=0, callbacks=[Timer()], use_distributed_sampler=False)
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    return {"steps": clock.steps, "pairs": clock.tokens, "seconds": clock.seconds,
            "fit_seconds": time.perf_counter() - start}


def run_trl(args) -> dict:
    import copy

    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    class PreTokenized(DPOTrainer):
        def _prepare_dataset(self, dataset, *args, **kwargs):
            return dataset  # already prompt_ids / chosen_ids / rejected_ids, from this framework's encoding

    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    rows = json.loads(Path(args.tokenized).read_text())
    clock = Clock()
    config = DPOConfig(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=PAIRS_PER_STEP, num_train_epochs=1,
        learning_rate=LR, lr_scheduler_type="constant", optim="adamw_torch_fused", beta=BETA, max_length=MAX_LENGTH,
        report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True, dataloader_num_workers=0, seed=SEED,
        bf16=False, fp16=False, disable_tqdm=True,
    )
    model = build_model(tokenizer)
    model.config._attn_implementation = "sdpa"
    # TRL's default reference: the initial policy loaded a second time from its path; a model built from config has
    # no path, so it gets the same weights as a copy.
    trainer = PreTokenized(model=model, ref_model=copy.deepcopy(model), args=config,
                           train_dataset=Dataset.from_list(rows), processing_class=tokenizer)

    time_trl_steps(trainer, clock, lambda examples, batch: len(examples))  # pairs
    start = time.perf_counter()
    trainer.train()
    return {"steps": clock.steps, "pairs": clock.tokens, "seconds": clock.seconds,
            "fit_seconds": time.perf_counter() - start}


def worker(args) -> None:
    result = run_trl(args) if args.worker == "trl default" else run_ours(args, *OURS[args.worker])
    result |= {"pairs_per_sec": result["pairs"] / max(result["seconds"], 1e-9), "peak_rss_mib": peak_rss_mib()}
    print("RESULT " + json.dumps(result), flush=True)


def case(side: str, args, pairs: Path, tokenized: Path) -> dict:
    worker_args = ["--worker", side, "--pairs-file", str(pairs), "--tokenized", str(tokenized)]
    return run_worker(side.startswith("trl"), __file__, worker_args, args.threads)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pairs", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "bench_dpo_trl_cpu.md")
    p.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    p.add_argument("--worker", choices=SIDES, default=None)
    p.add_argument("--pairs-file", dest="pairs_file", default=None)
    p.add_argument("--tokenized", default=None)
    args = p.parse_args()
    if args.worker:
        args.pairs = args.pairs_file
        return worker(args)
    tmp = Path(tempfile.mkdtemp())
    pairs, tokenized = tmp / "pairs.json", tmp / "tokenized.json"
    write_pairs(pairs, args.pairs)
    dump_tokenized(pairs, tokenized)
    results: dict[str, list[dict]] = {}
    load = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for side in args.sides:
            r = case(side, args, pairs, tokenized)
            print(side, r, flush=True)
            results.setdefault(side, []).append(r)
    load.append(os.getloadavg()[0])
    args.out.write_text(report(results, args, load))
    print(args.out.read_text())


def report(results: dict[str, list[dict]], args, load) -> str:
    import platform

    import torch

    def med(side, key):
        return statistics.median(r[key] for r in results[side])

    trl = med("trl default", "pairs_per_sec") if "trl default" in results else None
    lines = ["# DPO throughput: this framework vs TRL DPOTrainer", "",
             f"`python experiments/bench_dpo_trl.py --pairs {args.pairs} --threads {args.threads} "
             f"--repeats {args.repeats}"
             + ("" if list(args.sides) == list(SIDES) else " --sides " + " ".join(f'"{x}"' for x in args.sides))
             + "`", "",
             f"- {platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), 1-min load average "
             f"{load[0]:.1f} at the start and {load[1]:.1f} at the end",
             f"- Llama from config {MODEL}, SmolLM2 tokenizer; {args.pairs} Alpaca pairs (rejected = the next row's "
             f"output), {PAIRS_PER_STEP} pairs per step, max length {MAX_LENGTH}, AdamW fused lr {LR} constant, "
             f"beta {BETA}, fp32; median of {args.repeats} fresh processes", "",
             "| side | steps | pairs/s (training steps) | vs TRL | whole fit, s (incl. setup) | peak RSS (MiB) |",
             "|---|---:|---:|---:|---:|---:|"]
    for side in results:
        pps = med(side, "pairs_per_sec")
        ratio = f"{pps / trl:.2f}x" if trl else "n/a"
        lines.append(f"| {side} | {results[side][0]['steps']} | {pps:.2f} | {ratio} | "
                     f"{med(side, 'fit_seconds'):.0f} | {med(side, 'peak_rss_mib'):.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
