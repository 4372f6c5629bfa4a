"""Randomisation sanity checks (Adebayo et al. 2018): the check must tell a map that ignores the
weights from one that depends on them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.sanity import cascading_randomization, layer_groups, rank_correlations, verdicts
from raylab.models import build_model

T = 600
TINY = dict(conv1_filters=4, conv1_kernel=16, pool1=2, conv2_filters=4, conv2_kernel=8, pool2=4,
            conv3_filters=4, conv3_kernel=4, pool3=4, hidden1=8, hidden2=8, dropout=0.0)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def the_input(model, head, waveform, target, other):
    """A fake 'saliency method' that returns the input itself, whatever the weights."""
    return waveform.detach()


@pytest.fixture
def model_and_inputs():
    torch.manual_seed(0)
    model = build_model("elor", input_samples=T, **TINY).eval()
    rng = np.random.default_rng(0)
    return model, {"waveform": rng.normal(0, 0.3, (4, T)).astype(np.float32)}


def test_layer_groups_go_from_the_top_layer_down(model_and_inputs):
    model, _ = model_and_inputs
    groups = layer_groups(model)
    assert [name for name, _ in groups] == ["output", "hidden2", "hidden1", "conv3", "conv2", "conv1"]
    assert groups[0][1] == [model.heads["valence"].out, model.heads["arousal"].out]
    assert groups[-1][1] == [model.trunk.blocks.block1.conv]


def test_rank_correlations():
    a = np.array([[1.0, -2.0, 3.0, 4.0]])
    assert rank_correlations(a, -a)[0] == pytest.approx(1.0)  # magnitudes compared
    assert rank_correlations(a, np.array([[2.0, 1.0, 4.0, 3.0]]))[0] == pytest.approx(0.6)
    assert np.isnan(rank_correlations(a, np.ones((1, 4)))[0])


def test_a_method_that_ignores_the_weights_is_caught_and_gradient_is_not(model_and_inputs):
    model, inputs = model_and_inputs
    before = {k: v.clone() for k, v in model.state_dict().items()}
    table = cascading_randomization(model, inputs, {"input": the_input, "gradient": "gradient"})
    steps = ["original", "output", "hidden2", "hidden1", "conv3", "conv2", "conv1"]
    assert list(table["step"].unique()) == steps
    mean = table.groupby(["method", "step"], sort=False)["spearman_mean"].mean()
    assert all(mean["input"][s] == pytest.approx(1.0) for s in steps)
    assert mean["gradient"]["original"] == pytest.approx(1.0)
    assert mean["gradient"]["conv1"] < 0.5
    found = verdicts(table)
    assert found["input"]["depends_on_weights"] is False
    assert found["gradient"]["depends_on_weights"] is True
    for k, v in model.state_dict().items():  # the analysed network itself is untouched
        torch.testing.assert_close(v, before[k])


def test_permuted_label_network_is_compared_too(model_and_inputs):
    model, inputs = model_and_inputs
    torch.manual_seed(5)
    other = build_model("elor", input_samples=T, **TINY).eval()
    table = cascading_randomization(model, inputs, {"input": the_input, "guided": "guided"},
                                    permuted=other)
    assert table["step"].iloc[-1] == "permuted labels"
    found = verdicts(table)
    assert found["input"]["permuted_labels"] == pytest.approx(1.0)
    assert not found["input"]["depends_on_labels"]
    assert isinstance(found["guided"]["fully_random"], float)  # reported, whatever it is


def test_verdicts_on_a_hand_made_table():
    rows = [{"step": s, "method": m, "head": h, "spearman_mean": v, "spearman_std": 0.0}
            for s, vals in [("original", (1, 1)), ("output", (0.9, 0.95)), ("conv1", (0.1, 0.9))]
            for m, v in zip(("a", "b"), vals) for h in ("valence", "arousal")]
    found = verdicts(pd.DataFrame(rows))
    assert found == {"a": {"fully_random": 0.1, "depends_on_weights": True},
                     "b": {"fully_random": 0.9, "depends_on_weights": False}}
