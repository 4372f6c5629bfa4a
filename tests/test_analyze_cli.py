"""`raylab analyze ...` end to end on a real (tiny) training run: run resolution by MLflow id,
folder and checkpoint, the files each command writes, MLflow artifacts, and the errors."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from raylab.cli import main

SR, SAMPLES = 16_000, 1600  # 0.1 s windows keep every network tiny
SPEAKERS = ("Ses01F", "Ses02M", "Ses03F")
TINY = dict(conv1_filters=4, conv1_kernel=16, pool1=2, conv2_filters=4, conv2_kernel=8, pool2=4,
            conv3_filters=4, conv3_kernel=4, pool3=4, hidden1=8, hidden2=8, dropout=0.0,
            epochs=1, batch_size=8)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def write_dataset(out):
    """12 windows per speaker: tones whose pitch follows arousal, plus fake IS10 features."""
    from raylab.data.dataset import DatasetWriter, Window
    from raylab.data.features import feature_params, feature_table, write_features

    rng = np.random.default_rng(0)
    t = np.arange(SAMPLES) / SR
    with DatasetWriter(out, SAMPLES) as writer:
        windows = []
        for s, speaker in enumerate(SPEAKERS):
            for i in range(12):
                v, a = int(rng.integers(0, 5)), int(rng.integers(0, 5))
                wave = 0.3 * np.sin(2 * np.pi * (200 + 300 * a) * t) * (t < 0.05 + 0.01 * v)
                windows.append(Window(f"{speaker}_x_{i:03d}-0", f"{speaker}_x_{i:03d}", speaker,
                                      s + 1, 0, (wave * 32767).astype(np.int16), v, a))
        writer.add(windows)
        meta = {"sample_rate": SR, "evaluator": "E2", "source": "test", "corpus": "test",
                "min_last_samples": SAMPLES // 2, "speakers": {sp: 12 for sp in SPEAKERS}}
        path = writer.commit(meta)
    ids = np.array([w.window_id for w in windows])
    params = feature_params("is10", json.loads((path / "meta.json").read_text()))
    values = rng.normal(0, 1, (len(ids), 1582)).astype(np.float32)
    write_features(path, "is10", feature_table("is10", ids, values, params))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tracked one-fold ELoR run (test speaker Ses03F) and an ELoR+FTR run, in one results folder."""
    from raylab.train.fold import train_local

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        root = tmp_path_factory.mktemp("analyze")
        data = write_dataset(root / "data")
        results = root / "results"
        elor = train_local("elor", data, None, TINY, results, name="elor-run", device="cpu")
        ftr = train_local("elor_ftr", data, "Ses01F", TINY, results, name="ftr-run", device="cpu",
                          track=False)
        yield {"results": results, "data": data, "elor": elor, "elor_ftr": ftr}


def run_cli(*argv):
    return main(["analyze", *map(str, argv)])


def test_analyze_lists_its_commands(capsys):
    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    out = capsys.readouterr().out
    assert "saliency" in out and "generalize" in out and "sanity" in out


