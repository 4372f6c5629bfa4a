"""The input features of LoM and FTR (paper sections 2.2.1-2.2.2), computed once per dataset.

- IS10: openSMILE's INTERSPEECH 2010 Paralinguistic Challenge set, 1582 functionals per window,
  stored as `features_is10.parquet` (window_id + one float32 column per feature, opensmile's names).
- MFCC: 26 coefficients, 25 ms window, 10 ms hop, 1024-point FFT, 599 frames per 6 s window
  (librosa), stored as `features_mfcc.parquet` (window_id + `mfcc`, a fixed-size list of 26*599
  float32, row-major (26, 599)).

Both files sit beside `windows.parquet`, rows in its order. `compute_features` spreads the windows
over Ray tasks and never writes a file with a failed or non-finite window in it.
"""
from __future__ import annotations

import functools
import json
import os
import time
import warnings
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from raylab import IS10_DIM, MFCC_SHAPE
from raylab.data.dataset import FEATURE_FILES, WINDOWS_FILE, filesystem_for, read_meta
from raylab.errors import ConfigError, DataError
from raylab.runtime.fsutil import temp_name

KINDS = ("is10", "mfcc")
N_MFCC = MFCC_SHAPE[0]
MFCC_WIN_S = 0.025   # sec. 2.2.1: "standard window size of 25 ms"
MFCC_HOP_S = 0.010   # "commonly used shift of 10 ms"
MFCC_N_FFT = 1024    # "frequency resolution of 1024": a 1024-point FFT
MFCC_N_MELS = 26     # assumption: 26 mel bands, as 26 coefficients and 599 frames suggest
META_KEY = b"raylab.features"


@functools.lru_cache(maxsize=1)
def _smile():
    """One openSMILE extractor per process (building it parses the config: ~0.2 s)."""
    import opensmile

    return opensmile.Smile(feature_set=opensmile.FeatureSet.IS10,
                           feature_level=opensmile.FeatureLevel.Functionals)


def feature_names_is10() -> list[str]:
    """opensmile's names of the 1582 IS10 functionals, in its order."""
    return list(_smile().feature_names)


def extract_is10(wave: np.ndarray, sr: int) -> np.ndarray:
    """The 1582 IS10 functionals of one float32 waveform in [-1, 1] -> (1582,) float32.

    A signal too short for openSMILE comes back as NaN (opensmile's rule), which the caller reports.
    """
    # opensmile scales by 32768 into int16: keep 1.0 from wrapping round to -32768
    wave = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 32767 / 32768)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Segment too short, filling with NaN."
        values = _smile()(wave, int(sr))  # (channels=1, 1582, frames=1)
    return values.reshape(-1).astype(np.float32, copy=False)


def mfcc_geometry(sr: int) -> tuple[int, int, int]:
    """(window, hop, n_fft) in samples: 25 ms, 10 ms and 1024 (400, 160, 1024 at 16 kHz)."""
    win, hop = round(MFCC_WIN_S * sr), round(MFCC_HOP_S * sr)
    n_fft = max(MFCC_N_FFT, 1 << (win - 1).bit_length())
    return win, hop, n_fft


