"""The Ray side of a ten-fold run: the Tune trial that builds a fold's `TorchTrainer`, its worker
loop, and the driver-side callback that collects each finished fold.

The worker loop is a thin wrapper around `raylab.train.fold.run_fold`, the function `raylab train
--local` calls: it reads the dataset's arrays from Ray's object store (zero-copy on a node), wraps
the network for DDP and shards the training windows by rank when the fold has several workers,
checks the fold for leakage, reports every epoch to Ray Train, and on rank 0 writes the fold's
outputs (`save_fold_outputs` plus the fold file) and reports them as the run's checkpoint, which Ray
persists to the storage path. `FoldCollector`, a Tune callback in the driver, copies each fold's
checkpoint into `<run>/folds/<SPEAKER>/` the moment its trial completes, so an interrupted run
keeps every fold finished before the interruption.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
import ray
import ray.train
import ray.train.torch
from ray import tune
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY, TuneReportCallback

from raylab.data.dataset import filesystem_for
from raylab.errors import ConfigError, DataError
from raylab.report.layout import CHECKPOINT_FILE, METRICS_FILE, PREDICTIONS_FILE, SPLIT_FILE
from raylab.runtime.fsutil import replace_folder, temp_name, write_atomic
from raylab.train.folds import FoldSplit, check_no_leakage

_log = logging.getLogger(__name__)

# The Tune trial of a fold only waits on its TorchTrainer: it holds no CPU its workers need (a
# 0.01-CPU trial on a node of as many CPUs as a worker leaves no room for the worker, so folds
# deadlock) and sits on the head node, so losing another node fails workers only, which Ray Train
# retries (`--max-failures`). A bundle needs one non-zero resource: a sliver of the head's.
TRIAL_RESOURCES = {"cpu": 0, "custom_resources": {"node:__internal_head__": 0.001}}


@dataclass(frozen=True)
class FoldJob:
    """What every fold of a run shares; travels to the Tune trials with `tune.with_parameters`."""

    arch: str
    params: dict
    name: str
    arrays_ref: Any            # ray.ObjectRef of the ArraySet, put once by the driver
    storage: str
    workers: int = 1
    cpus: float = 1.0
    gpus: float = 0.0
    max_failures: int = 1
    tracking_uri: str | None = None
    experiment: str = "raylab"
    parent_run_id: str | None = None
    created: datetime | None = None  # when the run began: older fold outputs are not its own
    dataset: dict | None = None  # `raylab.data.dataset.dataset_record`, for MLflow


def fold_run_name(run: str, fold: str) -> str:
    """`elor-tenfold · Ses03F`: the ten-fold run's name and the fold's test speaker."""
    return f"{run} · {fold}"


def check_fold(split: FoldSplit, speakers: np.ndarray, predictions) -> None:
    """The leakage guard: no test-speaker window in training or validation, parts disjoint, and
    every test prediction from the test speaker. Raises DataError."""
    check_no_leakage(split, speakers)
    if predictions is not None:
        strangers = sorted(set(predictions["speaker"]) - {split.test_speaker})
        if strangers:
            raise DataError(f"leakage: fold {split.test_speaker} has test predictions of speakers "
                            f"{', '.join(strangers)}")


def mark_fold_checked(folder: Path) -> Path:
    """Record in the fold file (`split.json`, written by `save_fold_outputs`) that the leakage
    guard passed in the worker."""
    path = folder / SPLIT_FILE
    doc = {**json.loads(path.read_text()), "leakage_check": "passed"}
    return write_atomic(path, json.dumps(doc, indent=2) + "\n")


def train_fold_worker(config: dict) -> None:
    """Ray Train worker loop of one fold (runs on every worker of the fold's TorchTrainer)."""
    from raylab.report.metric_names import epoch_metrics, test_metrics
    from raylab.runtime.tracking import ARCH_TAG, KIND_TAG, NODE_TAG, NOTE_TAG, Tracker
    from raylab.train.fold import run_fold, save_fold_outputs
    from raylab.train.params import compute_dtype, split_params

    job: FoldJob = config["job"]
    speaker: str = config["fold"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    done = ray.train.get_checkpoint()
    if done is None or not _written_since(done, job.created):
        done = uploaded_outputs(job, speaker)  # by an attempt whose controller died
    if done is not None:
        report_again(done, speaker, rank)  # rank 0 reports outputs only once the fold is trained
        return
    arrays = ray.get(job.arrays_ref)
    device = str(ray.train.torch.get_device()) if job.gpus > 0 else "cpu"
    tracker = Tracker(enabled=rank == 0 and job.tracking_uri is not None, uri=job.tracking_uri)
    extra: dict[str, Any] = {}
    if world > 1:  # DDP over the workers, each taking its shard of every epoch's batches
        # With the heads updated in turn (the paper's), each backward leaves one head without
        # gradients, which DDP accepts only with unused-parameter detection.
        alternate = split_params(job.arch, job.params)[1].update == "alternate"
        extra = {"shard": (rank, world), "prepare_model": lambda model: ray.train.torch.prepare_model(
            model, parallel_strategy_kwargs={"find_unused_parameters": alternate})}
    note = (f"Fold {speaker} of the ten-fold run {job.name} ({job.arch}): test speaker {speaker}, "
            f"the other speakers 80/20 into training and validation. Its files: the run "
            f"folder's folds/{speaker}/.")
    with tracker.start_run(fold_run_name(job.name, speaker), job.experiment,
                           parent_run_id=job.parent_run_id,
                           tags={KIND_TAG: "crossval-fold", ARCH_TAG: job.arch,
                                 "raylab.fold": speaker, NOTE_TAG: note,
                                 NODE_TAG: ray.get_runtime_context().get_node_id()}) as run:
        cfg = split_params(job.arch, job.params)[1]
        run.log_params({**job.params, "fold": speaker, "workers": world,
                        "compute_dtype": compute_dtype(cfg, device)})
        if job.dataset:
            run.log_dataset(**job.dataset)

        def on_epoch(report) -> None:
            run.log_metrics(epoch_metrics(report), step=report.epoch)
            ray.train.report({"fold": speaker, "epoch": report.epoch, **report.metrics()})

        result = run_fold(job.arch, arrays, speaker, job.params, device, on_epoch, **extra)
        check_fold(result.split, arrays.info["speaker"], result.test_predictions)
        final = {"fold": speaker, **result.flat_test_metrics()}
        run.log_metrics(test_metrics(result.test_metrics), step=len(result.history))
        if rank != 0:
            ray.train.report(final)
            return
        with tempfile.TemporaryDirectory(prefix=f"raylab-{speaker}-") as tmp:
            save_fold_outputs(result, tmp)
            mark_fold_checked(Path(tmp))
            # The fold's folder is the files' one copy (the driver installs it from the
            # checkpoint reported below); MLflow gets the figures to look at, and the
            # network once, in the parent run's model.
            for path in sorted(Path(tmp).glob("*.png")):
                run.log_artifact(path)
            ray.train.report(final, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def report_again(done: ray.train.Checkpoint, speaker: str, rank: int) -> None:
    """A retried attempt of a fold that an earlier attempt finished (Ray Train restarts the
    worker group when any worker or node fails, even after rank 0 reported the outputs): report
    the outputs again rather than train the fold twice, with no second MLflow run."""
    with tempfile.TemporaryDirectory(prefix=f"raylab-{speaker}-") as tmp:
        done.to_directory(tmp)
        test = json.loads((Path(tmp) / METRICS_FILE).read_text())["test"]
        final = {"fold": speaker, **{f"test_{dim}_{key}": value for dim, metrics in test.items()
                                     for key, value in metrics.items()}}
        ray.train.report(final, checkpoint=ray.train.Checkpoint.from_directory(tmp)
                         if rank == 0 else None)


def uploaded_outputs(job: FoldJob, fold: str) -> ray.train.Checkpoint | None:
    """The outputs of `fold` that an earlier attempt of this run uploaded to the fold's Train run
    whole, newest first, when Ray Train does not hand them over: the attempt's controller died
    before it registered them, and a new TorchTrainer (`fold_trial`) knows only what was."""
    filesystem = filesystem_for(job.storage)[0]
    for path in fold_checkpoints(job.storage, job.name, fold, job.created):
        if _whole(filesystem, path):
            return ray.train.Checkpoint(path, filesystem)
    return None


def _whole(filesystem: Any, path: str) -> bool:
    """Whether a fold's checkpoint folder holds every file the fold writes (an upload cut off
    by a death may hold some)."""
    import pyarrow.fs as pafs

    names = {info.base_name for info in filesystem.get_file_info(pafs.FileSelector(path))}
    return {CHECKPOINT_FILE, METRICS_FILE, PREDICTIONS_FILE, SPLIT_FILE} <= names


def fold_checkpoints(storage: str, name: str, fold: str, since: datetime | None) -> list[str]:
    """The checkpoint folders of `fold`'s Train run in `storage` written since `since` (all
    when None), newest first."""
    import pyarrow.fs as pafs

    filesystem, root = filesystem_for(storage)
    found = filesystem.get_file_info(pafs.FileSelector(f"{root.rstrip('/')}/{name}-{fold}",
                                                       allow_not_found=True))
    return [info.path for info in sorted(found, key=lambda info: info.base_name, reverse=True)
            if info.type == pafs.FileType.Directory and info.base_name.startswith("checkpoint_")
            and (since is None or _at_or_after(_written_at(filesystem, info.path), since))]


def _written_since(checkpoint: ray.train.Checkpoint, since: datetime | None) -> bool:
    """Whether the checkpoint was written by this run (a run of the same name that was deleted
    may have left its own in the storage)."""
    if since is None:
        return True
    return _at_or_after(_written_at(checkpoint.filesystem, checkpoint.path), since)


def _at_or_after(mtime: datetime | None, since: datetime) -> bool:
    return mtime is not None and mtime >= since


def _written_at(filesystem: Any, path: str) -> datetime | None:
    """When a checkpoint folder was written: its own time, or on an object store (whose
    "folders" have none) its oldest file's; None when nothing says (then it is not trusted)."""
    import pyarrow.fs as pafs

    mtime = filesystem.get_file_info(path).mtime
    if mtime is None:
        files = filesystem.get_file_info(pafs.FileSelector(path, recursive=True,
                                                           allow_not_found=True))
        times = [info.mtime for info in files if info.mtime is not None]
        mtime = min(times) if times else None
    return mtime


def fold_trial(config: dict, job: FoldJob, worker: Callable[[dict], None]) -> None:
    """Ray Tune trial of one fold: build the fold's TorchTrainer around `worker` (the worker
    loop, `train_fold_worker`) and fit it (Train V2 idiom).

    Ray Train retries the fold when a worker dies, not when its controller does (Ray's memory
    monitor may kill either; the workers die with their controller): then the trainer is built
    again, under the same Train run, at most `--max-failures` times, each new trainer allowed
    `--max-failures` less the controllers lost so far of worker retries. The new workers
    find the fold's outputs when an earlier attempt reported them (`report_again`), so a fold is
    never trained twice."""
    speaker = config["fold"]
    resources = {"CPU": job.cpus, **({"GPU": job.gpus} if job.gpus > 0 else {})}
    for controllers_lost in range(job.max_failures + 1):
        trainer = TorchTrainer(
            worker, train_loop_config={"job": job, "fold": speaker},
            scaling_config=ray.train.ScalingConfig(num_workers=job.workers, use_gpu=job.gpus > 0,
                                                   resources_per_worker=resources),
            run_config=ray.train.RunConfig(
                name=f"{job.name}-{speaker}", storage_path=job.storage,
                failure_config=ray.train.FailureConfig(
                    max_failures=job.max_failures - controllers_lost),
                checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
                logging_config=ray.train.LoggingConfig(log_level="WARNING"),  # FoldCollector
                callbacks=[TuneReportCallback()]))
        try:
            trainer.fit()
            return
        except (ray.exceptions.ActorDiedError, ray.exceptions.OutOfMemoryError) as err:
            # the controller's process died: killed (ActorDiedError), or by Ray's memory
            # monitor, which may answer the waiting call with OutOfMemoryError instead; not an
            # unreachable one (ActorUnavailableError: it may still run) nor an error it raised
            if controllers_lost == job.max_failures \
                    or isinstance(err, ray.exceptions.RayTaskError):
                raise
            _log.warning("fold %s: its Ray Train controller died (%s); building it again "
                         "(%d of --max-failures %d controller restarts left after this one)",
                         speaker, short_error(err), job.max_failures - controllers_lost - 1,
                         job.max_failures)


class FoldCollector(tune.Callback):
    """Driver side: each completed fold's checkpoint copied into `<run>/folds/<SPEAKER>/` whole;
    the run's bar (`bar`: epochs done over all folds, with ETA; folds done and the latest epoch
    as its postfix) and one line per fold event to `say` (the log file, under
    `raylab.runtime.console.quiet`)."""

    def __init__(self, folds_dir: Path, storage: str, epochs: int,
                 say: Callable[[str], None] | None = print, bar: Any = None,
                 folds: int = 0) -> None:
        self.folds_dir, self.storage, self.epochs = Path(folds_dir), storage, epochs
        self.printer, self.bar, self.folds = say, bar, folds
        self.errors: dict[str, str] = {}  # folds that ended without outputs here
        self.epochs_done: dict[str, int] = {}
        self.ended: list[str] = []
        self.failed: set[str] = set()

    def __getstate__(self) -> dict:
        # Tune pickles its callbacks with the experiment state; printer and bar stay here.
        return {**self.__dict__, "printer": None, "bar": None}

    def say(self, line: str) -> None:
        if self.printer is not None:
            self.printer(line)

    def show(self, fold: str, epochs: int, text: str) -> None:
        """Count `epochs` done for `fold` and put `text` after the folds done on the bar."""
        self.epochs_done[fold] = max(self.epochs_done.get(fold, 0), epochs)
        if self.bar is not None:
            failed = f", {len(self.failed)} failed" if self.failed else ""
            self.bar.note(f"folds done {len(self.ended) - len(self.failed)}/{self.folds}{failed}"
                          f" · {text}")
            self.bar.set(sum(self.epochs_done.values()))

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        self.say(f"fold {trial.config['fold']}: started")

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if "epoch" in result and "test_arousal_war" not in result:  # an epoch, not the final report
            self.say(f"fold {result['fold']}: epoch {result['epoch']}/{self.epochs}  loss "
                     f"{result['train_loss']:.3f}  val WAR arousal "
                     f"{result.get('val_arousal_war', float('nan')):.3f} valence "
                     f"{result.get('val_valence_war', float('nan')):.3f}")
            self.show(result["fold"], int(result["epoch"]),
                      f"{result['fold']} epoch {result['epoch']}/{self.epochs}")

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        fold = trial.config["fold"]
        self.say(f"fold {fold}: failed")
        self.failed.add(fold)
        self.ended.append(fold)
        self.show(fold, self.epochs, f"{fold} failed")

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        fold, result = trial.config["fold"], trial.last_result or {}
        path = result.get(CHECKPOINT_PATH_KEY)
        self.ended.append(fold)
        if not path:
            self.errors[fold] = "the fold finished without reporting its outputs"
        else:
            filesystem = filesystem_for(self.storage)[0]
            try:
                install_fold(path, filesystem, self.folds_dir, fold)
            except (OSError, DataError) as err:
                self.errors[fold] = f"copying its outputs from {path} failed: {err}"
            else:
                with contextlib.suppress(OSError):  # the fold's folder is its copy; Ray's is spent
                    filesystem.delete_dir(path)
        if fold in self.errors:
            self.failed.add(fold)
            self.show(fold, self.epochs, f"{fold} failed")
            return
        self.say(f"fold {fold}: done  test WAR arousal {result['test_arousal_war']:.3f} valence "
                 f"{result['test_valence_war']:.3f}  UAR arousal {result['test_arousal_uar']:.3f} "
                 f"valence {result['test_valence_uar']:.3f}")
        self.show(fold, self.epochs, f"{fold} test WAR a {result['test_arousal_war']:.3f} "
                                     f"v {result['test_valence_war']:.3f}")


def install_fold(path: str, filesystem, folds_dir: Path, fold: str) -> Path:
    """Download a fold's checkpoint folder and rename it into place (replacing an older one)."""
    folds_dir.mkdir(parents=True, exist_ok=True)
    tmp = folds_dir / temp_name(fold)
    try:
        ray.train.Checkpoint(path, filesystem).to_directory(str(tmp))
        if not (tmp / PREDICTIONS_FILE).exists():
            raise DataError(f"{path}: no {PREDICTIONS_FILE} in the fold's checkpoint")
        return replace_folder(tmp, folds_dir / fold)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def recover_folds(storage: str, name: str, folds: list[str], folds_dir: Path,
                  since: datetime) -> list[str]:
    """Folds whose Train run reported its outputs (rank 0's checkpoint, written only once the fold
    is done) after `since` but were never copied into `folds_dir`: the driver died in between.
    Installs them and returns their names, so that a resumed run does not train them again."""
    filesystem = filesystem_for(storage)[0]
    recovered = []
    for fold in folds:
        for path in fold_checkpoints(storage, name, fold, since):
            try:
                install_fold(path, filesystem, folds_dir, fold)
            except (OSError, DataError):
                continue  # half written when the run died: the fold is trained again
            recovered.append(fold)
            break
    return recovered


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*:")
_NOISE = ("File ", "^", "[Rank", "ray::", "Traceback", "Training failed due to")


def short_error(err: BaseException) -> str:
    """The line of a trial's error that says what went wrong: the last `SomeError: ...` line of
    the worker's traceback, else the last line that is not traceback plumbing."""
    lines = [_ANSI.sub("", line).strip() for line in str(err).splitlines()]
    lines = [line for line in lines if line and not line.startswith(_NOISE)]
    raised = [line for line in lines if _EXCEPTION_LINE.match(line)]
    return (raised or lines or [type(err).__name__])[-1]


def fold_concurrency(job: FoldJob, folds: int, address: str | None) -> int:
    """How many folds to start at once: as many worker groups as the alive nodes hold, node by
    node (a fold trial waiting for its workers still costs a controller and processes); with an
    autoscaler all, so that pending folds make it add nodes. Refuses workers no node holds."""
    from raylab.runtime.ray_capacity import (autoscaling, check_trial_fits, node_resources,
                                             worker_groups)

    if address and autoscaling():
        return folds
    nodes = node_resources()
    check_trial_fits(nodes, job.cpus, job.gpus, "--cpus-per-worker", "--gpus-per-worker")
    groups = worker_groups(nodes, job.workers, job.cpus, job.gpus)
    if groups < 1:
        raise ConfigError(f"--workers-per-fold {job.workers}: the Ray cluster holds "
                          f"{worker_groups(nodes, 1, job.cpus, job.gpus)} workers of "
                          f"{job.cpus:g} CPU/{job.gpus:g} GPU at once; pass fewer")
    return int(max(1, min(folds, groups)))


def train_folds(job: FoldJob, arrays, folds: list[str], folds_dir: Path, epochs: int,
                address: str | None = None,
                say: Callable[[str], None] | None = print) -> dict[str, str]:
    """Put the arrays in the object store once, run one Tune trial per fold (concurrently as
    resources allow) and collect the finished folds; {fold: error} of the failed ones. Runs in
    the caller's `ray_session`."""
    from raylab.runtime.console import progress
    from raylab.runtime.ray_capacity import clear_resource_requests

    from raylab.runtime.ray_session import tune_counts_memory_kills

    tune_counts_memory_kills()
    concurrency = fold_concurrency(job, len(folds), address)
    job = dataclasses.replace(job, arrays_ref=ray.put(arrays))
    bar = progress(len(folds) * epochs, f"train {job.name} ({len(folds)} folds)", "epochs")
    collector = FoldCollector(folds_dir, job.storage, epochs, say, bar, len(folds))
    # the worker loop is read here, at call time, and travels to the trials with the job
    trial = tune.with_parameters(fold_trial, job=job, worker=train_fold_worker)
    tuner = tune.Tuner(
        tune.with_resources(trial, TRIAL_RESOURCES),
        param_space={"fold": tune.grid_search(list(folds))},
        tune_config=tune.TuneConfig(max_concurrent_trials=concurrency),
        run_config=tune.RunConfig(name=job.name, storage_path=job.storage,
                                  callbacks=[collector], verbose=0,
                                  # a fold's failures are retried below the trial, by Ray Train
                                  # (a worker) and `fold_trial` (the controller), within
                                  # --max-failures; a retried trial would multiply those
                                  failure_config=tune.FailureConfig(max_failures=0)))
    try:
        grid = tuner.fit()
    finally:
        bar.close()
        clear_resource_requests()
    failed = dict(collector.errors)
    for result in grid:
        if result.error is not None:
            failed[result.config["fold"]] = short_error(result.error)
    return failed
