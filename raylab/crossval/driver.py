"""Ten-fold leave-one-speaker-out training on Ray Train, pooled as in the paper (sections 3.2, 4.1).

Each fold (one test speaker) is one `TorchTrainer` run of `raylab.train.fold.run_fold`, the function
`raylab train --local` calls, data-parallel with DDP over `workers_per_fold` workers when more than
one; folds run concurrently as far as the cluster's resources allow, one Ray Tune trial per fold
(`raylab.crossval.ray_train`). The dataset's arrays are put in Ray's object store once, here.

The run folder `<results>/<name>/` (default name `<arch>-tenfold`) holds `run.json`, `config.yaml`,
`folds/<SPEAKER>/` (checkpoint.pt, predictions.parquet, metrics.json, split.json — the fold file —
and confusion PNGs), and once folds finished `summary.json`, `table.md` and the pooled confusion
matrices. Ray's own state goes to `$RAYLAB_STORAGE` (s3://, gs://, NFS) or `<results>/ray`.

Faults: a fold whose workers fail is retried `max_failures` times by Ray Train, then recorded in
`run.json` under `failed`; the other folds finish and are pooled. Resume: a fold counts as done when
its `predictions.parquet` exists (a fold's folder is renamed into place whole), so `resume=True`
trains exactly the folds without one, with the configuration saved in `config.yaml`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from raylab.errors import ConfigError
from raylab.report.layout import (CONFIG_FILE, FOLDS_DIR, RUN_FILE, SUMMARY_FILE, TABLE_FILE,
                                  RunRecord, confusion_file)
from raylab.report.table5 import finished_folds, read_json, render_run, summarize_run
from raylab.runtime.fsutil import write_atomic
from raylab.runtime.settings import demo_data_dir, run_folder, storage_root


@dataclass
class CrossvalResult:
    """What a ten-fold run did: folds trained now, skipped (done before), failed, unfinished."""

    name: str
    run_dir: Path
    run: dict  # run.json
    trained: list[str]
    skipped: list[str]
    failed: dict[str, str]
    unfinished: list[str]
    summary: dict | None
    notes: list[str] = field(default_factory=list)
    tracking_uri: str | None = None
    address: str | None = None  # the Ray cluster it ran on (--address), for the resume hint
    experiment_id: str | None = None  # the MLflow experiment of its runs

    @property
    def exit_code(self) -> int:
        """1 when a fold failed or did not finish (the pooled figures then cover fewer folds)."""
        return 1 if self.failed or self.unfinished else 0

    def render(self) -> str:
        lines = [render_run(self.run, self.summary) if self.summary else
                 f"# {self.name}: no finished fold yet", *self.notes]
        lines.append(f"folds trained now: {', '.join(self.trained) or 'none'}"
                     + (f"; already done (skipped): {', '.join(self.skipped)}" if self.skipped else ""))
        for fold, message in sorted(self.failed.items()):
            lines.append(f"FAILED fold {fold}: {message}")
        if self.unfinished:
            lines.append(f"unfinished folds (interrupted): {', '.join(self.unfinished)}")
        if self.exit_code:
            lines.append(f"the figures above leave these folds out; finish them with "
                         f"`raylab train {self.run['arch']} --name {self.name} --resume"
                         + (f" --address {self.address}" if self.address else "") + "`")
        lines.append(f"run folder: {self.run_dir}")
        if self.tracking_uri and self.experiment_id:
            from raylab.runtime.tracking import ui_lines

            lines += ui_lines(self.tracking_uri, self.experiment_id)
        return "\n".join(lines) + "\n"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _dataset_id(data: str | os.PathLike) -> str:
    text = str(data)
    return text if "://" in text else str(Path(text).expanduser().resolve())


def _check_resources(workers: int, gpus: float | None, cpus: float, max_failures: int,
                     device: str) -> None:
    rules = [("--workers-per-fold", workers, workers >= 1, "an integer >= 1"),
             ("--gpus-per-worker", gpus, gpus is None or gpus >= 0, "a number >= 0"),
             ("--cpus-per-worker", cpus, cpus > 0, "a number > 0"),
             ("--max-failures", max_failures, max_failures >= 0, "an integer >= 0")]
    for flag, value, ok, expected in rules:
        if not ok:
            raise ConfigError(f"{flag} {value}: expected {expected}")
    device = str(device or "auto")
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device {device!r}: the ten-fold run takes auto, cpu or cuda (Ray "
                          "Train gives each worker its own GPU); cuda:N only with --local")
    if device == "cuda" and gpus is not None and gpus <= 0:
        raise ConfigError(f"--device cuda with --gpus-per-worker {gpus:g}: Ray Train workers get "
                          "a GPU only with --gpus-per-worker > 0")
    if device == "cpu" and gpus is not None and gpus > 0:
        raise ConfigError(f"--device cpu with --gpus-per-worker {gpus}: the workers would hold "
                          "GPUs they do not use; drop one of the two")


def worker_gpus(gpus: float | None, device: str, cluster_gpus: float) -> float:
    """GPUs per worker: `gpus` when given, else 1 when the cluster (or its autoscaler) has GPUs
    and `device` is not cpu, else 0, as `raylab.search.driver` fits trials to the cluster."""
    if gpus is not None:
        return float(gpus)
    if device == "cpu":
        return 0.0
    if cluster_gpus > 0:
        return 1.0
    if device == "cuda":
        raise ConfigError("--device cuda: the Ray cluster has no GPU, now or through its "
                          "autoscaler; use --device cpu or auto")
    return 0.0


def _choose_folds(folds: Sequence[str] | None, counts: dict[str, int], data: str) -> list[str]:
    if not folds:
        return sorted(counts)
    unknown = [f for f in folds if f not in counts]
    if unknown:
        have = ", ".join(f"{s} ({n})" for s, n in sorted(counts.items()))
        raise ConfigError(f"--folds {','.join(unknown)}: no such speaker in {data}; speakers "
                          f"(windows): {have}")
    return list(dict.fromkeys(folds))


def _previous(run_dir: Path, resume: bool, arch: str,
              data: str | None) -> tuple[RunRecord, dict] | None:
    """The earlier run's run.json and config when resuming; an error when one exists otherwise."""
    if not (run_dir / RUN_FILE).exists():
        return None
    run = read_json(run_dir / RUN_FILE)
    if not resume:
        done = len(finished_folds(run_dir))
        raise ConfigError(f"{run_dir} already holds a ten-fold run ({done} of "
                          f"{len(run.get('folds', []))} folds done); pass --resume to finish it "
                          "or --name for a new run")
    if run.get("kind") != "crossval" or run.get("arch") != arch:
        raise ConfigError(f"--resume: {run_dir / RUN_FILE} is a {run.get('kind')} run of "
                          f"{run.get('arch')!r}, not a ten-fold run of {arch!r}")
    given = _dataset_id(data) if data is not None else None
    if given == _dataset_id(demo_data_dir(run_dir.parent)):
        given = None  # the CLI fills in the demo dataset when --data is omitted: take the run's
    if given is not None and given != run.get("dataset"):
        raise ConfigError(f"--resume: {run_dir.name} was trained on {run.get('dataset')}, not "
                          f"{given}; pass that --data (or none)")
    return RunRecord.from_dict(run), yaml.safe_load((run_dir / CONFIG_FILE).read_text())


