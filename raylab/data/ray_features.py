"""The Ray side of `raylab features`: one Ray task per chunk of windows, each row group's audio
put in the object store once. `raylab.data.features.compute_features` holds the Ray session."""
from __future__ import annotations

import time

import numpy as np
import pyarrow.parquet as pq
import ray

from raylab.data.dataset import WINDOWS_FILE, filesystem_for
from raylab.data import features


def run_tasks(dataset_path, meta, ids, kinds, workers, progress):
    """Extract every window for `kinds`: a Ray task per chunk of windows, `workers` at once (in
    the caller's `ray_session`)."""
    slots = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    total, sr = len(ids), int(meta["sample_rate"])
    frames = features.mfcc_frames(int(meta["window_samples"]), sr)
    shapes = {k: (features.IS10_DIM,) if k == "is10" else (features.N_MFCC, frames) for k in kinds}
    values = {k: np.zeros((total, *shapes[k]), np.float32) for k in kinds}
    bad = {k: [] for k in kinds}
    seconds = dict.fromkeys(kinds, 0.0)
    task = ray.remote(num_cpus=1)(_extract_chunk)
    fns = ray.put({k: features.extractor(k) for k in kinds})  # looked up now: a replaced one travels
    pending: dict = {}
    chunk = max(1, min(64, -(-total // (slots * 4))))  # >= 4 chunks per slot balance the load
    done = 0

    def collect() -> None:  # wait for one task, file its rows
        nonlocal done
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            first = pending.pop(ref)
            for kind, (chunk_values, chunk_bad, took) in ray.get(ref).items():
                values[kind][first:first + len(chunk_values)] = chunk_values
                bad[kind].extend((first + row, why) for row, why in chunk_bad)
                seconds[kind] += took
            done += len(chunk_values)
            if progress is not None:
                progress(done, total)

    for ref, start, stop, first in _audio_chunks(dataset_path, meta, chunk):
        while len(pending) >= slots:
            collect()
        pending[task.remote(fns, ref, start, stop, sr, shapes)] = first
    while pending:
        collect()
    for kind in kinds:
        bad[kind].sort()
    return values, bad, seconds


def _audio_chunks(dataset_path, meta, chunk):
    """(object ref of a row group's int16 audio, start, stop, dataset row of audio[0]) per chunk;
    each row group is read once and put in the object store once, shared by its chunks."""
    fs, root = filesystem_for(dataset_path)
    samples = int(meta["window_samples"])
    with fs.open_input_file(f"{root}/{WINDOWS_FILE}") as handle:
        reader = pq.ParquetFile(handle)
        first = 0
        for group in range(reader.num_row_groups):
            column = reader.read_row_group(group, columns=["audio"]).column(0).combine_chunks()
            audio = column.flatten().to_numpy().reshape(len(column), samples)  # (rows, samples)
            ref = ray.put(audio)
            for start in range(0, len(audio), chunk):
                yield ref, start, min(start + chunk, len(audio)), first + start
            first += len(audio)


def _extract_chunk(fns: dict, audio: np.ndarray, start: int, stop: int, sr: int,
                   shapes: dict) -> dict[str, tuple[np.ndarray, list, float]]:
    """One Ray task: each kind's features of audio[start:stop] -> {kind: (values, bad, seconds)}."""
    waves = audio[start:stop].astype(np.float32) / 32768.0  # int16 -> [-1, 1), (n, samples)
    out = {}
    for kind, fn in fns.items():
        began = time.perf_counter()
        values = np.zeros((len(waves), *shapes[kind]), np.float32)
        bad = []
        for row, wave in enumerate(waves):
            try:
                result = np.asarray(fn(wave, sr), dtype=np.float32)
            except Exception as err:  # reported by window id, never written
                bad.append((row, f"{type(err).__name__}: {err}"))
                continue
            if result.shape != shapes[kind]:
                bad.append((row, f"shape {result.shape}, expected {shapes[kind]}"))
            elif not np.isfinite(result).all():
                bad.append((row, f"{int((~np.isfinite(result)).sum())} NaN/inf values"))
            else:
                values[row] = result
        out[kind] = (values, bad, time.perf_counter() - began)
    return out
