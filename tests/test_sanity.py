"""Randomisation sanity checks (Adebayo et al. 2018): the check must tell a map that ignores the
weights from one that depends on them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.evidence import baseline_line, random_baseline
from analysis.sanity import (FLOOR_STEP, SENSITIVE_BELOW, cascading_randomization, layer_groups,
                             rank_correlations, verdicts)
from raylab.models import build_model
from tests.cue_corpus import SR, corpus, train_network

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


def test_a_network_without_layers_to_randomise_is_refused(model_and_inputs):
    class Bare(torch.nn.Module):  # heads without a Linear layer, no convolution
        def __init__(self):
            super().__init__()
            self.heads = torch.nn.ModuleDict({"valence": torch.nn.Identity()})

    assert layer_groups(Bare()) == []
    with pytest.raises(ValueError, match="Bare has no Linear layer .* nothing to randomise"):
        cascading_randomization(Bare(), model_and_inputs[1], {"input": the_input})


def test_rank_correlations():
    a = np.array([[1.0, -2.0, 3.0, 4.0]])
    assert rank_correlations(a, -a)[0] == pytest.approx(1.0)  # magnitudes compared
    assert rank_correlations(a, np.array([[2.0, 1.0, 4.0, 3.0]]))[0] == pytest.approx(0.6)
    assert np.isnan(rank_correlations(a, np.ones((1, 4)))[0])


def test_rank_correlations_leave_the_zero_padding_out():
    # the first 4 samples are the signal (rank orders reversed), the rest padding where both
    # maps agree, as every network's map does on exact zeros
    a = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]])
    b = np.array([[4.0, 3.0, 2.0, 1.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]])
    assert rank_correlations(a, b)[0] > 0.5
    assert rank_correlations(a, b, np.array([4]))[0] == pytest.approx(-1.0)


def test_a_method_that_ignores_the_weights_is_caught_and_gradient_is_not(model_and_inputs):
    model, inputs = model_and_inputs
    before = {k: v.clone() for k, v in model.state_dict().items()}
    table = cascading_randomization(model, inputs, {"input": the_input, "gradient": "gradient"})
    steps = ["original", "output", "hidden2", "hidden1", "conv3", "conv2", "conv1"]
    assert list(table["step"].unique()) == steps + [FLOOR_STEP]
    mean = table.groupby(["method", "step"], sort=False)["spearman_mean"].mean()
    assert all(mean["input"][s] == pytest.approx(1.0) for s in steps + [FLOOR_STEP])
    assert mean["gradient"]["original"] == pytest.approx(1.0)
    assert mean["gradient"]["conv1"] < 0.5
    found = verdicts(table)
    assert found["input"]["depends_on_weights"] is False
    assert found["input"]["floor"] == pytest.approx(1.0)  # any two networks draw the input alike
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
    assert table[table.step == FLOOR_STEP].shape[0] == 4  # 2 methods x 2 heads
    found = verdicts(table)
    assert found["input"]["permuted_labels"] == pytest.approx(1.0)
    assert not found["input"]["depends_on_labels"]
    assert isinstance(found["guided"]["fully_random"], float)  # reported, whatever it is


def test_random_baseline_gives_a_weight_free_correlation_away(model_and_inputs):
    model, inputs = model_and_inputs
    found = random_baseline(model, inputs, the_input)
    assert found["windows"] == 4
    for net in ("trained", "random"):  # the input itself: r(x, s) = 1 for any network
        assert found[net]["signed_valence"] == pytest.approx(1.0)
        assert found[net]["heads"] == pytest.approx(1.0)
    gradient = random_baseline(model, inputs, "gradient")
    assert gradient["trained"]["heads"] != pytest.approx(gradient["random"]["heads"], abs=1e-3)
    assert "r(x, s) valence +1.00 vs +1.00" in baseline_line(found)


def test_maps_already_computed_are_used_as_they_are(model_and_inputs, monkeypatch):
    """The saliency report passes the trained network's maps in: the same table and baseline as
    computing them, and the trained network's maps are not computed again."""
    from analysis import evidence, sanity
    from analysis.saliency import compute_maps

    model, inputs = model_and_inputs
    maps, targets = compute_maps(model, inputs, "gradient")
    table = cascading_randomization(model, inputs, {"gradient": "gradient"})
    baseline = random_baseline(model, inputs, "gradient")
    calls = []

    def counted(net, *args, **kwargs):
        calls.append(net)
        return compute_maps(net, *args, **kwargs)

    monkeypatch.setattr(sanity, "compute_maps", counted)
    monkeypatch.setattr(evidence, "compute_maps", counted)
    given = cascading_randomization(model, inputs, {"gradient": "gradient"},
                                    originals=({"gradient": maps}, targets))
    pd.testing.assert_frame_equal(given, table)
    assert random_baseline(model, inputs, "gradient", trained=(maps, targets)) == baseline
    assert calls and model not in calls


def test_verdicts_on_a_hand_made_table():
    rows = [{"step": s, "method": m, "head": h, "spearman_mean": v, "spearman_std": 0.0}
            for s, vals in [("original", (1, 1)), ("output", (0.9, 0.95)), ("conv1", (0.1, 0.9))]
            for m, v in zip(("a", "b"), vals) for h in ("valence", "arousal")]
    found = verdicts(pd.DataFrame(rows))
    assert found == {"a": {"fully_random": 0.1, "depends_on_weights": True},
                     "b": {"fully_random": 0.9, "depends_on_weights": False}}


def test_on_a_trained_network_gradient_passes_and_occlusion_draws_the_envelope():
    """A toy network trained on the cue corpus (arousal: loudness, valence: pitch); 8 clips, half
    cut short with zero padding as raylab pads short utterances. Plain gradient's maps change
    with the weights; occlusion's follow the input's envelope, for a random network as for the
    trained one, and two random networks' maps agree as much (the floor). Asserted: the verdicts
    and orderings, with margins of 0.1 or more over what was measured on clip seeds 7, 8, 9
    (occlusion's ρ 0.60-0.70 and floor 0.61-0.70, gradient's 0.08-0.13; envelope ρ of the random
    network 0.62-0.65 against 0.29-0.42)."""
    heads = {"arousal": "loudness", "valence": "pitch"}
    model, accuracy = train_network(heads, n=200, epochs=6)
    assert min(accuracy.values()) > 0.3  # it learned something (chance 0.2)
    clips, _ = corpus(heads, 8, seed=7)
    for i in range(1, len(clips), 2):  # a half or two thirds of the window is padding
        clips[i, len(clips[i]) // (2 if i % 4 == 1 else 3):] = 0.0
    table = cascading_randomization(model, {"waveform": clips},
                                    {m: m for m in ("gradient", "occlusion")}, sample_rate=SR)
    gradient, occlusion = (verdicts(table)[m] for m in ("gradient", "occlusion"))
    assert gradient["depends_on_weights"] is True
    assert gradient["fully_random"] < SENSITIVE_BELOW - 0.2
    assert occlusion["depends_on_weights"] is False
    # occlusion's ρ is the input's: as high between two random networks (the floor), far above
    # the gradient's on both counts
    assert occlusion["floor"] > SENSITIVE_BELOW
    assert occlusion["fully_random"] > gradient["fully_random"] + 0.3
    assert occlusion["floor"] > gradient["floor"] + 0.3
    # and it follows the input's envelope on the random network, more than the gradient does
    assert occlusion["envelope_random"] > SENSITIVE_BELOW
    assert occlusion["envelope_random"] > gradient["envelope_random"] + 0.1
