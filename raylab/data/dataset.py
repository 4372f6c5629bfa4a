"""The dataset on disk: the contract every other part of raylab reads.

A dataset folder holds
- `windows.parquet`: one row per fixed-length window (`WINDOW_SCHEMA`), written in row groups so
  that a reader can stream it;
- `annotations.parquet`: every evaluator's rating of every turn (`ANNOTATION_SCHEMA`);
- `meta.json`: sample rate, window lengths, evaluator, source, counts, format version;
- `rejected.csv` (inputs left out by `--skip-invalid`), the feature files `raylab features` adds,
  and the marker `.raylab-folder` (`raylab.fsutil`): `--out` replaces a dataset folder only when
  it holds nothing else.

`DatasetWriter` writes into a hidden temporary folder and renames it into place only when
everything succeeded, so a failed or interrupted prepare leaves no half dataset and an existing
dataset is replaced only by a complete new one.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from raylab.errors import DataError
from raylab.runtime.fsutil import check_replaceable, replace_folder, temp_name, write_marker

FORMAT_VERSION = 1
WINDOWS_FILE = "windows.parquet"
ANNOTATIONS_FILE = "annotations.parquet"
META_FILE = "meta.json"
REJECTED_FILE = "rejected.csv"
FEATURE_FILES = {"is10": "features_is10.parquet", "mfcc": "features_mfcc.parquet"}
DATASET_FILES = frozenset({WINDOWS_FILE, ANNOTATIONS_FILE, META_FILE, REJECTED_FILE,
                           *FEATURE_FILES.values()})
ROW_GROUP_WINDOWS = 256  # 256 x 6 s of int16 = 49 MB per row group

LABEL_COLUMNS = ("window_id", "utterance_id", "speaker", "session", "slice", "valence", "arousal")


def window_schema(window_samples: int) -> pa.Schema:
    return pa.schema([
        ("window_id", pa.string()),
        ("utterance_id", pa.string()),
        ("speaker", pa.string()),
        ("session", pa.int16()),
        ("slice", pa.int16()),
        ("audio", pa.list_(pa.int16(), window_samples)),
        ("valence", pa.int8()),
        ("arousal", pa.int8()),
    ])


ANNOTATION_SCHEMA = pa.schema([
    ("utterance_id", pa.string()),
    ("evaluator", pa.string()),
    ("kind", pa.string()),          # "C" categorical or "A" dimensional
    ("valence", pa.float32()),      # ratings 1..5 as written (A lines); null where absent
    ("arousal", pa.float32()),
    ("dominance", pa.float32()),
    ("category", pa.string()),      # "Neutral;Frustration" (C lines); null on A lines
])


@dataclass
class Window:
    """One window as a writer receives it."""

    window_id: str
    utterance_id: str
    speaker: str
    session: int
    slice: int
    audio: np.ndarray  # int16, exactly window_samples long
    valence: int       # class 0..4
    arousal: int


def filesystem_for(path: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it, for a local folder or a URI (s3://, gs://...)."""
    text = str(path)
    if "://" in text and not text.startswith("file://"):
        try:
            return pafs.FileSystem.from_uri(text)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as err:
            raise DataError(f"{text}: cannot open this URI with pyarrow's filesystems ({err})") from err
    local = text[len("file://"):] if text.startswith("file://") else text
    return pafs.LocalFileSystem(), str(Path(local).expanduser().resolve())


