"""The distributed TPE search of the paper's section 3.3 on Ray Tune, tracked in MLflow.

A trial is one `run_fold` (plain torch) on the fixed search split: one fold's nine training
speakers, 80/20 into train and validation; the test speaker is never touched. HyperOptSearch (TPE)
proposes the configurations, the paper's values first; a ConcurrencyLimiter bounds the trials in
flight; FIFO by default (the paper trained every trial to the end), ASHA as an option. The
dataset's arrays are put into the Ray object store once and every trial reads them zero-copy.
An interrupted search continues under its name: Ray Tune restores the finished trials and the
searcher, so none runs twice and the total equals the budget. The ten-fold training
(`crossval_ray`) is the only other user of Ray Tune.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from raylab.errors import ConfigError, DataError
from raylab.runtime import hostmem
from raylab.runtime.capacity import check_store_reachable, clear_resource_requests
from raylab.runtime.settings import check_run_name, run_folder
from raylab.search.results import (SearchResult, TrialSummary, plain, write_best, write_json,
                                   write_text)
from raylab.search.space import (SearchSpace, default_space_file, dump_search_space, load_search_space,
                                 paper_values)

STORAGE_ENV = "RAYLAB_STORAGE"
SCHEDULERS = ("fifo", "asha")
TUNE_STATUS = {"TERMINATED": "FINISHED", "ERROR": "FAILED"}  # others: cut off by an interruption
# Our metric names -> the keys of `raylab.train.loop.EpochReport.val` (raylab.train.metrics.per_dimension).
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


def storage_root(results: Path) -> str:
    """Ray Tune's experiment storage: `$RAYLAB_STORAGE` (s3://, gs://, an NFS path) or results/ray."""
    return os.environ.get(STORAGE_ENV) or str(Path(results).resolve() / "ray")


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


def run_search(arch: str, data: str | None, space_file: str | Path | None = None, *,
               num_samples: int | None = None, gpus_per_trial: float | None = None,
               cpus_per_trial: float | None = None, max_concurrent: int | None = None,
               scheduler: str | None = None, seed: int | None = None, name: str | None = None,
               resume: bool = False, address: str | None = None, results: Path,
               track: bool = True, epochs: int | None = None, max_failures: int | None = None,
               device: str | None = None, callbacks: Sequence[Any] = (),
               say: Callable[[str], None] | None = print) -> SearchResult:
    """Run, or with `resume` continue, the TPE search `name` (default `<arch>-search`).

    Writes `<results>/<name>/{run.json, search_space.yaml, best.yaml}`. With `data` and
    `num_samples` both omitted: the demo corpus and the file's `demo:` budget. `callbacks` are
    extra Ray Tune callbacks, run in this (the driver) process. None means the default:
    scheduler fifo, seed 0, max_failures 2 (on `resume`: the search's own, and `say` gets one
    note naming the options given that a resumed search ignores).
    """
    from raylab.models import MODEL_NAMES

    if arch not in MODEL_NAMES:
        raise ConfigError(f"unknown network {arch!r}; expected one of {', '.join(MODEL_NAMES)}")
    name = name or f"{arch}-search"
    _check_options(name, scheduler, max_failures, epochs, num_samples, cpus_per_trial,
                   gpus_per_trial, max_concurrent)
    device = _check_device(device, gpus_per_trial)
    results = Path(results).resolve()
    run_dir = run_folder(results, name, "search")
    storage = storage_root(results)
    experiment_path = f"{storage.rstrip('/')}/{name}"
    from ray import tune

    restorable = tune.Tuner.can_restore(experiment_path)
    if resume:
        state = _resume_state(run_dir, experiment_path, restorable, arch, data, num_samples)
        space = load_search_space(run_dir / "search_space.yaml", arch)
        ignored = ignored_on_resume(state, space=space_file, epochs=epochs,
                                    max_concurrent=max_concurrent, max_failures=max_failures,
                                    scheduler=scheduler, seed=seed)
        if ignored and say is not None:
            say(f"note: {', '.join(ignored)} ignored on resume: the search continues with its "
                f"saved settings ({run_dir})")
        data, seed, scheduler = state["dataset"], state["seed"], state["scheduler"]
        max_failures = 2 if max_failures is None else max_failures  # Tune restores its own
    else:
        if restorable:  # a run.json without Tune state is a start that failed: replaced
            raise ConfigError(f"a search named {name!r} exists ({experiment_path}); continue it "
                              f"with --resume, or choose another --name")
        space = load_search_space(space_file or default_space_file(arch), arch)
        if data is None and num_samples is None:
            space = space.for_demo()
        if epochs is not None:
            space = space.with_fixed({"epochs": epochs})
        space = dataclasses.replace(space, num_samples=num_samples or space.num_samples,
                                    max_concurrent=max_concurrent or space.max_concurrent)
        if not space.params:
            raise ConfigError(f"{space.source}: every parameter is held fixed; nothing to search")
        _check_device(device, gpus_per_trial, space.resources.gpus_per_trial)
        state = None
        seed, scheduler = seed or 0, scheduler or "fifo"
        max_failures = 2 if max_failures is None else max_failures
    from raylab.data.demo_cache import ensure_demo_features, resolve_data

    demo = data is None
    data = resolve_data(data, results)
    data = data if "://" in data else str(Path(data).resolve())
    _init_ray(address)
    cpus, gpus = _trial_resources(space, cpus_per_trial, gpus_per_trial, local=address is None)
    _check_fit(cpus, gpus)
    if demo:
        ensure_demo_features(data, arch)
    _check_device(device, gpus)
    result = _execute(space, data, name, run_dir, storage, state, seed, scheduler, cpus,
                      gpus, results, track, max_failures, device, tuple(callbacks))
    return dataclasses.replace(result, address=address)


