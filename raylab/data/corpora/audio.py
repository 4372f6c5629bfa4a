"""Reading one utterance: mono 16 kHz int16 samples, or the reason it cannot be used.

Any format and subtype libsndfile reads (16/24/32-bit PCM, float and double WAV, FLAC...) is read
as float, where soundfile scales integer PCM into [-1, 1), then converted to the dataset's int16 by
`to_int16`: x * 32768 rounded, +1.0 clipped to 32767. A float file is refused, not rescaled, when a
sample is not finite or lies outside [-1, 1]: full scale is +-1.0, so such a file was written with
another scale or is clipped, and any gain raylab guessed would change the loudness that arousal is
heard in. (Reading float files straight as int16 truncated every sample to 0: silence.)
"""
from __future__ import annotations

import os
import struct

import numpy as np
import soundfile as sf

from raylab import SAMPLE_RATE
from raylab.data.corpora.iemocap import Problem


def _declared_data_bytes(path: str) -> tuple[int, int] | None:
    """(offset, declared size) of a RIFF/WAVE file's data chunk. Hand-written: libsndfile silently
    clamps a truncated data chunk to what is there, so truncation is invisible through soundfile."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if name == b"data":
                return f.tell(), size
            f.seek(size + (size & 1), os.SEEK_CUR)


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> int16 (x * 32768, rounded; +1.0 -> 32767). Exact for int16 input."""
    return np.clip(np.rint(audio * 32768.0), -32768, 32767).astype(np.int16)


def float_problem(audio: np.ndarray, rate: int) -> tuple[str, str] | None:
    """(reason, message) when float samples cannot be stored as they are: non-finite or beyond +-1."""
    finite = np.isfinite(audio)
    if not finite.all():
        bad = int(audio.size - np.count_nonzero(finite))
        first = int(np.argmin(finite))
        return "non_finite_audio", (f"{bad} non-finite sample(s) (NaN or inf), the first at sample "
                                    f"{first} ({first / rate:.3f} s)")
    peak = float(np.abs(audio).max(initial=0.0))
    if peak > 1.0:
        return "out_of_range_audio", (f"float samples peak at {peak:.4g}, beyond full scale [-1, 1]; "
                                      "rescale the file to a peak <= 1.0 (raylab does not guess a gain)")
    return None


def load_utterance(path: str, utterance_id: str, resample: bool,
                   downmix: bool = False) -> tuple[np.ndarray | None, Problem | None]:
    """Mono int16 samples at 16 kHz, or the problem that prevents it (see the module docstring).

    A file of several channels is refused, or with `downmix` averaged into one (`raylab predict`:
    the channels' mean, before the range check and the resampling)."""
    def problem(reason: str, message: str) -> tuple[None, Problem]:
        return None, Problem(path, reason, message, utterance_id)

    if not os.path.isfile(path):
        return problem("missing_wav", f"no WAV for labelled turn {utterance_id}")
    try:
        with sf.SoundFile(path) as f:
            rate, channels, frames = f.samplerate, f.channels, f.frames
            audio = f.read(dtype="float32")
    except (sf.LibsndfileError, RuntimeError) as err:
        return problem("corrupt_wav", f"unreadable audio ({str(err).split(': ', 1)[-1]})")
    declared = _declared_data_bytes(path)
    if declared and declared[1] not in (0, 0xFFFFFFFF) and \
            declared[0] + declared[1] > os.path.getsize(path):
        have = os.path.getsize(path) - declared[0]
        return problem("truncated_wav", f"truncated: header declares {declared[1]} data bytes, "
                                        f"file holds {have}")
    if channels != 1 and not downmix:
        return problem("channels", f"{channels} channels, expected 1 (mono)")
    if len(audio) != frames or frames == 0:
        return problem("corrupt_wav" if frames else "empty_wav",
                       f"read {len(audio)} of {frames} frames" if frames else "no samples")
    if audio.ndim == 2:
        audio = audio.mean(axis=1, dtype=np.float32)  # (frames, channels) -> (frames,)
    bad = float_problem(audio, rate)
    if bad:
        return problem(*bad)
    if rate != SAMPLE_RATE:
        if not resample:
            return problem("sample_rate", f"sample rate {rate} Hz, expected {SAMPLE_RATE} "
                                          "(pass --resample to convert it with soxr)")
        import soxr

        audio = soxr.resample(audio, rate, SAMPLE_RATE)  # may overshoot +-1 a little: clipped
    return to_int16(audio), None