class DatasetWriter:
    """Streams windows into a new dataset folder; `commit()` makes it appear atomically."""

    def __init__(self, out: str | os.PathLike, window_samples: int) -> None:
        self.out = Path(out).expanduser().resolve()
        self.window_samples = int(window_samples)
        check_replaceable(self.out, "dataset", "raylab dataset", known=DATASET_FILES,
                          legacy=_written_before_the_marker)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out.parent / temp_name(self.out.name)
        self.tmp.mkdir()
        self.schema = window_schema(self.window_samples)
        self._writer = pq.ParquetWriter(self.tmp / WINDOWS_FILE, self.schema)
        self._buffer: list[Window] = []
        self.count = 0

    def add(self, windows: Iterable[Window]) -> None:
        for window in windows:
            if window.audio.shape != (self.window_samples,) or window.audio.dtype != np.int16:
                raise AssertionError(f"window {window.window_id}: audio must be int16 "
                                     f"({self.window_samples},), got {window.audio.dtype} {window.audio.shape}")
            self._buffer.append(window)
            if len(self._buffer) >= ROW_GROUP_WINDOWS:
                self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        rows = self._buffer
        audio = np.stack([w.audio for w in rows]).reshape(-1)
        table = pa.table({
            "window_id": [w.window_id for w in rows],
            "utterance_id": [w.utterance_id for w in rows],
            "speaker": [w.speaker for w in rows],
            "session": pa.array([w.session for w in rows], pa.int16()),
            "slice": pa.array([w.slice for w in rows], pa.int16()),
            "audio": pa.FixedSizeListArray.from_arrays(pa.array(audio, pa.int16()), self.window_samples),
            "valence": pa.array([w.valence for w in rows], pa.int8()),
            "arousal": pa.array([w.arousal for w in rows], pa.int8()),
        }, schema=self.schema)
        self._writer.write_table(table, row_group_size=ROW_GROUP_WINDOWS)
        self.count += len(rows)
        self._buffer = []

    def write_text(self, name: str, text: str) -> None:
        (self.tmp / name).write_text(text)

    def commit(self, meta: dict[str, Any], annotations: pa.Table | None = None) -> Path:
        """Finish the files and move the folder into place (replacing an older dataset whole)."""
        self._flush()
        self._writer.close()
        if annotations is None:
            annotations = ANNOTATION_SCHEMA.empty_table()
        pq.write_table(annotations.cast(ANNOTATION_SCHEMA), self.tmp / ANNOTATIONS_FILE)
        meta = {"format_version": FORMAT_VERSION, "windows": self.count,
                "window_samples": self.window_samples, **meta}
        (self.tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        write_marker(self.tmp, "dataset")
        return replace_folder(self.tmp, self.out)

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp.exists():  # not committed: leave nothing behind
            self.abort()


def _written_before_the_marker(entries: set[str]) -> bool:
    """A dataset of an earlier raylab (no marker): its meta.json and windows, and only files raylab
    writes into a dataset."""
    return {META_FILE, WINDOWS_FILE} <= entries <= DATASET_FILES


@dataclass
class Dataset:
    """A loaded dataset: label columns as numpy arrays, audio as one (N, samples) int16 matrix."""

    path: str
    meta: dict[str, Any]
    window_id: np.ndarray
    utterance_id: np.ndarray
    speaker: np.ndarray
    session: np.ndarray
    slice: np.ndarray
    valence: np.ndarray
    arousal: np.ndarray
    audio: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.window_id)

    @property
    def sample_rate(self) -> int:
        return int(self.meta["sample_rate"])

    @property
    def speakers(self) -> list[str]:
        return sorted(set(self.speaker.tolist()))

    def labels(self, dimension: str) -> np.ndarray:
        return getattr(self, dimension)


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    fs, root = filesystem_for(path)
    try:
        with fs.open_input_stream(f"{root}/{META_FILE}") as stream:
            return json.loads(stream.read().decode())
    except FileNotFoundError as err:
        raise DataError(f"{path}: not a raylab dataset (no {META_FILE}); "
                        "make one with `raylab data prepare iemocap|manifest ... --out DIR`") from err
    except json.JSONDecodeError as err:
        raise DataError(f"{path}/{META_FILE}: not valid JSON ({err})") from err


