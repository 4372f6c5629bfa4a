"""The four networks at toy size: shapes, gradient flow, structure, init and the registry."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from raylab.errors import ConfigError
from raylab.models import (DISPLAY_NAMES, MODEL_NAMES, build_model, model_class, model_defaults)
from raylab.models.presets import SMALL_CNN

CNN = dict(conv1_filters=4, conv1_kernel=16, pool1=2, conv2_filters=5, conv2_kernel=5, pool2=4,
           conv3_filters=6, conv3_kernel=3, pool3=4)
HEAD = dict(hidden1=12, hidden2=8, dropout=0.2)
TOY = {
    "elor": dict(input_samples=2000, **CNN, **HEAD),
    "lom": dict(mfcc_channels=26, mfcc_frames=120, **{**CNN, "conv1_kernel": 5, "pool2": 2, "pool3": 2}, **HEAD),
    "ftr": dict(num_features=40, **HEAD),
    "elor_ftr": dict(input_samples=2000, num_features=40, **CNN, **HEAD),
}
SHAPES = {"waveform": lambda c: (c["input_samples"],), "mfcc": lambda c: (c["mfcc_channels"], c["mfcc_frames"]),
          "is10": lambda c: (c["num_features"],)}


def toy_inputs(model: nn.Module, batch: int = 3, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, *SHAPES[name](model.config), generator=g) * (0.3 if name == "waveform" else 1)
            for name in model.inputs]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # toy tensors: thread start-up costs more than it saves
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_shapes_inputs_and_config(name):
    torch.manual_seed(0)
    model = build_model(name, **TOY[name])
    out = model(*toy_inputs(model))
    assert set(out) == {"valence", "arousal"}
    assert all(v.shape == (3, 5) for v in out.values())
    assert isinstance(model.heads, nn.ModuleDict) and set(model.heads) == {"valence", "arousal"}
    assert model.config == {**model_defaults(name), **TOY[name]}
    rebuilt = type(model)(**model.config)
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in model.parameters()]


def test_declared_inputs_follow_the_contract():
    assert {n: model_class(n).inputs for n in MODEL_NAMES} == {
        "elor": ("waveform",), "lom": ("mfcc",), "ftr": ("is10",), "elor_ftr": ("waveform", "is10")}
    assert DISPLAY_NAMES == {"elor": "ELoR", "lom": "LoM", "ftr": "FTR", "elor_ftr": "ELoR+FTR"}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_gradients_reach_the_first_layer_from_each_head(name):
    torch.manual_seed(0)
    model = build_model(name, **TOY[name])
    first = model.trunk.blocks.block1.conv.weight if name != "ftr" else model.heads["valence"].fc1.weight
    for dim in ("valence", "arousal"):
        model.zero_grad()
        model(*toy_inputs(model))[dim].logsumexp(1).sum().backward()
        if name != "ftr":
            assert first.grad is not None and first.grad.abs().sum() > 0
        other = "arousal" if dim == "valence" else "valence"
        assert model.heads[dim].fc1.weight.grad.abs().sum() > 0
        assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.heads[other].parameters())


@pytest.mark.parametrize("name", ["elor", "lom", "elor_ftr"])
def test_cnn_blocks_are_conv_batchnorm_pool_relu_with_separate_relus(name):
    model = build_model(name, **TOY[name])
    for block in model.trunk.blocks:
        assert [type(m) for m in block][1:] == [nn.BatchNorm1d, nn.MaxPool1d, nn.ReLU]
        assert isinstance(block[0], nn.Conv1d)  # AutoConv1d by default, a Conv1d subclass
        assert block.conv.stride == (1,)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 3 and len({id(m) for m in relus}) == 3 and not any(m.inplace for m in relus)
    assert len(list(model.trunk_parameters())) == len(list(model.trunk.parameters())) > 0


def test_heads_are_two_sigmoid_layers_with_dropout_and_ftr_has_no_trunk():
    model = build_model("ftr", **TOY["ftr"])
    assert list(model.trunk_parameters()) == []
    head = model.heads["arousal"]
    assert [type(m) for m in head] == [nn.Dropout, nn.Linear, nn.Sigmoid, nn.Dropout, nn.Linear,
                                       nn.Sigmoid, nn.Dropout, nn.Linear]
    assert head.drop0.p == head.drop1.p == 0.2 and head.out.out_features == 5


def test_dropout_reaches_the_mlp_input():
    """Section 2.1.1, "dropout is utilized on each layer": in training about `dropout` of the
    1582 features reach the first linear layer as zeros, scaled by 1/(1-p); in eval none."""
    model = build_model("ftr", dropout=0.5)
    seen = []
    model.heads["valence"].fc1.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    x = torch.ones(8, 1582)
    model.train()(x)
    zeros = (seen[-1] == 0).float().mean().item()
    assert 0.4 < zeros < 0.6 and set(seen[-1].unique().tolist()) == {0.0, 2.0}
    model.eval()(x)
    assert torch.equal(seen[-1], x)


def test_init_is_he_for_convs_and_xavier_for_linears():
    torch.manual_seed(0)
    model = build_model("elor", input_samples=4000, conv1_filters=64, conv1_kernel=40, conv2_filters=64,
                        conv2_kernel=8, pool2=4, conv3_filters=8, conv3_kernel=4, pool3=4,
                        hidden1=200, hidden2=100)
    conv2 = model.trunk.blocks.block2.conv.weight
    assert conv2.std().item() == pytest.approx(math.sqrt(2 / (64 * 8)), rel=0.1)  # He: gain sqrt(2)/sqrt(fan_in)
    fc2 = model.heads["valence"].fc2.weight
    bound = math.sqrt(6 / (200 + 100))  # Glorot uniform
    assert fc2.abs().max().item() <= bound and fc2.abs().max().item() > 0.9 * bound
    assert all(m.bias.abs().sum() == 0 for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Linear)))


def test_other_window_lengths_change_the_flat_size():
    short = build_model("elor", **{**TOY["elor"], "input_samples": 1600})
    long = build_model("elor", **TOY["elor"])
    assert short.heads["valence"].fc1.in_features < long.heads["valence"].fc1.in_features
    assert short(torch.zeros(2, 1600))["arousal"].shape == (2, 5)


def test_small_elor_costs_two_to_three_gflop_per_window():
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model("elor", conv_impl="direct", **SMALL_CNN).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 96_000))
    assert 2e9 < counter.get_total_flops() < 3e9
    assert model.trunk.out_features == 40 * 478


def test_default_elor_is_paper_scale():
    """Counted on the meta device: the paper-scale network's direct convolution is ~560 GFLOP
    per window forward, conv2's 4000 taps nearly all of it (no arithmetic is run here)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build_model("elor", conv_impl="direct").eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, 96_000))
    assert 5.5e11 < counter.get_total_flops() < 5.8e11
    assert model.trunk.out_features == 40 * 218


