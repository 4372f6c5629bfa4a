"""What the Ray cluster can hold, node by node, checked before anything is submitted.

A Tune trial's resources form one bundle, which must fit a single node: a cluster of three 1-CPU
nodes has 3 CPUs in total but holds no trial of 2 CPUs, and Ray then waits forever. These
functions read each alive node's total resources (`ray.nodes()`) and say what fits; with an
autoscaler (a cluster config with node types) nodes may be added, so nothing is refused.
(The SQLite-on-a-cluster rule, `check_store_reachable`, is the tracking store's: runtime/tracking.)
"""
from __future__ import annotations

import math
from typing import Sequence

import ray

from raylab.errors import ConfigError


def node_resources() -> list[dict[str, float]]:
    """The total resources of every alive node of the running Ray."""
    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def autoscaling() -> bool:
    """True when the cluster's autoscaler may add nodes (its config names resources)."""
    from ray._private.state import state

    try:
        return bool(state.get_max_resources_from_cluster_config())
    except Exception:  # no autoscaler config (a local Ray, cluster_utils), or an older GCS
        return False


def bundles_per_node(node: dict[str, float], cpus: float, gpus: float) -> int:
    """How many bundles of `cpus` CPUs and `gpus` GPUs one node holds at once."""
    counts = []
    for key, need in (("CPU", cpus), ("GPU", gpus)):
        if need > 0:
            counts.append(math.floor(node.get(key, 0.0) / need + 1e-9))
    return min(counts) if counts else 1_000_000


def check_trial_fits(nodes: Sequence[dict[str, float]], cpus: float, gpus: float,
                     cpu_flag: str = "--cpus-per-trial", gpu_flag: str = "--gpus-per-trial") -> None:
    """Refuse a bundle of `cpus`/`gpus` that no node holds, naming flags that fit one."""
    if not nodes or any(bundles_per_node(n, cpus, gpus) >= 1 for n in nodes):
        return
    largest = max(nodes, key=lambda n: (n.get("GPU", 0.0), n.get("CPU", 0.0)))
    fit_gpus = min(gpus, largest.get("GPU", 0.0))
    fit_cpus = min(cpus, largest.get("CPU", 0.0))
    if fit_cpus <= 0:
        fit_cpus = max(n.get("CPU", 0.0) for n in nodes)
    shapes = ", ".join(f"{n.get('CPU', 0):g} CPU/{n.get('GPU', 0):g} GPU" for n in nodes)
    raise ConfigError(f"{gpu_flag} {gpus:g} {cpu_flag} {cpus:g}: no node of the Ray cluster "
                      f"holds that (nodes: {shapes}); these fit: {gpu_flag} {fit_gpus:g} "
                      f"{cpu_flag} {fit_cpus:g}")


def worker_groups(nodes: Sequence[dict[str, float]], workers: int, cpus: float,
                  gpus: float) -> int:
    """How many groups of `workers` workers (each `cpus`/`gpus`) the nodes hold at once."""
    return sum(bundles_per_node(n, cpus, gpus) for n in nodes) // max(workers, 1)


def auth_error(err: BaseException, address: str | None) -> ConfigError | None:
    """A one-line error for a refused Ray token (ray.exceptions.AuthenticationError, the GCS's
    InvalidAuthToken/Unauthenticated status), else None."""
    text = f"{type(err).__name__}: {err}"
    markers = ("AuthenticationError", "InvalidAuthToken", "UNAUTHENTICATED", "Unauthenticated",
               "auth token", "authentication token")
    if not any(m.lower() in text.lower() for m in markers):
        return None
    return ConfigError(f"Ray cluster {address or 'auto'} refused this process's token "
                       f"({type(err).__name__}): set RAY_AUTH_TOKEN, or the file "
                       "~/.ray/auth_token (RAY_AUTH_TOKEN_PATH), to the cluster's token "
                       "(ray get-auth-token on its head)")


def clear_resource_requests() -> None:
    """Withdraw every standing autoscaler request (Ray Train's own included), so that an ended or
    interrupted run leaves the cluster free to scale down."""
    try:
        from ray.autoscaler.sdk import request_resources

        request_resources(bundles=[])
    except Exception:  # not connected, or no autoscaler to ask: nothing stands
        pass