@dataclass
class _Plan:
    """A run resolved before Ray starts: folder, dataset, parameters, folds to train."""

    arch: str
    name: str
    run_dir: Path
    params: dict
    folds: list[str]
    todo: list[str]
    skipped: list[str]
    config: dict
    run: RunRecord
    arrays: Any
    notes: list[str]
    resumed: bool
    dataset: dict  # `raylab.data.dataset.dataset_record`


@dataclass(frozen=True)
class CrossvalOptions:
    """How a ten-fold run runs, beside what it trains (the network, the data, the parameters);
    Ray's `ScalingConfig` is the model. The options of `raylab train` without `--local`.

    Attributes:
        folds: the test speakers to train (default: all of the dataset's).
        name: the run name (default `<arch>-tenfold`), its folder under the results.
        resume: finish the run `name`: its saved dataset, parameters and folds are used and only
            the folds without predictions are trained.
        workers_per_fold: DDP workers per fold; each takes `batch_size / workers_per_fold`.
        gpus_per_worker: None: 1 when the Ray cluster has GPUs (`worker_gpus`), else 0.
        cpus_per_worker: CPUs of each worker.
        max_failures: retries of a fold whose workers fail (by Ray Train), then it is recorded
            in `run.json` under `failed`.
        address: the Ray cluster to join (default: `$RAY_ADDRESS` or a local Ray).
        track: MLflow runs (a parent, a child per fold).
        seed: when given, overrides `params["seed"]` (split and weights).
        device: "auto", "cpu" or "cuda".
    """

    folds: Sequence[str] | None = None
    name: str | None = None
    resume: bool = False
    workers_per_fold: int = 1
    gpus_per_worker: float | None = None
    cpus_per_worker: float = 1.0
    max_failures: int = 1
    address: str | None = None
    track: bool = True
    seed: int | None = None
    device: str = "auto"

    def resources(self) -> dict:
        """What every fold gets, as `config.yaml` records it."""
        return {"workers_per_fold": self.workers_per_fold, "gpus_per_worker": self.gpus_per_worker,
                "cpus_per_worker": self.cpus_per_worker, "max_failures": self.max_failures}


