"""Corpus -> dataset: the window rule, labels, every bad input, --skip-invalid, the CLI."""
from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from raylab.cli import main
from raylab.data.corpora.windows import cut_windows, window_count, window_lengths
from raylab.data.dataset import load_dataset, read_meta
from raylab.data.prepare import prepare_iemocap
from raylab.errors import ConfigError, DataError
from tests.corpus_factory import SR, TURNS, make_iemocap_corpus, tone, wav_path

W, M = 96_000, 48_000


def test_window_rule_by_hand():
    # 1.5 s pad; 6 s exact; 9 s = 6 + 3 (not > 3); 9.5 s = 6 + 3.5; 15.5 s = 6 + 6 + 3.5; 13 = 6 + 6 + 1
    seconds = [1.5, 6.0, 7.0, 9.0, 9.5, 12.0, 13.0, 15.5]
    assert [window_count(int(s * SR), W, M) for s in seconds] == [1, 1, 1, 1, 2, 2, 2, 3]
    assert window_count(0, W, M) == 0
    audio = np.arange(1, int(9.5 * SR) + 1, dtype=np.int64).astype(np.int16)
    windows = cut_windows(audio, W, M)
    assert windows.shape == (2, W) and windows.dtype == np.int16
    assert (windows[0] == audio[:W]).all() and (windows[1, :56_000] == audio[W:]).all()
    assert (windows[1, 56_000:] == 0).all()
    assert window_lengths(4, 1) == (64_000, 16_000)
    with pytest.raises(ConfigError, match="--min-last-seconds"):
        window_lengths(6, 6)


def test_dataset_from_the_fixture_corpus(iemocap_dataset):
    data = load_dataset(iemocap_dataset)
    rated = {u: row for u, row in TURNS.items() if row[1] is not None}
    assert len(data) == sum(row[3] for row in rated.values()) == 13
    for utterance, (seconds, labels, _, count) in rated.items():
        rows = np.flatnonzero(data.utterance_id == utterance)
        assert list(data.slice[rows]) == list(range(count))
        assert list(data.window_id[rows]) == [f"{utterance}_w{k:02d}" for k in range(count)]
        assert {(int(data.valence[i]), int(data.arousal[i])) for i in rows} == {labels}
        used = min(int(round(seconds * SR)), count * W)
        assert np.count_nonzero(data.audio[rows].reshape(-1)[used:]) == 0  # zero padding
    assert data.speaker[data.utterance_id == "Ses01F_impro01_M000"][0] == "Ses01M"
    meta = data.meta
    assert meta["corpus"] == "iemocap" and meta["evaluator"] == "E2"
    assert meta["speakers"] == {"Ses01F": 3, "Ses01M": 3, "Ses02F": 4, "Ses02M": 1, "Ses03F": 1, "Ses03M": 1}
    assert (meta["utterances"], meta["skipped"], meta["min_last_samples"], meta["sample_rate"]) == \
        (10, {"unrated": 2}, M, SR)
    assert pq.read_metadata(Path(iemocap_dataset) / "annotations.parquet").num_rows == 55


def test_mean_evaluator_and_other_lengths(iemocap_corpus, tmp_path):
    summary = prepare_iemocap(iemocap_corpus, tmp_path / "mean", evaluator="mean", workers=1)
    data = load_dataset(summary.path, audio=False)
    assert len(data) == sum(row[3] for row in TURNS.values()) == 17
    got = {u: (int(v), int(a)) for u, v, a in zip(data.utterance_id, data.valence, data.arousal)}
    assert got == {u: row[2] for u, row in TURNS.items()}
    # 4 s windows, last cut kept if > 1 s: 13 s -> 4 + 4 + 4 + 1 (dropped) = 3
    short = prepare_iemocap(iemocap_corpus, tmp_path / "short", window_seconds=4, min_last_seconds=1,
                            workers=1)
    data = load_dataset(short.path)
    assert data.audio.shape[1] == 64_000 and short.meta["min_last_samples"] == 16_000
    assert (data.utterance_id == "Ses02F_impro02_F000").sum() == 4  # 15.5 s = 3 x 4 + 3.5


def test_parallel_workers_write_the_same_dataset(iemocap_corpus, iemocap_dataset, tmp_path):
    summary = prepare_iemocap(iemocap_corpus, tmp_path / "two", workers=2)
    one, two = load_dataset(iemocap_dataset), load_dataset(summary.path)
    assert (one.window_id == two.window_id).all() and (one.audio == two.audio).all()


