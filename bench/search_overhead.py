"""What Ray Tune costs a `raylab tune` trial, and the memory of N trials sharing one dataset.

    .venv/bin/python bench/search_overhead.py [--windows 200 800] [--concurrency 1 2 4] [--epochs 2]

Writes a synthetic dataset (random int16 noise, 6 s windows at 16 kHz, 10 speakers: 800 windows
are 147 MiB of audio) and runs `raylab.search.driver.run_search` on it once per concurrency N: N trials
of a toy ELoR, all N at once (cpus per trial 1 or less), tracking off. Printed per N:
- trial wall: from Tune starting the trial to its completion, seen by the driver; fit: the sum of
  the trial's epoch times (`fit()`); overhead = wall - fit (actor start, imports, fetching the
  dataset from the object store, building the model, reporting), averaged over the N trials;
- memory of the trial processes, read at every epoch report (the largest sum is kept):
  RSS (counts the object-store pages each process maps, so shared data is counted N times),
  PSS (shared pages divided among the processes that map them: the physical memory they use),
  USS (private memory only; "shared per trial" = (RSS - USS) / N); the peak PSS sum sampled
  every 0.1 s (it includes transient allocations of the evaluation pass); and the bytes
  allocated in the node's object store.
The dataset is put into the object store once; if a trial copied it, its USS would grow by the
dataset size, so USS per trial would rise with --windows and the USS sum with N x dataset.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from raylab import SAMPLE_RATE as SR, WINDOW_SAMPLES as SAMPLES
from raylab.runtime import hostmem

SPEAKERS = [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]
SPACE = """\
arch: elor
num_samples: {n}
n_initial_points: {n}
max_concurrent: {n}
resources: {{cpus_per_trial: {cpus}, gpus_per_trial: 0}}
fixed: {{update: joint, epochs: {epochs}, conv1_filters: 1, conv1_kernel: 16, pool1: 50,
        conv2_filters: 2, conv2_kernel: 2, pool2: 10, conv3_filters: 2, conv3_kernel: 2,
        pool3: 2, hidden1: 8, hidden2: 4}}
space:
  lr: {{type: float, low: 1.0e-4, high: 1.0e-1, log: true}}
"""


def make_dataset(out: Path, windows: int, seed: int = 0) -> Path:
    from raylab.data.dataset import DatasetWriter, Window

    rng = np.random.default_rng(seed)
    with DatasetWriter(out, SAMPLES) as writer:
        for i in range(windows):
            speaker = SPEAKERS[i % len(SPEAKERS)]
            audio = (rng.standard_normal(SAMPLES) * 3000).astype(np.int16)
            writer.add([Window(f"w{i:05d}", f"{speaker}_u{i:05d}", speaker, int(speaker[4]), 0,
                               audio, int(rng.integers(5)), int(rng.integers(5)))])
        return writer.commit({"sample_rate": SR, "corpus": "manifest", "evaluator": "synthetic",
                              "speakers": {s: windows // len(SPEAKERS) for s in SPEAKERS}})


def object_store_bytes() -> float:
    """Bytes allocated in this node's object store: the tmpfs blocks of the (unlinked)
    /dev/shm/plasma* file the raylet maps. Linux only; 0 when it cannot be read."""
    import ray

    try:
        raylet = ray._private.worker._global_node.all_processes["raylet"][0].process.pid
        with open(f"/proc/{raylet}/maps") as maps:
            for line in maps:
                if "/dev/shm/plasma" in line:
                    return float(os.stat(f"/proc/{raylet}/map_files/{line.split()[0]}").st_blocks * 512)
    except (OSError, KeyError, AttributeError):
        pass
    return 0.0


def memory(pids) -> dict[str, float]:
    """RSS, PSS and USS summed over `pids` (processes that ended are skipped)."""
    import psutil  # vendored by Ray (ray/thirdparty_files)

    sums = {"rss": 0.0, "pss": 0.0, "uss": 0.0}
    for pid in set(pids):
        try:
            info = psutil.Process(pid).memory_full_info()
        except psutil.Error:
            continue
        for key in sums:
            sums[key] += getattr(info, key)
    return sums


def _trial_clock():
    """A Tune callback (picklable: Tune saves it with the experiment) timing every trial and
    reading the trial processes' memory at every epoch report (the steady state)."""
    from ray.tune import Callback

    class TrialClock(Callback):
        def __init__(self) -> None:
            self.start, self.fit, self.wall, self.pids = {}, {}, {}, {}
            self.steady = {"rss": 0.0, "pss": 0.0, "uss": 0.0}

        def on_trial_start(self, iteration, trials, trial, **info):
            self.start[trial.trial_id] = time.perf_counter()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.fit[trial.trial_id] = self.fit.get(trial.trial_id, 0.0) + result["epoch_seconds"]
            self.pids[trial.trial_id] = result["pid"]
            now = memory(self.pids.values())
            if now["pss"] > self.steady["pss"]:
                self.steady = now

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.wall[trial.trial_id] = time.perf_counter() - self.start[trial.trial_id]
            self.pids.pop(trial.trial_id, None)

    return TrialClock()


