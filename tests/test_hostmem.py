"""The host allocator settings: what they set, where they reach, and that they stop page faults."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from raylab.cli import run
from raylab.errors import ConfigError
from raylab.runtime import hostmem

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="the settings are glibc's")

# a fresh process: the settings first (as the raylab console script does), then the malloc rounds in a thread
FAULTS = """
from raylab.runtime import hostmem
print(hostmem.tune_this_process())
from tests.test_hostmem import _second_malloc_faults
print(_second_malloc_faults())
"""
REPO = Path(__file__).resolve().parent.parent


def _faults(mode: str) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env[hostmem.MODE_ENV] = mode
    done = subprocess.run([sys.executable, "-c", FAULTS], env=env, cwd=REPO, capture_output=True,
                          text=True, check=True)
    applied, faults = done.stdout.split()
    return applied, int(faults)


@glibc
def test_tuned_allocator_reuses_large_blocks_without_page_faults():
    applied, tuned = _faults("tuned")
    if applied == "False":
        pytest.skip("this glibc refuses an mmap threshold this large")
    assert tuned < 50
    applied, system = _faults("system")
    assert applied == "False"
    assert system > 100  # 400 MB in 4 KB pages (~100 000 faults) or 2 MB huge pages (~200)


@glibc
def test_worker_env_leaves_the_users_own_settings(monkeypatch):
    for name in (*hostmem.GLIBC_ENV, "GLIBC_TUNABLES", hostmem.MODE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hostmem, "_refused", False)
    assert hostmem.worker_env() == {"MALLOC_ARENA_MAX": "1",
                                    "MALLOC_MMAP_THRESHOLD_": str(hostmem.LIMIT),
                                    "MALLOC_TRIM_THRESHOLD_": str(hostmem.LIMIT)}
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert "MALLOC_ARENA_MAX" not in hostmem.worker_env()
    assert hostmem.ray_runtime_env() == {"env_vars": {
        "MALLOC_MMAP_THRESHOLD_": str(hostmem.LIMIT), "MALLOC_TRIM_THRESHOLD_": str(hostmem.LIMIT)}}
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")
    assert hostmem.worker_env() == {"MALLOC_MMAP_THRESHOLD_": str(hostmem.LIMIT)}
    monkeypatch.setenv(hostmem.MODE_ENV, "system")
    assert hostmem.worker_env() == {} and hostmem.ray_runtime_env() is None


@glibc
def test_a_refused_threshold_changes_nothing(monkeypatch, caplog):
    """Old glibc releases refuse an mmap threshold above 32 MiB: then no setting is made, here
    or in the workers (one arena alone would only add lock contention)."""
    for name in (*hostmem.GLIBC_ENV, "GLIBC_TUNABLES", hostmem.MODE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hostmem, "_refused", False)
    calls = []

    class OldLibc:
        def mallopt(self, param, value):
            calls.append(param)
            return 0 if param == hostmem.M_MMAP_THRESHOLD else 1

    monkeypatch.setattr(hostmem.ctypes, "CDLL", lambda name: OldLibc())
    assert hostmem.tune_this_process() is False
    assert calls == [hostmem.M_MMAP_THRESHOLD]
    assert "glibc refused an mmap threshold" in caplog.text
    assert hostmem.worker_env() == {} and hostmem.tune_this_process() is False


def test_unknown_mode_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setenv(hostmem.MODE_ENV, "jemalloc")
    with pytest.raises(ConfigError, match="RAYLAB_HOST_ALLOCATOR='jemalloc': expected one of "
                                          "tuned, system"):
        hostmem.worker_env()
    assert run(["data", "info", "--help"]) == 1
    assert capsys.readouterr().err.strip() == (
        "raylab: error: RAYLAB_HOST_ALLOCATOR='jemalloc': expected one of tuned, system")


def test_ray_workers_are_started_with_the_settings(monkeypatch):
    """`raylab tune` and `raylab train` start Ray with the settings in the job's runtime_env."""
    import ray

    from raylab.runtime.ray_session import ray_session

    monkeypatch.delenv(hostmem.MODE_ENV, raising=False)
    seen = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.append(kw.get("runtime_env")))
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    with ray_session(None, log_to_driver=True, logging_level="WARNING"):  # as raylab tune
        pass
    with ray_session(None):  # as raylab train
        pass
    assert seen == [hostmem.ray_runtime_env()] * 2


def _second_malloc_faults() -> int:
    """Minor page faults of the second of two 400 MB malloc/touch/free rounds, in a new thread."""
    import ctypes
    import resource
    import threading

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    out = []

    def work() -> None:
        for _ in range(2):
            before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt  # this thread only
            p = libc.malloc(400 << 20)
            libc.memset(p, 1, 400 << 20)
            out.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
            libc.free(p)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    return out[1]


@glibc
def test_a_ray_worker_runs_with_the_settings(ray_local):
    """The session's Ray (tests/fixtures_runtime.py) is started the way raylab starts one; in its
    workers, as in the trial threads of Ray Tune and Ray Train, large blocks are reused."""
    @ray_local.remote
    def probe() -> tuple[str | None, int]:
        return os.environ.get("MALLOC_ARENA_MAX"), _second_malloc_faults()

    arena_max, faults = ray_local.get(probe.remote())
    assert arena_max == (os.environ.get("MALLOC_ARENA_MAX") or (
        "1" if hostmem.mode() == "tuned" else None))
    if hostmem.worker_env().keys() == hostmem.GLIBC_ENV.keys():  # all three are raylab's
        assert faults < 50
