"""Host-memory allocator settings that halve the CPU training time of the waveform networks.

torch's CPU tensors come from glibc `malloc`. Each of ELoR's activations is hundreds of MB (conv1's
output at batch 15 is 15 x 40 x 95 921 floats, 230 MB), far above glibc's mmap threshold, so every
one is a fresh `mmap` that the kernel fills page by page on first touch and a `munmap` when freed:
about 56 000 page faults per tensor, per layer, per step. Three glibc settings make those blocks
stay in the heap and be reused instead: one arena for all threads (Ray Tune and Ray Train run the
training function in a thread of their own, and only the main arena can hold blocks this size), an
mmap threshold above the largest activation, and a trim threshold as large, so freed memory is not
handed back. `bench/host_alloc.py` measures the effect: ELoR trains about 2x faster on the CPU, at the
price of a peak resident size about 1 GB higher, because freed blocks are kept for reuse.

Written by hand because torch exposes no CPU caching allocator and jemalloc/tcmalloc are not on the
package index; `mallopt` is the documented glibc interface for exactly this. Elsewhere (macOS,
musl) nothing is changed. `RAYLAB_HOST_ALLOCATOR=system` turns it off; settings the user has made
(MALLOC_* variables, glibc.malloc.* in GLIBC_TUNABLES) are left as they are. A Ray that was
already running when raylab joined it keeps its workers' settings (start it with
`runtime_env=raylab.runtime.hostmem.ray_runtime_env()`).
"""
from __future__ import annotations

import ctypes
import logging
import os
import platform

from raylab.errors import ConfigError

MODE_ENV = "RAYLAB_HOST_ALLOCATOR"
MODES = ("tuned", "system")
LIMIT = 2**31 - 1  # bytes: mallopt takes a C int; above any activation of batch <= 64
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # <malloc.h>
GLIBC_ENV = {  # variable read by glibc at process start: (its tunable, value, mallopt parameter)
    "MALLOC_MMAP_THRESHOLD_": ("glibc.malloc.mmap_threshold", LIMIT, M_MMAP_THRESHOLD),
    "MALLOC_ARENA_MAX": ("glibc.malloc.arena_max", 1, M_ARENA_MAX),
    "MALLOC_TRIM_THRESHOLD_": ("glibc.malloc.trim_threshold", LIMIT, M_TRIM_THRESHOLD),
}
_refused = False  # this process's glibc refused the threshold (old releases cap it at 32 MiB)

log = logging.getLogger(__name__)


def mode() -> str:
    """`$RAYLAB_HOST_ALLOCATOR`: `tuned` (the default) or `system`."""
    chosen = os.environ.get(MODE_ENV, "").strip().lower() or "tuned"
    if chosen not in MODES:
        raise ConfigError(f"{MODE_ENV}={chosen!r}: expected one of {', '.join(MODES)}")
    return chosen


def _is_glibc() -> bool:
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _ours() -> dict[str, tuple[str, int, int]]:
    """The settings raylab may make: none when off, off glibc or refused here; not those the
    user set (as MALLOC_* or in GLIBC_TUNABLES)."""
    if mode() != "tuned" or not _is_glibc() or _refused:
        return {}
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return {name: spec for name, spec in GLIBC_ENV.items()
            if name not in os.environ and spec[0] not in tunables}


def worker_env() -> dict[str, str]:
    """Environment variables for Ray's worker processes (`runtime_env={"env_vars": ...}`).

    Empty when tuning is off, off glibc, or when this process's glibc refused the threshold
    (the cluster's nodes are assumed to run the same image); a variable the user has set is left
    out (theirs is inherited by the workers as it is).
    """
    return {name: str(value) for name, (_, value, _) in _ours().items()}


def tune_this_process() -> bool:
    """Apply the settings to the running process through `mallopt`; True if they were applied.

    Call it before the process starts threads: a thread that has already taken an arena of its
    own keeps it. The threshold goes first: if glibc refuses it, nothing is changed (one arena
    without it would only add lock contention). `raylab`'s console script calls this first
    thing; Ray's workers get `worker_env()` instead.
    """
    global _refused
    settings = _ours()
    if not settings:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    for name, (_, value, param) in settings.items():
        if not libc.mallopt(param, value):
            if name == "MALLOC_MMAP_THRESHOLD_":
                _refused = True
                log.warning("glibc refused an mmap threshold of %d bytes; host allocator left "
                            "at its defaults", value)
            return False
    return True


def ray_runtime_env() -> dict | None:
    """`ray.init(runtime_env=...)` carrying `worker_env()`, or None when there is nothing to carry."""
    env = worker_env()
    return {"env_vars": env} if env else None
