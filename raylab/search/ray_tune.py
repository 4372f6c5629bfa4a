"""The Ray Tune side of the search: the Tuner, its trials and the summary of their results.

`execute` puts the dataset's arrays in the object store once, opens the search's MLflow parent run,
runs (or restores) the Tuner of HyperOptSearch trials and writes `best.yaml` and run.json;
`raylab.search.driver` resolves and checks everything before it, and holds the Ray session.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from raylab.errors import DataError
from raylab.report.layout import RUN_FILE, SPACE_FILE, TRIALS_DIR, RunRecord
from raylab.report.metric_names import SEARCH_METRICS, epoch_metrics
from raylab.runtime.fsutil import write_atomic
from raylab.runtime.ray_session import live_nodes, tune_counts_memory_kills
from raylab.runtime.tracking import BEST_TAG, NOTE_TAG, PARENT_TAG, check_store_reachable
from raylab.search.ray_record import TrialRecorder, record_from_tune, replay
from raylab.search.results import (SearchResult, TrialSummary, plain, recorded_trials, short,
                                   write_best)
from raylab.search.space import SearchSpace, dump_search_space, paper_values

TUNE_STATUS = {"TERMINATED": "FINISHED", "ERROR": "FAILED"}  # others: cut off by an interruption
# What a trial reports to Tune (the search-space file's metric names) -> the keys of
# `raylab.train.loop.EpochReport.val` (raylab.report.metrics.per_dimension). MLflow gets the
# figures once, under `raylab.report.metric_names`.
VAL_KEYS = {"val_acc_mean": "mean_war", "val_uar_mean": "mean_uar", "val_loss": "loss",
            "val_acc_valence": "valence_war", "val_acc_arousal": "arousal_war",
            "val_uar_valence": "valence_uar", "val_uar_arousal": "arousal_uar"}


@dataclass(frozen=True)
class TrialContext:
    """What a trial needs besides its sampled configuration; travels with `tune.with_parameters`."""

    arch: str
    fixed: dict
    test_speaker: str
    metric: str
    cpus: float
    gpus: float
    device: str | None
    tracking_uri: str | None
    parent_run_id: str | None
    search_name: str
    replay: dict = dataclasses.field(default_factory=dict)  # {trial id: record} on --resume
    num_samples: int = 1
    dataset: dict | None = None  # `raylab.data.dataset.dataset_record`


def trial_run_name(search: str, number: int, num_samples: int) -> str:
    """`elor-search #07`: the search's name and the trial's number in the order Tune created the
    trials, zero-padded to the budget's width (at least two digits)."""
    return f"{search} #{number:0{max(2, len(str(num_samples)))}d}"


def trial_number(folder: str) -> int | None:
    """The number Tune gave a trial when it created it (its folder `<trainable>_<id>_<n>_...`)."""
    found = re.search(r"_[0-9a-f]{8}(?:_\d{5})?_(\d+)_", folder)
    return int(found.group(1)) if found else None


def hyperopt_space(space: SearchSpace) -> dict:
    """The flat hyperopt expression of every searched parameter (no nested choices)."""
    from hyperopt import hp
    from hyperopt.pyll import scope

    out = {}
    for p in space.params:
        if p.type == "choice":
            out[p.name] = hp.choice(p.name, list(p.values))
        elif p.type == "int" and p.log:
            out[p.name] = scope.int(hp.qloguniform(p.name, math.log(p.low), math.log(p.high), 1))
        elif p.type == "int":  # bounds are multiples of the step (checked), so draws stay inside
            out[p.name] = scope.int(hp.quniform(p.name, p.low, p.high, p.step or 1))
        elif p.log:
            out[p.name] = (hp.qloguniform(p.name, math.log(p.low), math.log(p.high), p.step)
                           if p.step else hp.loguniform(p.name, math.log(p.low), math.log(p.high)))
        else:
            out[p.name] = (hp.quniform(p.name, p.low, p.high, p.step) if p.step
                           else hp.uniform(p.name, p.low, p.high))
    return out


def can_restore(experiment_path: str) -> bool:
    """Whether Ray Tune holds the state of an experiment there (a search to resume)."""
    return tune.Tuner.can_restore(experiment_path)


