"""The distributed path on one machine: a Ray head and two worker nodes (`ray.cluster_utils`, each
its own raylet, 1 CPU, no GPU), a real `mlflow server` on 127.0.0.1 and a shared storage folder
(`$RAYLAB_STORAGE`). The real CLI runs a tiny search and a two-fold training against them, with
`--address`, as on a cluster: trials and folds land on several nodes, every run reaches the
server with its metrics and artifacts, and nothing is left RUNNING or holding the cluster."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.fixtures_runtime import start_local_ray
from tests.test_crossval import TOY

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "search_spaces" / "ok_tiny_elor.yaml"
NODE = dict(num_cpus=1, num_gpus=0, object_store_memory=128 * 1024 * 1024)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(folder: Path, timeout: float = 180.0):
    """`mlflow server` on a free port of 127.0.0.1, its store a copy of raylab's migrated empty
    store (MLflow's migrations take a minute on a busy machine); killed with its workers after."""
    from raylab.runtime.tracking import _template

    db = folder / "mlflow.db"
    if _template() is not None:
        shutil.copyfile(_template(), db)
    port = _free_port()
    log = open(folder / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{db}",
         "--artifacts-destination", str(folder / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not answer: {(folder / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def token_auth() -> None:
    """Ray's token authentication on for the nodes this process starts, as `ray.init` turns it on
    for a local Ray (unless RAY_AUTH_MODE says otherwise): the token is ~/.ray/auth_token (made
    when missing) or $RAY_AUTH_TOKEN."""
    from ray._private.authentication.authentication_token_setup import (
        enable_token_auth_by_default, ensure_token_if_auth_enabled)

    if enable_token_auth_by_default():
        ensure_token_if_auth_enabled()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, demo_dataset):
    """Head + two workers (1 CPU each), an MLflow server, shared storage; the session's local
    Ray is stopped for the module and started again after."""
    import ray
    from ray.cluster_utils import Cluster

    folder = tmp_path_factory.mktemp("multinode")
    had_ray = ray.is_initialized()
    ray.shutdown()
    token_auth()
    with pytest.MonkeyPatch.context() as mp, mlflow_server(folder) as uri:
        # the nodes' processes inherit this environment: raylab from this tree, the shared storage
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        mp.setenv("RAYLAB_STORAGE", str(folder / "storage"))
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("RAY_DEDUP_LOGS", "0")
        mp.delenv("RAY_ADDRESS", raising=False)
        (folder / "storage").mkdir()
        nodes = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
        try:
            workers = [nodes.add_node(**NODE) for _ in range(2)]
            nodes.wait_for_nodes()
            yield SimpleNamespace(address=nodes.address, nodes=nodes, workers=workers, uri=uri,
                                  results=folder / "results", data=demo_dataset, folder=folder)
        finally:
            ray.shutdown()
            nodes.shutdown()
    if had_ray:
        start_local_ray()


def cli(*argv: str) -> tuple[int, str, str]:
    from raylab.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    import ray

    ray.shutdown()  # as a process that ran one command and ended
    return code, out.getvalue(), err.getvalue()


def remove_a_node_running(cluster, nodes: list, process: subprocess.Popen, runs: str):
    """Remove the first of `nodes` that a RUNNING MLflow run matching the filter `runs` names
    (its `raylab.node_id`), while `process` runs; returns the node removed."""
    from mlflow import MlflowClient

    client = MlflowClient(cluster.uri)
    workers = {node.node_id: node for node in nodes}
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline and process.poll() is None:
        ids = [e.experiment_id for e in client.search_experiments()]
        running = client.search_runs(ids, f"{runs} and attributes.status = 'RUNNING'")
        victim = next((workers[r.data.tags["raylab.node_id"]] for r in running
                       if r.data.tags.get("raylab.node_id") in workers), None)
        time.sleep(0.5)
    assert victim is not None, "nothing ran on a worker node"
    cluster.nodes.remove_node(victim)
    return victim


def server_runs(uri: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    return client, client.search_runs([e.experiment_id for e in client.search_experiments()])


def alive_actors(address: str) -> list:
    """The actors alive in the cluster, by class (from the GCS: the nodes run no dashboard)."""
    import ray
    from ray._private.state import state

    ray.init(address=address, log_to_driver=False)
    try:
        return [a.get("ActorClassName") for a in state.actor_table(None).values()
                if a.get("State") == "ALIVE"]
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def searched(cluster):
    code, out, err = cli("--results", str(cluster.results), "tune", "elor", "--data",
                         str(cluster.data), "--space", str(TINY), "--num-samples", "2",
                         "--epochs", "1", "--name", "mn-search", "--address", cluster.address)
    return SimpleNamespace(code=code, out=out, err=err)


def ray_processes() -> int:
    """Ray's worker processes on this machine (`ray::...` in ps), all nodes together."""
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return sum(line.startswith("ray::") for line in listing.splitlines())


@contextlib.contextmanager
def peak_ray_processes(record: dict):
    """The most `ray::` processes seen, sampled every half second during the block."""
    import threading

    record.update(before=ray_processes(), peak=0)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            record["peak"] = max(record["peak"], ray_processes())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        stop.set()
        thread.join()
        record["after"] = ray_processes()


@pytest.fixture(scope="module")
def trained(cluster, searched):
    from raylab.data.dataset import load_dataset

    folds = load_dataset(cluster.data, audio=False).speakers[:3]  # as many as nodes
    sets = [arg for key, value in TOY.items() for arg in ("--set", f"{key}={value}")]
    # node CPUs == --cpus-per-worker: a fold trial holding any CPU would leave no room for workers
    with peak_ray_processes({}) as counted:
        code, out, err = cli("--results", str(cluster.results), "train", "elor", "--data",
                             str(cluster.data), "--folds", ",".join(folds), "--cpus-per-worker",
                             "1",
                             "--max-failures", "1", "--name", "mn-tenfold", "--address",
                             cluster.address, *sets)
    (cluster.folder / "ray_processes.json").write_text(json.dumps(counted))
    return SimpleNamespace(code=code, out=out, err=err, folds=folds, processes=counted)


def test_search_spreads_trials_over_nodes_and_tracks_them_on_the_server(cluster, searched):
    assert searched.code == 0, searched.out + searched.err
    assert (cluster.results / "mn-search" / "best.yaml").exists()
    assert f"MLflow runs: {cluster.uri}/#/experiments/" in searched.out
    assert "backend-store-uri" not in searched.out  # a server needs no `mlflow ui`
    client, runs = server_runs(cluster.uri)
    trials = [r for r in runs if r.data.tags.get("raylab.kind") == "trial"]
    assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials)
    assert all("val/mean_war" in r.data.metrics for r in trials)
    assert len({r.data.tags["raylab.node_id"] for r in trials}) >= 2
    parent = next(r for r in runs if r.data.tags.get("raylab.kind") == "search")
    assert parent.info.status == "FINISHED"
    assert {"best.yaml", "search_space.yaml"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}


def test_tenfold_spreads_folds_over_one_cpu_nodes_without_deadlock(cluster, trained):
    assert trained.code == 0, trained.out + trained.err
    client, runs = server_runs(cluster.uri)
    folds = [r for r in runs if r.data.tags.get("raylab.kind") == "crossval-fold"]
    assert sorted(r.data.tags["raylab.fold"] for r in folds) == sorted(trained.folds)
    assert all(r.info.status == "FINISHED" and "test/arousal_war" in r.data.metrics for r in folds)
    assert len({r.data.tags["raylab.node_id"] for r in folds}) >= 2
    print(f"ray:: processes before/peak/after the ten-fold run: {trained.processes}")
    for run in folds:
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "confusion_arousal.png" in names  # logged from the worker's node
    assert all(r.info.status != "RUNNING" for r in runs)
    # Ray's cluster-wide singletons (detached, one per cluster) stay by design; none of the run's
    assert set(alive_actors(cluster.address)) <= {"TrainStateActor", "_AutoscalingCoordinatorActor"}


def test_report_and_doctor_see_the_cluster(cluster, trained):
    code, out, err = cli("--results", str(cluster.results), "report")
    assert code == 0 and "mn-tenfold" in out, out + err
    code, out, err = cli("--results", str(cluster.results), "doctor", "--address", cluster.address)
    assert "3 nodes" in out and f"{cluster.uri}: reachable" in out, out


def test_trials_no_node_holds_are_refused_naming_flags_that_fit(cluster, searched):
    code, out, err = cli("--results", str(cluster.results), "tune", "elor", "--data",
                         str(cluster.data), "--space", str(TINY), "--num-samples", "2",
                         "--gpus-per-trial", "0.25", "--cpus-per-trial", "2",
                         "--name", "mn-too-big", "--address", cluster.address)
    assert code == 1 and "--gpus-per-trial 0 --cpus-per-trial 1" in err, err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow  # minutes on 2 cores: make test-cluster
def test_a_driver_killed_mid_run_resumes_without_losing_or_repeating_a_fold(cluster, trained):
    """`raylab train` SIGKILLed once its first fold is installed, then `--resume`: the lock died
    with it, the finished fold is kept (not trained again), the one cut off is trained, and the
    fold run the kill left RUNNING is closed KILLED."""
    folds = trained.folds[:2]
    sets = [arg for key, value in TOY.items() for arg in ("--set", f"{key}={value}")]
    argv = ["--results", str(cluster.results), "train", "elor", "--data", str(cluster.data),
            "--folds", ",".join(folds), "--cpus-per-worker", "1", "--name", "mn-killed",
            "--address", cluster.address, *sets]
    driver = subprocess.Popen([sys.executable, "-m", "raylab", *argv], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=dict(os.environ))
    run_dir = cluster.results / "mn-killed"
    try:
        deadline = time.monotonic() + 400
        while not list(run_dir.glob("folds/*/predictions.parquet")):
            assert driver.poll() is None and time.monotonic() < deadline, "no fold finished"
            time.sleep(0.2)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    kept = [p.parent.name for p in run_dir.glob("folds/*/predictions.parquet")]
    stamps = {f: (run_dir / "folds" / f / "predictions.parquet").stat().st_mtime_ns for f in kept}

    code, out, err = cli(*argv, "--resume")
    assert code == 0, out + err
    assert all((run_dir / "folds" / f / "predictions.parquet").stat().st_mtime_ns == stamps[f]
               for f in kept)
    client, runs = server_runs(cluster.uri)
    parent = json.loads((run_dir / "run.json").read_text())["mlflow_run_id"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent]
    finished = sorted(r.data.tags["raylab.fold"] for r in children if r.info.status == "FINISHED")
    statuses = [(r.data.tags["raylab.fold"], r.info.status) for r in children]
    assert finished == sorted(folds), statuses  # each fold trained to the end exactly once
    assert all(r.info.status in ("FINISHED", "KILLED") for r in children)
    assert client.get_run(parent).info.status == "FINISHED"


@pytest.mark.slow  # minutes on 2 cores: make test-cluster
def test_a_node_lost_mid_search_costs_no_trial_and_leaves_nothing_running(cluster, trained):
    """A worker node removed while the search's trials run: the trials it hosted are retried
    (--max-failures), the search reaches its budget, and no MLflow run stays RUNNING."""
    env = {**os.environ, "PYTHONPATH": os.environ["PYTHONPATH"]}
    search = subprocess.Popen(
        [sys.executable, "-m", "raylab", "--results", str(cluster.results), "tune", "elor",
         "--data", str(cluster.data), "--space", str(TINY), "--num-samples", "3", "--epochs", "2",
         "--max-failures", "2", "--name", "mn-lost", "--address", cluster.address],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        victim = remove_a_node_running(cluster, cluster.workers, search,
                                       "tags.`raylab.search` = 'mn-lost'")  # a trial runs there
        out, _ = search.communicate(timeout=600)
    finally:
        if search.poll() is None:
            search.kill()
            search.wait()
    assert search.returncode == 0, out[-3000:]
    assert "3 of 3 trials; 3 finished" in out, out[-3000:]
    client, runs = server_runs(cluster.uri)
    assert all(r.info.status != "RUNNING" for r in runs)
    lost = [r for r in runs if r.data.tags.get("raylab.search") == "mn-lost"
            and r.data.tags.get("raylab.node_id") == victim.node_id]
    assert lost and all(r.info.status in ("FINISHED", "KILLED", "FAILED") for r in lost)
    print("trial runs on the removed node:", [(r.data.tags["raylab.trial_id"], r.info.status)
                                              for r in lost])


@pytest.mark.slow  # minutes on 2 cores: make test-cluster
def test_a_node_lost_mid_tenfold_run_costs_no_fold_and_leaves_nothing_running(cluster):
    """A worker node removed while the folds train (one per node): the fold it hosted is retried
    by Ray Train within --max-failures on the nodes left, all folds finish, and every fold run is
    FINISHED once and otherwise FAILED or KILLED, none RUNNING."""
    alive = [node for node in cluster.workers if node.remaining_processes_alive()]
    cluster.workers.append(cluster.nodes.add_node(**NODE))  # three nodes again
    cluster.nodes.wait_for_nodes()
    alive.append(cluster.workers[-1])
    from raylab.data.dataset import load_dataset

    folds = load_dataset(cluster.data, audio=False).speakers[:3]  # one per node
    sets = [arg for key, value in TOY.items() for arg in ("--set", f"{key}={value}")]
    driver = subprocess.Popen(
        [sys.executable, "-m", "raylab", "--results", str(cluster.results), "train", "elor",
         "--data", str(cluster.data), "--folds", ",".join(folds), "--cpus-per-worker", "1",
         "--max-failures", "2", "--name", "mn-lost-fold", "--address", cluster.address, *sets],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    try:
        victim = remove_a_node_running(cluster, alive, driver,  # a fold's worker trains there
                                       "tags.`raylab.kind` = 'crossval-fold'")
        out, _ = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 0, out[-3000:]
    run_dir = cluster.results / "mn-lost-fold"
    record = json.loads((run_dir / "run.json").read_text())
    assert sorted(record["completed"]) == sorted(folds) and not record["failed"], record
    assert all((run_dir / "folds" / f / "predictions.parquet").exists() for f in folds)
    client, runs = server_runs(cluster.uri)
    assert all(r.info.status != "RUNNING" for r in runs)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == record["mlflow_run_id"]]
    statuses = [(r.data.tags["raylab.fold"], r.data.tags.get("raylab.node_id"), r.info.status)
                for r in children]
    finished = sorted(fold for fold, _, status in statuses if status == "FINISHED")
    assert finished == sorted(folds), (statuses, out[-4000:])  # each trained once, to the end
    assert all(status in ("FINISHED", "FAILED", "KILLED") for _, _, status in statuses)
    lost = [status for _, node, status in statuses if node == victim.node_id]
    assert lost and "FINISHED" not in lost, statuses  # the lost node's attempt did not finish
    assert client.get_run(record["mlflow_run_id"]).info.status == "FINISHED"
    print("fold runs (fold, node, status):", statuses)


def test_a_wrong_token_is_named_in_one_line(cluster):
    """A process whose Ray token the cluster refuses: `raylab doctor --address` names the
    InvalidAuthToken failure on its ray line, `raylab tune --address` says it in one line."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 32}
    env.pop("RAY_AUTH_TOKEN_PATH", None)

    def raylab(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "raylab", "--results", str(cluster.results),
                               *argv, "--address", cluster.address], env=env, text=True,
                              capture_output=True, timeout=300)

    doctor = raylab("doctor")
    ray_line = [line for line in doctor.stdout.splitlines() if line.split()[1:2] == ["ray"]]
    assert doctor.returncode == 1 and len(ray_line) == 1, doctor.stdout + doctor.stderr
    assert ray_line[0].startswith("FAIL") and "InvalidAuthToken" in ray_line[0], ray_line
    assert "Traceback" not in doctor.stdout + doctor.stderr, doctor.stderr[-3000:]
    tune = raylab("tune", "elor", "--data", str(cluster.data), "--space", str(TINY),
                  "--name", "mn-token")
    assert tune.returncode == 1, tune.stdout + tune.stderr
    assert tune.stderr.startswith("raylab: error: ") and "token" in tune.stderr, tune.stderr[-3000:]
    assert len(tune.stderr.strip().splitlines()) == 1, tune.stderr[-3000:]