class PeakSampler:
    """Every 0.1 s, the PSS summed over the live trial processes; keeps the largest sum."""

    def __init__(self, clock) -> None:
        self.clock, self.peak, self.store = clock, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, memory(list(self.clock.pids.values()))["pss"])
            self.store = max(self.store, object_store_bytes())

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run(n: int, data: Path, epochs: int, folder: Path, cpus: int) -> dict:
    from raylab.search.driver import SearchOptions, run_search

    space = folder / f"space-{n}.yaml"
    space.write_text(SPACE.format(n=n, cpus=min(1.0, cpus / n), epochs=epochs))
    clock = _trial_clock()
    with PeakSampler(clock) as sampler:
        result = run_search("elor", str(data), SearchOptions(
            space_file=space, name=f"bench-{n}", track=False, max_failures=0),
            results=folder, callbacks=[clock])
    assert all(t.status == "FINISHED" for t in result.trials), result.trials
    wall = np.mean(list(clock.wall.values()))
    fit = np.mean([clock.fit[i] for i in clock.wall])
    return {"n": n, "wall": wall, "fit": fit, "overhead": wall - fit, "peak_pss": sampler.peak,
            "store": sampler.store, **clock.steady}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, nargs="+", default=[800],
                        help="dataset sizes to run (default: 800 windows, 154 MB of audio)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    import ray

    cpus = os.cpu_count() or 1
    mb = 2 ** 20
    print("| windows | audio MB | trials at once | trial wall s | fit s | overhead s | "
          "RSS sum MB | PSS sum MB | USS sum MB | USS per trial MB | shared per trial MB | "
          "peak PSS sum MB | object store MB |")
    print("|" + "---|" * 13)
    for windows in args.windows:
        with tempfile.TemporaryDirectory(prefix="raylab-bench-") as tmp:
            folder = Path(tmp)
            data = make_dataset(folder / "data", windows)
            audio = windows * SAMPLES * 2
            for n in args.concurrency:
                # a fresh Ray per row: tune.with_parameters keeps its object references for the
                # life of the process, so a second search in one Ray would find the first's data
                ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                         logging_level="ERROR", object_store_memory=max(2 * 2**30, 3 * audio),
                         runtime_env=hostmem.ray_runtime_env())  # as `raylab tune` starts Ray
                r = run(n, data, args.epochs, folder, cpus)
                ray.shutdown()
                print(f"| {windows} | {audio / mb:.0f} | {n} | {r['wall']:.1f} | {r['fit']:.1f} | "
                      f"{r['overhead']:.1f} | {r['rss'] / mb:.0f} | {r['pss'] / mb:.0f} | "
                      f"{r['uss'] / mb:.0f} | {r['uss'] / mb / n:.0f} | "
                      f"{(r['rss'] - r['uss']) / mb / n:.0f} | {r['peak_pss'] / mb:.0f} | "
                      f"{r['store'] / mb:.0f} |", flush=True)
    print(f"(toy ELoR, {args.epochs} epochs, {cpus} CPUs; memory sums over the trial processes, "
          "read at the epoch reports; peak: sampled every 0.1 s)")


if __name__ == "__main__":
    main()
