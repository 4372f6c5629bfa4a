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
        run.log_config({"arch": "elor", "params": {"lr": 0.01}})
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
        run.set_tags({"d": 4})
        run.log_dataset("data", "abc", "/data", {"windows": 1})
    assert run.run_id is None and not (results / "mlflow.db").exists()
    assert tracker.uri is None and tracking.Run().experiment_id is None


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


def test_the_printed_address_opens_the_runs_table_of_the_experiment():
    local = tracking.ui_lines("sqlite:////r/mlflow.db", "3")
    assert local == ["MLflow runs: http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning",
                     "  (start the UI first: mlflow ui --backend-store-uri sqlite:////r/mlflow.db)"]
    server = tracking.ui_lines("https://mlflow.lab:5000/", "3", "abc")
    assert server == ["MLflow runs: https://mlflow.lab:5000/#/experiments/3/runs/abc"
                      "?workflowType=machine_learning"]
    assert not any("--backend-store-uri http" in line for line in server)


def test_runs_carry_source_user_commit_and_children_inherit_them(results, monkeypatch):
    monkeypatch.setattr(tracking, "_command", ["raylab", "tune", "elor", "--name", "a b"])
    tracker = tracking.Tracker(results)
    with tracker.start_run("parent", tags={tracking.NOTE_TAG: "what it is"}) as parent:
        parent.log_dataset("demo-data", "0123abcd", str(results / "demo-data"),
                           {"windows": 12, "evaluator": "E2"})
        with tracker.start_run("child", parent_run_id=parent.run_id) as child:
            pass
    client = tracker.client
    tags = client.get_run(parent.run_id).data.tags
    assert tags[tracking.SOURCE_NAME] == "raylab tune elor --name 'a b'"
    assert tags[tracking.NOTE_TAG] == "what it is" and tags[tracking.USER_TAG]
    commit = tracking.git_commit()
    assert tags.get(tracking.GIT_COMMIT) == commit
    assert commit is None or len(commit) == 40
    child_tags = client.get_run(child.run_id).data.tags
    assert {k: child_tags.get(k) for k in tracking.SOURCE_TAGS} == \
        {k: tags.get(k) for k in tracking.SOURCE_TAGS}
    inputs = client.get_run(parent.run_id).inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [("demo-data", "0123abcd")]
    experiment = client.get_experiment(parent.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_checkout_that_is_not_raylabs_own_gives_no_commit(monkeypatch):
    import subprocess

    tracking.git_commit.cache_clear()
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, stdout="/somewhere/else\n" + "a" * 40 + "\n", stderr=""))
    try:
        assert tracking.git_commit() is None
    finally:
        tracking.git_commit.cache_clear()


def test_deleting_runs_takes_their_children_along(results):
    tracker = tracking.Tracker(results)
    with tracker.start_run("gone", tags={tracking.RUN_DIR_TAG: str(results / "gone")}) as gone:
        with tracker.start_run("gone-child", parent_run_id=gone.run_id):
            pass
    with tracker.start_run("kept", tags={tracking.RUN_DIR_TAG: str(results)}):
        pass
    doomed = lambda tags: tags.get(tracking.RUN_DIR_TAG) == str(results / "gone")
    assert sorted(tracking.delete_runs_where(tracker, doomed)) == ["gone", "gone-child"]
    active = tracker.client.search_runs([tracker.experiment_id(tracking.DEFAULT_EXPERIMENT)])
    assert [r.info.run_name for r in active] == ["kept"]
