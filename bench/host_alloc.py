"""CPU training with glibc's default allocator settings against raylab's (`raylab.runtime.hostmem`).

The settings must be in place when a process starts, so each measurement is a fresh process:
`bench/train_step.py` with RAYLAB_HOST_ALLOCATOR=system, then =tuned, alternating for `--rounds`
rounds (a machine whose load drifts then touches both alike). Per variant it prints the median
windows/s, process CPU-ms per window and % of peak of each configuration, and the process's peak
resident memory and minor page faults (from `wait4`), so the memory the tuned allocator keeps for
reuse is shown next to the time it saves.

Usage: python bench/host_alloc.py [--rounds 3] [--networks elor] [--updates alternate,joint]
       [--batches 15] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

VARIANTS = ("system", "tuned")


def measure(variant: str, train_args: list[str]) -> tuple[list[dict], dict]:
    """One `train_step.py` process under `variant`: its rows and its rusage."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        env = {**os.environ, "RAYLAB_HOST_ALLOCATOR": variant}
        proc = subprocess.Popen([sys.executable, str(C.BENCH_DIR / "train_step.py"), *train_args,
                                 "--json", str(out)], env=env, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"train_step.py under RAYLAB_HOST_ALLOCATOR={variant} failed")
        rows = json.loads(out.read_text())
    return rows, {"maxrss_mb": usage.ru_maxrss / 1024, "minflt": usage.ru_minflt}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--networks", default="elor")
    parser.add_argument("--updates", default="alternate,joint")
    parser.add_argument("--batches", default="15")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    train_args = ["--device", "cpu", "--networks", args.networks, "--updates", args.updates,
                  "--batches", args.batches, "--steps", "3"]
    if args.threads:
        train_args += ["--threads", str(args.threads)]
    print(f"# {C.machine('cpu')}", flush=True)
    tick = time.perf_counter()
    results: dict[str, list] = {v: [] for v in VARIANTS}
    for i in range(args.rounds):
        for variant in VARIANTS:
            rows, usage = measure(variant, train_args)
            results[variant].append((rows, usage))
            summary = ", ".join(f"{r['network']} {r['update']} b{r['batch']} "
                                f"{1e3 * r['s_per_window']:.0f} ms/window" for r in rows)
            print(f"round {i + 1} {variant:6s}: {summary}; peak RSS {usage['maxrss_mb']:.0f} MB, "
                  f"{usage['minflt']} minor faults", flush=True)
    head = ["network", "update", "batch", "allocator", "ms/window", "CPU-ms/window", "% of peak",
            "speed-up", "peak RSS (process)", "minor faults (process)"]
    body = []
    keys = [(r["network"], r["update"], r["batch"]) for r in results["system"][0][0]]
    for j, key in enumerate(keys):
        base = None
        for variant in VARIANTS:
            runs = results[variant]
            s = statistics.median(rows[j]["s_per_window"] for rows, _ in runs)
            cpu = statistics.median(rows[j]["cpu_s_per_window"] for rows, _ in runs)
            pct = statistics.median(rows[j]["pct_peak"] for rows, _ in runs)
            rss = statistics.median(u["maxrss_mb"] for _, u in runs)
            faults = statistics.median(u["minflt"] for _, u in runs)
            base = base or s
            body.append([*key, variant, f"{1e3 * s:.1f}", f"{1e3 * cpu:.1f}", f"{pct:.1f}%",
                         f"{base / s:.2f}x", f"{rss:.0f} MB", f"{faults:.0f}"])
    print("\n" + C.markdown_table(head, body))
    print(f"\n(medians of {args.rounds} rounds; RSS and faults are per process, all its "
          f"configurations; total {time.perf_counter() - tick:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
