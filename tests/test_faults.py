"""Faults on one machine: the `raylab tune` driver SIGKILLed and then interrupted (SIGINT, as
Ctrl-C) at fixed points, each followed by `--resume`; one trial's process killed as the
out-of-memory killer kills one, and one grown until Ray's memory monitor kills it; a fold's Ray
Train controller or worker killed the same way. Counted from Ray Tune's record, from MLflow and
from raylab's own record of ended trials (`<run>/trials/`): nothing finished is lost, nothing runs
twice, the totals equal the budget, and no MLflow run is left RUNNING."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.fixtures_runtime import process_env
from tests.test_search import TINY, _runs

ROOT = Path(__file__).resolve().parents[1]


def _trial_records(run_dir: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (run_dir / "trials").glob("*.json")}


@pytest.mark.slow  # three driver processes, each starting its own Ray: minutes on 2 cores
def test_a_search_killed_then_interrupted_resumes_to_its_budget_running_nothing_twice(
        demo_dataset, tmp_path):
    from ray.tune import ExperimentAnalysis

    results = tmp_path / "results"
    run_dir = results / "faulty"
    env = process_env()
    argv = [sys.executable, "-m", "tests.fault_driver", "--results", str(results), "tune", "elor",
            "--data", str(demo_dataset), "--space", str(TINY), "--name", "faulty"]

    def drive(fault: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([*argv, *extra], env={**env, "RAYLAB_TEST_FAULT": fault}, cwd=ROOT,
                              capture_output=True, text=True, timeout=900)

    # 3 trials of 2 epochs, 2 at once; SIGKILL the moment the first trial's last epoch arrives
    killed = drive("kill")
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-3000:]
    first = _trial_records(run_dir)
    assert len(first) == 1 and all(r["status"] == "FINISHED" for r in first.values())
    stamps = {p.name: p.stat().st_mtime_ns for p in (run_dir / "trials").iterdir()}

    # resumed, then Ctrl-C the moment the next trial ends; Tune stops the search gracefully
    interrupted = drive("interrupt", "--resume")
    assert interrupted.returncode == 130, interrupted.stdout[-2000:] + interrupted.stderr[-3000:]
    assert "continue with: raylab tune elor --name faulty --resume" in interrupted.stdout

    done = drive("", "--resume")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "3 of 3 trials; 3 finished, 0 failed" in done.stdout, done.stdout[-2000:]

    # Tune's record: the budget, every trial finished with both epochs
    tune_trials = ExperimentAnalysis(str(results / "ray" / "faulty")).trials
    assert len(tune_trials) == 3 and all(t.status == "TERMINATED" for t in tune_trials)
    assert all(t.last_result["training_iteration"] == 2 for t in tune_trials)
    ids = sorted(t.trial_id for t in tune_trials)
    # raylab's record: the same trials, the first one's file written once, never again
    records = _trial_records(run_dir)
    assert sorted(records) == ids and all(r["status"] == "FINISHED" for r in records.values())
    assert all(len(r["results"]) == 2 for r in records.values())
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "trials").iterdir()
            if p.name in stamps} == stamps
    for t in tune_trials:  # what Tune holds of each trial is what it reported when it trained
        assert t.last_result["val_acc_mean"] == records[t.trial_id]["results"][-1]["val_acc_mean"]
    # MLflow: one parent; exactly one FINISHED child run per trial, the rest KILLED, none RUNNING
    _, runs = _runs(results)
    parents = [r for r in runs if r.data.tags.get("raylab.kind") == "search"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    statuses = [(r.data.tags["raylab.trial_id"], r.info.status) for r in children]
    finished = Counter(trial for trial, status in statuses if status == "FINISHED")
    assert sorted(finished) == ids and set(finished.values()) == {1}, statuses
    assert all(status in ("FINISHED", "KILLED") for _, status in statuses), statuses
    best = json.loads((run_dir / "run.json").read_text())
    assert best["complete"] is True and best["best_trial"] in ids
    assert not (run_dir / "best.yaml").read_text().startswith("# partial")


def test_a_trial_killed_for_memory_is_its_failure_and_the_search_goes_on(
        ray_local, demo_dataset, results, monkeypatch, capsys):
    """The paper's point's trial SIGKILLs its own process after its first epoch (as the OOM
    killer would), with no retry left: that trial is FAILED in Tune's record, raylab's record and
    MLflow; the other two finish, `raylab tune` exits 0 with a summary, no traceback, and writes a
    best.yaml that is not partial."""
    import raylab.search.ray_tune
    from raylab.cli import main
    from tests.fault_injection import trial_killed_for_memory

    monkeypatch.setattr(raylab.search.ray_tune, "_trial", trial_killed_for_memory)
    code = main(["tune", "elor", "--data", str(demo_dataset), "--space", str(TINY), "--name",
                 "oom", "--max-failures", "0"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "3 of 3 trials; 2 finished, 1 failed" in out and "Traceback" not in out + err, out + err
    run_dir = results / "oom"
    best = (run_dir / "best.yaml").read_text()
    assert "partial" not in best and "lr: 0.006" not in best
    records = _trial_records(run_dir)
    assert sorted(r["status"] for r in records.values()) == ["FAILED", "FINISHED", "FINISHED"]
    victim = next(r for r in records.values() if r["status"] == "FAILED")
    assert victim["config"]["lr"] == 0.006 and len(victim["results"]) == 1
    _, runs = _runs(results)
    assert all(r.info.status != "RUNNING" for r in runs), \
        [(r.data.tags, r.info.status) for r in runs]
    killed = [r for r in runs if r.data.tags.get("raylab.trial_id") == victim["trial_id"]]
    assert len(killed) == 1 and killed[0].info.status == "FAILED"
    assert "val/mean_war" in killed[0].data.metrics  # the epoch it lived to report
    parent = next(r for r in runs if r.data.tags.get("raylab.kind") == "search")
    assert parent.info.status == "FINISHED" and parent.data.tags["raylab.trials_failed"] == "1"


def test_tune_takes_a_memory_monitor_kill_for_the_trial_s_death_not_its_own():
    """Ray Tune's actor manager raises "Caught unexpected exception" out of `Tuner.fit()` when a
    trial's call answers OutOfMemoryError (Ray's memory monitor killed its process); with
    `tune_counts_memory_kills` (every `ray_session`) it is the actor's death, handed to the
    trial's error callbacks, as a SIGKILL's ActorDiedError is."""
    from types import SimpleNamespace

    import ray.exceptions
    from ray.air.execution._internal.actor_manager import RayActorManager

    from raylab.runtime.ray_session import tune_counts_memory_kills

    tune_counts_memory_kills()
    tune_counts_memory_kills()  # once per process, however often a session starts
    seen = []
    actor = SimpleNamespace(actor_id="a1", _on_error=lambda a, e: seen.append(("actor", e)))
    task = SimpleNamespace(_tracked_actor=actor, _on_error=lambda a, e: seen.append(("task", e)))
    manager = SimpleNamespace(_failed_actor_ids=set(), _cleanup_actor=lambda tracked_actor: None)
    killed = ray.exceptions.OutOfMemoryError("1 worker(s) were killed due to the node running low "
                                             "on memory")
    RayActorManager._actor_task_failed(manager, task, killed)
    assert manager._failed_actor_ids == {"a1"} and [kind for kind, _ in seen] == ["actor", "task"]
    assert all(isinstance(e, ray.exceptions.RayActorError) and "running low on memory" in str(e)
               for _, e in seen)


@pytest.mark.slow  # a driver process starting its own Ray, a trial grown until it is killed
def test_a_trial_ray_s_memory_monitor_kills_is_its_failure_and_the_search_goes_on(
        demo_dataset, tmp_path):
    """The real monitor, not a SIGKILL: the driver's Ray gets a memory threshold 10 % of the
    machine above what it uses now, and the paper's point's trial grows until the monitor kills
    it (as one full-size trial was killed at 95 % on a 24 GiB machine). With no retry left that
    trial is FAILED; the other two finish, `raylab tune` exits 0 with no traceback and writes a
    best.yaml that is not partial; no MLflow run is left RUNNING."""
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    total, available = (int(meminfo[k].split()[0]) for k in ("MemTotal", "MemAvailable"))
    threshold = min(0.95, (total - available) / total + 0.10)
    results = tmp_path / "results"
    env = process_env(RAYLAB_TEST_FAULT="memory", RAY_memory_usage_threshold=f"{threshold:.3f}",
                      RAY_memory_monitor_refresh_ms="100")
    done = subprocess.run([sys.executable, "-m", "tests.fault_driver", "--results", str(results),
                           "tune", "elor", "--data", str(demo_dataset), "--space", str(TINY),
                           "--name", "oom", "--max-failures", "0"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "3 of 3 trials; 2 finished, 1 failed" in done.stdout, done.stdout[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    run_dir = results / "oom"
    assert "partial" not in (run_dir / "best.yaml").read_text()
    records = _trial_records(run_dir)
    assert sorted(r["status"] for r in records.values()) == ["FAILED", "FINISHED", "FINISHED"]
    victim = next(r for r in records.values() if r["status"] == "FAILED")
    assert victim["config"]["lr"] == 0.006
    assert "memory" in (run_dir / "raylab.log").read_text()
    _, runs = _runs(results)
    assert all(r.info.status != "RUNNING" for r in runs), \
        [(r.data.tags, r.info.status) for r in runs]


def test_a_search_saved_before_raylab_kept_its_record_resumes_with_record_and_bar(
        ray_local, demo_dataset, results, monkeypatch, capsys):
    """A search whose Tune state was saved by a raylab before the record of ended trials and the
    search bar (no `<run>/trials/`, neither callback in Tune's state), interrupted after its first
    trial, then resumed by this raylab: one line says so, the record starts from Tune's state and
    holds every trial once the budget is reached, and the bar counts the trials that end."""
    import raylab.search.ray_tune as ray_tune
    from ray.tune import ExperimentAnalysis

    from raylab.search.driver import SearchOptions, run_search
    from raylab.search.ray_record import TrialRecorder
    from tests.fixtures_runs import InterruptAfter

    new_tuner = ray_tune._new_tuner

    def as_before_the_record(*args):  # the Tuner an older raylab built: neither callback
        *head, callbacks = args
        kept = tuple(c for c in callbacks
                     if not isinstance(c, (TrialRecorder, ray_tune.SearchProgress)))
        return new_tuner(*head, kept)

    with monkeypatch.context() as patched:
        patched.setattr(ray_tune, "_new_tuner", as_before_the_record)
        first = run_search("elor", str(demo_dataset), SearchOptions(TINY, name="old"),
                           results=results, callbacks=[InterruptAfter(1)])
    run_dir = results / "old"
    assert not first.complete and not (run_dir / "trials").exists()
    capsys.readouterr()
    said: list[str] = []
    done = run_search("elor", None, SearchOptions(resume=True, name="old"), results=results,
                      say=said.append)
    assert done.complete and sum(t.status == "FINISHED" for t in done.trials) == 3
    assert len(said) == 1 and "without the record of ended trials" in said[0], said
    assert "(1 ended trials" in said[0], said
    tune_trials = ExperimentAnalysis(str(results / "ray" / "old")).trials
    records = _trial_records(run_dir)
    assert sorted(records) == sorted(t.trial_id for t in tune_trials)
    for t in tune_trials:
        assert records[t.trial_id]["status"] == "FINISHED"
        assert [r["epoch"] for r in records[t.trial_id]["results"]] == [1, 2]
        assert records[t.trial_id]["results"][-1]["val_acc_mean"] == t.last_result["val_acc_mean"]
    assert "search old: 3/3 trials" in capsys.readouterr().err


@pytest.mark.slow  # two driver processes, each starting its own Ray: minutes on 2 cores
def test_a_trial_tune_never_saved_is_replayed_on_resume_not_trained_again(demo_dataset, tmp_path):
    """Tune saves its state once at the start here (`TUNE_GLOBAL_CHECKPOINT_S`, Tune's own knob,
    set high: the window between two saves made wide), so the third trial starts and ends wholly
    between two saves; the driver is SIGKILLed the moment that trial is recorded. The resumed
    search reaches its budget with nothing trained twice: counted from Tune's record, MLflow and
    raylab's record."""
    from ray.tune import ExperimentAnalysis

    results = tmp_path / "results"
    run_dir = results / "window"
    env = process_env()
    env["TUNE_GLOBAL_CHECKPOINT_S"] = "3600"
    argv = [sys.executable, "-m", "tests.fault_driver", "--results", str(results), "tune", "elor",
            "--data", str(demo_dataset), "--space", str(TINY), "--name", "window"]

    killed = subprocess.run(argv, env={**env, "RAYLAB_TEST_FAULT": "kill:3"}, cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-3000:]
    first = _trial_records(run_dir)
    assert len(first) == 3 and all(r["status"] == "FINISHED" for r in first.values())
    stamps = {p.name: p.stat().st_mtime_ns for p in (run_dir / "trials").iterdir()}

    done = subprocess.run([*argv, "--resume"], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "3 of 3 trials; 3 finished, 0 failed" in done.stdout, done.stdout[-2000:]
    # Tune's record: the budget, and the trials raylab recorded before the kill, no other
    tune_trials = ExperimentAnalysis(str(results / "ray" / "window")).trials
    assert sorted(t.trial_id for t in tune_trials) == sorted(first)
    assert all(t.status == "TERMINATED" for t in tune_trials)
    for t in tune_trials:  # each as it reported when it trained, replayed from the record
        assert t.last_result["val_acc_mean"] == first[t.trial_id]["results"][-1]["val_acc_mean"]
    # raylab's record: written once, before the kill
    assert _trial_records(run_dir) == first
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "trials").iterdir()} == stamps
    # MLflow: one FINISHED child run per trial, none trained after the resume
    _, runs = _runs(results)
    parent = next(r for r in runs if r.data.tags.get("raylab.kind") == "search")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    statuses = sorted((r.data.tags["raylab.trial_id"], r.info.status) for r in children)
    assert statuses == [(trial, "FINISHED") for trial in sorted(first)], statuses
    assert parent.info.status == "FINISHED"


