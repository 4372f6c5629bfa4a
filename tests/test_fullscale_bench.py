"""bench/fullscale.py: its sampler on a known process tree and a fake Ray session (fast), and the
bench end to end at a tiny scale (`slow`: minutes on the 2-core machine): the real CLI's stages
(demo corpus, prepare, features, a 2-trial search, ten folds of ELoR and of FTR) on ~40 turns,
and a table that holds every stage with its figures."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("corpus (data demo)", "data prepare", "features", "search: 2 trials x 1 epoch, small ELoR",
          "ten folds x 1 epoch, small ELoR", "ten folds x 1 epoch, FTR")
SIZE = r"\d+(\.\d+)? (MiB|GiB)"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec = importlib.util.spec_from_file_location("fullscale", ROOT / "bench" / "fullscale.py")
        module = sys.modules["fullscale"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(ROOT / "bench"))
        sys.modules.pop("fullscale", None)


# a parent that starts a child holding 200 MiB of its own memory and burning CPU for a while
TREE = """
import subprocess, sys
child = "x = bytearray(200 * 2**20); import time; end = time.process_time() + 0.6\\n" \\
        "while time.process_time() < end: pass\\ntime.sleep(1.5)"
subprocess.run([sys.executable, "-c", child, sys.argv[1]])
"""


def test_sampler_finds_peak_memory_cpu_and_the_ray_session(bench, tmp_path: Path) -> None:
    session = tmp_path / "ray" / "session_2026-01-01_00-00-00_000000_1"
    (session / "logs").mkdir(parents=True)
    (session / "logs" / "debug_state.txt").write_text(
        "LocalObjectManager:\n- num pinned objects: 2\n- pinned objects size: 150000000\n"
        "- num bytes currently spilled: 4096\n- cumulative spill requests: 3\n")
    (session / "logs" / "debug_state_gcs.txt").write_text("- pinned objects size: 999\n")
    (session / "ray_spilled_objects_abc").mkdir()
    (session / "ray_spilled_objects_abc" / "obj").write_bytes(b"x" * 8192)
    root = subprocess.Popen([sys.executable, "-c", TREE, f"--session-dir={session}"])
    sampler = bench.Sampler(root.pid, 0.1)
    sampler.start()
    root.wait()
    sampler.done.set()
    sampler.join()
    s = sampler.sample
    child = max(s.procs.values(), key=lambda p: p.anon)
    assert child.anon >= 200 * 1024 and child.rss >= 200 * 1024  # kB
    assert child.cpu >= 0.3
    assert s.most_at_once == 2 and len(s.procs) == 2
    assert s.pss_peak >= 200 * 1024
    assert s.sessions == {session}
    assert (s.pinned_peak, s.spilled_peak, s.spill_requests) == (150000000, 4096, 3)
    assert s.spill_dir_peak >= 8192


def test_labels_name_the_ray_worker_and_the_command(bench) -> None:
    assert bench.label_of(["ray::ImplicitFunc.train", ""]) == "ray::ImplicitFunc.train"
    assert bench.label_of(["/v/bin/python", "-m", "raylab", "--results", "/r", "tune", "elor"]) == \
        "raylab tune"
    assert bench.label_of(["/v/bin/python", "-u", "/x/log_monitor.py", "--a=1"]) == "log_monitor.py"
    assert bench.label_of(["/v/bin/python", "-B", "-c", "from multiprocessing.forkserver import "
                           "main; main(1, 2)"]) == "python -c from multiprocessing.forkserver"


@pytest.mark.slow
def test_fullscale_tiny(tmp_path: Path) -> None:
    out = tmp_path / "fullscale.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "fullscale.py"), "--scale", "0.004",
                           "--workdir", str(tmp_path / "work"), "--out", str(out), "--interval", "1"],
                          capture_output=True, text=True, env=env, timeout=3600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    text = out.read_text()
    assert re.search(r"CPU .+, \d+ cores, [\d.]+ GiB RAM; load average \(1 min\) during the run", text)
    assert re.search(r"\d+ turns prepared of 10 speakers in 5 sessions, \d+ windows", text)
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")
            for line in text.splitlines() if line.startswith("| ")}
    for stage in STAGES:
        cells = rows[stage]
        assert re.fullmatch(r"\d+", cells[1]) and re.fullmatch(r"\d+", cells[2]), cells  # wall, CPU s
        assert re.fullmatch(r"\d+\.\d–\d+\.\d", cells[3]), cells
        assert re.fullmatch(r"\d+ / \d+", cells[4]), cells
        assert re.match(SIZE, cells[5]) and re.fullmatch(SIZE, cells[6]), cells
        assert re.fullmatch(SIZE, cells[9]), cells
    for stage in STAGES[2:]:  # the stages that start Ray: the object store was found and read
        cells = rows[stage]
        assert re.fullmatch(f"{SIZE} of {SIZE}", cells[7]), cells
        assert re.match(SIZE + r" \(\d+ requests\), folder " + SIZE, cells[8]), cells
    search = text.split("### search")[1].split("###")[0]
    assert search.count("ray::") >= 1  # the trials' processes were sampled
    ten = (tmp_path / "work" / "results" / "fullscale-elor" / "folds")
    assert len([p for p in ten.iterdir() if p.is_dir()]) == 10
