"""Analytic FLOPs per window of each network, from its constructor configuration.

So that a measured throughput reads as a fraction of a machine's peak (bench/). Conventions:
- one multiply-add = 2 FLOPs; conv and linear layers count their multiply-adds only (bias adds
  go with the elementwise work), which is what `torch.utils.flop_counter.FlopCounterMode` counts;
- backward of a conv/linear layer = grad-input + grad-weight = 2× its forward, except for the
  first layer, whose input (waveform, MFCC, IS10) needs no gradient (1×); so forward+backward
  ≈ 3× forward;
- convolutions count as direct convolutions whatever computes them (`conv_impl="fft"` does
  fewer arithmetic operations; its FLOP/s are then "direct-equivalent");
- elementwise work (bias, batch norm, max-pool, ReLU, sigmoid, dropout, loss) is counted with
  per-element conventions (`ELEMENTWISE`); it is a few per cent of the total for the CNNs;
- "alternate" updates (the paper's): per batch, two rounds of forward (trunk + both heads) and
  backward (trunk + the round's head), each followed by an SGD step; "joint": one of each.
"""
from __future__ import annotations

from dataclasses import dataclass

from raylab import DIMENSIONS, IS10_DIM, MFCC_SHAPE, NUM_CLASSES, PAPER_WINDOWS, WINDOW_SAMPLES
from raylab.errors import ConfigError

HEADS = len(DIMENSIONS)

# FLOPs per element: (forward in training, backward, forward in evaluation).
ELEMENTWISE = {
    "bias": (1, 1, 1),          # add; grad-bias is a sum
    "batchnorm": (7, 9, 2),     # mean 1, variance 2, normalise 2, affine 2; eval: fused scale+shift
    "maxpool": (1, 1, 1),       # one comparison per input element; backward scatters
    "relu": (1, 1, 1),
    "sigmoid": (4, 3, 4),       # exp, add, divide; backward s·(1-s)·g
    "dropout": (1, 1, 0),
    "loss": (5, 2, 0),          # log-softmax + NLL per logit
}
SGD_FLOPS_PER_PARAM = 8         # L2 grad 2, momentum 2, Nesterov 2, update 2


@dataclass(frozen=True)
class Layer:
    kind: str            # "conv", "linear" or an ELEMENTWISE key
    elements: int        # output elements (conv/linear) or elements processed (elementwise)
    macs: int = 0        # multiply-adds per window (conv/linear)
    params: int = 0
    first: bool = False  # its input needs no gradient


@dataclass(frozen=True)
class WindowFlops:
    """FLOPs per window; `train` includes the optimizer steps spread over the batch."""
    forward: float           # one training-mode forward, both heads
    train: float             # everything one training window costs in `update` mode
    evaluate: float          # eval-mode forward (validation / predict)
    matmul_forward: float    # conv + linear part of `forward` (what FlopCounterMode counts)
    matmul_train: float      # conv + linear part of `train`
    params: int


def _cnn(config: dict, in_channels: int, length: int) -> tuple[list[Layer], int]:
    """conv -> batchnorm -> max-pool -> ReLU, three times; returns the layers and the flat size."""
    layers, channels = [], in_channels
    for i in (1, 2, 3):
        filters, kernel, pool = (int(config[f"conv{i}_filters"]), int(config[f"conv{i}_kernel"]),
                                 int(config[f"pool{i}"]))
        out = length - kernel + 1       # stride 1, no padding (raylab.models.heads.ConvTrunk)
        if out < 1 or out // pool < 1:
            raise ConfigError(f"conv{i}: kernel {kernel} / pool {pool} leave no output from "
                              f"{length} steps")
        elems = filters * out
        layers += [Layer("conv", elems, elems * channels * kernel,
                         filters * channels * kernel + filters, first=i == 1),
                   Layer("bias", elems), Layer("batchnorm", elems, params=2 * filters),
                   Layer("maxpool", elems)]
        channels, length = filters, out // pool
        layers.append(Layer("relu", channels * length))
    return layers, channels * length


def _head(config: dict, features: int, first: bool) -> list[Layer]:
    """Dropout on the input, then Linear -> sigmoid -> dropout, twice, then Linear to 5 logits
    and the loss."""
    sizes = [features, int(config["hidden1"]), int(config["hidden2"]), NUM_CLASSES]
    layers = [Layer("dropout", features)]
    for j, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [Layer("linear", b, a * b, a * b + b, first=first and j == 0), Layer("bias", b)]
        if j < 2:
            layers += [Layer("sigmoid", b), Layer("dropout", b)]
    return layers + [Layer("loss", NUM_CLASSES)]


def network_layers(name: str, config: dict) -> tuple[list[Layer], list[Layer]]:
    """(trunk layers, one head's layers) per window for network `name` built with `config`."""
    if name == "elor":
        trunk, flat = _cnn(config, 1, int(config.get("input_samples", WINDOW_SAMPLES)))
        return trunk, _head(config, flat, first=False)
    if name == "lom":
        channels = int(config.get("mfcc_channels", MFCC_SHAPE[0]))
        trunk, flat = _cnn(config, channels, int(config.get("mfcc_frames", MFCC_SHAPE[1])))
        return trunk, _head(config, flat, first=False)
    if name == "ftr":
        return [], _head(config, int(config.get("num_features", IS10_DIM)), first=True)
    if name == "elor_ftr":
        trunk, flat = _cnn(config, 1, int(config.get("input_samples", WINDOW_SAMPLES)))
        # The head sees cat(CNN output, IS10): autograd computes grad-input for the whole of it.
        return trunk, _head(config, flat + int(config.get("num_features", IS10_DIM)), False)
    raise ConfigError(f"unknown network {name!r}; expected one of elor, lom, ftr, elor_ftr")


