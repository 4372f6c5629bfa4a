"""What a person sees in the MLflow store after a tiny search (interrupted and resumed) and a tiny
ten-fold run: readable run names, the best trial tagged, the search space on the parent, one name
per metric grouped by prefix, source/user/commit tags, descriptions and the dataset input; then
Table 5 as a run of its own, and deleting runs takes their MLflow runs along."""
from __future__ import annotations

import contextlib
import io
import json
import re
from collections import defaultdict

import pytest

from raylab import NUM_CLASSES
from raylab.report.metric_names import PREFIXES
from raylab.runtime import tracking


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(uri)


def _family(client, parent_id: str) -> tuple:
    parent = client.get_run(parent_id)
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent_id}'")
    return parent, children


def _duplicates(client, run) -> list[tuple[str, ...]]:
    """Groups of metric names of `run` whose value series (step by step, two steps or more) are
    equal. A single value can equal another by chance, and the toy networks here often predict
    one class, so that, e.g., their pooled WAR is the most-frequent-label baseline's and every
    UAR is exactly 1/5: those are left out (single figures are checked by their names)."""
    series = defaultdict(list)
    for name in run.data.metrics:
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, name))
        if len(history) > 1 and not all(value == 1 / NUM_CLASSES for _, value in history):
            series[tuple(history)].append(name)
    return [tuple(sorted(names)) for names in series.values() if len(names) > 1]


EPOCH_METRICS = {"train/loss", "train/lr", "train/epoch_seconds", "val/loss",
                 *(f"val/{d}_{k}" for d in ("valence", "arousal", "mean") for k in ("war", "uar", "f1"))}
FOLD_TEST_METRICS = {f"test/{d}_{k}" for d in ("valence", "arousal") for k in ("war", "uar", "f1")}
POOLED_METRICS = {*(f"test/{kind}_{d}_{k}" for kind in ("pooled", "utterance", "fold_mean", "fold_std")
                    for d in ("valence", "arousal") for k in ("war", "uar", "f1")),
                  *(f"test/most_frequent_{d}_{k}" for d in ("valence", "arousal") for k in ("war", "uar")),
                  "test/test_prior_valence_war", "test/test_prior_arousal_war"}


def _check_common(client, runs, dataset) -> None:
    """Every run: metrics under the four prefixes and no two names for one series; source, user,
    commit tags and a description; the dataset input with the data layer's digest."""
    commit = tracking.git_commit()
    for run in runs:
        name = run.info.run_name
        assert run.data.metrics, name
        assert all(m.startswith(PREFIXES) for m in run.data.metrics), (name, run.data.metrics)
        assert _duplicates(client, run) == [], name
        tags = run.data.tags
        assert tags[tracking.SOURCE_NAME].startswith("raylab") or tags[tracking.SOURCE_NAME]
        assert tags[tracking.USER_TAG] and len(tags[tracking.NOTE_TAG]) > 20, name
        assert tags.get(tracking.GIT_COMMIT) == commit, name
        inputs = run.inputs.dataset_inputs
        assert [(i.dataset.name, i.dataset.digest) for i in inputs] == \
            [(dataset["name"], dataset["digest"])], name
        assert '"windows"' in inputs[0].dataset.profile


@pytest.fixture(scope="module")
def dataset(demo_dataset):
    from raylab.data.dataset import dataset_record, load_dataset

    return dataset_record(load_dataset(demo_dataset, audio=False))


def test_search_runs_compare_at_a_glance(resumed_search, dataset):
    done = resumed_search.done
    client = _client(resumed_search.tracking_uri)
    parent, children = _family(client, done.mlflow_run_id)
    assert parent.info.run_name == "tiny"
    # trials named by their number in the order Tune created them; a trial cut off by the
    # interruption and run again keeps its number
    for child in children:
        assert child.info.run_name == f"tiny #{int(child.data.tags['raylab.trial_number']):02d}"
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert sorted(c.info.run_name for c in finished) == ["tiny #01", "tiny #02", "tiny #03"]
    # the best trial tagged, and named on the parent
    best = [c for c in children if c.data.tags.get(tracking.BEST_TAG) == "true"]
    assert len(best) == 1 and best[0].data.tags["raylab.trial_id"] == done.best.trial_id
    assert parent.data.tags["raylab.best_trial"] == best[0].info.run_name
    assert parent.data.tags["raylab.best_run_id"] == best[0].info.run_id
    assert parent.data.metrics["val/best_mean_war"] == done.best.value
    # the space's ranges and the fixed values on the parent, and the space file
    params = parent.data.params
    assert params["space/lr"] == "loguniform(0.0001, 0.1)"
    assert params["space/batch_size"] == "randint(5, 40)"
    assert params["fixed/epochs"] == "2" and params["fixed/seed"] == "0"
    assert "search_space.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    _check_common(client, [parent, *finished], dataset)
    assert all(set(c.data.metrics) == EPOCH_METRICS for c in finished)


