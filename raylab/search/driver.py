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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from raylab.errors import ConfigError
from raylab.report.layout import RUN_FILE, SPACE_FILE, RunRecord
from raylab.runtime import console
from raylab.runtime.ray_session import cluster_resources, ray_session
from raylab.runtime.settings import check_run_name, run_folder, storage_root
from raylab.search.ray_tune import can_restore, execute
from raylab.search.results import SearchResult
from raylab.search.space import SearchSpace, default_space_file, load_search_space

SCHEDULERS = ("fifo", "asha")


@dataclass(frozen=True)
class SearchOptions:
    """How a search runs, beside what it searches (the network, the data); Ray's `TuneConfig`
    is the model. The options of `raylab tune`; None means the default: the search-space file's
    value, else scheduler fifo, seed 0, max_failures 2 (on `resume`: the search's own).

    Attributes:
        space_file: the search-space YAML (default: `search_spaces/<arch>.yaml`).
        num_samples: the trial budget (default: the file's; its `demo:` budget when the data
            is omitted too).
        gpus_per_trial, cpus_per_trial: resources of a trial (default: the file's, fitted to a
            local machine without a GPU).
        max_concurrent: trials in flight at most (default: the file's).
        scheduler: "fifo" (every trial to its last epoch, the paper's) or "asha".
        seed: seeds TPE, the search split and training.
        name: the run name (default `<arch>-search`), its folder under the results.
        resume: continue the interrupted search `name` with its saved settings.
        address: the Ray cluster to join (default: a local Ray).
        track: MLflow runs (a parent, a child per trial).
        epochs: hold epochs fixed at this value.
        max_failures: retries of a failing trial before it is recorded failed.
        device: "cpu" or "cuda" (default: from the trials' resources).
    """

    space_file: str | Path | None = None
    num_samples: int | None = None
    gpus_per_trial: float | None = None
    cpus_per_trial: float | None = None
    max_concurrent: int | None = None
    scheduler: str | None = None
    seed: int | None = None
    name: str | None = None
    resume: bool = False
    address: str | None = None
    track: bool = True
    epochs: int | None = None
    max_failures: int | None = None
    device: str | None = None


def run_search(arch: str, data: str | None, options: SearchOptions = SearchOptions(), *,
               results: Path, callbacks: Sequence[Any] = (),
               say: Callable[[str], None] | None = console.say) -> SearchResult:
    """Run, or with `options.resume` continue, the TPE search `options.name`.

    Writes `<results>/<name>/{run.json, search_space.yaml, best.yaml}`. With `data` and
    `num_samples` both omitted: the demo corpus and the file's `demo:` budget. `callbacks` are
    extra Ray Tune callbacks, run in this (the driver) process. On resume `say` gets one note
    naming the options given that a resumed search ignores, and one when the search's Tune state
    predates raylab's record of ended trials.
    """
    space_file, num_samples = options.space_file, options.num_samples
    gpus_per_trial, cpus_per_trial = options.gpus_per_trial, options.cpus_per_trial
    max_concurrent, scheduler, seed = options.max_concurrent, options.scheduler, options.seed
    resume, address, track = options.resume, options.address, options.track
    epochs, max_failures, device = options.epochs, options.max_failures, options.device
    from raylab.models import MODEL_NAMES

    if arch not in MODEL_NAMES:
        raise ConfigError(f"unknown network {arch!r}; expected one of {', '.join(MODEL_NAMES)}")
    name = options.name or f"{arch}-search"
    _check_options(name, scheduler, max_failures, epochs, num_samples, cpus_per_trial,
                   gpus_per_trial, max_concurrent)
    device = _check_device(device, gpus_per_trial)
    results = Path(results).resolve()
    run_dir = run_folder(results, name, "search")
    storage = storage_root(results)
    experiment_path = f"{storage.rstrip('/')}/{name}"
    restorable = can_restore(experiment_path)
    if resume:
        state = _resume_state(run_dir, experiment_path, restorable, arch, data, num_samples)
        space = load_search_space(run_dir / SPACE_FILE, arch)
        ignored = ignored_on_resume(state.to_dict(), space=space_file, epochs=epochs,
                                    max_concurrent=max_concurrent, max_failures=max_failures,
                                    scheduler=scheduler, seed=seed)
        if ignored and say is not None:
            say(f"note: {', '.join(ignored)} ignored on resume: the search continues with its "
                f"saved settings ({run_dir})")
        data, seed, scheduler = state.dataset, state.seed, state.scheduler
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
    with _joined(address):
        cpus, gpus = _trial_resources(space, cpus_per_trial, gpus_per_trial, local=address is None)
        _check_fit(cpus, gpus)
        if demo:
            ensure_demo_features(data, arch)
        _check_device(device, gpus)
        result = execute(space, data, name, run_dir, storage, state, seed, scheduler, cpus, gpus,
                         results, track, max_failures, device, tuple(callbacks), say)
    return dataclasses.replace(result, address=address)


def _joined(address: str | None) -> contextlib.ExitStack:
    """The search's Ray session (the workers' output and Tune's status table on the driver, which
    `raylab.runtime.console.quiet` sends to the run's log; Ray's own logging at warnings),
    entered; a cluster that refuses this process's token is one line."""
    from raylab.runtime.ray_capacity import auth_error

    stack = contextlib.ExitStack()
    try:
        stack.enter_context(ray_session(address, log_to_driver=True, logging_level="WARNING"))
    except Exception as err:
        refused = auth_error(err, address)
        if refused is None:
            raise
        raise refused from None
    return stack


def _check_fit(cpus: float, gpus: float) -> None:
    """Refuse trial resources no node holds (Ray would wait for them forever)."""
    from raylab.runtime.ray_capacity import autoscaling, check_trial_fits, node_resources

    if not autoscaling():
        check_trial_fits(node_resources(), cpus, gpus)


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
                  data: str | None, num_samples: int | None) -> RunRecord:
    """run.json of the search to continue, checked against the options given now."""
    path = run_dir / RUN_FILE
    if not restorable or not path.exists():
        raise ConfigError(f"nothing to resume: no search state at {experiment_path} (and "
                          f"{path}); start the search without --resume")
    state = RunRecord.from_json(path.read_text())
    if data is not None and "://" not in data:
        data = str(Path(data).resolve())
    for flag, given, stored in (("ARCH", arch, state.arch), ("--data", data, state.dataset),
                                ("--num-samples", num_samples, state.num_samples)):
        if given is not None and str(given) != str(stored):
            raise ConfigError(f"{path}: {flag} {given!r} differs from the interrupted search's "
                              f"{stored!r}; a search resumes with its own settings")
    return state


def _trial_resources(space: SearchSpace, cpus: float | None, gpus: float | None,
                     local: bool) -> tuple[float, float]:
    """CPUs and GPUs per trial: the options, else the file's, fitted to a GPU-less local machine."""
    have = cluster_resources()
    have_cpus, have_gpus = have.get("CPU", 0), have.get("GPU", 0)
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


