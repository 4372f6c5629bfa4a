"""Training throughput of each network through the real `raylab.train.loop.fit`, as % of peak.

For each network (elor, lom, ftr, elor_ftr), update mode (alternate, joint) and batch size
(15, 64), on the CPU and (when present) the GPU in bf16 autocast and fp32: `fit` runs one epoch
over a synthetic dataset of (warm-up + steps) batches of full-size windows, with no validation set;
`on_batch` time stamps give the seconds per batch. The model's FLOPs per training window
(`raylab.models.flops`) turn that into achieved FLOP/s, printed beside the dense peak of the same device
in the same dtype, measured by a large matmul just before each configuration. On CPUs the
process CPU time per window (all threads) is printed too: on a shared machine it moves far less
than wall time (CPU-ms/window ÷ threads ≈ the wall time the machine would give if it were idle).

Usage: python bench/train_step.py [--quick] [--device auto|cpu|cuda] [--steps N] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

from raylab import DIMENSIONS  # noqa: E402
from raylab.models import MODEL_NAMES, build_model  # noqa: E402
from raylab.models.flops import model_flops  # noqa: E402
from raylab.train.loop import ArraySet, fit, predict  # noqa: E402
from raylab.train.params import UPDATES, TrainConfig  # noqa: E402


def synthetic_arrays(model: torch.nn.Module, n: int, seed: int = 0,
                     waveform_dtype: str = "int16") -> ArraySet:
    """`n` random full-size windows for `model`'s inputs; audio int16 as the search shares it
    (scaled per batch by `fit`), or float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    cfg, arrays = getattr(model, "module", model).config, {}
    for name in getattr(model, "module", model).inputs:
        if name == "waveform":
            audio = rng.integers(-8000, 8000, (n, cfg["input_samples"]), dtype=np.int16)
            arrays[name] = audio if waveform_dtype == "int16" else audio / np.float32(32768)
        elif name == "mfcc":
            arrays[name] = rng.standard_normal((n, cfg["mfcc_channels"], cfg["mfcc_frames"]),
                                               dtype=np.float32)
        else:
            arrays[name] = rng.standard_normal((n, cfg["num_features"]), dtype=np.float32)
    targets = {d: rng.integers(0, 5, n).astype(np.int64) for d in DIMENSIONS}
    return ArraySet(arrays, targets, np.arange(n))


class _Enough(Exception):
    """Raised from `on_batch` to end `fit` once the time budget is spent."""


def time_training(name: str, update: str, batch: int, device: str, amp: bool, steps: int,
                  warmup: int, model_kwargs: dict | None = None,
                  prepare=None, waveform_dtype: str = "int16",
                  budget_s: float | None = None) -> dict:
    """Seconds per training window of `fit` (median over batches on CPU; mean of a synchronised
    span on GPU, so queued kernels are not cut short), plus the first batch's seconds.

    `prepare(model) -> model` may transform the built network first (FFT convs, compile); the
    trained model is returned under "model". With `budget_s` (CPU), `fit` is stopped after the
    first timed batch that ends past the budget: a loaded machine still finishes the run.
    """
    torch.manual_seed(0)
    model = build_model(name, **(model_kwargs or {}))
    flops = model_flops(model, update, batch)
    if prepare is not None:
        model = prepare(model)
    data = synthetic_arrays(model, batch * (warmup + steps), waveform_dtype=waveform_dtype)
    cfg = TrainConfig(batch_size=batch, epochs=1, update=update, device=device, amp=amp)
    is_cuda = torch.device(device).type == "cuda"
    stamps: list[float] = []
    cpu_stamps: list[float] = []     # process CPU seconds (all threads): robust to other load

    def on_batch(done: int, total: int) -> None:
        if not is_cuda or done in (1, warmup, total):
            C.sync(device)
            stamps.append(time.perf_counter())
            cpu_stamps.append(time.process_time())
        if (budget_s is not None and not is_cuda and done > warmup
                and stamps[-1] - start > budget_s):
            raise _Enough

    start = time.perf_counter()
    try:
        fit(model, data, None, cfg, on_batch=on_batch)
    except _Enough:
        pass
    first = stamps[0] - start
    if is_cuda:
        per_batch = (stamps[-1] - stamps[-2]) / steps
    else:
        per_batch = C.median(list(np.diff(stamps)[warmup - 1:]))
    cpu_per_batch = C.median(list(np.diff(cpu_stamps)[warmup - 1:])) if not is_cuda else None
    return {"network": name, "update": update, "batch": batch, "device": device,
            "dtype": "bf16" if amp and is_cuda else "fp32", "s_per_window": per_batch / batch,
            "cpu_s_per_window": cpu_per_batch / batch if cpu_per_batch else None,
            "threads": torch.get_num_threads(),
            "first_batch_s": first, "flops_per_window": flops.train,
            "matmul_flops_per_window": flops.matmul_train, "timed_batches": len(stamps) - warmup
            if not is_cuda else steps, "load": C.load_average(), "model": model}


