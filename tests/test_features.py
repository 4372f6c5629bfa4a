"""IS10 and MFCC extraction, their Ray computation and their files."""
from __future__ import annotations

import argparse
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from raylab.data import features
from raylab.data.dataset import DatasetWriter, Window, load_dataset
from raylab.errors import ConfigError, DataError
from raylab.runtime.fsutil import MARKER_FILE

SR = 16000
SAMPLES = 6 * SR


def _wave(i: int) -> np.ndarray:
    """Window i: a tone (its pitch depends on i) in noise; window 5 is silence."""
    rng = np.random.default_rng(i)
    t = np.arange(SAMPLES) / SR
    x = 0.3 * np.sin(2 * np.pi * (110 + 40 * i) * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2
    x = x + 0.02 * rng.standard_normal(SAMPLES)
    return np.zeros(SAMPLES, np.int16) if i == 5 else (x * 32767).astype(np.int16)


def _write_dataset(out, n: int):
    with DatasetWriter(out, SAMPLES) as writer:
        writer.add(Window(f"Ses01{'FM'[i % 2]}_impro01_{'FM'[i % 2]}{i:03d}_0", f"utt{i}",
                          f"Ses01{'FM'[i % 2]}", 1, 0, _wave(i), i % 5, (i + 2) % 5) for i in range(n))
        return writer.commit({"sample_rate": SR, "min_last_samples": SAMPLES // 2, "evaluator": "E2",
                              "source": "test", "corpus": "demo", "speakers": {}, "utterances": n,
                              "skipped": {}})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, ray_local):
    """Six windows with both feature files computed once."""
    path = _write_dataset(tmp_path_factory.mktemp("features") / "ds", 6)
    report = features.compute_features(path)
    assert [report[k]["status"] for k in ("is10", "mfcc")] == ["written", "written"]
    return path


def test_is10_gives_1582_finite_values_named_as_opensmile():
    import opensmile

    values = features.extract_is10(_wave(1).astype(np.float32) / 32768, SR)
    assert values.shape == (1582,) and values.dtype == np.float32
    assert np.isfinite(values).all() and np.abs(values).sum() > 0
    names = features.feature_names_is10()
    reference = opensmile.Smile(feature_set=opensmile.FeatureSet.IS10,
                                feature_level=opensmile.FeatureLevel.Functionals).feature_names
    assert names == list(reference) and len(set(names)) == 1582
    assert "F0final_sma_amean" in names


def test_mfcc_gives_26_by_599_for_a_6_s_window_and_frames_follow_the_length():
    mfcc = features.extract_mfcc(_wave(2).astype(np.float32) / 32768, SR)
    assert mfcc.shape == (26, 599) and mfcc.dtype == np.float32 and np.isfinite(mfcc).all()
    assert features.mfcc_geometry(SR) == (400, 160, 1024)
    assert features.mfcc_frames(SAMPLES, SR) == 599
    assert features.mfcc_frames(3 * SR, SR) == 299 and features.mfcc_frames(400, SR) == 1
    assert features.extract_mfcc(np.zeros(3 * SR, np.float32), SR).shape == (26, 299)


def test_mfcc_frame_t_covers_samples_t_hop_to_t_hop_plus_25_ms():
    wave = np.zeros(SAMPLES, np.float32)
    wave[10 * 160:10 * 160 + 400] = np.random.default_rng(0).standard_normal(400) * 0.5
    c0 = features.extract_mfcc(wave, SR)[0]  # c0 follows the frame's log energy
    assert int(np.argmax(c0)) == 10
    assert c0[10] > c0[8] + 10 and c0[10] > c0[12] + 10  # frames 8 and 12 overlap the burst 80 samples


def test_compute_features_writes_both_files_aligned_to_window_ids(dataset):
    data = load_dataset(dataset)
    for kind, extract, tolerance in (("is10", features.extract_is10, 1e-4), ("mfcc", features.extract_mfcc, 1e-3)):
        table = pq.read_table(dataset / features.FEATURE_FILES[kind])
        assert table.column("window_id").to_pylist() == data.window_id.tolist()
        stored = features.load_features(dataset, kind)
        assert stored.dtype == np.float32 and np.isfinite(stored).all()
        for row in (0, 4):
            expected = extract(data.audio[row].astype(np.float32) / 32768, SR)
            np.testing.assert_allclose(stored[row], expected, rtol=1e-4, atol=tolerance)
    assert features.load_features(dataset, "is10").shape == (6, 1582)
    assert features.load_features(dataset, "mfcc").shape == (6, 26, 599)
    assert pq.read_schema(dataset / features.FEATURE_FILES["is10"]).names[1:] == features.feature_names_is10()


