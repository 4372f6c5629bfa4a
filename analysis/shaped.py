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

`SourceFilterSignal` (the "speech" method) replaces the noise carrier with a filtered harmonic-plus-
noise source whose f0 is chosen from a grid; `ProsodySignal` (the "prosody" method, the default)
also replaces the learned envelope with a syllable train whose rate, pause and phrase length are
chosen from grids the same way (rate and pause together).
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


def harmonic_spectra(f0s: list[float], samples: int, sample_rate: int,
                     gen: torch.Generator) -> torch.Tensor:
    """The rfft of a harmonic source (every harmonic of f0 below 0.95 Nyquist, equal amplitude,
    random phase, unit RMS) for each f0: (len(f0s), samples // 2 + 1) complex."""
    t = torch.arange(samples, dtype=torch.float64) / sample_rate
    out = []
    for f0 in f0s:
        harmonics = torch.arange(1, int(0.95 * sample_rate / 2 / f0) + 1, dtype=torch.float64)
        phase = 2 * math.pi * torch.rand(len(harmonics), generator=gen, dtype=torch.float64)
        x = torch.cos(2 * math.pi * f0 * harmonics[:, None] * t + phase[:, None]).sum(0)
        out.append(torch.fft.rfft((x / x.pow(2).mean().sqrt()).float()))
    return torch.stack(out)


def gain_order(n: int) -> list[int]:
    """The starts' gain ranks, a permutation of 0..n-1: k·step mod n for start k, with step 3
    where it is coprime to n (n = 4: 0, 3, 2, 1), else the largest step under n that is."""
    step = next(s for s in (3, *range(n - 1, 0, -1)) if math.gcd(s, n) == 1)
    return [(k * step) % n for k in range(n)]


