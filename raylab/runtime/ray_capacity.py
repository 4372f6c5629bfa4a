"""What the Ray cluster can hold, node by node, checked before anything is submitted.

A Tune trial's resources form one bundle, which must fit a single node: a cluster of three 1-CPU
nodes has 3 CPUs in total but holds no trial of 2 CPUs, and Ray then waits forever. These
functions read each alive node's total resources (`ray.nodes()`) and say what fits; with an
autoscaler (a cluster config with node types) nodes may be added, so nothing is refused.
(The SQLite-on-a-cluster rule, `check_store_reachable`, is the tracking store's: runtime/tracking.)
"""
from __future__ import annotations

import contextlib
import math
import os
import socket
from typing import Iterator, Sequence

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


class TokenRefused(ConfigError):
    """The Ray cluster refused this process's token (or its lack of one)."""

    def __init__(self, address: str | None, reason: str) -> None:
        self.reason = reason
        super().__init__(f"Ray cluster {address or 'auto'} refused this process's token "
                         f"({reason}): set RAY_AUTH_TOKEN, or the file ~/.ray/auth_token "
                         "(RAY_AUTH_TOKEN_PATH), to the cluster's token (ray get-auth-token on "
                         "its head), and RAY_AUTH_MODE=token")


def auth_error(err: BaseException, address: str | None) -> TokenRefused | None:
    """A one-line error for a refused Ray token (ray.exceptions.AuthenticationError, the GCS's
    InvalidAuthToken/Unauthenticated status), else None."""
    if isinstance(err, TokenRefused):
        return err
    text = f"{type(err).__name__}: {err}"
    markers = ("AuthenticationError", "InvalidAuthToken", "UNAUTHENTICATED", "Unauthenticated",
               "auth token", "authentication token")
    if not any(m.lower() in text.lower() for m in markers):
        return None
    return TokenRefused(address, "InvalidAuthToken" if "InvalidAuthToken" in text
                        else type(err).__name__)


def check_token(address: str, timeout: float = 5.0) -> None:
    """Raise TokenRefused, in about a second, when the cluster at HOST:PORT refuses this
    process's token: `ray.init` retries for about 20 s, then says only that it cannot connect,
    the GCS's InvalidAuthToken left in Ray's log lines. Anything else (nobody answers, another
    kind of address) is left to `ray.init` to report."""
    from ray._raylet import GcsClient
    from ray.exceptions import AuthenticationError

    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError:
        return
    try:
        with _native_stderr_quiet():  # the GCS client's own warning line of the same refusal
            GcsClient(address=address).internal_kv_get(b"raylab-token-check", None,
                                                        timeout=timeout)
    except AuthenticationError as err:
        raise auth_error(err, address) from None
    except Exception:  # not a GCS, or not answering in time: ray.init says what is wrong
        return


@contextlib.contextmanager
def _native_stderr_quiet() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the block (Ray's C++ logs bypass sys.stderr)."""
    saved, quiet = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(quiet, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(quiet)


def clear_resource_requests() -> None:
    """Withdraw every standing autoscaler request (Ray Train's own included), so that an ended or
    interrupted run leaves the cluster free to scale down."""
    try:
        from ray.autoscaler.sdk import request_resources

        request_resources(bundles=[])
    except Exception:  # not connected, or no autoscaler to ask: nothing stands
        pass

