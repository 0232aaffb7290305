"""Every module under src/ imports (catches syntax errors and broken imports in files no other test touches)."""

import importlib
import pkgutil

import pytest

import src

MODULES = sorted(m.name for m in pkgutil.walk_packages(src.__path__, prefix="src."))


@pytest.mark.parametrize("name", MODULES)
def test_imports(name):
    importlib.import_module(name)
