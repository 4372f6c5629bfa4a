"""The Ray Tune side of raylab's record of ended trials (`raylab.search.results.record_trial`).

`TrialRecorder`, a Tune callback in the driver, records a trial the moment its last epoch's result
reaches the driver: before the trial's process can close its MLflow run as FINISHED (Tune's
`report` waits for the driver to take the result), and long before Tune's next save of its own
state. On `--resume`, Tune restarts the trials it last saw running; `replay` gives such a trial,
when the record holds it, the results it had reported instead of training it again.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ray import tune

from raylab.search.results import record_trial

# The keys a trial reports (`raylab.search.ray_tune._trial`); Tune adds its own to each result.
REPORTED = ("epoch", "train_loss", "lr", "epoch_seconds", "val_acc_mean", "val_uar_mean",
            "val_loss", "val_acc_valence", "val_acc_arousal", "val_uar_valence", "val_uar_arousal")


class TrialRecorder(tune.Callback):
    """Driver side: each trial's results as they arrive; the trial recorded once its last epoch
    arrived (FINISHED), a scheduler stopped it (FINISHED) or its last retry failed (FAILED)."""

    def __init__(self, run_dir: Path, planned_epochs: Callable[[dict], int]) -> None:
        self.run_dir, self.planned_epochs = Path(run_dir), planned_epochs
        self.history: dict[str, list[dict]] = {}

    def _record(self, trial: Any, status: str, error: str | None = None) -> None:
        record_trial(self.run_dir, trial.trial_id, status, trial.config,
                     self.history.pop(trial.trial_id, []), error)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self.history[trial.trial_id] = []

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self.history[trial.trial_id] = []  # the retry starts from its first epoch

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info) -> None:
        if "epoch" not in result:
            return
        self.history.setdefault(trial.trial_id, []).append(
            {key: result[key] for key in REPORTED if key in result})
        if result["epoch"] >= self.planned_epochs(trial.config):
            self._record(trial, "FINISHED")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info) -> None:
        if trial.trial_id in self.history:  # stopped before its last epoch (ASHA)
            self._record(trial, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._record(trial, "FAILED", _error_line(trial))


def _error_line(trial: Any) -> str:
    """The last line of the trial's error (Tune keeps its text in the trial's folder)."""
    try:
        text = str(trial.get_error() or "").strip()
    except Exception:  # the storage is gone or unreadable: the record says less
        text = ""
    return text.splitlines()[-1] if text else "the trial failed"


def record_from_tune(run_dir: Path, analysis: Any) -> list[str]:
    """Start the record of a search whose Tune state was saved before raylab kept one (no
    `<run>/trials/`): every trial Tune holds as ended (its final state, saved with its results),
    recorded from Tune's results, epoch by epoch. Returns the trial ids recorded."""
    frames = analysis.trial_dataframes
    recorded = []
    for trial in analysis.trials:
        status = {"TERMINATED": "FINISHED", "ERROR": "FAILED"}.get(trial.status)
        if status is None:  # pending, running or paused: it ends (and is recorded) in this fit
            continue
        frame = frames.get(trial.trial_id)
        rows = [] if frame is None or "epoch" not in frame else [
            {key: row[key] for key in REPORTED if key in row and row[key] == row[key]}  # not NaN
            for row in frame.to_dict("records") if row["epoch"] == row["epoch"]]
        error = _error_line(trial) if status == "FAILED" else None
        if record_trial(run_dir, trial.trial_id, status, trial.config, rows, error) is not None:
            recorded.append(trial.trial_id)
    return recorded


def replay(record: dict) -> None:
    """Inside a restarted trial that the record holds: report its recorded results, epoch by
    epoch, so that Tune's record matches it again, without training; a recorded failure fails."""
    if record["status"] == "FAILED":
        raise RuntimeError(f"recorded as failed before the interruption: {record['error']}")
    for result in record["results"]:
        tune.report(dict(result))