def run_crossval(arch: str, data: str | os.PathLike | None = None, params: dict | None = None,
                 options: CrossvalOptions = CrossvalOptions(), *, results: Path | None = None,
                 progress: Callable[[str], None] | None = print) -> CrossvalResult:
    """Train `arch` on every (or the given) leave-one-speaker-out fold on Ray Train, then pool.

    `params` is the flat parameter dict (`split_params`; the paper's Tables 1-4 fill the rest).
    `progress` receives one line per fold event (started, epoch, done, failed); the console
    shows a bar of the epochs done over all folds (`raylab.runtime.console.progress`).
    """
    from raylab.runtime.settings import results_dir
    from raylab.runtime.tracking import (ARCH_TAG, KIND_TAG, NOTE_TAG, RUN_DIR_TAG, Tracker,
                                         close_stale_children)
    from raylab.train.params import recorded_settings, split_params

    results = results_dir(results)
    workers_per_fold, gpus_per_worker = options.workers_per_fold, options.gpus_per_worker
    cpus_per_worker, max_failures = options.cpus_per_worker, options.max_failures
    address, device = options.address, options.device
    _check_resources(workers_per_fold, gpus_per_worker, cpus_per_worker, max_failures, device)
    plan = _plan(arch, data, params, options.folds, options.name, options.resume, options.seed,
                 results, options.resources())
    if plan.resumed and plan.todo:
        _collect_uncollected(plan)
    run, run_dir = plan.run, plan.run_dir
    tracker = Tracker(results, enabled=options.track)
    failed: dict[str, str] = {}
    from raylab.runtime.ray_session import ray_session

    # Ray only when a fold is left to train; the cluster decides the GPUs and the store's reach
    with ray_session(address, log_to_driver=True) if plan.todo else contextlib.nullcontext():
        gpus = _fit_to_cluster(tracker, gpus_per_worker, device) if plan.todo else 0.0
        # what the workers compute in, known once the cluster gave the GPUs
        settings = recorded_settings(split_params(arch, plan.params)[1],
                                     "cuda" if gpus > 0 else "cpu")
        if plan.todo:
            plan.config.update(compute_dtype=settings["compute_dtype"])
            for key, value in settings.items():
                setattr(run, key, value)
            write_atomic(run_dir / CONFIG_FILE, yaml.safe_dump(plan.config, sort_keys=False))
        profile = plan.dataset["profile"]
        note = (f"Ten-fold leave-one-speaker-out training of {arch} on {plan.dataset['name']} "
                f"({profile['windows']} windows, evaluator {profile['evaluator']}): one child "
                f"run per fold ({', '.join(plan.folds)}), the pooled test figures here. "
                f"Folder: {run_dir}")
        with tracker.start_run(plan.name, tags={KIND_TAG: "crossval", ARCH_TAG: arch,
                                                RUN_DIR_TAG: str(run_dir), NOTE_TAG: note},
                               run_id=_reopen(tracker, run.mlflow_run_id)) as parent:
            run.mlflow_run_id = parent.run_id
            close_stale_children(tracker, parent.run_id)  # fold runs of a killed attempt
            write_atomic(run_dir / RUN_FILE, run.to_json())
            if not plan.resumed:
                parent.log_params({**plan.params, **settings, "folds": ",".join(plan.folds),
                                   "dataset": run.dataset, "workers_per_fold": workers_per_fold,
                                   "gpus_per_worker": gpus})
                parent.log_config(plan.config)
                parent.log_dataset(**plan.dataset)
            if plan.todo:
                from raylab.crossval.ray_train import FoldJob, train_folds

                job = FoldJob(arch=arch, params=plan.params, name=plan.name, arrays_ref=None,
                              storage=plan.config["storage"], workers=workers_per_fold,
                              cpus=cpus_per_worker, gpus=gpus, max_failures=max_failures,
                              tracking_uri=tracker.uri, parent_run_id=parent.run_id,
                              created=datetime.fromisoformat(run.created),
                              dataset=plan.dataset)
                failed = train_folds(job, plan.arrays, plan.todo, run_dir / FOLDS_DIR,
                                     plan.config["resolved"]["train"]["epochs"], address, progress)
            finished = finished_folds(run_dir)
            unfinished = [f for f in plan.todo if f not in finished and f not in failed]
            run.failed, run.completed = failed, [f for f in plan.folds if f in finished]
            run.status, run.updated = "incomplete" if failed or unfinished else "finished", _now()
            write_atomic(run_dir / RUN_FILE, run.to_json())
            summary = summarize_run(run_dir) if run.completed else None
            if summary:
                _log_parent(parent, run_dir, summary)
            if run.completed and parent.enabled:  # the ensemble: the checkpoints' one MLflow copy
                from raylab.predict.mlflow_model import log_model
                from raylab.predict.runs import fold_checkpoints

                log_model(parent, fold_checkpoints(run_dir))
            parent.set_tags({"raylab.failed_folds": ",".join(sorted(failed)) or "none",
                             "raylab.collapsed_folds": ",".join(sorted((summary or {}).get(
                                 "collapsed") or {})) or "none"})
            close_stale_children(tracker, parent.run_id)  # workers of a lost node or attempt
            parent.end_as(parent_status(failed, unfinished))
    return CrossvalResult(plan.name, run_dir, run.to_dict(), [f for f in plan.todo if f in finished],
                          plan.skipped, failed, unfinished, summary, plan.notes, tracker.uri,
                          address, parent.experiment_id)


