"""`raylab tune ARCH`: the TPE search on Ray Tune; `raylab search-spaces validate FILE...`."""
from __future__ import annotations

import argparse
import sys


def register(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "tune", parents=[common], help="TPE hyperparameter search of one network (section 3.3)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Search the hyperparameters of ARCH with TPE (hyperopt) on Ray Tune: the "
                    "paper's values first, then\nsearch_spaces/ARCH.yaml's budget, each trial one "
                    "training run on the fixed search split\n(one fold's nine training speakers, "
                    "80/20), tracked in MLflow (a parent run, a child per trial).\n\n"
                    "Without --data and --num-samples it runs the demo budget of the file's "
                    "`demo:` section on the\nbuilt-in demo corpus: 4 short trials (2-4 epochs) of a "
                    "toy-size network, a few minutes on a 2-core laptop.\n"
                    "Writes <results>/<name>/best.yaml (for `raylab train ARCH --config`) and "
                    "run.json.")
    parser.add_argument("arch", metavar="ARCH", help="network: elor, lom, ftr or elor_ftr")
    parser.add_argument("--data", metavar="D",
                        help="dataset folder or URI (default: the demo corpus, demo budget)")
    parser.add_argument("--space", metavar="FILE",
                        help="search-space file (default: search_spaces/ARCH.yaml)")
    parser.add_argument("--num-samples", type=int, metavar="N", help="trial budget (default: file)")
    parser.add_argument("--gpus-per-trial", type=float, metavar="G",
                        help="GPU share per trial, e.g. 0.25 (default: file; 0 without a GPU)")
    parser.add_argument("--cpus-per-trial", type=float, metavar="C", help="CPUs per trial (default: the file's, at most this "
                                                                    "machine's)")
    parser.add_argument("--max-concurrent", type=int, metavar="M", help="trials in flight at most (default: the file's)")
    parser.add_argument("--scheduler", choices=("fifo", "asha"),
                        help="fifo: every trial to its last epoch (the paper); asha: stop poor "
                             "trials early (default: fifo)")
    parser.add_argument("--seed", type=int,
                        help="seeds TPE, the search split and training (default: 0)")
    parser.add_argument("--name", metavar="N", help="run name (default: ARCH-search)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted search --name with its saved space, data, "
                             "budget, seed, scheduler, epochs, concurrency and retries (finished "
                             "trials are kept, none runs twice)")
    parser.add_argument("--address", metavar="ADDR",
                        help="Ray cluster to join, e.g. auto (default: a local Ray with all "
                             "CPUs/GPUs)")
    parser.add_argument("--epochs", type=int, metavar="N", help="hold epochs fixed at N (default: the file's, searched "
                                                                 "or fixed)")
    parser.add_argument("--no-track", action="store_true", help="no MLflow runs")
    parser.add_argument("--max-failures", type=int, metavar="K",
                        help="retries of a failing trial before it is recorded failed (default: 2)")
    parser.add_argument("--device", metavar="DEV", help="cpu or cuda (default: from resources)")
    parser.set_defaults(func=run)

    spaces = subparsers.add_parser(
        "search-spaces", parents=[common], help="check search-space files",
        description="Work with the search-space files of `raylab tune` (search_spaces/*.yaml).")
    actions = spaces.add_subparsers(dest="action", metavar="ACTION", required=True)
    validate = actions.add_parser(
        "validate", parents=[common], help="validate search-space files before a search",
        description="Check search-space files as `raylab tune` would, before Ray starts: known "
                    "keys, bounds in order, positive log bounds, numbers where numbers belong. "
                    "One line per file; exit status 1 when any is invalid.")
    validate.add_argument("files", nargs="+", metavar="FILE", help="search-space YAML files")
    validate.set_defaults(func=run_validate)


def run(args: argparse.Namespace) -> int:
    from raylab.runtime.console import quiet
    from raylab.runtime.runlock import run_lock
    from raylab.runtime.settings import log_file, results_dir
    from raylab.search.driver import SearchOptions, run_search
    from raylab.search.results import format_summary

    results = results_dir(args.results)
    name = args.name or f"{args.arch}-search"
    with run_lock(results, name), quiet(log_file(results, name), args.verbose):
        result = run_search(args.arch, args.data, SearchOptions(
            space_file=args.space, num_samples=args.num_samples,
            gpus_per_trial=args.gpus_per_trial, cpus_per_trial=args.cpus_per_trial,
            max_concurrent=args.max_concurrent, scheduler=args.scheduler, seed=args.seed,
            name=args.name, resume=args.resume, address=args.address, track=not args.no_track,
            epochs=args.epochs, max_failures=args.max_failures, device=args.device),
            results=results)
    print(format_summary(result))
    return 0 if result.complete else 130


def run_validate(args: argparse.Namespace) -> int:
    from raylab.errors import ConfigError
    from raylab.search.space import load_search_space

    failed = 0
    for path in args.files:
        try:
            space = load_search_space(path)
            print(f"{path}: ok ({space.arch}, {len(space.params)} parameters, "
                  f"{space.num_samples} trials)")
        except ConfigError as err:
            failed += 1
            print(f"raylab: error: {err}", file=sys.stderr)  # names the file and the key
    return 1 if failed else 0