def load_dataset(path: str | os.PathLike, audio: bool = True) -> Dataset:
    """Read a dataset folder (local or a pyarrow-readable URI); `audio=False` skips the waveforms."""
    meta = read_meta(path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}/{META_FILE}: format_version {meta.get('format_version')!r}, "
                        f"this raylab reads {FORMAT_VERSION}; prepare the dataset again")
    fs, root = filesystem_for(path)
    try:
        with fs.open_input_file(f"{root}/{WINDOWS_FILE}") as handle:
            parquet = pq.ParquetFile(handle)
            # batch by batch: a whole-file read of these small columns took ~5x the audio in
            # Arrow's pool (pyarrow 25)
            table = pa.Table.from_batches(
                list(parquet.iter_batches(batch_size=4096, columns=list(LABEL_COLUMNS))),
                pa.schema([parquet.schema_arrow.field(name) for name in LABEL_COLUMNS]))
            waves = _read_audio(parquet, path, int(meta["window_samples"])) if audio else None
    except (FileNotFoundError, pa.ArrowInvalid) as err:
        raise DataError(f"{path}/{WINDOWS_FILE}: cannot read ({err})") from err
    except (KeyError, AttributeError, ValueError) as err:  # a missing column, a ragged audio column
        raise DataError(f"{path}/{WINDOWS_FILE}: not a raylab windows table (columns "
                        f"{', '.join(LABEL_COLUMNS)} and fixed-size audio): {err}") from err
    data = {name: table.column(name).to_numpy() for name in LABEL_COLUMNS}
    return Dataset(path=str(path), meta=meta, audio=waves, **data)


def _read_audio(parquet: pq.ParquetFile, path: str | os.PathLike, samples: int) -> np.ndarray:
    """The audio column as one (N, samples) int16 array, decoded a few windows at a time.

    The peak is the array plus one row group's decoding buffers (~0.2 GB). Reading the whole
    column and combining its chunks held about 4.5x the audio in Arrow's memory pool at once,
    which its allocator then kept: the driver of every search and ten-fold run paid that.
    """
    stored = parquet.schema_arrow.field("audio").type.list_size
    if stored != samples:
        raise DataError(f"{path}/{META_FILE}: window_samples {samples}, but {WINDOWS_FILE} holds "
                        f"windows of {stored} samples; prepare the dataset again")
    waves = np.empty((parquet.metadata.num_rows, samples), dtype=np.int16)
    row = 0
    for batch in parquet.iter_batches(batch_size=64, columns=["audio"]):
        chunk = batch.column(0)
        waves[row:row + len(chunk)] = chunk.flatten().to_numpy().reshape(len(chunk), samples)
        row += len(chunk)
    if row != len(waves):
        raise DataError(f"{path}/{WINDOWS_FILE}: {len(waves)} windows listed, {row} audio rows read")
    pa.default_memory_pool().release_unused()
    return waves


def dataset_record(dataset: Dataset) -> dict[str, Any]:
    """What a run records of the dataset it read (MLflow's dataset input): its folder's name, its
    location, a digest and a profile (windows, speakers, evaluator, corpus, sample rate).

    The digest covers `meta.json` and every window's id, speaker and labels, so a dataset
    prepared with another evaluator, rule or corpus gets another digest; it leaves the audio out,
    which would take minutes to read on IEMOCAP.
    """
    import hashlib

    digest = hashlib.sha256(json.dumps(dataset.meta, sort_keys=True, default=str).encode())
    for column in (dataset.window_id, dataset.speaker, dataset.valence, dataset.arousal):
        digest.update("\n".join(map(str, column.tolist())).encode())
    meta = dataset.meta
    profile = {"windows": len(dataset), "speakers": len(dataset.speakers),
               "evaluator": meta.get("evaluator"), "corpus": meta.get("corpus"),
               "sample_rate": meta.get("sample_rate"), "window_samples": meta.get("window_samples")}
    return {"name": Path(str(dataset.path).rstrip("/")).name, "digest": digest.hexdigest()[:16],
            "source": str(dataset.path), "profile": profile}
