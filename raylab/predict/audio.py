"""Audio for prediction: which files the arguments name, each read and cut as in training.

Inputs are WAV or FLAC files, folders of them (searched recursively, sorted) and CSV manifests
(a `path` column, relative paths taken from the CSV's folder). Each file is read by
`raylab.data.corpora.audio.load_utterance` (any rate resampled with soxr to 16 kHz, several channels
averaged into one, float files beyond full scale refused) and cut by the training rule of
`raylab.data.corpora.windows` (W-sample windows, the last partial cut kept when longer than W/2,
a shorter file zero-padded to one window).
"""
from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from raylab.data.corpora.audio import load_utterance
from raylab import MIN_LAST_SECONDS, SAMPLE_RATE, WINDOW_SECONDS
from raylab.data.corpora.windows import cut_windows
from raylab.errors import DataError

AUDIO_SUFFIXES = (".wav", ".flac")
MANIFEST_SUFFIX = ".csv"


@dataclass
class Clip:
    """One file read and cut: int16 windows (K, W) and what was done to it."""

    name: str
    windows: np.ndarray
    seconds: float
    sample_rate: int
    channels: int
    notes: list[str] = field(default_factory=list)


def min_last_samples(window: int) -> int:
    """The shortest last cut that is kept: 3 s of 6 s, in proportion for other window lengths."""
    return int(round(window * MIN_LAST_SECONDS / WINDOW_SECONDS))


def _manifest_paths(manifest: Path) -> list[Path]:
    try:
        with open(manifest, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{manifest}: cannot read the manifest ({err})") from err
    if not rows or "path" not in rows[0]:
        raise DataError(f"{manifest}: a manifest needs a `path` column; found "
                        f"{', '.join(rows[0]) if rows else 'no rows'}")
    return [(manifest.parent / row["path"]) if not os.path.isabs(row["path"]) else Path(row["path"])
            for row in rows]


def collect_inputs(paths: list[str]) -> list[tuple[str, str | None]]:
    """(file, problem or None) for every file the arguments name, in their order.

    A path that does not exist, or a file that is neither audio nor a manifest, comes back with
    its problem; a folder without audio is one such entry."""
    out: list[tuple[str, str | None]] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            out.extend((str(p), None) for p in found)
            if not found:
                out.append((str(path), "a folder without .wav or .flac files"))
        elif not path.exists():
            out.append((str(path), "no such file or folder"))
        elif path.suffix.lower() == MANIFEST_SUFFIX:
            out.extend((str(p), None if p.is_file() else "listed in the manifest but missing")
                       for p in _manifest_paths(path))
        else:
            out.append((str(path), None))
    return out


def read_clip(path: str, window: int, name: str | None = None) -> Clip:
    """Read and cut one file (see the module docstring); a DataError names the file and why."""
    name = name or path
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise DataError(f"{name}: unreadable audio ({str(err).split(': ', 1)[-1]})") from err
    audio, problem = load_utterance(path, name, resample=True, downmix=True)
    if problem is not None:
        raise DataError(f"{name}: {problem.message}")
    notes = []
    if info.channels > 1:
        notes.append(f"{info.channels} channels downmixed to mono")
    if info.samplerate != SAMPLE_RATE:
        notes.append(f"resampled from {info.samplerate} Hz")
    windows = cut_windows(audio, window, min_last_samples(window))
    return Clip(name, windows, len(audio) / SAMPLE_RATE, info.samplerate, info.channels, notes)


def read_clip_bytes(data: bytes, window: int, name: str = "request",
                    max_seconds: float | None = None) -> Clip:
    """`read_clip` of audio file bytes (a WAV or FLAC upload); longer than `max_seconds` is refused
    before the samples are decoded."""
    if not data:
        raise DataError(f"{name}: empty body, expected WAV or FLAC bytes")
    with tempfile.NamedTemporaryFile(suffix=".audio") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            info = sf.info(tmp.name)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise DataError(f"{name}: not audio libsndfile reads (WAV, FLAC): "
                            f"{str(err).split(': ', 1)[-1]}") from err
        if max_seconds is not None and info.duration > max_seconds:
            raise TooLong(f"{name}: {info.duration:.1f} s of audio, more than the limit of "
                          f"{max_seconds:g} s")
        return read_clip(tmp.name, window, name)


class TooLong(DataError):
    """Audio longer than a service accepts."""
