"""The prediction table: per window and per file, class probabilities on the paper's 1-5 scale.

One row per window (`level` "window", `window` 0, 1, ..., the seconds of the file it holds,
`start_s`/`end_s`; the rest of a window is zero padding) and
one per file (`level` "file": the mean of its windows' probabilities). Per dimension:
`<dim>_p1..<dim>_p5` (probability of rating 1..5; raylab's classes 0..4 are ratings 1..5, as
IEMOCAP's annotators rate), `<dim>_class` (the most probable rating, 1..5) and `<dim>_expected`
(sum of p * rating, on the 1..5 scale).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from raylab import DIMENSIONS, NUM_CLASSES
from raylab.errors import ConfigError
from raylab.predict.audio import Clip

RATINGS = np.arange(1, NUM_CLASSES + 1)
ID_COLUMNS = ("file", "level", "window", "start_s", "end_s")
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def prob_columns(dim: str) -> list[str]:
    return [f"{dim}_p{r}" for r in RATINGS]


def columns() -> list[str]:
    out = list(ID_COLUMNS)
    for dim in DIMENSIONS:
        out += [*prob_columns(dim), f"{dim}_class", f"{dim}_expected"]
    return out


def _scores(probs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for dim in DIMENSIONS:
        p = np.asarray(probs[dim], np.float64)
        for j, name in enumerate(prob_columns(dim)):
            out[name] = p[:, j]
        out[f"{dim}_class"] = p.argmax(axis=1) + 1  # class 0..4 -> rating 1..5
        out[f"{dim}_expected"] = p @ RATINGS
    return out


def clip_frame(clip: Clip, probs: dict[str, np.ndarray], window_seconds: float) -> pd.DataFrame:
    """The file's row, then its windows' rows."""
    k = len(clip.windows)
    starts = np.arange(k) * window_seconds
    windows = pd.DataFrame({"file": clip.name, "level": "window", "window": np.arange(k),
                            "start_s": starts, "end_s": np.minimum(starts + window_seconds, clip.seconds),
                            **_scores(probs)})
    mean = {d: np.asarray(probs[d], np.float64).mean(axis=0, keepdims=True) for d in DIMENSIONS}
    whole = pd.DataFrame({"file": clip.name, "level": "file", "window": -1, "start_s": 0.0,
                          "end_s": clip.seconds, **_scores(mean)})
    return pd.concat([whole, windows], ignore_index=True)[columns()]


def predictions_frame(results: list[tuple[Clip, dict]], window_seconds: float) -> pd.DataFrame:
    frames = [clip_frame(clip, probs, window_seconds) for clip, probs in results]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns())


def file_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["level"] == "file"].drop(columns=["level", "window", "start_s"])


def write_table(frame: pd.DataFrame, out: str | os.PathLike) -> Path:
    """CSV or Parquet by the suffix of `out`."""
    out = Path(out)
    kind = FORMATS.get(out.suffix.lower())
    if kind is None:
        raise ConfigError(f"--out {out}: expected a .csv or .parquet file")
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        frame.to_csv(out, index=False, float_format="%.6g")
    else:
        frame.to_parquet(out, index=False)
    return out


def summary(frame: pd.DataFrame) -> str:
    """One line per file: windows, most probable rating and expected rating per dimension."""
    is_file = frame["level"] == "file"
    files = frame[is_file]
    counts = (~is_file).groupby(is_file.cumsum()).sum()  # windows after each file row (repeats too)
    width = max([len(str(f)) for f in files["file"]] + [4])
    head = f"{'file':<{width}} {'windows':>7}" + "".join(
        f"  {dim + ' (1-5)':>16}" for dim in DIMENSIONS)
    lines = [head]
    for (_, row), count in zip(files.iterrows(), counts):
        cells = "".join(f"  {int(row[f'{d}_class']):>7} (E {row[f'{d}_expected']:.2f})"
                        for d in DIMENSIONS)
        lines.append(f"{row['file']:<{width}} {int(count):>7}{cells}")
    return "\n".join(lines)
