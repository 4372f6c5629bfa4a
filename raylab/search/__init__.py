"""Hyper-parameter search on Ray Tune: search spaces, the TPE driver and its results."""
