# Shortcuts; the README's two commands are the source of truth.
.PHONY: setup quickstart test test-fast test-slow docs

setup:
	pip install -c requirements/cpu.txt -e ".[dev]"

quickstart: setup
	python train.py

test: setup
	ruff check . && python -m pytest -q

test-fast:
	python -m pytest -q -m "not slow"

test-slow:
	python -m pytest -q -m slow

# The documentation site (mkdocs.yml, docs/) at http://127.0.0.1:8000, rebuilt on every edit.
docs:
	mkdocs serve
