"""`raylab runs delete` on folders an interrupted command left: a run killed before (or while) it
wrote its run.json is deleted as raylab's own, so `make demo` starts afresh; a folder raylab did
not make is never deleted, and the refusal says in one line what to do."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from raylab.cli import main
from raylab.errors import ConfigError
from raylab.runtime.runlock import run_lock
from raylab.runtime.settings import run_folder

ROOT = Path(__file__).resolve().parents[1]


def _killed_while_starting(results: Path, name: str) -> Path:
    """A process that takes run `name`'s lock, writes its config and starts writing run.json, then
    is SIGKILLed (as by the OOM killer, or a closed terminal): what `make demo` met."""
    code = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from raylab.runtime.fsutil import temp_name
        from raylab.runtime.runlock import run_lock
        with run_lock({str(results)!r}, {name!r}) as lock:
            folder = lock.parent
            (folder / "raylab.log").write_text("starting Ray\\n")
            (folder / "config.yaml").write_text("arch: elor\\n")
            (folder / temp_name("run.json")).write_text('{{"kind": "cross')
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    return results / name


def test_runs_delete_removes_a_run_killed_before_its_run_json(results, capsys):
    left = _killed_while_starting(results, "demo-elor")
    assert not (left / "run.json").exists() and (left / "config.yaml").exists()
    with pytest.raises(ConfigError, match=r"killed before its run.json was written; remove it "
                                          r"with `raylab runs delete demo-elor`"):
        run_folder(results, "demo-elor", "crossval")
    # as the Makefile's demo target calls it
    assert main(["--results", str(results), "runs", "delete", "demo-elor-search", "demo-elor",
                 "demo-ftr", "--missing-ok", "--no-track"]) == 0
    assert f"deleted {left}" in capsys.readouterr().out
    assert not left.exists()


def test_runs_delete_removes_a_folder_of_nothing_but_raylabs_lock_and_log(results):
    """What a run killed before anything was written leaves (also from raylab versions whose lock
    made no marker)."""
    folder = results / "demo-ftr"
    folder.mkdir()
    (folder / ".lock").write_text('{"pid": 4242, "host": "h", "started": "2026-01-01T00:00:00"}\n')
    (folder / "raylab.log").write_text("starting Ray\n")
    assert main(["--results", str(results), "runs", "delete", "demo-ftr", "--no-track"]) == 0
    assert not folder.exists()


@pytest.mark.parametrize("entries", [{"config.yaml": "arch: mine\n"},
                                     {".lock": "my own lock file\n", "raylab.log": "mine\n"}])
def test_runs_delete_never_removes_a_folder_raylab_did_not_make(results, capsys, entries):
    folder = results / "demo-elor"
    folder.mkdir()
    for name, text in entries.items():
        (folder / name).write_text(text)
    if ".lock" not in entries:  # a run started on the user's folder takes its lock there
        with pytest.raises(ConfigError, match="exists and is not a raylab run"):
            with run_lock(results, "demo-elor"):
                run_folder(results, "demo-elor", "crossval")
    assert main(["--results", str(results), "runs", "delete", "demo-elor", "--missing-ok",
                 "--no-track"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a raylab run" in err and f"rm -r {folder}" in err
    assert all((folder / name).read_text() == text for name, text in entries.items())
