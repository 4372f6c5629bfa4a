"""Analytic FLOPs per window: a hand calculation for ELoR, and torch's own counter on toy nets."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from raylab import DIMENSIONS
from raylab.errors import ConfigError
from raylab.flops import layer_report, model_flops, window_flops
from raylab.models import build_model, model_defaults
from raylab.training import ArraySet, TrainConfig, fit

TOY = {
    "elor": dict(input_samples=400, conv1_filters=3, conv1_kernel=8, pool1=2, conv2_filters=4,
                 conv2_kernel=5, pool2=3, conv3_filters=2, conv3_kernel=3, pool3=2,
                 hidden1=6, hidden2=5),
    "lom": dict(mfcc_channels=4, mfcc_frames=50, conv1_filters=3, conv1_kernel=3, pool1=2,
                conv2_filters=3, conv2_kernel=3, pool2=2, conv3_filters=2, conv3_kernel=2,
                pool3=2, hidden1=6, hidden2=5),
    "ftr": dict(num_features=20, hidden1=6, hidden2=5),
    "elor_ftr": dict(input_samples=400, num_features=20, conv1_filters=3, conv1_kernel=8,
                     pool1=2, conv2_filters=4, conv2_kernel=5, pool2=3, conv3_filters=2,
                     conv3_kernel=3, pool3=2, hidden1=6, hidden2=5),
}


def test_elor_reference_configuration_by_hand():
    cfg = model_defaults("elor")
    # conv1: 2·40·1·80 FLOPs per output step, 96000-80+1 = 95921 steps; pool 2 -> 47960
    conv1 = 2 * 40 * 1 * 80 * 95_921
    # conv2: 40->40, kernel 10, 47960-10+1 = 47951 steps; pool 10 -> 4795
    conv2 = 2 * 40 * 40 * 10 * 47_951
    # conv3: 4795-10+1 = 4786 steps; pool 10 -> 478; flat 40·478 = 19120
    conv3 = 2 * 40 * 40 * 10 * 4_786
    heads = 2 * 2 * (19_120 * 128 + 128 * 64 + 64 * 5)
    f = window_flops("elor", cfg, "joint", batch_size=15)
    assert f.matmul_forward == conv1 + conv2 + conv3 + heads == 2_311_301_888
    # backward: conv1 needs no grad-input (the waveform), every other layer needs both grads
    assert f.matmul_train == 2 * conv1 + 3 * (conv2 + conv3 + heads) == 6_320_011_264
    alt = window_flops("elor", cfg, "alternate", batch_size=15)
    # per batch, twice: forward through trunk and both heads, backward through trunk + one head
    one_head = heads // 2
    assert alt.matmul_train == 2 * ((conv1 + conv2 + conv3 + heads)
                                    + (conv1 + 2 * (conv2 + conv3) + 2 * one_head))
    assert f.params == sum(p.numel() for p in build_model("elor").parameters())
    # elementwise work (batch norm, pooling, ...) is a few per cent of the total
    assert 1.0 < f.forward / f.matmul_forward < 1.05
    assert 2.6 < f.train / f.forward < 3.0     # ≈ 3x, less conv1's grad-input
    assert [name for name, _ in layer_report("elor", cfg)][:3] == ["conv1", "conv2", "conv3"]


def _arrays(name: str, model, n: int) -> ArraySet:
    rng = np.random.default_rng(0)
    shapes = {"waveform": (model.config.get("input_samples", 0),),
              "mfcc": (model.config.get("mfcc_channels", 0), model.config.get("mfcc_frames", 0)),
              "is10": (model.config.get("num_features", 0),)}
    inputs = {k: rng.standard_normal((n, *shapes[k])).astype(np.float32) for k in model.inputs}
    targets = {d: rng.integers(0, 5, n) for d in DIMENSIONS}
    return ArraySet(inputs, targets, np.arange(n))


@pytest.mark.parametrize("update", ["alternate", "joint"])
@pytest.mark.parametrize("name", list(TOY))
def test_matches_flop_counter_on_one_real_training_step(name, update):
    torch.manual_seed(0)
    # the direct algorithm: the counter would also count conv_impl="auto"'s timing runs
    direct = {"conv_impl": "direct"} if "conv_impl" in model_defaults(name) else {}
    model = build_model(name, **TOY[name], **direct)
    batch = 3
    data = _arrays(name, model, batch)
    with FlopCounterMode(display=False) as counter:
        fit(model, data, None, TrainConfig(batch_size=batch, epochs=1, update=update))
    counted = counter.get_total_flops()
    assert counted == model_flops(model, update, batch).matmul_train * batch
    xs = [torch.from_numpy(data.inputs[k]) for k in model.inputs]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(*xs)
    assert counter.get_total_flops() == model_flops(model).matmul_forward * batch


def test_errors_name_the_rule():
    with pytest.raises(ConfigError, match="unknown network 'cnn'"):
        window_flops("cnn", {})
    with pytest.raises(ConfigError, match="update must be"):
        window_flops("ftr", TOY["ftr"], update="both")
    with pytest.raises(ConfigError, match="conv1: kernel 500"):
        window_flops("elor", {**TOY["elor"], "conv1_kernel": 500})
