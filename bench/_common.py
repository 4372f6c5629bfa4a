"""Shared helpers of the bench scripts: the machine's peak, timing with warm-up, FLOP counting.

Every throughput figure in bench/ is printed beside the peak FLOP/s measured in the same run on
the same device in the same dtype (a large matmul), because on a shared or throttled machine the
ratio to that peak is the figure that means something.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

from raylab.runtime import hostmem
from raylab.runtime.fsutil import write_atomic  # noqa: F401  (the one atomic writer, as C.write_atomic)

# as `raylab` itself does (its console script, Ray's workers): the figures are those of the real
# path; RAYLAB_HOST_ALLOCATOR=system measures glibc's defaults (bench/host_alloc.py compares them)
HOST_ALLOCATOR = "tuned" if hostmem.tune_this_process() else "system"

import torch  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent


def sync(device: str | torch.device) -> None:
    """Wait for queued kernels (CUDA launches are asynchronous; CPU is a no-op)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: str = "cpu", warmup: int = 1, repeats: int = 3,
              budget_s: float | None = None) -> list[float]:
    """Wall seconds of `repeats` calls of `fn` after `warmup` untimed ones.

    With `budget_s`, stops early (after at least one timed call) once the timed calls have used
    the budget, so one slow configuration cannot eat a whole bench run.
    """
    for _ in range(warmup):
        fn()
    sync(device)
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
        if budget_s is not None and sum(times) >= budget_s:
            break
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def measure_peaks(device: str = "cpu", dtype: torch.dtype = torch.float32,
                  size: int | None = None, repeats: int = 5) -> dict[str, float]:
    """Achievable dense FLOP/s in `dtype` of each GEMM library torch reaches on `device`.

    "mm": `torch.mm` (cuBLAS on GPUs, MKL on CPUs). On CPUs also "onednn": the same n×n×n
    product run as a 1×1 convolution, which oneDNN executes as a GEMM: on AMD CPUs MKL's sgemm
    takes a non-AVX-512 path at about half the speed oneDNN (which torch's convolutions use)
    reaches, so the mm figure alone would understate the peak and flatter every ratio.
    """
    is_cuda = torch.device(device).type == "cuda"
    if size is None:
        size = 8192 if is_cuda else 2048
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, generator=gen).to(dtype)
    b = torch.randn(size, size, device=device, generator=gen).to(dtype)
    inner = 10 if is_cuda else 1    # amortise launch latency
    flops = 2.0 * size ** 3 * inner

    def mm() -> None:
        for _ in range(inner):
            torch.mm(a, b)

    peaks = {"mm": flops / median(time_call(mm, device, warmup=2, repeats=repeats))}
    if not is_cuda:
        x, w = a.unsqueeze(0), b.unsqueeze(-1)              # (1, n, n), (n, n, 1)
        peaks["onednn"] = flops / median(time_call(
            lambda: torch.nn.functional.conv1d(x, w), device, warmup=2, repeats=repeats))
    return peaks


def measure_peak(device: str = "cpu", dtype: torch.dtype = torch.float32,
                 size: int | None = None, repeats: int = 5) -> float:
    """The machine's dense peak in `dtype`: the best of `measure_peaks`."""
    return max(measure_peaks(device, dtype, size, repeats).values())


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs that `FlopCounterMode` sees while `fn` runs (matmuls and convolutions only)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def cpu_model_name() -> str:
    """The CPU's model name, as `lscpu` reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str) -> str:
    """One line naming the hardware a figure was measured on."""
    if torch.device(device).type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB), torch {torch.__version__}"
    return (f"CPU {cpu_model_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch "
            f"threads, torch {torch.__version__}, host allocator {HOST_ALLOCATOR}, load average "
            f"{load_average()}")


def load_average() -> str:
    """1-minute load average: on a shared machine, how many other runnable processes there were."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "n/a"


def devices(requested: str) -> list[str]:
    """`auto` -> cpu, plus cuda when present; otherwise the one asked for."""
    if requested == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {requested}: no CUDA GPU is visible on this machine")
    return [requested]


def peak_dtypes(device: str) -> list[torch.dtype]:
    """The dtypes a run uses on `device`: fp32 on CPU; bf16 (autocast) and fp32 on GPUs."""
    return [torch.bfloat16, torch.float32] if torch.device(device).type == "cuda" else [torch.float32]


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def si(value: float, unit: str = "FLOP/s") -> str:
    """1.23e11 -> '123 GFLOP/s'."""
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"