def test_load_features_follows_the_order_of_the_ids_asked_for(dataset):
    ids = load_dataset(dataset, audio=False).window_id
    order = np.random.default_rng(3).permutation(len(ids))
    for kind in features.KINDS:
        everything = features.load_features(dataset, kind)
        np.testing.assert_array_equal(features.load_features(dataset, kind, list(ids[order])), everything[order])
        np.testing.assert_array_equal(features.load_features(dataset, kind, ids[[2]]), everything[[2]])
    with pytest.raises(DataError, match=r"1 requested window id\(s\) not stored: no_such_window"):
        features.load_features(dataset, "mfcc", [ids[0], "no_such_window"])
    fileuri = features.load_features(f"file://{dataset}", "is10")
    np.testing.assert_array_equal(fileuri, features.load_features(dataset, "is10"))


def test_current_files_are_reused_stale_ones_and_forced_ones_recomputed(dataset):
    mtimes = {k: os.stat(dataset / features.FEATURE_FILES[k]).st_mtime_ns for k in features.KINDS}
    report = features.compute_features(dataset)
    assert {k: v["status"] for k, v in report.items()} == {"is10": "reused", "mfcc": "reused"}
    assert mtimes == {k: os.stat(dataset / features.FEATURE_FILES[k]).st_mtime_ns for k in features.KINDS}

    before = features.load_features(dataset, "mfcc")
    ids = load_dataset(dataset, audio=False).window_id
    params = features.feature_params("mfcc", load_dataset(dataset, audio=False).meta)
    features.write_features(dataset, "mfcc", features.feature_table("mfcc", ids[:3], before[:3], params))
    report = features.compute_features(dataset, kinds=["mfcc"], workers=1)
    assert report["mfcc"]["status"] == "recomputed: stale, its 3 window ids differ from the dataset's 6"
    np.testing.assert_allclose(features.load_features(dataset, "mfcc"), before, atol=1e-3)

    report = features.compute_features(dataset, kinds=["is10"], force=True)
    assert report["is10"]["status"] == "recomputed: --force" and report["is10"]["seconds"] > 0
    assert not [name for name in os.listdir(dataset) if name.startswith(".") and name != MARKER_FILE]


def test_a_window_with_nan_or_a_failure_is_reported_by_id_and_nothing_written(tmp_path, ray_local, monkeypatch):
    path = _write_dataset(tmp_path / "ds", 6)
    ids = load_dataset(path, audio=False).window_id

    def broken_mfcc(wave, sr):  # window 5 is silent, window 3 has the highest tone
        if not wave.any():
            return np.full((26, 599), np.nan, np.float32)
        if abs(int(np.abs(np.fft.rfft(wave[:16000])).argmax()) - 230) <= 2:
            raise RuntimeError("decoder exploded")
        return np.zeros((26, 599), np.float32)

    monkeypatch.setattr(features, "extract_mfcc", broken_mfcc)
    with pytest.raises(DataError) as caught:
        features.compute_features(path, workers=2)
    message = str(caught.value)
    assert "features_mfcc.parquet not written: 2 window(s) failed or gave NaN/inf" in message
    assert f"{ids[5]} (15574 NaN/inf values)" in message
    assert f"{ids[3]} (RuntimeError: decoder exploded)" in message
    assert not (path / "features_mfcc.parquet").exists()
    assert (path / "features_is10.parquet").exists()  # the healthy kind is still written
    assert sorted(os.listdir(path)) == [MARKER_FILE, "annotations.parquet", "features_is10.parquet",
                                        "meta.json", "windows.parquet"]


def test_missing_features_and_bad_arguments_say_what_to_do(tmp_path):
    path = _write_dataset(tmp_path / "bare", 1)
    with pytest.raises(DataError, match=r"no features_mfcc.parquet; compute it with `raylab features .*bare --mfcc`"):
        features.load_features(path, "mfcc")
    with pytest.raises(ConfigError, match="expected one or more of is10, mfcc"):
        features.load_features(path, "spectrogram")
    with pytest.raises(ConfigError, match="--workers 0"):
        features.compute_features(path, workers=0)


def test_cli_reports_each_kind(dataset, results, capsys):
    from raylab.cli import _common_options
    from raylab.cli import features as command

    common = _common_options()
    parser = argparse.ArgumentParser(parents=[common])
    command.register(parser.add_subparsers(), common)
    args = parser.parse_args(["features", str(dataset), "--mfcc", "--workers", "2"])
    args.results, args.verbose = None, False
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == f"mfcc: 6 windows, reused: {dataset}/features_mfcc.parquet"
