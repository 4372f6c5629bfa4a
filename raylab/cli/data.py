"""`raylab data`: synthesise the demo corpus, inspect evaluators, prepare datasets, describe them."""
from __future__ import annotations

import sys

from raylab import DEFAULT_EVALUATOR, MIN_LAST_SECONDS, WINDOW_SECONDS
from raylab.runtime.settings import results_dir


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _prepare_options(parser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="dataset folder to write")
    parser.add_argument("--window-seconds", type=float, default=WINDOW_SECONDS, metavar="S",
                        help="window length in seconds")
    parser.add_argument("--min-last-seconds", type=float, default=MIN_LAST_SECONDS, metavar="S",
                        help="keep the last cut of a long utterance only if longer")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="leave bad utterances out (listed in rejected.csv) instead of failing")
    parser.add_argument("--resample", action="store_true",
                        help="resample WAVs that are not 16 kHz (soxr) instead of rejecting them")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes (default: all cores)")


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
    data = subparsers.add_parser(
        "data", parents=[common], help="corpora and datasets",
        description="Synthesise the demo corpus, list an IEMOCAP release's evaluators, prepare a "
                    "corpus into a dataset (6 s windows in windows.parquet, meta.json) and "
                    "describe a dataset.")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    demo = sub.add_parser(
        "demo", parents=[common], help="synthesise the demo corpus (IEMOCAP layout)",
        description="Write a synthetic corpus in the IEMOCAP release's layout (WAVs and "
                    "EmoEvaluation files) whose valence and arousal ratings are planted as "
                    "acoustic cues, for trying raylab without IEMOCAP.")
    demo.add_argument("--out", required=True, metavar="DIR", help="corpus folder to write")
    demo.add_argument("--seed", type=int, default=0, help="seed of the synthesis")
    demo.add_argument("--speakers", type=int, default=10, help="speakers, 1-10")
    demo.add_argument("--turns-per-speaker", type=int, default=30, metavar="N",
                      help="turns (utterances) per speaker")
    demo.set_defaults(func=cmd_demo)

    evaluators = sub.add_parser(
        "evaluators", parents=[common],
        help="evaluator ids of an IEMOCAP release with their turn counts",
        description="List the evaluator ids found in an IEMOCAP release's EmoEvaluation files "
                    "with the number of turns each rated (choose one with `data prepare "
                    "iemocap --evaluator`).")
    evaluators.add_argument("corpus", metavar="CORPUS",
                            help="the IEMOCAP release folder (holding Session1..5)")
    evaluators.set_defaults(func=cmd_evaluators)

    prepare = sub.add_parser(
        "prepare", parents=[common], help="corpus -> dataset (windows.parquet)",
        description="Cut a corpus (an IEMOCAP release, or any audio listed in a CSV manifest) "
                    "into 6 s windows labelled with valence and arousal classes, written as a "
                    "dataset folder.")
    kinds = prepare.add_subparsers(dest="corpus_kind", metavar="KIND", required=True)
    iemocap = kinds.add_parser(
        "iemocap", parents=[common], help="an IEMOCAP release (or the demo corpus)",
        description="Prepare an IEMOCAP release (or the demo corpus): read every turn's "
                    "ratings from EmoEvaluation, take the chosen evaluator's valence and arousal "
                    f"(ratings 1-5), cut the WAVs into {WINDOW_SECONDS:g} s windows and write "
                    "the dataset.")
    iemocap.add_argument("corpus", metavar="CORPUS",
                         help="the IEMOCAP release folder (holding Session1..5)")
    iemocap.add_argument("--evaluator", default=DEFAULT_EVALUATOR, metavar="ID",
                         help=f"the paper's {DEFAULT_EVALUATOR}, another evaluator id (see `data "
                              "evaluators`), or mean (of the external evaluators, rounded)")
    _prepare_options(iemocap)
    iemocap.set_defaults(func=cmd_prepare_iemocap)
    manifest = kinds.add_parser(
        "manifest", parents=[common],
        help="a CSV: path,speaker,valence,arousal[,utterance_id,session]",
        description="Prepare any audio listed in a CSV manifest (columns path, speaker, valence, "
                    "arousal, optionally utterance_id and session) into a dataset.")
    manifest.add_argument("manifest", metavar="CSV", help="the manifest file")
    manifest.add_argument("--labels", choices=("ratings", "classes"), default="ratings",
                          help="the label columns hold ratings 1..5 or classes 0..4")
    _prepare_options(manifest)
    manifest.set_defaults(func=cmd_prepare_manifest)

    info = sub.add_parser(
        "info", parents=[common], help="windows per speaker, label histograms",
        description="Describe a dataset: its source and evaluator, windows per speaker and the "
                    "histogram of each dimension's classes (1-5, as rated).")
    info.add_argument("dataset", nargs="?", metavar="DIR", help="dataset (default: the demo dataset)")
    info.set_defaults(func=cmd_info)
