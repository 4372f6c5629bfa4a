"""The parts every network shares: the 1-D CNN trunk, the two classification heads, the init.

Section 2.1.1 of the paper: each CNN block is a 1-D convolution (stride 1) whose output is batch
normalised, max-pooled and passed through a ReLU (He et al. init); each emotional dimension has its
own MLP of two sigmoid hidden layers with dropout (Glorot/Xavier init) and 5 outputs. The softmax of
eq. (2) is left to the loss and to `raylab.train.loop.predict`, so `forward` returns logits.
"""
from __future__ import annotations

import inspect
from collections import OrderedDict
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from raylab import DIMENSIONS, NUM_CLASSES
from raylab.errors import ConfigError
from raylab.limits import limit_error
from raylab.models.fftconv import CONV_IMPLS, make_conv1d

CNN_KEYS = ("conv1_filters", "conv1_kernel", "pool1", "conv2_filters", "conv2_kernel", "pool2",
            "conv3_filters", "conv3_kernel", "pool3")
HEAD_KEYS = ("hidden1", "hidden2", "dropout")


def he_init(module: nn.Module) -> None:
    """He et al. (2015) normal init of every conv weight (fan-in, ReLU gain); zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv1d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def xavier_init(module: nn.Module) -> None:
    """Glorot & Bengio (2010) normalised (uniform) init of every linear weight; zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def check_positive(**values: Any) -> None:
    """Architecture numbers must be positive integers (a `ConfigError` naming the key otherwise)."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}={value!r}: expected a positive integer")
        message = limit_error(key, value) or (None if value >= 1 else
                                              f"{key} must be at least 1, found {value}")
        if message:
            raise ConfigError(f"{key}={value!r}: {message}")


def check_dropout(dropout: Any) -> None:
    """A probability in [0, 1), by the table of limits."""
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
        raise ConfigError(f"dropout={dropout!r}: expected a probability in [0, 1)")
    message = limit_error("dropout", dropout)
    if message:
        raise ConfigError(f"dropout={dropout!r}: {message}")


class ConvTrunk(nn.Module):
    """Three blocks conv1d (stride 1, no padding) -> batch norm -> max-pool -> ReLU, flattened.

    The length after each block is (length - kernel + 1) // pool; `out_features` is the flat size,
    computed here so that any input length works. `conv_impl` says how the convolutions are
    computed, with the same parameters and state dict: "auto" (default) times the direct and the
    FFT algorithm per layer on the first batch and keeps the faster (`raylab.models.fftconv.AutoConv1d`),
    "direct" always uses `nn.Conv1d` (bit-for-bit repeatable), "fft" always the FFT.
    """

    def __init__(self, in_channels: int, length: int, filters: Sequence[int],
                 kernels: Sequence[int], pools: Sequence[int], conv_impl: str = "auto") -> None:
        super().__init__()
        if conv_impl not in CONV_IMPLS:
            raise ConfigError(f"conv_impl={conv_impl!r}: expected one of {', '.join(CONV_IMPLS)}")
        blocks, channels = OrderedDict(), in_channels
        for i, (f, k, p) in enumerate(zip(filters, kernels, pools), start=1):
            check_positive(**{f"conv{i}_filters": f, f"conv{i}_kernel": k, f"pool{i}": p})
            if length - k + 1 < p:
                raise ConfigError(f"conv{i}_kernel={k}, pool{i}={p}: nothing left of the {length} "
                                  f"steps that reach block {i}; use smaller kernels or pools")
            blocks[f"block{i}"] = nn.Sequential(OrderedDict(
                conv=make_conv1d(channels, f, k, impl=conv_impl), norm=nn.BatchNorm1d(f),
                pool=nn.MaxPool1d(p), relu=nn.ReLU()))
            channels, length = f, (length - k + 1) // p
        self.blocks = nn.Sequential(blocks)
        self.out_channels, self.out_length = channels, length
        self.out_features = channels * length
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).flatten(1)  # (B, C, L) -> (B, C*L)


class Head(nn.Sequential):
    """One dimension's MLP: dropout on its input, then two sigmoid hidden layers, each followed
    by dropout, then 5 logits. "Dropout is utilized on each layer" (section 2.1.1): the input
    layer too, so FTR's 1582 features and the CNN's flat output are dropped as the paper says."""

    def __init__(self, in_features: int, hidden1: int, hidden2: int, dropout: float) -> None:
        super().__init__(OrderedDict(
            drop0=nn.Dropout(dropout),
            fc1=nn.Linear(in_features, hidden1), act1=nn.Sigmoid(), drop1=nn.Dropout(dropout),
            fc2=nn.Linear(hidden1, hidden2), act2=nn.Sigmoid(), drop2=nn.Dropout(dropout),
            out=nn.Linear(hidden2, NUM_CLASSES)))
        xavier_init(self)


def make_heads(in_features: int, hidden1: int, hidden2: int, dropout: float) -> nn.ModuleDict:
    """A separate head per emotional dimension (valence, arousal), as the paper's Fig. 2."""
    check_positive(hidden1=hidden1, hidden2=hidden2)
    check_dropout(dropout)
    return nn.ModuleDict({dim: Head(in_features, hidden1, hidden2, dropout) for dim in DIMENSIONS})


class TwoHeadNet(nn.Module):
    """Base of the four networks: `features(*inputs)` -> (B, F) goes to both heads.

    `inputs` names what `forward` takes; `config` holds the constructor arguments so that
    `type(model)(**model.config)` rebuilds the network; `trunk_parameters()` is the shared part.
    """

    inputs: tuple[str, ...] = ()
    heads: nn.ModuleDict

    def _record_config(self, arguments: dict[str, Any]) -> None:
        names = inspect.signature(type(self).__init__).parameters
        self.config = {name: arguments[name] for name in names if name != "self"}

    def features(self, *inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.features(*inputs)
        return {dim: head(z) for dim, head in self.heads.items()}  # {dim: (B, 5) logits}

    def trunk_parameters(self) -> Iterator[nn.Parameter]:
        trunk = getattr(self, "trunk", None)
        return iter(()) if trunk is None else trunk.parameters()


def as_channels(x: torch.Tensor) -> torch.Tensor:
    """(B, T) waveforms -> (B, 1, T); (B, 1, T) passes through."""
    return x.unsqueeze(1) if x.dim() == 2 else x
