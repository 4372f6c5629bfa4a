"""FTR: the 1582 openSMILE IS10 functionals straight into the two heads (section 2.2.2, Fig. 3b).

The features arrive standardised with the training split's statistics (`raylab.train.fold`). Head
defaults as ELoR's (128, 64 sigmoid units, dropout 0.3); an assumption, covered by the search.
"""
from __future__ import annotations

import torch

from raylab import IS10_DIM
from raylab.models.heads import TwoHeadNet, check_positive, make_heads


class FTR(TwoHeadNet):
    """IS10 features (B, num_features) -> {"valence", "arousal"}: (B, 5) logits. No trunk."""

    inputs = ("is10",)

    def __init__(self, num_features: int = IS10_DIM, hidden1: int = 128, hidden2: int = 64,
                 dropout: float = 0.3) -> None:
        super().__init__()
        self._record_config(locals())
        check_positive(num_features=num_features)
        self.heads = make_heads(num_features, hidden1, hidden2, dropout)

    def features(self, is10: torch.Tensor) -> torch.Tensor:
        return is10
