"""Evaluation, in rooms by role: ``metrics/`` (scoring), ``engine/`` (generation), ``tasks/`` (one task a file),
``reports/`` (tables and figures). Here: what runs them, ``run.py`` and ``after_fit.py`` with their helpers
(``keys.py``, ``run_template.py``), and the command lines ``python -m src.eval.compare`` / ``.matched`` /
``.tradeoff``.
"""