def execute(space: SearchSpace, data: str, name: str, run_dir: Path, storage: str,
             state: RunRecord | None, seed: int, scheduler: str, cpus: float, gpus: float,
             results: Path, track: bool, max_failures: int, device: str | None,
             callbacks: tuple, say: Callable[[str], None] | None = None) -> SearchResult:
    from raylab.runtime.ray_capacity import clear_resource_requests
    from raylab.runtime.tracking import Tracker, close_stale_children

    experiment_path = f"{storage.rstrip('/')}/{name}"
    fixed = {"seed": seed, **space.fixed}
    tune_counts_memory_kills()
    tracker = Tracker(results, enabled=track)
    check_store_reachable(tracker.uri, live_nodes())
    arrays, test_speaker, dataset = _load_arrays(space.arch, data, fixed["seed"])
    arrays_ref = ray.put(arrays)  # once; each node fetches it once and its trials map the pages
    del arrays
    parent_id = state.mlflow_run_id if state else None
    try:
        note = (f"TPE search of {space.arch}: {space.num_samples} trials on "
                f"{dataset['name']} ({dataset['profile']['windows']} windows, evaluator "
                f"{dataset['profile']['evaluator']}), test speaker {test_speaker} left out; "
                f"metric {SEARCH_METRICS[space.metric]} ({space.mode}). Folder: {run_dir}")
        with tracker.start_run(name, tags={"raylab.kind": "search", "raylab.arch": space.arch,
                                           "raylab.run_dir": str(run_dir), NOTE_TAG: note},
                               run_id=parent_id) as parent:
            record = RunRecord("search", name, space.arch, data, parent.run_id,
                               num_samples=space.num_samples, seed=seed, scheduler=scheduler,
                               metric=space.metric, mode=space.mode,
                               experiment_path=experiment_path, test_speaker=test_speaker)
            if state is None:
                write_atomic(run_dir / SPACE_FILE, dump_search_space(space))
                write_atomic(run_dir / RUN_FILE, record.to_json())
                parent.log_params({"arch": space.arch, "dataset": data, "seed": seed,
                                   "scheduler": scheduler, "num_samples": space.num_samples,
                                   "metric": space.metric, "cpus_per_trial": cpus,
                                   "gpus_per_trial": gpus, "max_concurrent": space.max_concurrent,
                                   **{f"space/{p.name}": p.describe() for p in space.params},
                                   **{f"fixed/{k}": v for k, v in fixed.items()}})
                parent.log_artifact(run_dir / SPACE_FILE)
                parent.log_dataset(**dataset)
            ended = recorded_trials(run_dir) if state is not None else {}
            context = TrialContext(space.arch, fixed, test_speaker, space.metric, cpus, gpus,
                                   device, tracker.uri, parent.run_id, name, ended,
                                   space.num_samples, dataset)
            trainable = tune.with_resources(
                tune.with_parameters(_trial, arrays=arrays_ref, context=context),
                {"cpu": cpus, "gpu": gpus})
            recorded, analysis = {}, None
            if state is not None:
                analysis = tune.ExperimentAnalysis(experiment_path)
                recorded = {t.trial_id: TUNE_STATUS.get(t.status, "UNFINISHED")
                            for t in analysis.trials}
                _settle_children(tracker, parent.run_id, _as_recorded(recorded, ended))
            # trials Tune itself holds ended; those it forgot end again (replayed) in this fit
            bar = SearchBar(name, space.num_samples, space.metric, space.mode,
                            sum(s != "UNFINISHED" for s in recorded.values()))
            recorder = TrialRecorder(run_dir, functools.partial(planned_epochs, space.arch,
                                                                fixed))
            if state is None:
                tuner = _new_tuner(trainable, space, name, storage, seed, scheduler,
                                   max_failures, (recorder, *callbacks, SearchProgress(name)))
            else:  # the callbacks, SearchProgress included, come back with the Tuner's state
                tuner = tune.Tuner.restore(experiment_path, trainable, resume_unfinished=True,
                                           resume_errored=False, restart_errored=False)
                _add_lost_callbacks(tuner, recorder, SearchProgress(name), analysis, run_dir,
                                    say)
            try:
                with _tune_environment():
                    grid = tuner.fit()
            finally:
                bar.close()
                clear_resource_requests()  # none left standing after Ctrl-C
            result = _summarize(grid, space, fixed, name, run_dir, experiment_path,
                                parent.run_id, tracker.uri, parent.experiment_id)
            if result.best is not None:
                ended = sum(t.status != "UNFINISHED" for t in result.trials)
                best = write_best(run_dir, space.arch, space.metric, result.best,
                                  None if result.complete else (ended, space.num_samples))
                result = dataclasses.replace(result, best_file=best)
                parent.log_artifact(best)
                best_metric = SEARCH_METRICS[space.metric].replace("val/", "val/best_")
                parent.log_metrics({best_metric: result.best.value})
            record.complete = result.complete
            record.best_trial = getattr(result.best, "trial_id", None)
            write_atomic(run_dir / RUN_FILE, record.to_json())
            parent.set_tags({"raylab.complete": result.complete,
                             "raylab.trials_failed": sum(t.status == "FAILED"
                                                         for t in result.trials)})
            _settle_children(tracker, parent.run_id, _as_recorded(
                {t.trial_id: t.status for t in result.trials}, recorded_trials(run_dir)))
            close_stale_children(tracker, parent.run_id)  # trials whose process was killed
            _tag_best(tracker, parent, result)
            if not result.complete:
                raise _Interrupted  # the parent run ends KILLED, as after Ctrl-C
    except _Interrupted:
        pass
    return result


