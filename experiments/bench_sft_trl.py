"""SFT training throughput, this framework vs TRL's ``SFTTrainer``, with and without packing, on the same work.

    python -m venv .venv-trl && .venv-trl/bin/pip install -c requirements/cpu.txt torch==2.13.0 "trl==1.16.*" \
        transformers==<this env's version>          # TRL lives in its own environment, never a project dependency
    python experiments/bench_sft_trl.py [--docs 256] [--threads 1] [--repeats 2] [--out experiments/results/x.md]

The same on both sides: the model (a Llama from config, hidden 384, 6 layers, tied embeddings, ~30M parameters, with
SmolLM2's 49k-token tokenizer, randomly initialised with one seed), the same tokenized examples (the first ``--docs``
training rows of the Alpaca sample, chat template, at most 256 tokens, prompt tokens masked, encoded once by this
framework's ``AlpacaDataModule`` and handed to TRL as ``input_ids`` + ``completion_mask``), batch 8 rows, AdamW
(fused) at a constant lr 1e-4, fp32, sdpa attention, one epoch over the examples, no evaluation, no checkpoints.
Packing: this framework's ``data.packing=true`` (best-fit decreasing into rows of 256 tokens) vs TRL's
``packing=True`` (its default ``bfd`` strategy, padding-free rows of 256 tokens).

Throughput is real (non-padding) tokens per second of training, from the third optimizer step to the last (the first
two are warm-up), timed around the steps by a callback on each side, data loading included. Each case runs in a fresh
process (``--repeats`` times, alternating the sides); peak memory is the process's peak RSS (``VmHWM``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = Path("/work/shared/data/alpaca_2k.json")
TOKENIZER = ROOT / "cache" / "smollm2-135m-instruct-0.1.2"
TRL_PYTHON = ROOT / ".venv-trl" / "bin" / "python"
MODEL = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, num_key_value_heads=6,
             intermediate_size=1024, max_position_embeddings=1024, tie_word_embeddings=True)
MAX_LENGTH, BATCH, LR, WARMUP_STEPS, SEED = 256, 8, 1e-4, 2, 0


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def real_tokens(batch) -> int:
    """Non-padding tokens of a batch: the attention mask's sum, or every token of a padding-free row."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())


class Clock:
    """Tokens and seconds of the optimizer steps after the warm-up ones."""

    def __init__(self):
        self.steps, self.tokens, self.start, self.seconds = 0, 0, None, 0.0

    def begin(self):
        if self.steps == WARMUP_STEPS:
            self.start = time.perf_counter()

    def end(self, tokens: int):
        self.steps += 1
        if self.steps > WARMUP_STEPS:
            self.tokens += tokens
            self.seconds = time.perf_counter() - self.start


def dump_examples(path: Path, docs: int) -> None:
    """The training examples, encoded once by this framework (what both sides train on)."""
    from src.datamodules.sft import AlpacaDataModule

    dm = AlpacaDataModule(path=str(DATA), template="chat", tokenizer=str(TOKENIZER), max_length=MAX_LENGTH,
                          batch_size=BATCH, limit=docs, seed=SEED)
    dm.setup()
    rows = [{"input_ids": ex["input_ids"], "completion_mask": [int(y != -100) for y in ex["labels"]]}
            for ex in dm.datasets["train"].examples]
    path.write_text(json.dumps(rows))


def run_ours(args) -> dict:
    from functools import partial

    import torch
    from lightning.pytorch import Callback, Trainer
    from transformers import LlamaConfig, LlamaForCausalLM

    from src.datamodules.sft import AlpacaDataModule
    from src.modules.ce import CEModule

    torch.set_num_threads(args.threads)
    dm = AlpacaDataModule(path=str(DATA), template="chat", tokenizer=str(TOKENIZER), max_length=MAX_LENGTH,
                          batch_size=BATCH, limit=args.docs, seed=SEED, packing=args.packing)
    clock = Clock()

    class Timer(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            clock.begin()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            clock.end(real_tokens(batch))

    def model():
        torch.manual_seed(SEED)
        config = LlamaConfig(vocab_size=len(dm.tokenizer), pad_token_id=dm.tokenizer.pad_token_id, **MODEL)
        return LlamaForCausalLM(config).float()

    module = CEModule(model=model, optimizer=partial(torch.optim.AdamW, lr=LR, fused=True))
    trainer = Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                      num_sanity_val_steps=0, callbacks=[Timer()], use_distributed_sampler=False)
    trainer.fit(module, datamodule=dm)
    return {"steps": clock.steps, "tokens": clock.tokens, "seconds": clock.seconds}