def _check_options(name: str, scheduler: str, max_failures: int, epochs: int | None,
                   num_samples: int | None, cpus: float | None, gpus: float | None,
                   max_concurrent: int | None) -> None:
    check_run_name(name)
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise ConfigError(f"--scheduler {scheduler!r}: expected one of {', '.join(SCHEDULERS)}")
    for flag, value in (("--max-failures", max_failures), ("--gpus-per-trial", gpus)):
        if value is not None and value < 0:
            raise ConfigError(f"{flag} {value}: expected 0 or more")
    for flag, value in (("--epochs", epochs), ("--num-samples", num_samples),
                        ("--max-concurrent", max_concurrent)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} {value}: expected 1 or more")
    if cpus is not None and cpus <= 0:
        raise ConfigError(f"--cpus-per-trial {cpus}: expected a number above 0")
    if gpus is not None and gpus > 1 and gpus != int(gpus):
        raise ConfigError(f"--gpus-per-trial {gpus}: expected a fraction up to 1 or a whole number")


def _check_device(device: str | None, *gpus: float | None) -> str | None:
    """`device` (None for auto); cuda needs a GPU share per trial: the first of `gpus` given."""
    if device in (None, "", "auto"):
        return None
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device!r}: expected cpu or cuda (Ray gives each trial its "
                          "GPUs), or none for the trials' resources to decide")
    share = next((g for g in gpus if g is not None), None)
    if device == "cuda" and share is not None and share <= 0:
        raise ConfigError(f"--device cuda with {share:g} GPUs per trial: trials get a GPU only "
                          "with --gpus-per-trial > 0 (or a search space's gpus_per_trial)")
    return device


def ignored_on_resume(state: dict, **given: Any) -> list[str]:
    """The options given (not None) that a resumed search does not honour: it keeps its saved
    space, epochs, concurrency and Tune failure settings, and its seed and scheduler unless the
    same are given again."""
    kept = {"seed": state.get("seed"), "scheduler": state.get("scheduler")}
    return [f"--{key.replace('_', '-')} {value}" for key, value in given.items()
            if value is not None and (key not in kept or str(value) != str(kept[key]))]


