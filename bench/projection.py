"""Projected wall time of the paper's 70-trial ELoR search at full IEMOCAP scale.

Scale: 8522 windows (E2); the test speaker's ~1/10 left out (852), the rest split 80/20 into
6136 training and 1534 validation windows; 9 epochs (Table 1) each followed by a validation pass.
Per-window training and evaluation times are measured here through the real `fit`/`predict` on
this machine (or taken from `bench/train_step.py --json`); on a CUDA machine a full-scale
synthetic epoch is timed. The H100 figure without a GPU is a projection from FLOPs (raylab.models.flops)
at a stated peak and efficiency, bounded below by the memory traffic of the activations.
Writes bench/projection.md and prints it. Usage: python bench/projection.py [--from-json PATH]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from train_step import synthetic_arrays, time_evaluation, time_training  # noqa: E402

from raylab.errors import ConfigError  # noqa: E402
from raylab.models import build_model, model_defaults  # noqa: E402
from raylab.models.flops import network_layers, window_flops  # noqa: E402
from raylab.search.space import default_space_file, load_search_space  # noqa: E402
from raylab.train.loop import fit  # noqa: E402
from raylab.train.params import PAPER_HPARAMS, TrainConfig  # noqa: E402

WINDOWS, TEST_SPEAKER, VAL_FRACTION = 8522, 852, 0.2
TRAIN = round((WINDOWS - TEST_SPEAKER) * (1 - VAL_FRACTION))     # 6136
VAL = WINDOWS - TEST_SPEAKER - TRAIN                              # 1534
TRIALS, PAPER_DAYS = 70, 49
# Datasheet figures (assumptions, not measurements): NVIDIA H100 SXM5 dense bf16 tensor-core
# peak 989.4 TFLOP/s and HBM3 3.35 TB/s; GTX 1080 fp32 peak 8.87 TFLOP/s at boost clock.
H100_BF16_PEAK, H100_BANDWIDTH, GTX1080_FP32_PEAK = 989.4e12, 3.35e12, 8.87e12
# Activation memory accesses per trunk conv-output element and training round (bf16, 2 bytes):
# forward conv write, batch-norm read+write, pool read+write, ReLU read+write (7); backward ~2x.
ACCESSES_PER_ELEMENT, BYTES_BF16 = 21, 2
# Host time per dispatched aten op in eager PyTorch on a GPU server (assumption: ~5 µs of Python,
# dispatcher and kernel launch); ops per batch are counted here on the real `fit`.
HOST_S_PER_OP = 5e-6
CONCURRENT = 4       # search_spaces/elor.yaml: gpus_per_trial 0.25


def ops_per_batch(update: str = "alternate", batch: int = 15) -> float:
    """aten ops `fit` dispatches per batch for ELoR (counted on a short input: the count does not
    depend on the length). On CPU the SGD step loops over parameters; on CUDA it uses foreach
    kernels, so this overstates a GPU's launches a little."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.ops += 1
            return func(*args, **(kwargs or {}))

    model = build_model("elor", input_samples=4000, conv_impl="direct")  # "auto" would add its
    data = synthetic_arrays(model, 2 * batch)                            # one-time timing runs
    with Count():
        fit(model, data, None, TrainConfig(batch_size=batch, epochs=1, update=update))
    return Count.ops / 2


def trial_flops(cfg: dict, batch: int, epochs: int) -> float:
    """FLOPs of one search trial: `epochs` × (training windows + a validation pass)."""
    f = window_flops("elor", cfg, "alternate", batch)
    return epochs * (TRAIN * f.train + VAL * f.evaluate)


def trial_bytes(cfg: dict, epochs: int) -> float:
    """Activation bytes one trial moves (the memory-bound floor of the elementwise layers)."""
    trunk, _ = network_layers("elor", cfg)
    elems = sum(l.elements for l in trunk if l.kind == "conv")
    per_window = elems * ACCESSES_PER_ELEMENT * BYTES_BF16
    return epochs * (TRAIN * 2 * per_window + VAL * per_window / 3)   # 2 rounds (alternate)


