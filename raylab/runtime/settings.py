"""Where results go, which device to use: the few settings every command shares."""
from __future__ import annotations

import os
from pathlib import Path

RESULTS_ENV = "RAYLAB_RESULTS"
DEFAULT_RESULTS = "results"
DEMO_DATA_ENV = "RAYLAB_DEMO_DATA"


def results_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The results folder: `--results`, else `$RAYLAB_RESULTS`, else `./results`."""
    chosen = explicit or os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS
    path = Path(chosen).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def demo_data_dir(results: Path) -> Path:
    """Where the built-in demo dataset lives (prepared on first use)."""
    return Path(os.environ.get(DEMO_DATA_ENV) or results / "demo-data")


def pick_device(requested: str | None = None) -> str:
    """`cuda` when a GPU is visible (or asked for), else `cpu`."""
    import torch

    from raylab.errors import ConfigError

    if requested in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {requested}: no CUDA GPU is visible on this machine")
    if requested not in ("cpu",) and not requested.startswith("cuda"):
        raise ConfigError(f"--device {requested!r}: expected auto, cpu, cuda or cuda:N")
    return requested
