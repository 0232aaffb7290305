"""Loggers: a CSV logger that keeps its history across resumes."""
