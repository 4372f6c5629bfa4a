"""The four networks of the paper, built by name: `build_model("elor", conv1_filters=32)`.

Every network takes its inputs positionally in the order of its `inputs` attribute and returns
`{"valence": logits (B, 5), "arousal": logits (B, 5)}`; `config` holds its constructor arguments
(see docs/architecture.md).
"""
from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from raylab.errors import ConfigError
from raylab.models.elor import ELoR
from raylab.models.elor_ftr import ELoRFTR
from raylab.models.ftr import FTR
from raylab.models.heads import CNN_KEYS, HEAD_KEYS, TwoHeadNet
from raylab.models.lom import LoM

MODELS: dict[str, type[TwoHeadNet]] = {"elor": ELoR, "lom": LoM, "ftr": FTR, "elor_ftr": ELoRFTR}
MODEL_NAMES = tuple(MODELS)
DISPLAY_NAMES = {"elor": "ELoR", "lom": "LoM", "ftr": "FTR", "elor_ftr": "ELoR+FTR"}
# Constructor arguments fixed by the data (window length, MFCC shape, feature count), not searched.
SHAPE_KEYS = ("input_samples", "mfcc_channels", "mfcc_frames", "num_features")

__all__ = ["MODELS", "MODEL_NAMES", "DISPLAY_NAMES", "SHAPE_KEYS", "CNN_KEYS", "HEAD_KEYS",
           "build_model", "model_class", "model_defaults"]


def model_class(name: str) -> type[TwoHeadNet]:
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown network {name!r}; expected one of {', '.join(MODEL_NAMES)}") from None


def model_defaults(name: str) -> dict[str, Any]:
    """Constructor arguments of network `name` with their default values."""
    params = inspect.signature(model_class(name).__init__).parameters
    return {key: p.default for key, p in params.items() if key != "self"}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Network `name` built with `kwargs` over its defaults; unknown arguments are a ConfigError."""
    defaults = model_defaults(name)
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise ConfigError(f"{name}: unknown argument(s) {', '.join(unknown)}; "
                          f"expected some of {', '.join(defaults)}")
    return model_class(name)(**kwargs)
