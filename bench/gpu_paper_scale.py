"""Paper-scale ELoR on one CUDA GPU: cuDNN vs the FFT route, a training epoch, the 70-trial search.

Paper-scale ELoR (Trigeorgis et al. 2016's sizes, `PAPER_ELOR`): conv1 40 x 80 pool 2, conv2
40 -> 40 x 4000 pool 20, conv3 40 x 10 pool 10, heads 128 / 64, `conv_impl="auto"`. Prints:

1. the GPU's dense peaks (bf16, fp32) measured in this run (`_common.measure_peaks`);
2. conv1 (1 -> 40, K 80, L 96 000) and conv2 (40 -> 40, K 4000, L 47 960) at batch 15, forward +
   backward as in training: cuDNN (`cudnn.benchmark=True`, direct-equivalent FLOPs) vs the FFT
   route (`raylab.models.fftconv.fft_conv1d`, cuFFT through torch.fft, analytic FLOPs of
   `fft_conv_flops`; it always computes in fp32), in bf16 autocast and fp32: ms per window,
   speed-up, % of the peak of the dtype the work runs in;
3. one training epoch at IEMOCAP size (6136 training + 1534 validation windows, batch 15,
   alternate updates, bf16 autocast and fp32) through `raylab.train.loop.fit` on synthetic data:
   a few hundred windows timed, the epoch extrapolated (labelled), and what `AutoConv1d` chose;
4. the 70-trial search (9 epochs per trial) projected with N = 1, 2, 4 trials sharing the GPU:
   N worker processes train concurrently (started together behind a barrier) and their summed
   windows/s gives the projection.

Runs in well under 10 minutes on an H100/H200. Without CUDA it prints "no CUDA device; nothing
measured" and exits 0; `--cpu-smoke` runs every part on the CPU at toy sizes (a check that the
script works, not a measurement). Usage:
    python bench/gpu_paper_scale.py [--out FILE] [--cpu-smoke] [--windows 300] [--concurrency 1,2,4]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

from raylab.models.fftconv import conv_choices, direct_conv_flops, fft_conv1d, fft_conv_flops  # noqa: E402
from raylab import WINDOW_SAMPLES  # noqa: E402
from raylab.models import build_model  # noqa: E402
from raylab.train.loop import TrainConfig, fit, predict  # noqa: E402

PAPER_ELOR = dict(conv1_filters=40, conv1_kernel=80, pool1=2, conv2_filters=40,
                  conv2_kernel=4000, pool2=20, conv3_filters=40, conv3_kernel=10, pool3=10,
                  hidden1=128, hidden2=64, conv_impl="auto")
# --cpu-smoke: the same code at toy sizes
SMOKE_ELOR = dict(input_samples=6000, conv1_filters=4, conv1_kernel=80, pool1=2,
                  conv2_filters=4, conv2_kernel=400, pool2=20, conv3_filters=4, conv3_kernel=10,
                  pool3=10, hidden1=16, hidden2=8, conv_impl="auto")
TRAIN_WINDOWS, VAL_WINDOWS, EPOCHS, TRIALS, BATCH = 6136, 1534, 9, 70, 15


class Report:
    """Lines to stdout and, with --out, to a file."""

    def __init__(self, path: str | None) -> None:
        self.lines: list[str] = []
        self.path = Path(path) if path else None

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)
        if self.path:
            C.write_atomic(self.path, "\n".join(self.lines) + "\n")


def layer_bench(device: str, cin: int, cout: int, length: int, kernel: int, batch: int,
                autocast: torch.dtype | None, budget: float) -> dict:
    """Best seconds per window of forward+backward, cuDNN and FFT route."""
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(batch, cin, length, device=device, generator=gen).requires_grad_(cin > 1)
    w = (torch.randn(cout, cin, kernel, device=device, generator=gen)
         * (cin * kernel) ** -0.5).requires_grad_()
    b = torch.zeros(cout, device=device, requires_grad=True)
    out = {}
    for name, conv in (("direct", F.conv1d), ("fft", fft_conv1d)):
        def step(conv=conv) -> None:
            with torch.autocast(torch.device(device).type, dtype=autocast or torch.float32,
                                enabled=autocast is not None):
                y = conv(x, w, b)
            y.float().sum().backward()
            x.grad = w.grad = b.grad = None
        out[name] = min(C.time_call(step, device, warmup=2, repeats=5, budget_s=budget)) / batch
    return out


class _Enough(Exception):
    pass


def train_windows(device: str, kwargs: dict, amp: bool, windows: int, warmup: int,
                  barrier: tuple[str, int] | None = None, seconds: float | None = None) -> dict:
    """Seconds per training window of `fit` (alternate updates, batch 15) on synthetic data,
    timed after `warmup` batches over `windows` windows (or for `seconds` of wall time); with
    `barrier=(dir, n)`, waits after the warm-up until n processes have reached it."""
    from train_step import synthetic_arrays

    torch.manual_seed(0)
    model = build_model("elor", **kwargs)
    steps = max(1, windows // BATCH)
    data = synthetic_arrays(model, BATCH * (warmup + steps + (1000 if seconds else 0)))
    cfg = TrainConfig(batch_size=BATCH, epochs=1, update="alternate", device=device, amp=amp)
    marks: dict[str, float] = {}

    def on_batch(done: int, total: int) -> None:
        if done == warmup:
            C.sync(device)
            if barrier:
                Path(barrier[0], f"{os.getpid()}").touch()
                while len(os.listdir(barrier[0])) < barrier[1]:
                    time.sleep(0.01)
            marks["start"], marks["done0"] = time.perf_counter(), done
        elif "start" in marks and (done == warmup + steps and not seconds or seconds and
                                   time.perf_counter() - marks["start"] > seconds):
            C.sync(device)
            marks["end"], marks["done1"] = time.perf_counter(), done
            raise _Enough

    first = time.perf_counter()
    try:
        fit(model, data, None, cfg, on_batch=on_batch)
    except _Enough:
        pass
    timed = (marks["done1"] - marks["done0"]) * BATCH
    eval_s = None
    if not barrier:   # validation cost per window, single process
        val = synthetic_arrays(model, min(VAL_WINDOWS, 8 * BATCH), seed=1)
        predict(model, val, batch_size=BATCH, device=device, amp=amp)    # warm-up
        C.sync(device)
        tick = time.perf_counter()
        predict(model, val, batch_size=BATCH, device=device, amp=amp)
        C.sync(device)
        eval_s = (time.perf_counter() - tick) / len(val)
    return {"s_per_window": (marks["end"] - marks["start"]) / timed, "timed_windows": timed,
            "eval_s_per_window": eval_s, "setup_and_warmup_s": marks["start"] - first,
            "choices": {str(k[3]): v for k, v in conv_choices().items()}}


def concurrent(n: int, device: str, kwargs: dict, amp: bool, seconds: float,
               warmup: int) -> list[dict]:
    """n worker processes training at once; each returns its `train_windows` result."""
    with tempfile.TemporaryDirectory() as barrier:
        spec = json.dumps({"device": device, "kwargs": kwargs, "amp": amp, "seconds": seconds,
                           "warmup": warmup, "barrier": [barrier, n]})
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", spec],
                                  stdout=subprocess.PIPE, text=True) for _ in range(n)]
        outs = [p.communicate(timeout=600)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a worker failed: return codes {[p.returncode for p in procs]}")
    return [json.loads(o.strip().splitlines()[-1]) for o in outs]


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="also write the report to this file")
    parser.add_argument("--cpu-smoke", action="store_true", help="toy sizes on the CPU")
    parser.add_argument("--windows", type=int, default=300, help="timed training windows")
    parser.add_argument("--concurrency", default="1,2,4", help="trials per GPU to measure")
    parser.add_argument("--concurrent-seconds", type=float, default=20.0,
                        help="timed seconds of each concurrency measurement")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        r = train_windows(spec["device"], spec["kwargs"], spec["amp"], 0, spec["warmup"],
                          tuple(spec["barrier"]), spec["seconds"])
        print(json.dumps(r))
        return 0
    report = Report(args.out)
    smoke = args.cpu_smoke
    if not smoke and not torch.cuda.is_available():
        report("no CUDA device; nothing measured")
        return 0
    device = "cpu" if smoke else "cuda"
    t0 = time.perf_counter()
    torch.backends.cudnn.benchmark = True
    kwargs = SMOKE_ELOR if smoke else PAPER_ELOR
    samples = kwargs.get("input_samples", WINDOW_SAMPLES)
    batch = 2 if smoke else BATCH
    windows = 2 * BATCH if smoke else args.windows
    warmup = 1 if smoke else 3
    report(f"# Paper-scale ELoR on {C.machine(device)}" + (" -- CPU SMOKE RUN, toy sizes, "
                                                           "not a measurement" if smoke else ""))
    report(f"cuDNN TF32 for fp32 convolutions: {torch.backends.cudnn.allow_tf32} (torch default); "
           f"matmul TF32: {torch.backends.cuda.matmul.allow_tf32}")
    peaks = {dt: C.measure_peak(device, dt, size=512 if smoke else None, repeats=3)
             for dt in ((torch.float32,) if smoke else (torch.bfloat16, torch.float32))}
    report("peaks (dense matmul, this run): " + ", ".join(f"{C.dtype_name(d)} {C.si(p)}"
                                                          for d, p in peaks.items()))

    # 2. the two long layers
    report(f"\n## Layers, batch {batch}, forward+backward (best of 5), ms per window")
    k1, k2 = kwargs["conv1_kernel"], kwargs["conv2_kernel"]
    l2 = (samples - k1 + 1) // kwargs["pool1"]
    layers = [(f"conv1 1->{kwargs['conv1_filters']} K{k1} L{samples}", 1,
               kwargs["conv1_filters"], samples, k1),
              (f"conv2 {kwargs['conv1_filters']}->{kwargs['conv2_filters']} K{k2} L{l2}",
               kwargs["conv1_filters"], kwargs["conv2_filters"], l2, k2)]
    rows = []
    for autocast in ((None,) if smoke else (torch.bfloat16, None)):
        tag = "bf16 autocast" if autocast else "fp32"
        direct_peak = peaks.get(autocast or torch.float32, peaks[torch.float32])
        for label, cin, cout, length, kernel in layers:
            r = layer_bench(device, cin, cout, length, kernel, batch, autocast, budget=20.0)
            grads = (cin > 1, True)
            d_fl = direct_conv_flops(1, cin, cout, length, kernel, True, grads)
            f_fl = fft_conv_flops(1, cin, cout, length, kernel, None, True, grads)
            rows.append([label, tag, f"{1e3 * r['direct']:.3f}", f"{1e3 * r['fft']:.3f}",
                         f"{r['direct'] / r['fft']:.2f}x",
                         f"{100 * d_fl / r['direct'] / direct_peak:.1f}% of {tag}",
                         f"{100 * f_fl / r['fft'] / peaks[torch.float32]:.1f}% of fp32"])
    report(C.markdown_table(["layer", "dtype", "cuDNN ms/window", "FFT ms/window",
                             "FFT speed-up", "cuDNN % peak (direct FLOPs)",
                             "FFT % peak (analytic FFT FLOPs; runs fp32)"], rows))

    # 3. one epoch
    report(f"\n## Training epoch ({TRAIN_WINDOWS} + {VAL_WINDOWS} windows, batch {BATCH}, "
           f"alternate updates), EXTRAPOLATED from {windows} timed windows")
    epoch = {}
    rows = []
    for amp in ((False,) if smoke else (True, False)):
        r = train_windows(device, kwargs, amp, windows, warmup)
        epoch[amp] = TRAIN_WINDOWS * r["s_per_window"] + VAL_WINDOWS * r["eval_s_per_window"]
        rows.append(["bf16 autocast" if amp else "fp32", f"{1e3 * r['s_per_window']:.2f}",
                     f"{1e3 * r['eval_s_per_window']:.2f}", f"{r['setup_and_warmup_s']:.1f}",
                     hours(epoch[amp]), ", ".join(f"{k}: {v}" for k, v in r["choices"].items())])
    report(C.markdown_table(["dtype", "train ms/window", "eval ms/window",
                             "setup+autotune+warm-up s", "epoch (extrapolated)",
                             "AutoConv1d choices (weight shape: algorithm)"], rows))

    # 4. the search
    amp = not smoke
    seconds = 3.0 if smoke else args.concurrent_seconds
    report(f"\n## 70-trial search ({EPOCHS} epochs per trial), {'bf16' if amp else 'fp32'}: "
           f"N trials sharing the device, measured with N concurrent worker processes "
           f"({seconds:.0f} s each after warm-up); validation time scaled like "
           f"training")
    base = None
    rows = []
    for n in [int(v) for v in args.concurrency.split(",")]:
        try:
            res = concurrent(n, device, kwargs, amp, seconds, warmup)
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
            rows.append([n, "failed", str(e)[:80], "", ""])
            continue
        throughput = sum(1 / r["s_per_window"] for r in res)          # windows/s, all trials
        base = base or throughput / n                                 # one trial alone
        # whole epochs (training + validation) run `speedup` times faster in aggregate
        speedup = throughput / base
        search_s = TRIALS * EPOCHS * epoch[amp] / speedup
        rows.append([n, f"{throughput:.1f}", f"{speedup:.2f}x",
                     hours(EPOCHS * epoch[amp] * n / speedup), hours(search_s)])
        report(f"  N={n}: done ({time.perf_counter() - t0:.0f} s so far)")
    report(C.markdown_table(["trials per device", "windows/s (all trials)",
                             "throughput vs N=1", "one trial's wall time",
                             "70-trial search (projected)"], rows))
    report(f"\ntotal run time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