def search_space_mean(samples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Mean trial FLOPs and bytes over configurations drawn uniformly from search_spaces/elor.yaml
    (TPE draws its first 20 points this way, then concentrates; an approximation)."""
    space = load_search_space(default_space_file("elor"), "elor")
    rng = np.random.default_rng(seed)
    flops, traffic = [], []
    while len(flops) < samples:
        cfg = model_defaults("elor") | PAPER_HPARAMS["elor"]
        for p in space.params:
            if p.type == "choice":
                cfg[p.name] = p.values[rng.integers(len(p.values))]
                continue
            lo, hi = (math.log(p.low), math.log(p.high)) if p.log else (p.low, p.high)
            value = rng.uniform(lo, hi)
            value = math.exp(value) if p.log else value
            if p.type == "int":
                step = p.step or 1
                value = p.low + step * round((value - p.low) / step)
            cfg[p.name] = value
        try:
            flops.append(trial_flops(cfg, int(cfg["batch_size"]), int(cfg["epochs"])))
            traffic.append(trial_bytes(cfg, int(cfg["epochs"])))
        except ConfigError:
            continue               # pools that leave nothing: the trial would fail at once
    return float(np.mean(flops)), float(np.mean(traffic))


def measure_cpu(source: Path | None, steps: int) -> dict:
    """Per-window train/eval seconds and ratio to peak of the reference ELoR on the CPU."""
    if source is not None:
        rows = json.loads(source.read_text())
        row = next(r for r in rows if r["network"] == "elor" and r["update"] == "alternate"
                   and r["batch"] == 15 and r["device"] == "cpu")
        peak = row["peak_flops"]
    else:
        peak = C.measure_peak("cpu", torch.float32, repeats=3)
        row = time_training("elor", "alternate", 15, "cpu", False, steps, 1)
    train_s, evaluation = row["s_per_window"], time_evaluation("elor", "cpu", False)
    return {"train_s": train_s, "eval_s": evaluation["s"], "peak": peak,
            "train_cpu_s": row["cpu_s_per_window"], "eval_cpu_s": evaluation["cpu_s"],
            "threads": row["threads"], "ratio": row["flops_per_window"] / train_s / peak,
            "machine": C.machine("cpu")}


def measure_gpu_epoch(device: str = "cuda") -> dict:
    """Seconds of one full-scale epoch (6136 training + 1534 validation synthetic windows,
    bf16 autocast, the real `fit`) and its ratio to the measured bf16 peak."""
    model = build_model("elor")
    data = synthetic_arrays(model, TRAIN + VAL)
    rows = np.arange(TRAIN + VAL)
    cfg = TrainConfig(batch_size=15, epochs=1, device=device, amp=True)
    fit(build_model("elor"), data.view(rows[:150]), data.view(rows[150:210]), cfg)  # warm-up
    result = fit(model, data.view(rows[:TRAIN]), data.view(rows[TRAIN:]), cfg)
    peak = C.measure_peak(device, torch.bfloat16)
    flops = trial_flops(model_defaults("elor"), 15, 1)
    return {"epoch_s": result.seconds, "peak": peak, "ratio": flops / result.seconds / peak,
            "machine": C.machine(device)}


def human(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def report(cpu: dict, gpu: dict | None, efficiency: float | None, overhead_s: float) -> str:
    ref = model_defaults("elor")
    epochs = PAPER_HPARAMS["elor"]["epochs"]
    ref_flops, ref_bytes = trial_flops(ref, 15, epochs), trial_bytes(ref, epochs)
    mean_flops, mean_bytes = search_space_mean()
    paper_s = PAPER_DAYS * 86400
    cpu_trial = epochs * (TRAIN * cpu["train_s"] + VAL * cpu["eval_s"]) + overhead_s
    eff = efficiency if efficiency is not None else cpu["ratio"]
    idle_trial = epochs * (TRAIN * cpu["train_cpu_s"] + VAL * cpu["eval_cpu_s"]) / cpu["threads"]
    idle_trial += overhead_s
    rows = [["this CPU, measured per-window times", "measured (wall clock, shared machine)",
             human(cpu_trial), human(TRIALS * cpu_trial), f"{paper_s / (TRIALS * cpu_trial):.2g}x"],
            ["this CPU if it were idle", f"measured process CPU time ÷ {cpu['threads']} threads",
             human(idle_trial), human(TRIALS * idle_trial),
             f"{paper_s / (TRIALS * idle_trial):.2g}x"]]
    space_trial = cpu_trial * mean_flops / ref_flops
    rows.append(["this CPU, search-space mean", "estimated: measured wall time x the mean's "
                 f"FLOPs ratio ({mean_flops / ref_flops:.2f}x; time does not follow FLOPs "
                 "exactly: conv_impl auto runs long kernels by FFT)", human(space_trial),
                 human(TRIALS * space_trial), f"{paper_s / (TRIALS * space_trial):.2g}x"])
    if gpu is not None:
        gpu_trial = epochs * gpu["epoch_s"] + overhead_s
        rows.append([f"GPU, measured full-scale epoch ({gpu['machine']})",
                     f"measured, {100 * gpu['ratio']:.1f}% of bf16 peak", human(gpu_trial),
                     human(TRIALS * gpu_trial), f"{paper_s / (TRIALS * gpu_trial):.3g}x"])
    ops = ops_per_batch()
    batches = epochs * (math.ceil(TRAIN / 15) + math.ceil(VAL / 60) / 3)
    host = batches * ops * HOST_S_PER_OP
    for label, flops, traffic in (("reference config", ref_flops, ref_bytes),
                                  ("search-space mean", mean_flops, mean_bytes)):
        compute, memory = flops / (H100_BF16_PEAK * eff), traffic / H100_BANDWIDTH
        device_s = max(compute, memory)
        how = (f"projected: compute {human(compute)} at {100 * eff:.1f}% of 989 TFLOP/s bf16, "
               f"memory {human(memory)} at 3.35 TB/s, host {human(host)} "
               f"({ops:.0f} ops/batch x 5 µs)")
        for concurrent in (1, CONCURRENT):
            total = max(TRIALS * device_s, TRIALS * host / concurrent) + TRIALS * overhead_s / concurrent
            rows.append([f"H100 SXM, {label}, {concurrent} trial(s) per GPU", how,
                         human(total * concurrent / TRIALS), human(total),
                         f"{paper_s / total:.3g}x"])
    implied = TRIALS * ref_flops / paper_s
    lines = [
        "# Projected wall time of the 70-trial ELoR search (full IEMOCAP scale)", "",
        f"Scale: {WINDOWS} windows, test speaker ({TEST_SPEAKER}) left out, {TRAIN} training + "
        f"{VAL} validation windows, {epochs} epochs, alternate updates, batch 15; "
        f"{TRIALS} trials, one after another.", "",
        f"- CPU measured: {cpu['machine']}; {1e3 * cpu['train_s']:.0f} ms per training window, "
        f"{1e3 * cpu['eval_s']:.0f} ms per validation window (process CPU time "
        f"{1e3 * cpu['train_cpu_s']:.0f} and {1e3 * cpu['eval_cpu_s']:.0f} ms); "
        f"{100 * cpu['ratio']:.1f}% of the fp32 peak measured in the same run ({C.si(cpu['peak'])}).",
        f"- FLOPs (raylab.models.flops): reference ELoR trial {ref_flops / 1e15:.3f} PFLOP "
        f"({window_flops('elor', ref, 'alternate', 15).train / 1e9:.2f} GFLOP per training "
        f"window); the search space's uniform mean {mean_flops / 1e15:.3f} PFLOP "
        f"({mean_flops / ref_flops:.2f}x the reference).",
        f"- Per-trial overhead added: {overhead_s:g} s (bench/search_overhead.py measures it).",
        f"- H100 rows: **assumed** datasheet peak (SXM5, dense bf16 989.4 TFLOP/s, HBM3 3.35 TB/s), "
        f"efficiency = the CPU's measured ratio to peak ({100 * eff:.1f}%) unless measured on a "
        f"GPU; memory floor: {ACCESSES_PER_ELEMENT} bf16 accesses per conv-output element per "
        f"training round; host: aten ops per batch counted on the real `fit` x 5 µs (assumed); "
        f"a trial takes max(compute, memory, host); {CONCURRENT} trials per GPU (the search "
        f"space's 0.25 GPU per trial) overlap their host work, not their GPU work.",
        f"- The paper: {PAPER_DAYS} GPU-days on a GTX 1080 (fp32 peak 8.87 TFLOP/s). At the "
        f"reference configuration's FLOPs that is {C.si(implied)} achieved, "
        f"{100 * implied / GTX1080_FP32_PEAK:.2f}% of that GPU's peak.", "",
        C.markdown_table(["where", "how", "per trial", f"{TRIALS} trials",
                          f"vs paper's {PAPER_DAYS} GPU-days"], rows), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-json", type=Path, default=None,
                        help="use bench/train_step.py --json rows instead of measuring")
    parser.add_argument("--steps", type=int, default=3, help="timed CPU batches")
    parser.add_argument("--efficiency", type=float, default=None,
                        help="H100 fraction of peak to assume (default: the CPU's measured ratio)")
    parser.add_argument("--trial-overhead-s", type=float, default=0.0)
    parser.add_argument("--out", type=Path, default=C.BENCH_DIR / "projection.md")
    args = parser.parse_args(argv)
    cpu = measure_cpu(args.from_json, args.steps)
    gpu = measure_gpu_epoch() if torch.cuda.is_available() else None
    text = report(cpu, gpu, args.efficiency, args.trial_overhead_s)
    C.write_atomic(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