def _collect_uncollected(plan: _Plan) -> None:
    """On resume: folds that finished in Ray Train after the previous driver died, before it
    copied their outputs, are collected from the storage instead of trained again."""
    from raylab.crossval.ray_train import recover_folds

    found = recover_folds(plan.config["storage"], plan.name, plan.todo,
                          plan.run_dir / FOLDS_DIR, datetime.fromisoformat(plan.run.created))
    if found:
        plan.todo = [f for f in plan.todo if f not in found]
        plan.skipped += found
        plan.notes.append(f"resume: fold(s) {', '.join(found)} finished before the interruption; "
                          "their outputs were collected from the storage, not trained again")


def parent_status(failed: dict, unfinished: list) -> str | None:
    """How the ten-fold parent run ends: KILLED when folds were cut off (Ctrl-C), FAILED when a
    fold failed, else FINISHED (None)."""
    if unfinished:
        return "KILLED"
    return "FAILED" if failed else None


def _fit_to_cluster(tracker, gpus: float | None, device: str) -> float:
    """Inside the Ray session: refuse a store the other nodes cannot reach, resolve the GPUs."""
    from raylab.runtime.ray_session import cluster_gpus, live_nodes
    from raylab.runtime.tracking import check_store_reachable

    check_store_reachable(tracker.uri, live_nodes())
    return worker_gpus(gpus, str(device or "auto"), cluster_gpus())


