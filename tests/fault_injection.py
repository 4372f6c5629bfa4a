"""Faults injected by the tests, never by raylab: a driver signalled at a fixed point of a search,
a trial's process killed as the kernel's out-of-memory killer kills one (SIGKILL, no clean-up)."""
from __future__ import annotations

import os
import signal

SIGNALS = {"kill": signal.SIGKILL, "interrupt": signal.SIGINT}


def signal_after_record(name: str, nth: int = 1) -> None:
    """Send this process signal `name` (kill, interrupt) once, right after raylab recorded its
    `nth` trial as ended in the run folder: its last epoch reached the driver, Ray Tune has not yet
    saved it as finished, and its own process may not have closed its MLflow run."""
    from raylab.search import ray_record

    record_trial, pending, seen = ray_record.record_trial, [SIGNALS[name]], []

    def record_then_signal(*args, **kwargs):
        path = record_trial(*args, **kwargs)
        if path is not None:
            seen.append(path)
        if len(seen) == nth and pending:
            os.kill(os.getpid(), pending.pop())
        return path

    ray_record.record_trial = record_then_signal


def trial_killed_for_memory(config: dict, arrays, context) -> None:
    """raylab's search trial, except that the trial of the paper's point (batch 15, lr 0.006)
    SIGKILLs its own process once its first epoch is reported, as the OOM killer would."""
    from ray import tune

    from raylab.search.ray_tune import _trial

    if config.get("batch_size") == 15 and config.get("lr") == 0.006:
        report = tune.report

        def report_then_die(*args, **kwargs):
            report(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)

        tune.report = report_then_die
    _trial(config, arrays, context)


def trial_grows_until_killed(config: dict, arrays, context) -> None:
    """raylab's search trial, except that the trial of the paper's point (batch 15, lr 0.006),
    once its first epoch is reported, takes memory 100 MB at a time (written, so it is resident)
    until Ray's memory monitor kills it: the test sets the monitor's threshold a little above what
    the machine uses. At most 16 GB, so that a monitor that never fires cannot exhaust a host."""
    import time

    from ray import tune

    from raylab.search.ray_tune import _trial

    if config.get("batch_size") == 15 and config.get("lr") == 0.006:
        report = tune.report

        def report_then_grow(*args, **kwargs):
            report(*args, **kwargs)
            held = []
            for _ in range(160):
                held.append(bytearray(100_000_000))
                held[-1][::4096] = b"x" * len(range(0, 100_000_000, 4096))
                time.sleep(0.05)
            time.sleep(60)

        tune.report = report_then_grow
    _trial(config, arrays, context)


def fold_helper_killed(config: dict, helper: str, flag: str, when: str = "epoch") -> None:
    """raylab's fold worker loop, except that the first attempt of any fold, once it reported
    its first epoch (`when` "epoch") or its outputs ("outputs"), SIGKILLs a Ray Train helper's
    process as Ray's memory monitor kills one: the fold's `TrainController` (helper "controller")
    or this `RayTrainWorker` ("worker"). `flag`, a file, marks that it was done."""
    import ray.train
    from ray.train.v2._internal.execution.context import get_train_context

    from raylab.crossval import ray_train

    report = ray.train.report

    def report_then_kill(metrics: dict, *args, **kwargs):
        report(metrics, *args, **kwargs)
        if ("checkpoint" in kwargs if when == "outputs" else "epoch" in metrics) \
                and not os.path.exists(flag):
            open(flag, "w").close()
            pid = os.getpid() if helper == "worker" else ray.get(
                get_train_context().controller_actor.__ray_call__.remote(lambda _: os.getpid()))
            os.kill(pid, signal.SIGKILL)

    ray.train.report = report_then_kill
    ray_train.train_fold_worker(config)
