"""FFTConv1d is nn.Conv1d computed another way: same outputs, gradients, parameters, state dict."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from raylab.errors import ConfigError
from raylab.models import fftconv
from raylab.models.fftconv import (AutoConv1d, FFTConv1d, block_length, direct_conv_flops,
                            fast_fft_length, fft_conv1d, fft_conv_flops, make_conv1d,
                            swap_long_convs)


@pytest.mark.parametrize("cin,cout,kernel,length,padding,block", [
    (1, 8, 80, 1000, 0, None),     # ELoR's first layer, shortened: one block
    (1, 8, 80, 1000, 0, 128),      # ... in 21 overlap-save blocks
    (4, 6, 10, 257, 0, None),      # ELoR's second/third layer shape
    (4, 6, 10, 257, 0, 16),        # blocks barely longer than the kernel
    (3, 5, 400, 1201, 0, None),    # a long Trigeorgis-style kernel
    (3, 5, 400, 1201, 0, 1000),    # ... in blocks that do not divide the output
    (2, 3, 1, 17, 0, None),        # kernel 1
    (2, 3, 33, 33, 0, None),       # kernel as long as the input: one output
    (3, 4, 7, 50, 5, 20),          # zero padding
])
def test_matches_conv1d_outputs_and_gradients(cin, cout, kernel, length, padding, block):
    torch.manual_seed(0)
    direct = nn.Conv1d(cin, cout, kernel, padding=padding).double()
    fft = FFTConv1d.from_conv(direct)
    fft.block = block
    x1 = torch.randn(3, cin, length, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = direct(x1), fft(x2)
    assert y1.shape == y2.shape
    torch.testing.assert_close(y2, y1, rtol=1e-9, atol=1e-9)
    g = torch.randn_like(y1)
    grads1 = torch.autograd.grad(y1, (x1, direct.weight, direct.bias), g)
    grads2 = torch.autograd.grad(y2, (x2, fft.weight, fft.bias), g)
    for a, b in zip(grads2, grads1):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("cin,kernel,length", [(1, 80, 96_000), (8, 10, 9_600)])
def test_float32_tolerance_on_long_inputs(cin, kernel, length):
    torch.manual_seed(1)
    conv = nn.Conv1d(cin, 4, kernel)
    x = torch.rand(2, cin, length) * 2 - 1
    torch.testing.assert_close(fft_conv1d(x, conv.weight, conv.bias), conv(x),
                               rtol=1e-4, atol=2e-5)


def test_from_conv_shares_parameters_and_state_dict():
    conv = nn.Conv1d(2, 3, 9, bias=False)
    fft = FFTConv1d.from_conv(conv)
    assert fft.weight is conv.weight and fft.bias is None
    assert fft.state_dict().keys() == conv.state_dict().keys()
    fresh = FFTConv1d(2, 3, 9, bias=False)
    fresh.load_state_dict(conv.state_dict())
    torch.testing.assert_close(fresh.weight, conv.weight)


def test_swap_long_convs_in_place_keeps_training_identical():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv1d(1, 4, 40), nn.ReLU(), nn.Conv1d(4, 4, 3)).double()
    twin = copy.deepcopy(net)
    swapped = swap_long_convs(net, min_kernel=20)
    assert swapped == ["0"] and isinstance(net[0], FFTConv1d) and type(net[2]) is nn.Conv1d
    x = torch.randn(2, 1, 300, dtype=torch.float64)
    for model in (net, twin):
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5, nesterov=True)
        for _ in range(3):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for a, b in zip(net.state_dict().values(), twin.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_autocast_bf16_runs_in_float32():
    conv = FFTConv1d(1, 2, 16)
    x = torch.randn(1, 1, 100)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, nn.functional.conv1d(x, conv.weight, conv.bias),
                               rtol=1e-4, atol=1e-5)


def test_rejections():
    with pytest.raises(ConfigError, match="stride 1"):
        FFTConv1d.from_conv(nn.Conv1d(1, 1, 3, stride=2))
    with pytest.raises(ConfigError, match="conv_impl must be one of direct, fft, auto"):
        make_conv1d(1, 1, 3, impl="winograd")
    with pytest.raises(ValueError, match="shorter than the kernel"):
        fft_conv1d(torch.randn(1, 1, 5), torch.randn(1, 1, 6))
    with pytest.raises(ValueError, match="block 4 is shorter than the kernel 6"):
        fft_conv1d(torch.randn(1, 1, 50), torch.randn(1, 1, 6), block=4)
    assert isinstance(make_conv1d(1, 1, 3, impl="fft"), FFTConv1d)
    assert type(make_conv1d(1, 1, 3)) is nn.Conv1d
    assert isinstance(make_conv1d(1, 1, 3, impl="auto"), AutoConv1d)


@pytest.mark.parametrize("n,expected", [(1, 1), (7, 8), (96_000, 96_000), (47_960, 48_000),
                                        (1001, 1024), (97, 100)])
def test_fast_fft_length(n, expected):
    assert fast_fft_length(n) == expected


def test_block_length_rule():
    assert block_length(400, 96_000, in_channels=1) == 3200      # ~8 kernels for one channel
    assert block_length(1000, 48_000, in_channels=40) == 4000    # ~4 kernels for several
    assert block_length(4000, 47_960, in_channels=40) == 16_000  # paper-scale conv2
    assert block_length(10, 48_000, in_channels=40) == 1024      # never below 1024
    assert block_length(80, 500) == 500                          # never beyond the input


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_matches_cudnn_on_gpu_with_bf16_autocast():
    torch.manual_seed(3)
    conv = nn.Conv1d(4, 8, 400).cuda()
    fft = FFTConv1d.from_conv(conv)
    x = torch.randn(2, 4, 4000, device="cuda")
    torch.testing.assert_close(fft(x), conv(x), rtol=1e-3, atol=1e-3)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = fft(x)
    assert y.dtype == torch.float32


@pytest.fixture
def fake_timings(monkeypatch):
    """Autotuning with set timings: {algorithm: seconds}; records which algorithms were timed."""
    monkeypatch.setattr(fftconv, "_CHOICES", {})
    timed, seconds = [], {}
    real_conv, real_fft = nn.Conv1d._conv_forward, fftconv.fft_conv1d

    def fake_seconds(fn, device):
        fn()
        return seconds[timed[-1]]

    def conv(self, *args):
        timed.append("direct")
        return real_conv(self, *args)

    def fft(*args, **kwargs):
        timed.append("fft")
        return real_fft(*args, **kwargs)

    monkeypatch.setattr(fftconv, "_seconds", fake_seconds)
    monkeypatch.setattr(nn.Conv1d, "_conv_forward", conv)
    monkeypatch.setattr(fftconv, "fft_conv1d", fft)
    return timed, seconds


def test_auto_keeps_the_faster_algorithm_per_signature(fake_timings):
    timed, seconds = fake_timings
    torch.manual_seed(4)
    auto = AutoConv1d(3, 4, 25).double()
    x = torch.randn(2, 3, 300, dtype=torch.float64, requires_grad=True)
    seconds.update(direct=2.0, fft=1.0)
    y = auto(x)                                   # times both (with backward), then runs fft
    assert timed == ["direct", "fft", "fft"]
    assert auto.weight.grad is None and x.grad is None   # the timing runs left no gradients
    key = ("cpu", torch.float64, (2, 3, 300), (4, 3, 25), 0, None, (True, True), None)
    assert fftconv.conv_choices() == {key: "fft"}
    auto(x)                                       # the same signature: no timing again
    assert timed[3:] == ["fft"]
    seconds.update(direct=1.0, fft=0.95)          # FFT not clearly faster: direct
    with torch.no_grad():
        auto(x)                                   # a forward-only signature is its own choice
    assert timed[4:] == ["direct", "fft", "direct"]
    assert fftconv.conv_choices()[key[:6] + ((False, False), None)] == "direct"
    g = torch.randn_like(y)
    direct = nn.Conv1d(3, 4, 25).double()
    direct.load_state_dict(auto.state_dict())
    x2 = x.detach().clone().requires_grad_(True)
    torch.testing.assert_close(y, direct(x2), rtol=1e-9, atol=1e-9)
    grads = torch.autograd.grad(y, (x, auto.weight, auto.bias), g)
    for a, b in zip(grads, torch.autograd.grad(direct(x2), (x2, direct.weight, direct.bias), g)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_auto_falls_back_to_direct_when_the_fft_runs_out_of_memory(fake_timings, monkeypatch):
    timed, seconds = fake_timings
    seconds.update(direct=2.0, fft=1.0)

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("FFT workspace")

    monkeypatch.setattr(fftconv, "fft_conv1d", no_memory)
    auto = AutoConv1d(2, 3, 9)
    x = torch.randn(1, 2, 50)
    torch.testing.assert_close(auto(x), nn.functional.conv1d(x, auto.weight, auto.bias))
    assert list(fftconv.conv_choices().values()) == ["direct"]


def test_auto_with_real_timings_computes_the_same_convolution(monkeypatch):
    monkeypatch.setattr(fftconv, "_CHOICES", {})
    torch.manual_seed(5)
    auto = AutoConv1d(2, 3, 40)
    direct = nn.Conv1d(2, 3, 40)
    direct.load_state_dict(auto.state_dict())
    x = torch.rand(2, 2, 2000) * 2 - 1
    torch.testing.assert_close(auto(x), direct(x), rtol=1e-4, atol=2e-5)
    assert set(fftconv.conv_choices().values()) <= {"direct", "fft"}


def test_torch_fft_path_matches_conv1d(monkeypatch):
    """Without scipy (and on GPUs) the transforms are torch.fft's: the same results."""
    monkeypatch.setattr(fftconv, "_scipy_fft", None)
    test_matches_conv1d_outputs_and_gradients(3, 5, 400, 1201, 0, 1000)
    test_matches_conv1d_outputs_and_gradients(4, 6, 10, 257, 0, 16)


