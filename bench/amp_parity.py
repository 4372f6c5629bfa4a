"""bf16 autocast against fp32: the small ELoR trained on synthetic tones in both, for a few seeds.

bf16 autocast is raylab's default on CUDA (`TrainConfig.amp`); `--set amp=false` trains in fp32.
This script checks that the choice does not change what the network learns: for each seed it
trains the same network on the same data in bf16 and in fp32 and prints the validation accuracy
(WAR) and UAR of both dimensions. bf16 ≈ fp32 holds when the bf16-fp32 difference of each seed is
within the spread of fp32 over the seeds. Synthetic windows: the arousal class sets a tone's
loudness and pitch (learnable); valence is random (chance, 0.2, in both). GPU only; without CUDA
it prints "no CUDA device; nothing measured" and exits 0.

    .venv/bin/python bench/amp_parity.py            # --seeds 3 --epochs 4 --windows 600
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time

import numpy as np
import torch

from raylab import SAMPLE_RATE, WINDOW_SAMPLES as SAMPLES
from raylab.models import build_model
from raylab.train.loop import ArraySet, fit
from raylab.train.params import TrainConfig, compute_dtype, split_params



def tones(n: int, seed: int) -> ArraySet:
    """`n` 6 s windows whose arousal class sets the loudness and pitch of a noisy tone."""
    rng = np.random.default_rng(seed)
    t = np.arange(SAMPLES, dtype=np.float32) / SAMPLE_RATE
    arousal = rng.integers(0, 5, n)
    valence = rng.integers(0, 5, n)
    waves = np.empty((n, SAMPLES), np.float32)
    for i, a in enumerate(arousal):
        waves[i] = (0.05 + 0.18 * a) * np.sin(2 * np.pi * (150 + 100 * a) * t + rng.uniform(0, 6.3))
        waves[i] += 0.02 * rng.standard_normal(SAMPLES).astype(np.float32)
    return ArraySet({"waveform": waves}, {"valence": valence, "arousal": arousal},
                    np.array([f"w{i}" for i in range(n)]))


def train_once(data: ArraySet, seed: int, amp: bool, epochs: int,
               device: str = "cuda") -> tuple[dict, float]:
    kwargs, cfg = split_params("elor", {"preset": "small", "epochs": epochs, "seed": seed})
    cfg = dataclasses.replace(cfg, device=device, amp=amp)
    n = len(data)
    order = np.random.default_rng(seed).permutation(n)
    train, val = data.view(order[: int(0.8 * n)]), data.view(order[int(0.8 * n):])
    torch.manual_seed(seed)
    model = build_model("elor", **{**kwargs, "input_samples": SAMPLES})
    start = time.perf_counter()
    result = fit(model, train, val, cfg)
    return result.val_metrics, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--windows", type=int, default=600)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device; nothing measured")
        return 0
    data = tones(args.windows, seed=1234)
    print(f"small ELoR (preset small), {args.windows} synthetic windows (80/20), {args.epochs} "
          f"epochs, Table 1 training values, on {torch.cuda.get_device_name()}")
    print(f"{'seed':>4} {'dtype':>5}  {'arousal WAR':>11} {'UAR':>6}  {'valence WAR':>11} {'UAR':>6}  {'s':>6}")
    war: dict[str, list[float]] = {"bf16": [], "fp32": []}
    for seed in range(args.seeds):
        for amp in (True, False):
            dtype = compute_dtype(TrainConfig(amp=amp), "cuda")
            m, seconds = train_once(data, seed, amp, args.epochs)
            war[dtype].append(m["arousal_war"])
            print(f"{seed:>4} {dtype:>5}  {m['arousal_war']:>11.3f} {m['arousal_uar']:>6.3f}  "
                  f"{m['valence_war']:>11.3f} {m['valence_uar']:>6.3f}  {seconds:>6.1f}", flush=True)
    diffs = [b - f for b, f in zip(war["bf16"], war["fp32"])]
    spread = statistics.stdev(war["fp32"]) if len(war["fp32"]) > 1 else float("nan")
    print(f"arousal WAR: bf16 mean {statistics.mean(war['bf16']):.3f}, fp32 mean "
          f"{statistics.mean(war['fp32']):.3f}; bf16 - fp32 per seed "
          f"{', '.join(f'{d:+.3f}' for d in diffs)}; fp32 std over seeds {spread:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