class SearchBar:
    """The search's line on the console: trials ended of the budget, ETA, the best value so far
    (each trial's last report, as Tune ranks them; under its `SEARCH_METRICS` name, as MLflow
    shows it). Lives in the driver, found by the search's name, so that the `SearchProgress` that
    `Tuner.restore` unpickles drives it too."""

    def __init__(self, name: str, budget: int, metric: str, mode: str, ended: int = 0) -> None:
        from raylab.runtime.console import progress

        self.name, self.metric, self.mode = name, metric, mode
        self.last: dict[str, float] = {}
        self.bar = progress(budget, f"search {name}", "trials", initial=ended)
        _BARS[name] = self

    def result(self, trial_id: str, result: dict) -> None:
        if self.metric in result:
            self.last[trial_id] = float(result[self.metric])
            best = (max if self.mode == "max" else min)(self.last.values())
            self.bar.note(f"best {SEARCH_METRICS.get(self.metric, self.metric)} {best:.4f}")

    def ended(self, trial_id: str, failed: bool) -> None:
        if failed:
            self.bar.write(f"search {self.name}: trial {trial_id} failed (see the summary)")
        self.bar.advance()

    def close(self) -> None:
        _BARS.pop(self.name, None)
        self.bar.close()


_BARS: dict[str, SearchBar] = {}


class SearchProgress(tune.Callback):
    """Tune's trial events, in the driver, to the search's `SearchBar`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if self.name in _BARS:
            _BARS[self.name].result(trial.trial_id, result)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        if self.name in _BARS:
            _BARS[self.name].ended(trial.trial_id, failed=False)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        if self.name in _BARS:
            _BARS[self.name].ended(trial.trial_id, failed=True)


def _add_lost_callbacks(tuner: Any, recorder: TrialRecorder, progress: SearchProgress,
                        analysis: Any, run_dir: Path, say: Callable[[str], None] | None) -> None:
    """A Tune state saved by a raylab that kept no record of ended trials (or no search bar)
    comes back without those callbacks: add them, start the record from Tune's state, and say so
    in one line (a trial that ended after Tune's last save of that state trains again)."""
    # Tune has no public way to add callbacks to a restored Tuner; its RunConfig holds them
    if getattr(tuner, "_local_tuner", None) is None:  # Ray Client: the Tuner lives remotely
        if say is not None:
            say("note: this search's saved state has no raylab record of ended trials, and "
                "through Ray Client none can be added: it goes on without one")
        return
    config = tuner._local_tuner.get_run_config()
    callbacks = list(config.callbacks or [])
    held = {type(callback) for callback in callbacks}
    config.callbacks = callbacks + [c for c in (recorder, progress) if type(c) not in held]
    if TrialRecorder in held:
        return
    started = record_from_tune(run_dir, analysis)
    if say is not None:
        say(f"note: {analysis.experiment_path} was saved by a raylab without the record of ended "
            f"trials; it starts now from Tune's state ({len(started)} ended trials, "
            f"{run_dir / TRIALS_DIR}); a trial that ended after Tune's last save of it runs again")


@contextlib.contextmanager
def _tune_environment() -> Iterator[None]:
    """During one fit: Ray's CLIReporter (our columns) instead of its newer default output, and
    Tune's state saved every second instead of every ten or more (unless set already), so that the
    state a killed driver leaves is at most a second old (every trial is in it before it starts:
    `SavedFifo`, `SavedAsha`)."""
    settings = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    before = {key: os.environ.get(key) for key in settings}
    os.environ.update({key: before[key] or value for key, value in settings.items()})
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)


