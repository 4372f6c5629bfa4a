"""The paper-scale ELoR's long convolutions: direct (`nn.Conv1d`) vs the FFT route, per window.

Paper-scale ELoR (Trigeorgis et al. 2016's sizes): conv1 40 filters x 80 samples on the
96 000-sample waveform, max-pool 2, then conv2 40 -> 40 channels, kernel 4000, on 47 960 steps.
For each layer at batch 15 and 1, forward + backward as in training (grad-weight and grad-bias;
grad-input except for conv1, whose input is the waveform):

- the direct convolution's time per window. At K = 4000 a full batch would take minutes, so it
  is timed on a shortened input (`--direct-outputs` output positions, batch 1) and scaled
  linearly to the layer's output length (its cost is linear in output length and batch): rows
  say "extrapolated";
- the FFT route's (`raylab.models.fftconv.fft_conv1d`) time per window, the ratio, its analytic GFLOP
  (`fft_conv_flops`: transforms 2.5·n·log2 n each, channel mixing as the real matmul FLOPs) and
  that as a % of the fp32 peak measured in the same run (`_common.measure_peaks`, the best of
  measurements before and after); also the direct convolution's own % of peak;
- the largest relative difference of output, grad-input and grad-weight between the two, on
  the shortened input (fp32).

Times are the best of `--repeats` calls (other work on a shared machine only adds time), with
the process CPU seconds beside them and the load average. `--blocks 10000,16000,...` instead
sweeps the FFT block size of conv2 (the data behind `raylab.models.fftconv.block_length`).
Usage: python bench/long_conv.py [--quick] [--repeats 3] [--blocks N,N,...]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

from raylab.models.fftconv import (block_length, direct_conv_flops, fft_conv1d,  # noqa: E402
                                   fft_conv_flops)

# (label, in channels, out channels, input length, kernel)
LAYERS = [("conv1 1->40, K 80, L 96000", 1, 40, 96_000, 80),
          ("conv2 40->40, K 4000, L 47960", 40, 40, 47_960, 4000)]


def best_time(fn, repeats: int) -> tuple[float, float]:
    """(best wall seconds, process CPU seconds of that call) over `repeats` calls after one."""
    fn()
    best = (float("inf"), 0.0)
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def train_step(conv, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor):
    """Forward + backward of one layer as in training (upstream gradient of ones)."""
    def run() -> None:
        y = conv(x, w, b)
        y.backward(torch.ones_like(y))
        for t in (x, w, b):
            t.grad = None
    return run


def operands(batch: int, cin: int, cout: int, length: int, kernel: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, cin, length, generator=gen) * 2 - 1).requires_grad_(cin > 1)
    bound = (cin * kernel) ** -0.5            # nn.Conv1d's initialisation range
    w = ((torch.rand(cout, cin, kernel, generator=gen) * 2 - 1) * bound).requires_grad_()
    b = ((torch.rand(cout, generator=gen) * 2 - 1) * bound).requires_grad_()
    return x, w, b


def max_rel_errors(cin, cout, kernel, positions) -> str:
    """Largest |FFT - direct| / max|direct| of output, grad-input, grad-weight (fp32)."""
    x, w, b = operands(2, cin, cout, kernel - 1 + positions, kernel, seed=1)
    errs = []
    results = []
    for conv in (F.conv1d, fft_conv1d):
        y = conv(x, w, b)
        g = torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
        grads = torch.autograd.grad(y, [t for t in (x, w) if t.requires_grad], g)
        results.append((y.detach(),) + grads)
    for name, a, r in zip(("y", "grad x" if cin > 1 else "grad w", "grad w"), *results):
        errs.append(f"{name} {float((a - r).abs().max() / r.abs().max()):.1e}")
    return ", ".join(errs)


def bench(label: str, cin: int, cout: int, length: int, kernel: int, batch: int,
          repeats: int, direct_positions: int) -> dict:
    out_len = length - kernel + 1
    grads = (cin > 1, True)
    x, w, b = operands(batch, cin, cout, length, kernel)
    fft_s, fft_cpu = best_time(train_step(fft_conv1d, x, w, b), repeats)
    # The direct convolution on `direct_positions` outputs when the whole layer would be slow.
    positions = out_len if kernel * cin <= 1000 else min(direct_positions, out_len)
    d_batch = batch if positions == out_len else 1
    xd, wd, bd = operands(d_batch, cin, cout, kernel - 1 + positions, kernel)
    direct_s, direct_cpu = best_time(train_step(F.conv1d, xd, wd, bd), repeats)
    scale = out_len / positions / d_batch            # -> per window of the full layer
    direct_s, direct_cpu = direct_s * scale, direct_cpu * scale
    fft_flops = fft_conv_flops(batch, cin, cout, length, kernel, None, True, grads)
    direct_flops = direct_conv_flops(1, cin, cout, length, kernel, True, grads)
    extrapolated = positions != out_len
    return {"label": label, "batch": batch, "block": block_length(kernel, length, cin),
            "direct_s": direct_s, "direct_cpu": direct_cpu, "fft_s": fft_s / batch,
            "fft_cpu": fft_cpu / batch, "fft_flops": fft_flops, "direct_flops": direct_flops,
            "extrapolated": f" (extrapolated from batch 1 x {positions} outputs)"
                            if extrapolated else ""}


def table(results: list[dict], peak: float) -> str:
    rows = [[r["label"], r["batch"], r["block"], f"{1e3 * r['direct_s']:.1f}{r['extrapolated']}",
             f"{1e3 * r['fft_s']:.2f}", f"{r['direct_s'] / r['fft_s']:.0f}x",
             f"{r['fft_flops'] / 1e9:.2f}",
             f"{100 * r['fft_flops'] / (r['fft_s'] * r['batch']) / peak:.1f}%",
             f"{100 * r['direct_flops'] / r['direct_s'] / peak:.1f}%",
             f"{1e3 * r['direct_cpu']:.0f}", f"{1e3 * r['fft_cpu']:.1f}"] for r in results]
    return C.markdown_table(["layer", "batch", "FFT block", "direct ms/window",
                             "FFT ms/window", "FFT speed-up", "FFT GFLOP/batch (analytic)",
                             "FFT % fp32 peak", "direct % fp32 peak", "direct CPU-ms/window",
                             "FFT CPU-ms/window"], rows)


def block_sweep(blocks: list[int], batch: int, repeats: int) -> str:
    label, cin, cout, length, kernel = LAYERS[1]
    x, w, b = operands(batch, cin, cout, length, kernel)
    rows = []
    for n in blocks:
        t, cpu = best_time(train_step(lambda *a: fft_conv1d(*a, block=n), x, w, b), repeats)
        flops = fft_conv_flops(batch, cin, cout, length, kernel, n)
        rows.append([n, f"{1e3 * t / batch:.2f}", f"{1e3 * cpu / batch:.1f}",
                     f"{flops / 1e9:.2f}"])
        print(f"  block {n}: done", file=sys.stderr, flush=True)
    return (f"{label}, batch {batch}, forward+backward, best of {repeats}\n"
            + C.markdown_table(["block n", "ms/window", "CPU-ms/window", "analytic GFLOP"], rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per figure (best)")
    parser.add_argument("--direct-outputs", type=int, default=1024,
                        help="output positions the K=4000 direct convolution is timed on")
    parser.add_argument("--batches", default="15,1")
    parser.add_argument("--quick", action="store_true", help="batch 1 only, 2 repeats")
    parser.add_argument("--blocks", default=None, help="instead: sweep conv2's FFT block size")
    args = parser.parse_args(argv)
    batches = [1] if args.quick else [int(v) for v in args.batches.split(",")]
    repeats = 2 if args.quick else args.repeats
    if args.blocks:
        print(block_sweep([int(v) for v in args.blocks.split(",")], batches[0], repeats))
        return 0
    print(f"## {C.machine('cpu')}")
    peaks = [C.measure_peak("cpu", torch.float32, repeats=3)]
    results, errors = [], []
    for label, cin, cout, length, kernel in LAYERS:
        for batch in batches:
            results.append(bench(label, cin, cout, length, kernel, batch, repeats,
                                 args.direct_outputs))
            print(f"  {label} batch {batch}: done (load {C.load_average()})", file=sys.stderr,
                  flush=True)
        errors.append(f"{label.split(',')[0]}: " + max_rel_errors(cin, cout, kernel, 1024))
    peaks.append(C.measure_peak("cpu", torch.float32, repeats=3))
    peak = max(peaks)
    print(f"fp32 peak (oneDNN/MKL GEMM, best of before and after): {C.si(peak)} (before "
          f"{C.si(peaks[0])}, after {C.si(peaks[1])}); load average now {C.load_average()} on "
          f"{os.cpu_count()} cores; times: best of {repeats} calls\n")
    print(table(results, peak))
    print("\nmax relative difference FFT vs direct (fp32, batch 2, 1024 outputs): "
          + "; ".join(errors))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
