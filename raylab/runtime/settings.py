"""Where results go, which device to use: the few settings every command shares."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from raylab.errors import ConfigError
from raylab.report.layout import LOCK_FILE, LOG_FILE, LOGS_DIR, RUN_FILE
from raylab.runtime.fsutil import MARKER_FILE
from raylab.runtime.runlock import interrupted_start

RESULTS_ENV = "RAYLAB_RESULTS"
DEFAULT_RESULTS = "results"
DEMO_DATA_ENV = "RAYLAB_DEMO_DATA"
STORAGE_ENV = "RAYLAB_STORAGE"  # Ray Tune/Train state shared by a cluster's nodes


def results_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The results folder: `--results`, else `$RAYLAB_RESULTS`, else `./results`."""
    chosen = explicit or os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS
    path = Path(chosen).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
RESERVED_NAMES = ("ray", "demo-data", "demo-corpus",  # Ray's storage and the demo data live there
                  "logs", "mlartifacts", "mlflow.db")  # command logs and the local MLflow store
RUN_KINDS = {"search": "TPE search (raylab tune)", "crossval": "ten-fold run (raylab train)",
             "train-local": "one-fold run (raylab train --local)"}


def check_run_name(name: str) -> str:
    """A run name is one folder directly under the results folder, never a path out of it."""
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name) or name in RESERVED_NAMES:
        raise ConfigError(f"--name {name!r}: a run name is one folder in the results folder: 1-100 "
                          "letters, digits, '.', '_' or '-', starting with a letter or digit, and "
                          f"not {', '.join(RESERVED_NAMES)}")
    return name


def run_folder(results: Path, name: str, kind: str) -> Path:
    """`<results>/<name>` for a run of `kind` (a key of RUN_KINDS): the name checked, and a folder
    there that is not a run of the same kind (another kind, or no run.json) refused, never reused."""
    folder = Path(results) / check_run_name(name)
    own = (LOCK_FILE, LOG_FILE, MARKER_FILE)  # what a run's lock leaves before its files
    if folder.is_file() or (folder.is_dir() and any(p.name not in own for p in folder.iterdir())):
        try:
            run = json.loads((folder / RUN_FILE).read_text())
            found = run.get("kind") if isinstance(run, dict) else None
        except (OSError, ValueError):
            run, found = {}, None
        if found not in RUN_KINDS and folder.is_dir() and interrupted_start(folder):
            raise ConfigError(f"--name {name}: {folder} holds a start of a run that was killed "
                              f"before its {RUN_FILE} was written; remove it with `raylab runs "
                              f"delete {name}`, or choose another --name")
        if found not in RUN_KINDS:
            raise ConfigError(f"--name {name}: {folder} exists and is not a raylab run (no readable "
                              f"{RUN_FILE} with a known kind); choose another --name")
        if found != kind:
            raise ConfigError(f"--name {name}: {folder} holds a {RUN_KINDS[found]} of "
                              f"{run.get('arch')!r}, not a {RUN_KINDS[kind]}; choose another --name")
    return folder


def storage_root(results: Path) -> str:
    """Ray Tune/Train's storage: `$RAYLAB_STORAGE` (s3://, gs://, an NFS path; shared, for
    clusters) or `<results>/ray`."""
    return os.environ.get(STORAGE_ENV) or str(Path(results).resolve() / "ray")


def log_file(results: Path, run: str | None = None, command: str = "raylab") -> Path:
    """Where a command's Ray, Tune and library output goes (`raylab.runtime.console.quiet`):
    `<results>/<run>/raylab.log` for a run, else `<results>/logs/<command>.log`."""
    if run is not None:
        return Path(results) / check_run_name(run) / LOG_FILE
    return Path(results) / LOGS_DIR / f"{command}.log"


def demo_data_dir(results: Path) -> Path:
    """Where the built-in demo dataset lives (prepared on first use)."""
    return Path(os.environ.get(DEMO_DATA_ENV) or results / "demo-data")


def pick_device(requested: str | None = None) -> str:
    """`cuda` when a GPU is visible (or asked for), else `cpu`."""
    import torch

    if requested in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {requested}: no CUDA GPU is visible on this machine")
    if requested not in ("cpu",) and not requested.startswith("cuda"):
        raise ConfigError(f"--device {requested!r}: expected auto, cpu, cuda or cuda:N")
    return requested