def mfcc_frames(samples: int, sr: int) -> int:
    """Frames of a window: 1 + ceil((samples - win) / hop), the last frame zero-padded.

    This is the framing of python_speech_features (frames of `win` samples every `hop`, a partial
    last frame kept), which gives the paper's 599 frames for 96 000 samples: 1 + ceil(95600 / 160).
    librosa's own choices give 601 (center=True) or 594 (center=False, 1024-sample frames).
    """
    win, hop, _ = mfcc_geometry(sr)
    return 1 if samples <= win else 1 + -(-(samples - win) // hop)


def extract_mfcc(wave: np.ndarray, sr: int) -> np.ndarray:
    """26 MFCCs of one float32 waveform -> (26, frames) float32; (26, 599) for 6 s at 16 kHz.

    Frame t covers samples [t*hop, t*hop + win) under a Hann window, zero-padded to a 1024-point FFT
    (`mfcc_frames`). librosa centres a `win_length` window inside each `n_fft` frame, so the signal
    is padded by (n_fft - win) // 2 in front and with zeros behind to fill the last frame, and
    framed with center=False. The rest is librosa's default MFCC (mel power in dB, DCT-II ortho).
    """
    import librosa

    wave = np.asarray(wave, dtype=np.float32)
    win, hop, n_fft = mfcc_geometry(sr)
    frames = mfcc_frames(len(wave), sr)
    front = (n_fft - win) // 2
    back = (frames - 1) * hop + n_fft - len(wave) - front
    padded = np.pad(wave, (front, back))  # (front + samples + back,) = ((frames-1)*hop + n_fft,)
    mfcc = librosa.feature.mfcc(y=padded, sr=int(sr), n_mfcc=N_MFCC, n_fft=n_fft, win_length=win,
                                hop_length=hop, center=False, n_mels=MFCC_N_MELS)
    assert mfcc.shape == (N_MFCC, frames), mfcc.shape
    return mfcc.astype(np.float32, copy=False)


def extractor(kind: str) -> Callable[[np.ndarray, int], np.ndarray]:
    """The extraction function of a kind, looked up at call time (so tests can replace it)."""
    return {"is10": extract_is10, "mfcc": extract_mfcc}[check_kinds([kind])[0]]


def check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ConfigError(f"feature kinds {list(kinds)}: expected one or more of "
                          f"{', '.join(KINDS)}")
    return tuple(k for k in KINDS if k in kinds)


def feature_params(kind: str, meta: dict) -> dict:
    """What the stored features depend on: a file made with other values is stale."""
    sr, samples = int(meta["sample_rate"]), int(meta["window_samples"])
    if kind == "is10":
        import opensmile

        return {"kind": kind, "sample_rate": sr, "window_samples": samples, "feature_set": "IS10",
                "level": "functionals", "opensmile": opensmile.__version__, "dim": IS10_DIM}
    win, hop, n_fft = mfcc_geometry(sr)
    return {"kind": kind, "sample_rate": sr, "window_samples": samples, "n_mfcc": N_MFCC,
            "win": win, "hop": hop, "n_fft": n_fft, "n_mels": MFCC_N_MELS,
            "frames": mfcc_frames(samples, sr)}


def feature_table(kind: str, window_ids: np.ndarray, values: np.ndarray, params: dict) -> pa.Table:
    """The stored table: (N, 1582) -> 1582 named columns; (N, 26, F) -> one fixed-size list."""
    ids = pa.array(window_ids, pa.string())
    if kind == "is10":
        columns = {"window_id": ids}
        columns.update({name: values[:, j] for j, name in enumerate(feature_names_is10())})
        table = pa.table(columns)
    else:
        flat = pa.array(values.reshape(-1), pa.float32())  # row-major (N, 26*F)
        table = pa.table({"window_id": ids,
                          "mfcc": pa.FixedSizeListArray.from_arrays(flat, values[0].size)})
    return table.replace_schema_metadata({META_KEY: json.dumps(params, sort_keys=True).encode()})


def write_features(dataset_path: str | os.PathLike, kind: str, table: pa.Table) -> str:
    """Write under a temporary name, then rename: a reader never sees half a file."""
    fs, root = filesystem_for(dataset_path)
    final = f"{root}/{FEATURE_FILES[kind]}"
    tmp = f"{root}/{temp_name(FEATURE_FILES[kind])}"
    try:
        with fs.open_output_stream(tmp) as stream:
            pq.write_table(table, stream, row_group_size=256)
        fs.move(tmp, final)
    except BaseException:
        if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
            fs.delete_file(tmp)
        raise
    return final


def stored_state(dataset_path: str | os.PathLike, kind: str, window_ids: np.ndarray,
                 params: dict) -> str:
    """"missing", "current", or why the stored file no longer fits the dataset."""
    fs, root = filesystem_for(dataset_path)
    path = f"{root}/{FEATURE_FILES[kind]}"
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return "missing"
    try:
        with fs.open_input_file(path) as handle:
            reader = pq.ParquetFile(handle)
            stored_params = json.loads((reader.schema_arrow.metadata or {}).get(META_KEY, b"{}"))
            stored_ids = reader.read(columns=["window_id"]).column(0).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, OSError, KeyError, ValueError) as err:
        return f"unreadable ({err})"
    if stored_params != params:
        changed = sorted(k for k in params.keys() | stored_params.keys()
                         if params.get(k) != stored_params.get(k))
        return f"made with other settings ({', '.join(changed)})"
    if len(stored_ids) != len(window_ids) or not np.array_equal(stored_ids, window_ids):
        return f"its {len(stored_ids)} window ids differ from the dataset's {len(window_ids)}"
    return "current"


def dataset_window_ids(dataset_path: str | os.PathLike) -> np.ndarray:
    """The dataset's window ids in row order (reads one column)."""
    fs, root = filesystem_for(dataset_path)
    try:
        table = pq.read_table(f"{root}/{WINDOWS_FILE}", columns=["window_id"], filesystem=fs)
    except (FileNotFoundError, pa.ArrowInvalid) as err:
        raise DataError(f"{dataset_path}/{WINDOWS_FILE}: cannot read ({err})") from err
    return table.column(0).to_numpy(zero_copy_only=False)