def _plan(arch, data, params, folds, name, resume, seed, results: Path,
          resources: dict) -> _Plan:
    """Resolve everything and write config.yaml and run.json; every user error surfaces here."""
    from raylab.data.dataset import dataset_record, load_dataset, read_meta
    from raylab.data.demo_cache import resolve_data
    from raylab.models import model_class
    from raylab.train.fold import build_arrays
    from raylab.train.params import split_params, worker_batch_size

    model_class(arch)
    name = name or f"{arch}-tenfold"
    run_dir = run_folder(results, name, "crossval")
    previous = _previous(run_dir, resume, arch, data)
    notes = []
    if previous:
        record, saved_config = previous
        saved = dict(saved_config["params"])
        given = {**(params or {}), **({"seed": seed} if seed is not None else {})}
        if split_params(arch, given) != split_params(arch, saved):
            notes.append("resume: the run's saved parameters (config.yaml) are used; the ones "
                         "given now are ignored")
        params, data, seed = saved, record.dataset, None
        folds = folds or record.folds
    elif resume:
        notes.append(f"resume: no earlier run named {name}; started a new one")
    params = {**(params or {}), **({"seed": seed} if seed is not None else {})}
    model_kwargs, train_config = split_params(arch, params)
    worker_batch_size(train_config.batch_size, resources["workers_per_fold"])  # before Ray starts
    data = _dataset_id(resolve_data(str(data) if data else None, results, arch))
    meta = read_meta(data)
    dataset = load_dataset(data, audio="waveform" in model_class(arch).inputs)
    counts = {s: int((dataset.speaker == s).sum()) for s in dataset.speakers}
    folds = _choose_folds(folds, counts, data)
    done = set(finished_folds(run_dir))
    arrays = build_arrays(dataset, arch, waveform_dtype="int16")  # int16: half the object store
    config = {"arch": arch, "dataset": data, "params": params, "folds": folds,
              "resolved": {"model": model_kwargs, "train": dataclasses.asdict(train_config)},
              **resources, "storage": storage_root(results)}
    earlier = previous[0] if previous else None
    run = RunRecord("crossval", name, arch, data, evaluator=meta.get("evaluator"),
                    corpus=meta.get("corpus"), windows=int(meta.get("windows", len(dataset))),
                    folds=folds, fold_windows={f: counts[f] for f in folds}, status="running",
                    created=(earlier.created if earlier else None) or _now(), updated=_now(),
                    mlflow_run_id=earlier.mlflow_run_id if earlier else None)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
    write_atomic(run_dir / RUN_FILE, run.to_json())
    return _Plan(arch, name, run_dir, params, folds, [f for f in folds if f not in done],
                 [f for f in folds if f in done], config, run, arrays, notes, previous is not None,
                 dataset_record(dataset))


def _reopen(tracker, run_id: str | None) -> str | None:
    """The earlier parent run's id when it is still in the store (a resumed run continues it)."""
    if not (tracker.enabled and run_id):
        return None
    try:
        tracker.client.get_run(run_id)
    except Exception:  # deleted, or another store: the resumed run gets a new parent run
        return None
    return run_id


def _log_parent(parent, run_dir: Path, summary: dict) -> None:
    """Pooled metrics, the table and the pooled confusion matrices (PNG) on the parent run."""
    from raylab.report.metric_names import pooled_metrics

    parent.log_metrics(pooled_metrics(summary))
    for path in (*sorted(run_dir.glob(confusion_file("*", pooled=True))), run_dir / TABLE_FILE,
                 run_dir / SUMMARY_FILE, run_dir / RUN_FILE, run_dir / CONFIG_FILE):
        parent.log_artifact(path)
