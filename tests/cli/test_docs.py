"""The documentation site builds with every warning an error, and no page names a file that is not there."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "experiments" / "README.md"]
# A repository path as the pages write it (`src/losses/gem.py`, conf/experiment/, experiments/bench_dpo.py).
REPO_PATH = re.compile(r"(?<![\w./-])((?:src|conf|experiments|examples|tests)/[\w./-]*)(.?)")
PLACEHOLDER = set("<*{[$")  # src/losses/<name>.py, conf/experiment/*.yaml: a pattern, not one path
OUTPUT = re.compile(r"(--out(-dir)?[ =]|output=|\.dir=)$")  # a path a command creates: not there before it runs


def named_paths(text: str) -> list[str]:
    """The repository paths ``text`` names, but patterns and the outputs its commands create."""
    found = []
    for match in REPO_PATH.finditer(text):
        path, after = match.group(1).rstrip(".,;:"), match.group(2)
        if after in PLACEHOLDER and after or OUTPUT.search(text[max(0, match.start() - 10):match.start()]):
            continue
        found.append(path)
    return found


def test_named_paths_cover_the_forms_the_pages_use():
    text = ("`src/losses/gem.py`, (conf/experiment/), src/modules/<name>.py, conf/experiment/*.yaml, "
            "--out experiments/results/x, multiruns/experiments/ and src.eval.compare.")
    assert named_paths(text) == ["src/losses/gem.py", "conf/experiment/"]


def test_every_path_the_pages_name_exists():
    stale = sorted({f"{page.relative_to(ROOT)}: {path}" for page in PAGES for path in named_paths(page.read_text())
                    if not (ROOT / path).exists()})
    assert not stale, "paths named in the docs that do not exist (moved or renamed?):\n" + "\n".join(stale)


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason='mkdocs is not installed (pip install -e ".[docs]", which .[dev] includes)')
def test_docs_build_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # mkdocs-material's end-of-life banner
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"mkdocs build --strict failed:\n{out.stdout[-3000:]}\n{out.stderr[-6000:]}"
    assert (tmp_path / "site" / "api" / "index.html").exists()


def test_readme_links_to_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    missing = [p.name for p in (ROOT / "docs").glob("*.md") if f"(docs/{p.name}" not in readme]
    assert not missing, f"README.md does not link to: {missing}"