def planned_epochs(arch: str, fixed: dict, config: dict) -> int:
    """The epochs a trial of `config` trains for (fixed or searched)."""
    from raylab.train.params import split_params

    return split_params(arch, {**fixed, **config})[1].epochs


def _settle_children(tracker: Any, parent_id: str | None, statuses: dict[str, str]) -> None:
    """Make the trials' child runs agree with Tune's record: a trial the interruption cut off
    ends KILLED (it starts again on --resume, in a new child run); a finished or failed trial
    whose process Ray ended before it closed its run gets that status on its last attempt, and
    an earlier attempt whose process died (a lost node, the memory monitor) FAILED."""
    if not (tracker.enabled and parent_id and statuses):
        return
    client = tracker.client
    experiment = client.get_run(parent_id).info.experiment_id
    runs = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent_id}'")
    last = {}
    for run in sorted(runs, key=lambda r: r.info.start_time or 0):
        last[run.data.tags.get("raylab.trial_id")] = run.info.run_id
    for run in runs:
        trial = run.data.tags.get("raylab.trial_id")
        status = statuses.get(trial)
        if status == "UNFINISHED" and run.info.status != "KILLED":
            client.set_tag(run.info.run_id, "raylab.interrupted", "true")
            client.set_terminated(run.info.run_id, "KILLED")
        elif status in ("FINISHED", "FAILED") and run.info.status == "RUNNING":
            if last[trial] != run.info.run_id:
                client.set_tag(run.info.run_id, "raylab.error", "its process died; Tune retried")
            client.set_terminated(run.info.run_id,
                                  status if last[trial] == run.info.run_id else "FAILED")


def _as_recorded(statuses: dict[str, str], ended: dict[str, dict]) -> dict[str, str]:
    """Tune's statuses, except that a trial it holds unfinished but raylab recorded as ended
    (after Tune last saved its state, or as Ctrl-C stopped it) has the recorded status."""
    return {trial: ended[trial]["status"] if status == "UNFINISHED" and trial in ended
            else status for trial, status in statuses.items()}


def _tag_best(tracker: Any, parent: Any, result: SearchResult) -> None:
    """`raylab.best=true` on the best trial's finished child run (and on no other), and the
    parent's `raylab.best_trial` (the trial's run name) and `raylab.best_run_id`."""
    if not (parent.enabled and result.best is not None):
        return
    client = tracker.client
    children = client.search_runs([parent.experiment_id],
                                  f"tags.`{PARENT_TAG}` = '{parent.run_id}'")
    best = [r for r in children if r.data.tags.get("raylab.trial_id") == result.best.trial_id
            and r.info.status == "FINISHED"]
    for run in children:
        if run.data.tags.get(BEST_TAG) and run not in best[-1:]:
            client.delete_tag(run.info.run_id, BEST_TAG)  # the best of an earlier attempt
    if best:
        client.set_tag(best[-1].info.run_id, BEST_TAG, "true")
        parent.set_tags({"raylab.best_trial": best[-1].info.run_name,
                         "raylab.best_run_id": best[-1].info.run_id})


class _Interrupted(KeyboardInterrupt):
    """Raised inside the parent run when Tune stopped early, so that MLflow records it KILLED."""


