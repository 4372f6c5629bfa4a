"""Saliency maps: answers known by hand, guided backprop against a hand implementation, the
correlations of section 4.2.1 on constructed cases, Figure 4."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from analysis import plots
from analysis.saliency import (HEADS, analyze, attribute, compute_maps, pearson_rows, summarize,
                               window_correlations)
from raylab.models import build_model

T = 600
# conv_impl direct: maps compared across batch sizes to 1e-7 must not depend on which algorithm
# conv_impl="auto" happens to time faster for each batch shape
TINY = dict(conv1_filters=4, conv1_kernel=16, pool1=2, conv2_filters=4, conv2_kernel=8, pool2=4,
            conv3_filters=4, conv3_kernel=4, pool3=4, hidden1=8, hidden2=8, dropout=0.0,
            conv_impl="direct")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


class SummedPointwiseConv(nn.Module):
    """A 1x1 convolution summed over time, times a fixed vector per head: logit_k = c_k·Σ_t w·x_t + b.
    The gradient of logit k with respect to x_t is c_k·w at every t."""

    inputs = ("waveform",)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(0.37)
            self.conv.bias.fill_(0.1)
        self.scale = {"valence": torch.tensor([1.0, -1.0, 2.0, -2.0, 0.5]),
                      "arousal": torch.tensor([-3.0, 1.0, 0.0, 0.25, 1.5])}

    def forward(self, waveform):
        z = self.conv(waveform.unsqueeze(1)).sum(dim=(1, 2))  # (B,)
        return {h: z[:, None] * s for h, s in self.scale.items()}


def test_gradient_saliency_of_a_summed_1x1_conv_equals_its_weight():
    model = SummedPointwiseConv()
    x = np.random.default_rng(0).uniform(0.1, 1.0, (3, 50)).astype(np.float32)  # z > 0
    maps, targets = compute_maps(model, {"waveform": x}, "gradient")
    # z > 0: valence's largest c is 2.0 (class 2), arousal's is 1.5 (class 4)
    assert targets["valence"].tolist() == [2, 2, 2] and targets["arousal"].tolist() == [4, 4, 4]
    np.testing.assert_allclose(maps["valence"], 2.0 * 0.37, rtol=1e-6)
    np.testing.assert_allclose(maps["arousal"], 1.5 * 0.37, rtol=1e-6)
    guided, _ = compute_maps(model, {"waveform": x}, "guided")  # no ReLU: the same gradient
    np.testing.assert_allclose(guided["arousal"], 1.5 * 0.37, rtol=1e-6)
    integrated, _ = compute_maps(model, {"waveform": x}, "integrated")  # linear: x · gradient
    np.testing.assert_allclose(integrated["valence"], x * 2.0 * 0.37, rtol=1e-4)


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * (x > 0)  # guided backprop rule (Springenberg et al. 2015)


class _GuidedReLUModule(nn.Module):
    def forward(self, x):
        return _GuidedReLU.apply(x)


def hand_guided(model, head, inputs, target):
    """Guided backprop by hand: every ReLU replaced by one with the guided backward rule."""
    net = copy.deepcopy(model).eval()
    for name, module in list(net.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, child_name, _GuidedReLUModule())
    x = inputs[0].clone().requires_grad_(True)
    logits = net(x, *inputs[1:])[head]
    logits.gather(1, target[:, None]).sum().backward()
    return x.grad


@pytest.mark.parametrize("arch", ["elor", "elor_ftr"])
def test_guided_backprop_equals_a_hand_implementation(arch):
    torch.manual_seed(0)
    extra = {"num_features": 6} if arch == "elor_ftr" else {}
    model = build_model(arch, input_samples=T, **TINY, **extra).eval()
    rng = np.random.default_rng(0)
    inputs = {"waveform": rng.normal(0, 0.3, (4, T)).astype(np.float32)}
    if arch == "elor_ftr":
        inputs["is10"] = rng.normal(0, 1, (4, 6)).astype(np.float32)
    maps, targets = compute_maps(model, inputs, "guided", batch_size=3)  # two batches
    plain, _ = compute_maps(model, inputs, "gradient")
    tensors = tuple(torch.tensor(inputs[k]) for k in model.inputs)
    for head in HEADS:
        expected = hand_guided(model, head, tensors, torch.tensor(targets[head])).numpy()
        np.testing.assert_allclose(maps[head], expected, rtol=1e-4, atol=1e-7)
        assert not np.allclose(maps[head], plain[head])  # the hooks did change the backward pass
        assert maps[head].shape == (4, T)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_captum_called_directly_on_the_head_agrees_with_the_wrapper():
    from captum.attr import GuidedBackprop

    torch.manual_seed(1)
    model = build_model("elor", input_samples=T, **TINY).eval()

    class ArousalOnly(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)["arousal"]

    x = torch.randn(2, T) * 0.3
    target = torch.tensor([1, 3])
    direct = GuidedBackprop(ArousalOnly(model)).attribute(x.clone().requires_grad_(), target=target)
    ours = attribute(model, "arousal", "guided", x.clone().requires_grad_(), target)
    torch.testing.assert_close(ours, direct)


def test_pearson_rows_and_window_correlations_on_constructed_maps():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (3, 200))
    for a, b in [(x, x ** 3), (x, rng.normal(size=x.shape))]:
        expected = [np.corrcoef(a[i], b[i])[0, 1] for i in range(3)]
        np.testing.assert_allclose(pearson_rows(a, b), expected, rtol=1e-10)
    assert np.isnan(pearson_rows(np.ones((1, 5)), x[:1, :5])[0])
    corr = window_correlations(x, {"valence": 2 * x, "arousal": -x})
    np.testing.assert_allclose(corr["signed_valence"], 1.0)
    np.testing.assert_allclose(corr["signed_arousal"], -1.0)
    np.testing.assert_allclose(corr["abs_arousal"], 1.0)  # |−x| = |x|: amplitude still tracks
    np.testing.assert_allclose(corr["heads"], -1.0)
    np.testing.assert_allclose(corr["heads_abs"], 1.0)


def test_the_literal_correlation_leaves_the_padding_out():
    """Issue: the primary figure is r(x, s), signed, without the zero padding. A window whose
    first 300 samples are signal and whose last 100 are padding, with saliency = x on the signal
    and a large constant on the padding: r is exactly 1 over the signal and far from 1 with it."""
    from analysis.saliency import signal_lengths

    rng = np.random.default_rng(1)
    x = np.zeros((2, 400))
    x[:, :300] = rng.normal(0, 1, (2, 300))
    s = x.copy()
    s[:, 300:] = 5.0
    s[1] = -s[1]                                   # a map of the opposite sign
    assert list(signal_lengths(x)) == [300, 300]
    corr = window_correlations(x, {"valence": s, "arousal": s})
    np.testing.assert_allclose(corr["signed_valence"], [1.0, -1.0])
    with_padding = pearson_rows(x, s)
    assert abs(with_padding[0]) < 0.8               # what the padding would have done
    np.testing.assert_allclose(corr["abs_valence"], 1.0)        # secondary: sign-blind
    assert corr["positive_valence"][0] == pytest.approx(1.0)
    assert corr["positive_valence"][1] < 0           # x+ against (-x)+: opposite halves
    loud = x * np.linspace(0.1, 1, 400)             # an amplitude-modulated window
    assert window_correlations(loud, {"valence": -3 * loud, "arousal": loud})[
        "envelope_valence"][0] == pytest.approx(1.0)               # the same envelope
    assert list(signal_lengths(np.zeros((1, 10)))) == [0]


def test_analyze_streams_windows_and_keeps_only_chosen_maps(tmp_path):
    torch.manual_seed(2)
    model = build_model("elor", input_samples=T, **TINY)
    rng = np.random.default_rng(3)
    x = (rng.normal(0, 0.2, (5, T)) * np.linspace(0, 1, T)).astype(np.float32)
    labels = {h: np.array([0, 1, 2, 3, 4]) for h in HEADS}
    result = analyze(model, {"waveform": x}, np.array([f"w{i}" for i in range(5)]), "guided",
                     batch_size=2, keep=(1, 4), labels=labels)
    assert len(result.table) == 5 and sorted(result.kept) == [1, 4]
    assert {"abs_valence", "signed_arousal", "heads", "predicted_valence", "label_arousal"} \
        <= set(result.table.columns)
    maps, _ = compute_maps(model, {"waveform": x}, "guided")
    np.testing.assert_allclose(result.kept[4]["arousal"], maps["arousal"][4], rtol=1e-3, atol=1e-8)
    np.testing.assert_allclose(result.table["abs_valence"],
                               pearson_rows(np.abs(x), np.abs(maps["valence"])), rtol=1e-4)
    summary = summarize(result.table)
    assert summary["heads"]["n"] == 5
    assert summary["abs_arousal"]["mean"] == pytest.approx(result.table["abs_arousal"].mean())
    png = plots.figure4(x[4], result.kept[4]["arousal"], 16000, tmp_path / "f4.png", "test")
    assert png.stat().st_size > 10_000
