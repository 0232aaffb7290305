"""Docstrings and comments point only at what exists: every ``src/...``, ``conf/...`` path and every dotted
``src.x.y`` name written in the code under ``src/`` and the entry points, so a moved file cannot leave a stale
pointer behind."""

from __future__ import annotations

import re

from tests.helpers import ROOT

FILES = [*sorted((ROOT / "src").rglob("*.py")), *(ROOT / name for name in ("train.py", "eval.py", "distill.py"))]
PATH = re.compile(r"(?<![\w/.])((?:src|conf)/[\w/.*<>{}-]*[\w*>}])")
DOTTED = re.compile(r"(?<![\w.])(src(?:\.\w+)+)")
PLACEHOLDER = re.compile(r"<|\*|\{")


def _module_file(parts: list[str]):
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _dotted_exists(name: str) -> bool:
    """``src.a.b`` is a module or package, or a module followed by a name it defines (``src.a.b.func``,
    ``src.a.Class.method``)."""
    parts = name.split(".")
    for cut in range(len(parts), 1, -1):
        module = _module_file(parts[:cut])
        if module is not None:
            rest = parts[cut:]
            if not rest:
                return True
            text = module.read_text()
            return bool(re.search(rf"^\s*(?:def|class) {rest[0]}\b|^{rest[0]}\b.*=|import .*\b{rest[0]}\b", text, re.M))
    return False


def test_every_source_reference_exists():
    stale = []
    for path in FILES:
        text = path.read_text()
        for match in PATH.finditer(text):
            written = match.group(1).rstrip(".")
            if not PLACEHOLDER.search(written) and not (ROOT / written).exists():
                stale.append(f"{path.relative_to(ROOT)}: {written}")
        for match in DOTTED.finditer(text):
            if not _dotted_exists(match.group(1)):
                stale.append(f"{path.relative_to(ROOT)}: {match.group(1)}")
    assert not stale, "stale references:\n" + "\n".join(sorted(set(stale)))
