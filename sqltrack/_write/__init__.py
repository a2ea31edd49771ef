"""Statements that write, per table group: runs, experiments, metrics, summaries,
artifacts, samples."""
