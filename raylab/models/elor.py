"""ELoR: end-to-end learning on the raw waveform (section 2.1, Fig. 2).

The paper's Figure 2 numbers are not in its text, so the defaults are documented assumptions:
- block 1 follows Trigeorgis et al. (2016), whose search space the paper centred on: 40 filters of
  80 samples (5 ms at 16 kHz), max-pool 2;
- blocks 2 and 3: 40 filters of 10 samples, max-pool 10 each. Chosen so that one 6 s window
  (96 000 samples) costs about 2.3 GFLOP forward (conv1 0.61, conv2 1.53, conv3 0.15 GFLOP, one
  multiply-add = 2 FLOP), a cost that lets a 70-trial search run on one GPU, and so that the
  receptive field of a block-3 unit is 0.1 s, long enough for syllable-rate prosody;
- the CNN output is 40 x 478 = 19 120 values; heads 128 and 64 sigmoid units, dropout 0.3
  (about 4.9 M parameters, nearly all in the first layer of each head).
The search spaces (search_spaces/elor.yaml) cover these values.
"""
from __future__ import annotations

import torch

from raylab.models.heads import ConvTrunk, TwoHeadNet, as_channels, check_positive, make_heads


class ELoR(TwoHeadNet):
    """Raw waveform (B, input_samples) in [-1, 1] -> {"valence", "arousal"}: (B, 5) logits."""

    inputs = ("waveform",)

    def __init__(self, input_samples: int = 96_000,
                 conv1_filters: int = 40, conv1_kernel: int = 80, pool1: int = 2,
                 conv2_filters: int = 40, conv2_kernel: int = 10, pool2: int = 10,
                 conv3_filters: int = 40, conv3_kernel: int = 10, pool3: int = 10,
                 hidden1: int = 128, hidden2: int = 64, dropout: float = 0.3,
                 conv_impl: str = "auto") -> None:
        super().__init__()
        self._record_config(locals())
        check_positive(input_samples=input_samples)
        self.trunk = ConvTrunk(1, input_samples, (conv1_filters, conv2_filters, conv3_filters),
                               (conv1_kernel, conv2_kernel, conv3_kernel), (pool1, pool2, pool3),
                               conv_impl)
        self.heads = make_heads(self.trunk.out_features, hidden1, hidden2, dropout)

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.trunk(as_channels(waveform))  # (B, T) -> (B, 1, T) -> (B, C*L)
