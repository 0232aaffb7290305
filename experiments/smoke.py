"""What every study's ``--smoke`` shares: the flag, where it writes, and stand-ins for the SmolLM2 studies' inputs.

``python experiments/<study>/run.py --smoke`` runs the study's own pipeline (the same ``train.py`` / ``eval.py``
commands, phases, reuse of finished phases and report code) at a size that takes a minute or two on one CPU thread.
Everything it writes goes under ``--out`` (default ``<study>/smoke/``, git-ignored), so a smoke run cannot overwrite
the committed ``results/``. The SmolLM2 studies read SmolLM2-135M-Instruct and ``/work/shared/data``, which CI does not
have: under ``--smoke``, :meth:`Study.from_args` writes into ``--out`` a tiny random Llama with the toy tokenizer (the
tests' stand-in for a pretrained model) and a few rows of each data file, in the same schema under the same names.
``tests/integration/test_study_smoke.py`` runs every study this way, so a renamed key or a broken phase fails CI.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path("/work/shared/data")  # alpaca_2k.json, gsm8k_test.json, poem_prompts.parquet
SMOLLM2 = ROOT / "cache" / "smollm2-135m-instruct-0.1.2"  # model=smollm2_135m's converted directory
STAND_IN_ROWS = 24


def parse_args(parser: argparse.ArgumentParser, here: Path, **smoke: Any) -> argparse.Namespace:
    """The study's arguments plus ``--smoke`` and ``--out``; under ``--smoke`` the study's ``smoke`` sizes become the
    defaults (a flag given on the command line still wins). ``args.out`` is the folder of ``runs/`` and ``results/``."""
    parser.add_argument("--smoke", action="store_true", help="the same pipeline at a tiny size, written under --out")
    parser.add_argument("--out", type=Path, help="the folder of runs/ and results/ (default: the study's own "
                        "folder; with --smoke, <study>/smoke/)")
    if parser.parse_known_args()[0].smoke:
        parser.set_defaults(**smoke)
    args = parser.parse_args()
    args.out = (args.out or (here / "smoke" if args.smoke else here)).resolve()
    if args.smoke and args.out == here:
        parser.error("--smoke writes runs/ and results/ under --out: give a folder other than the study's own")
    return args


def shown(path: Path) -> str:
    """``path`` as a command line or a report shows it: relative to the project root when it is inside it."""
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


class Inputs(NamedTuple):
    """The SmolLM2 studies' seed model and data folder, and what points ``model=smollm2_135m`` at that model."""

    data: Path
    seed_model: Path
    model: list[str]  # train.py overrides: none for SmolLM2 itself, ``model.name_or_path=`` for the stand-in


class Study(NamedTuple):
    """A SmolLM2 study's invocation: what it reads, its sizes (the study's own FULL or SMOKE), where it writes."""

    inputs: Inputs
    sizes: Any
    out: Path

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    @property
    def results(self) -> Path:
        return self.out / "results"

    @classmethod
    def from_args(cls, args: argparse.Namespace, full: Any, smoke: Any) -> Study:
        """SmolLM2-135M, the shared data and ``full``; under ``--smoke`` their stand-ins, written under
        ``args.out``, and ``smoke``. Creates ``runs/`` and ``results/``."""
        if args.smoke:
            model = tiny_model(args.out / "tiny-llama")
            overrides = [f"model.name_or_path={model}", "model.dtype=float32"]
            inputs = Inputs(write_data(args.out / "data"), model, overrides)
        else:
            inputs = Inputs(SHARED_DATA, SMOLLM2, [])
        study = cls(inputs, smoke if args.smoke else full, args.out)
        for folder in (study.runs, study.results):
            folder.mkdir(parents=True, exist_ok=True)
        return study


def tiny_model(path: Path) -> Path:
    """A randomly initialised 2-layer Llama (hidden 32) and the toy tokenizer, with its chat template, at ``path``."""
    if not (path / "config.json").is_file():
        from src.datamodules.tokenizer import load_tokenizer
        from src.modules.backbones import tiny_llama

        tokenizer = load_tokenizer("toy")
        tiny_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2).save_pretrained(path)
        tokenizer.save_pretrained(path)
    return path


def write_data(folder: Path, n: int = STAND_IN_ROWS) -> Path:
    """``n`` rows of each shared data file, same names and fields: Alpaca instruction/input/output rows, GSM8K
    question/answer rows (the answer's last line "The answer is N."), and the poem prompts' ``instruction`` column."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    alpaca = [{"instruction": f"Add {i} and {i + 2}.", "input": "" if i % 2 else f"the numbers {i} and {i + 2}",
               "output": f"{i} + {i + 2} = {2 * i + 2}."} for i in range(n)]
    gsm8k = [{"question": f"Tom has {i} apples and buys {i + 3} more. How many apples does he have?",
              "answer": f"He has {i} + {i + 3} = {2 * i + 3} apples.\nThe answer is {2 * i + 3}."} for i in range(n)]
    (folder / "alpaca_2k.json").write_text(json.dumps(alpaca, indent=1) + "\n")
    (folder / "gsm8k_test.json").write_text(json.dumps(gsm8k, indent=1) + "\n")
    poems = [f"Write a poem titled 'The {word}' with no more than 50 words." for word in ("Sea", "Moon", "Fox", "Oak")]
    pd.DataFrame({"instruction": poems}).to_parquet(folder / "poem_prompts.parquet")
    return folder


def paired_comparison(groups: dict[str, list[Path]], baseline: str, out_dir: Path) -> list[dict]:
    """``python -m src.eval.compare`` on the groups' evaluation directories (a group: one method's seeds), each
    compared with ``baseline`` by paired bootstrap over prompts and seeds, into ``out_dir`` (``comparison.md``,
    ``paired.png``); returns the rows of its ``paired.json``."""
    import subprocess
    import sys

    dirs = [str(d) for runs in groups.values() for d in runs]
    flags = [f"--group={name}=" + ",".join(map(str, runs)) for name, runs in groups.items()]
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "src.eval.compare", *dirs, *flags, f"--baseline={baseline}",
                    f"--out-dir={out_dir}"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out_dir / "paired.json").read_text())


def study_from_cli(doc: str, here: Path, full: Any, smoke: Any) -> tuple[Study, bool]:
    """A SmolLM2 study's command line (``--report-only``, ``--smoke``, ``--out``): ``(study, report_only)``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--report-only", action="store_true", help="the report again from what the runs left")
    args = parse_args(parser, here)
    return Study.from_args(args, full, smoke), args.report_only


def study_state(study: Study, report_only: bool, run: Any, archive: Any) -> dict:
    """Run the study's phases (``run(study)`` returns a JSON-able state with ``walls``, the seconds of the phases it
    ran), time the whole, keep the state in ``results/state.json`` (with the walls an earlier invocation kept) and
    ``archive(study)`` what the report needs; with ``report_only``, the state the last run kept."""
    import time

    state_file = study.results / "state.json"
    if not report_only:
        kept = json.loads(state_file.read_text())["walls"] if state_file.is_file() else {}
        start = time.time()
        state = run(study)
        # a phase an earlier invocation ran keeps its time; study_s adds up every invocation's
        state["walls"] = {**kept, **state["walls"], "study_s": kept.get("study_s", 0.0) + time.time() - start}
        state_file.write_text(json.dumps(state, indent=1) + "\n")
        archive(study)
    return json.loads(state_file.read_text())
