"""Do the generalized signals of a trained network order by the demo corpus's planted cues?

For every method and seed: `analysis.generalize.generalize` on the run's network, then the
Spearman ρ between class and each cue measure (`analysis.generalize.demo_cues`), as a table.
Methods with a data prior by default (prosody) fit it on the run's windows of the other speakers,
as `raylab analyze generalize` does; `--no-prior` leaves it out.
Usage: python bench/generalize_cues.py RUN [--methods prosody,speech,paper] [--seeds 0,1,2]
       [--steps N] [--no-prior]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from raylab import NUM_CLASSES


def main() -> None:
    from analysis import runs
    from analysis.generalize import cue_checks, data_prior, demo_cues, generalize
    from analysis.methods import with_prior as prior_of
    from raylab.runtime.settings import results_dir

    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--methods", default="prosody,speech,paper")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, help="default: each method's")
    parser.add_argument("--heads", default="arousal,valence", help="heads whose signals to make")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--no-prior", action="store_true", help="leave out the data prior")
    args = parser.parse_args()
    torch.set_num_threads(1)
    target = runs.resolve(args.run, None, None, results_dir(None))
    with_prior = {m: prior_of(m, args.no_prior) for m in args.methods.split(",")}
    dataset = runs.load_data(target, audio=any(with_prior.values()))
    samples, sr = int(dataset.meta["window_samples"]), target.sample_rate
    print("test metrics", runs.fold_test_metrics(target), flush=True)
    prior = data_prior(target, dataset) if any(with_prior.values()) else None
    rows = []
    for method in args.methods.split(","):
        for seed in map(int, args.seeds.split(",")):
            start = time.perf_counter()
            targets = [(h, c) for h in args.heads.split(",") for c in range(NUM_CLASSES)]
            result = generalize(target.model, samples, args.steps, method=method, seed=seed,
                                sample_rate=sr, targets=targets,
                                prior=prior if with_prior[method] else None)
            seconds = time.perf_counter() - start
            for check in cue_checks(result.signals, sr, demo_cues(), min_rho=0.9):
                row = {"method": method, "seed": seed, "prior": with_prior[method],
                       "seconds": round(seconds, 1), **check}
                rows.append(row)
                rho = "undef" if check["spearman"] is None else f"{check['spearman']:+.2f}"
                print(f"{method:7s} seed {seed}  {check['dimension']:8s} {check['measure']:17s} "
                      f"rho {rho:>6s} expected {check['expected_sign']:+d} ordered "
                      f"{check['ordered']!s:5s} values {[round(v, 3) for v in check['values']]} "
                      f"({seconds:.0f} s)", flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=1)


if __name__ == "__main__":
    main()
