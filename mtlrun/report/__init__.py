"""Metrics, reports and comparisons of run folders."""
