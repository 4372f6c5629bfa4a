"""`raylab analyze saliency|generalize|sanity`, plugged into the raylab CLI through the
`raylab.commands` entry point (pyproject.toml), so that raylab never imports this package."""
from __future__ import annotations

import argparse

from analysis.methods import DEFAULT_METHOD, METHOD_DEFAULTS, METHODS, with_prior
from raylab.errors import ConfigError

METHOD_CHOICES = ("guided", "gradient", "integrated", "occlusion")


def _target(args):
    from analysis.runs import resolve
    from raylab.runtime.settings import results_dir

    return resolve(args.run, args.fold, getattr(args, "data", None), results_dir(args.results))


def _device(args) -> str:
    from raylab.runtime.settings import pick_device

    return pick_device(args.device)


def _positive(name: str, value: float | None) -> None:
    if value is not None and value <= 0:  # None: not given
        raise ConfigError(f"--{name} {value}: expected a number > 0")


def _per_method(setting: str) -> str:
    """`setting`'s default per generalize method, e.g. "150 (prosody, speech, shaped), 2000
    (paper)"."""
    values: dict = {}
    for method in METHODS:
        values.setdefault(f"{METHOD_DEFAULTS[method][setting]:g}", []).append(method)
    return ", ".join(f"{v} ({', '.join(m)})" for v, m in values.items())


def _print_mlflow(target, summary: dict) -> None:
    from analysis.runs import mlflow_lines

    for line in mlflow_lines(target, summary.get("mlflow_run_id")):
        print(line)


def saliency(args) -> int:
    from analysis.saliency import format_summary, run_saliency

    _positive("windows", args.windows)
    _positive("batch-size", args.batch_size)
    if args.sanity_windows < 0:
        raise ConfigError(f"--sanity-windows {args.sanity_windows}: expected 0 (skip) or more")
    if args.figures < 0:
        raise ConfigError(f"--figures {args.figures}: expected 0 (none) or more")
    target = _target(args)
    summary = run_saliency(target, args.method, args.windows, args.out, args.batch_size,
                           _device(args), args.figures, track=not args.no_track,
                           all_windows=args.all_windows, sanity_windows=args.sanity_windows)
    print(format_summary(summary))
    _print_mlflow(target, summary)
    return 0


def generalize(args) -> int:
    from analysis.generalize import format_summary, run_generalize

    for name in ("lr", "init_scale", "steps"):
        _positive(name.replace("_", "-"), getattr(args, name))
    if args.l2 is not None and args.l2 < 0:
        raise ConfigError(f"--l2 {args.l2}: expected a number >= 0")
    if args.init != "noise" and args.method != "paper":
        raise ConfigError(f"--init {args.init} goes with --method paper; {args.method} starts from "
                          "its own seeded parameters")
    if args.no_prior and not with_prior(args.method):
        raise ConfigError(f"--no-prior goes with --method prosody; {args.method} has no data prior")
    target = _target(args)
    summary = run_generalize(target, args.steps, args.l2, args.lr, args.init, args.seed,
                             args.init_scale, args.out, _device(args), track=not args.no_track,
                             method=args.method, prior=False if args.no_prior else None)
    print(format_summary(summary))
    _print_mlflow(target, summary)
    return 0


def sanity(args) -> int:
    from analysis.sanity import format_summary, run_sanity

    for name in ("windows", "epochs", "train_windows", "batch_size"):
        _positive(name.replace("_", "-"), getattr(args, name))
    target = _target(args)
    summary = run_sanity(target, tuple(args.methods), args.windows, args.epochs,
                         not args.no_permuted, args.seed, args.out, args.batch_size,
                         _device(args), args.train_windows, track=not args.no_track)
    print(format_summary(summary))
    _print_mlflow(target, summary)
    return 0


