"""`raylab runs delete NAME...` and `raylab runs prune`: remove runs whole (folder, Ray state,
MLflow runs), so that no MLflow run points at a folder that is gone."""
from __future__ import annotations

import argparse


def register(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "runs", parents=[common], help="delete runs: folder, Ray state and MLflow runs together",
        description="Delete runs whole: the run folder under --results, Ray's state of the run "
                    "and its MLflow runs (the parent, its trial or fold runs, and the table5 runs "
                    "that read it; marked deleted, as MLflow's UI does, until `mlflow gc`).")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    delete = actions.add_parser("delete", parents=[common], help="delete the runs named",
                                description="Delete the runs NAME (folders <results>/NAME).")
    delete.add_argument("names", nargs="+", metavar="NAME", help="run name (its folder's name)")
    delete.add_argument("--missing-ok", action="store_true",
                        help="skip a name with no folder instead of failing")
    delete.add_argument("--no-track", action="store_true",
                        help="leave the MLflow store alone (folders and Ray state only)")
    delete.set_defaults(func=run_delete)
    prune = actions.add_parser(
        "prune", parents=[common], help="mark deleted the MLflow runs whose folders are gone",
        description="Mark deleted every MLflow run whose run folder (tag raylab.run_dir) in this "
                    "results folder no longer exists, with its child runs; runs of other results "
                    "folders or hosts are left alone.")
    prune.set_defaults(func=run_prune)


def run_delete(args: argparse.Namespace) -> int:
    from raylab.runtime.cleanup import delete_runs
    from raylab.runtime.settings import results_dir

    print(delete_runs(results_dir(args.results), args.names, args.missing_ok,
                      not args.no_track).render())
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from raylab.runtime.cleanup import prune_runs
    from raylab.runtime.settings import results_dir

    names = prune_runs(results_dir(args.results))
    print(f"marked {len(names)} MLflow run(s) deleted" + (": " + ", ".join(names) if names else ""))
    return 0