def _break_everything(root: Path) -> dict[str, str]:
    """Five broken turns, one of each kind; returns utterance -> reason."""
    path = wav_path(root, "Ses01F_impro01_M000")
    path.write_bytes(path.read_bytes()[: 44 + 1000])
    wav_path(root, "Ses01M_script01_1_F000").write_bytes(b"this is not a RIFF file at all" * 4)
    sf.write(wav_path(root, "Ses02F_impro02_F001"), tone(2.5, sr=8000, freq=300), 8000)
    sf.write(wav_path(root, "Ses02F_impro02_M000"), tone(6.0, channels=2), SR)
    wav_path(root, "Ses03M_impro01_M000").unlink()
    return {"Ses01F_impro01_M000": "truncated_wav", "Ses01M_script01_1_F000": "corrupt_wav",
            "Ses02F_impro02_F001": "sample_rate", "Ses02F_impro02_M000": "channels",
            "Ses03M_impro01_M000": "missing_wav"}


def test_every_bad_input_is_listed_and_nothing_is_written(tmp_path):
    root = make_iemocap_corpus(tmp_path / "corpus")
    broken = _break_everything(root)
    lines: list[str] = []
    out = tmp_path / "out" / "data"
    with pytest.raises(DataError, match=r"^5 problem\(s\) in .*nothing written.*--skip-invalid"):
        prepare_iemocap(root, out, workers=1, log=lines.append)
    assert len(lines) == 5
    expected = {"Ses01F_impro01_M000": "truncated: header declares 224000 data bytes, file holds 1000",
                "Ses01M_script01_1_F000": "unreadable audio (Format not recognised.)",
                "Ses02F_impro02_F001": "sample rate 8000 Hz, expected 16000 (pass --resample",
                "Ses02F_impro02_M000": "2 channels, expected 1",
                "Ses03M_impro01_M000": "no WAV for labelled turn Ses03M_impro01_M000"}
    for line in lines:
        utterance = line.split(".wav:")[0].rsplit("/", 1)[1]
        assert expected.pop(utterance) in line and utterance in broken
    assert not expected
    assert not out.exists() and list(out.parent.iterdir()) == []  # no dataset, no temporary folder


def test_malformed_blocks_fail_with_file_and_line(tmp_path):
    root = make_iemocap_corpus(tmp_path / "corpus")
    shutil.copy(Path(__file__).parent / "data/corpora/malformed_block.txt",
                root / "Session3/dialog/EmoEvaluation/Ses03M_impro01.txt")
    lines: list[str] = []
    with pytest.raises(DataError, match=r"^2 problem\(s\) .*Ses03M_impro01.txt:6: A-E2: cannot read"):
        prepare_iemocap(root, tmp_path / "data", workers=1, log=lines.append)
    assert [line.split("Ses03M_impro01.txt:")[1][:2] for line in lines] == ["6:", "10"]
    assert not (tmp_path / "data").exists()
    summary = prepare_iemocap(root, tmp_path / "data", workers=1, skip_invalid=True)
    assert summary.windows == 11 and summary.skipped == {"unrated": 2, "malformed_block": 2}


