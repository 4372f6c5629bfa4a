"""Ray, started in one place: `ray_session`, the only `ray.init` of raylab, and what the drivers
ask of the running cluster.

A command enters `ray_session(address, ...)` once, at its edge (the driver of `raylab tune`,
`raylab train`, `raylab features`, the `raylab doctor` check); everything below it finds Ray
running. Ray's workers get the host-allocator settings of `raylab.runtime.hostmem` in the job's
runtime_env.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import ray

from raylab.runtime import hostmem


@contextlib.contextmanager
def ray_session(address: str | None = None, *, log_to_driver: bool = False,
                logging_level: str | None = None, configure_logging: bool = True,
                include_dashboard: bool | None = None, object_store_memory: int | None = None,
                host_allocator: bool = True) -> Iterator[None]:
    """Join the running Ray (tests, notebooks), the cluster at `address` ("auto", HOST:PORT) or
    at `$RAY_ADDRESS`, or else start a new one on this machine. Without an address Ray itself
    would join any cluster that `ray start` (or a test) left running on the machine; raylab
    starts its own ("local"), as a command without `--address` promises. Ray is shut down on
    leaving only when it was started here. `log_to_driver` prints the workers' output here;
    `host_allocator` False keeps `hostmem`'s settings out of the workers' environment."""
    started = not ray.is_initialized()
    if started:
        address = address or os.environ.get("RAY_ADDRESS") or "local"
        if address != "local":
            from raylab.runtime.ray_capacity import check_token

            check_token(address)  # a refused token is one line, in a second
        options = {"logging_level": logging_level, "include_dashboard": include_dashboard,
                   "object_store_memory": object_store_memory}
        ray.init(address=address, log_to_driver=log_to_driver, configure_logging=configure_logging,
                 runtime_env=hostmem.ray_runtime_env() if host_allocator else None,
                 **{key: value for key, value in options.items() if value is not None})
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def tune_counts_memory_kills() -> None:
    """Make a trial that Ray's memory monitor kills that trial's failure, not the driver's end.

    When the monitor kills a Tune trial's process while the trial runs, the pending call answers
    `ray.exceptions.OutOfMemoryError`, which is not a `RayActorError`: Ray Tune's actor manager
    (`ray.air.execution._internal.actor_manager.RayActorManager._actor_task_failed`, Ray 2.5x)
    then raises "Caught unexpected exception" out of `Tuner.fit()`, whatever
    `FailureConfig.max_failures` says, and the search or ten-fold driver dies. The process is
    dead either way, so the error is passed on as the actor's death (a `RayActorError` carrying
    the monitor's message): Tune records the trial as failed and retries it within
    `max_failures`. Called by the two Tune users (the search, the ten-fold run) before they fit;
    applied once per process; written by hand because Ray has no setting for it."""
    from ray.air.execution._internal import actor_manager

    manager = actor_manager.RayActorManager
    original = manager._actor_task_failed
    if getattr(original, "counts_memory_kills", False):
        return

    def _actor_task_failed(self, tracked_actor_task, exception: Exception) -> None:
        if (isinstance(exception, ray.exceptions.OutOfMemoryError)  # not one a trial raised
                and not isinstance(exception, (ray.exceptions.RayActorError,
                                               ray.exceptions.RayTaskError))):
            exception = ray.exceptions.RayActorError(
                error_msg=f"killed by Ray's memory monitor: {exception}")
        return original(self, tracked_actor_task, exception)

    _actor_task_failed.counts_memory_kills = True
    manager._actor_task_failed = _actor_task_failed


def cluster_resources() -> dict[str, float]:
    """The running cluster's resources ({"CPU": ..., "GPU": ..., ...})."""
    return ray.cluster_resources()


def live_nodes() -> int:
    """Nodes of the running Ray cluster that are alive."""
    return sum(bool(node["Alive"]) for node in ray.nodes())


def cluster_gpus() -> float:
    """GPUs of the running Ray cluster, or the most its autoscaler may add, whichever is more."""
    from ray._private.state import state  # Ray Train's own pre-start check reads the same

    now = float(ray.cluster_resources().get("GPU", 0.0))
    try:
        most = float((state.get_max_resources_from_cluster_config() or {}).get("GPU", 0))
    except Exception:  # no autoscaler config (a local Ray), or an older GCS
        most = 0.0
    return max(now, most)


def is_running() -> bool:
    """Whether this process is already connected to a Ray."""
    return ray.is_initialized()


def ray_version() -> str:
    return ray.__version__