def test_fft_conv_flops_by_hand():
    # n = 16 000, step 12 001, 4 blocks, 8001 bins; t = 2.5·n·log2(n) per transform.
    t = 2.5 * 16_000 * math.log2(16_000)
    mix = 8 * 8001 * 15 * 4 * 40 * 40
    forward = (15 * 4 * 80 + 1600) * t + mix
    assert fft_conv_flops(15, 40, 40, 47_960, 4000) == pytest.approx(
        forward + 15 * 4 * 40 * t + (mix + 15 * 4 * 40 * t) + (mix + 1600 * t))
    assert fft_conv_flops(15, 40, 40, 47_960, 4000, backward=False) == pytest.approx(forward)
    assert fft_conv_flops(15, 40, 40, 47_960, 4000, grads=(False, True)) == pytest.approx(
        forward + 15 * 4 * 40 * t + mix + 1600 * t)
    # one input channel: a complex product (6 FLOPs) per output bin
    assert fft_conv_flops(1, 1, 2, 100, 10, block=100, backward=False) == pytest.approx(
        (1 * 1 * 3 + 2) * 2.5 * 100 * math.log2(100) + 6 * 51 * 2)
    direct = 2 * 15 * 40 * 40 * 4000 * 43_961
    assert direct_conv_flops(15, 40, 40, 47_960, 4000) == direct * 3
    assert direct_conv_flops(15, 40, 40, 47_960, 4000, grads=(False, True)) == direct * 2
    assert direct_conv_flops(15, 40, 40, 47_960, 4000, backward=False) == direct
    assert direct / fft_conv_flops(15, 40, 40, 47_960, 4000, backward=False) > 100