def _resume_state(run_dir: Path, experiment_path: str, restorable: bool, arch: str,
                  data: str | None, num_samples: int | None) -> dict:
    """run.json of the search to continue, checked against the options given now."""
    path = run_dir / "run.json"
    if not restorable or not path.exists():
        raise ConfigError(f"nothing to resume: no search state at {experiment_path} (and "
                          f"{path}); start the search without --resume")
    state = json.loads(path.read_text())
    if data is not None and "://" not in data:
        data = str(Path(data).resolve())
    for flag, given, stored in (("ARCH", arch, state["arch"]),
                                ("--data", data, state["dataset"]),
                                ("--num-samples", num_samples, state["num_samples"])):
        if given is not None and str(given) != str(stored):
            raise ConfigError(f"{path}: {flag} {given!r} differs from the interrupted search's "
                              f"{stored!r}; a search resumes with its own settings")
    return state


def _init_ray(address: str | None) -> None:
    """Join `address` (a cluster, or 'auto'), or start Ray on this machine with all its CPUs/GPUs."""
    import ray

    from raylab.runtime.capacity import auth_error

    if not ray.is_initialized():
        try:
            ray.init(address=address, logging_level="WARNING", log_to_driver=True,
                     runtime_env=hostmem.ray_runtime_env())
        except Exception as err:
            refused = auth_error(err, address)
            if refused is None:
                raise
            raise refused from None


def _check_fit(cpus: float, gpus: float) -> None:
    """Refuse trial resources no node holds (Ray would wait for them forever)."""
    from raylab.runtime.capacity import autoscaling, check_trial_fits, node_resources

    if not autoscaling():
        check_trial_fits(node_resources(), cpus, gpus)


def _trial_resources(space: SearchSpace, cpus: float | None, gpus: float | None,
                     local: bool) -> tuple[float, float]:
    """CPUs and GPUs per trial: the options, else the file's, fitted to a GPU-less local machine."""
    import ray

    have_cpus, have_gpus = ray.cluster_resources().get("CPU", 0), ray.cluster_resources().get("GPU", 0)
    if gpus is None:  # the file's GPU share is meant for GPU machines
        gpus = 0.0 if local and have_gpus == 0 else space.resources.gpus_per_trial
    elif gpus > 0 and local and have_gpus == 0:
        raise ConfigError(f"--gpus-per-trial {gpus}: this machine has no GPU visible to Ray")
    if cpus is None:
        cpus = min(space.resources.cpus_per_trial, have_cpus) if local \
            else space.resources.cpus_per_trial
    elif local and cpus > have_cpus:
        raise ConfigError(f"--cpus-per-trial {cpus}: this machine offers Ray {have_cpus:g} CPUs")
    return float(cpus), float(gpus)


