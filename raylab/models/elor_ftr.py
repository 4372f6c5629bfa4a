"""ELoR+FTR: the ELoR CNN's flat output concatenated with the IS10 functionals (section 2.2.3).

Same CNN and head defaults (the paper-scale, Trigeorgis-centred CNN) and presets as ELoR (see
`raylab.models.elor`); the heads see 8 720 + 1582 inputs.
"""
from __future__ import annotations

import torch

from raylab import IS10_DIM, WINDOW_SAMPLES
from raylab.models.heads import ConvTrunk, TwoHeadNet, as_channels, check_positive, make_heads


class ELoRFTR(TwoHeadNet):
    """(waveform (B, input_samples), is10 (B, num_features)) -> {dim: (B, 5) logits}."""

    inputs = ("waveform", "is10")

    def __init__(self, input_samples: int = WINDOW_SAMPLES, num_features: int = IS10_DIM,
                 conv1_filters: int = 40, conv1_kernel: int = 80, pool1: int = 2,
                 conv2_filters: int = 40, conv2_kernel: int = 4000, pool2: int = 20,
                 conv3_filters: int = 40, conv3_kernel: int = 10, pool3: int = 10,
                 hidden1: int = 128, hidden2: int = 64, dropout: float = 0.3,
                 conv_impl: str = "auto") -> None:
        super().__init__()
        self._record_config(locals())
        check_positive(input_samples=input_samples, num_features=num_features)
        self.trunk = ConvTrunk(1, input_samples, (conv1_filters, conv2_filters, conv3_filters),
                               (conv1_kernel, conv2_kernel, conv3_kernel), (pool1, pool2, pool3),
                               conv_impl)
        self.heads = make_heads(self.trunk.out_features + num_features, hidden1, hidden2, dropout)

    def features(self, waveform: torch.Tensor, is10: torch.Tensor) -> torch.Tensor:
        learned = self.trunk(as_channels(waveform))  # (B, C*L)
        return torch.cat([learned, is10.to(learned.dtype)], dim=1)  # (B, C*L + 1582)
