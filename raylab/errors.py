"""One exception family: the CLI prints these as one line and exits 1."""
from __future__ import annotations


class RaylabError(Exception):
    """Base of every error a user can cause and fix."""


class ConfigError(RaylabError):
    """A configuration or search-space file, or a command-line value, breaks a rule."""


class DataError(RaylabError):
    """A corpus, dataset or feature file breaks a rule."""


class DivergedError(RaylabError):
    """Training went to a non-finite loss or non-finite network outputs (too high a learning rate,
    or NaN/inf inputs): the run stops instead of scoring NaN predictions as class 0."""
