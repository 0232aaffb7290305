# Shortcuts; the README's two commands are the source of truth.
.PHONY: setup quickstart test test-slow test-all

setup:
	pip install -c requirements/cpu.txt -e ".[dev]"

quickstart: setup
	python train.py

test: setup
	python -m pytest -q

test-slow:
	python -m pytest -q -m slow

test-all:
	python -m pytest -q -m "slow or not slow"
