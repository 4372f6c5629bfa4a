"""MLflow tracking: the SQLite store in the results folder, child runs from other processes, no-ops."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from raylab.runtime import tracking


def test_default_store_is_sqlite_in_the_results_folder(results, monkeypatch):
    uri = tracking.tracking_uri(results)
    assert uri == f"sqlite:///{results / 'mlflow.db'}"
    assert tracking.artifact_root(uri) == (results / "mlartifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://10.0.0.5:5000")
    assert tracking.tracking_uri(results) == "http://10.0.0.5:5000"
    assert tracking.artifact_root("http://10.0.0.5:5000") is None


def test_a_run_logs_params_metrics_config_figures_and_artifacts(results, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mlflow import MlflowClient

    tracker = tracking.Tracker(results)
    note = tmp_path / "note.txt"
    note.write_text("hello")
    with tracker.start_run("r1", tags={tracking.KIND_TAG: "test"}) as run:
        run.log_params({"lr": 0.01, "nested": {"a": 1}, "long": "x" * 7000})
        for epoch in (1, 2):
            run.log_metrics({"val_uar": 0.1 * epoch, "nan": float("nan")}, step=epoch)
        tracking.log_config({"arch": "elor", "params": {"lr": 0.01}})  # module form: the current run
        fig, ax = plt.subplots()
        run.log_figure(fig, "plot.png")
        plt.close(fig)
        run.log_artifact(note, "notes")
    client = MlflowClient(tracker.uri)
    got = client.get_run(run.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "r1"
    assert got.data.params["lr"] == "0.01" and got.data.params["nested.a"] == "1"
    assert len(got.data.params["long"]) == 6000 and got.data.tags[tracking.KIND_TAG] == "test"
    history = client.get_metric_history(run.run_id, "val_uar")
    assert [(m.step, round(m.value, 3)) for m in history] == [(1, 0.1), (2, 0.2)]
    names = {a.path for a in client.list_artifacts(run.run_id)}
    assert {"config.yaml", "plot.png", "notes"} <= names
    assert (results / "mlartifacts" / run.run_id / "artifacts" / "config.yaml").exists()
    experiment = client.get_experiment(got.info.experiment_id)
    assert experiment.artifact_location == (results / "mlartifacts").as_uri()


def test_a_failing_block_marks_the_run_failed(results):
    from mlflow import MlflowClient

    tracker = tracking.Tracker(results)
    with pytest.raises(RuntimeError):
        with tracker.start_run("boom") as run:
            raise RuntimeError("x")
    assert MlflowClient(tracker.uri).get_run(run.run_id).info.status == "FAILED"


CHILD = textwrap.dedent("""
    import sys
    from raylab.runtime import tracking
    with tracking.Tracker(sys.argv[1]).start_run(sys.argv[3], parent_run_id=sys.argv[2]) as run:
        run.log_metrics({"score": float(sys.argv[3][-1])}, step=1)
""")


def test_child_runs_from_several_processes_at_once(results):
    from mlflow import MlflowClient

    tracker = tracking.Tracker(results)
    with tracker.start_run("parent") as parent:
        procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(results), parent.run_id, f"child{i}"],
                                  stderr=subprocess.PIPE, text=True) for i in range(2)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], errors
    assert not any("INFO" in e for e in errors)  # MLflow's store messages are silenced
    client = MlflowClient(tracker.uri)
    children = client.search_runs([client.get_run(parent.run_id).info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent.run_id}'")
    assert sorted(r.info.run_name for r in children) == ["child0", "child1"]
    assert sorted(r.data.metrics["score"] for r in children) == [0, 1]


def test_disabled_tracking_is_a_no_op(results):
    tracker = tracking.Tracker(results, enabled=False)
    with tracker.start_run("quiet") as run:
        run.log_params({"a": 1})
        run.log_metrics({"b": 2.0}, step=1)
        run.log_config({"c": 3})
        tracking.log_metrics({"d": 4.0})
    assert run.run_id is None and not (results / "mlflow.db").exists()
    tracking.log_metrics({"outside": 1.0})  # no run open: nothing happens


def test_a_job_can_end_its_run_failed_and_close_children_left_running(results):
    tracker = tracking.Tracker(results)
    with tracker.start_run("parent") as parent:
        for name in ("killed-attempt", "lost-node"):  # their processes died with the runs open
            tracker.client.create_run(tracker.experiment_id(tracking.DEFAULT_EXPERIMENT),
                                      run_name=name, tags={tracking.PARENT_TAG: parent.run_id})
        with tracker.start_run("done", parent_run_id=parent.run_id):
            pass
        assert tracking.close_stale_children(tracker, parent.run_id) == 2
        parent.end_as("FAILED")
    client = tracker.client
    runs = {r.info.run_name: r for r in client.search_runs(
        [tracker.experiment_id(tracking.DEFAULT_EXPERIMENT)])}
    assert runs["parent"].info.status == "FAILED"
    assert runs["done"].info.status == "FINISHED"
    assert {runs[n].info.status for n in ("killed-attempt", "lost-node")} == {"KILLED"}
    assert runs["lost-node"].data.tags["raylab.interrupted"] == "true"


def test_the_ui_of_a_tracking_server_is_its_own_address():
    assert tracking.ui_command("http://10.0.0.5:5000") == "open http://10.0.0.5:5000"
    assert tracking.ui_command("sqlite:////r/mlflow.db") == "mlflow ui --backend-store-uri sqlite:////r/mlflow.db"
