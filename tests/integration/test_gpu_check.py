"""``experiments/gpu_check.py``: its CPU dry run passes end to end, and its GPU command lines compose.

The GPU run is meant to be run once, unedited, in a short lease of a GPU; these keep it from rotting meanwhile. The
dry run executes every part through the real CLI (a renamed key fails it); the compose test checks the GPU-only
command lines (SmolLM2, liger, flash-attention 2, vLLM), which the dry run skips, against the real config.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from src.api import compose
from tests.helpers import ROOT

EXPERIMENTS = ROOT / "experiments"
# Every row the dry run must pass: a CUDA-only row may be skipped, and nothing else.
MUST_PASS = ["pytest -m gpu tests/", "full, plain", "full, chunked", "full, cce", "lora, plain", "lora, chunked",
             "lora, cce", "full: step-1 loss of chunked, cce vs plain", "lora: step-1 loss of chunked, cce vs plain",
             "packed DPO, LoRA, adapter reference, sdpa",
             "trainer=fsdp2 trainer.devices=1, full, bf16 params, fp32 reduce, hf/ export",
             "eval.engine=hf, greedy, 2 prompts x 8 tokens"]
CUDA_ONLY = {"full, liger", "lora, liger", "packed DPO, flash_attention_2",
             "eval.engine=vllm, greedy, 2 prompts x 8 tokens"}


@pytest.fixture(scope="module")
def gpu_check(tmp_path_factory):
    """The script as a module (its sibling ``gpu_check_runner`` importable, as when it runs as a script)."""
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        spec = importlib.util.spec_from_file_location("gpu_check", EXPERIMENTS / "gpu_check.py")
        module = sys.modules["gpu_check"] = importlib.util.module_from_spec(spec)  # a dataclass looks itself up
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(EXPERIMENTS))
        sys.modules.pop("gpu_check", None)


def report_rows(text: str) -> dict[str, dict[str, str]]:
    """case -> {column: cell} over every table of the report."""
    rows, header = {}, None
    for line in text.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            header = None if not line.startswith("|") else header
            continue
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if header is None:
            header = cells
        else:
            rows[cells[0]] = dict(zip(header, cells))
    return rows


@pytest.mark.slow
def test_dry_run_passes_every_part_or_names_why_not(gpu_check, tmp_path):
    out = subprocess.run([sys.executable, str(EXPERIMENTS / "gpu_check.py"), "--dry-run", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    report = tmp_path / "gpu_check.md"
    assert report.is_file(), out.stdout[-3000:] + out.stderr[-3000:]
    text = report.read_text()
    assert [line for line in text.splitlines() if line.startswith("## ")] == [f"## {p}" for p in gpu_check.PARTS]
    rows = report_rows(text)
    for case in MUST_PASS:
        assert rows[case]["status"] == "pass", (case, rows[case])
    assert float(rows["full, plain"]["tokens/s"].replace(",", "")) > 0
    assert rows["pytest -m gpu tests/"]["failed"] == "0"
    for case, cells in rows.items():
        if case not in MUST_PASS:
            assert case in CUDA_ONLY and cells["status"].startswith("skipped (CPU dry run: "), (case, cells)
    assert out.returncode == 0, text


def gpu_commands(module, tmp_path) -> list[list[str]]:
    """Every command the GPU run builds, with every optional package taken as installed."""
    gpu, run = module.GPU, module.Runner(tmp_path, 0)
    prefs = module.write_prefs(tmp_path / "prefs.jsonl")
    return [*(module.sft_cmd(gpu, t, i, run.run_dir("sft")) for t in ("full", "lora") for i in module.IMPLS),
            module.dpo_cmd(gpu, prefs, "flash_attention_2", run.run_dir("dpo")),
            module.fsdp2_cmd(gpu, run.run_dir("fsdp2")),
            *(module.generate_cmd(gpu, tmp_path / "model", e, run.run_dir("gen")) for e in ("hf", "vllm"))]


def test_gpu_command_lines_compose(gpu_check, tmp_path):
    """The GPU run's command lines are real ``train.py`` / ``eval.py`` overrides: each composes (an unknown key
    or option raises), and the settings that decide what runs on the GPU arrive where they should."""
    commands = gpu_commands(gpu_check, tmp_path)
    assert len(commands) == 2 * len(gpu_check.IMPLS) + 4
    for cmd in commands:
        script, overrides = cmd[1], cmd[2:]
        assert cmd[0] == sys.executable and script in ("train.py", "eval.py"), cmd
        cfg = compose(overrides, {"train.py": "train", "eval.py": "evaluate"}[script], tmp_path / "compose")
        if script == "eval.py":
            assert cfg.eval.generation.temperature == 0 and cfg.eval.engine in ("hf", "vllm") and cfg.limit == 6
            continue
        assert OmegaConf.to_container(cfg.model)["name_or_path"] == "${smollm2_dir:${paths.cache_dir}}"
        assert cfg.trainer.max_steps == 30 and cfg.trainer.log_every_n_steps == 1
        assert cfg.callbacks.model_checkpoint is None and cfg.callbacks.last_checkpoint is None
        if "trainer=fsdp2" in overrides:
            assert cfg.trainer.devices == 1 and cfg.trainer.strategy.param_dtype == "bfloat16"
            assert cfg.model.lora is None and cfg.callbacks.hf_export is not None
            continue
        assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
        impl = next(o.split("=")[1] for o in overrides if o.startswith("module.loss_impl=")) \
            if "experiment=sft_smollm2" in overrides else "auto"
        assert cfg.module.loss_impl == impl
        if "experiment=dpo_toy" in overrides:
            assert cfg.data.packing and cfg.model.attn_implementation == "flash_attention_2"
            assert cfg.module.reference == "adapter" and cfg.model.lora.r == 8
