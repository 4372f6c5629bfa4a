"""The demo corpus: the real reader parses it, it is deterministic, and its cues are measurable."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

import raylab.data.demo_cache as demo_cache
from raylab.cli import main
from raylab.data.corpora import iemocap
from raylab.data.corpora.demo import CUES, DEMO_VERSION, plan_turns, write_demo_corpus
from raylab.data.dataset import load_dataset, read_meta
from raylab.errors import ConfigError


def _corpus_of(dataset: Path) -> Path:
    return dataset.parent / f"{dataset.name}-corpus"  # where make_demo_dataset writes it


def test_the_real_reader_parses_the_demo_corpus(demo_dataset):
    root = _corpus_of(demo_dataset)
    corpus = iemocap.read_corpus(root)
    assert corpus.problems == [] and len(corpus.turns) == 10 * 18
    assert sorted({t.speaker for t in corpus.turns}) == [f"Ses0{s}{x}" for s in range(1, 6) for x in "FM"]
    counts = iemocap.evaluator_counts(corpus.turns)
    assert set(counts) == {"E1", "E2", "E3", "E4", "F1", "M1"} and counts["E4"]["A"] == 0
    assert 0.8 * 180 < counts["E2"]["A"] < 180
    dialogs = {t.dialog for t in corpus.turns}
    assert all({t.speaker[-1] for t in corpus.turns if t.dialog == d} == {"F", "M"} for d in dialogs)
    assert any((root / "Session1/dialog/EmoEvaluation/Categorical").iterdir())
    meta = read_meta(demo_dataset)
    assert meta["corpus"] == "demo" and meta["demo"]["version"] == DEMO_VERSION
    assert meta["demo"]["seed"] == 0 and meta["evaluator"] == "E2"
    assert meta["utterances"] == counts["E2"]["A"] and 150 <= meta["windows"] <= 250


def test_planted_cues_are_measurable(demo_dataset):
    data = load_dataset(demo_dataset)
    audio = data.audio.astype(np.float32) / 32768  # (N, 96000)
    peak = np.abs(audio).max(axis=1)
    assert spearmanr(peak, data.arousal)[0] > 0.8
    spectrum = np.abs(np.fft.rfft(audio, axis=1))
    freqs = np.fft.rfftfreq(audio.shape[1], 1 / 16_000)
    band = (freqs > 70) & (freqs < 400)
    f0 = freqs[band][spectrum[:, band].argmax(axis=1)]
    assert spearmanr(f0, data.arousal)[0] > 0.7
    rms = np.sqrt((audio.reshape(len(audio), -1, 320) ** 2).mean(axis=2))  # 20 ms frames

    def mean_pause_ms(frames: np.ndarray) -> float:
        active = np.flatnonzero(frames > 0.05 * frames.max())
        quiet = np.r_[False, frames[active[0]:active[-1] + 1] <= 0.05 * frames.max(), False]
        edges = np.flatnonzero(np.diff(quiet.astype(int)))
        runs = (edges[1::2] - edges[::2]) * 20
        return float(runs[runs >= 100].mean()) if (runs >= 100).any() else 0.0

    pauses = np.array([mean_pause_ms(r) for r in rms])
    assert spearmanr(pauses, data.valence)[0] < -0.4
    assert np.median(pauses[data.valence == 0]) > np.median(pauses[data.valence == 4])
    assert CUES["valence"]["pause_ms"][0] > CUES["valence"]["pause_ms"][4]


def test_deterministic_for_a_seed(tmp_path):
    assert plan_turns(3, turns_per_speaker=4) == plan_turns(3, turns_per_speaker=4)
    assert plan_turns(3, turns_per_speaker=4) != plan_turns(4, turns_per_speaker=4)
    a = write_demo_corpus(tmp_path / "a", seed=5, speakers=2, turns_per_speaker=2)
    b = write_demo_corpus(tmp_path / "b", seed=5, speakers=2, turns_per_speaker=2)
    c = write_demo_corpus(tmp_path / "c", seed=6, speakers=2, turns_per_speaker=2)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    wav = next(f for f in files if f.suffix == ".wav")
    assert (a / wav).read_bytes() != (c / wav).read_bytes()


def test_ensure_demo_dataset_builds_once_and_rebuilds_for_another_seed(tmp_path, monkeypatch):
    monkeypatch.delenv("RAYLAB_DEMO_DATA", raising=False)
    monkeypatch.setattr(demo_cache, "TURNS_PER_SPEAKER", 2)
    path = Path(demo_cache.resolve_data(None, tmp_path))
    assert path == tmp_path / "demo-data" and (tmp_path / "demo-corpus" / "raylab-demo.json").is_file()
    stamp = (path / "windows.parquet").stat().st_mtime_ns
    assert demo_cache.ensure_demo_dataset(tmp_path) == path
    assert (path / "windows.parquet").stat().st_mtime_ns == stamp
    assert demo_cache.resolve_data("elsewhere", tmp_path) == "elsewhere"
    demo_cache.ensure_demo_dataset(tmp_path, seed=1)
    assert read_meta(path)["demo"]["seed"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".demo-")] == [".demo-data.lock"]


def test_cli_demo_and_info_default_to_the_demo_dataset(tmp_path, demo_data_env, capsys):
    out = tmp_path / "corpus"
    assert main(["data", "demo", "--out", str(out), "--speakers", "2", "--turns-per-speaker", "1",
                 "--seed", "7"]) == 0
    assert len(list(out.rglob("*.wav"))) == 2 and "raylab data prepare iemocap" in capsys.readouterr().out
    assert main(["--results", str(tmp_path / "results"), "data", "info"]) == 0
    info = capsys.readouterr().out
    assert f"dataset   {demo_data_env} (corpus demo, evaluator E2" in info and "Ses05M" in info
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("user data")
    with pytest.raises(ConfigError, match="exists and is not a demo corpus .*holds keep.txt"):
        write_demo_corpus(tmp_path / "mine")
    assert (tmp_path / "mine" / "keep.txt").read_text() == "user data"
