"""Every file under ``src/`` has a name of its own, so a file name (in a traceback, a search, a docstring) says which
file it is. The exceptions are ``__init__.py`` and the deliberate pairs of a loss and its module: ``losses/X.py``
holds the tensor function, ``modules/X.py`` the LightningModule that calls it."""

from __future__ import annotations

from collections import defaultdict

from tests.helpers import ROOT

LOSS_MODULE_PAIRS = {"ce.py", "gem.py", "emo.py", "convex.py", "dpo.py"}


def test_no_two_files_under_src_share_a_name():
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in sorted((ROOT / "src").rglob("*.py")):
        by_name[path.name].append(path.relative_to(ROOT / "src").as_posix())
    pairs = {name: [f"losses/{name}", f"modules/{name}"] for name in LOSS_MODULE_PAIRS}
    repeated = {name: paths for name, paths in by_name.items()
                if len(paths) > 1 and name != "__init__.py" and paths != pairs.get(name)}
    assert repeated == {}


def test_the_loss_module_pairs_exist():
    """The exceptions stay exact: a pair that is renamed or removed is taken off the list."""
    for name in LOSS_MODULE_PAIRS:
        assert (ROOT / "src" / "losses" / name).is_file() and (ROOT / "src" / "modules" / name).is_file(), name
