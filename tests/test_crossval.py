"""Ten-fold training on Ray Train: a two-fold run of a toy ELoR on the demo dataset (local Ray, 2
CPUs), its outputs, pooled figures against scikit-learn, MLflow runs, faults and resume, the
leakage guard, and `raylab report` over it. Each TorchTrainer start costs seconds, so one run is
shared by most tests and the fault/resume test adds two single-fold runs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from raylab import DIMENSIONS
from raylab.errors import ConfigError, DataError
from tests.fixtures_runs import TOY

RESOURCES = dict(cpus_per_worker=0.5, max_failures=0)  # two one-worker folds fit in 2 CPUs at once


def _pooled_predictions(run_dir) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted(run_dir.glob("folds/*/predictions.parquet"))])


def test_each_fold_writes_its_outputs_and_fold_file(tenfold):
    assert tenfold.code == 0 and len(tenfold.trained) == 2
    run = tenfold.run
    assert run["kind"] == "crossval" and run["arch"] == "elor" and run["evaluator"] == "E2"
    assert run["folds"] == tenfold.trained and run["failed"] == {} and run["mlflow_run_id"]
    assert yaml.safe_load((tenfold.run_dir / "config.yaml").read_text())["params"]["epochs"] == 1
    for fold in run["folds"]:
        folder = tenfold.run_dir / "folds" / fold
        for name in ("checkpoint.pt", "predictions.parquet", "metrics.json", "split.json",
                     "confusion_valence.png", "confusion_arousal.png"):
            assert (folder / name).stat().st_size > 0, name
        predictions = pd.read_parquet(folder / "predictions.parquet")
        assert list(predictions.columns) == ["window_id", "utterance_id", "speaker", "fold",
                                             "dimension", "target", "predicted",
                                             *(f"prob_{k}" for k in range(5))]
        assert set(predictions["fold"]) == set(predictions["speaker"]) == {fold}
        assert set(predictions["dimension"]) == set(DIMENSIONS)
        split = json.loads((folder / "split.json").read_text())
        assert split["leakage_check"] == "passed" and split["speakers"][fold] == "test"
        ids = {part: set(split["window_ids"][part]) for part in ("train", "val", "test")}
        assert ids["test"] == set(predictions["window_id"])
        assert not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
        assert set(split["train_majority"]) == set(DIMENSIONS)
        assert json.loads((folder / "metrics.json").read_text())["fold"] == fold
    for name in ("summary.json", "table.md", "confusion_pooled_arousal.png"):
        assert (tenfold.run_dir / name).exists(), name
    assert (tenfold.results / "ray" / f"{tenfold.name}-{tenfold.trained[0]}").is_dir()  # Ray storage


def test_pooled_figures_equal_scikit_learn_on_the_predictions(tenfold):
    predictions = _pooled_predictions(tenfold.run_dir)
    summary = json.loads((tenfold.run_dir / "summary.json").read_text())
    text = tenfold.text
    for dim in DIMENSIONS:
        part = predictions[predictions["dimension"] == dim]
        war = accuracy_score(part["target"], part["predicted"])
        uar = balanced_accuracy_score(part["target"], part["predicted"])
        assert summary["pooled"][dim]["war"] == pytest.approx(war)
        assert summary["pooled"][dim]["uar"] == pytest.approx(uar)
        assert f"{war:.3f}" in text and f"{uar:.3f}" in text
        majority = {f: json.loads((tenfold.run_dir / "folds" / f / "split.json").read_text())
                    ["train_majority"][dim] for f in tenfold.trained}
        constant = part["fold"].map(majority)
        assert summary["baselines"]["most_frequent"][dim]["war"] == \
            pytest.approx(accuracy_score(part["target"], constant))
    assert summary["windows"] == predictions["window_id"].nunique()
    assert "pooled over the test folds" in text and "random guessing" in text


def test_fold_checkpoint_rebuilds_the_network(tenfold):
    from raylab.train.checkpoint import load_model

    model, info = load_model(tenfold.run_dir / "folds" / tenfold.trained[0] / "checkpoint.pt")
    assert type(model).__name__ == "ELoR" and model.config["conv1_filters"] == 4


def test_mlflow_parent_run_with_a_child_per_fold(tenfold):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tenfold.tracking_uri)
    parent = client.get_run(tenfold.run["mlflow_run_id"])
    assert parent.data.tags["raylab.kind"] == "crossval" and parent.info.status == "FINISHED"
    assert parent.data.tags["raylab.run_dir"] == str(tenfold.run_dir)
    assert parent.data.metrics["test/pooled_arousal_war"] == \
        pytest.approx(tenfold.summary["pooled"]["arousal"]["war"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"table.md", "summary.json", "confusion_pooled_arousal.png",
            "confusion_pooled_valence.png"} <= artifacts
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.data.tags["raylab.fold"] for c in children) == sorted(tenfold.trained)
    assert all("train/loss" in c.data.metrics for c in children)
    # the pyfunc model (raylab.predict.mlflow_model): the ensemble of the folds, on the parent only
    assert "model/MLmodel" in {a.path for a in client.list_artifacts(parent.info.run_id, "model")}
    assert all(c.data.params["compute_dtype"] == "fp32" for c in children)
    params = parent.data.params
    config = yaml.safe_load((tenfold.run_dir / "config.yaml").read_text())
    for key in ("loss_reduction", "is10_scaling", "compute_dtype"):
        assert params[key] == str(tenfold.run[key]), key
    assert config["compute_dtype"] == "fp32" and params["amp"] == "True"
    assert config["resolved"]["train"]["loss_reduction"] == tenfold.run["loss_reduction"]
    assert config["resolved"]["train"]["is10_scaling"] == tenfold.run["is10_scaling"]


def test_leakage_guard_fires_on_a_split_forced_to_leak():
    from raylab.crossval.ray_train import check_fold
    from raylab.train.folds import FoldSplit, fold_split

    speakers = np.array(["A"] * 4 + ["B"] * 4 + ["C"] * 4)
    good = fold_split(speakers, "A", seed=0)
    check_fold(good, speakers, None)
    leaky = FoldSplit("A", np.append(good.train_idx, 0), good.val_idx, good.test_idx)
    with pytest.raises(DataError, match="leakage: 1 windows of test speaker A in train"):
        check_fold(leaky, speakers, None)
    leaky_val = FoldSplit("A", good.train_idx, np.append(good.val_idx, 1), good.test_idx)
    with pytest.raises(DataError, match="in validation"):
        check_fold(leaky_val, speakers, None)
    strangers = pd.DataFrame({"speaker": ["A", "B"]})
    with pytest.raises(DataError, match="test predictions of speakers B"):
        check_fold(good, speakers, strangers)


def test_resume_trains_only_what_is_missing_and_a_failed_fold_is_reported(tenfold, tmp_path,
                                                                          monkeypatch):
    """An interrupted run (one fold's outputs gone) resumed with a third fold that fails on every
    attempt: the missing fold is trained, the finished one is not, the failed one is retried, then
    reported, and the others are pooled without it. One Ray run, two folds at once, each fold
    data-parallel (DDP) over two workers."""
    from mlflow import MlflowClient

    import raylab.crossval.ray_train
    from raylab.crossval.driver import CrossvalOptions, run_crossval

    spare = tenfold.spare

    def failing_worker(config: dict) -> None:
        # local, so Ray pickles it by value into the fold trials; the worker loop is the real one
        if config["fold"] == spare:
            raise RuntimeError(f"fold {spare}: fault injected on purpose")
        from raylab.crossval import ray_train

        ray_train.train_fold_worker(config)

    monkeypatch.setattr(raylab.crossval.ray_train, "train_fold_worker", failing_worker)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    results = tmp_path / "results"  # a copy of the run folder, with a store of its own
    run_dir = results / tenfold.name
    shutil.copytree(tenfold.run_dir, run_dir)
    kept, lost = tenfold.trained
    shutil.rmtree(run_dir / "folds" / lost)
    kept_file = run_dir / "folds" / kept / "predictions.parquet"
    kept_mtime = kept_file.stat().st_mtime_ns

    with pytest.raises(ConfigError, match="pass --resume"):
        run_crossval("elor", None, TOY, CrossvalOptions(**RESOURCES), results=results)
    options = CrossvalOptions(folds=[kept, lost, tenfold.spare], resume=True, workers_per_fold=2,
                              cpus_per_worker=0.45, max_failures=1)
    result = run_crossval("elor", None, None, options, results=results)
    assert result.trained == [lost] and result.skipped == [kept]
    assert kept_file.stat().st_mtime_ns == kept_mtime  # the finished fold was not trained again
    assert list(result.failed) == [tenfold.spare] and "fault injected" in result.failed[tenfold.spare]
    assert result.exit_code == 1
    run = json.loads((run_dir / "run.json").read_text())
    assert run["failed"] == result.failed and run["completed"] == sorted([kept, lost])
    assert result.summary["folds"] == sorted([kept, lost])  # pooled over the folds that finished
    text = result.render()
    assert f"FAILED fold {tenfold.spare}: " in text and "--resume" in text
    for fold in (kept, lost):
        old = json.loads((tenfold.run_dir / "folds" / fold / "split.json").read_text())
        new = json.loads((run_dir / "folds" / fold / "split.json").read_text())
        assert new["window_ids"] == old["window_ids"]  # same seed: the same split
    client = MlflowClient(result.tracking_uri)
    children = client.search_runs(
        [client.get_run(run["mlflow_run_id"]).info.experiment_id],
        f"tags.mlflow.parentRunId = '{run['mlflow_run_id']}'")
    assert [c.data.tags["raylab.fold"] for c in children] == [lost]  # only the lost fold ran
    assert children[0].data.params["workers"] == "2" and "train/loss" in children[0].data.metrics
    assert client.get_run(run["mlflow_run_id"]).info.status == "FAILED"  # a fold failed


def test_report_renders_rows_for_two_networks(tenfold, capsys):
    from raylab.cli import main
    from tests.test_report import fake_run

    results = tenfold.run_dir.parent
    fake_run(results, "ftr-tenfold", "ftr", seed=5)
    assert main(["--results", str(results), "report", "--runs", tenfold.name, "ftr-tenfold"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    elor = tenfold.summary["pooled"]
    # a demo-corpus run: the paper's figures are not set beside it (not comparable)
    assert rows[1].startswith("| ELoR") and "(0.524)" not in rows[1]
    assert (f"| {elor['arousal']['war']:.3f} | {elor['arousal']['uar']:.3f} | "
            f"{elor['valence']['war']:.3f} |") in rows[1]
    assert f"| {tenfold.name} | {tenfold.run['dataset']} | E2 | {tenfold.summary['windows']} | 2 |" \
        in rows[1]
    assert rows[2].startswith("| FTR | ") and rows[3].startswith("| Random guessing |")


def test_bad_requests_fail_before_ray_starts(demo_dataset, tmp_path):
    from raylab.crossval.driver import CrossvalOptions, run_crossval

    results = tmp_path / "results"
    with pytest.raises(ConfigError, match="--folds Ses09X: no such speaker.*Ses01F"):
        run_crossval("elor", demo_dataset, TOY, CrossvalOptions(folds=["Ses09X"]), results=results)
    with pytest.raises(ConfigError, match="--workers-per-fold 0"):
        run_crossval("elor", demo_dataset, TOY, CrossvalOptions(workers_per_fold=0), results=results)
    with pytest.raises(ConfigError, match="batch_size=16 does not divide over 3 workers per fold"):
        run_crossval("elor", demo_dataset, TOY, CrossvalOptions(workers_per_fold=3), results=results)
    with pytest.raises(ConfigError, match="unknown network"):
        run_crossval("resnet", demo_dataset, TOY, results=results)
    with pytest.raises(ConfigError, match="unknown parameter"):
        run_crossval("elor", demo_dataset, {"nope": 1}, results=results)
    with pytest.raises(ConfigError, match="--name"):
        run_crossval("elor", demo_dataset, TOY, CrossvalOptions(name="../x"), results=results)


def test_each_checkpoint_is_stored_once_in_the_folder_and_once_in_the_model(tenfold):
    """The fold's folder holds its files; Ray's storage keeps no fold checkpoint once copied;
    MLflow holds each checkpoint once, inside the parent's model, and the fold runs' figures."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tenfold.tracking_uri)
    parent = client.get_run(tenfold.run["mlflow_run_id"])
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    for child in children:
        logged = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert logged == {"confusion_arousal.png", "confusion_valence.png"}
    stored = sorted(p.relative_to(tenfold.results) for p in tenfold.results.rglob("checkpoint.pt"))
    in_model = [p for p in stored if p.parts[0] == "mlartifacts"]
    assert sorted(p for p in stored if p not in in_model) == sorted(
        Path("elor-tenfold", "folds", fold, "checkpoint.pt") for fold in tenfold.trained)
    assert len(in_model) == len(tenfold.trained)  # the parent's model: one per fold
    assert not list((tenfold.results / "ray").rglob("checkpoint_0*"))


def test_gpus_per_worker_follow_the_cluster_unless_given():
    from raylab.crossval.driver import worker_gpus

    assert worker_gpus(None, "auto", 4.0) == 1.0  # a GPU cluster: one GPU per worker
    assert worker_gpus(None, "cuda", 1.0) == 1.0
    assert worker_gpus(None, "auto", 0.0) == 0.0  # CPU only
    assert worker_gpus(None, "cpu", 4.0) == 0.0   # --device cpu keeps the workers off the GPUs
    assert worker_gpus(0.5, "auto", 0.0) == 0.5   # given: as given
    with pytest.raises(ConfigError, match="--device cuda: the Ray cluster has no GPU"):
        worker_gpus(None, "cuda", 0.0)


def test_a_multi_node_cluster_refuses_the_local_sqlite_store(ray_local, demo_dataset, tmp_path,
                                                             monkeypatch):
    import raylab.crossval.ray_train
    import raylab.runtime.ray_session
    from raylab.crossval.driver import CrossvalOptions, run_crossval

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(raylab.runtime.ray_session, "live_nodes", lambda: 3)
    monkeypatch.setattr(raylab.crossval.ray_train, "train_folds",
                        lambda *a, **k: pytest.fail("folds started"))
    with pytest.raises(ConfigError, match="other 2 node.*set MLFLOW_TRACKING_URI"):
        run_crossval("elor", demo_dataset, TOY, CrossvalOptions(folds=["Ses01F"], **RESOURCES),
                     results=tmp_path / "results")
    with pytest.raises(ConfigError, match="--device 'cuda:1': the ten-fold run takes auto, cpu"):
        run_crossval("elor", demo_dataset, TOY, CrossvalOptions(device="cuda:1"),
                     results=tmp_path / "results")


def test_the_parent_run_ends_as_the_folds_did_and_the_hint_keeps_the_address(tmp_path):
    from raylab.crossval.driver import CrossvalResult, parent_status

    assert parent_status({}, []) is None  # FINISHED
    assert parent_status({"Ses01F": "boom"}, []) == "FAILED"
    assert parent_status({}, ["Ses01F"]) == "KILLED"  # Ctrl-C, even with nothing trained
    result = CrossvalResult("r", tmp_path, {"arch": "elor"}, [], [], {}, ["Ses01F"], None,
                            address="10.0.0.1:6379")
    assert "raylab train elor --name r --resume --address 10.0.0.1:6379`" in result.render()


def test_folds_finished_after_the_driver_died_are_collected_not_trained_again(tmp_path):
    from datetime import datetime, timedelta, timezone

    from raylab.crossval.ray_train import recover_folds

    storage, folds_dir = tmp_path / "storage", tmp_path / "run" / "folds"
    for fold, files in (("A", ["predictions.parquet", "metrics.json"]), ("B", ["metrics.json"])):
        checkpoint = storage / f"r-{fold}" / "checkpoint_2026-11-30_01-59-10.494062"
        checkpoint.mkdir(parents=True)
        for name in files:
            (checkpoint / name).write_text(fold)
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    assert recover_folds(str(storage), "r", ["A", "B", "C"], folds_dir, since) == ["A"]
    assert (folds_dir / "A" / "predictions.parquet").read_text() == "A"
    assert not (folds_dir / "B").exists()  # no outputs reported: trained again
    later = datetime.now(timezone.utc) + timedelta(minutes=1)  # checkpoints of an older run
    assert recover_folds(str(storage), "r", ["A"], tmp_path / "other", later) == []


def test_a_checkpoint_with_no_time_of_its_own_is_dated_by_its_files_or_not_trusted():
    """On an object store a checkpoint 'folder' has no mtime: its files date it, and with none
    it is not taken for this run's (a deleted run of the same name may have left it)."""
    from datetime import datetime, timedelta, timezone
    from types import SimpleNamespace

    from raylab.crossval.ray_train import _at_or_after, _written_at

    start = datetime(2026, 11, 30, tzinfo=timezone.utc)

    class Store:
        def __init__(self, files):
            self.files = files

        def get_file_info(self, what):
            if isinstance(what, str):
                return SimpleNamespace(mtime=None)
            return [SimpleNamespace(mtime=t) for t in self.files]

    old, new = start - timedelta(days=1), start + timedelta(minutes=5)
    assert _at_or_after(_written_at(Store([new, new]), "ckpt"), start)
    assert not _at_or_after(_written_at(Store([old, new]), "ckpt"), start)
    assert not _at_or_after(_written_at(Store([]), "ckpt"), start)
