"""Acoustic characteristics of a signal: the measures of the paper's Table 6 (section 4.2.2).

Every measure takes a float waveform in [-1, 1] and its sample rate; every threshold is an
argument. The paper names the measures but not their definitions; the definitions below are ours
and are stated in each docstring so that a reader can recompute any number in a table.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from raylab import SAMPLE_RATE

FLOOR_DB = -120.0  # loudness of digital silence, instead of -inf


def loudness_dbfs(x: np.ndarray, floor_db: float = FLOOR_DB) -> float:
    """RMS level in dBFS: 20·log10(sqrt(mean(x²)) / 1.0).

    Convention: the reference is the RMS of a full-scale square wave (1.0), so a full-scale sine
    (peak 1.0) reads −3.01 dBFS and a sine of RMS 0.5 (peak 0.707) reads −6.02 dBFS. Silence
    reads `floor_db`.
    """
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
    return max(20.0 * np.log10(rms), floor_db) if rms > 0 else floor_db


def power_spectrum(x: np.ndarray, sr: int, nperseg: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density (Hann window, 50 % overlap): (frequencies in Hz, power)."""
    from scipy.signal import welch

    freqs, psd = welch(np.asarray(x, dtype=np.float64), fs=sr, nperseg=min(nperseg, len(x)))
    return freqs, psd


def dominant_frequency(x: np.ndarray, sr: int, range_db: float = 10.0,
                       nperseg: int = 2048) -> tuple[float, float, float]:
    """(peak, low, high) in Hz of the Welch spectrum.

    `peak` is the frequency of the largest power; the dominant frequency range is [low, high], the
    lowest and the highest frequency whose power lies within `range_db` dB of the peak. A pure tone
    gives a narrow range around its frequency; white noise gives 0 to sr/2.
    """
    freqs, psd = power_spectrum(x, sr, nperseg)
    if not np.any(psd > 0):
        return 0.0, 0.0, 0.0
    peak = int(np.argmax(psd))
    strong = np.flatnonzero(psd >= psd[peak] * 10.0 ** (-range_db / 10.0))
    return float(freqs[peak]), float(freqs[strong[0]]), float(freqs[strong[-1]])


def spectral_centroid(x: np.ndarray, sr: int, nperseg: int = 2048) -> float:
    """Power-weighted mean frequency of the Welch spectrum, in Hz (0 for silence)."""
    freqs, psd = power_spectrum(x, sr, nperseg)
    total = psd.sum()
    return float((freqs * psd).sum() / total) if total > 0 else 0.0


def rms_envelope(x: np.ndarray, sr: int, frame_ms: float = 20.0,
                 hop_ms: float = 10.0) -> np.ndarray:
    """Short-time RMS of frames of `frame_ms`, one every `hop_ms`: shape (frames,)."""
    frame = max(1, int(round(sr * frame_ms / 1000)))
    hop = max(1, int(round(sr * hop_ms / 1000)))
    if len(x) < frame:
        return np.array([np.sqrt(np.mean(np.square(x, dtype=np.float64)))]) if len(x) else np.zeros(0)
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), frame)[::hop]
    return np.sqrt(np.mean(windows ** 2, axis=1))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of True in a boolean vector."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _run_seconds(frames: int, frame_ms: float, hop_ms: float, voiced: bool) -> float:
    # A gap of length g holds (g - frame) / hop + 1 whole frames; a voiced stretch of length v
    # touches (v + frame) / hop frames. Inverting these gives the stretch's length in seconds.
    ms = frames * hop_ms - frame_ms if voiced else frames * hop_ms + frame_ms - hop_ms
    return max(ms, hop_ms) / 1000.0


def voiced_mask(x: np.ndarray, sr: int, threshold_db: float = -30.0, frame_ms: float = 20.0,
                hop_ms: float = 10.0) -> np.ndarray:
    """Per frame: is the short-time RMS within `threshold_db` dB of the loudest frame?"""
    env = rms_envelope(x, sr, frame_ms, hop_ms)
    if not len(env) or env.max() <= 0:
        return np.zeros(len(env), dtype=bool)
    return env >= env.max() * 10.0 ** (threshold_db / 20.0)


