"""`raylab predict`: many files through the networks, their features on Ray tasks when many.

Each file is read, cut and turned into network inputs (`prepare`) either in this process or, for
more than `RAY_MIN_FILES` files with `workers` != 1, in Ray tasks (the opensmile and librosa work
is what costs); the networks then run here, in batches of windows, on the GPU when there is one.
A bad file (missing, unreadable, empty, ...) stops the run with a DataError naming it, or with
`skip_invalid` is listed in `PredictionRun.skipped` and the rest are predicted.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pandas as pd

from raylab.errors import DataError
from raylab.predict.audio import Clip, collect_inputs, read_clip
from raylab.predict.runner import Predictor, window_inputs
from raylab.predict.tables import predictions_frame

RAY_MIN_FILES = 8


@dataclass
class PredictionRun:
    """The table of `raylab.predict.tables`, the files left out and why, the notes per file."""

    frame: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    windows: int = 0


def prepare(path: str, window: int, inputs: tuple[str, ...], sample_rate: int
            ) -> tuple[Clip | None, dict[str, np.ndarray] | None, str | None]:
    """(clip, network inputs, None), or (None, None, the one-line problem)."""
    try:
        clip = read_clip(path, window)
        return clip, window_inputs(clip.windows, inputs, sample_rate), None
    except DataError as err:
        return None, None, str(err)


def _prepared_here(paths, predictor: Predictor) -> Iterator[tuple]:
    for path in paths:
        yield prepare(path, predictor.window, predictor.inputs, predictor.sample_rate)


def _prepared_on_ray(paths, predictor: Predictor, workers: int | None) -> Iterator[tuple]:
    """`prepare` on Ray tasks, at most `workers` (default: the cluster's CPUs) at once, in order."""
    import ray

    task = ray.remote(num_cpus=1)(prepare)
    slots = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    args = (predictor.window, predictor.inputs, predictor.sample_rate)
    queue = [task.remote(p, *args) for p in paths[:slots * 2]]
    following = iter(paths[slots * 2:])
    while queue:
        yield ray.get(queue.pop(0))
        nxt = next(following, None)
        if nxt is not None:
            queue.append(task.remote(nxt, *args))


def predict_paths(predictor: Predictor, paths: list[str], skip_invalid: bool = False,
                  workers: int | None = 1, progress: bool = True,
                  ray_log: str | os.PathLike | None = None,
                  verbose: bool = False) -> PredictionRun:
    """Predict every file `paths` names (files, folders, CSV manifests; `audio.collect_inputs`).
    When Ray starts, its output and its workers' go to `ray_log` (`raylab.runtime.console.quiet`;
    `verbose` keeps them on the terminal); a few files are predicted here and leave no log."""
    from tqdm import tqdm

    from raylab.runtime.console import stream

    listed = collect_inputs(paths)
    bad = [(path, f"{path}: {why}") for path, why in listed if why]
    if bad and not skip_invalid:
        raise DataError(bad[0][1] + (f" (and {len(bad) - 1} more; --skip-invalid predicts the "
                                     "rest)" if len(bad) > 1 else ""))
    files = [path for path, why in listed if not why]
    use_ray = workers != 1 and len(files) > RAY_MIN_FILES
    session = contextlib.ExitStack()
    if use_ray:
        from raylab.runtime.console import quiet
        from raylab.runtime.ray_session import ray_session

        session.enter_context(quiet(ray_log, verbose))
        session.enter_context(ray_session(None))
    run = PredictionRun(pd.DataFrame(), skipped=bad)
    bar = tqdm(total=len(files), unit="file", disable=None if progress else True, leave=False,
               file=stream())  # the terminal, also under `raylab.runtime.console.quiet`

    def good() -> Iterator[tuple[Clip, dict]]:
        source = _prepared_on_ray(files, predictor, workers) if use_ray else \
            _prepared_here(files, predictor)
        for path, (clip, inputs, problem) in zip(files, source):
            if problem is not None:
                if not skip_invalid:
                    raise DataError(problem + " (--skip-invalid predicts the rest)")
                run.skipped.append((path, problem))
                bar.update(1)
                continue
            run.notes.extend((clip.name, note) for note in clip.notes)
            yield clip, inputs

    with session, bar:
        results = predictor.predict_clips(good(), on_clip=lambda clip: bar.update(1))
    run.windows = sum(len(clip.windows) for clip, _ in results)
    run.frame = predictions_frame(results, predictor.window / predictor.sample_rate)
    if not results and not run.skipped:
        raise DataError("no audio files to predict")
    return run
