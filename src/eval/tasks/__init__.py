"""Evaluation tasks, one file each; ``conf/eval/`` selects them (``python evaluate.py eval=<task>``)."""
