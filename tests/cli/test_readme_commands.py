"""Every command in the documentation's ``bash`` blocks runs here, through the real CLI, in a fresh subprocess.

The pages are ``README.md``, every ``docs/*.md`` and ``experiments/README.md``. Each block is one scenario, its
commands run in order in one scratch directory (so a later command can use an earlier one's run directory, or a file
an earlier ``cat > <file> <<'EOF'`` heredoc wrote), with ``PROJECT_ROOT`` pointing there so ``logs/`` lands in it too.
A command an earlier block already ran is not run again, unless a later command of its block reads what it writes
(its ``hydra.run.dir``, or the heredoc's file); a block left with nothing new is dropped. Commands are shortened
by a suffix (a few steps, tiny model); hub recipes get local stand-ins for their model and data; multi-GPU recipes
(``trainer=fsdp``) are composed with ``--cfg job``, since CI has no GPU. The ``pip install`` halves of the two setup
commands are what CI itself runs. A documented command that stops working fails here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, compose_cfg, local_stand_ins

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "experiments" / "README.md"]
BLOCK = re.compile(r"```bash\n(.*?)```", re.S)
HEREDOC = re.compile(r"^cat > (\S+) <<'?(\w+)'?$")  # a page's example data file, written before it is used
ENV_PREFIX = re.compile(r"([A-Z_][A-Z0-9_]*)=(\S+)\s+")
WRITES = re.compile(r"\bhydra\.(?:run|sweep)\.dir=(\S+)")
TOY_EXPERIMENTS = re.compile(r"experiment=(quickstart|\w+_toy)\b")
# A short run of anything: a few optimizer steps (the run validates at its end), small validation budgets.
SHORT = ["++trainer.limit_val_batches=2",
         "++callbacks.task_accuracy.num_prompts=4", "++callbacks.progress_bar=null", "cpu_threads=1"]


def scenarios() -> list[tuple[str, list[str]]]:
    """``(id, commands)`` per bash block that runs something of this project not run by an earlier block."""
    found, seen = [], set()
    for page in PAGES:
        name = str(page.relative_to(ROOT).with_suffix("")).replace("/", "-")
        for number, block in enumerate(BLOCK.findall(page.read_text())):
            commands = _unseen(_commands(block), seen)
            project = [c for c in commands if split_env(c)[1].startswith("python ")]
            if any(c not in seen for c in project):
                found.append((f"{name}-block{number}-{_slug(project[0])}", commands))
            seen |= set(commands)
    return found


def _unseen(commands: list[str], seen: set[str]) -> list[str]:
    """``commands`` without those an earlier block ran, but for ones a later command here needs (its run directory
    or data file, or a repeat: a resume) or repeats."""
    kept = []
    for i, command in enumerate(commands):
        later = commands[i + 1:]
        outputs = WRITES.findall(command) + [m.group(1) for m in [HEREDOC.match(command.split("\n")[0])] if m]
        if command not in seen or command in later or any(o in c for o in outputs for c in later):
            kept.append(command)
    return kept


def _commands(block: str) -> list[str]:
    """The block's project commands, and the ``cat > <file> <<'EOF'`` heredocs that write the files they read."""
    commands, lines = [], iter(block.splitlines())
    for line in lines:
        heredoc = HEREDOC.match(line.strip())
        if heredoc:
            body = []
            for text in lines:
                if text.strip() == heredoc.group(2):
                    break
                body.append(text)
            commands.append("\n".join([line.strip(), *body, heredoc.group(2)]))
        elif command := _command(line):
            commands.append(command)
    return commands


def _command(line: str) -> str | None:
    """The project command on a page's line: comments dropped, ``pip install ... &&`` prefixes dropped."""
    line = line.split(" # ")[0].strip()
    if line.startswith("#") or not line:
        return None
    line = line.split("&&")[-1].strip()
    return line if split_env(line)[1].startswith("python ") and "pytest" not in line else None


def split_env(command: str) -> tuple[dict[str, str], str]:
    """A command's leading ``NAME=value`` assignments (``POSTTRAIN_PLUGINS=... python train.py``) and the rest."""
    env = {}
    while match := ENV_PREFIX.match(command):
        env[match.group(1)] = match.group(2)
        command = command[match.end():]
    return env, command


