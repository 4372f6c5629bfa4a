"""`raylab doctor`: Ray, GPUs, the MLflow store, datasets and the pinned packages, one line each."""
from __future__ import annotations

import argparse

from raylab.runtime.settings import results_dir


def register(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "doctor", parents=[common], help="check Ray, GPUs, the MLflow store, datasets, packages",
        description="Check what a run needs: Ray and the cluster's CPUs/GPUs/nodes (a local Ray "
                    "is started for a moment when no cluster is given), the GPUs torch sees, the "
                    "MLflow store, $RAYLAB_STORAGE, every dataset found (its meta.json against its "
                    "files) and the pinned packages. One line per check with how to fix it; exit "
                    "status 1 when any check FAILs.")
    parser.add_argument("--address", metavar="ADDR",
                        help="Ray cluster to inspect (`auto` on a cluster node; default: "
                             "$RAY_ADDRESS, else this machine)")
    parser.add_argument("--data", metavar="D", nargs="+", action="extend", default=[],
                        help="dataset folders or URIs to check, besides the demo dataset and "
                             "every folder under ./data with a meta.json (default: only those)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raylab.runtime.doctor import FAIL, format_checks, run_checks

    checks = run_checks(results_dir(args.results), address=args.address, data=args.data)
    print(format_checks(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0
