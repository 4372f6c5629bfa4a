"""The files of a run folder, named once, and `run.json` as one dataclass.

A run folder `<results>/<name>/` holds `run.json` (a `RunRecord`), `config.yaml` (the resolved
configuration), `folds/<SPEAKER>/` (one per trained fold: checkpoint, predictions, metrics, the
fold file `split.json`, confusion PNGs) and, for a ten-fold run once folds finished, `summary.json`,
`table.md` and the pooled confusion PNGs; a search's folder holds `search_space.yaml`, `best.yaml`
and `trials/<TRIAL_ID>.json` (each ended trial, written the moment it ended) instead of folds. No module outside this one spells these names.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
TABLE_FILE = "table.md"
FOLDS_DIR = "folds"
SPLIT_FILE = "split.json"
PREDICTIONS_FILE = "predictions.parquet"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.json"
BEST_FILE = "best.yaml"
SPACE_FILE = "search_space.yaml"
TRIALS_DIR = "trials"  # a search's record of ended trials: <trial id>.json each
ANALYSIS_DIR = "analysis"
LOCK_FILE = ".lock"  # held (flock) by the one process running the run: pid, host, start
LOG_FILE = "raylab.log"  # what Ray, Tune and the libraries printed (raylab.runtime.console.quiet)
LOGS_DIR = "logs"  # <results>/logs/<command>.log: the same for commands without a run folder


def confusion_file(dim: str, pooled: bool = False) -> str:
    """`confusion_<dim>.png` of a fold, `confusion_pooled_<dim>.png` of a run."""
    return f"confusion_{'pooled_' if pooled else ''}{dim}.png"


# The keys each kind of run writes to run.json (the others stay out of its file).
PROTOCOL_FIELDS = ("loss_reduction", "is10_scaling", "amp", "compute_dtype")
KIND_FIELDS = {
    "search": ("kind", "name", "arch", "dataset", "mlflow_run_id", "num_samples", "seed",
               "scheduler", "metric", "mode", "experiment_path", "test_speaker", "complete",
               "best_trial"),
    "crossval": ("kind", "name", "arch", "dataset", "mlflow_run_id", "evaluator", "corpus",
                 "windows", "folds", "fold_windows", "failed", "completed", "status", "created",
                 "updated", *PROTOCOL_FIELDS),
    "train-local": ("kind", "name", "arch", "dataset", "mlflow_run_id", "evaluator", "windows",
                    "folds", "test", *PROTOCOL_FIELDS),
}


@dataclass
class RunRecord:
    """`run.json`: what a run is (kind, network, dataset, MLflow run) and how far it got."""

    kind: str
    name: str | None = None
    arch: str | None = None
    dataset: str | None = None
    mlflow_run_id: str | None = None
    evaluator: str | None = None
    corpus: str | None = None
    windows: int | None = None
    folds: list[str] = field(default_factory=list)
    # a search
    num_samples: int | None = None
    seed: int | None = None
    scheduler: str | None = None
    metric: str | None = None
    mode: str | None = None
    experiment_path: str | None = None
    test_speaker: str | None = None
    complete: bool = False
    best_trial: str | None = None
    # a ten-fold run
    fold_windows: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    completed: list[str] = field(default_factory=list)
    status: str | None = None
    created: str | None = None
    updated: str | None = None
    # a one-fold run
    test: dict[str, Any] = field(default_factory=dict)
    # what a training run computed with (raylab.train.params.recorded_settings)
    loss_reduction: str | None = None
    is10_scaling: str | None = None
    amp: bool | None = None
    compute_dtype: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys of other versions, kept as read

    def to_dict(self) -> dict[str, Any]:
        names = KIND_FIELDS.get(self.kind) or [f.name for f in dataclasses.fields(self)
                                                if f.name != "extra"]
        return {**self.extra, **{name: getattr(self, name) for name in names}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "RunRecord":
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in doc.items() if k in known},
                   extra={k: v for k, v in doc.items() if k not in known})

    @classmethod
    def from_json(cls, text: str) -> "RunRecord":
        return cls.from_dict(json.loads(text))
