"""Scoring: responses, samples and runs turned into numbers (answers, pass@k, diversity, refusals, intervals)."""
