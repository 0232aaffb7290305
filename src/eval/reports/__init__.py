"""Reports: the tables, figures and summaries written from evaluations and training runs."""