def test_skip_invalid_writes_rejected_csv(tmp_path):
    root = make_iemocap_corpus(tmp_path / "corpus")
    broken = _break_everything(root)
    summary = prepare_iemocap(root, tmp_path / "data", skip_invalid=True, workers=1)
    with open(summary.path / "rejected.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["utterance_id"]: r["reason"] for r in rows} == broken
    data = load_dataset(summary.path, audio=False)
    assert not set(broken) & set(data.utterance_id)
    assert len(data) == 13 - 1 - 2 - 1 - 1 - 1
    assert read_meta(summary.path)["skipped"] == {"unrated": 2, **{r: 1 for r in broken.values()}}


def test_resample_converts_other_rates(tmp_path):
    root = make_iemocap_corpus(tmp_path / "corpus")
    sf.write(wav_path(root, "Ses02F_impro02_F000"), tone(15.5, sr=44_100), 44_100)
    summary = prepare_iemocap(root, tmp_path / "data", resample=True, workers=1)
    data = load_dataset(summary.path)
    rows = data.utterance_id == "Ses02F_impro02_F000"
    assert rows.sum() == 3 and np.abs(data.audio[rows]).max() > 9000


def test_cli_prepare_info_and_error_path(iemocap_corpus, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["data", "prepare", "iemocap", str(iemocap_corpus), "--out", str(out), "--workers", "1"]) == 0
    assert "wrote 13 windows from 10 utterances of 6 speakers" in capsys.readouterr().out
    assert main(["data", "info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "evaluator E2" in info and "skipped   unrated 2" in info
    assert "Ses02F           4       0    3    0    0    1       0    0    0    3    1" in info
    assert main(["data", "evaluators", str(iemocap_corpus)]) == 0
    assert "E2        external                10               10" in capsys.readouterr().out
    assert main(["data", "prepare", "iemocap", str(iemocap_corpus), "--out", str(out),
                 "--evaluator", "E7"]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("raylab: error: ")
    assert "available: E1 (9), E2 (10)" in captured.err
    assert main(["data", "info", str(tmp_path)]) == 1
    assert "not a raylab dataset" in capsys.readouterr().err


def test_five_session_release_is_checked_against_the_paper(tmp_path, capsys):
    """Prepare and info print the E2 window count and the majority classes beside the paper's; a
    tiny five-session corpus differs, and says so in warnings, not errors."""
    from tests.corpus_factory import make_five_session_corpus

    corpus = make_five_session_corpus(tmp_path / "IEMOCAP_full_release")
    out = tmp_path / "data"
    assert main(["data", "prepare", "iemocap", str(corpus), "--out", str(out), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert main(["data", "info", str(out)]) == 0
    info = capsys.readouterr().out
    windows = len(load_dataset(out, audio=False))
    for text in (printed, info):
        assert f"E2 windows {windows} (the paper: 8522 with E2)" in text
        assert re.search(r"most frequent arousal class [1-5] \(the paper: 3\)", text)
        assert re.search(r"most frequent valence class [1-5] \(the paper: 1\)", text)
        assert f"warning: {windows} windows, not the paper's 8522" in text


def test_paper_check_is_quiet_when_the_corpus_matches_and_absent_elsewhere():
    from raylab.data.prepare import paper_corpus_check

    labels = {"arousal": np.r_[np.full(5000, 2), np.full(3522, 1)],
              "valence": np.r_[np.full(5000, 0), np.full(3522, 3)]}
    meta = {"corpus": "iemocap", "evaluator": "E2"}
    lines = paper_corpus_check(meta, [1, 2, 3, 4, 5], labels)
    assert len(lines) == 1 and "E2 windows 8522" in lines[0] and "most frequent arousal class 3" in lines[0]
    swapped = {"arousal": labels["valence"], "valence": labels["arousal"]}
    warnings = paper_corpus_check({**meta, "evaluator": "E1"}, range(1, 6), swapped)[1:]
    assert warnings[0] == "warning: labelled by E1; the paper's figures are for evaluator E2"
    assert "arousal class is 1, not the paper's 3" in warnings[1]
    assert "valence class is 3, not the paper's 1" in warnings[2]
    assert paper_corpus_check(meta, [1, 2, 3], labels) == []          # a partial release
    assert paper_corpus_check({**meta, "corpus": "demo"}, range(1, 6), labels) == []


LOAD_PEAK = """
import sys
import pyarrow as pa
from raylab.data.dataset import load_dataset
data = load_dataset(sys.argv[1])
print(pa.default_memory_pool().max_memory(), data.audio.nbytes, int(data.audio[:, 7].sum()))
"""


def test_loading_holds_one_copy_of_the_audio(tmp_path):
    """The audio is decoded a few windows at a time into one array: Arrow's pool never holds
    as much as the audio itself (a whole-column read held ~4.5x: the driver of every search and
    ten-fold run paid that; bench/fullscale.py measured it)."""
    import subprocess
    import sys

    from raylab import DEFAULT_EVALUATOR, WINDOW_SAMPLES as samples
    from raylab.data.dataset import DatasetWriter, Window

    windows = 1536  # six row groups, 295 MB of int16
    with DatasetWriter(tmp_path / "ds", samples) as writer:
        writer.add(Window(f"w{i}", f"u{i}", f"Ses0{1 + i % 5}F", 1 + i % 5, 0,
                          np.full(samples, i % 7, np.int16), i % 5, 0) for i in range(windows))
        writer.commit({"sample_rate": SR, "min_last_samples": samples // 2,
                       "evaluator": DEFAULT_EVALUATOR, "source": "test", "corpus": "demo",
                       "speakers": {}, "utterances": windows, "skipped": {}})
    done = subprocess.run([sys.executable, "-c", LOAD_PEAK, str(tmp_path / "ds")],
                          capture_output=True, text=True, check=True)
    peak, audio, column = map(int, done.stdout.split())
    assert audio == windows * samples * 2
    assert column == sum(i % 7 for i in range(windows))  # every window in its row, in order
    assert peak < audio / 2


def test_window_samples_that_do_not_match_the_audio_fail_in_one_line(iemocap_dataset, tmp_path):
    import json

    copy = shutil.copytree(iemocap_dataset, tmp_path / "ds")
    meta = json.loads((copy / "meta.json").read_text())
    (copy / "meta.json").write_text(json.dumps({**meta, "window_samples": 48_000}))
    with pytest.raises(DataError, match=r"meta.json: window_samples 48000, but windows.parquet "
                                         r"holds windows of 96000 samples"):
        load_dataset(copy)


def test_a_windows_table_without_a_label_column_fails_in_one_line(iemocap_dataset, tmp_path):
    import pyarrow.parquet as pq

    copy = shutil.copytree(iemocap_dataset, tmp_path / "ds")
    table = pq.read_table(copy / "windows.parquet")
    pq.write_table(table.drop_columns(["speaker"]), copy / "windows.parquet")
    with pytest.raises(DataError, match=r"windows.parquet: not a raylab windows table"):
        load_dataset(copy)
