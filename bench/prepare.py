"""Dataset preparation throughput: audio seconds per wall second, for 1, 2, ... worker processes.

Makes its own synthetic corpus (the demo corpus, IEMOCAP layout, 16 kHz WAV) in a temporary folder,
then times `prepare_iemocap` end to end (label parsing, WAV reading and checks, windowing, Parquet
writing). The target is >= 100x real time per core.

    .venv/bin/python bench/prepare.py [--turns-per-speaker 60] [--workers 1,2] [--repeat 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from raylab.data.corpora.demo import write_demo_corpus
from raylab.data.prepare import prepare_iemocap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns-per-speaker", type=int, default=60)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--repeat", type=int, default=2, help="runs per worker count (best is shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="raylab-bench-") as tmp:
        started = time.perf_counter()
        corpus = write_demo_corpus(Path(tmp) / "corpus", seed=0, turns_per_speaker=args.turns_per_speaker)
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
              f"corpus: 10 speakers x {args.turns_per_speaker} turns, synthesised in "
              f"{time.perf_counter() - started:.1f} s")
        print(f"{'workers':>8}{'audio s':>10}{'wall s':>9}{'x real time':>13}{'per worker':>12}{'windows':>9}")
        for workers in (int(w) for w in args.workers.split(",")):
            best = None
            for _ in range(args.repeat):
                started = time.perf_counter()
                summary = prepare_iemocap(corpus, Path(tmp) / f"data-{workers}", workers=workers)
                wall = time.perf_counter() - started
                best = wall if best is None else min(best, wall)
            speed = summary.audio_seconds / best
            print(f"{workers:>8}{summary.audio_seconds:>10.0f}{best:>9.2f}{speed:>13.0f}"
                  f"{speed / workers:>12.0f}{summary.windows:>9}")


if __name__ == "__main__":
    main()
