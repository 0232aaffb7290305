"""Evaluation tasks, one file each; ``conf/eval/`` selects them (``python eval.py eval=<task>``)."""
