"""Which trained network to analyse: resolve `--run`, load its checkpoint and its fold's windows.

`--run` is resolved by `raylab.predict.runs.locate`: an MLflow run id, a training run's folder, a
fold's folder or a checkpoint file. The fold defaults to Ses03F, the paper's
(section 4.2), when the run has it, else the first. Results go to a folder that is written under a
temporary name and renamed into place, and are logged as artifacts of the run's MLflow run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from torch import nn

from raylab import SAMPLE_RATE
from raylab.errors import ConfigError, DataError
from raylab.report.layout import ANALYSIS_DIR, METRICS_FILE
from raylab.runtime.fsutil import check_replaceable, staged_folder

PAPER_FOLD = "Ses03F"  # the paper's representative test speaker (section 4.2)


@dataclass
class Target:
    """A trained network and where it came from."""

    model: nn.Module
    info: dict[str, Any]
    arch: str
    fold: str
    checkpoint: Path
    run_dir: Path | None
    mlflow_run_id: str | None
    dataset: str | None          # the dataset folder the run was trained on (None: unknown)
    results: Path

    @property
    def sample_rate(self) -> int:
        return int(self.info.get("sample_rate", SAMPLE_RATE))


def require_waveform(model: nn.Module, arch: str) -> None:
    """The analysis attributes to and optimises the raw waveform: refuse other networks."""
    inputs = tuple(getattr(model, "inputs", ()))
    if not inputs or inputs[0] != "waveform":
        raise ConfigError(f"analysis needs a network that takes the raw waveform; {arch} takes "
                          f"{', '.join(inputs) or 'no declared inputs'} (use elor or elor_ftr)")


def resolve(run: str, fold: str | None, data: str | None, results: Path) -> Target:
    """Find, load and check the network that `--run` names (see the module docstring)."""
    from raylab.train.checkpoint import load_model
    from raylab.predict.runs import locate

    ref = locate(run, results)
    run_dir, run_id, dataset = ref.run_dir, ref.mlflow_run_id, ref.dataset
    if ref.single:
        (own_fold, checkpoint), = ref.checkpoints.items()
        fold = fold or (own_fold if run_dir else None)
    else:
        if fold is None:
            fold = PAPER_FOLD if PAPER_FOLD in ref.checkpoints else next(iter(ref.checkpoints))
        checkpoint = ref.pick(fold)[fold]
    model, info = load_model(checkpoint)
    arch = str(info.get("name", "?"))
    require_waveform(model, arch)
    extra = info.get("extra") or {}
    own = extra.get("fold")  # the test speaker this network never saw
    if own and fold and fold != own:
        raise ConfigError(f"--fold {fold}: {checkpoint} is the network of fold {own}; its "
                          f"test windows are {own}'s (the others were in its training data)")
    fold, dataset = fold or own, dataset or extra.get("dataset")
    return Target(model=model, info=info, arch=arch, fold=fold or "", checkpoint=checkpoint,
                  run_dir=run_dir, mlflow_run_id=run_id, dataset=data or dataset, results=results)


def load_data(target: Target, audio: bool = True):
    """The dataset `--data` names, else the run's, else the built-in demo dataset (`audio=False`:
    labels only); the target's fold is set to Ses03F or the first speaker when the checkpoint
    alone did not say."""
    from raylab.data.dataset import load_dataset
    from raylab.data.demo_cache import resolve_data

    dataset = load_dataset(resolve_data(target.dataset, target.results), audio=audio)
    if int(dataset.meta["window_samples"]) != int(target.info.get("window_samples", 0)):
        raise DataError(f"{dataset.path}: windows of {dataset.meta['window_samples']} samples, but "
                        f"the network takes {target.info.get('window_samples')}")
    if not target.fold:
        target.fold = PAPER_FOLD if PAPER_FOLD in dataset.speakers else dataset.speakers[0]
    if target.fold not in dataset.speakers:
        raise ConfigError(f"--fold {target.fold}: no windows of this speaker in {dataset.path}; "
                          f"speakers: {', '.join(dataset.speakers)}")
    return dataset


def subset(dataset, rows: np.ndarray):
    """The same dataset restricted to `rows` (label columns and audio)."""
    fields = {f.name: getattr(dataset, f.name)[rows] for f in dataclasses.fields(dataset)
              if isinstance(getattr(dataset, f.name), np.ndarray)}
    return dataclasses.replace(dataset, **fields)


def network_arrays(target: Target, dataset, rows: np.ndarray):
    """An ArraySet of `rows` of the dataset, scaled as in training (IS10 standardised with the
    checkpoint's statistics)."""
    from raylab.train.fold import build_arrays

    return build_arrays(subset(dataset, rows), target.arch, target.info.get("feature_stats"))


def network_inputs(target: Target, dataset, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The network's inputs for `rows`: {name: array}, in the order of `model.inputs`."""
    arrays = network_arrays(target, dataset, rows)
    return {name: arrays.inputs[name] for name in target.model.inputs}


def fold_test_rows(dataset, fold: str, limit: int | None) -> np.ndarray:
    """The fold's test windows (its speaker's), `limit` of them spread evenly when given."""
    return spread_rows(np.flatnonzero(dataset.speaker == fold), limit)


def spread_rows(rows: np.ndarray, limit: int | None) -> np.ndarray:
    """`limit` of `rows` spread evenly (all of them without a limit)."""
    if limit is not None and 0 < limit < len(rows):
        rows = rows[np.linspace(0, len(rows) - 1, limit).round().astype(int)]
    return rows


def output_dir(target: Target, command: str, out: str | None) -> Path:
    """`--out`, else `<run_dir>/analysis/<command>-<fold>/` (beside the checkpoint without a run)."""
    if out:
        return Path(out).expanduser().resolve()
    base = target.run_dir or target.checkpoint.parent
    return base / ANALYSIS_DIR / f"{command}-{target.fold}"


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A temporary folder that replaces `out` whole only when the block succeeds."""
    # no rule for folders of earlier versions: their outputs have no fixed names to tell them by
    check_replaceable(out, "analysis", "raylab analysis folder")
    with staged_folder(out, "analysis") as tmp:
        yield tmp


def fold_test_metrics(target: Target) -> dict[str, dict[str, float]] | None:
    """The fold's test WAR/UAR per dimension from its metrics.json (None when not saved)."""
    path = target.checkpoint.parent / METRICS_FILE
    try:
        return json.loads(path.read_text()).get("test") or None
    except (OSError, json.JSONDecodeError):
        return None


def train_params(target: Target) -> dict[str, Any]:
    """The flat parameters the network was trained with (constructor arguments and the training
    settings its checkpoint recorded; the paper's Tables 1-4 fill what it did not record)."""
    train = dict((target.info.get("extra") or {}).get("train_config") or {})
    train.pop("device", None)
    return {**dict(target.model.config), **train}


def publish(target: Target, out: Path, metrics: dict[str, float], track: bool = True) -> str | None:
    """Log the output folder as artifacts `analysis/<folder>` of the run's MLflow run (and the
    headline numbers as metrics `analysis/<name>`); returns the run id, or None when nothing was
    logged."""
    if not track or not target.mlflow_run_id:
        return None
    from raylab.report.metric_names import analysis_metrics
    from raylab.runtime.tracking import Run, Tracker

    run = Run(Tracker(target.results).client, target.mlflow_run_id)
    run.log_artifacts(out, f"analysis/{out.name}")
    run.log_metrics(analysis_metrics(metrics))
    return target.mlflow_run_id


def mlflow_lines(target: Target, run_id: str | None) -> list[str]:
    """Where the analysis is in the MLflow UI: the page of the run it was logged to."""
    if not run_id:
        return []
    from raylab.runtime.tracking import Tracker, ui_lines

    tracker = Tracker(target.results)
    return ui_lines(tracker.uri, tracker.client.get_run(run_id).info.experiment_id, run_id)
