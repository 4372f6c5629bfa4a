"""Analytic FLOPs per window: a hand calculation for ELoR, and torch's own counter on toy nets."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from raylab import DIMENSIONS
from raylab.errors import ConfigError
from raylab.models import build_model, model_defaults
from raylab.models.flops import layer_report, mean_trial_flops, model_flops, trial_flops, window_flops
from raylab.models.presets import SMALL_CNN, preset_values
from raylab.search.space import default_space_file, load_search_space
from raylab.train.loop import ArraySet, fit
from raylab.train.params import TrainConfig

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


def test_elor_small_preset_by_hand():
    cfg = model_defaults("elor") | preset_values("elor", "small")
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
    assert f.params == sum(p.numel() for p in build_model("elor", **SMALL_CNN).parameters())
    # elementwise work (batch norm, pooling, ...) is a few per cent of the total
    assert 1.0 < f.forward / f.matmul_forward < 1.05
    assert 2.6 < f.train / f.forward < 3.0     # ≈ 3x, less conv1's grad-input
    assert [name for name, _ in layer_report("elor", cfg)][:3] == ["conv1", "conv2", "conv3"]


def test_paper_scale_elor_is_trigeorgis_by_hand():
    """The default ELoR is Trigeorgis et al.'s first two blocks (conv 40x80, pool 2, conv
    40x4000, pool 20) plus our third block: conv2 alone is 2·40·40·4000 FLOPs per output step."""
    cfg = model_defaults("elor")
    conv2 = 2 * 40 * 40 * 4000 * (47_960 - 4000 + 1)          # 43961 steps; pool 20 -> 2198
    rows = dict(layer_report("elor", cfg))
    assert rows["conv2"] == pytest.approx(conv2 / 1e9)
    assert build_model("elor", input_samples=96_000, conv_impl="fft").trunk.out_features \
        == 40 * ((2198 - 10 + 1) // 10)                         # 40 x 218
    # one trial of the first point (Table 1, 9 epochs, IEMOCAP-sized split) ≈ 195 PFLOP
    assert 190e15 < trial_flops("elor", {}) < 200e15
    assert trial_flops("elor", {"preset": "small"}) == pytest.approx(0.743e15, rel=0.01)


GTX1080_FP32_PEAK, PAPER_DAYS, PAPER_TRIALS = 8.9e12, 49, 70


@pytest.mark.parametrize("arch", ["elor", "elor_ftr"])
def test_search_space_costs_the_papers_budget(arch):
    """Section 3.3: 70 ELoR trials took 49 days on a GTX 1080. The search space's mean trial
    (uniform draws, IEMOCAP-sized split, its epochs range) at 20-60 % of that GPU's fp32 peak
    must bracket those 49 days, so a space that drifts back to toy sizes fails here."""
    space = load_search_space(default_space_file(arch), arch)
    mean = mean_trial_flops(space, samples=400)
    days = {u: PAPER_TRIALS * mean / (GTX1080_FP32_PEAK * u) / 86_400 for u in (0.2, 0.6)}
    assert days[0.6] <= PAPER_DAYS <= days[0.2], days
    # the demo budget holds a toy network fixed: thousands of times cheaper
    assert mean_trial_flops(space.for_demo(), samples=50) < mean / 1000


def test_presets():
    from raylab.train.params import split_params

    small, _ = split_params("elor", {"preset": "small", "conv3_kernel": 7})
    assert {k: small[k] for k in SMALL_CNN} == {**SMALL_CNN, "conv3_kernel": 7}  # explicit wins
    assert split_params("elor", {})[0]["conv2_kernel"] == 4000
    with pytest.raises(ConfigError, match=r"preset='huge': expected one of paper, small for elor"):
        split_params("elor", {"preset": "huge"})
    with pytest.raises(ConfigError, match=r"preset='small': expected one of paper for ftr"):
        split_params("ftr", {"preset": "small"})


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
