"""Reporting: pooled predictions and baselines, Table 5 of the paper."""