def _execute(space: SearchSpace, data: str, name: str, run_dir: Path, storage: str,
             state: dict | None, seed: int, scheduler: str, cpus: float, gpus: float,
             results: Path, track: bool, max_failures: int, device: str | None,
             callbacks: tuple) -> SearchResult:
    import ray
    from ray import tune

    from raylab.runtime.tracking import Tracker, close_stale_children

    experiment_path = f"{storage.rstrip('/')}/{name}"
    fixed = {"seed": seed, **space.fixed}
    tracker = Tracker(results, enabled=track)
    check_store_reachable(tracker.uri, sum(bool(node["Alive"]) for node in ray.nodes()))
    arrays, test_speaker = _load_arrays(space.arch, data, fixed["seed"])
    arrays_ref = ray.put(arrays)  # once; each node fetches it once and its trials map the pages
    del arrays
    parent_id = state.get("mlflow_run_id") if state else None
    try:
        with tracker.start_run(name, tags={"raylab.kind": "search", "raylab.arch": space.arch,
                                           "raylab.run_dir": str(run_dir)},
                               run_id=parent_id) as parent:
            run_json = {"kind": "search", "arch": space.arch, "dataset": data,
                        "mlflow_run_id": parent.run_id, "num_samples": space.num_samples,
                        "name": name, "seed": seed, "scheduler": scheduler,
                        "metric": space.metric, "mode": space.mode,
                        "experiment_path": experiment_path, "test_speaker": test_speaker,
                        "complete": False}
            if state is None:
                write_text(run_dir / "search_space.yaml", dump_search_space(space))
                write_json(run_dir / "run.json", run_json)
                parent.log_params({"arch": space.arch, "dataset": data, "seed": seed,
                                   "scheduler": scheduler, "num_samples": space.num_samples,
                                   "metric": space.metric, "cpus_per_trial": cpus,
                                   "gpus_per_trial": gpus, "max_concurrent": space.max_concurrent,
                                   **{f"fixed.{k}": v for k, v in fixed.items()}})
                parent.log_artifact(run_dir / "search_space.yaml")
            context = TrialContext(space.arch, fixed, test_speaker, space.metric, cpus, gpus,
                                   device, tracker.uri, parent.run_id, name)
            trainable = tune.with_resources(
                tune.with_parameters(_trial, arrays=arrays_ref, context=context),
                {"cpu": cpus, "gpu": gpus})
            if state is None:
                tuner = _new_tuner(trainable, space, name, storage, seed, scheduler,
                                   max_failures, callbacks)
            else:
                recorded = {t.trial_id: TUNE_STATUS.get(t.status, "UNFINISHED")
                            for t in tune.ExperimentAnalysis(experiment_path).trials}
                _settle_children(tracker, parent.run_id, recorded)
                tuner = tune.Tuner.restore(experiment_path, trainable, resume_unfinished=True,
                                           resume_errored=False, restart_errored=False)
            try:
                with _legacy_output():
                    grid = tuner.fit()
            finally:
                clear_resource_requests()  # none left standing after Ctrl-C
            result = _summarize(grid, space, fixed, name, run_dir, experiment_path,
                                parent.run_id, tracker.uri)
            if result.best is not None:
                ended = sum(t.status != "UNFINISHED" for t in result.trials)
                best = write_best(run_dir, space.arch, space.metric, result.best,
                                  None if result.complete else (ended, space.num_samples))
                result = dataclasses.replace(result, best_file=best)
                parent.log_artifact(best)
                parent.log_metrics({f"best_{space.metric}": result.best.value})
            write_json(run_dir / "run.json", {**run_json, "complete": result.complete,
                                              "best_trial": getattr(result.best, "trial_id",
                                                                    None)})
            parent.set_tags({"raylab.complete": result.complete,
                             "raylab.trials_failed": sum(t.status == "FAILED"
                                                         for t in result.trials)})
            _settle_children(tracker, parent.run_id, {t.trial_id: t.status for t in result.trials})
            close_stale_children(tracker, parent.run_id)  # trials whose process was killed
            if not result.complete:
                raise _Interrupted  # the parent run ends KILLED, as after Ctrl-C
    except _Interrupted:
        pass
    return result


@contextlib.contextmanager
def _legacy_output() -> Iterator[None]:
    """Ray's CLIReporter (our columns) instead of its newer default output, during one fit."""
    before = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = before or "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)


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


class _Interrupted(KeyboardInterrupt):
    """Raised inside the parent run when Tune stopped early, so that MLflow records it KILLED."""


def _load_arrays(arch: str, data: str, seed: int) -> tuple[Any, str]:
    """The network's arrays of the whole dataset and the speaker the search never sees."""
    from raylab.data.dataset import load_dataset
    from raylab.models import model_class
    from raylab.train.fold import build_arrays
    from raylab.train.folds import check_no_leakage, search_split

    dataset = load_dataset(data, audio="waveform" in model_class(arch).inputs)
    split = search_split(dataset.speaker, seed)
    check_no_leakage(split, dataset.speaker)
    if len(split.val_idx) == 0:
        raise DataError(f"{data}: too few windows for a validation set "
                        f"({len(split.train_idx)} training windows)")
    return build_arrays(dataset, arch, waveform_dtype="int16"), split.test_speaker