def _load_arrays(arch: str, data: str, seed: int) -> tuple[Any, str, dict]:
    """The network's arrays of the whole dataset, the speaker the search never sees, and the
    dataset's record for MLflow."""
    from raylab.data.dataset import dataset_record, load_dataset
    from raylab.models import model_class
    from raylab.train.fold import build_arrays
    from raylab.train.folds import check_no_leakage, search_split

    dataset = load_dataset(data, audio="waveform" in model_class(arch).inputs)
    split = search_split(dataset.speaker, seed)
    check_no_leakage(split, dataset.speaker)
    if len(split.val_idx) == 0:
        raise DataError(f"{data}: too few windows for a validation set "
                        f"({len(split.train_idx)} training windows)")
    return (build_arrays(dataset, arch, waveform_dtype="int16"), split.test_speaker,
            dataset_record(dataset))


def _new_tuner(trainable: Any, space: SearchSpace, name: str, storage: str, seed: int,
               scheduler: str, max_failures: int, callbacks: tuple) -> Any:
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.hyperopt import HyperOptSearch

    searcher = HyperOptSearch(hyperopt_space(space), metric=space.metric, mode=space.mode,
                              points_to_evaluate=[dict(space.start)],
                              n_initial_points=space.n_initial_points, random_state_seed=seed)
    max_epochs = (space.param("epochs").high if "epochs" in space.names
                  else space.fixed.get("epochs") or paper_values(space.arch)["epochs"])
    schedule = (SavedAsha(time_attr="training_iteration", max_t=max_epochs, grace_period=1)
                if scheduler == "asha" else SavedFifo())
    shown = {k: k for k in ("lr", "batch_size", "epochs", "dropout") if k in space.names}
    reporter = tune.CLIReporter(
        metric_columns={"training_iteration": "epoch", "val_acc_mean": "val_acc",
                        "val_uar_mean": "val_uar"},
        parameter_columns=shown, max_report_frequency=30, sort_by_metric=True,
        max_progress_rows=12)  # metric and mode come from the TuneConfig
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=space.metric, mode=space.mode, num_samples=space.num_samples,
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=space.max_concurrent),
            scheduler=schedule, reuse_actors=True),  # a trial after the first skips the imports
        run_config=tune.RunConfig(
            name=name, storage_path=storage, verbose=1, progress_reporter=reporter,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            callbacks=list(callbacks)))


class _SavedBeforeStart:
    """A Tune scheduler whose trials are in Tune's saved state before they can start: the step
    that adds trials saves the state (forced, whatever `TUNE_GLOBAL_CHECKPOINT_S`) before Tune
    starts an actor for any of them. A trial that started and ended between two periodic saves
    would otherwise be unknown to a resume after the driver was killed: trained again, beside its
    record. Known to the saved state, it is restarted on `--resume` and replayed from the record."""

    _unsaved = False

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)
        self._unsaved = True

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        if self._unsaved:  # Tune asks this before it starts actors, in the step that added trials
            self._unsaved = False
            # a scheduler gets the controller behind a wrapper that names the allowed calls
            controller = getattr(tune_controller, "_tune_controller", tune_controller)
            controller.checkpoint(force=True, wait=True)  # in storage before a trial starts
        return super().choose_trial_to_run(tune_controller)


class SavedFifo(_SavedBeforeStart, FIFOScheduler):
    """FIFO (every trial to its last epoch), trials saved before they start."""


class SavedAsha(_SavedBeforeStart, ASHAScheduler):
    """ASHA, trials saved before they start."""


