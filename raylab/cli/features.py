"""`raylab features`: compute (or reuse) a dataset's IS10 and MFCC feature files on Ray."""
from __future__ import annotations

import argparse


def register(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "features", parents=[common], help="compute IS10 and MFCC features of a dataset",
        description="Write features_is10.parquet (1582 openSMILE IS10 functionals per window) and "
                    "features_mfcc.parquet (26 MFCCs x 599 frames per window) into the dataset "
                    "folder, spreading the windows over Ray tasks. Current files are reused.")
    parser.add_argument("data", nargs="?", metavar="DATA",
                        help="dataset folder or URI (default: the built-in demo dataset)")
    parser.add_argument("--is10", action="store_true", help="IS10 functionals (default: both)")
    parser.add_argument("--mfcc", action="store_true", help="MFCCs (default: both)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="Ray tasks at once (default: every CPU of the Ray cluster)")
    parser.add_argument("--force", action="store_true", help="recompute even current files")
    parser.add_argument("--address", metavar="ADDR",
                        help="Ray cluster to join (default: $RAY_ADDRESS or a local Ray)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raylab.data.features import KINDS, compute_features
    from raylab.runtime.console import CountBar, quiet
    from raylab.runtime.settings import log_file, results_dir

    results = results_dir(args.results)
    data = args.data
    if data is None:
        from raylab.data.demo_cache import resolve_data

        data = resolve_data(None, results)
    kinds = [kind for kind in KINDS if getattr(args, kind)] or list(KINDS)
    with quiet(log_file(results, command="features"), args.verbose), \
            CountBar(f"features {'+'.join(kinds)}", "windows") as bar:
        report = compute_features(data, kinds=kinds, workers=args.workers, force=args.force,
                                  address=args.address, progress=bar)
    for kind, info in report.items():
        took = "" if info["status"] == "reused" else (
            f" ({info['seconds']:.1f} s of extraction, {info['wall_seconds']:.1f} s wall)")
        print(f"{kind}: {info['windows']} windows, {info['status']}{took}: {info['path']}")
    return 0
