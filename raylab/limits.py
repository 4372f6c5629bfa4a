"""The hard limits of every numeric parameter, written once: the trainer (`TrainConfig`,
`split_params`), the search-space parser and the network constructors all check this table.

Each entry is (low, high, low_open, high_open): a value or bound outside is an error. Every numeric
parameter must also be finite, and sizes (filters, kernels, pools, hidden units) at least 1. The
upper bounds are far beyond any useful value (SGD with lr > 10 or alpha_w > 1 only diverges) and
stop a typo such as lr=1e30 before it trains to NaN.
"""
from __future__ import annotations

import math
from typing import Any

LIMITS = {
    "lr": (0.0, 10.0, True, False), "l2": (0.0, 1.0, False, False),
    "lr_decay": (0.0, 1.0, True, False), "momentum": (0.0, 1.0, False, True),
    "dropout": (0.0, 1.0, False, True), "batch_size": (1, 1_000_000, False, False),
    "epochs": (1, 100_000, False, False),
}
POSITIVE_INT_PREFIXES = ("conv", "pool", "hidden")  # filters, kernels, pools, hidden sizes >= 1


def limit_error(name: str, value: Any) -> str | None:
    """Why a number is not a valid value of parameter `name` (None when it is): not finite, or
    outside its LIMITS, or below 1 for a size. Values that are not numbers are not judged here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return f"{name} must be a finite number, found {value}"
    if name in LIMITS:
        low, high, low_open, high_open = LIMITS[name]
        below = value <= low if low_open else value < low
        above = value >= high if high_open else value > high
        if below or above:
            lo, hi = "(" if low_open else "[", ")" if high_open else "]"
            return f"{name} must lie in {lo}{low:g}, {high:g}{hi}, found {value}"
    elif name.startswith(POSITIVE_INT_PREFIXES) and value < 1:
        return f"{name} must be at least 1, found {value}"
    return None