def _trial(config: dict, arrays: Any, context: TrialContext) -> None:
    """One trial: `run_fold` on the search split, each epoch reported to Tune and MLflow."""
    import torch

    from raylab.runtime.tracking import NODE_TAG, Tracker
    from raylab.train.fold import run_fold
    from raylab.train.params import compute_dtype, split_params

    torch.set_num_threads(max(1, int(context.cpus)))
    params = {**context.fixed, **config}
    planned = split_params(context.arch, params)[1].epochs
    device = context.device or ("cuda" if context.gpus > 0 else "cpu")
    trial_id = tune.get_context().get_trial_id()
    if trial_id in context.replay:  # it ended before the driver was killed: not trained again
        replay(context.replay[trial_id])
        return
    number = trial_number(Path(tune.get_context().get_trial_dir()).name)
    tracker = Tracker(enabled=context.tracking_uri is not None, uri=context.tracking_uri)
    name = (trial_run_name(context.search_name, number, context.num_samples) if number
            else f"{context.search_name} {trial_id}")
    sampled = ", ".join(f"{k}={short(v)}" for k, v in config.items())
    tags = {"raylab.kind": "trial", "raylab.arch": context.arch, "raylab.trial_id": trial_id,
            "raylab.trial_number": number or "", "raylab.search": context.search_name,
            "raylab.device": device, NODE_TAG: ray.get_runtime_context().get_node_id(),
            NOTE_TAG: f"Trial {name} of the TPE search {context.search_name} ({context.arch}) "
                      f"on the search split (test speaker {context.test_speaker} left out): "
                      f"{sampled}"}
    last: dict[str, float] = {}

    def on_epoch(report: Any) -> None:
        metrics = {"epoch": report.epoch, "train_loss": report.train_loss, "lr": report.lr,
                   "epoch_seconds": report.seconds,
                   **{ours: report.val[theirs] for ours, theirs in VAL_KEYS.items()
                      if theirs in report.val}}
        last.update(metrics)
        run.log_metrics(epoch_metrics(report), step=report.epoch)
        tune.report(metrics)

    stopped = False
    with tracker.start_run(name, parent_run_id=context.parent_run_id, tags=tags) as run:
        dtype = compute_dtype(split_params(context.arch, params)[1], device)
        run.log_params({**params, "compute_dtype": dtype})
        if context.dataset:
            run.log_dataset(**context.dataset)
        try:
            fold = run_fold(context.arch, arrays, context.test_speaker, params, device, on_epoch,
                            evaluate_test=False)
            assert fold.split.test_speaker == context.test_speaker, "left the search split"
        except SystemExit:  # how ray.tune.report stops a trial (ASHA, or the search ending)
            stopped = True
            if last and last["epoch"] < planned:
                run.set_tags({"raylab.stopped_early": "true"})
        except Exception as err:
            run.set_tags({"raylab.error": f"{type(err).__name__}: {err}"})
            raise
    if stopped:
        raise SystemExit(0)


def trial_id_of(folder: str) -> str:
    """The trial id in a trial's folder name (`_trial_<id: 8 hex>_<count>_<params>_<date>`), for
    a trial cut off before its first report (its result has no `trial_id` then)."""
    found = re.search(r"_([0-9a-f]{8}(?:_\d{5})?)_\d+_", folder)
    return found.group(1) if found else folder


def _summarize(grid: Any, space: SearchSpace, fixed: dict, name: str, run_dir: Path,
               experiment_path: str, run_id: str | None, uri: str | None,
               experiment_id: str | None) -> SearchResult:
    """Tune's results as TrialSummary, in the order the searcher proposed the trials. A trial
    whose last result Tune holds without `done` (its saved state lagged behind the trial's end)
    takes the status raylab recorded as its last epoch arrived."""
    trials, ended = [], recorded_trials(run_dir)
    for r in grid:
        metrics = r.metrics or {}
        folder = Path(str(r.path)).name  # <trainable>_<trial id>_<count>_<params>_<date>
        trial_id = metrics.get("trial_id") or trial_id_of(folder)
        count = re.search(rf"_{re.escape(trial_id)}_(\d+)_", folder)
        if r.error is not None:
            status = "FAILED"
        elif metrics.get("done"):
            status = "FINISHED"
        else:
            status = ended.get(trial_id, {}).get("status", "UNFINISHED")
            status = status if status in ("FINISHED", "FAILED") else "UNFINISHED"
        error = str(r.error).strip().splitlines()[-1] if r.error is not None else None
        value = metrics.get(space.metric)
        number = int(count.group(1)) if count else None
        trials.append((number or len(trials) + 10**6, TrialSummary(
            trial_id, status, None if value is None else float(value),
            int(metrics.get("training_iteration") or 0), plain({**fixed, **(r.config or {})}),
            error, number)))
    ordered = tuple(t for _, t in sorted(trials, key=lambda pair: pair[0]))
    return SearchResult(name, space.arch, space.metric, space.mode, space.num_samples,
                        ordered, run_dir, experiment_path, None, run_id, uri, space.names,
                        experiment_id=experiment_id)


