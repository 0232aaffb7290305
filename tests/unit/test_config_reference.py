"""docs/config-reference.md is what ``python -m src.configs.reference_page`` writes now: no option or default drifts."""

from __future__ import annotations

import difflib

from src.configs.reference_page import PAGE, render


def test_config_reference_is_current():
    fresh = render()
    committed = PAGE.read_text() if PAGE.exists() else ""
    diff = difflib.unified_diff(committed.splitlines(), fresh.splitlines(), "committed", "fresh", lineterm="", n=0)
    diff = list(diff)
    assert not diff, ("docs/config-reference.md is out of date: run `python -m src.configs.reference_page`.\n"
                      + "\n".join(diff[:40]))


def test_config_reference_lists_every_group():
    page = render()
    for group in ("experiment", "model", "module", "module/optimizer", "data", "trainer", "eval", "callback"):
        assert f"### `{group}`" in page, group
    assert "#### `model=tiny`" in page and "| `hidden_size` |" in page
