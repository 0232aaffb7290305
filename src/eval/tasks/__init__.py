"""Evaluation tasks, one file each, on ``task.py``'s base and ``inputs.py``'s rows; ``eval=<task>`` picks one."""