def pause_duration_ms(x: np.ndarray, sr: int, threshold_db: float = -30.0,
                      frame_ms: float = 20.0, hop_ms: float = 10.0,
                      min_pause_ms: float = 30.0) -> float:
    """Typical pause: the median length in ms of the pauses between voiced stretches.

    A frame is silent when its RMS is more than `threshold_db` below the loudest frame's; a pause
    is a run of silent frames with voiced frames on both sides (leading and trailing silence are
    not pauses), at least `min_pause_ms` long. No pause gives 0.
    """
    voiced = voiced_mask(x, sr, threshold_db, frame_ms, hop_ms)
    lengths = [1000.0 * _run_seconds(end - start, frame_ms, hop_ms, False)
               for start, end in _runs(~voiced) if start > 0 and end < len(voiced)]
    lengths = [ms for ms in lengths if ms >= min_pause_ms]
    return float(np.median(lengths)) if lengths else 0.0


def voiced_seconds(x: np.ndarray, sr: int, threshold_db: float = -30.0,
                   frame_ms: float = 20.0, hop_ms: float = 10.0) -> tuple[float, float]:
    """(total, longest) length in s of the voiced stretches (frames within `threshold_db` of
    the loudest frame; see `voiced_mask`). The paper's "length of the segment that contains
    voice" is the total."""
    mask = voiced_mask(x, sr, threshold_db, frame_ms, hop_ms)
    edge = frame_ms / 1000.0  # a stretch that reaches an end of the signal lost one frame there
    lengths = [min(_run_seconds(end - start, frame_ms, hop_ms, True)
                   + edge * (int(start == 0) + int(end == len(mask))), len(x) / sr)
               for start, end in _runs(mask)]
    return (float(min(sum(lengths), len(x) / sr)), float(max(lengths))) if lengths else (0.0, 0.0)


def syllable_rate_hz(x: np.ndarray, sr: int, threshold_db: float = -30.0,
                     frame_ms: float = 20.0, hop_ms: float = 10.0,
                     prominence: float = 0.25) -> float:
    """Speaking rate: syllables per second of voiced signal. A syllable is a peak of the
    short-time RMS envelope whose prominence is at least `prominence` times the loudest frame's
    RMS; the voiced time is `voiced_seconds`' total. No voiced signal gives 0."""
    from scipy.signal import find_peaks

    env = rms_envelope(x, sr, frame_ms, hop_ms)
    voiced, _ = voiced_seconds(x, sr, threshold_db, frame_ms, hop_ms)
    if not len(env) or env.max() <= 0 or voiced <= 0:
        return 0.0
    padded = np.concatenate([[0.0], env, [0.0]])  # a peak at either end counts too
    peaks, _ = find_peaks(padded, prominence=prominence * env.max())
    return float(len(peaks) / voiced)


def f0_hz(x: np.ndarray, sr: int, fmin: float = 50.0, fmax: float = 2000.0,
          threshold_db: float = -30.0, frame_ms: float = 20.0, hop_ms: float = 10.0) -> float:
    """Typical pitch: the median YIN f0 (librosa.yin, `fmin`..`fmax` Hz) over the voiced frames
    (`voiced_mask`). The dominant frequency is the strongest harmonic, which is f0 only when the
    spectrum falls above it; this is the period of the signal. The trough threshold is 0.3, not
    librosa's 0.1, which reads a 750 Hz tone at 8 kHz an octave low. No voiced frame gives 0; an
    unpitched signal (noise) gives a number that means little."""
    import librosa

    x = np.asarray(x, dtype=np.float64)
    hop = max(1, int(round(sr * hop_ms / 1000)))
    frame = int(2 ** np.ceil(np.log2(2.5 * sr / fmin)))  # two periods of fmin, and then some
    if len(x) < frame or not np.any(x):
        return 0.0
    f0 = librosa.yin(x, fmin=fmin, fmax=fmax, sr=sr, frame_length=frame, hop_length=hop,
                     center=True, trough_threshold=0.3)
    voiced = voiced_mask(x, sr, threshold_db, frame_ms, hop_ms)
    n = min(len(f0), len(voiced))
    picked = f0[:n][voiced[:n]]
    return float(np.median(picked)) if len(picked) else 0.0


