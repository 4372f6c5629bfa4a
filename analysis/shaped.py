"""A parametrised signal for activation maximisation: a smooth envelope times a shaped carrier.

Gradient ascent on raw samples (eq. 4) finds broadband patterns that raise a logit without
sounding like anything (section 2.3.1's own caveat for images, Simonyan et al.: "extreme single-
pixel values"). `ShapedSignal` restricts the search to signals that can carry the cues a speech
network can learn, and only those:

    x(t) = gain · envelope(t) · carrier(t) / max|carrier|

- `gain` in (0, 1) is the peak amplitude (loudness);
- `envelope(t)` in (0, 1) is set every `hop_ms` (10 ms) and linearly interpolated in between:
  syllables, pauses and speaking rate, but no sample-level detail;
- `carrier` is a stationary noise whose magnitude spectrum is learned on a grid of `bin_hz`
  (15.6 Hz) with a fixed random phase: pitch and spectral shape, but no timing.
Every row starts from the same seeded parameters (envelope logits N(0, 1), flat spectrum, gain
0.1), so two classes' signals differ only by what the network rewards. The signal written to WAV
and measured for Table 6 is `render()` itself.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class ShapedSignal(nn.Module):
    """`rows` signals of `samples` samples at `sample_rate`, parametrised as above."""

    def __init__(self, rows: int, samples: int, sample_rate: int, seed: int = 0,
                 hop_ms: float = 10.0, bin_hz: float = 15.625, init_gain: float = 0.1,
                 max_modulation_hz: float = 16.0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.samples = samples
        self.frames = int(math.ceil(samples / (sample_rate * hop_ms / 1000))) + 1
        bins = int(round(sample_rate / 2 / bin_hz)) + 1
        seconds = self.frames * hop_ms / 1000
        modulations = int(max_modulation_hz * seconds) + 1  # envelope's Fourier bins kept
        scale = math.sqrt(self.frames / modulations)  # so that the logits start with std ~1
        start = torch.randn(1, modulations, 2, generator=gen) * scale
        self.envelope = nn.Parameter(start.repeat(rows, 1, 1))  # (R, K, re/im)
        self.spectrum = nn.Parameter(torch.zeros(rows, bins))  # log magnitude
        self.gain = nn.Parameter(torch.full((rows, 1), math.log(init_gain / (1 - init_gain))))
        phase = 2 * math.pi * torch.rand(samples // 2 + 1, generator=gen)
        self.register_buffer("phase", torch.polar(torch.ones_like(phase), phase))

    def envelope_curve(self) -> torch.Tensor:
        logits = torch.fft.irfft(torch.view_as_complex(self.envelope), n=self.frames,
                                 norm="ortho")  # (R, frames)
        curve = F.interpolate(torch.sigmoid(logits)[:, None], size=self.samples,
                              mode="linear", align_corners=True)
        return curve[:, 0]  # (R, T)

    def carrier(self) -> torch.Tensor:
        magnitude = F.interpolate(self.spectrum.exp()[:, None], size=len(self.phase),
                                  mode="linear", align_corners=True)[:, 0]  # (R, T/2+1)
        c = torch.fft.irfft(magnitude * self.phase, n=self.samples)  # (R, T)
        return c / c.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.gain) * self.envelope_curve() * self.carrier()  # (R, T)


def jitter(x: torch.Tensor, copies: int, max_shift: int, max_gain_db: float,
           gen: torch.Generator) -> torch.Tensor:
    """`copies` versions of every row, each shifted circularly by up to ±`max_shift` samples
    and scaled by up to ±`max_gain_db`: (R, T) -> (copies·R, T), copy-major."""
    out = []
    for _ in range(copies):
        shift = int(torch.randint(-max_shift, max_shift + 1, (1,), generator=gen))
        db = (torch.rand(x.shape[0], 1, generator=gen) * 2 - 1) * max_gain_db
        out.append(torch.roll(x, shift, dims=1) * 10 ** (db / 20))
    return torch.cat(out)
