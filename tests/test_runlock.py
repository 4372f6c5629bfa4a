"""One process per run name: a second `raylab tune`/`train` of the same name is refused."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from raylab.cli import main
from raylab.errors import ConfigError
from raylab.runtime.runlock import LOCK_FILE, run_lock
from raylab.runtime.settings import run_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def held(results):
    """Another process holding the lock of run `busy` until the test ends."""
    code = textwrap.dedent(f"""
        import sys, time
        from raylab.runtime.runlock import run_lock
        with run_lock({str(results)!r}, "busy"):
            print("held", flush=True)
            time.sleep(120)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_a_second_process_is_refused_naming_the_first(held, results):
    with pytest.raises(ConfigError, match=rf"process {held.pid} on {socket.gethostname()} "
                                          r"\(started .*\); wait for it"):
        with run_lock(results, "busy"):
            pass
    held.kill()
    held.wait()
    with run_lock(results, "busy"):  # the lock died with its process
        pass


@pytest.mark.parametrize("command", [["tune", "elor"], ["train", "elor"]])
def test_tune_and_train_take_the_lock(held, results, capsys, command):
    assert main(["--results", str(results), *command, "--name", "busy"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"process {held.pid}" in err and "in use" in err


def test_the_lock_file_alone_does_not_make_a_folder_foreign(results):
    with run_lock(results, "fresh") as path:
        assert path.name == LOCK_FILE
        assert run_folder(results, "fresh", "search") == results / "fresh"
    assert not (results / "fresh").exists()  # a run that wrote nothing leaves no folder
    with pytest.raises(ConfigError):
        with run_lock(results, "refused"):
            raise ConfigError("--epochs 0")
    assert not (results / "refused").exists()
    with run_lock(results, "ran"):
        (results / "ran" / "run.json").write_text("{}")
    assert (results / "ran" / "run.json").exists()