@pytest.mark.parametrize("ratio,expected", [(1e3, "fft"), (0.1, "direct")])
def test_auto_decides_by_flops_without_timing(fake_timings, monkeypatch, ratio, expected):
    timed, seconds = fake_timings
    monkeypatch.setattr(fftconv, "direct_conv_flops", lambda *a, **k: ratio)
    monkeypatch.setattr(fftconv, "fft_conv_flops", lambda *a, **k: 1.0)
    auto = AutoConv1d(2, 3, 9)
    x = torch.randn(1, 2, 50, requires_grad=True)
    y = auto(x)
    assert timed == [expected]                    # the call itself, no timing runs
    assert list(fftconv.conv_choices().values()) == [expected]
    torch.testing.assert_close(y, nn.functional.conv1d(x, auto.weight, auto.bias),
                               rtol=1e-4, atol=1e-5)


def test_auto_never_runs_the_direct_convolution_at_paper_scale(monkeypatch):
    """conv2 of the paper-scale ELoR (40 -> 40, K 4000): direct costs ~300x the FFT route's
    FLOPs, so the choice must not time it (minutes of CPU per signature)."""
    monkeypatch.setattr(fftconv, "_CHOICES", {})

    def refuse(*args, **kwargs):
        raise AssertionError("direct convolution called at K=4000")

    monkeypatch.setattr(nn.Conv1d, "_conv_forward", refuse)
    monkeypatch.setattr(nn.functional, "conv1d", refuse)
    monkeypatch.setattr(torch, "conv1d", refuse)
    torch.manual_seed(6)
    auto = AutoConv1d(40, 40, 4000)
    x = torch.randn(1, 40, 47_960, requires_grad=True)
    y = auto(x)
    y.sum().backward()
    assert y.shape == (1, 40, 43_961) and x.grad.shape == x.shape
    assert list(fftconv.conv_choices().values()) == ["fft"]
