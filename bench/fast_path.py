"""Which fast-path steps pay for ELoR training on this machine, and do results stay the same?

Each variant trains the reference ELoR (defaults, batch 15, alternate updates, int16 audio shared
as the search shares it) through the real `raylab.train.loop.fit` and is compared with the baseline
on seconds per window, first-batch seconds (compile/autotune cost) and, on one batch with dropout
off, the largest relative difference of the logits and of conv1's weight gradient.

Variants (CPU): torch threads 1 vs 2; float32 waveforms (no per-batch int16 scaling); oneDNN's
fp32 convs/matmuls in bf16 (`torch.backends.mkldnn.*.fp32_precision`); bf16 autocast; FFT conv1
(`swap_long_convs`), also at the search space's longest conv1 kernel (320); `conv_impl="auto"`
(the networks' default; every other variant uses the direct convolution) at the reference and at
the space's longest conv2/conv3 kernels (40); torch.compile; batch size 4/15/32; filters 20/40/80
per layer. On GPUs also: fp32 vs bf16 autocast, cudnn.benchmark.
Read the CPU-ms/window column on a shared machine: wall times drift with other load (the
baseline is measured again last to show the drift).
Usage: python bench/fast_path.py [--device cpu|cuda] [--steps N] [--skip compile,...]
       python bench/fast_path.py --ab "torch.compile;bf16 autocast" --rounds 3
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from train_step import synthetic_arrays, time_training  # noqa: E402

from raylab.models import build_model  # noqa: E402
from raylab.models.fftconv import swap_long_convs  # noqa: E402


class Autocast(nn.Module):
    """Runs the network's forward under autocast; `fit` finds the network in `.module`, as DDP."""

    def __init__(self, module: nn.Module, device: str, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.module, self.device, self.dtype = module, device, dtype

    def forward(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.autocast(self.device, dtype=self.dtype):
            return self.module(*inputs)


@contextlib.contextmanager
def low_precision_fp32():
    """Allow reduced-precision arithmetic for fp32 convs/matmuls: oneDNN's fp32_precision "bf16"
    and `set_float32_matmul_precision("medium")` (on GPUs: TF32/bf16 tensor cores)."""
    conv, mm = torch.backends.mkldnn.conv, torch.backends.mkldnn.matmul
    old = conv.fp32_precision, mm.fp32_precision, torch.get_float32_matmul_precision()
    conv.fp32_precision = mm.fp32_precision = "bf16"
    torch.set_float32_matmul_precision("medium")
    try:
        yield
    finally:
        conv.fp32_precision, mm.fp32_precision = old[:2]
        torch.set_float32_matmul_precision(old[2])


@contextlib.contextmanager
def threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _fft(min_kernel: int) -> Callable[[nn.Module], nn.Module]:
    def prepare(model: nn.Module) -> nn.Module:
        swap_long_convs(model, min_kernel)
        return model
    return prepare


@dataclass
class Variant:
    name: str
    prepare: Callable[[nn.Module], nn.Module] | None = None
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    kwargs: dict = field(default_factory=dict)
    batch: int = 15
    waveform_dtype: str = "int16"
    amp: bool = False
    baseline: str = "baseline"     # the variant it is compared with

    def __post_init__(self) -> None:
        # the direct convolution unless a variant says otherwise: the networks' default "auto"
        # would otherwise pick per machine, and swap_long_convs swaps plain nn.Conv1d only
        self.kwargs = {"conv_impl": "direct", **self.kwargs}


K40 = {"conv2_kernel": 40, "conv3_kernel": 40}  # the longest conv2/conv3 of the search space


def variants(device: str) -> list[Variant]:
    if torch.device(device).type == "cuda":
        return [Variant("baseline (bf16 autocast)", amp=True, baseline="baseline (bf16 autocast)"),
                Variant("fp32", baseline="baseline (bf16 autocast)"),
                Variant("fp32, matmul precision 'medium'", context=low_precision_fp32,
                        baseline="fp32"),
                Variant("FFT conv1 (K=80)", prepare=_fft(80), amp=True,
                        baseline="baseline (bf16 autocast)"),
                Variant("conv1 K=320, direct", kwargs={"conv1_kernel": 320}, amp=True,
                        baseline="conv1 K=320, direct"),
                Variant("conv1 K=320, FFT", prepare=_fft(80), kwargs={"conv1_kernel": 320},
                        amp=True, baseline="conv1 K=320, direct"),
                Variant("conv2/3 K=40, direct", kwargs=K40, amp=True,
                        baseline="conv2/3 K=40, direct"),
                Variant("conv2/3 K=40, conv_impl auto", kwargs={**K40, "conv_impl": "auto"},
                        amp=True, baseline="conv2/3 K=40, direct"),
                Variant("torch.compile", prepare=torch.compile, amp=True,
                        baseline="baseline (bf16 autocast)"),
                Variant("batch 64", batch=64, amp=True, baseline="baseline (bf16 autocast)"),
                Variant("baseline again (drift check)", amp=True,
                        baseline="baseline (bf16 autocast)")]
    return [Variant("baseline"),
            Variant("1 thread", context=lambda: threads(1)),
            Variant("float32 waveform (no per-batch scaling)", waveform_dtype="float32"),
            Variant("fp32 matmul/conv precision 'bf16'/'medium'", context=low_precision_fp32),
            Variant("bf16 autocast", prepare=lambda m: Autocast(m, "cpu")),
            Variant("FFT conv1 (K=80)", prepare=_fft(80)),
            Variant("conv1 K=320, direct", kwargs={"conv1_kernel": 320},
                    baseline="conv1 K=320, direct"),
            Variant("conv1 K=320, FFT", prepare=_fft(80), kwargs={"conv1_kernel": 320},
                    baseline="conv1 K=320, direct"),
            Variant("conv_impl auto", kwargs={"conv_impl": "auto"}),
            Variant("conv2/3 K=40, direct", kwargs=K40, baseline="conv2/3 K=40, direct"),
            Variant("conv2/3 K=40, conv_impl auto", kwargs={**K40, "conv_impl": "auto"},
                    baseline="conv2/3 K=40, direct"),
            Variant("torch.compile", prepare=torch.compile),
            Variant("batch 4", batch=4),
            Variant("batch 32", batch=32),
            Variant("filters 20/20/20", kwargs={f"conv{i}_filters": 20 for i in (1, 2, 3)}),
            Variant("filters 80/80/80", kwargs={f"conv{i}_filters": 80 for i in (1, 2, 3)}),
            Variant("baseline again (drift check)")]


def equivalence(v: Variant, device: str) -> tuple[float, float]:
    """Max relative difference of logits and of conv1's weight gradient vs plain fp32, one batch
    of 4 windows in training mode with dropout off."""
    outs = []
    for variant in (None, v):
        torch.manual_seed(0)
        kwargs = v.kwargs if variant is not None else {**v.kwargs, "conv_impl": "direct"}
        model = build_model("elor", dropout=0.0, **kwargs).to(device)
        if variant is not None and variant.prepare is not None:
            model = variant.prepare(model)
        data = synthetic_arrays(model, 4, waveform_dtype=v.waveform_dtype)
        x = torch.as_tensor(data.inputs["waveform"]).to(device).float()
        x = x / 32768 if v.waveform_dtype == "int16" else x
        y = torch.as_tensor(data.targets["valence"]).to(device)
        amp = variant is not None and variant.amp and device.startswith("cuda")
        with (variant.context() if variant else contextlib.nullcontext()), \
                torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)["valence"].float()
            F.cross_entropy(logits, y).backward()
        net = getattr(model, "module", getattr(model, "_orig_mod", model))
        outs.append((logits.detach(), net.trunk.blocks.block1.conv.weight.grad.clone()))
    rel = lambda a, b: float((a - b).abs().max() / b.abs().max())  # noqa: E731
    return rel(outs[1][0], outs[0][0]), rel(outs[1][1], outs[0][1])


def run(device: str, steps: int, skip: set[str]) -> str:
    results: dict[str, dict] = {}
    rows = []
    for v in variants(device):
        if any(s in v.name for s in skip):
            continue
        with v.context():
            peak = C.measure_peak(device, torch.bfloat16 if v.amp else torch.float32, repeats=3)
            cpu = not device.startswith("cuda")
            r = time_training("elor", "alternate", v.batch, device, v.amp, steps,
                              1 if cpu else 5, v.kwargs, v.prepare, v.waveform_dtype,
                              budget_s=40.0 if cpu else None)
        r.pop("model")
        r["peak"] = peak
        results[v.name] = r
        changes_numerics = (v.prepare is not None or v.amp or v.kwargs["conv_impl"] != "direct"
                            or v.context is not contextlib.nullcontext)
        eq = equivalence(v, device) if changes_numerics else None
        base = results.get(v.baseline)
        speedup = base["s_per_window"] / r["s_per_window"] if base and base is not r else 1.0
        pct = 100 * r["flops_per_window"] / r["s_per_window"] / peak
        cpu_ms = f"{1e3 * r['cpu_s_per_window']:.0f}" if r["cpu_s_per_window"] else "-"
        rows.append([v.name, f"{1 / r['s_per_window']:.2f}", f"{1e3 * r['s_per_window']:.0f}",
                     cpu_ms,
                     f"{r['first_batch_s']:.1f}", f"{pct:.1f}% of {C.si(peak)}",
                     f"{speedup:.2f}x vs {v.baseline}" if v.name != v.baseline else "-",
                     f"{eq[0]:.1e} / {eq[1]:.1e}" if eq else "-"])
        print(" | ".join(rows[-1]), flush=True)
    head = ["variant", "windows/s", "ms/window", "CPU-ms/window", "first batch s",
            "achieved (direct-equiv.)",
            "speed-up", "max rel diff logits / conv1 grad"]
    return f"## {C.machine(device)}\nELoR, alternate updates, batch 15 unless named\n\n" + \
        C.markdown_table(head, rows)


def _timed(v: Variant, device: str, steps: int) -> dict:
    cpu = not device.startswith("cuda")
    with v.context():
        r = time_training("elor", "alternate", v.batch, device, v.amp, steps, 1 if cpu else 5,
                          v.kwargs, v.prepare, v.waveform_dtype, budget_s=40.0 if cpu else None)
    r.pop("model")
    return r


def ab(device: str, names: list[str], rounds: int, steps: int) -> str:
    """Baseline and variant back to back, `rounds` times: the median of the per-round ratios is
    what survives a machine whose load changes from minute to minute."""
    table = {v.name: v for v in variants(device)}
    rows = []
    for name in names:
        if name not in table:
            raise SystemExit(f"--ab {name!r}: expected one of {', '.join(table)}")
        v = table[name]
        base = table[v.baseline]
        wall, cpu = [], []
        for _ in range(rounds):
            b, r = _timed(base, device, steps), _timed(v, device, steps)
            wall.append(b["s_per_window"] / r["s_per_window"])
            if r["cpu_s_per_window"]:
                cpu.append(b["cpu_s_per_window"] / r["cpu_s_per_window"])
        rows.append([name, v.baseline, rounds, " ".join(f"{x:.2f}" for x in wall),
                     f"{C.median(wall):.2f}x", f"{C.median(cpu):.2f}x" if cpu else "-"])
        print(" | ".join(str(c) for c in rows[-1]), flush=True)
    return C.markdown_table(["variant", "vs", "rounds", "wall speed-up per round",
                             "median wall speed-up", "median CPU-time speed-up"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=None, help="timed batches (3 CPU, 20 GPU)")
    parser.add_argument("--skip", default="", help="comma-separated variant name parts to skip")
    parser.add_argument("--ab", default=None,
                        help="instead: A/B the named variants (separated by ;) against their "
                             "baselines, back to back")
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds")
    args = parser.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    # A cold compile cache, so the first batch shows what torch.compile costs a fresh trial.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="raylab-bench-inductor-")
    tick = time.perf_counter()
    for device in C.devices(args.device):
        steps = args.steps or (20 if device.startswith("cuda") else 3)
        if args.ab:
            print(f"## {C.machine(device)}\n" + ab(device, args.ab.split(";"), args.rounds, steps))
        else:
            print(run(device, steps, skip), flush=True)
    print(f"\n(total bench time {time.perf_counter() - tick:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
