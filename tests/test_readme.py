"""The README's commands are the ones the tools accept.

Every line of a fenced code block that runs `raylab` (directly, or inside `ray exec CLUSTER "..."`)
walks `raylab.cli.build_parser()` down its subcommand path, asks that parser for `--help` (it must
exit 0) and checks that each option the line uses exists there. `ray ...` and `mlflow ...` lines are
parsed by Ray's and MLflow's own click commands, `make` targets must be in the Makefile, and the
repository files a command or an image link names must exist. Nothing is skipped: a command the
README names and the CLI lacks fails the test.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REPO_PATH = re.compile(r"^(clusters|search_spaces|docs|bench|tests)/[\w./-]+$")


def code_lines(markdown: str) -> list[tuple[int, str]]:
    """(line number, command) for each line of the fenced code blocks, continuations joined."""
    out, fenced, pending, start = [], False, "", 0
    for number, raw in enumerate(markdown.splitlines(), 1):
        if raw.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            continue
        line = re.sub(r"^\s*\$\s+", "", raw)
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, (pending + line).strip()))
        pending = ""
    return [(n, text) for n, text in out if text and not text.startswith("#")]


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _values_taken(action: argparse.Action, rest: list[str]) -> int:
    if action.nargs == 0:
        return 0
    if action.nargs in (None, "?") or isinstance(action.nargs, int):
        count = 1 if action.nargs in (None, "?") else action.nargs
        return min(count, len([t for t in rest[:count] if not t.startswith("-")]))
    return next((i for i, t in enumerate(rest) if t.startswith("-")), len(rest))


def raylab_problems(args: list[str]) -> list[str]:
    """What `raylab ARGS` uses that the CLI does not have ([] when all is known)."""
    from raylab.cli import build_parser

    parser = build_parser()
    leaf, path, problems, i = parser, [], [], 0
    while i < len(args):
        token = args[i]
        i += 1
        if token.startswith("-"):
            action = leaf._option_string_actions.get(token.split("=", 1)[0])
            if action is None:
                problems.append(f"`raylab {' '.join(path)}` has no option {token}")
            elif "=" not in token:
                i += _values_taken(action, args[i:])
            continue
        sub = _subparsers(leaf)
        if sub is not None:
            if token not in sub.choices:
                problems.append(f"`raylab {' '.join(path)}` has no command {token!r}; it has "
                                f"{', '.join(sub.choices)}")
                break
            leaf = sub.choices[token]
            path.append(token)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            build_parser().parse_args(path + ["--help"])
            problems.append(f"`raylab {' '.join(path)} --help` did not exit")
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                problems.append(f"`raylab {' '.join(path)} --help` exited {exit_.code}")
    return problems


def _click_problems(group: click.Group, program: str, args: list[str]) -> list[str]:
    if not args:
        return [f"`{program}` without a command"]
    command = group.get_command(click.Context(group), args[0])
    if command is None:
        return [f"`{program}` has no command {args[0]!r}"]
    try:
        ctx = command.make_context(args[0], list(args[1:]))
    except click.ClickException as err:
        return [f"`{program} {args[0]}`: {err.format_message()}"]
    if program == "ray" and args[0] == "exec":
        return invocation_problems(shlex.split(ctx.params["cmd"]))
    return []


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return {m.group(1) for m in re.finditer(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, re.M)}


def invocation_problems(tokens: list[str]) -> list[str]:
    """Problems of one command line: raylab, ray, mlflow and make are checked; others pass."""
    if not tokens:
        return []
    program, args = Path(tokens[0]).name, tokens[1:]
    problems = [f"{t}: no such file in the repository" for t in args
                if REPO_PATH.match(t) and not (ROOT / t).exists()]
    if program == "raylab":
        problems += raylab_problems(args)
    elif program == "ray":
        from ray.scripts.scripts import cli

        problems += _click_problems(cli, "ray", args)
    elif program == "mlflow":
        from mlflow.cli import cli

        problems += _click_problems(cli, "mlflow", args)
    elif program == "make":
        values = {args[i + 1] for i, t in enumerate(args[:-1]) if t in ("-C", "-f")}
        problems += [f"make target {t!r} is not in the Makefile" for t in args
                     if not t.startswith("-") and "=" not in t and t not in values
                     and t not in make_targets()]
    return problems


def line_problems(line: str) -> list[str]:
    return invocation_problems(shlex.split(line, comments=True))


def test_readme_code_blocks_name_only_real_commands():
    lines = code_lines(README.read_text())
    raylab_lines = [text for _, text in lines if "raylab" in shlex.split(text, comments=True)[:1]
                    or "raylab " in text]
    assert len(raylab_lines) >= 15, "the walkthrough should show the raylab commands"
    problems = [f"README.md:{n}: {text}\n    {p}" for n, text in lines for p in line_problems(text)]
    assert not problems, "\n".join(problems)


def test_readme_opens_with_the_two_commands():
    first_block = README.read_text().split("```")[1]
    assert [line.strip() for line in first_block.splitlines() if line.strip()][-2:] == \
        ["make demo", "make test"]


def test_readme_links_to_files_that_exist():
    text = README.read_text()
    links = re.findall(r"\]\(((?!https?:|#)[^)\s]+)\)", text)
    assert "docs/img/demo-saliency.png" in links and "docs/scaling.md" in links
    missing = [link for link in links if not (ROOT / link.split("#")[0]).exists()]
    assert not missing, f"README links to missing files: {missing}"


@pytest.mark.parametrize("line, expected", [
    ("raylab train elor --local --fold Ses03F", None),
    ("raylab trian elor", "has no command 'trian'"),
    ("raylab tune elor --num-sample 2", "has no option --num-sample"),
    ("ray exec clusters/aws-gpu.yaml 'raylab doctor --adress auto'", "has no option --adress"),
    ("ray attach clusters/aws-gpu.yaml -- raylab doctor", "Got unexpected extra argument"),
    ("mlflow ui --backend-store-uri sqlite:///results/mlflow.db", None),
    ("make no-such-target", "not in the Makefile"),
    ("raylab doctor --data clusters/none.yaml", "no such file"),
])
def test_the_checker_catches_wrong_commands(line, expected):
    problems = line_problems(line)
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems
