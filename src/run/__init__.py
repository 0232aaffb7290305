"""The run's plumbing, on the top floor: preflight checks, resume (and its config check), instantiation help, ranks,
the outputs at a run's end (metrics.json, summary, curves, model card) and checkpoint conversion."""
