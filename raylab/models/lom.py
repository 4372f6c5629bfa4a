"""LoM: feature learning on MFCCs only (section 2.2.1, Fig. 3a).

The 26 coefficients are 26 input channels of 1-D convolutions over the 599 frames (25 ms window,
10 ms hop), so no filter mixes neighbouring coefficients as a 2-D filter would. Defaults are
assumptions (Fig. 3a's numbers are not in the paper's text): three blocks of 40 filters, kernels
5, 5 and 3 frames, max-pool 2 each (599 -> 297 -> 146 -> 72 frames; receptive field ~0.2 s), the
same heads as ELoR (128, 64, dropout 0.3). The search space covers them.
"""
from __future__ import annotations

import torch

from raylab import MFCC_SHAPE
from raylab.models.heads import ConvTrunk, TwoHeadNet, check_positive, make_heads


class LoM(TwoHeadNet):
    """MFCCs (B, mfcc_channels, mfcc_frames) -> {"valence", "arousal"}: (B, 5) logits."""

    inputs = ("mfcc",)

    def __init__(self, mfcc_channels: int = MFCC_SHAPE[0], mfcc_frames: int = MFCC_SHAPE[1],
                 conv1_filters: int = 40, conv1_kernel: int = 5, pool1: int = 2,
                 conv2_filters: int = 40, conv2_kernel: int = 5, pool2: int = 2,
                 conv3_filters: int = 40, conv3_kernel: int = 3, pool3: int = 2,
                 hidden1: int = 128, hidden2: int = 64, dropout: float = 0.3,
                 conv_impl: str = "auto") -> None:
        super().__init__()
        self._record_config(locals())
        check_positive(mfcc_channels=mfcc_channels, mfcc_frames=mfcc_frames)
        self.trunk = ConvTrunk(mfcc_channels, mfcc_frames,
                               (conv1_filters, conv2_filters, conv3_filters),
                               (conv1_kernel, conv2_kernel, conv3_kernel), (pool1, pool2, pool3),
                               conv_impl)
        self.heads = make_heads(self.trunk.out_features, hidden1, hidden2, dropout)

    def features(self, mfcc: torch.Tensor) -> torch.Tensor:
        return self.trunk(mfcc)  # (B, 26, 599) -> (B, C*L)