@pytest.mark.slow  # a minute each on 2 cores (Ray Train's controller and workers, a retry)
@pytest.mark.parametrize("helper, when", [("controller", "epoch"), ("worker", "epoch"),
                                          ("controller", "outputs")])
def test_a_fold_whose_ray_train_helper_is_killed_for_memory_is_retried(
        ray_local, demo_dataset, results, monkeypatch, capsys, tmp_path, helper, when):
    """The fold's TrainController, or its RayTrainWorker, SIGKILLed after the fold's first epoch
    or once it reported its outputs (as Ray's memory monitor kills a process): the fold is retried
    within --max-failures and finishes, trained to the end once; the killed attempt's MLflow run
    is closed, none RUNNING; no temporary folder of the fold is left."""
    import functools
    import tempfile

    import raylab.crossval.ray_train
    from raylab.cli import main
    from raylab.data.dataset import load_dataset
    from tests.fault_injection import fold_helper_killed
    from tests.fixtures_runs import TOY

    fold = load_dataset(demo_dataset, audio=False).speakers[0]
    flag = tmp_path / "killed"
    monkeypatch.setattr(raylab.crossval.ray_train, "train_fold_worker",
                        functools.partial(fold_helper_killed, helper=helper, flag=str(flag),
                                          when=when))
    temps = set(Path(tempfile.gettempdir()).glob(f"raylab-{fold}-*"))
    sets = [arg for key, value in {**TOY, "epochs": 2}.items()
            for arg in ("--set", f"{key}={value}")]
    code = main(["train", "elor", "--data", str(demo_dataset), "--folds", fold, "--name", "oom",
                 "--cpus-per-worker", "0.5", "--max-failures", "1", *sets])
    out, err = capsys.readouterr()
    assert flag.exists(), "the fault was not injected"
    assert code == 0, out[-3000:] + err[-3000:]
    run = json.loads((results / "oom" / "run.json").read_text())
    assert run["completed"] == [fold] and not run["failed"], run
    assert (results / "oom" / "folds" / fold / "predictions.parquet").exists()
    _, runs = _runs(results)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == run["mlflow_run_id"]]
    statuses = sorted(r.info.status for r in children)
    if when == "outputs":  # the fold was trained; its retry reported the outputs again
        assert statuses == ["FINISHED"], statuses
    else:  # the killed attempt, then the retry
        assert statuses == ["FINISHED", "KILLED"], statuses
    finished = next(r for r in children if r.info.status == "FINISHED")
    assert "test/arousal_war" in finished.data.metrics
    assert set(Path(tempfile.gettempdir()).glob(f"raylab-{fold}-*")) <= temps
