"""Every subcommand of `raylab` explains itself: a description, help on every option with what it
defaults to, and a misspelled flag answered with that subcommand's usage and `raylab: error:`."""
from __future__ import annotations

import argparse

import pytest

from raylab.cli import build_parser, main

FLAGS = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction,
         argparse._VersionAction, argparse._SubParsersAction)


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(words after `raylab`, parser) of every command, nested groups included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


def _leaves(parser: argparse.ArgumentParser):
    return [(path, sub) for path, sub in _commands(parser) if sub._subparsers is None]


COMMANDS = list(_commands(build_parser()))
LEAVES = _leaves(build_parser())


def test_the_walk_finds_every_command():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"tune", "train", "features", "analyze saliency", "analyze generalize",
            "analyze sanity", "data prepare iemocap", "search-spaces validate", "predict",
            "serve", "doctor", "report", "data info"} <= names


@pytest.mark.parametrize("path, parser", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_a_description_and_every_option_help_with_its_default(path, parser):
    assert parser.description and len(parser.description) > 20, f"raylab {' '.join(path)}"
    text = parser.format_help()
    assert "%(" not in text
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help is not argparse.SUPPRESS, f"{path}: {name} has no help"
        if isinstance(action, FLAGS) or action.required or (
                not action.option_strings and action.nargs not in ("?", "*")):
            continue  # a flag is off unless given; a required value has no default
        shown = parser._get_formatter()._expand_help(action)  # as --help prints it
        assert "default" in shown, f"raylab {' '.join(path)} {name}: help says no default: {shown!r}"


@pytest.mark.parametrize("path, parser", LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_a_misspelled_flag_shows_that_commands_usage(path, parser, capsys):
    required = [a for a in parser._actions if a.required or (not a.option_strings
                                                            and a.nargs not in ("?", "*"))]
    argv = list(path)
    for action in required:  # a plausible value for each required argument
        value = action.choices[0] if action.choices else "x"
        argv += [action.option_strings[0], str(value)] if action.option_strings else [str(value)]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--no-such-flag"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: raylab {' '.join(path)} ")
    assert err.splitlines()[-1] == "raylab: error: unrecognized arguments: --no-such-flag"


def test_a_misspelled_command_shows_the_top_level_usage(capsys):
    with pytest.raises(SystemExit):
        main(["trian", "elor"])
    err = capsys.readouterr().err
    assert err.startswith("usage: raylab [") and err.splitlines()[-1].startswith(
        "raylab: error: argument COMMAND: invalid choice: 'trian'")
