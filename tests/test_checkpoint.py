"""Checkpoints rebuild any of the four networks from the file alone, with identical outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from raylab.errors import DataError
from raylab.models import MODEL_NAMES, build_model
from raylab.train.checkpoint import load_model, save_checkpoint
from tests.test_models import TOY, one_thread, toy_inputs  # noqa: F401  (fixture)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_round_trip_gives_identical_outputs(name, tmp_path):
    torch.manual_seed(1)
    model = build_model(name, **TOY[name])
    model.train()
    model(*toy_inputs(model, batch=4, seed=5))  # batch-norm running statistics move off their init
    model.eval()
    stats = {"is10": {"mean": np.arange(40, dtype=np.float32), "std": np.ones(40, np.float32)}}
    path = save_checkpoint(tmp_path / "ck" / "checkpoint.pt", model, name,
                           feature_stats=stats if "is10" in model.inputs else None,
                           extra={"fold": "Ses03F", "sample_rate": 8000})
    loaded, info = load_model(path)  # not told which network
    assert type(loaded) is type(model) and not loaded.training
    x = toy_inputs(model, seed=9)
    with torch.no_grad():
        a, b = model(*x), loaded(*x)
    for dim in a:
        assert torch.equal(a[dim], b[dim])
    assert info["name"] == name and info["config"] == model.config
    assert info["sample_rate"] == 8000 and info["extra"] == {"fold": "Ses03F"}
    assert info["labels"]["dimensions"] == ["valence", "arousal"] and info["labels"]["classes"] == 5
    assert info["window_samples"] == model.config.get("input_samples")
    if "is10" in model.inputs:
        np.testing.assert_array_equal(info["feature_stats"]["is10"]["mean"], stats["is10"]["mean"])
    else:
        assert info["feature_stats"] is None
    assert load_model(path.parent)[1]["name"] == name  # a folder holding checkpoint.pt works too
    assert not list(path.parent.glob(".*tmp*"))


def test_unreadable_checkpoints_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="no such checkpoint"):
        load_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="not a readable raylab checkpoint"):
        load_model(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(DataError, match="not a raylab checkpoint"):
        load_model(foreign)