def test_tenfold_runs_compare_at_a_glance(tenfold, dataset):
    client = _client(tenfold.tracking_uri)
    parent, children = _family(client, tenfold.run["mlflow_run_id"])
    assert parent.info.run_name == "elor-tenfold"
    assert sorted(c.info.run_name for c in children) == \
        sorted(f"elor-tenfold · {fold}" for fold in tenfold.trained)
    assert all(c.info.run_name.endswith(c.data.tags["raylab.fold"]) for c in children)
    assert parent.data.tags[tracking.SOURCE_NAME].startswith("raylab --results ")
    assert " train elor " in parent.data.tags[tracking.SOURCE_NAME]
    _check_common(client, [parent, *children], dataset)
    # one name per figure: exactly these (their values may coincide on a toy network)
    assert set(parent.data.metrics) == POOLED_METRICS
    assert all(set(c.data.metrics) == EPOCH_METRICS | FOLD_TEST_METRICS for c in children)
    # the command's last lines: the runs table of the experiment, and how to start the UI
    url = (f"http://127.0.0.1:5000/#/experiments/{parent.info.experiment_id}/runs"
           "?workflowType=machine_learning")
    assert f"MLflow runs: {url}\n" in tenfold.text
    assert f"mlflow ui --backend-store-uri {tenfold.tracking_uri}" in tenfold.text


def test_report_logs_table5_as_a_run_and_deleting_runs_takes_their_mlflow_runs(tenfold,
                                                                                tmp_path):
    import shutil

    from raylab.cli import main

    results = tmp_path / "results"
    shutil.copytree(tenfold.results, results)  # this test deletes runs: a copy of the store
    (results / "elor-tenfold" / "run.json").write_text(
        (results / "elor-tenfold" / "run.json").read_text().replace(
            str(tenfold.results), str(results)))
    client = _client(f"sqlite:///{results / 'mlflow.db'}")
    parent_id = tenfold.run["mlflow_run_id"]
    client.set_tag(parent_id, tracking.RUN_DIR_TAG, str(results / "elor-tenfold"))
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(printed):  # stdout is the table; the address on stderr
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        for _ in range(2):  # the same runs reported again: the table replaced
            assert main(["--results", str(results), "report", "--runs", "elor-tenfold"]) == 0
    experiment = client.get_run(parent_id).info.experiment_id
    sources = json.dumps([str(results / "elor-tenfold")])
    tables = [t for t in client.search_runs([experiment], "tags.`raylab.kind` = 'report'")
              if t.data.tags[tracking.SOURCES_TAG] == sources]  # (other tests report too)
    assert [t.info.run_name for t in tables] == ["table5"]
    table = tables[0]
    assert {a.path for a in client.list_artifacts(table.info.run_id)} == \
        {"table5.md", "table5.csv", "table5.html"}
    assert table.data.params == {"runs/elor": "elor-tenfold"}
    assert table.data.metrics["test/elor_arousal_war"] == \
        pytest.approx(tenfold.summary["pooled"]["arousal"]["war"])
    assert re.search(rf"MLflow runs: http://127\.0\.0\.1:5000/#/experiments/{experiment}/runs/"
                     rf"{table.info.run_id}\?workflowType=machine_learning", printed.getvalue())

    gone = {parent_id, *(c.info.run_id for c in _family(client, parent_id)[1]),
            tables[0].info.run_id}
    # runs of another results folder (another host, a moved folder) whose folders are not here
    foreign = [client.create_run(experiment, run_name=name, tags={tracking.RUN_DIR_TAG: folder})
               for name, folder in (("elsewhere", str(tmp_path / "other-results" / "x")),
                                    ("moved", str(tmp_path / "results-old" / "elor-tenfold")))]
    (results / "not-ours").mkdir()
    (results / "not-ours" / "thesis.tex").write_text("mine")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["--results", str(results), "runs", "delete", "not-ours"]) == 1
    assert (results / "not-ours" / "thesis.tex").read_text() == "mine"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["--results", str(results), "runs", "delete", "elor-tenfold", "never-ran",
                     "--missing-ok"]) == 0
        assert main(["--results", str(results), "runs", "prune"]) == 0
    active = {r.info.run_id for r in client.search_runs([experiment])}
    assert {f.info.run_id for f in foreign} <= active  # never touched
    assert not (results / "elor-tenfold").exists()
    # the parent, its folds and the tables that read it: marked deleted, none left pointing there
    assert not gone & {r.info.run_id for r in client.search_runs([experiment])}
    deleted = client.search_runs([experiment], run_view_type=2)  # ViewType.DELETED_ONLY
    assert gone <= {r.info.run_id for r in deleted}