def time_evaluation(name: str, device: str, amp: bool, batch: int = 60, windows: int = 120,
                    model_kwargs: dict | None = None) -> dict[str, float]:
    """Wall and process-CPU seconds per window of `raylab.train.loop.predict` (validation passes
    run the same code), median of 3 after a warm-up."""
    torch.manual_seed(0)
    model = build_model(name, **(model_kwargs or {})).to(device)
    data = synthetic_arrays(model, windows)
    cpu: list[float] = []

    def call() -> None:
        tick = time.process_time()
        predict(model, data, batch_size=batch, device=device, amp=amp)
        cpu.append(time.process_time() - tick)

    times = C.time_call(call, device, warmup=1, repeats=3)
    return {"s": C.median(times) / windows, "cpu_s": C.median(cpu[1:]) / windows}


def default_steps(name: str, update: str, batch: int, peak: float, is_cuda: bool) -> int:
    """Timed batches: ≥ 3 (20 on GPUs), more for small networks so the timed span reaches ~1 s
    at 10 % of peak, within 200 batches and ~200 MB of synthetic data."""
    model = build_model(name)
    flops = model_flops(model, update, batch).train * batch
    window_bytes = sum(int(np.prod(shape)) * (2 if key == "waveform" else 4)
                       for key, shape in _input_shapes(model).items())
    by_time = math.ceil(1.0 / (flops / (0.1 * peak)))
    by_memory = int(2e8 // (batch * window_bytes))
    return max(20 if is_cuda else 3, min(200, by_time, by_memory))


def _input_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    cfg = model.config
    shapes = {"waveform": (cfg.get("input_samples"),),
              "mfcc": (cfg.get("mfcc_channels"), cfg.get("mfcc_frames")),
              "is10": (cfg.get("num_features"),)}
    return {k: shapes[k] for k in model.inputs}


def run(devices: list[str], networks: list[str], updates: list[str], batches: list[int],
        steps: int | None, warmup: int | None, budget_s: float | None = None) -> list[dict]:
    rows = []
    for device in devices:
        is_cuda = torch.device(device).type == "cuda"
        print(f"# {C.machine(device)}", flush=True)
        for dtype in C.peak_dtypes(device):
            amp = dtype == torch.bfloat16
            for name in networks:
                for update in updates:
                    for batch in batches:
                        peak = C.measure_peak(device, dtype, repeats=3)
                        r = time_training(name, update, batch, device, amp,
                                          steps or default_steps(name, update, batch, peak,
                                                                 is_cuda),
                                          warmup or (5 if is_cuda else 1), budget_s=budget_s)
                        del r["model"]
                        r["peak_flops"] = peak
                        r["achieved_flops"] = r["flops_per_window"] / r["s_per_window"]
                        r["pct_peak"] = 100 * r["achieved_flops"] / peak
                        rows.append(r)
                        print(f"{name:8s} {update:9s} batch {batch:3d} {device} {r['dtype']}: "
                              f"{1 / r['s_per_window']:9.2f} windows/s, "
                              f"{C.si(r['achieved_flops'])} = {r['pct_peak']:.1f}% of "
                              f"{C.si(peak)} peak (first batch {r['first_batch_s']:.2f} s, "
                              f"{r['timed_batches']} timed, load {r['load']})",
                              flush=True)
    return rows


def table(rows: list[dict]) -> str:
    head = ["network", "update", "batch", "device", "dtype", "windows/s", "ms/window",
            "CPU-ms/window", "GFLOP/window", "achieved", "peak (same run)", "% of peak", "load"]
    body = [[r["network"], r["update"], r["batch"], r["device"], r["dtype"],
             f"{1 / r['s_per_window']:.2f}", f"{1e3 * r['s_per_window']:.1f}",
             f"{1e3 * r['cpu_s_per_window']:.1f}" if r["cpu_s_per_window"] else "-",
             f"{r['flops_per_window'] / 1e9:.3f}", C.si(r["achieved_flops"]),
             C.si(r["peak_flops"]), f"{r['pct_peak']:.1f}%", r["load"]] for r in rows]
    return C.markdown_table(head, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (cpu, plus cuda if present), cpu, cuda")
    parser.add_argument("--quick", action="store_true", help="batch 15 only, 2 timed steps")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed batches per configuration (default: >= 3 on CPU, >= 20 on "
                             "GPU, more for small networks)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed batches first (default 1 on CPU, 5 on GPU)")
    parser.add_argument("--networks", default=",".join(MODEL_NAMES))
    parser.add_argument("--updates", default=",".join(UPDATES))
    parser.add_argument("--batches", default="15,64")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="CPU seconds per configuration after which timing stops (>= 1 "
                             "timed batch)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [15] if args.quick else [int(b) for b in args.batches.split(",")]
    steps = args.steps or (2 if args.quick else None)
    tick = time.perf_counter()
    rows = run(C.devices(args.device), args.networks.split(","), args.updates.split(","),
               batches, steps, args.warmup, args.budget)
    print("\n" + table(rows))
    print(f"\n(total bench time {time.perf_counter() - tick:.0f} s)")
    if args.json:
        C.write_atomic(args.json, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
