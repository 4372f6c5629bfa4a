"""Direct vs FFT convolution for the long 1-D convolutions of ELoR-like networks.

Layer shapes: the first layer (1 -> 40 channels on the 96 000-sample waveform; ELoR's kernel is
80 = 5 ms) and a second layer (40 -> 40 on the 48 000 steps left after a pool of 2; ELoR's kernel
is 10, Trigeorgis et al. 2016 use much longer ones, hence 400/1000/4000). For each kernel size:
`nn.Conv1d` (oneDNN on CPU; cuDNN with `benchmark=True` on GPUs, the kernels it picked listed) and
`raylab.models.fftconv.FFTConv1d`, forward and forward+backward, seconds per window, and the kernel size
from which the FFT is faster. Usage: python bench/conv_algos.py [--device auto|cpu|cuda] [--quick]
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

from raylab.models.fftconv import FFTConv1d, block_length, fast_fft_length, fft_conv1d  # noqa: E402

# (label, in channels, out channels, input length, kernel sizes)
FAMILIES = [
    ("conv1 1->40, L=96000", 1, 40, 96_000, [80, 400, 1000, 4000]),
    ("conv2 40->40, L=48000", 40, 40, 48_000, [10, 80, 400, 1000, 4000]),
]


def conv_flops(cin: int, cout: int, length: int, kernel: int, backward: bool) -> float:
    """Direct-convolution FLOPs per window (2 per multiply-add); backward: grad-weight, plus
    grad-input when the input needs one (every layer but the first)."""
    fwd = 2.0 * cout * cin * kernel * (length - kernel + 1)
    return fwd * (1 + (2 if cin > 1 else 1)) if backward else fwd


def cuda_kernels(fn) -> str:
    """Names of the CUDA kernels `fn` launches, by GPU time (which algorithm cuDNN chose)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    events = sorted(prof.key_averages(), key=lambda e: e.device_time_total, reverse=True)
    return "; ".join(e.key[:60] for e in events[:2])


def bench_layer(device: str, cin: int, cout: int, length: int, kernel: int, batch: int,
                autocast: torch.dtype | None, budget: float) -> dict:
    """Seconds per window of direct and FFT convolution, forward and forward+backward."""
    torch.manual_seed(0)
    direct = nn.Conv1d(cin, cout, kernel).to(device)
    fft = FFTConv1d.from_conv(direct)
    x = torch.randn(batch, cin, length, device=device, requires_grad=cin > 1)
    out = {}
    for name, conv in (("direct", direct), ("fft", fft)):
        def forward(conv=conv):
            with torch.no_grad(), torch.autocast(device, dtype=autocast or torch.float32,
                                                 enabled=autocast is not None):
                return conv(x)

        def train(conv=conv):
            with torch.autocast(device, dtype=autocast or torch.float32,
                                enabled=autocast is not None):
                y = conv(x)
            y.float().sum().backward()

        out[f"{name}_fwd"] = C.median(C.time_call(forward, device, 1, 3, budget)) / batch
        out[f"{name}_train"] = C.median(C.time_call(train, device, 1, 3, budget)) / batch
        if device.startswith("cuda"):
            out[f"{name}_kernels"] = cuda_kernels(forward)
    with torch.no_grad():
        ref = direct(x).double()
        err = (fft(x).double() - ref).abs().max() / ref.abs().max()
    out["rel_err"] = float(err)
    return out


def crossover(kernels: list[int], direct: list[float], fft: list[float]) -> str:
    """The kernel size from which FFT is faster, interpolated in log K between measured points."""
    ratios = [math.log(d / f) for d, f in zip(direct, fft)]   # > 0: FFT faster
    if all(r > 0 for r in ratios):
        return f"FFT faster at every measured size (from K={kernels[0]})"
    if all(r <= 0 for r in ratios):
        return f"direct faster at every measured size (up to K={kernels[-1]})"
    for i in range(1, len(kernels)):
        if ratios[i - 1] <= 0 < ratios[i]:
            a, b = math.log(kernels[i - 1]), math.log(kernels[i])
            t = -ratios[i - 1] / (ratios[i] - ratios[i - 1])
            return (f"K ≈ {math.exp(a + t * (b - a)):.0f} (direct faster at K={kernels[i - 1]}, "
                    f"FFT faster at K={kernels[i]})")
    return "no single crossover: " + ", ".join(f"K={k}: {r:+.2f}" for k, r in zip(kernels, ratios))


