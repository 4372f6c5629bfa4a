"""A data prior for generalized signals: how probable a signal is among the windows of the speakers
the network learned from (training and validation), in the network's own feature space.

Activation maximisation climbs log p(c | x), which inputs unlike any training window can reach (the
README's cue networks, when trained on 1000 clips, reached their longest-pause class's ceiling with
slow syllables and no pause at all). Bayes' rule gives the class-conditional density instead, log
p(x | c) = log p(c | x) + log p(x) − log p(c): the signal that maximises it is a probable input of
the class, not an extreme one. Plug & Play Generative Networks (Nguyen et al. 2017) add log p(x)
from a learned prior for the same reason. Here p(x) is approximated where the network itself looks:
the pre-activation of each head's first hidden layer, as class-conditional Gaussians with one shared
covariance (Lee et al. 2018, "A simple unified framework for detecting out-of-distribution
samples"), the covariance shrunk by Ledoit-Wolf (scikit-learn), the classes weighted equally.

The term added to a signal's objective (the class's log-odds or log-softmax, not log p(c | x)
itself) is the log-density per dimension, (1/d) · log Σ_k exp(−½ D_k(z)) with D_k the Mahalanobis
distance to class k's mean and d the layer's width: at most log(K)/d, near a class mean. The
windows' own median is kept as `reference`; a signal above it is more central than a typical
window, one far below it is unlike the data. The scale 1/d comes from the width alone, not from the
validation corpus (the README gives the sweep).

Hand-written: scikit-learn fits the covariance; no library adds a feature-space density to
activation maximisation.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

PRIOR_WINDOWS = 2000  # at most this many training windows, spread evenly, fit the prior


@dataclass
class FeaturePrior:
    """Per head: the class means (K, d) and the shared precision (d, d) of the first hidden
    layer's pre-activation over the training windows."""

    means: dict[str, torch.Tensor]
    precision: dict[str, torch.Tensor]
    windows: int  # the windows the fit used (those of a class with two or more)
    reference: dict[str, float] = field(default_factory=dict)  # the fitted windows' median term
    captured: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def dim(self) -> int:
        return next(iter(self.means.values())).shape[1]

    @classmethod
    def fit(cls, model: nn.Module, windows: np.ndarray, labels: dict[str, np.ndarray],
            other: Callable[[int], tuple[torch.Tensor, ...]] = lambda n: (),
            batch: int = 64, device: str = "cpu", scale: float = 1.0) -> "FeaturePrior":
        """Fit on `windows` (N, T) waveforms, times `scale` as the network takes them (int16 as
        stored: 1/32768), with their class per head in `labels`; `other(n)` gives the network's
        other inputs (ELoR+FTR: the IS10 features held as the generalized signals hold them)."""
        from sklearn.covariance import LedoitWolf

        if len(windows) == 0:
            raise ValueError("the data prior needs training windows: none given")
        for head, y in labels.items():
            if len(y) != len(windows):
                raise ValueError(f"the data prior's {head} labels: {len(y)} for {len(windows)} "
                                 "windows")
        model.eval().to(device)
        prior = cls({}, {}, len(windows))
        parts: dict[str, list[torch.Tensor]] = {head: [] for head in labels}
        with torch.no_grad(), prior.watching(model, labels):
            for i in range(0, len(windows), batch):
                chunk = np.asarray(windows[i:i + batch], np.float32) * np.float32(scale)
                x = torch.as_tensor(chunk, device=device)
                model(x, *other(len(x)))
                for head in labels:
                    parts[head].append(prior.captured[head].double().cpu())
        for head, y in labels.items():
            z = torch.cat(parts[head]).numpy()
            y = np.asarray(y)
            classes = [k for k in np.unique(y) if (y == k).sum() >= 2]
            if not classes:
                raise ValueError(f"the {head} prior needs at least two training windows of a class")
            means = np.stack([z[y == k].mean(axis=0) for k in classes])
            keep = np.isin(y, classes)
            index = np.searchsorted(classes, y[keep])
            shrunk = LedoitWolf().fit(z[keep] - means[index])
            prior.means[head] = torch.as_tensor(means, dtype=torch.float32, device=device)
            prior.precision[head] = torch.as_tensor(shrunk.precision_, dtype=torch.float32,
                                                    device=device)
            own = prior.log_density(head, torch.as_tensor(z[keep], dtype=torch.float32,
                                                          device=device))
            prior.reference[head] = float(own.median())
            prior.windows = min(prior.windows, int(keep.sum()))
        return prior

    @contextlib.contextmanager
    def watching(self, model: nn.Module, heads) -> Iterator[None]:
        """While open, every forward pass of `model` leaves each head's first hidden
        pre-activation (B, d) in `captured`."""
        hooks = []
        try:
            for head in heads:
                hooks.append(model.heads[head].fc1.register_forward_hook(
                    lambda module, args, out, head=head: self.captured.__setitem__(head, out)))
            yield
        finally:
            for hook in hooks:
                hook.remove()
            self.captured.clear()

    def check(self, model: nn.Module, heads) -> None:
        """A one-line ValueError unless the prior has `heads` and each is as wide as `model`'s
        first hidden layer (a prior of another network of the same width is not detected)."""
        for head in heads:
            if head not in model.heads:
                raise ValueError(f"the network has no {head} head")
            if head not in self.means:
                raise ValueError(f"the data prior has no {head} head (fitted: "
                                 f"{', '.join(sorted(self.means))})")
            width = model.heads[head].fc1.out_features
            if self.means[head].shape[1] != width:
                raise ValueError(f"the data prior's {head} head has width "
                                 f"{self.means[head].shape[1]}, the network's {width}: the width "
                                 "differs")

    def to(self, device: str | torch.device) -> "FeaturePrior":
        """The prior with its means and precisions on `device`."""
        for table in (self.means, self.precision):
            for head in table:
                table[head] = table[head].to(device)
        return self

    def log_density(self, head: str, z: torch.Tensor) -> torch.Tensor:
        """(B,) the log-density per dimension of `z` (B, d), up to a constant: (1/d) log Σ_k
        exp(−½ D_k(z))."""
        diff = z[:, None, :] - self.means[head][None]  # (B, K, d)
        distance = ((diff @ self.precision[head]) * diff).sum(dim=-1)  # (B, K)
        return torch.logsumexp(-0.5 * distance, dim=1) / z.shape[1]

    def term(self, targets: list[tuple[str, int]]) -> torch.Tensor:
        """Per row i of the last forward pass: the log-density per dimension in the head of
        targets[i] (rows may repeat the targets)."""
        rows = next(iter(self.captured.values())).shape[0]
        values = {head: self.log_density(head, self.captured[head])
                  for head in {h for h, _ in targets}}
        return torch.stack([values[targets[i % len(targets)][0]][i] for i in range(rows)])