def register(subparsers, common) -> None:
    analyze = subparsers.add_parser(
        "analyze", parents=[common], help="explain a trained network: saliency, generalized "
        "input signals, sanity checks (paper section 2.3)",
        description="Explain what a trained network learned (the paper's section 2.3): saliency "
                    "maps and their correlation with the signal, generalized input signals "
                    "with Table 6's acoustic measures, and randomisation checks of the saliency "
                    "methods. Outputs go to <run>/analysis/ and to the run in MLflow.")
    commands = analyze.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--run", required=True, metavar="RUN",
                        help="MLflow run id, training results folder (with run.json) or checkpoint")
    shared.add_argument("--fold", metavar="SPEAKER",
                        help="which fold's network and test windows (default Ses03F, else the first)")
    shared.add_argument("--data", metavar="D", help="dataset folder (default: the run's, else demo)")
    shared.add_argument("--out", metavar="DIR",
                        help="output folder (default <run_dir>/analysis/<command>-<fold>)")
    shared.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    shared.add_argument("--no-track", action="store_true", help="do not log to MLflow")

    p = commands.add_parser(
        "saliency", parents=[common, shared],
        help="saliency maps, amplitude/saliency correlations, Figure 4",
        description="Saliency maps of each head's predicted class on the fold's test windows "
                    "(guided backpropagation, the paper's, by default), the per-window Pearson "
                    "correlation of signal and saliency and between the two heads' maps, their "
                    "histogram, and Figure 4 for the loudest windows.")
    p.add_argument("--method", choices=METHOD_CHOICES, default="guided",
                   help="guided backpropagation (the paper's), plain gradient, integrated gradients "
                        "or occlusion")
    p.add_argument("--sanity-windows", type=int, default=4, metavar="N",
                   help="randomisation check of the method on N windows (where a previous "
                        "`analyze sanity` of the network covered the method, its result is read "
                        "instead) and the correlations on those N windows for a fully random "
                        "network, reported with the correlations (0: skip both)")
    p.add_argument("--windows", type=int, metavar="N", help="analyse N test windows (default all)")
    p.add_argument("--all-windows", action="store_true",
                   help="every window of the dataset, not only the fold's test speaker's (the "
                        "paper's correlations are over the dataset)")
    p.add_argument("--figures", type=int, default=3, metavar="N",
                   help="Figure 4 for the N loudest windows (0: none)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N",
                   help="windows per backward pass")
    p.set_defaults(func=saliency)

    p = commands.add_parser(
        "generalize", parents=[common, shared],
        help="generalized input signals (eq. 4), Figure 5 and Table 6",
        description="For each head and class 1-5, the input that maximises the class's score "
                    "(eq. 4, by gradient ascent with the network frozen), saved as 16 kHz WAV, "
                    "drawn as Figure 5 and described as in Table 6 (loudness, dominant "
                    "frequencies, amplitude, pauses, voiced length).")
    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                   help=f"prosody: syllable train x filtered harmonic-plus-noise source, rate, "
                        f"pause, phrase and f0 from grids, {METHOD_DEFAULTS['prosody']['starts']} "
                        f"gain starts per class (ours); speech: learned envelope x the same "
                        f"source, f0 from a grid, {METHOD_DEFAULTS['speech']['starts']} starts per "
                        "class (ours); shaped: envelope x spectrally shaped noise (ours); paper: "
                        f"eq. (4) on raw samples (default: {DEFAULT_METHOD})")
    p.add_argument("--steps", type=int, help="default: " + _per_method("steps"))
    p.add_argument("--l2", type=float, help="λ of eq. (4) (default: " + _per_method("l2") + ")")
    p.add_argument("--lr", type=float, help="Adam step size (default: " + _per_method("lr") + ")")
    p.add_argument("--init", choices=("noise", "mean"), default="noise",
                   help="paper method's starting signal")
    p.add_argument("--init-scale", type=float, default=0.01, metavar="S",
                   help="std of the initial noise")
    p.add_argument("--seed", type=int, default=0, help="seed of the starting signals")
    p.add_argument("--no-prior", action="store_true",
                   help="prosody without its data prior (the density of the other speakers' "
                        "windows in the heads' first hidden layer, added to the objective)")
    p.set_defaults(func=generalize)

    p = commands.add_parser(
        "sanity", parents=[common, shared],
        help="randomisation checks of the saliency methods (Adebayo et al. 2018)",
        description="Do the saliency methods depend on what the network learned? Compare each "
                    "method's maps on the trained network with those on networks whose layers "
                    "are re-initialised in turn and on one trained on permuted labels (Adebayo "
                    "et al. 2018): Spearman rank correlation of |maps| over each window's signal "
                    "(zero padding left out), with the floor two independently random networks "
                    "set and each map's correlation with the input's envelope.")
    p.add_argument("--methods", nargs="+", choices=METHOD_CHOICES, default=list(METHOD_CHOICES),
                   metavar="METHOD", help=f"saliency methods to check, of {', '.join(METHOD_CHOICES)} "
                        "(default: all)")
    p.add_argument("--windows", type=int, default=16, metavar="N", help="test windows compared")
    p.add_argument("--epochs", type=int, help="permuted-label training epochs (default: the run's)")
    p.add_argument("--train-windows", type=int, metavar="N",
                   help="train the permuted-label network on N windows only (default all)")
    p.add_argument("--no-permuted", action="store_true", help="skip the permuted-label network")
    p.add_argument("--seed", type=int, default=0, help="seed of the re-initialisations and the "
                                                       "permutation")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="windows per pass")
    p.set_defaults(func=sanity)
