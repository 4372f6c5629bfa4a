"""Which trained networks a `--run` names: the fold checkpoints of a run, of one fold, or one file.

`--run` is one of
- a run folder (`run.json` and `folds/<SPEAKER>/checkpoint.pt`: a ten-fold or a `--local` run),
- a fold's folder (`folds/<SPEAKER>/`, holding `checkpoint.pt`) or a checkpoint file,
- an MLflow run id: a training run (its tag `raylab.run_dir` names the folder) or one fold's child
  run of a ten-fold run (its parent's folder, that fold).
`raylab predict`, `raylab serve` and `raylab analyze` (analysis.runs) all resolve `--run` here.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raylab.errors import ConfigError, DataError
from raylab.report.layout import CHECKPOINT_FILE, FOLDS_DIR, RUN_FILE
from raylab.runtime.tracking import RUN_DIR_TAG

MLFLOW_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class RunRef:
    """The networks `--run` names: {fold: checkpoint} (one entry when it named one network)."""

    checkpoints: dict[str, Path]
    run_dir: Path | None
    mlflow_run_id: str | None
    dataset: str | None
    single: bool

    def pick(self, fold: str | None) -> dict[str, Path]:
        """All folds (`fold` None), or the one named; an unknown fold lists the run's folds."""
        if fold is None:
            return dict(self.checkpoints)
        if fold in self.checkpoints:
            return {fold: self.checkpoints[fold]}
        where = self.run_dir or next(iter(self.checkpoints.values()))
        raise ConfigError(f"--fold {fold}: not a fold of {where}; available: "
                          f"{', '.join(self.checkpoints)}")


def run_json(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / RUN_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{run_dir / RUN_FILE}: cannot read ({err})") from err


def fold_checkpoints(run_dir: Path) -> dict[str, Path]:
    """{fold: checkpoint} of a run folder, in fold order."""
    return {path.parent.name: path for path in sorted(run_dir.glob(f"{FOLDS_DIR}/*/{CHECKPOINT_FILE}"))}


def mlflow_run_dir(run_id: str, results: Path) -> tuple[Path, str | None]:
    """(run folder, fold or None) of an MLflow training run or of a ten-fold run's fold run."""
    from raylab.runtime.tracking import PARENT_TAG, Tracker

    tracker = Tracker(results)
    try:
        run = tracker.client.get_run(run_id)
    except Exception as err:  # MLflow raises its own exception types for a missing run
        raise ConfigError(f"--run {run_id}: no such MLflow run in {tracker.uri}") from err
    tags, fold = run.data.tags, None
    if not tags.get(RUN_DIR_TAG) and tags.get(PARENT_TAG) and tags.get("raylab.fold"):
        fold = tags["raylab.fold"]
        tags = tracker.client.get_run(tags[PARENT_TAG]).data.tags
    folder = tags.get(RUN_DIR_TAG)
    if not folder:
        raise ConfigError(f"--run {run_id}: MLflow run has no tag {RUN_DIR_TAG}; "
                          "it is not a training run (give its results folder or a checkpoint)")
    return Path(folder), fold


def _enclosing_run(checkpoint: Path) -> Path | None:
    """The run folder of `<run>/folds/<SPEAKER>/checkpoint.pt`, if it is one."""
    if checkpoint.parent.parent.name == FOLDS_DIR and (checkpoint.parents[2] / RUN_FILE).exists():
        return checkpoint.parents[2]
    return None


def locate(run: str, results: Path) -> RunRef:
    """Resolve `--run` (see the module docstring) without loading any network."""
    path = Path(run).expanduser()
    run_id, fold = None, None
    if not path.exists() and MLFLOW_ID.fullmatch(run):
        (path, fold), run_id = mlflow_run_dir(run, results), run
    if not path.exists():
        raise ConfigError(f"--run {run}: neither an existing folder or checkpoint nor an MLflow run id")
    path = path.resolve()
    if path.is_dir() and (path / RUN_FILE).exists():
        run_dir, checkpoints, single = path, fold_checkpoints(path), False
        if not checkpoints:
            raise DataError(f"{run_dir}: no folds/<SPEAKER>/{CHECKPOINT_FILE}; the run saved no network")
        if fold is not None:
            checkpoints, single = RunRef(checkpoints, run_dir, None, None, False).pick(fold), True
    elif path.is_dir() and (path / CHECKPOINT_FILE).exists():
        checkpoint = path / CHECKPOINT_FILE
        run_dir, checkpoints, single = _enclosing_run(checkpoint), {path.name: checkpoint}, True
    elif path.is_dir():
        raise ConfigError(f"--run {path}: a folder without {RUN_FILE} or {CHECKPOINT_FILE}; give a "
                          "training run's results folder, a fold's folder, an MLflow run id or a "
                          "checkpoint file")
    else:
        run_dir, single = _enclosing_run(path), True
        checkpoints = {path.parent.name if run_dir else path.stem: path}
    meta = run_json(run_dir) if run_dir else {}
    return RunRef(checkpoints, run_dir, run_id or meta.get("mlflow_run_id"), meta.get("dataset"),
                  single)