def _new_tuner(trainable: Any, space: SearchSpace, name: str, storage: str, seed: int,
               scheduler: str, max_failures: int, callbacks: tuple) -> Any:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.hyperopt import HyperOptSearch

    searcher = HyperOptSearch(hyperopt_space(space), metric=space.metric, mode=space.mode,
                              points_to_evaluate=[dict(space.start)],
                              n_initial_points=space.n_initial_points, random_state_seed=seed)
    max_epochs = (space.param("epochs").high if "epochs" in space.names
                  else space.fixed.get("epochs") or paper_values(space.arch)["epochs"])
    schedule = (ASHAScheduler(time_attr="training_iteration", max_t=max_epochs, grace_period=1)
                if scheduler == "asha" else FIFOScheduler())
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


def _trial(config: dict, arrays: Any, context: TrialContext) -> None:
    """One trial: `run_fold` on the search split, each epoch reported to Tune and MLflow."""
    import ray
    import torch
    from ray import tune

    from raylab.runtime.tracking import NODE_TAG, Tracker
    from raylab.train.fold import run_fold
    from raylab.train.loop import split_params

    torch.set_num_threads(max(1, int(context.cpus)))
    params = {**context.fixed, **config}
    planned = split_params(context.arch, params)[1].epochs
    device = context.device or ("cuda" if context.gpus > 0 else "cpu")
    trial_id = tune.get_context().get_trial_id()
    tracker = Tracker(enabled=context.tracking_uri is not None, uri=context.tracking_uri)
    tags = {"raylab.kind": "trial", "raylab.arch": context.arch, "raylab.trial_id": trial_id,
            "raylab.search": context.search_name, "raylab.device": device,
            NODE_TAG: ray.get_runtime_context().get_node_id()}
    final = f"final_{context.metric}"
    last: dict[str, float] = {}

    def on_epoch(report: Any) -> None:
        metrics = {"epoch": report.epoch, "train_loss": report.train_loss, "lr": report.lr,
                   "epoch_seconds": report.seconds,
                   **{ours: report.val[theirs] for ours, theirs in VAL_KEYS.items()
                      if theirs in report.val}}
        last.update(metrics)
        run.log_metrics({**report.metrics(), **metrics}, step=report.epoch)
        if report.epoch == planned:  # before the report: a scheduler may end the trial there
            run.log_metrics({final: metrics[context.metric]})
        tune.report(metrics)

    stopped = False
    with tracker.start_run(f"{context.search_name}-{trial_id}", parent_run_id=context.parent_run_id,
                           tags=tags) as run:
        run.log_params(params)
        try:
            fold = run_fold(context.arch, arrays, context.test_speaker, params, device, on_epoch,
                            evaluate_test=False)
            assert fold.split.test_speaker == context.test_speaker, "left the search split"
        except SystemExit:  # how ray.tune.report stops a trial (ASHA, or the search ending)
            stopped = True
            if last and last["epoch"] < planned:
                run.set_tags({"raylab.stopped_early": "true"})
                run.log_metrics({final: last[context.metric]})
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
               experiment_path: str, run_id: str | None, uri: str | None) -> SearchResult:
    """Tune's results as TrialSummary, in the order the searcher proposed the trials."""
    trials = []
    for r in grid:
        metrics = r.metrics or {}
        folder = Path(str(r.path)).name  # <trainable>_<trial id>_<count>_<params>_<date>
        trial_id = metrics.get("trial_id") or trial_id_of(folder)
        count = re.search(rf"_{re.escape(trial_id)}_(\d+)_", folder)
        if r.error is not None:
            status = "FAILED"
        else:
            status = "FINISHED" if metrics.get("done") else "UNFINISHED"
        error = str(r.error).strip().splitlines()[-1] if r.error is not None else None
        value = metrics.get(space.metric)
        trials.append((int(count.group(1)) if count else len(trials) + 10**6, TrialSummary(
            trial_id, status, None if value is None else float(value),
            int(metrics.get("training_iteration") or 0), plain({**fixed, **(r.config or {})}),
            error)))
    ordered = tuple(t for _, t in sorted(trials, key=lambda pair: pair[0]))
    return SearchResult(name, space.arch, space.metric, space.mode, space.num_samples,
                        ordered, run_dir, experiment_path, None, run_id, uri, space.names)