def time_trl_steps(trainer, clock: Clock, count) -> None:
    """Time a TRL trainer's optimizer steps with ``clock``: its collator is wrapped to record each batch's work,
    ``count(examples, batch)`` (real tokens, pairs), and a callback brackets every step."""
    from transformers import TrainerCallback

    collate, counts = trainer.data_collator, []

    def counting_collator(examples):
        batch = collate(examples)
        counts.append(count(examples, batch))  # the epoch's last batch may be short
        return batch

    trainer.data_collator = counting_collator

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            clock.begin()

        def on_step_end(self, *a, **k):
            clock.end(counts[-1])

    trainer.add_callback(Timer())


def run_trl(args) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    rows = json.loads(Path(args.examples).read_text())
    torch.manual_seed(SEED)
    config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **MODEL)
    model = LlamaForCausalLM(config).float()
    model.config._attn_implementation = "sdpa"
    clock = Clock()
    sft_args = SFTConfig(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=BATCH, num_train_epochs=1, learning_rate=LR,
        lr_scheduler_type="constant", optim="adamw_torch_fused", max_length=MAX_LENGTH, packing=args.packing,
        completion_only_loss=True, report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True,
        dataloader_num_workers=0, seed=SEED, bf16=False, fp16=False, disable_tqdm=True,
    )
    trainer = SFTTrainer(model=model, args=sft_args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    time_trl_steps(trainer, clock, lambda examples, batch: real_tokens(batch))
    trainer.train()
    return {"steps": clock.steps, "tokens": clock.tokens, "seconds": clock.seconds}


def worker(args) -> None:
    result = run_ours(args) if args.side == "ours" else run_trl(args)
    result |= {"tokens_per_sec": result["tokens"] / max(result["seconds"], 1e-9), "peak_rss_mib": peak_rss_mib()}
    print("RESULT " + json.dumps(result), flush=True)


def run_worker(trl: bool, script: str, worker_args: list[str], threads: int) -> dict:
    """One fresh process of ``script --worker ...`` (TRL's environment or this one); the dict it prints."""
    cmd = [str(TRL_PYTHON) if trl else sys.executable, script, *worker_args, "--threads", str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if out.returncode or line is None:
        raise RuntimeError(f"{' '.join(worker_args)} failed:\n{out.stderr[-4000:]}")
    return json.loads(line[len("RESULT "):])


def case(side: str, packing: bool, args, examples: Path) -> dict:
    worker_args = ["--worker", side, "--docs", str(args.docs), "--examples", str(examples)]
    return run_worker(side == "trl", __file__, worker_args + (["--packing"] if packing else []), args.threads)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--docs", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "bench_sft_trl_cpu.md")
    p.add_argument("--worker", choices=["ours", "trl"], default=None)
    p.add_argument("--packing", action="store_true")
    p.add_argument("--examples", default=None)
    args = p.parse_args()
    if args.worker:
        args.side = args.worker
        return worker(args)
    examples = Path(tempfile.mkdtemp()) / "examples.json"
    dump_examples(examples, args.docs)
    results: dict[tuple[str, bool], list[dict]] = {}
    load = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for packing in (False, True):
            for side in ("ours", "trl"):  # alternating: a change in machine load hits both sides
                r = case(side, packing, args, examples)
                print(side, packing, r, flush=True)
                results.setdefault((side, packing), []).append(r)
    load.append(os.getloadavg()[0])
    args.out.write_text(report(results, args, load))
    print(args.out.read_text())


def report(results, args, load) -> str:
    import torch

    def med(side, packing, key):
        return statistics.median(r[key] for r in results[(side, packing)])

    lines = ["# SFT throughput: this framework vs TRL SFTTrainer", "",
             f"`python experiments/bench_sft_trl.py --docs {args.docs} --threads {args.threads} "
             f"--repeats {args.repeats}`", "",
             f"- {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), "
             f"1-min load average {load[0]:.1f} at the start and {load[1]:.1f} at the end",
             f"- Llama from config {MODEL}, SmolLM2 tokenizer; {args.docs} Alpaca examples, batch {BATCH}, "
             f"max length {MAX_LENGTH}, AdamW fused lr {LR} constant, fp32; median of {args.repeats} fresh processes",
             "", "| packing | side | steps | real tokens/s | vs TRL | peak RSS (MiB) |",
             "|---|---|---:|---:|---:|---:|"]
    for packing in (False, True):
        trl = med("trl", packing, "tokens_per_sec")
        for side in ("ours", "trl"):
            tps = med(side, packing, "tokens_per_sec")
            lines.append(f"| {packing} | {side} | {results[(side, packing)][0]['steps']} | {tps:.0f} | "
                         f"{tps / trl:.2f}x | {med(side, packing, 'peak_rss_mib'):.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
