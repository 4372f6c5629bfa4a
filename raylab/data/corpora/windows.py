"""The window rule of the paper (section 3.1): fixed-length windows cut from an utterance.

An utterance of n samples, with windows of W samples and a minimum last cut of M samples:
- n <= W: one window, the utterance zero-padded at the end to W;
- n > W: windows at 0, W, 2W, ...; every full cut is kept; the last, partial cut (r = n mod W
  samples, r > 0) is kept, zero-padded, only if r > M (the paper: W = 6 s, M = 3 s at 16 kHz).
Window k of utterance `u` is named `window_id(u, k)` = `f"{u}_w{k:02d}"`.
"""
from __future__ import annotations

import numpy as np

from raylab import SAMPLE_RATE
from raylab.errors import ConfigError


def window_id(utterance_id: str, slice_index: int) -> str:
    return f"{utterance_id}_w{slice_index:02d}"


def window_lengths(window_seconds: float, min_last_seconds: float,
                   sample_rate: int = SAMPLE_RATE) -> tuple[int, int]:
    """(window_samples, min_last_samples), checked: 0 <= min_last < window."""
    window = int(round(window_seconds * sample_rate))
    min_last = int(round(min_last_seconds * sample_rate))
    if window <= 0:
        raise ConfigError(f"--window-seconds must be > 0, got {window_seconds}")
    if not 0 <= min_last < window:
        raise ConfigError(f"--min-last-seconds must be >= 0 and below --window-seconds "
                          f"({window_seconds}), got {min_last_seconds}")
    return window, min_last


def window_count(n_samples: int, window: int, min_last: int) -> int:
    """How many windows an utterance of `n_samples` gives under the rule above."""
    if n_samples <= 0:
        return 0
    if n_samples <= window:
        return 1
    full, rest = divmod(n_samples, window)
    return full + (1 if rest > min_last else 0)


def cut_windows(audio: np.ndarray, window: int, min_last: int) -> np.ndarray:
    """Cut a 1-D int16 utterance into (K, window) int16 windows, zero-padding the last one."""
    n = len(audio)
    count = window_count(n, window, min_last)
    out = np.zeros((count, window), dtype=np.int16)  # (K, W)
    if count:
        used = min(n, count * window)
        out.reshape(-1)[:used] = audio[:used]
    return out
