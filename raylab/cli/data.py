"""`raylab data`: synthesise the demo corpus, inspect evaluators, prepare datasets, describe them."""
from __future__ import annotations

import sys

from raylab import DEFAULT_EVALUATOR, MIN_LAST_SECONDS, WINDOW_SECONDS
from raylab.runtime.settings import results_dir


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _prepare_options(parser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="dataset folder to write")
    parser.add_argument("--window-seconds", type=float, default=WINDOW_SECONDS,
                        help=f"window length (default {WINDOW_SECONDS:g})")
    parser.add_argument("--min-last-seconds", type=float, default=MIN_LAST_SECONDS,
                        help="keep the last cut of a long utterance only if longer (default 3)")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="leave bad utterances out (listed in rejected.csv) instead of failing")
    parser.add_argument("--resample", action="store_true",
                        help="resample WAVs that are not 16 kHz (soxr) instead of rejecting them")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")


def _print_summary(summary) -> int:
    rate = summary.audio_seconds / max(summary.wall_seconds, 1e-9)
    print(f"wrote {summary.windows} windows from {summary.utterances} utterances of "
          f"{len(summary.speakers)} speakers to {summary.path} "
          f"({summary.audio_seconds:.0f} s of audio in {summary.wall_seconds:.1f} s, {rate:.0f}x real time)")
    if summary.skipped:
        print("skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.skipped.items())))
    if summary.rejected:
        print(f"{len(summary.rejected)} rejected, listed in {summary.path}/rejected.csv")
    return 0


def cmd_demo(args) -> int:
    from raylab.data.corpora.demo import write_demo_corpus

    out = write_demo_corpus(args.out, seed=args.seed, speakers=args.speakers,
                            turns_per_speaker=args.turns_per_speaker)
    print(f"wrote the demo corpus (seed {args.seed}, {args.speakers} speakers x "
          f"{args.turns_per_speaker} turns) to {out}\n"
          f"next: raylab data prepare iemocap {out} --out DATASET")
    return 0


def cmd_evaluators(args) -> int:
    from raylab.data.corpora.iemocap import describe_evaluators

    print(describe_evaluators(args.corpus))
    return 0


def cmd_prepare_iemocap(args) -> int:
    from raylab.data.prepare import check_against_paper, prepare_iemocap

    summary = prepare_iemocap(
        args.corpus, args.out, evaluator=args.evaluator, window_seconds=args.window_seconds,
        min_last_seconds=args.min_last_seconds, skip_invalid=args.skip_invalid,
        resample=args.resample, workers=args.workers, log=_stderr)
    code = _print_summary(summary)
    for line in check_against_paper(summary.path) if summary.path else []:
        print(line)  # the full release beside the paper's windows and majority labels
    return code


def cmd_prepare_manifest(args) -> int:
    from raylab.data.prepare import prepare_manifest

    return _print_summary(prepare_manifest(
        args.manifest, args.out, labels=args.labels, window_seconds=args.window_seconds,
        min_last_seconds=args.min_last_seconds, skip_invalid=args.skip_invalid,
        resample=args.resample, workers=args.workers, log=_stderr))


def cmd_info(args) -> int:
    from raylab.data.demo_cache import resolve_data
    from raylab.data.prepare import describe_dataset

    print(describe_dataset(resolve_data(args.dataset, results_dir(args.results))))
    return 0


def register(subparsers, common) -> None:
    data = subparsers.add_parser("data", parents=[common], help="corpora and datasets")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    demo = sub.add_parser("demo", parents=[common], help="synthesise the demo corpus (IEMOCAP layout)")
    demo.add_argument("--out", required=True, metavar="DIR")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--speakers", type=int, default=10, help="1-10 (default 10)")
    demo.add_argument("--turns-per-speaker", type=int, default=30)
    demo.set_defaults(func=cmd_demo)

    evaluators = sub.add_parser("evaluators", parents=[common],
                                help="evaluator ids of an IEMOCAP release with their turn counts")
    evaluators.add_argument("corpus", metavar="CORPUS")
    evaluators.set_defaults(func=cmd_evaluators)

    prepare = sub.add_parser("prepare", parents=[common], help="corpus -> dataset (windows.parquet)")
    kinds = prepare.add_subparsers(dest="corpus_kind", metavar="KIND", required=True)
    iemocap = kinds.add_parser("iemocap", parents=[common], help="an IEMOCAP release (or the demo corpus)")
    iemocap.add_argument("corpus", metavar="CORPUS")
    iemocap.add_argument("--evaluator", default=DEFAULT_EVALUATOR,
                         help=f"{DEFAULT_EVALUATOR} (default), another id, or mean")
    _prepare_options(iemocap)
    iemocap.set_defaults(func=cmd_prepare_iemocap)
    manifest = kinds.add_parser("manifest", parents=[common],
                                help="a CSV: path,speaker,valence,arousal[,utterance_id,session]")
    manifest.add_argument("manifest", metavar="CSV")
    manifest.add_argument("--labels", choices=("ratings", "classes"), default="ratings",
                          help="ratings 1..5 (default) or classes 0..4")
    _prepare_options(manifest)
    manifest.set_defaults(func=cmd_prepare_manifest)

    info = sub.add_parser("info", parents=[common], help="windows per speaker, label histograms")
    info.add_argument("dataset", nargs="?", metavar="DIR", help="dataset (default: the demo dataset)")
    info.set_defaults(func=cmd_info)
