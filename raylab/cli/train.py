"""`raylab train ARCH`: one fold in this process (`--local`), or the ten folds on Ray Train."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from raylab.errors import ConfigError


def register(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "train", parents=[common], help="train a network: ten folds on Ray Train, or one --local",
        description="Train ARCH (elor, lom, ftr, elor_ftr) with the paper's procedure. Without "
                    "--local: the ten-fold leave-one-speaker-out run on Ray Train. With --local: "
                    "one fold in this process, no Ray. Hyperparameters: the paper's (Tables 1-4), "
                    "then --config, then --set. Tracked in MLflow unless --no-track.")
    parser.add_argument("arch", metavar="ARCH", help="network: elor, lom, ftr or elor_ftr")
    parser.add_argument("--data", metavar="DIR", help="dataset folder or URI (default: the demo dataset)")
    parser.add_argument("--config", metavar="FILE", help="YAML with `arch` and flat `params` (a search's best.yaml; "
                                                                        "default: the paper's values)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override one parameter (repeatable), e.g. --set lr=0.01, "
                             "--set loss_reduction=mean, --set is10_scaling=none, --set amp=false "
                             "(fp32 on CUDA; the default is bf16 autocast there)")
    parser.add_argument("--epochs", type=int, metavar="N",
                        help="shorthand for --set epochs=N (default: the paper's, Tables 1-4)")
    parser.add_argument("--update", choices=("alternate", "joint"),
                        help="heads updated in turn per batch (the paper's, default) or one joint "
                             "step")
    parser.add_argument("--seed", type=int, help="seed of the splits, weights and batches (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--name", help="run name (default: <arch>-local-<fold>, or chosen by the ten-fold run)")
    parser.add_argument("--no-track", dest="track", action="store_false", help="no MLflow tracking")
    local = parser.add_argument_group("one fold in this process")
    local.add_argument("--local", action="store_true", help="train one fold here, without Ray")
    local.add_argument("--fold", metavar="SPEAKER", help="test speaker (default: Ses03F, else the first)")
    folds = parser.add_argument_group("ten folds on Ray Train")
    folds.add_argument("--folds", metavar="A,B", help="only these test speakers (default: all)")
    folds.add_argument("--workers-per-fold", type=int, metavar="N",
                       help="DDP workers per fold (default: 1); the global batch stays "
                            "batch_size, each worker taking batch_size/N, so N must divide it")
    folds.add_argument("--gpus-per-worker", type=float, metavar="G",
                       help="default: 1 when the Ray cluster has GPUs (0 with --device cpu), else 0")
    folds.add_argument("--cpus-per-worker", type=float, metavar="C", help="default: 1")
    folds.add_argument("--address", metavar="ADDR", help="Ray cluster (default: $RAY_ADDRESS or local)")
    folds.add_argument("--resume", action="store_true", default=None,
                       help="finish an interrupted run of this --name")
    folds.add_argument("--max-failures", type=int, metavar="N",
                       help="retries of a failed fold (default: 1)")
    parser.set_defaults(func=run)


TEN_FOLD_ONLY = ("folds", "resume", "workers_per_fold", "gpus_per_worker", "cpus_per_worker",
                 "address", "max_failures")
RESOURCE_OPTIONS = ("workers_per_fold", "gpus_per_worker", "cpus_per_worker", "max_failures")
SHORTHANDS = ("epochs", "update", "seed")  # flags that set one parameter, like --set KEY=...


def check_mode(args: argparse.Namespace) -> None:
    """--fold only with --local; the ten-fold run's options (argparse default None) only without."""
    if args.fold and not args.local:
        raise ConfigError("--fold picks the test speaker of --local; the ten-fold run takes --folds A,B")
    given = [f"--{key.replace('_', '-')}" for key in TEN_FOLD_ONLY if getattr(args, key) is not None]
    if args.local and given:
        raise ConfigError(f"{', '.join(given)}: an option of the ten-fold run on Ray Train, not "
                          "of --local; drop it or --local")


