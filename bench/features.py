"""IS10 and MFCC extraction speed: per-window latency on one core, and `compute_features`
throughput (windows/s, seconds of audio per second) with 1, 2, ... Ray workers.

    .venv/bin/python bench/features.py [--windows 200] [--workers 1 2]

Builds its own synthetic dataset (voiced-like tones in noise, 6 s windows at 16 kHz) in a temporary
folder. Throughput runs are warm: one untimed run first starts the Ray workers and loads
opensmile and librosa's compiled code in them; that cold start is printed on its own.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

# one thread per process, as in a Ray task (Ray sets OMP_NUM_THREADS=1 there): latency is per core
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402  (after the thread limits, which numpy reads at import)

from raylab import DEFAULT_EVALUATOR, PAPER_WINDOWS  # noqa: E402
from raylab import SAMPLE_RATE as SR, WINDOW_SAMPLES as SAMPLES  # noqa: E402
from raylab.data import features  # noqa: E402
from raylab.data.dataset import DatasetWriter, Window  # noqa: E402


def synthetic_wave(i: int, rng: np.random.Generator) -> np.ndarray:
    """A 6 s window: a pitch-gliding harmonic tone with syllable-like bursts and pauses, in noise."""
    t = np.arange(SAMPLES) / SR
    f0 = 100 + 150 * rng.random() + 30 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2, 5) * t), 0, None) ** 2
    x = 0.3 * voiced * envelope + 0.01 * rng.standard_normal(SAMPLES)
    return (np.clip(x, -1, 1) * 32767).astype(np.int16)


def build_dataset(out: Path, windows: int) -> Path:
    rng = np.random.default_rng(0)
    with DatasetWriter(out, SAMPLES) as writer:
        writer.add(Window(f"Ses01F_bench_F{i:04d}_0", f"u{i}", "Ses01F", 1, 0, synthetic_wave(i, rng),
                          0, 0) for i in range(windows))
        return writer.commit({"sample_rate": SR, "min_last_samples": SAMPLES // 2, "evaluator": DEFAULT_EVALUATOR,
                              "source": "bench", "corpus": "demo", "speakers": {"Ses01F": windows},
                              "utterances": windows, "skipped": {}})


def latency(kind: str, waves: np.ndarray) -> tuple[float, float, float]:
    """Median and 90th percentile wall seconds per window of one extractor in this process, and
    its median CPU seconds (the figure that other load on the machine does not inflate)."""
    extract = features.extractor(kind)
    extract(waves[0], SR)  # warm: opensmile's config, librosa's compiled kernels
    walls, cpus = [], []
    for wave in waves:
        began, began_cpu = time.perf_counter(), time.process_time()
        extract(wave, SR)
        walls.append(time.perf_counter() - began)
        cpus.append(time.process_time() - began_cpu)
    return statistics.median(walls), float(np.percentile(walls, 90)), statistics.median(cpus)


def timed(fn, *args, **kwargs) -> float:
    began = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=None,
                        help="worker counts to time (default: 1, 2, ... up to the CPU count)")
    parser.add_argument("--latency-windows", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure; the best is shown")
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    worker_counts = args.workers or sorted({1, 2, *range(4, cpus + 1, 4), cpus} - {0})
    print(f"machine: {platform.machine()}, {cpus} CPUs, python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f} (figures are the best of {args.repeat} runs)")

    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    ray.init(num_cpus=max(cpus, max(worker_counts)), include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        with tempfile.TemporaryDirectory(prefix="raylab-bench-features-") as tmp:
            began = time.perf_counter()
            dataset = build_dataset(Path(tmp) / "ds", args.windows)
            print(f"dataset: {args.windows} windows of 6 s built in {time.perf_counter() - began:.1f} s")

            from raylab.data.dataset import load_dataset
            audio = load_dataset(dataset).audio[:args.latency_windows].astype(np.float32) / 32768
            print(f"\nper-window latency, one core, in this process ({len(audio)} windows):")
            for kind in features.KINDS:
                median, p90, cpu = min(latency(kind, audio) for _ in range(args.repeat))
                print(f"  {kind:5s} median {median * 1e3:7.1f} ms   p90 {p90 * 1e3:7.1f} ms   "
                      f"cpu {cpu * 1e3:7.1f} ms   = {6 / median:7.1f} audio-s/s")

            began = time.perf_counter()
            features.compute_features(dataset, force=True, workers=max(worker_counts))
            print(f"\ncold start (both kinds, {max(worker_counts)} workers, worker start-up "
                  f"included): {time.perf_counter() - began:.1f} s")

            print(f"\ncompute_features throughput, {args.windows} windows, warm workers:")
            print(f"  {'kinds':10s} {'workers':>7s} {'wall s':>8s} {'windows/s':>10s} "
                  f"{'audio-s/s':>10s} {'speed-up':>9s} {'IEMOCAP (8522) min':>19s}")
            for kinds in (("is10",), ("mfcc",), features.KINDS):
                base = None
                for workers in worker_counts:
                    wall = min(timed(features.compute_features, dataset, kinds=kinds, force=True,
                                     workers=workers) for _ in range(args.repeat))
                    rate = args.windows / wall
                    base = base or rate
                    print(f"  {'+'.join(kinds):10s} {workers:7d} {wall:8.2f} {rate:10.1f} "
                          f"{rate * 6:10.1f} {rate / base:8.2f}x {PAPER_WINDOWS / rate / 60:19.1f}")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
