"""The quiet console: raylab's lines and bars on the terminal, Ray's and Tune's output in the run's
log file, shown live with --verbose. The CLI runs in a fresh process (as a user starts it), so
that it starts its own Ray and Ray's start-up notices are really printed."""
from __future__ import annotations

import io
import logging
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from raylab.runtime import console
from tests.fixtures_runtime import SESSION_VARIABLES, process_env

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "search_spaces" / "ok_tiny_elor.yaml"
TOKEN_NOTICE = "Token authentication is enabled"  # ray/_private/authentication/authentication_token_setup.py
TUNE_NOISE = ("== Status ==", "Result logdir", "Logical resource usage")


def _raylab(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = process_env(drop=(*SESSION_VARIABLES, "RAY_AUTH_MODE"))
    return subprocess.run([sys.executable, "-m", "raylab", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def search(demo_dataset, tmp_path_factory):
    """`raylab tune` of one toy trial, as a user runs it (stdout and stderr not a terminal)."""
    results = tmp_path_factory.mktemp("console") / "results"
    done = _raylab("--results", str(results), "tune", "elor", "--data", str(demo_dataset),
                   "--space", str(TINY), "--num-samples", "1", "--name", "tiny", "--no-track",
                   cwd=results.parent)
    return done, results / "tiny" / "raylab.log"


def test_ray_and_tune_output_goes_to_the_run_log_not_the_console(search):
    done, log = search
    assert done.returncode == 0, done.stderr
    console_text = done.stdout + done.stderr
    logged = log.read_text()
    for noise in (TOKEN_NOTICE, *TUNE_NOISE):
        assert noise not in console_text
        assert noise in logged
    assert "Search 'tiny' (elor): 1 of 1 trials; 1 finished" in done.stdout
    # the bar, off a terminal: plain lines with the count of the budget and the ETA, ending done
    lines = [line for line in done.stderr.splitlines() if line.startswith("search tiny:")]
    assert re.fullmatch(r"search tiny: 1/1 trials \S+ elapsed, ETA 00:00, best val/mean_war "
                        r"\d\.\d{4}", lines[-1]), lines
    assert lines[0].startswith("search tiny: 0/1 trials") and len(lines) <= 1 + len(lines[1:])
    assert "\r" not in done.stderr
    assert done.stderr.splitlines()[-1] == f"log: {log}"


def test_verbose_shows_ray_live_and_writes_no_log(tmp_path):
    from tests.corpus_factory import make_demo_dataset

    data = make_demo_dataset(tmp_path / "data", turns_per_speaker=1)
    quiet = _raylab("--results", str(tmp_path / "r"), "features", str(data), "--is10", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert TOKEN_NOTICE not in quiet.stdout + quiet.stderr
    log = tmp_path / "r" / "logs" / "features.log"
    assert TOKEN_NOTICE in log.read_text()
    assert re.search(r"^features is10: (\d+)/\1 windows .* ETA 00:00$", quiet.stderr, re.M)

    shutil.rmtree(tmp_path / "r")
    loud = _raylab("--results", str(tmp_path / "r"), "features", str(data), "--is10", "--force",
                   "--verbose", cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert TOKEN_NOTICE in loud.stderr
    assert not (tmp_path / "r" / "logs").exists()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_off_a_terminal_is_a_first_and_a_last_line():
    out = io.StringIO()
    with console.progress(4, "train x (2 folds)", "epochs", out=out) as bar:
        for _ in range(4):
            bar.advance()
            bar.note("folds done 1/2")
    assert out.getvalue().splitlines() == [
        "train x (2 folds): 0/4 epochs 00:00 elapsed, ETA ?",
        "train x (2 folds): 4/4 epochs 00:00 elapsed, ETA 00:00, folds done 1/2"]


def test_a_bar_on_a_terminal_redraws_in_place():
    out = Terminal()
    with console.progress(3, "features is10", "windows", out=out) as bar:
        bar.set(2)
        bar.write("a line above the bar")
        bar.set(3)
    text = out.getvalue()
    assert "\r" in text and "3/3 windows |" in text and "a line above the bar\n" in text


def test_quiet_keeps_the_console_for_raylab_and_own_warnings_once(tmp_path, capsys):
    log = tmp_path / "run" / "raylab.log"
    with console.quiet(log):
        print("a library's table")
        logging.getLogger("somelib").warning("a library's warning")
        logging.getLogger("ray.tune").error("a Ray error")  # Ray's own handler logs it
        for _ in range(2):
            logging.getLogger("raylab.search").warning("the space holds one value")
        console.say("a raylab line")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn_explicit("deprecated thing", UserWarning, "/site-packages/lib/x.py", 1)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == ["raylab: warning: the space holds one value",
                                         "a raylab line", f"log: {log} (Ray logged 1 error)"]
    logged = log.read_text()
    assert "a library's table" in logged and "deprecated thing" in logged
    assert "a library's warning" in logged and "a raylab line" not in logged


def test_quiet_says_nothing_more_when_raylab_refuses(tmp_path, capsys):
    from raylab.errors import ConfigError

    with pytest.raises(ConfigError):
        with console.quiet(tmp_path / "raylab.log"):
            raise ConfigError("bad")
    assert capsys.readouterr().err == ""
