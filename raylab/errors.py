"""One exception family: the CLI prints these as one line and exits 1."""
from __future__ import annotations


class RaylabError(Exception):
    """Base of every error a user can cause and fix."""


class ConfigError(RaylabError):
    """A configuration or search-space file, or a command-line value, breaks a rule."""


class DataError(RaylabError):
    """A corpus, dataset or feature file breaks a rule."""
