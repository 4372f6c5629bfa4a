"""The demo corpus: synthetic speech-like turns with planted emotion cues, in the IEMOCAP layout.

Ten speakers (Ses01F, Ses01M ... Ses05M) in five sessions; each dialog has turns of both speakers.
A turn lasts 1-15 s (log-normal, median 3.5 s) and is a sequence of phrases of 3-7 syllables
separated by pauses; a syllable is a short noise burst (consonant) and a voiced nucleus: a sawtooth
glottal source at f0 with a pitch contour and 1 % jitter, shaped by two formant resonances of one of
five vowels and by a one-pole low-pass ("brightness") under a sine-shaped amplitude envelope; a faint
noise floor (-70 dBFS) fills the pauses. Each turn draws its valence and arousal classes
independently (weights `CLASS_WEIGHTS`, 14/22/28/22/14 %); the classes set these cues (`CUES`):

| class | arousal: f0 (Hz) | syllables/s | peak amplitude | valence: pause (ms) | pause jitter (CV) | brightness (Hz) |
|-------|------------------|-------------|----------------|---------------------|-------------------|-----------------|
| 0     | 110              | 2.6         | 0.06           | 520                 | 0.60              | 700             |
| 1     | 140              | 3.3         | 0.13           | 400                 | 0.45              | 1000            |
| 2     | 175              | 4.0         | 0.25           | 290                 | 0.30              | 1400            |
| 3     | 215              | 4.8         | 0.45           | 190                 | 0.20              | 2000            |
| 4     | 260              | 5.6         | 0.85           | 110                 | 0.10              | 2800            |

Syllable rate and pause length are means: syllables vary +-20 %, pauses are drawn from a normal
with that mean and coefficient of variation (at least 40 ms). f0 is scaled per speaker (female
x1.06, male x0.94, then +-3 %) and per syllable (+-4 %); the peak amplitude per turn by +-10 %.
Label files follow the real format: external evaluators E1-E3 rate valence/activation/dominance
(E2, the paper's evaluator, rates ~90 % of turns and agrees with the planted class 90 % of the time,
else off by one; E1 and E3 are noisier, E3 sometimes gives halves), E4 only categories, the speaking
actor self-rates (F1/M1) half of the turns; comments hold commas; decoy files sit in the
`Categorical/`, `Attribute/` and `Self-evaluation/` subfolders. Deterministic for a seed.
"""
from __future__ import annotations

import json
import re
import wave
from pathlib import Path

import numpy as np

from raylab import SAMPLE_RATE
from raylab.data.corpora.demo_labels import DemoTurn, write_label_files
from raylab.errors import ConfigError
from raylab.runtime.fsutil import check_replaceable, staged_folder

DEMO_VERSION = 1
MARKER_FILE = "raylab-demo.json"
CUES = {
    "arousal": {"f0_hz": (110, 140, 175, 215, 260), "syllables_per_s": (2.6, 3.3, 4.0, 4.8, 5.6),
                "peak_amplitude": (0.06, 0.13, 0.25, 0.45, 0.85)},
    "valence": {"pause_ms": (520, 400, 290, 190, 110), "pause_cv": (0.60, 0.45, 0.30, 0.20, 0.10),
                "brightness_hz": (700, 1000, 1400, 2000, 2800)},
}
CLASS_WEIGHTS = np.array([0.14, 0.22, 0.28, 0.22, 0.14])
VOWELS = ((730, 1090), (530, 1840), (270, 2290), (570, 840), (300, 870))  # (F1, F2) Hz
TURNS_PER_DIALOG = 8  # per speaker


def _resonator(freq: float, bandwidth: float) -> tuple[list[float], list[float]]:
    """A two-pole resonance (formant) at `freq` Hz as lfilter coefficients (b, a)."""
    r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    return [1 - r], [1, -2 * r * np.cos(2 * np.pi * freq / SAMPLE_RATE), r * r]


def synthesize_turn(seconds: float, valence: int, arousal: int, f0_scale: float,
                    gain: float, rng: np.random.Generator) -> np.ndarray:
    """One turn as int16 samples with the cues of `CUES` for the given classes."""
    from scipy.signal import lfilter  # here: importing scipy.signal costs ~1 s, readers need none

    n = int(seconds * SAMPLE_RATE)
    speech = np.zeros(n, dtype=np.float32)
    consonants = np.zeros(n, dtype=np.float32)
    f0_base = CUES["arousal"]["f0_hz"][arousal] * f0_scale
    syllable = 1.0 / CUES["arousal"]["syllables_per_s"][arousal]
    pause_mean = CUES["valence"]["pause_ms"][valence] / 1000
    pause_cv = CUES["valence"]["pause_cv"][valence]
    bright = np.exp(-2 * np.pi * CUES["valence"]["brightness_hz"][valence] / SAMPLE_RATE)
    t = rng.uniform(0.05, 0.2)
    while t < seconds - 0.15:
        for _ in range(rng.integers(3, 8)):
            burst = rng.uniform(0.02, 0.06)
            length = int(syllable * rng.uniform(0.6, 0.9) * SAMPLE_RATE)
            b0, start = int(t * SAMPLE_RATE), int((t + burst) * SAMPLE_RATE)
            if start + length >= n:
                break
            hiss = np.diff(rng.standard_normal(start - b0 + 1))  # high-passed noise burst
            consonants[b0:start] = 0.08 * hiss * np.hanning(start - b0 + 2)[1:-1]
            contour = np.linspace(1 + rng.uniform(-0.08, 0.08), 1 + rng.uniform(-0.12, 0.04), length)
            f0 = f0_base * np.exp(rng.normal(0, 0.04)) * contour * (1 + 0.01 * rng.standard_normal(length))
            phase = np.cumsum(f0 / SAMPLE_RATE)
            source = (2 * (phase % 1.0) - 1) * np.sin(np.linspace(0, np.pi, length)) ** 0.7
            f1, f2 = VOWELS[rng.integers(len(VOWELS))]  # sawtooth (harmonics k*f0, -6 dB/oct) -> formants
            voiced = lfilter(*_resonator(f1, 90), source) + 0.5 * lfilter(*_resonator(f2, 120), source)
            speech[start:start + length] = rng.uniform(0.7, 1.0) * lfilter([1 - bright], [1, -bright], voiced)
            t += burst + length / SAMPLE_RATE + syllable * rng.uniform(0.05, 0.15)
        t += max(0.04, rng.normal(pause_mean, pause_cv * pause_mean))
    speech = speech / (np.abs(speech).max() + 1e-9) + consonants
    peak = CUES["arousal"]["peak_amplitude"][arousal] * gain
    wave = speech * (peak / (np.abs(speech).max() + 1e-9)) + 3e-4 * rng.standard_normal(n, dtype=np.float32)
    return np.clip(np.round(wave * 32767), -32768, 32767).astype(np.int16)


