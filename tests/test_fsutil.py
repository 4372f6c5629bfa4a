"""--out never deletes a folder that is not an earlier output of the same kind."""
from __future__ import annotations

import numpy as np
import pytest

from raylab.data.dataset import DatasetWriter, Window, load_dataset
from raylab.errors import ConfigError


def _write(out, value: int) -> None:
    with DatasetWriter(out, 4) as writer:
        writer.add([Window("w0", "u0", "Ses01F", 1, 0, np.full(4, value, np.int16), 1, 2)])
        writer.commit({"sample_rate": 16000})


def test_a_foreign_folder_is_refused_and_kept(tmp_path):
    precious = tmp_path / "corpus"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not a raylab dataset"):
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
    assert [p.name for p in out.iterdir()] == ["saliency_summary.json"]