def test_saliency_by_mlflow_run_id_writes_files_and_artifacts(trained, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = trained["elor"]
    assert run.result.test_speaker == "Ses03F"  # the paper's fold is the default
    code = run_cli("saliency", "--run", run.mlflow_run_id, "--results", trained["results"],
                   "--figures", 2)
    assert code == 0, capsys.readouterr().err
    out_dir = run.run_dir / "analysis" / "saliency-Ses03F"
    summary = json.loads((out_dir / "saliency_summary.json").read_text())
    assert summary["windows"] == 12 and summary["method"] == "guided"
    table = pd.read_csv(out_dir / "correlations.csv")
    assert len(table) == 12 and table["window_id"].str.startswith("Ses03F").all()
    assert summary["correlations"]["abs_arousal"]["mean"] == pytest.approx(table["abs_arousal"].mean())
    assert len(list(out_dir.glob("figure4_*.png"))) == 4  # 2 windows x 2 heads
    assert (out_dir / "correlation_histogram.png").exists()
    printed = capsys.readouterr().out
    assert "r(x, s), the paper's reading" in printed and "r(|x|, |s|)" in printed and "paper: 0.96" in printed
    assert "sanity check: mean Spearman" in printed and "randomised" in printed
    assert "floor (two random networks)" in printed and "input's envelope" in printed
    assert {"floor", "envelope_original", "envelope_random"} <= set(summary["sanity"])
    assert "trained vs fully random network: r(x, s)" in printed
    assert set(summary["sanity"]["baseline"]["random"]) == {"signed_valence", "signed_arousal",
                                                            "heads"}
    from raylab.runtime.tracking import Tracker

    client = Tracker(trained["results"]).client
    names = [a.path for a in client.list_artifacts(run.mlflow_run_id, "analysis/saliency-Ses03F")]
    assert "analysis/saliency-Ses03F/saliency_summary.json" in names
    assert "analysis/guided_heads_mean" in client.get_run(run.mlflow_run_id).data.metrics


def test_generalize_by_run_folder_writes_ten_wavs_and_table6(trained, tmp_path, capsys):
    out = tmp_path / "gen"
    code = run_cli("generalize", "--run", trained["elor"].run_dir, "--results", trained["results"],
                   "--steps", 5, "--lr", 0.01, "--out", out, "--no-track")
    assert code == 0, capsys.readouterr().err
    wavs = sorted(out.glob("*.wav"))
    assert len(wavs) == 10
    audio, sr = sf.read(wavs[0])
    assert sr == SR and audio.shape == (SAMPLES,)
    table = pd.read_csv(out / "table6.csv", index_col=0)
    assert table.shape == (10, 10) and "Syllable rate (Hz)" in table.index
    assert "F0 (Hz)" in table.index
    assert (out / "table6.md").read_text().startswith("|  | arousal 1")
    summary = json.loads((out / "generalize_summary.json").read_text())
    assert summary["steps"] == 5 and summary["cues"] and "ordered" in summary["cues"][0]
    assert (out / "figure5_arousal.png").exists() and (out / "figure5_valence.png").exists()
    printed = capsys.readouterr().out
    assert "Loudness (dBFS)" in printed and "Spearman" in printed and "test UAR" in printed
    assert summary["method"] == "prosody" and "test_uar" in summary["cues"][0]
    # the prosody method's chosen source f0 and syllable train (grid values), voicing and gain
    assert all(v["source_f0_hz"] in summary["f0_grid_hz"] and 0.0 < v["voicing"] < 1.0
               and 0.0 < v["gain"] < summary["max_gain"]
               and v["rhythm"]["rate_hz"] in summary["rate_grid_hz"]
               and v["rhythm"]["pause_ms"] in summary["pause_grid_ms"]
               and v["rhythm"]["phrase"] in summary["phrase_grid"]
               for v in summary["final"].values())
    assert "source f0 chosen from the grid" in printed and "syllable train chosen" in printed
    # the data prior, fitted on the windows of the speakers other than the fold's
    assert summary["prior"]["windows"] == 12 * (len(SPEAKERS) - 1)
    assert summary["prior"]["dim"] == TINY["hidden1"] and "log-density" in summary["objective"]
    assert set(summary["prior"]["windows_median"]) == {"arousal", "valence"}
    ceiling = math.log(5) / TINY["hidden1"]  # log Σ_k exp(−½ D_k) ≤ log 5
    assert all(v["log_density_per_dim"] <= ceiling + 1e-6 for v in summary["final"].values())
    assert "data prior" in printed


def test_generalize_without_the_data_prior(trained, tmp_path, capsys):
    out = tmp_path / "gen"
    code = run_cli("generalize", "--run", trained["elor"].run_dir, "--results", trained["results"],
                   "--steps", 2, "--out", out, "--no-track", "--no-prior")
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "generalize_summary.json").read_text())
    assert summary["prior"] is None and "log-density" not in summary["objective"]
    assert not any("log_density_per_dim" in v for v in summary["final"].values())
    assert "data prior" not in capsys.readouterr().out


def test_sanity_by_checkpoint_path(trained, tmp_path, capsys):
    checkpoint = trained["elor"].run_dir / "folds" / "Ses03F" / "checkpoint.pt"
    out = tmp_path / "sanity"
    code = run_cli("sanity", "--run", checkpoint, "--results", trained["results"], "--windows", 3,
                   "--epochs", 1, "--methods", "guided", "gradient", "--out", out, "--no-track")
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(out / "sanity.csv")
    assert set(table["method"]) == {"guided", "gradient"}
    assert table["step"].iloc[-1] == "permuted labels"
    assert "two random networks" in set(table["step"]) and "envelope_spearman" in table
    summary = json.loads((out / "sanity_summary.json").read_text())
    assert set(summary["verdicts"]) == {"guided", "gradient"}
    assert summary["spearman_over"] == "signal" and "floor" in summary["verdicts"]["gradient"]
    assert "depend" in capsys.readouterr().out


