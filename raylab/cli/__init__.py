"""The `raylab` command line: a thin layer of subcommands over library functions.

Each module in `raylab.cli` adds its subcommands with `register(subparsers, common)`; other
packages (the analysis package) add theirs through the `raylab.commands` entry-point group, so the
library never imports them. A handler takes the parsed arguments and returns an exit code.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from importlib.metadata import entry_points

from raylab import __version__
from raylab.errors import RaylabError
from raylab.runtime import hostmem, tracking

COMMAND_MODULES = (
    "raylab.cli.data",
    "raylab.cli.features",
    "raylab.cli.train",
    "raylab.cli.tune",
    "raylab.cli.report",
    "raylab.cli.runs",
    "raylab.cli.predict",
    "raylab.cli.serve",
    "raylab.cli.doctor",
)


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless it says it or there is none to say
    (a flag that is off unless given, a value left to the command: the help says what then)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is False or default == []
                or default is argparse.SUPPRESS
                or not (action.option_strings or action.nargs in ("?", "*"))):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """raylab's parsers: the help formatter above; a flag a command does not know is answered
    with that command's usage (argparse leaves leftovers to the top-level parser, whose usage
    says nothing about the command); errors begin `raylab: error:`. No abbreviated flags: argparse
    would take a misspelled `--epoch 3` for `--epochs 3` and start a run."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and self._subparsers is None and self.prog != "raylab":
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"raylab: error: {message}\n")


def _common_options() -> argparse.ArgumentParser:
    """Options every command takes, before or after its name."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--results", metavar="DIR", default=argparse.SUPPRESS,
                        help="results folder (default: $RAYLAB_RESULTS or ./results)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show Ray's, Tune's and the libraries' own output live instead of "
                             "writing it to the run's log file (<results>/<run>/raylab.log)")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = Parser(
        prog="raylab", parents=[common],
        description="Train, tune and explain speech-emotion networks (Wieser et al. 2018) on Ray.")
    parser.add_argument("--version", action="version", version=f"raylab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers, common)
    for plugin in entry_points(group="raylab.commands"):
        try:
            register = plugin.load()
        except ModuleNotFoundError as err:
            if err.name and plugin.module.startswith(err.name):
                continue  # the plugin's package is not installed here: its commands are absent
            raise
        register(subparsers, common)
    return parser


def run(argv: list[str] | None = None) -> int:
    """The `raylab` console script: the host allocator settings first (before any thread takes
    a malloc arena of its own; `raylab.runtime.hostmem`), then `main`. In-process callers (tests,
    notebooks) call `main` and keep their own process's settings."""
    try:
        hostmem.tune_this_process()
    except RaylabError as err:
        print(f"raylab: error: {err}", file=sys.stderr)
        return 1
    return main(argv)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    tracking.set_command(["raylab", *(sys.argv[1:] if argv is None else argv)])
    args.results = getattr(args, "results", None)
    args.debug = getattr(args, "debug", False)
    args.verbose = getattr(args, "verbose", False)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except RaylabError as err:
        if args.debug:
            traceback.print_exc()
        print(f"raylab: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("raylab: interrupted", file=sys.stderr)
        return 130
