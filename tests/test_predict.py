"""`raylab predict` on toy networks of all four kinds saved as runs (no training: the inputs,
windows, standardisation, ensemble and table are what is tested), and its errors."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from raylab.cli import main
from tests.fixtures_runtime import process_env

SR, WINDOW = 16_000, 16_000  # 1 s windows keep every network tiny (LoM: 99 MFCC frames)
FOLDS = ("Ses01F", "Ses02M")
CNN = dict(conv1_filters=4, conv1_kernel=16, pool1=2, conv2_filters=5, conv2_kernel=5, pool2=4,
           conv3_filters=6, conv3_kernel=3, pool3=4, hidden1=12, hidden2=8, dropout=0.0)
TOY = {
    "elor": dict(input_samples=WINDOW, **CNN),
    "lom": dict(mfcc_channels=26, mfcc_frames=99, **{**CNN, "conv1_kernel": 5, "pool2": 2, "pool3": 2}),
    "ftr": dict(num_features=1582, hidden1=12, hidden2=8, dropout=0.0),
    "elor_ftr": dict(input_samples=WINDOW, num_features=1582, **CNN),
}

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def make_run(folder, arch: str, folds=FOLDS, seed: int = 0):
    """A run folder as `raylab train` writes it (run.json, folds/<SPEAKER>/checkpoint.pt) holding
    randomly initialised toy networks, IS10 statistics that are not the identity."""
    from raylab.train.checkpoint import save_checkpoint
    from raylab.models import build_model

    folder.mkdir(parents=True)
    for k, fold in enumerate(folds):
        torch.manual_seed(seed + k)
        model = build_model(arch, **TOY[arch])
        stats = None
        if "is10" in model.inputs:
            rng = np.random.default_rng(k)
            stats = {"is10": {"mean": rng.normal(size=1582).astype(np.float32),
                              "std": rng.uniform(0.5, 2, 1582).astype(np.float32)}}
        save_checkpoint(folder / "folds" / fold / "checkpoint.pt", model, arch, stats,
                        {"fold": fold}, sample_rate=SR, window_samples=WINDOW)
    (folder / "run.json").write_text(json.dumps({"kind": "crossval", "arch": arch,
                                                 "folds": list(folds)}))
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict-runs")
    return {arch: make_run(root / arch, arch) for arch in TOY}


def tone(seconds: float, sr: int = SR, channels: int = 1, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return np.stack([wave * (c + 1) / channels for c in range(channels)], axis=1) if channels > 1 else wave


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict-audio")
    files = {"short.wav": (tone(0.4), SR), "long.wav": (tone(2.7, freq=330), SR),
             "stereo44k.flac": (tone(1.7, 44_100, channels=2), 44_100)}
    for name, (wave, sr) in files.items():
        sf.write(folder / name, wave, sr)
    return folder


def test_windows_follow_the_training_rule(audio):
    from raylab.data.corpora.windows import cut_windows
    from raylab.data.corpora.audio import load_utterance
    from raylab.predict.audio import read_clip

    long = read_clip(str(audio / "long.wav"), WINDOW)
    assert long.windows.shape == (3, WINDOW)  # 2.7 s: two full cuts + 0.7 s > 0.5 s kept
    assert len(read_clip(str(audio / "long.wav"), 20_000).windows) == 2  # 0.2 s left < 0.625 s: dropped
    samples, _ = load_utterance(str(audio / "long.wav"), "x", resample=False)
    np.testing.assert_array_equal(long.windows, cut_windows(samples, WINDOW, WINDOW // 2))
    short = read_clip(str(audio / "short.wav"), WINDOW)
    assert short.windows.shape == (1, WINDOW) and not short.windows[0, 6400:].any()  # zero-padded
    stereo = read_clip(str(audio / "stereo44k.flac"), WINDOW)
    assert stereo.notes == ["2 channels downmixed to mono", "resampled from 44100 Hz"]
    assert stereo.windows.shape == (2, WINDOW) and abs(stereo.seconds - 1.7) < 1e-3


@pytest.mark.parametrize("arch", list(TOY))
def test_matches_the_networks_on_training_inputs(runs, audio, arch):
    """The table's probabilities are the fold networks' mean on inputs made as `raylab features`
    and `experiment.build_arrays` make them (IS10 standardised per fold)."""
    from raylab.train.checkpoint import load_model
    from raylab.data.features import extract_is10, extract_mfcc
    from raylab.predict.audio import read_clip
    from raylab.predict.ray_batch import predict_paths
    from raylab.predict.runner import load_predictor

    predictor = load_predictor(str(runs[arch]), None, runs[arch].parent, device="cpu")
    frame = predict_paths(predictor, [str(audio / "long.wav")], progress=False).frame
    windows = read_clip(str(audio / "long.wav"), WINDOW).windows
    waves = windows.astype(np.float32) / 32768
    made = {"waveform": torch.from_numpy(waves),
            "mfcc": torch.from_numpy(np.stack([extract_mfcc(w, SR) for w in waves])),
            "is10": np.stack([extract_is10(w, SR) for w in waves])}
    expected = 0
    for fold in FOLDS:
        model, info = load_model(runs[arch] / "folds" / fold / "checkpoint.pt")
        inputs = dict(made)
        if info["feature_stats"]:
            s = info["feature_stats"]["is10"]
            inputs["is10"] = (made["is10"] - s["mean"]) / s["std"]
        inputs["is10"] = torch.as_tensor(np.asarray(inputs["is10"], np.float32))
        with torch.no_grad():
            out = model(*(inputs[k] for k in model.inputs))
        expected = expected + torch.softmax(out["arousal"], 1).numpy() / len(FOLDS)
    rows = frame[frame["level"] == "window"]
    got = rows[[f"arousal_p{r}" for r in range(1, 6)]].to_numpy()
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert (rows["arousal_class"].to_numpy() == expected.argmax(1) + 1).all()
    np.testing.assert_allclose(rows["arousal_expected"], expected @ np.arange(1, 6), atol=1e-4)
    whole = frame[frame["level"] == "file"].iloc[0]
    np.testing.assert_allclose([whole[f"arousal_p{r}"] for r in range(1, 6)], expected.mean(0), atol=2e-5)


def test_cli_writes_csv_and_parquet_and_prints_a_summary(runs, audio, tmp_path, capsys):
    out, results = tmp_path / "pred.csv", tmp_path / "results"
    assert main(["--results", str(results), "predict", "--run", str(runs["elor"]), str(audio),
                 "--out", str(out), "--device", "cpu"]) == 0
    text, err = capsys.readouterr()
    assert "ELoR, mean of 2 fold networks (Ses01F, Ses02M)" in text
    # a few files are predicted in this process: no Ray, so no log and no "log:" line
    assert not (results / "logs" / "predict.log").exists() and "log:" not in err, err
    assert "stereo44k.flac: 2 channels downmixed to mono" in text
    table = pd.read_csv(out)
    assert list(table.groupby("file", sort=False).size()) == [4, 2, 3]  # long, short, stereo: the file and its windows
    assert set(table["valence_class"]) <= {1, 2, 3, 4, 5}
    probs = table[[f"valence_p{r}" for r in range(1, 6)]].sum(axis=1)
    np.testing.assert_allclose(probs, 1, atol=1e-5)
    one = tmp_path / "one.parquet"
    assert main(["predict", "--run", str(runs["elor"] / "folds" / "Ses02M"),
                 str(audio / "short.wav"), "--out", str(one)]) == 0
    assert main(["predict", "--run", str(runs["elor"]), "--fold", "Ses02M",
                 str(audio / "short.wav"), "--out", str(tmp_path / "two.parquet")]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(one), pd.read_parquet(tmp_path / "two.parquet"))


def test_manifest_and_ray_tasks_give_the_same_table(runs, audio, tmp_path, ray_local):
    from raylab.predict.ray_batch import predict_paths
    from raylab.predict.runner import load_predictor

    names = ["long.wav", "short.wav", "stereo44k.flac"] * 3
    (tmp_path / "m.csv").write_text("path\n" + "\n".join(str(audio / n) for n in names) + "\n")
    predictor = load_predictor(str(runs["ftr"]), None, runs["ftr"].parent, device="cpu")
    here = predict_paths(predictor, [str(tmp_path / "m.csv")], workers=1, progress=False).frame
    on_ray = predict_paths(predictor, [str(tmp_path / "m.csv")], workers=2, progress=False).frame
    assert len(here[here["level"] == "file"]) == 9
    pd.testing.assert_frame_equal(here, on_ray, atol=1e-6)


def test_bad_inputs_are_one_line_errors_or_skipped(runs, audio, tmp_path, capsys):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really a wave file at all")
    sf.write(tmp_path / "silent0.wav", np.zeros(0), SR)
    run = str(runs["elor"])
    for bad, says in [(tmp_path / "empty.wav", "empty.wav: unreadable audio"),
                      (tmp_path / "junk.wav", "junk.wav: unreadable audio"),
                      (tmp_path / "silent0.wav", "silent0.wav: no samples"),
                      (tmp_path / "nope.wav", "nope.wav: no such file or folder")]:
        assert main(["predict", "--run", run, str(audio / "short.wav"), str(bad)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("raylab: error: ") and says in err and err.count("\n") == 1, err
    assert main(["predict", "--run", run, str(audio / "short.wav"), str(tmp_path / "empty.wav"),
                 str(tmp_path / "nope.wav"), "--skip-invalid"]) == 0
    captured = capsys.readouterr()
    assert "short.wav" in captured.out
    assert "skipped" in captured.err and "empty.wav" in captured.err and "nope.wav" in captured.err
    (tmp_path / "norun").mkdir()
    assert main(["predict", "--run", str(tmp_path / "norun"), str(audio / "short.wav")]) == 1
    assert "a folder without run.json or checkpoint.pt" in capsys.readouterr().err
    (tmp_path / "emptyrun").mkdir()
    (tmp_path / "emptyrun" / "run.json").write_text("{}")
    assert main(["predict", "--run", str(tmp_path / "emptyrun"), str(audio / "short.wav")]) == 1
    assert "the run saved no network" in capsys.readouterr().err
    assert main(["predict", "--run", run, "--fold", "Ses09M", str(audio / "short.wav")]) == 1
    assert "--fold Ses09M: not a fold of" in capsys.readouterr().err


RAY_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+(DEBUG|INFO|WARNING|ERROR)\b|pid=")


def raylab_process(*argv: str, **options) -> subprocess.Popen:
    """`python -m raylab ARGV` in a process of its own, which starts its own Ray."""
    env = process_env(drop=("RAY_ADDRESS",))
    return subprocess.Popen([sys.executable, "-m", "raylab", *argv], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options)


def test_many_files_start_ray_quietly(runs, tmp_path):
    """More than `RAY_MIN_FILES` files start Ray (in a process of its own here): Ray's lines go to
    `<results>/logs/predict.log`; the terminal holds the model, the table and the log's name."""
    from raylab.predict.ray_batch import RAY_MIN_FILES

    files = []
    for k in range(RAY_MIN_FILES + 1):
        files.append(str(tmp_path / f"clip{k}.wav"))
        sf.write(files[-1], tone(1.0 + k / 10), SR)
    results = tmp_path / "results"
    driver = raylab_process("--results", str(results), "predict", "--run", str(runs["elor"]),
                            *files, "--device", "cpu", "--workers", "2")
    out, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, out + err
    shown = out.splitlines() + err.splitlines()
    assert not [line for line in shown if RAY_LOG_LINE.search(line)], out + err
    assert err.splitlines() == [f"log: {results / 'logs' / 'predict.log'}"], err
    assert out.splitlines()[0].startswith("ELoR, mean of 2 fold networks")
    assert sum(f"clip{k}.wav" in out for k in range(RAY_MIN_FILES + 1)) == RAY_MIN_FILES + 1
    assert "Started a local Ray instance" in (results / "logs" / "predict.log").read_text()