def write_wav(path: Path, audio: np.ndarray) -> None:
    """16-bit mono PCM. The stdlib writer, because soundfile fsyncs on close (6 ms per file)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(audio.astype("<i2").tobytes())


def plan_turns(seed: int, speakers: int = 10, turns_per_speaker: int = 30,
               seconds: tuple[float, float, float] = (1.0, 3.5, 15.0)) -> list[DemoTurn]:
    """Which turns exist, their planted classes, and their lengths: log-normal around a median,
    clipped to a range (`seconds` = (min, median, max)); deterministic for a seed."""
    if not 1 <= speakers <= 10:
        raise ConfigError(f"--speakers must be 1..10 (two per session, five sessions), got {speakers}")
    if turns_per_speaker < 1:
        raise ConfigError(f"--turns-per-speaker must be >= 1, got {turns_per_speaker}")
    rng = np.random.default_rng([seed, 1])
    turns = []
    who = [(s, letter) for s in range(1, 6) for letter in "FM"][:speakers]
    for session in sorted({s for s, _ in who}):
        letters = [letter for s, letter in who if s == session]
        dialogs = -(-turns_per_speaker // TURNS_PER_DIALOG)
        for d in range(dialogs):
            kind = f"script{d // 3 + 1:02d}_1" if d % 3 == 2 else f"impro{d - d // 3 + 1:02d}"
            dialog = f"Ses{session:02d}{'FM'[d % 2]}_{kind}"
            count = min(TURNS_PER_DIALOG, turns_per_speaker - d * TURNS_PER_DIALOG)
            order = [(letter, i) for i in range(count) for letter in letters]
            for letter, i in order:
                length = float(np.clip(rng.lognormal(np.log(seconds[1]), 0.6), seconds[0], seconds[2]))
                v, a = rng.choice(5, size=2, p=CLASS_WEIGHTS)
                turns.append(DemoTurn(f"{dialog}_{letter}{i:03d}", dialog, session,
                                      f"Ses{session:02d}{letter}", round(length, 3), int(v), int(a)))
    return turns


def write_demo_corpus(out: str | Path, *, seed: int = 0, speakers: int = 10,
                      turns_per_speaker: int = 30,
                      seconds: tuple[float, float, float] = (1.0, 3.5, 15.0)) -> Path:
    """Synthesise the demo corpus under `out` in the IEMOCAP layout (written to a temporary folder,
    then renamed; an older demo corpus there is replaced, any other folder refused)."""
    out = Path(out).expanduser().resolve()
    check_replaceable(out, "demo-corpus", "demo corpus", legacy=_written_before_the_marker)
    turns = plan_turns(seed, speakers, turns_per_speaker, seconds)
    with staged_folder(out, "demo-corpus") as tmp:
        _write_turns(tmp, turns, seed)
        marker = {"generator": "raylab.corpora.demo", "version": DEMO_VERSION, "seed": seed,
                  "speakers": speakers, "turns_per_speaker": turns_per_speaker, "seconds": list(seconds),
                  "cues": CUES}
        (tmp / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
    return out


def _written_before_the_marker(entries: set[str]) -> bool:
    """A demo corpus of an earlier raylab: its generator record and session folders, nothing else."""
    return MARKER_FILE in entries and all(e == MARKER_FILE or re.fullmatch(r"Session\d+", e)
                                          for e in entries)


def _write_turns(out: Path, turns: list[DemoTurn], seed: int) -> None:
    voice_rng = np.random.default_rng([seed, 2])
    voices = {f"Ses{s:02d}{x}": ((1.06 if x == "F" else 0.94) * voice_rng.uniform(0.97, 1.03))
              for s in range(1, 6) for x in "FM"}
    for index, turn in enumerate(turns):
        rng = np.random.default_rng([seed, 3, index])
        audio = synthesize_turn(turn.seconds, turn.valence, turn.arousal, voices[turn.speaker],
                                rng.uniform(0.9, 1.1), rng)
        wav = out / f"Session{turn.session}" / "sentences" / "wav" / turn.dialog / f"{turn.utterance_id}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        write_wav(wav, audio)
    write_label_files(out, turns, np.random.default_rng([seed, 4]))


def read_marker(root: str | Path) -> dict | None:
    """The generator record of a demo corpus, or None for any other corpus."""
    path = Path(root) / MARKER_FILE
    return json.loads(path.read_text()) if path.is_file() else None