def parse_sets(sets: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs, values read as YAML scalars (`lr=1.0e-3`, `update=joint`)."""
    import yaml

    out: dict[str, Any] = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def gather_params(args: argparse.Namespace) -> dict[str, Any]:
    """--config, then --set, then --epochs / --update / --seed; checked against the network."""
    from raylab.models import model_class
    from raylab.train.params import load_params_file, split_params

    model_class(args.arch)
    params = load_params_file(args.config, args.arch) if args.config else {}
    sets = parse_sets(args.sets)
    for source, given in ((f"--config {args.config}", params), ("--set", sets)):
        if "device" in given:  # the device is where training runs, not a hyperparameter
            raise ConfigError(f"{source}: device={given['device']}: choose the device with "
                              "--device (auto, cpu, cuda or cuda:N)")
    params.update(sets)
    for key in SHORTHANDS:
        value = getattr(args, key)
        if value is not None and key in sets and sets[key] != value:
            raise ConfigError(f"--{key} {value} and --set {key}={sets[key]}: give one")
        if value is not None:
            params[key] = value
    split_params(args.arch, params)
    return params


class EpochPrinter:
    """A bar per epoch on a terminal (tqdm), else one plain line per epoch."""

    def __init__(self, epochs: int, stream=None) -> None:
        stream = stream or sys.stdout
        self.epochs, self.stream, self.bar = epochs, stream, None
        self.tty = stream.isatty()
        self.epoch = 1

    def batch(self, done: int, total: int) -> None:
        if not self.tty:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"epoch {self.epoch}/{self.epochs}", unit="batch",
                            file=self.stream, leave=True, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def epoch_done(self, report) -> None:
        v = report.val
        summary = (f"loss {report.train_loss:.3f}  val WAR v {v.get('valence_war', float('nan')):.3f} "
                   f"a {v.get('arousal_war', float('nan')):.3f}  UAR v {v.get('valence_uar', float('nan')):.3f} "
                   f"a {v.get('arousal_uar', float('nan')):.3f}")
        if self.bar is not None:
            self.bar.set_postfix_str(summary)
            self.bar.close()
            self.bar = None
        else:
            print(f"epoch {report.epoch}/{self.epochs}  {summary}  ({report.seconds:.1f} s)",
                  file=self.stream, flush=True)
        self.epoch = report.epoch + 1


def run(args: argparse.Namespace) -> int:
    from raylab.runtime.settings import results_dir
    from raylab.train.params import split_params

    check_mode(args)
    params = gather_params(args)
    cfg = split_params(args.arch, params)[1]
    results = results_dir(args.results)
    if args.local:
        from raylab.data.demo_cache import resolve_data
        from raylab.train.fold import train_local

        printer = EpochPrinter(cfg.epochs)
        done = train_local(args.arch, resolve_data(args.data, results, args.arch), args.fold,
                           params, results, name=args.name, device=args.device, track=args.track,
                           on_epoch=printer.epoch_done, on_batch=printer.batch)
        print(done.render())
        return 0
    from raylab.crossval.driver import CrossvalOptions, run_crossval

    folds = [f.strip() for f in args.folds.split(",") if f.strip()] if args.folds else None
    from raylab.runtime.console import quiet
    from raylab.runtime.runlock import run_lock
    from raylab.runtime.settings import log_file

    resources = {k: getattr(args, k) for k in RESOURCE_OPTIONS if getattr(args, k) is not None}
    name = args.name or f"{args.arch}-tenfold"
    with run_lock(results, name), quiet(log_file(results, name), args.verbose):
        options = CrossvalOptions(folds=folds, name=args.name, resume=bool(args.resume),
                                  address=args.address, track=args.track, seed=cfg.seed,
                                  device=args.device, **resources)
        result = run_crossval(arch=args.arch, data=args.data, params=params, options=options,
                              results=results)
    print(result.render())
    return result.exit_code