class SourceFilterSignal(ShapedSignal):
    """A speech-like signal: x(t) = tanh(gain · envelope(t) · carrier(t)), where the carrier is
    filter * (√voicing · harmonic(f0) + √(1 − voicing) · noise), normalised to unit RMS.

    - the envelope is `ShapedSignal`'s (a sigmoid of a Fourier series, here up to 25 Hz: 10
      syllables per second and pauses of a few tens of ms fit);
    - the filter is `ShapedSignal`'s learned log-magnitude spectrum, applied to a source that
      mixes a harmonic series at f0 (`harmonic_spectra`) and white noise in proportion `voicing`
      (learned, starts at 0.5);
    - `gain` (its log is learned) scales an RMS-normalised carrier and tanh keeps the peak under
      1: the gain sets the energy, which a carrier normalised to peak 1 (crest factor 3-4 for
      noise) caps well below a full-scale harmonic sound's;
    - f0 is not learned by gradient (the gradient of a harmonic signal with respect to its f0 is
      useless away from the optimum: DDSP's known problem) but set per row in `f0_index`, an
      index into `f0_grid`; `analysis.generalize` chooses it by evaluating every f0 of the grid.
    `starts[r]` is row r's start (an id: equal ids, equal starts). There are n = len(set(starts))
    starts: start i's envelope logits are random below max_modulation_hz / 2^(n − 1 − i) with
    std `envelope_std`, its gain one of `gain_grid` spread over the starts (else `init_gain`).
    The same starts serve every class, so the classes' signals differ only by the network."""

    def __init__(self, rows: int, samples: int, sample_rate: int, starts: torch.Tensor,
                 f0_grid: tuple[float, ...], f0_index: torch.Tensor, seed: int = 0,
                 max_modulation_hz: float = 25.0, hop_ms: float = 10.0,
                 envelope_std: float = 1.0, gain_grid: tuple[float, float] | None = None,
                 **kwargs) -> None:
        super().__init__(rows, samples, sample_rate, seed, hop_ms=hop_ms,
                         max_modulation_hz=max_modulation_hz, **kwargs)
        gen = torch.Generator().manual_seed(seed + 2)
        modulations = self.envelope.shape[1]
        hz = torch.arange(modulations) / (self.frames * hop_ms / 1000)  # modulation frequencies
        # start i is random below max_modulation_hz / 2^(n - 1 - i): n starts from a slow
        # envelope (few long syllables) to a fast one, the same for every class
        ids = sorted(set(starts.tolist()))
        table = {}
        for i in ids:
            kept = (hz <= max_modulation_hz / 2 ** (len(ids) - 1 - i)).float()[:, None]
            scale = envelope_std * math.sqrt(self.frames / kept.sum())  # logits' std
            table[i] = torch.randn(modulations, 2, generator=gen) * scale * kept
        with torch.no_grad():
            self.envelope.copy_(torch.stack([table[int(i)] for i in starts]))
        if gain_grid:  # start i's peak gain: `gain_grid` spread geometrically over the starts,
            # in the order of `gain_order` so that gain and bandwidth do not rise together
            n = len(ids)
            lo, hi = gain_grid
            order = gain_order(n)
            gains = {i: lo * (hi / lo) ** (order[k] / max(n - 1, 1)) for k, i in enumerate(ids)}
            with torch.no_grad():
                self.gain.copy_(torch.tensor([[math.log(gains[int(i)])] for i in starts]))
        else:
            self.gain.data.fill_(math.log(kwargs.get("init_gain", 0.1)))
        self.voicing = nn.Parameter(torch.zeros(rows, 1))
        self.register_buffer("sources", harmonic_spectra(list(f0_grid), samples, sample_rate, gen))
        noise = torch.fft.irfft(self.phase, n=samples)
        self.phase = self.phase / noise.pow(2).mean().sqrt()  # unit-RMS white noise
        self.register_buffer("f0_index", f0_index.clone())
        self.f0_grid = tuple(f0_grid)

    def carrier(self, f0_index: torch.Tensor | None = None) -> torch.Tensor:
        index = self.f0_index if f0_index is None else f0_index
        v = torch.sigmoid(self.voicing)
        source = v.sqrt() * self.sources[index] + (1 - v).sqrt() * self.phase
        magnitude = F.interpolate(self.spectrum.exp()[:, None], size=len(self.phase),
                                  mode="linear", align_corners=True)[:, 0]
        c = torch.fft.irfft(magnitude * source, n=self.samples)
        return c / c.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-12)  # unit RMS

    def grids(self) -> dict[str, tuple[float, ...]]:
        """The grids whose values are chosen by evaluation; row r's choice of grid `name` is
        `<name>_index[r]`."""
        return {"f0": self.f0_grid}

    def choices(self) -> list[tuple[str, ...]]:
        """The grids chosen by evaluation, in order; the grids of one tuple are chosen together,
        every combination of their values evaluated."""
        return [("f0",)]

    def chosen(self) -> dict[str, list[float]]:
        """Every row's chosen value of each grid."""
        return {name: [float(grid[int(i)]) for i in getattr(self, f"{name}_index")]
                for name, grid in self.grids().items()}

    def render_choice(self, choice: dict[str, torch.Tensor]) -> torch.Tensor:
        """The signal with every row's index of each grid in `choice` ({name: (R,) indices}) set
        as given, the rest as they are."""
        old = {name: getattr(self, f"{name}_index") for name in choice}
        for name, index in choice.items():
            setattr(self, f"{name}_index", index)
        try:
            return self.forward()
        finally:
            for name, index in old.items():
                setattr(self, f"{name}_index", index)

    def peak_gain(self) -> torch.Tensor:
        """Every row's gain (R, 1): the factor on the unit-RMS carrier inside tanh."""
        return self.gain.exp()

    drive = 1.0  # a factor on the gain: below 1, the signal attenuated (ties on a grid)

    def render_with(self, f0_index: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.drive * self.peak_gain() * self.envelope_curve()
                          * self.carrier(f0_index))

    def forward(self) -> torch.Tensor:
        return self.render_with(self.f0_index)

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only `rows` (indices), e.g. the best start of every class."""
        with torch.no_grad():
            for name in ("envelope", "spectrum", "gain", "voicing"):
                setattr(self, name, nn.Parameter(getattr(self, name)[rows].clone()))
            self.f0_index = self.f0_index[rows].clone()


def syllable_train(samples: int, sample_rate: int, rate_hz: torch.Tensor, pause_s: torch.Tensor,
                   phrase: torch.Tensor) -> torch.Tensor:
    """Per row an envelope in [0, 1]: phrases of `phrase` syllables, each one arch of a sine
    1 / `rate_hz` long and touching the next, separated by `pause_s` of silence; the first
    syllable starts at t = 0. (R,) each -> (R, samples)."""
    t = torch.arange(samples, dtype=torch.float64, device=rate_hz.device) / sample_rate
    rate, pause, n = (v.double()[:, None] for v in (rate_hz, pause_s, phrase))
    voiced = n / rate  # a phrase's length in s
    u = torch.remainder(t[None], voiced + pause)  # time into the current phrase
    arch = torch.sin(math.pi * torch.remainder(u * rate, 1.0))
    return torch.where(u < voiced, arch, torch.zeros_like(arch)).float()


class ProsodySignal(SourceFilterSignal):
    """`SourceFilterSignal` whose envelope is a syllable train (`syllable_train`): speaking rate,
    pause between phrases and syllables per phrase, chosen from grids like f0 (in `rate_index`,
    `pause_index`, `phrase_index` into `grids()`; rate and pause together, `choices()`), none
    learned by gradient (a pause or a syllable boundary has no useful gradient with respect to
    its position either).
    What is learned is the filter, the voicing and the gain. x(t) = tanh(gain · train(t) ·
    carrier(t)) with gain = max_gain · sigmoid(θ): the carrier has unit RMS and a crest factor of
    3-4, so a gain up to 0.5 clips only its peaks, where a free gain grew to 1.3-1.8 and clipped
    the signal into a square wave in which neither the syllables' shape nor the period is what
    was chosen (on the cue corpus's 1000-clip networks the cap changed which seeds recover rate
    and pitch, not how many). The starts differ only by their gain (`gain_grid`, within (0,
    max_gain))."""

    def __init__(self, rows: int, samples: int, sample_rate: int, starts: torch.Tensor,
                 f0_grid: tuple[float, ...], rate_grid: tuple[float, ...],
                 pause_grid: tuple[float, ...], phrase_grid: tuple[int, ...], seed: int = 0,
                 gain_grid: tuple[float, float] | None = None, max_gain: float = 0.5) -> None:
        if gain_grid and not 0 < gain_grid[0] <= gain_grid[1] < max_gain:
            raise ValueError(f"the starts' gains {gain_grid} must lie in (0, max_gain "
                             f"{max_gain:g})")
        super().__init__(rows, samples, sample_rate, starts, f0_grid,
                         torch.zeros(rows, dtype=torch.long), seed, gain_grid=gain_grid)
        self.max_gain = max_gain
        with torch.no_grad():  # gain = max_gain · sigmoid(θ): the starts' gains, as logits
            share = (self.gain.exp() / max_gain).clamp(1e-6, 1 - 1e-6)
            self.gain.copy_(torch.log(share / (1 - share)))
        self.envelope = nn.Parameter(self.envelope.data[:, :0].clone())  # not used: no Fourier
        self.sample_rate = sample_rate
        self.rate_grid, self.pause_grid, self.phrase_grid = rate_grid, pause_grid, phrase_grid
        for name, grid in (("rate", rate_grid), ("pause", pause_grid), ("phrase", phrase_grid)):
            self.register_buffer(f"{name}_index", torch.full((rows,), len(grid) // 2))
            self.register_buffer(f"{name}_values", torch.tensor(grid, dtype=torch.float64))

    def grids(self) -> dict[str, tuple[float, ...]]:
        return {"f0": self.f0_grid, "rate": self.rate_grid, "pause": self.pause_grid,
                "phrase": self.phrase_grid}

    def choices(self) -> list[tuple[str, ...]]:
        """f0, then rate and pause together, then syllables per phrase. Rate and pause both set
        where the energy gaps fall (slow syllables leave gaps like pauses), so chosen one after
        the other the second stuck where the first choice left it (README: on the cue networks,
        without the data prior, 9 pairs of 12 in turn against 11 together)."""
        return [("f0",), ("rate", "pause"), ("phrase",)]

    def peak_gain(self) -> torch.Tensor:
        return self.max_gain * torch.sigmoid(self.gain)

    def envelope_curve(self) -> torch.Tensor:
        rate, pause, phrase = (getattr(self, f"{name}_values")[getattr(self, f"{name}_index")]
                               for name in ("rate", "pause", "phrase"))
        return syllable_train(self.samples, self.sample_rate, rate, pause, phrase)

    def keep(self, rows: torch.Tensor) -> None:
        super().keep(rows)
        for name in ("rate", "pause", "phrase"):
            setattr(self, f"{name}_index", getattr(self, f"{name}_index")[rows].clone())