def load_features(dataset_path: str | os.PathLike, kind: str,
                  window_ids: Sequence[str] | np.ndarray | None = None) -> np.ndarray:
    """Stored features as float32, (N, 1582) or (N, 26, 599), rows aligned to `window_ids`
    (default: the dataset's row order). A window holding NaN or inf is a DataError naming it:
    training on it only yields a NaN loss."""
    kind = check_kinds([kind])[0]
    fs, root = filesystem_for(dataset_path)
    path = f"{root}/{FEATURE_FILES[kind]}"
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        raise DataError(f"{dataset_path}: no {FEATURE_FILES[kind]}; compute it with "
                        f"`raylab features {dataset_path} --{kind}`")
    try:
        table = pq.read_table(path, filesystem=fs)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"{dataset_path}/{FEATURE_FILES[kind]}: cannot read ({err}); compute it "
                        f"again with `raylab features {dataset_path} --{kind} --force`") from err
    stored = table.column("window_id").to_numpy(zero_copy_only=False)
    wanted = dataset_window_ids(dataset_path) if window_ids is None else np.asarray(window_ids)
    rows = _positions(stored, wanted, f"{dataset_path}/{FEATURE_FILES[kind]}", kind)
    if kind == "is10":
        values = np.stack([table.column(j).to_numpy() for j in range(1, table.num_columns)], axis=1)
    else:
        column = table.column("mfcc").combine_chunks()
        values = column.values.to_numpy().reshape(len(table), N_MFCC, -1)  # (N, 26, F)
    values = np.ascontiguousarray(values if rows is None else values[rows], dtype=np.float32)
    finite = np.isfinite(values).reshape(len(values), -1).all(axis=1)
    if not finite.all():
        ids = np.asarray(wanted)[~finite].tolist()
        raise DataError(f"{dataset_path}/{FEATURE_FILES[kind]}: {len(ids)} window(s) hold NaN or "
                        f"inf values: {_listing(ids, 5)}; compute them again with `raylab features "
                        f"{dataset_path} --{kind} --force`")
    return values


def _positions(stored: np.ndarray, wanted: np.ndarray, where: str, kind: str) -> np.ndarray | None:
    """Row of each wanted id in the stored file (None: already in order)."""
    if len(stored) == len(wanted) and np.array_equal(stored, wanted):
        return None
    index = {wid: row for row, wid in enumerate(stored.tolist())}
    missing = [wid for wid in wanted.tolist() if wid not in index]
    if missing:
        raise DataError(f"{where}: {len(missing)} requested window id(s) not stored: "
                        f"{_listing(missing, 5)}; if the dataset changed, run "
                        f"`raylab features <dataset> --{kind} --force`")
    return np.fromiter((index[wid] for wid in wanted.tolist()), dtype=np.int64, count=len(wanted))


def _listing(items: list, limit: int) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(map(str, items[:limit])) + more


def compute_features(dataset_path: str | os.PathLike, kinds: Sequence[str] = KINDS,
                     workers: int | None = None, force: bool = False,
                     progress: Callable[[int, int], None] | None = None,
                     address: str | None = None) -> dict[str, dict]:
    """Compute a dataset's feature files on Ray, reusing current ones unless `force`.

    Returns {kind: {"windows", "seconds", "wall_seconds", "path", "status"}}: status "written",
    "reused" or "recomputed: ..." (with why); seconds = this kind's extraction time summed over
    tasks, wall_seconds = the whole run's (all kinds come from one pass over the audio).
    `workers` caps the tasks running at once (default: every CPU of the Ray cluster); Ray starts
    locally unless it is running or `address` names a cluster. A window that fails or gives
    NaN/inf is a DataError listing its id, and its kind's file is not written.
    """
    kinds = check_kinds(kinds)
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: expected a positive number of parallel tasks")
    meta = read_meta(dataset_path)
    ids = dataset_window_ids(dataset_path)
    report, todo = {}, {}
    for kind in kinds:
        params = feature_params(kind, meta)
        state = stored_state(dataset_path, kind, ids, params)
        path = f"{filesystem_for(dataset_path)[1]}/{FEATURE_FILES[kind]}"
        if state == "current" and not force:
            report[kind] = {"windows": len(ids), "seconds": 0.0, "wall_seconds": 0.0, "path": path,
                            "status": "reused"}
        else:
            todo[kind] = (params, {"missing": "written", "current": "recomputed: --force"}.get(
                state, f"recomputed: stale, {state}"))
    if not todo:
        return report
    began = time.perf_counter()
    from raylab.data.ray_features import run_tasks
    from raylab.runtime.ray_session import ray_session

    with ray_session(address, include_dashboard=False, configure_logging=False,
                     host_allocator=False):
        values, bad, seconds = run_tasks(dataset_path, meta, ids, tuple(todo), workers, progress)
    wall = time.perf_counter() - began
    failures = []
    for kind, (params, status) in todo.items():
        if bad[kind]:
            listed = _listing([f"{ids[row]} ({why})" for row, why in bad[kind]], 20)
            failures.append(f"{FEATURE_FILES[kind]} not written: {len(bad[kind])} window(s) failed "
                            f"or gave NaN/inf: {listed}")
            continue
        path = write_features(dataset_path, kind, feature_table(kind, ids, values[kind], params))
        report[kind] = {"windows": len(ids), "seconds": seconds[kind], "wall_seconds": wall,
                        "path": path, "status": status}
    if failures:
        raise DataError(f"{dataset_path}: " + "; ".join(failures))
    return report
