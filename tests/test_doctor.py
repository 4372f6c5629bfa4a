"""`raylab doctor`: each check on this machine, and datasets whose meta.json disagrees with their files."""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from raylab.cli import main
from raylab.data.dataset import META_FILE, DatasetWriter, Window
from raylab.runtime import doctor
from raylab.runtime.doctor import FAIL, OK, WARN

SAMPLES = 320  # 20 ms windows: the checks only count, so tiny windows are enough


def make_dataset(out: Path, speakers=("Ses01F", "Ses01M"), per_speaker: int = 3) -> Path:
    windows = [Window(f"{s}_impro01_{s[-1]}00{i}_0", f"{s}_impro01_{s[-1]}00{i}", s, 1, 0,
                      np.full(SAMPLES, i, np.int16), i % 5, (i + 1) % 5)
               for s in speakers for i in range(per_speaker)]
    with DatasetWriter(out, SAMPLES) as writer:
        writer.add(windows)
        return writer.commit({"sample_rate": 16_000, "min_last_samples": SAMPLES // 2,
                              "evaluator": "E2", "source": "test", "corpus": "demo",
                              "speakers": {s: per_speaker for s in speakers},
                              "utterances": len(windows), "skipped": {}})


def edit_meta(dataset: Path, **changes) -> None:
    meta = json.loads((dataset / META_FILE).read_text())
    meta.update(changes)
    (dataset / META_FILE).write_text(json.dumps(meta))


def write_mfcc(dataset: Path, rows: int | None = None) -> None:
    """A features_mfcc.parquet made by raylab.data.features itself, for the first `rows` windows."""
    from raylab.data.dataset import read_meta
    from raylab.data.features import (dataset_window_ids, feature_params, feature_table,
                                      mfcc_frames, write_features)

    meta = read_meta(dataset)
    ids = dataset_window_ids(dataset)[:rows]
    values = np.zeros((len(ids), 26, mfcc_frames(SAMPLES, 16_000)), np.float32)
    write_features(dataset, "mfcc", feature_table("mfcc", ids, values, feature_params("mfcc", meta)))


def test_a_consistent_dataset_passes(tmp_path):
    check = doctor.check_dataset(str(make_dataset(tmp_path / "ds")))
    assert check.status == OK, check
    assert "6 windows, 2 speakers" in check.detail and "features: none yet" in check.detail


def test_window_count_in_meta_that_the_file_lacks_fails(tmp_path):
    dataset = make_dataset(tmp_path / "ds")
    edit_meta(dataset, windows=7)
    check = doctor.check_dataset(str(dataset))
    assert check.status == FAIL
    assert "windows=7" in check.detail and "6 rows" in check.detail
    assert "raylab data prepare" in check.fix


def test_window_length_and_speaker_counts_are_checked(tmp_path):
    dataset = make_dataset(tmp_path / "ds")
    edit_meta(dataset, window_samples=96_000, speakers={"Ses01F": 3, "Ses01M": 2, "Ses02F": 4})
    detail = doctor.check_dataset(str(dataset)).detail
    assert "window_samples=96000" in detail and f"holds {SAMPLES} samples" in detail
    assert "Ses01M meta 2 vs file 3" in detail and "Ses02F meta 4 vs file 0" in detail
    assert "Ses01F" not in detail


def test_feature_files_must_cover_every_window(tmp_path):
    dataset = make_dataset(tmp_path / "ds")
    write_mfcc(dataset)
    check = doctor.check_dataset(str(dataset))
    assert check.status == OK and "features: mfcc" in check.detail
    write_mfcc(dataset, rows=4)
    check = doctor.check_dataset(str(dataset))
    assert check.status == FAIL and "features_mfcc.parquet" in check.detail
    assert check.fix == f"raylab features {dataset} --force"


def test_a_folder_that_is_no_dataset_fails_with_its_name(tmp_path):
    check = doctor.check_dataset(str(tmp_path / "nothing"))
    assert check.status == FAIL and "nothing" in check.detail and "meta.json" in check.detail
    # a user who never prepared a dataset is not told to do it "again"
    assert "again" not in check.fix and "afresh" not in check.fix
    assert check.fix.startswith("check the path, or write a dataset there: raylab data prepare")