def _fwd(layers: list[Layer], evaluate: bool = False) -> float:
    col = 2 if evaluate else 0
    return sum(2 * l.macs if l.macs else ELEMENTWISE[l.kind][col] * l.elements for l in layers)


def _bwd(layers: list[Layer]) -> float:
    return sum((2 if l.first else 4) * l.macs if l.macs else ELEMENTWISE[l.kind][1] * l.elements
               for l in layers)


def _mm(layers: list[Layer], backward: bool = False) -> float:
    return sum(((2 if l.first else 4) if backward else 2) * l.macs for l in layers)


def window_flops(name: str, config: dict, update: str = "alternate",
                 batch_size: int = 15) -> WindowFlops:
    """FLOPs per window of one training step (`update` mode, `batch_size`) and of evaluation."""
    if update not in ("alternate", "joint"):
        raise ConfigError(f"update must be 'alternate' or 'joint', got {update!r}")
    trunk, head = network_layers(name, config)
    params_trunk = sum(l.params for l in trunk)
    params_head = sum(l.params for l in head)
    fwd = _fwd(trunk) + HEADS * _fwd(head)
    mm_fwd = _mm(trunk) + HEADS * _mm(head)
    if update == "joint":
        bwd = _bwd(trunk) + HEADS * (_bwd(head))
        mm_bwd = _mm(trunk, True) + HEADS * (_mm(head, True))
        opt = SGD_FLOPS_PER_PARAM * (params_trunk + HEADS * params_head) / batch_size
        train, mm_train = fwd + bwd + opt, mm_fwd + mm_bwd
    else:
        bwd = _bwd(trunk) + _bwd(head)
        mm_bwd = _mm(trunk, True) + _mm(head, True)
        opt = SGD_FLOPS_PER_PARAM * (params_trunk + params_head) / batch_size
        train, mm_train = HEADS * (fwd + bwd + opt), HEADS * (mm_fwd + mm_bwd)
    evaluate = _fwd(trunk, True) + HEADS * _fwd(head, True)
    return WindowFlops(forward=fwd, train=train, evaluate=evaluate, matmul_forward=mm_fwd,
                       matmul_train=mm_train, params=params_trunk + HEADS * params_head)


def layer_report(name: str, config: dict) -> list[tuple[str, float]]:
    """(layer, forward GFLOPs per window) rows for documentation tables."""
    trunk, head = network_layers(name, config)
    rows, conv = [], 0
    for l in trunk:
        if l.kind == "conv":
            conv += 1
            rows.append((f"conv{conv}", 2 * l.macs / 1e9))
    rows.append(("heads (2x linear)", HEADS * _mm(head) / 1e9))
    rows.append(("elementwise (train fwd)", (_fwd(trunk) - _mm(trunk)
                                            + HEADS * (_fwd(head) - _mm(head))) / 1e9))
    return rows


def model_flops(model, update: str = "alternate", batch_size: int = 15) -> WindowFlops:
    """`window_flops` of a built network (its registry name is found from its class)."""
    from raylab.models import MODELS

    net = getattr(model, "module", model)
    names = [n for n, cls in MODELS.items() if type(net) is cls]
    if not names:
        raise ConfigError(f"{type(net).__name__} is not one of the registered networks")
    return window_flops(names[0], net.config, update, batch_size)


# One search trial at IEMOCAP scale (the paper's E2 windows, one test speaker held out, the rest
# split 80/20): 8522 windows, ~852 held out, 6136 training and 1534 validation windows.
IEMOCAP_WINDOWS, IEMOCAP_TEST_WINDOWS, VAL_FRACTION = PAPER_WINDOWS, 852, 0.2
IEMOCAP_TRAIN = round((IEMOCAP_WINDOWS - IEMOCAP_TEST_WINDOWS) * (1 - VAL_FRACTION))   # 6136
IEMOCAP_VAL = IEMOCAP_WINDOWS - IEMOCAP_TEST_WINDOWS - IEMOCAP_TRAIN                     # 1534


def trial_flops(name: str, params: dict, train_windows: int = IEMOCAP_TRAIN,
                val_windows: int = IEMOCAP_VAL) -> float:
    """FLOPs of one search trial (direct-convolution count): `epochs` × (a training pass in
    `update` mode + a validation pass). `params` is a flat parameter dict (`split_params`)."""
    from raylab.train.params import split_params

    model, cfg = split_params(name, params)
    f = window_flops(name, model, cfg.update, cfg.batch_size)
    return cfg.epochs * (train_windows * f.train + val_windows * f.evaluate)


def mean_trial_flops(space, samples: int = 2000, seed: int = 0, **windows: int) -> float:
    """Mean `trial_flops` over points drawn from search space `space` as TPE draws its initial
    points (`SearchSpace.draw`); points whose pools leave no output are skipped (such a trial
    fails at once). Monte Carlo with a fixed seed, so the figure is reproducible."""
    import numpy as np

    rng = np.random.default_rng(seed)
    costs: list[float] = []
    while len(costs) < samples:
        try:
            costs.append(trial_flops(space.arch, space.draw(rng), **windows))
        except ConfigError:
            continue
    return float(np.mean(costs))