def test_elor_ftr_saliency_with_features_held_fixed(trained, tmp_path, capsys):
    out = tmp_path / "ftr"
    code = run_cli("saliency", "--run", trained["elor_ftr"].run_dir, "--results",
                   trained["results"], "--method", "gradient", "--windows", 5, "--out", out)
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "saliency_summary.json").read_text())
    assert summary["arch"] == "elor_ftr" and summary["fold"] == "Ses01F" and summary["windows"] == 5


def test_saliency_by_a_folds_folder_titles_figures_with_classes_1_to_5(trained, capsys,
                                                                         monkeypatch):
    import analysis.plots

    titles = []
    draw = analysis.plots.figure4
    monkeypatch.setattr(analysis.plots, "figure4",
                        lambda *a: (titles.append(a[-1]), draw(*a))[1])
    run_dir = trained["elor"].run_dir
    code = run_cli("saliency", "--run", run_dir / "folds" / "Ses03F", "--results",
                   trained["results"], "--windows", 4, "--figures", 2, "--sanity-windows", 0,
                   "--no-track")
    assert code == 0, capsys.readouterr().err
    out = run_dir / "analysis" / "saliency-Ses03F"  # the fold's folder resolves to run + fold
    table = pd.read_csv(out / "correlations.csv")
    assert len(titles) == 4
    shown = sorted(int(t.split(" class ")[1].split(",")[0]) for t in titles)
    predicted = table[["predicted_valence", "predicted_arousal"]].to_numpy()
    assert set(shown) <= set(predicted.ravel() + 1) and all(1 <= c <= 5 for c in shown)


def test_networks_without_a_waveform_input_are_refused(tmp_path, capsys):
    from raylab.models import build_model
    from raylab.train.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "ftr.pt", build_model("ftr", hidden1=4, hidden2=4), "ftr")
    assert run_cli("saliency", "--run", path, "--results", tmp_path, "--no-track") == 1
    err = capsys.readouterr().err
    assert "analysis needs a network that takes the raw waveform; ftr takes is10" in err


def test_unknown_fold_and_unknown_run_are_clear_errors(trained, tmp_path, capsys):
    assert run_cli("saliency", "--run", trained["elor"].run_dir, "--fold", "Ses09M",
                   "--results", trained["results"], "--no-track") == 1
    assert "--fold Ses09M: not a fold of" in capsys.readouterr().err
    checkpoint = trained["elor"].run_dir / "folds" / "Ses03F" / "checkpoint.pt"
    assert run_cli("saliency", "--run", checkpoint, "--fold", "Ses01F",
                   "--results", trained["results"], "--no-track") == 1
    assert "is the network of fold Ses03F" in capsys.readouterr().err
    assert run_cli("generalize", "--run", "0" * 32, "--results", trained["results"]) == 1
    assert "no such MLflow run" in capsys.readouterr().err
    assert run_cli("generalize", "--run", tmp_path / "nothing", "--results", trained["results"]) == 1
    assert "neither an existing folder" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["saliency", "--batch-size", "0"], "--batch-size 0: expected a number > 0"),
    (["saliency", "--figures", "-1"], "--figures -1: expected 0 (none) or more"),
    (["saliency", "--windows", "0"], "--windows 0: expected a number > 0"),
    (["sanity", "--windows", "0"], "--windows 0: expected a number > 0"),
    (["sanity", "--batch-size", "0"], "--batch-size 0: expected a number > 0"),
    (["sanity", "--train-windows", "-3"], "--train-windows -3: expected a number > 0"),
    (["generalize", "--steps", "0"], "--steps 0: expected a number > 0"),
    (["generalize", "--method", "paper", "--no-prior"], "--no-prior goes with --method prosody"),
    (["generalize", "--method", "speech", "--no-prior"], "speech has no data prior"),
])
def test_counts_below_one_are_one_line_errors(argv, message, tmp_path, capsys):
    # checked before the run is looked up: "--run" names nothing
    assert run_cli(*argv, "--run", tmp_path / "nothing", "--results", tmp_path, "--no-track") == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
