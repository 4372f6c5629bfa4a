"""The built-in demo dataset: the default `--data` of every command.

On first use the demo corpus is synthesised under `<results>/demo-corpus` (IEMOCAP layout) and
prepared with the real reader (evaluator E2) into `<results>/demo-data` (or `$RAYLAB_DEMO_DATA`).
Later calls reuse it while its `meta.json` records the same generator version and seed. A file lock
keeps two commands started at once from building it twice.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from raylab import DEFAULT_EVALUATOR
from raylab.data.corpora.demo import DEMO_VERSION, read_marker, write_demo_corpus
from raylab.data.dataset import read_meta
from raylab.errors import DataError
from raylab.runtime.settings import demo_data_dir

CORPUS_DIR = "demo-corpus"
TURNS_PER_SPEAKER = 30


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_current(dataset: Path, seed: int) -> bool:
    try:
        demo = read_meta(dataset).get("demo") or {}
    except DataError:
        return False
    return demo.get("version") == DEMO_VERSION and demo.get("seed") == seed


def ensure_demo_dataset(results_dir: Path, *, seed: int = 0, turns_per_speaker: int | None = None) -> Path:
    """Path of the prepared demo dataset, building it (a few seconds) if missing or stale.
    `turns_per_speaker` (default `TURNS_PER_SPEAKER`) only matters when it is built."""
    results_dir = Path(results_dir)
    dataset = demo_data_dir(results_dir)
    if _is_current(dataset, seed):
        return dataset
    from raylab.data.prepare import prepare_iemocap

    with _locked(results_dir / ".demo-data.lock"):
        if _is_current(dataset, seed):  # built by another process while we waited
            return dataset
        corpus = results_dir / CORPUS_DIR
        marker = read_marker(corpus) if corpus.is_dir() else None
        if not marker or marker.get("version") != DEMO_VERSION or marker.get("seed") != seed:
            # replaces an older demo corpus only: a folder of the user's there is refused
            write_demo_corpus(corpus, seed=seed, turns_per_speaker=turns_per_speaker or TURNS_PER_SPEAKER)
        prepare_iemocap(corpus, dataset, evaluator=DEFAULT_EVALUATOR)
    return dataset


def ensure_demo_features(dataset: str | os.PathLike, arch: str) -> None:
    """Compute the feature files network `arch` reads (MFCC, IS10) into `dataset`, reusing
    current ones; on Ray (the running one, else a local one started for the purpose)."""
    from raylab.data.features import KINDS, compute_features
    from raylab.models import model_class

    kinds = [k for k in model_class(arch).inputs if k in KINDS]
    if kinds:
        compute_features(str(dataset), kinds=kinds)


def resolve_data(data: str | None, results_dir: Path, arch: str | None = None) -> str:
    """`--data` as given, or the demo dataset (built on first use) when it was omitted, with the
    feature files of network `arch` when one is named."""
    if data:
        return data
    dataset = str(ensure_demo_dataset(results_dir))
    if arch is not None:
        ensure_demo_features(dataset, arch)
    return dataset
