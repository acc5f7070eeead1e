"""Ablations: plans of many `c4clean train` runs, their execution, scoring and reports."""
