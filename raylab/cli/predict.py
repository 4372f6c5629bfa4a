"""`raylab predict --run RUN PATH...`: class probabilities of valence and arousal for any audio."""
from __future__ import annotations

import argparse
import sys

from raylab.runtime.settings import results_dir


def register(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "predict", parents=[common], help="predict valence and arousal of audio files with a trained run",
        description="Cut WAV/FLAC files (any rate, mono or stereo, any length) into the training "
                    "windows and predict each window and file with a trained network: the mean of "
                    "a ten-fold run's fold networks, or one (--fold). Probabilities of ratings 1-5, "
                    "the most probable rating and the expected rating per dimension.")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="WAV or FLAC files, folders of them, or CSV manifests with a `path` column")
    parser.add_argument("--run", required=True, metavar="RUN",
                        help="run folder, fold folder, checkpoint file or MLflow run id")
    parser.add_argument("--fold", metavar="SPEAKER", help="only this fold's network (default: all, averaged)")
    parser.add_argument("--out", metavar="FILE", help="write the table to FILE (.csv or .parquet; default: only the "
                                                     "summary, printed)")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="predict the readable files and list the others (default: stop at the first)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="windows per forward pass")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="Ray tasks reading files and computing features at once when there "
                             "are more than 8 files (default: every CPU; 1: in this process)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from raylab.predict.ray_batch import predict_paths
    from raylab.predict.runner import load_predictor
    from raylab.predict.tables import summary, write_table
    from raylab.runtime.settings import log_file

    results = results_dir(args.results)
    predictor = load_predictor(args.run, args.fold, results, args.device, args.batch_size)
    print(predictor.describe(), flush=True)
    # more than a few files start Ray: its output and the workers' to the log, as for features
    result = predict_paths(predictor, args.paths, args.skip_invalid, args.workers,
                           ray_log=log_file(results, command="predict"), verbose=args.verbose)
    for name, note in result.notes:
        print(f"{name}: {note}")
    print(summary(result.frame))
    if args.out:
        print(f"wrote {write_table(result.frame, args.out)} ({result.windows} windows)")
    for path, problem in result.skipped:
        print(f"raylab: skipped {problem}", file=sys.stderr)
    return 0 if result.windows else 1
