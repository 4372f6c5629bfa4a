"""What a search leaves behind: trial summaries, best.yaml, run.json, the record of ended
trials, the closing summary.

No Ray here: `raylab.search.driver` fills these from Ray Tune's results; `raylab tune` prints
`format_summary`, and anything reading a finished search can use the same types.

The record of ended trials (`trials/<id>.json`, one file per trial, written once and atomically
by the driver the moment the trial's last epoch reached it) is raylab's own: Ray Tune saves its
experiment state only every few seconds, so a driver killed in between would forget a trial that
had finished and train it again on `--resume`. A resumed search replays what this record holds.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from raylab.report.layout import BEST_FILE, TRIALS_DIR
from raylab.report.metric_names import SEARCH_METRICS
from raylab.runtime.fsutil import write_atomic

TOP_K = 5


@dataclass(frozen=True)
class TrialSummary:
    trial_id: str
    status: str              # FINISHED, FAILED, or UNFINISHED (the search was interrupted)
    value: float | None      # the metric after the trial's last epoch
    epochs: int
    params: dict             # fixed + sampled, flat
    error: str | None = None
    number: int | None = None  # in the order Tune created the trials, from 1


@dataclass(frozen=True)
class SearchResult:
    name: str
    arch: str
    metric: str
    mode: str
    num_samples: int
    trials: tuple[TrialSummary, ...]   # in the order the searcher proposed them
    run_dir: Path
    experiment_path: str
    best_file: Path | None
    mlflow_run_id: str | None
    tracking_uri: str | None
    searched: tuple[str, ...] = ()   # the parameters of the space; the others were fixed
    address: str | None = None       # the Ray cluster it ran on (--address), for the resume hint
    experiment_id: str | None = None  # the MLflow experiment of its runs

    @property
    def complete(self) -> bool:
        return sum(t.status != "UNFINISHED" for t in self.trials) >= self.num_samples

    def ranked(self) -> list[TrialSummary]:
        """Finished trials with a finite metric, best first (NaN would sort anywhere)."""
        scored = [t for t in self.trials if t.status == "FINISHED" and t.value is not None
                  and math.isfinite(t.value)]
        return sorted(scored, key=lambda t: t.value, reverse=self.mode == "max")

    @property
    def best(self) -> TrialSummary | None:
        ranked = self.ranked()
        return ranked[0] if ranked else None


def write_best(run_dir: Path, arch: str, metric: str, trial: TrialSummary,
               partial: tuple[int, int] | None = None) -> Path:
    """`best.yaml`: the best configuration, flat, in the form `raylab train --config` reads.
    `partial` (trials ended, budget) marks the best of an interrupted search: `partial: true`
    and a first comment line saying how much of the budget ran."""
    doc = {"arch": arch, "metric": metric, "value": float(trial.value),
           "trial_id": trial.trial_id, "params": plain(trial.params)}
    head = ""
    if partial is not None:
        doc = {"partial": True, **doc}
        head = (f"# partial: the best of an interrupted search, {partial[0]} of {partial[1]} "
                "trials ended; resume it for the whole budget\n")
    return write_atomic(run_dir / BEST_FILE, head + yaml.safe_dump(doc, sort_keys=False))


def record_trial(run_dir: Path, trial_id: str, status: str, config: dict, results: list[dict],
                 error: str | None = None) -> Path | None:
    """Record trial `trial_id` as ended (FINISHED or FAILED) with the results it reported, epoch
    by epoch; once: an existing record is kept (a replayed trial reports the same again).
    Returns the new file, or None when the trial was recorded before."""
    path = Path(run_dir) / TRIALS_DIR / f"{trial_id}.json"
    if path.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"trial_id": trial_id, "status": status, "config": plain(config),
           "results": plain(results), "error": error}
    return write_atomic(path, json.dumps(doc, indent=1) + "\n")


def recorded_trials(run_dir: Path) -> dict[str, dict]:
    """{trial id: record} of the trials a search recorded as ended; a file that does not parse
    (none should: they are renamed into place whole) is skipped, its trial runs again."""
    found = {}
    for path in sorted((Path(run_dir) / TRIALS_DIR).glob("*.json")):
        try:
            doc = json.loads(path.read_text())
            found[doc["trial_id"]] = doc
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def plain(value: Any) -> Any:
    """numpy scalars, tuples and paths as plain YAML/JSON values."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return str(value) if isinstance(value, Path) else value


def format_summary(result: SearchResult, top: int = TOP_K) -> str:
    """What a person reads at the end: the top trials, failures, best.yaml, the MLflow command."""
    from raylab.runtime.tracking import ui_lines

    ranked = result.ranked()
    failed = [t for t in result.trials if t.status == "FAILED"]
    metric = SEARCH_METRICS.get(result.metric, result.metric)  # as MLflow names it
    lines = [f"Search {result.name!r} ({result.arch}): {len(result.trials)} of "
             f"{result.num_samples} trials; {len(ranked)} finished, {len(failed)} failed. "
             f"Metric: {metric} ({result.mode})."]
    if ranked:
        shown = [k for k in ranked[0].params if k in result.searched] or list(ranked[0].params)
        fixed = {k: v for k, v in ranked[0].params.items() if k not in shown}
        lines.append(f"Top {min(top, len(ranked))} (epochs run, then the searched values):")
        for rank, t in enumerate(ranked[:top], 1):
            params = " ".join(f"{k}={short(t.params[k])}" for k in shown)
            label = f"#{t.number:02d} {t.trial_id}" if t.number else t.trial_id
            lines.append(f"  {rank}. {label}  {metric}={t.value:.4f}  "
                         f"epochs run={t.epochs}  {params}")
        if fixed:
            lines.append("  fixed: " + " ".join(f"{k}={short(v)}" for k, v in fixed.items()))
    lines += [f"  failed {t.trial_id}: {t.error}" for t in failed]
    if result.best_file:
        lines.append(f"Best configuration: {result.best_file}")
        lines.append(f"  train it: raylab train {result.arch} --config {result.best_file}")
    if not result.complete:
        lines.append(f"Interrupted; continue with: raylab tune {result.arch} "
                     f"--name {result.name} --resume"
                     + (f" --address {result.address}" if result.address else ""))
    if result.tracking_uri and result.experiment_id:
        lines += ui_lines(result.tracking_uri, result.experiment_id)
    return "\n".join(lines)


def short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
