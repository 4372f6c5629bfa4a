"""`raylab train` commands (being written)."""
from __future__ import annotations


def register(subparsers, common) -> None:
    return None