def test_datasets_are_found_in_results_data_and_arguments(tmp_path, monkeypatch):
    monkeypatch.delenv("RAYLAB_DEMO_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    demo = make_dataset(tmp_path / "results" / "demo-data")
    nested = make_dataset(tmp_path / "data" / "lab" / "iemocap")
    (tmp_path / "data" / ".iemocap.tmp-1234").mkdir()
    (tmp_path / "data" / ".iemocap.tmp-1234" / META_FILE).write_text("{}")
    extra = make_dataset(tmp_path / "elsewhere")
    found = doctor.find_datasets(tmp_path / "results", [str(extra), "data/lab/iemocap"])
    assert [Path(p).resolve() for p in found] == [extra, nested, demo]


def test_pins_are_compared_with_installed_versions():
    assert doctor.check_packages()[0].status == OK  # this environment was built from the pins
    mismatch, missing = doctor.check_packages(["PyYAML==0.0.1", "no-such-package-raylab==1.0"])
    assert mismatch.status == WARN and "PyYAML" in mismatch.detail and "==0.0.1" in mismatch.detail
    assert missing.status == FAIL and "not installed" in missing.detail
    assert doctor.check_packages(['pytest==0.0.1; extra == "test"'])[0].status == OK


def test_tracking_store_is_opened_and_listed(results):
    first = doctor.check_tracking(results)
    assert first.status == OK and "created by the first tracked run" in first.detail
    assert not (results / "mlflow.db").exists()
    from raylab.runtime.tracking import Tracker

    Tracker(results).experiment_id("doctor-test")
    check = doctor.check_tracking(results)
    assert check.status == OK and "reachable" in check.detail and "doctor-test" in check.detail


def test_a_tracking_server_that_is_down_fails_fast(results, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    check = doctor.check_tracking(results)
    assert check.status == FAIL and f"127.0.0.1:{port}" in check.detail and "server" in check.fix
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("store", ["file://{}/mlruns", "{}/mlruns"])
def test_a_bare_file_store_is_refused(results, monkeypatch, store):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.format(results))
    check = doctor.check_tracking(results)
    assert check.status == FAIL and "file store" in check.detail and "sqlite" in check.fix


def test_shared_storage(tmp_path, monkeypatch):
    monkeypatch.delenv("RAYLAB_STORAGE", raising=False)
    assert doctor.check_storage(cluster=False).status == OK
    assert doctor.check_storage(cluster=True).status == WARN
    monkeypatch.setenv("RAYLAB_STORAGE", str(tmp_path))
    assert doctor.check_storage(cluster=True).status == OK
    monkeypatch.setenv("RAYLAB_STORAGE", tmp_path.as_uri())
    assert doctor.check_storage(cluster=True).status == OK
    monkeypatch.setenv("RAYLAB_STORAGE", str(tmp_path / "not-mounted"))
    assert doctor.check_storage(cluster=True).status == FAIL


def test_ray_reports_the_local_resources(ray_local):
    check = doctor.check_ray(None)
    assert check.status == OK and f"ray {ray_local.__version__}" in check.detail
    assert "2 CPUs" in check.detail and "1 node" in check.detail
    assert ray_local.is_initialized()  # a Ray it did not start is left running


def test_an_unreachable_cluster_fails_in_seconds(monkeypatch):
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    check = doctor.check_ray(f"127.0.0.1:{port}")
    assert check.status == FAIL and f"127.0.0.1:{port}" in check.detail and "ray up" in check.fix


def test_doctor_command_reports_and_flags_a_bad_dataset(ray_local, results, tmp_path, monkeypatch,
                                                        capsys):
    for name in ("RAY_ADDRESS", "RAYLAB_STORAGE", "RAYLAB_DEMO_DATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    make_dataset(tmp_path / "data" / "good")
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"ray {ray_local.__version__}" in out and "2 CPUs" in out
    assert f"sqlite:///{results}/mlflow.db" in out
    assert any(line.startswith("ok") and "good: 6 windows" in line for line in out.splitlines())

    bad = make_dataset(tmp_path / "bad")
    edit_meta(bad, windows=99)
    assert main(["doctor", "--data", str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    flagged = [line for line in lines if line.startswith("FAIL") and str(bad) in line]
    assert len(flagged) == 1 and "windows=99" in flagged[0] and "fix:" in flagged[0]
    assert lines[-1].endswith("1 FAIL")


def test_a_sqlite_store_on_a_cluster_is_what_tune_and_train_refuse(results):
    check = doctor.check_tracking(results, nodes=3)
    assert check.status == FAIL and "refuse" in check.detail and "MLFLOW_TRACKING_URI" in check.fix
    assert doctor.check_tracking(results, nodes=1).status == OK


def test_a_wrong_token_is_named(monkeypatch):
    import ray
    from ray.exceptions import AuthenticationError

    def refuse(**kwargs):
        raise AuthenticationError("InvalidAuthToken")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(doctor, "_probe", lambda address: None)
    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    check = doctor.check_ray("10.0.0.1:6379")
    assert check.status == FAIL and "token" in check.detail and "cannot reach" not in check.detail
    assert "RAY_AUTH_TOKEN" in check.fix
