"""Runtime fixtures: one local Ray for the whole session, an MLflow store in a temporary folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from raylab.runtime import hostmem


ROOT = Path(__file__).resolve().parents[1]
# what a test's own raylab process must not inherit from the test session: its Ray, its MLflow
# store and its Ray storage are the session's
SESSION_VARIABLES = ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "RAYLAB_STORAGE")


def process_env(drop: tuple[str, ...] = SESSION_VARIABLES, **extra: str) -> dict[str, str]:
    """The environment for `python -m raylab` (or a test driver) in a process of its own: this
    one's without `drop`, the repository on PYTHONPATH, and `extra`."""
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return {**env, **extra}


def start_local_ray():
    """The session's local Ray: 2 CPUs, always a new instance (`address="local"`), never a cluster
    another process left running here (a test that joins another Ray starts this one again)."""
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, object_store_memory=512 * 1024 * 1024,
                 runtime_env=hostmem.ray_runtime_env())  # as raylab starts Ray
    return ray


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray with 2 CPUs, started once per test session (each start costs seconds)."""
    yield start_local_ray()
    import ray

    ray.shutdown()


@pytest.fixture
def results(tmp_path, monkeypatch):
    """A fresh results folder with its own SQLite MLflow store."""
    folder = tmp_path / "results"
    folder.mkdir()
    monkeypatch.setenv("RAYLAB_RESULTS", str(folder))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return folder


@pytest.fixture(scope="module")
def torch_one_thread():
    """Toy networks run many tiny ops: one thread is as fast, and immune to a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
