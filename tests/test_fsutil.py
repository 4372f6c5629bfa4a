"""--out never deletes a folder that is not an earlier output of the same kind."""
from __future__ import annotations

import numpy as np
import pytest

from raylab.cli import main
from raylab.data.dataset import DatasetWriter, Window, load_dataset
from raylab.errors import ConfigError
from raylab.runtime.fsutil import MARKER_FILE


def _write(out, value: int) -> None:
    with DatasetWriter(out, 4) as writer:
        writer.add([Window("w0", "u0", "Ses01F", 1, 0, np.full(4, value, np.int16), 1, 2)])
        writer.commit({"sample_rate": 16000})


def test_a_foreign_folder_is_refused_and_kept(tmp_path):
    precious = tmp_path / "corpus"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not a raylab dataset raylab may replace"):
        _write(precious, 1)
    assert [p.name for p in precious.iterdir()] == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]  # no temporary folder left


def test_an_earlier_dataset_or_an_empty_folder_is_replaced(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    _write(out, 1)
    _write(out, 7)
    assert load_dataset(out).audio[0, 0] == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_analysis_output_folder_is_protected_the_same_way(tmp_path):
    from analysis.runs import staged

    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "x.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a raylab analysis folder"):
        with staged(keep) as tmp:
            (tmp / "saliency_summary.json").write_text("{}")
    assert [p.name for p in keep.iterdir()] == ["x.txt"]
    out = tmp_path / "analysis"
    for _ in range(2):
        with staged(out) as tmp:
            (tmp / "saliency_summary.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == [MARKER_FILE, "saliency_summary.json"]
    (out / "notes.md").write_text("mine")
    with pytest.raises(ConfigError, match="a raylab analysis folder, but it also holds notes.md"):
        with staged(out) as tmp:
            (tmp / "saliency_summary.json").write_text("{}")
    assert (out / "notes.md").read_text() == "mine"


def test_a_folder_with_a_meta_json_is_not_a_dataset(tmp_path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "meta.json").write_text("{}")
    (thesis / "thesis.tex").write_text("\\documentclass{book}")
    with pytest.raises(ConfigError, match=r"thesis: exists and is not a raylab dataset raylab may "
                                          r"replace \(no \.raylab-folder; holds meta.json, thesis.tex\)"):
        _write(thesis, 1)
    assert sorted(p.name for p in thesis.iterdir()) == ["meta.json", "thesis.tex"]
    (thesis / MARKER_FILE).write_text("{}")  # a file of that name is not enough either
    with pytest.raises(ConfigError, match="is not a raylab dataset"):
        _write(thesis, 1)
    assert (thesis / "thesis.tex").exists()


def test_a_dataset_with_a_file_raylab_did_not_write_is_refused(tmp_path, capsys):
    out = tmp_path / "ds"
    _write(out, 1)
    assert sorted(p.name for p in out.iterdir()) == [
        MARKER_FILE, "annotations.parquet", "meta.json", "windows.parquet"]
    (out / "features_is10.parquet").write_text("raylab features adds these")
    _write(out, 2)  # the marker's files and the feature files: replaced
    (out / "thesis.tex").write_text("mine")
    with pytest.raises(ConfigError, match="ds: a raylab dataset, but it also holds thesis.tex, "
                                          "which raylab did not write"):
        _write(out, 3)
    assert load_dataset(out).audio[0, 0] == 2 and (out / "thesis.tex").exists()
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,speaker,valence,arousal\nx.wav,s,1,1\n")
    assert main(["data", "prepare", "manifest", str(manifest), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "it also holds thesis.tex" in err


def test_a_dataset_of_the_previous_version_is_replaced(tmp_path):
    out = tmp_path / "ds"
    _write(out, 1)
    (out / MARKER_FILE).unlink()  # as written before the marker existed
    (out / "rejected.csv").write_text("where,utterance_id,reason,message\n")
    _write(out, 5)
    assert load_dataset(out).audio[0, 0] == 5
    (out / MARKER_FILE).unlink()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="no .raylab-folder; holds annotations.parquet, meta.json, "
                                          "notes.txt, windows.parquet"):
        _write(out, 6)
