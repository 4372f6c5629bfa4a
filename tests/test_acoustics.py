"""Table 6 measures on synthetic signals whose answers are known by construction."""
from __future__ import annotations

import numpy as np
import pytest

from analysis import acoustics as A

SR = 16_000


def tone(freq: float, seconds: float, peak: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return peak * np.sin(2 * np.pi * freq * t)


def test_loudness_convention_full_scale_sine_and_minus_6_dbfs():
    assert A.loudness_dbfs(tone(1000, 1, peak=1.0)) == pytest.approx(-3.0103, abs=1e-3)
    # −6 dBFS in our convention (RMS re 1.0): RMS 10^(−6/20), i.e. peak √2·10^(−0.3)
    minus6 = tone(1000, 1, peak=np.sqrt(2) * 10 ** (-6 / 20))
    assert A.loudness_dbfs(minus6) == pytest.approx(-6.0, abs=1e-3)
    assert A.loudness_dbfs(tone(1000, 1, peak=0.5)) == pytest.approx(-9.03, abs=0.01)
    assert A.loudness_dbfs(np.zeros(100)) == A.FLOOR_DB


def test_dominant_frequency_of_a_440_hz_tone_and_of_white_noise():
    peak, low, high = A.dominant_frequency(tone(440, 2), SR)
    assert abs(peak - 440) < 8 and low <= 440 <= high and high - low < 40
    assert A.spectral_centroid(tone(440, 2), SR) == pytest.approx(440, abs=10)
    noise = np.random.default_rng(0).normal(0, 0.1, 4 * SR)
    _, low, high = A.dominant_frequency(noise, SR)
    assert low == 0 and high == SR / 2


def test_amplitudes():
    x = tone(300, 1, peak=0.4)
    x[100] = -0.7
    c = A.characteristics(x, SR)
    assert c.min_amplitude == pytest.approx(-0.7) and c.max_amplitude == pytest.approx(0.4, abs=1e-3)
    assert c.peak_amplitude == pytest.approx(0.7)


def test_pause_duration_of_a_tone_with_200_ms_gaps():
    x = tone(300, 6, peak=0.3)
    period, voiced = int(0.5 * SR), int(0.3 * SR)  # 300 ms on, 200 ms off
    x[(np.arange(len(x)) % period) >= voiced] = 0
    x += np.random.default_rng(1).normal(0, 1e-5, len(x))  # a noise floor far below threshold
    assert A.pause_duration_ms(x, SR) == pytest.approx(200, abs=15)
    assert A.pause_duration_ms(tone(300, 2), SR) == 0.0  # no pauses at all
    # with a 100 ms frame a 200 ms gap is still measured at its length
    assert A.pause_duration_ms(x, SR, frame_ms=100, hop_ms=10) == pytest.approx(200, abs=15)


def test_leading_and_trailing_silence_are_not_pauses():
    x = np.zeros(3 * SR)
    x[SR:2 * SR] = tone(200, 1, 0.3)
    assert A.pause_duration_ms(x, SR) == 0.0


def test_voiced_length_of_a_signal_voiced_for_2_5_s():
    x = np.random.default_rng(2).normal(0, 1e-4, 6 * SR)
    x[SR:int(3.5 * SR)] += tone(200, 2.5, 0.2)
    total, longest = A.voiced_seconds(x, SR)
    assert total == pytest.approx(2.5, abs=0.03) and longest == pytest.approx(2.5, abs=0.03)
    assert A.voiced_seconds(np.random.default_rng(0).normal(0, 0.1, 6 * SR), SR)[0] == pytest.approx(6.0)
    # a stricter threshold (relative to the loudest frame) leaves the quiet part out
    y = np.concatenate([tone(200, 1, 0.5), tone(200, 1, 0.005)])
    assert A.voiced_seconds(y, SR, threshold_db=-20)[0] == pytest.approx(1.0, abs=0.03)
    assert A.voiced_seconds(y, SR, threshold_db=-60)[0] == pytest.approx(2.0, abs=0.03)


def test_table6_columns_rows_and_markdown():
    signals = {("arousal", 0): tone(440, 1, 0.5), ("arousal", 1): tone(2000, 1, 0.1)}
    table = A.table6(signals, SR)
    assert list(table.columns) == ["arousal 0", "arousal 1"]
    assert table.loc["Loudness (dBFS)", "arousal 0"] == pytest.approx(-9.0, abs=0.05)
    assert table.loc["Dom. f. (kHz)", "arousal 1"].startswith("1.9") or \
        table.loc["Dom. f. (kHz)", "arousal 1"].startswith("2.0")
    md = A.to_markdown(table)
    assert md.splitlines()[0] == "|  | arousal 0 | arousal 1 |"
    assert "| Pause d. (ms) | 0 | 0 |" in md


def test_f0_is_the_period_not_the_strongest_harmonic():
    sr = 8000
    t = np.arange(sr) / sr
    for f0 in (150.0, 400.0, 750.0):
        # a weak fundamental under a strong third harmonic: the spectrum peaks at 3·f0
        x = 0.2 * np.sin(2 * np.pi * f0 * t) + 0.4 * np.sin(2 * np.pi * 3 * f0 * t + 0.3)
        assert A.f0_hz(x, sr) == pytest.approx(f0, rel=0.03)
        assert A.dominant_frequency(x, sr)[0] == pytest.approx(3 * f0, rel=0.03)
    assert A.f0_hz(np.zeros(sr), sr) == 0.0
