"""The generic route: a CSV manifest of any corpus into the same dataset format."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import soundfile as sf

from raylab.cli import main
from raylab.data.dataset import load_dataset
from raylab.data.prepare import prepare_manifest
from raylab.errors import ConfigError, DataError
from tests.corpus_factory import SR, tone

BAD = Path(__file__).parent / "data" / "corpora"


@pytest.fixture
def lab_corpus(tmp_path):
    (tmp_path / "audio").mkdir()
    for name, seconds in (("a", 2.0), ("b", 10.0), ("c", 6.5)):
        sf.write(tmp_path / "audio" / f"{name}.wav", tone(seconds), SR)
    return tmp_path


def test_ratings_manifest(lab_corpus):
    (lab_corpus / "corpus.csv").write_text(
        "path,speaker,valence,arousal,session\n"
        "audio/a.wav,alice,1,5,1\naudio/b.wav,bob,2.5,3.49,1\naudio/c.wav,alice,4,2,2\n")
    summary = prepare_manifest(lab_corpus / "corpus.csv", lab_corpus / "data", workers=1)
    data = load_dataset(summary.path, audio=False)
    assert list(data.window_id) == ["a_w00", "b_w00", "b_w01", "c_w00"]  # 10 s = 6 + 4 (> 3)
    assert list(data.valence) == [0, 2, 2, 3] and list(data.arousal) == [4, 2, 2, 1]
    assert list(data.speaker) == ["alice", "bob", "bob", "alice"] and list(data.session) == [1, 1, 1, 2]
    assert data.meta["corpus"] == "manifest" and data.meta["speakers"] == {"alice": 2, "bob": 2}


def test_classes_manifest_through_the_cli(lab_corpus, capsys):
    (lab_corpus / "m.csv").write_text("path,speaker,valence,arousal,utterance_id\n"
                                      "audio/a.wav,s1,0,4,u1\naudio/c.wav,s2,2,3,u2\n")
    out = lab_corpus / "cli"
    assert main(["data", "prepare", "manifest", str(lab_corpus / "m.csv"), "--out", str(out),
                 "--labels", "classes", "--workers", "1"]) == 0
    data = load_dataset(out, audio=False)
    assert list(data.utterance_id) == ["u1", "u2"] and list(data.valence) == [0, 2]
    assert list(data.session) == [0, 0]
    assert "wrote 2 windows from 2 utterances of 2 speakers" in capsys.readouterr().out


def test_bad_rows_and_missing_columns(lab_corpus):
    shutil.copy(BAD / "manifest_bad_rows.csv", lab_corpus / "audio" / "m.csv")
    lines: list[str] = []
    with pytest.raises(DataError, match=r"^2 problem\(s\)"):
        prepare_manifest(lab_corpus / "audio" / "m.csv", lab_corpus / "data", workers=1, log=lines.append)
    assert lines[0].endswith("m.csv:3: rating '9' outside 1..5; labels are ratings (1..5)")
    assert lines[1].endswith("m.csv:4: empty path or speaker; labels are ratings (1..5)")
    assert not (lab_corpus / "data").exists()
    summary = prepare_manifest(lab_corpus / "audio" / "m.csv", lab_corpus / "data", workers=1,
                               skip_invalid=True)
    assert summary.windows == 1 and (summary.path / "rejected.csv").read_text().count("\n") == 3
    with pytest.raises(DataError, match=r"missing column\(s\) path, arousal; expected "
                                        r"path,speaker,valence,arousal .*found: file,speaker,valence"):
        prepare_manifest(BAD / "manifest_missing_columns.csv", lab_corpus / "x")
    with pytest.raises(ConfigError, match="--labels 'scores'"):
        prepare_manifest(BAD / "manifest_bad_rows.csv", lab_corpus / "x", labels="scores")


def test_classes_must_be_whole_numbers(lab_corpus):
    (lab_corpus / "m.csv").write_text("path,speaker,valence,arousal\naudio/a.wav,s1,2.5,1\n"
                                      "audio/a.wav,s1,2,1\naudio/a.wav,s2,3,3\n")
    lines: list[str] = []
    with pytest.raises(DataError):
        prepare_manifest(lab_corpus / "m.csv", lab_corpus / "d", labels="classes", log=lines.append)
    assert "m.csv:2: class '2.5' is not a whole number 0..4" in lines[0]
    assert "m.csv:4: utterance id 'a' already on line 3; add an utterance_id column" in lines[1]


def test_a_speaker_is_a_fold_folder_name(lab_corpus):
    (lab_corpus / "m.csv").write_text("path,speaker,valence,arousal\naudio/a.wav,../../x,1,1\n"
                                      "audio/c.wav,..,2,2\n")
    lines: list[str] = []
    with pytest.raises(DataError, match=r"^2 problem\(s\)"):
        prepare_manifest(lab_corpus / "m.csv", lab_corpus / "d", log=lines.append)
    assert "m.csv:2: speaker '../../x' names a fold's folder: no '/' or '\\'" in lines[0]
    assert "m.csv:3: speaker '..' names a fold's folder" in lines[1]
