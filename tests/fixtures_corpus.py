"""Corpus fixtures (written with the data layer)."""
