"""The paper's 70-trial ELoR search on equal work: its 49 GTX-1080 days against our time for the
same, paper-scale network (Trigeorgis-centred: conv 40x80 pool 2, conv 40x4000 pool 20, ...).

Scale: 8522 windows (E2); the test speaker's ~1/10 left out (852), the rest split 80/20 into
6136 training and 1534 validation windows; 9 epochs (Table 1), each followed by a validation pass;
alternate updates, batch 15. In one run, side by side, this script measures through the real
`fit`/`predict`:
- the paper-scale ELoR (the search's start point, `conv_impl="auto"`: conv2's 4000 taps by FFT);
- the small network (`preset=small`, conv2/conv3 40x10, the direct convolution): a separate,
  labelled row, never compared with the paper's budget.
The search space's mean trial (`raylab.models.flops.mean_trial_flops`) is projected from the
measured start point by the ratio of direct-convolution FLOPs (an estimate: the FFT route's time
does not follow those FLOPs exactly). On a CUDA machine `bench/gpu_paper_scale.py` measures the
GPU figures; without one no GPU row is invented here.
Writes bench/projection.md and prints it. Usage: python bench/projection.py [--steps N]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from train_step import time_evaluation, time_training  # noqa: E402

from raylab.models.flops import (IEMOCAP_TRAIN as TRAIN, IEMOCAP_VAL as VAL,  # noqa: E402
                                 mean_trial_flops, trial_flops)
from raylab.models.presets import SMALL_CNN  # noqa: E402
from raylab.search.space import default_space_file, load_search_space  # noqa: E402
from raylab.train.params import PAPER_HPARAMS  # noqa: E402

TRIALS, PAPER_DAYS = 70, 49
GTX1080_FP32_PEAK = 8.87e12      # datasheet, boost clock (an assumption, not a measurement)
NETWORKS = {"paper-scale ELoR (start point, conv_impl auto)": {},
            "small ELoR (preset small, direct convolution)": {**SMALL_CNN, "conv_impl": "direct"}}


def measure(model_kwargs: dict, steps: int) -> dict:
    """Seconds per training window (alternate, batch 15) and per validation window."""
    row = time_training("elor", "alternate", 15, "cpu", False, steps, 1, model_kwargs=model_kwargs)
    evaluation = time_evaluation("elor", "cpu", False, batch=15, windows=30,
                                 model_kwargs=model_kwargs)
    return {"train_s": row["s_per_window"], "eval_s": evaluation["s"],
            "train_cpu_s": row["cpu_s_per_window"], "threads": row["threads"],
            "load": row["load"]}


def human(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def report(times: dict[str, dict], peak: float) -> str:
    epochs = PAPER_HPARAMS["elor"]["epochs"]
    paper_s = PAPER_DAYS * 86400
    space = load_search_space(default_space_file("elor"), "elor")
    start_flops = trial_flops("elor", {})
    mean_flops = mean_trial_flops(space, samples=500)
    rows = []
    for label, t in times.items():
        trial = epochs * (TRAIN * t["train_s"] + VAL * t["eval_s"])
        idle = epochs * TRAIN * t["train_cpu_s"] / t["threads"] + epochs * VAL * t["eval_s"]
        paper = label.startswith("paper")
        versus = f"{paper_s / (TRIALS * trial):.3g}x" if paper else "not comparable (other network)"
        rows.append([f"{label}, this CPU", "measured per-window wall time (shared machine)",
                     f"{1e3 * t['train_s']:.0f} / {1e3 * t['eval_s']:.0f}", human(trial),
                     human(TRIALS * trial), versus])
        if paper:
            rows.append([f"{label}, this CPU if idle", "measured process CPU time / threads",
                         "", human(idle), human(TRIALS * idle), f"{paper_s / (TRIALS * idle):.3g}x"])
            mean = trial * mean_flops / start_flops
            rows.append(["paper-scale search-space mean, this CPU", "estimated: the start point's "
                         f"measured time x the mean's direct-FLOPs ratio ({mean_flops / start_flops:.2f}x)",
                         "", human(mean), human(TRIALS * mean), f"{paper_s / (TRIALS * mean):.3g}x"])
    implied = TRIALS * start_flops / paper_s
    first = next(iter(times.values()))
    return "\n".join([
        "# The 70-trial ELoR search on equal work (IEMOCAP scale)", "",
        f"Scale: {TRAIN} training + {VAL} validation windows, {epochs} epochs, alternate updates, "
        f"batch 15; {TRIALS} trials one after another. Machine: {C.machine('cpu')}; fp32 peak "
        f"measured in the same run {C.si(peak)}; load average at the paper-scale measurement "
        f"{first['load']}.", "",
        f"- The paper: {PAPER_DAYS} GPU-days on a GTX 1080 for the paper-scale network. Its start "
        f"point costs {start_flops / 1e15:.0f} PFLOP per trial as a direct convolution "
        f"(raylab.models.flops), the space's mean {mean_flops / 1e15:.0f} PFLOP; 70 start-point "
        f"trials in 49 days is {C.si(implied)} achieved, {100 * implied / GTX1080_FP32_PEAK:.0f}% "
        f"of that GPU's fp32 peak.",
        "- GPU: not measured here; `bench/gpu_paper_scale.py` measures the paper-scale epoch and the "
        "70-trial search on a CUDA GPU (its output, where a GPU was lent, is in bench/).", "",
        C.markdown_table(["network, where", "how", "ms per train / val window", "per trial",
                          f"{TRIALS} trials", f"vs the paper's {PAPER_DAYS} GPU-days"], rows), ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed CPU batches per network")
    parser.add_argument("--out", type=Path, default=C.BENCH_DIR / "projection.md")
    args = parser.parse_args(argv)
    peak = C.measure_peak("cpu", torch.float32, repeats=3)
    times = {label: measure(kwargs, args.steps) for label, kwargs in NETWORKS.items()}
    peak = max(peak, C.measure_peak("cpu", torch.float32, repeats=3))
    text = report(times, peak)
    C.write_atomic(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
