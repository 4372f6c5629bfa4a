"""Reading one utterance: a mono 16 kHz int16 WAV, or the reason it cannot be used."""
from __future__ import annotations

import os
import struct

import numpy as np
import soundfile as sf

from raylab.data.corpora.iemocap import Problem
from raylab.data.corpora.windows import SAMPLE_RATE


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


def load_utterance(path: str, utterance_id: str, resample: bool) -> tuple[np.ndarray | None, Problem | None]:
    """Mono int16 samples at 16 kHz, or the problem that prevents it."""
    def problem(reason: str, message: str) -> tuple[None, Problem]:
        return None, Problem(path, reason, message, utterance_id)

    if not os.path.isfile(path):
        return problem("missing_wav", f"no WAV for labelled turn {utterance_id}")
    try:
        with sf.SoundFile(path) as f:
            rate, channels, frames = f.samplerate, f.channels, f.frames
            audio = f.read(dtype="int16")
    except (sf.LibsndfileError, RuntimeError) as err:
        return problem("corrupt_wav", f"unreadable audio ({str(err).split(': ', 1)[-1]})")
    declared = _declared_data_bytes(path)
    if declared and declared[1] not in (0, 0xFFFFFFFF) and \
            declared[0] + declared[1] > os.path.getsize(path):
        have = os.path.getsize(path) - declared[0]
        return problem("truncated_wav", f"truncated: header declares {declared[1]} data bytes, "
                                        f"file holds {have}")
    if channels != 1:
        return problem("channels", f"{channels} channels, expected 1 (mono)")
    if len(audio) != frames or frames == 0:
        return problem("corrupt_wav" if frames else "empty_wav",
                       f"read {len(audio)} of {frames} frames" if frames else "no samples")
    if rate != SAMPLE_RATE:
        if not resample:
            return problem("sample_rate", f"sample rate {rate} Hz, expected {SAMPLE_RATE} "
                                          "(pass --resample to convert it with soxr)")
        import soxr

        audio = soxr.resample(audio, rate, SAMPLE_RATE)
    return audio, None
