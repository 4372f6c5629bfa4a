"""Checkpoints that describe themselves: `load_model(path)` rebuilds any network from the file alone.

A checkpoint is a `torch.save`d dict of plain values and tensors (so `torch.load(weights_only=True)`
reads it): the network's registry name and constructor arguments, its state dict, the label scheme,
the sample rate and window length it was trained on, the IS10 standardisation statistics of its
training split (or None) and free-form `extra` (fold, training settings, dataset).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from raylab import DIMENSIONS, NUM_CLASSES, SAMPLE_RATE
from raylab.errors import DataError
from raylab.models import build_model
from raylab.report.layout import CHECKPOINT_FILE
from raylab.runtime.fsutil import atomic_path

CHECKPOINT_FORMAT = 1
LABELS = {"dimensions": list(DIMENSIONS), "classes": NUM_CLASSES,
          "scheme": "class = rating - 1 (ratings 1..5)"}


def _stats_to_file(stats: dict | None) -> dict | None:
    if stats is None:
        return None
    return {kind: {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in part.items()}
            for kind, part in stats.items()}


def _stats_from_file(stats: dict | None) -> dict | None:
    if stats is None:
        return None
    return {kind: {k: v.numpy() for k, v in part.items()} for kind, part in stats.items()}


def save_checkpoint(path: str | os.PathLike, model: nn.Module, name: str,
                    feature_stats: dict | None = None, extra: dict | None = None,
                    sample_rate: int | None = None, window_samples: int | None = None) -> Path:
    """Write the checkpoint atomically (temporary name, then rename); returns its path.

    `sample_rate` / `window_samples` default to `extra`'s values, else 16 kHz and the network's
    `input_samples` (None for networks that do not take the waveform and were not told).
    """
    net = getattr(model, "module", model)
    extra = dict(extra or {})
    payload = {
        "format": CHECKPOINT_FORMAT,
        "name": name,
        "config": dict(net.config),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "labels": LABELS,
        "sample_rate": int(sample_rate or extra.pop("sample_rate", None) or SAMPLE_RATE),
        "window_samples": window_samples or extra.pop("window_samples", None)
        or net.config.get("input_samples"),
        "feature_stats": _stats_to_file(feature_stats),
        "extra": extra,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_model(path: str | os.PathLike, map_location: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(network in eval mode, info) from a checkpoint file or a folder holding `checkpoint.pt`.

    `info` has every key of the file but the state dict: name, config, labels, sample_rate,
    window_samples, feature_stats ({"is10": {"mean", "std"}} as numpy, or None), extra.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError as err:
        raise DataError(f"{path}: no such checkpoint") from err
    except Exception as err:  # torch raises many types for a damaged or foreign file
        raise DataError(f"{path}: not a readable raylab checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(payload, dict) or "name" not in payload or "state_dict" not in payload:
        raise DataError(f"{path}: not a raylab checkpoint (no network name or state dict)")
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"{path}: checkpoint format {payload.get('format')!r}, this raylab reads "
                        f"{CHECKPOINT_FORMAT}")
    model = build_model(payload["name"], **payload["config"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    info = {k: v for k, v in payload.items() if k != "state_dict"}
    info["feature_stats"] = _stats_from_file(payload.get("feature_stats"))
    info["path"] = str(path)
    return model, info