def _slug(command: str) -> str:
    return re.sub(r"[^\w=.-]+", "_", split_env(command)[1].removeprefix("python "))[:60]


def shortened(command: str, assets: dict, scratch: Path, earlier_runs: int = 0) -> list[str]:
    """The argv to run for ``command``: the project's interpreter and files, plus the short-run suffix.

    ``earlier_runs``: how many commands before this one wrote to the same ``hydra.run.dir``; each resumed run goes
    2 steps further, so it has something left to train."""
    words = shlex.split(command)[1:]
    script = words[0]
    argv = [sys.executable, *(words[:2] if script == "-m" else [str(ROOT / script)])]
    args = words[2:] if script == "-m" else words[1:]
    if script == "eval.py":
        return argv + args + ["limit=4", "progress=false"]  # four prompts per task
    if script != "train.py":
        return argv + args
    if any(a.startswith("trainer=fsdp") for a in args):
        return argv + args + ["--cfg", "job"]  # multi-GPU recipes: composed, not run, on CPU CI
    if "--cfg" in args:
        return argv + args
    suffix = SHORT + [f"trainer.max_steps={4 + 2 * earlier_runs}"]
    experiment = next((a.split("=", 1)[1] for a in args if a.startswith("experiment=")), "quickstart")
    if not TOY_EXPERIMENTS.match(f"experiment={experiment}") and "," not in experiment and "(" not in experiment:
        fixed = [a for a in args if not a.startswith(("-", "hydra"))]
        suffix += local_stand_ins(compose_cfg(fixed, scratch / "compose"), assets)
    return argv + args + suffix


@pytest.mark.parametrize("scenario", [c for _, c in scenarios()], ids=[i for i, _ in scenarios()])
def test_documented_command_runs(scenario, assets, tmp_path):
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path), "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline",
           "HYDRA_FULL_ERROR": "1"}
    shutil.copytree(ROOT / "examples", tmp_path / "examples")  # documented commands name these files relatively
    runs_per_dir: dict[str, int] = {}
    for command in scenario:
        if command.startswith("cat > "):  # a heredoc that writes an example data file
            subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True)
            continue
        before = set(tmp_path.rglob("metrics.json"))
        prefix, command = split_env(command)
        run_dir = next((a for a in shlex.split(command) if a.startswith("hydra.run.dir=")), None)
        argv = shortened(command, assets, tmp_path, runs_per_dir.get(run_dir, 0) if run_dir else 0)
        if run_dir:
            runs_per_dir[run_dir] = runs_per_dir.get(run_dir, 0) + 1
        if "PYTHONPATH" in prefix:  # the page's folders, relative to where it runs, before the project's
            prefix["PYTHONPATH"] = os.pathsep.join([str(tmp_path / prefix["PYTHONPATH"]), env["PYTHONPATH"]])
        out = subprocess.run(argv, cwd=tmp_path, env={**env, **prefix}, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, f"{command}\n{' '.join(argv)}\n{out.stdout[-3000:]}\n{out.stderr[-6000:]}"
        if command.startswith("python train.py") and "--cfg" not in argv and "debug=fdr" not in command:
            written = {p for p in set(tmp_path.rglob("metrics.json")) - before if p.parent.name != "eval"}
            written = written or _rewritten(tmp_path, command)  # (<run>/eval/ is the evaluation after training)
            assert written, f"{command}: no metrics.json written"
            for path in written:  # every run ends on a validation, so a sweeper always gets its metric
                metrics = json.loads(path.read_text())
                assert any(k in metrics for k in ("val/ce", "val/loss")), (command, path, sorted(metrics))


def _rewritten(root: Path, command: str) -> set[Path]:
    """A resumed run writes its ``metrics.json`` again, in the directory it continues."""
    run_dir = next((a.split("=", 1)[1] for a in shlex.split(command) if a.startswith("hydra.run.dir=")), None)
    return {root / run_dir / "metrics.json"} if run_dir and (root / run_dir / "metrics.json").exists() else set()