def run(device: str, batch: int, quick: bool, budget: float) -> str:
    dtypes = [None, torch.bfloat16] if device.startswith("cuda") else [None]
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    report = [f"## {C.machine(device)}", f"batch {batch}; times are ms per window (median); the "
              f"fp32 peak is measured just before each row (the machine may be shared)", ""]
    for label, cin, cout, length, kernels in FAMILIES:
        if quick:
            kernels = [k for k in kernels if k <= 400]
        for autocast in dtypes:
            tag = "bf16 autocast (FFT runs fp32)" if autocast else "fp32"
            rows, res = [], []
            for k in kernels:
                peak = C.measure_peak(device, torch.float32, repeats=3)
                r = bench_layer(device, cin, cout, length, k, batch, autocast, budget)
                res.append(r)
                fl_f, fl_t = (conv_flops(cin, cout, length, k, b) for b in (False, True))
                rows.append([k, f"{r['direct_fwd'] * 1e3:.2f}", f"{r['fft_fwd'] * 1e3:.2f}",
                             f"{r['direct_train'] * 1e3:.2f}", f"{r['fft_train'] * 1e3:.2f}",
                             f"{100 * fl_t / r['direct_train'] / peak:.1f}% of {C.si(peak)}",
                             f"{r['direct_fwd'] / r['fft_fwd']:.2f}x",
                             f"{r['direct_train'] / r['fft_train']:.2f}x", f"{r['rel_err']:.1e}"]
                            + ([r["direct_kernels"]] if "direct_kernels" in r else []))
                print(f"  {label} K={k} {tag}: done", file=sys.stderr, flush=True)
            head = ["K", "direct fwd", "fft fwd", "direct fwd+bwd", "fft fwd+bwd",
                    "direct fwd+bwd % fp32 peak", "fft speed-up fwd", "fft speed-up fwd+bwd",
                    "max rel err"] + (["cuDNN kernels (fwd)"] if device.startswith("cuda") else [])
            report += [f"### {label}, {tag}", C.markdown_table(head, rows), "",
                       "crossover, forward: " + crossover(kernels, [r["direct_fwd"] for r in res],
                                                         [r["fft_fwd"] for r in res]),
                       "crossover, forward+backward: " + crossover(
                           kernels, [r["direct_train"] for r in res],
                           [r["fft_train"] for r in res]), ""]
    return "\n".join(report)


def block_sweep(device: str, batch: int, factors: list[int], budget: float) -> str:
    """FFT forward+backward ms per window for blocks of ~f·K samples (f in `factors`): the data
    behind `raylab.models.fftconv.block_length`."""
    rows = []
    for label, cin, cout, length, kernels in FAMILIES:
        for k in kernels:
            torch.manual_seed(0)
            w = torch.randn(cout, cin, k, device=device, requires_grad=True)
            x = torch.randn(batch, cin, length, device=device, requires_grad=cin > 1)
            cells = []
            for f in factors:
                n = min(fast_fft_length(max(f * k, 1024)), fast_fft_length(length))
                t = C.median(C.time_call(lambda: fft_conv1d(x, w, block=n).sum().backward(),
                                         device, 1, 3, budget))
                cells.append(f"{1e3 * t / batch:.1f} (n={n})")
            rows.append([label, k, block_length(k, length, cin)] + cells)
    return C.markdown_table(["layer", "K", "default block"] + [f"~{f}K" for f in factors], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (cpu, plus cuda if present), cpu, cuda")
    parser.add_argument("--batch", type=int, default=None,
                        help="windows per call (default: 1 on CPU, 15 on GPU)")
    parser.add_argument("--quick", action="store_true", help="kernels up to 400 only")
    parser.add_argument("--budget", type=float, default=6.0,
                        help="seconds of timed calls per measurement before stopping early")
    parser.add_argument("--blocks", default=None,
                        help="instead: sweep the FFT block size, e.g. 2,4,8,16 (times K)")
    args = parser.parse_args(argv)
    for device in C.devices(args.device):
        if args.blocks:
            factors = [int(f) for f in args.blocks.split(",")]
            print(block_sweep(device, args.batch or 1, factors, args.budget), flush=True)
            continue
        batch = args.batch or (15 if device.startswith("cuda") else 1)
        print(run(device, batch, args.quick, args.budget), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