def test_registry_errors_list_the_valid_names():
    with pytest.raises(ConfigError, match="unknown network 'resnet'; expected one of elor, lom, ftr, elor_ftr"):
        build_model("resnet")
    with pytest.raises(ConfigError, match="unknown argument.*conv9_filters"):
        build_model("elor", conv9_filters=3)
    with pytest.raises(ConfigError, match="conv1_kernel=5000, pool1=2: nothing left"):
        build_model("elor", input_samples=4000, conv1_kernel=5000)
    with pytest.raises(ConfigError, match="hidden1=0"):
        build_model("ftr", hidden1=0)
    with pytest.raises(ConfigError, match="dropout=1.5"):
        build_model("ftr", dropout=1.5)


@pytest.mark.parametrize("name", ["elor", "lom", "elor_ftr"])
def test_conv_impl_fft_is_the_same_network(name):
    from raylab.models.fftconv import FFTConv1d

    small = {"elor": dict(input_samples=800, **SMALL_CNN), "lom": dict(mfcc_frames=60),
             "elor_ftr": dict(input_samples=800, num_features=12, **SMALL_CNN)}[name]
    torch.manual_seed(0)
    direct = build_model(name, conv_impl="direct", **small).double().eval()
    assert all(type(m) is torch.nn.Conv1d for m in direct.modules()
               if isinstance(m, torch.nn.Conv1d))
    assert build_model(name, **small).config["conv_impl"] == "auto"   # the default
    torch.manual_seed(0)
    fft = build_model(name, conv_impl="fft", **small).double().eval()
    assert fft.config["conv_impl"] == "fft"
    assert all(isinstance(m, FFTConv1d) for m in fft.modules() if isinstance(m, torch.nn.Conv1d))
    fft.load_state_dict(direct.state_dict())          # same parameter names and shapes
    shapes = {"waveform": (2, small.get("input_samples", 0)), "mfcc": (2, 26, small.get("mfcc_frames", 0)),
              "is10": (2, small.get("num_features", 0))}
    xs = [torch.randn(*shapes[k], dtype=torch.float64) for k in direct.inputs]
    for dim in ("valence", "arousal"):
        torch.testing.assert_close(fft(*xs)[dim], direct(*xs)[dim])


def test_conv_impl_unknown_is_a_config_error():
    with pytest.raises(ConfigError, match="conv_impl='winograd'"):
        build_model("elor", input_samples=800, conv_impl="winograd")
