"""`raylab report`: Table 5 (WAR/UAR per network, baselines, the paper's figures) from the runs."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from raylab.report.table5 import FORMATS, write_report
from raylab.runtime.settings import results_dir


def register(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "report", parents=[common], help="Table 5 of the paper from the ten-fold runs",
        description="Table 5: WAR/UAR of every network trained with `raylab train` (the latest "
                    "ten-fold run of each, or the runs named), the random and most-frequent-label "
                    "baselines, and the paper's published figures beside ours for runs on IEMOCAP with "
                    "evaluator E2 (listed apart for any other data).")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="md (default; or taken from --out's suffix), csv or html (standalone page)")
    parser.add_argument("--out", metavar="FILE", type=Path, help="write the table to FILE (default: print it)")
    parser.add_argument("--runs", nargs="+", metavar="NAME",
                        help="run folders to report (default: the latest run of each network)")
    parser.add_argument("--no-track", action="store_true",
                        help="do not log the table as the MLflow run `table5`")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = results_dir(args.results)
    text = write_report(results, args.format, args.out, args.runs)
    print(f"wrote {args.out}" if args.out else text, end="\n" if args.out else "")
    if not args.no_track:
        from raylab.report.table5_run import log_table5
        from raylab.runtime.tracking import ui_lines

        try:
            uri, experiment, run_id = log_table5(results, args.runs)
        except Exception as err:  # the table is written; MLflow out of reach is a warning
            print(f"raylab: warning: Table 5 not logged to MLflow ({type(err).__name__}: "
                  f"{(str(err).splitlines() or [''])[0]}); --no-track skips it", file=sys.stderr)
            return 0
        # on stderr: stdout is the table itself (`raylab report --format csv > t.csv`)
        print("\n".join(ui_lines(uri, experiment, run_id)), file=sys.stderr)
    return 0