@dataclass(frozen=True)
class Characteristics:
    """The Table 6 measures of one signal (see the functions above for the definitions)."""

    loudness_dbfs: float
    peak_hz: float
    dominant_low_hz: float
    dominant_high_hz: float
    centroid_hz: float
    min_amplitude: float
    max_amplitude: float
    peak_amplitude: float  # max |x|
    pause_ms: float
    voiced_s: float
    longest_voiced_s: float
    syllable_rate_hz: float = 0.0
    f0_hz: float = 0.0


def characteristics(x: np.ndarray, sr: int, range_db: float = 10.0, threshold_db: float = -30.0,
                    frame_ms: float = 20.0, hop_ms: float = 10.0,
                    min_pause_ms: float = 30.0) -> Characteristics:
    """All Table 6 measures of one signal; the thresholds go to the functions that use them."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    peak, low, high = dominant_frequency(x, sr, range_db)
    voiced, longest = voiced_seconds(x, sr, threshold_db, frame_ms, hop_ms)
    return Characteristics(
        loudness_dbfs=loudness_dbfs(x), peak_hz=peak, dominant_low_hz=low, dominant_high_hz=high,
        centroid_hz=spectral_centroid(x, sr), min_amplitude=float(x.min()),
        max_amplitude=float(x.max()), peak_amplitude=float(np.abs(x).max()),
        pause_ms=pause_duration_ms(x, sr, threshold_db, frame_ms, hop_ms, min_pause_ms),
        voiced_s=voiced, longest_voiced_s=longest,
        syllable_rate_hz=syllable_rate_hz(x, sr, threshold_db, frame_ms, hop_ms),
        f0_hz=f0_hz(x, sr, threshold_db=threshold_db, frame_ms=frame_ms, hop_ms=hop_ms))


ROW_LABELS = {
    "loudness_dbfs": "Loudness (dBFS)", "dominant_khz": "Dom. f. (kHz)",
    "peak_hz": "Peak f. (Hz)", "f0_hz": "F0 (Hz)", "centroid_hz": "Centroid (Hz)",
    "min_amplitude": "Min. amplitude", "max_amplitude": "Max. amplitude",
    "pause_ms": "Pause d. (ms)", "voiced_s": "Voiced s. (s)",
    "syllable_rate_hz": "Syllable rate (Hz)",
}


def table6(signals: dict, sr: int = SAMPLE_RATE, **thresholds: float) -> pd.DataFrame:
    """Table 6: one column per signal (keys as given, e.g. "arousal 0" or ("arousal", 0)),
    one row per measure, numbers rounded as the paper prints them."""
    columns = {}
    for key, signal in signals.items():
        name = " ".join(str(part) for part in key) if isinstance(key, tuple) else str(key)
        c = characteristics(signal, sr, **thresholds)
        columns[name] = {
            "loudness_dbfs": round(c.loudness_dbfs, 1),
            "dominant_khz": f"{c.dominant_low_hz / 1000:.2f}–{c.dominant_high_hz / 1000:.2f}",
            "peak_hz": round(c.peak_hz, 1), "f0_hz": round(c.f0_hz, 1),
            "centroid_hz": round(c.centroid_hz, 1),
            "min_amplitude": round(c.min_amplitude, 4), "max_amplitude": round(c.max_amplitude, 4),
            "pause_ms": round(c.pause_ms), "voiced_s": round(c.voiced_s, 2),
            "syllable_rate_hz": round(c.syllable_rate_hz, 2),
        }
    frame = pd.DataFrame(columns)
    frame.index = [ROW_LABELS[row] for row in frame.index]
    return frame


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (hand-written: pandas needs `tabulate` for this)."""
    header = ["", *map(str, frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, row in frame.iterrows():
        lines.append("| " + " | ".join([str(label), *map(str, row.tolist())]) + " |")
    return "\n".join(lines) + "\n"


def as_dict(c: Characteristics) -> dict[str, float]:
    return asdict(c)
