"""Corpus -> dataset: read each labelled utterance, check it, cut it into windows, stream them out.

Utterances are processed in chunks by `workers` processes; results come back in the input order and
go straight into `DatasetWriter`, at most a few chunks in flight, so memory does not grow with the
corpus. Every problem (unreadable, truncated or multi-channel WAV, wrong sample rate, missing WAV,
float samples not finite or beyond full scale, malformed label block) is collected. By default any problem means: list them all, write nothing.
With `skip_invalid` the dataset is written without them and `rejected.csv` names each one.
"""
from __future__ import annotations

import csv
import io
import multiprocessing as mp
import os
import time
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa

from raylab import (DEFAULT_EVALUATOR, DIMENSIONS, MIN_LAST_SECONDS, NUM_CLASSES, PAPER_WINDOWS,
                    SAMPLE_RATE, WINDOW_SECONDS)
from raylab.data.corpora.audio import load_utterance
from raylab.data.corpora.iemocap import Problem
from raylab.data.corpora.windows import cut_windows, window_id
from raylab.data.dataset import REJECTED_FILE, DatasetWriter, Window
from raylab.errors import DataError

CHUNK = 16  # utterances per task


@dataclass(frozen=True)
class Item:
    """One labelled utterance to turn into windows."""

    utterance_id: str
    wav: str
    speaker: str
    session: int
    valence: int
    arousal: int


@dataclass
class Summary:
    path: Path | None
    windows: int
    utterances: int
    speakers: dict[str, int]
    skipped: dict[str, int]
    rejected: list[Problem]
    audio_seconds: float
    wall_seconds: float
    meta: dict = field(default_factory=dict)


def _process(items: list[Item], window: int, min_last: int, resample: bool
             ) -> list[tuple[np.ndarray | None, Problem | None, float]]:
    out = []
    for item in items:
        audio, problem = load_utterance(item.wav, item.utterance_id, resample)
        if problem:
            out.append((None, problem, 0.0))
        else:
            out.append((cut_windows(audio, window, min_last), None, len(audio) / SAMPLE_RATE))
    return out


def _ordered(items: list[Item], workers: int, args: tuple) -> Iterator[tuple[Item, tuple]]:
    """Results per item in input order, with at most 2 x workers chunks in flight."""
    size = max(1, min(CHUNK, -(-len(items) // (4 * workers))))  # >= 4 chunks per worker
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield from zip(chunk, _process(chunk, *args))
        return
    # forkserver: forking a process that already runs threads (torch, Ray) can deadlock
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("forkserver")) as pool:
        pending: list[tuple[list[Item], Future]] = []
        feed = iter(chunks)
        for chunk in feed:
            pending.append((chunk, pool.submit(_process, chunk, *args)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            chunk, future = pending.pop(0)
            yield from zip(chunk, future.result())
            nxt = next(feed, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_process, nxt, *args)))


def _rejected_csv(problems: Iterable[Problem]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["where", "utterance_id", "reason", "message"])
    for p in problems:
        writer.writerow([p.where, p.utterance_id or "", p.reason, p.message])
    return buffer.getvalue()


def write_dataset(items: list[Item], out: str | Path, *, window: int, min_last: int,
                  problems: list[Problem], meta: dict, annotations: pa.Table | None,
                  skipped: dict[str, int], skip_invalid: bool = False, resample: bool = False,
                  workers: int | None = None, log: Callable[[str], None] | None = None) -> Summary:
    """Window every item into a new dataset at `out` (see the module docstring for problems)."""
    started = time.perf_counter()
    problems = list(problems)
    bad_ids = {p.utterance_id for p in problems if p.utterance_id}
    items = [i for i in items if i.utterance_id not in bad_ids]
    workers = max(1, workers or os.cpu_count() or 1)
    speakers: Counter = Counter()
    utterances, seconds = 0, 0.0
    with DatasetWriter(out, window) as writer:
        for item, (windows, problem, length) in _ordered(items, workers, (window, min_last, resample)):
            if problem:
                problems.append(problem)
                continue
            seconds += length
            if problems and not skip_invalid:
                continue  # keep checking to list every problem, but nothing will be written
            utterances += 1
            speakers[item.speaker] += len(windows)
            writer.add(Window(window_id(item.utterance_id, k), item.utterance_id, item.speaker,
                              item.session, k, w, item.valence, item.arousal)
                       for k, w in enumerate(windows))
        if problems and not skip_invalid:
            for p in problems:
                (log or (lambda _: None))(str(p))
            raise DataError(f"{len(problems)} problem(s) in {meta.get('source')} (first: {problems[0]}); "
                            "nothing written; fix them or pass --skip-invalid to leave them out "
                            f"(listed in {REJECTED_FILE})")
        if not utterances:
            raise DataError(f"{meta.get('source')}: no utterance left to write "
                            f"(skipped: {dict(skipped) or 'none'}, problems: {len(problems)})")
        skipped = dict(skipped)
        for reason, count in Counter(p.reason for p in problems).items():
            skipped[reason] = skipped.get(reason, 0) + count
        if problems:
            writer.write_text(REJECTED_FILE, _rejected_csv(problems))
        full_meta = {**meta, "sample_rate": SAMPLE_RATE, "min_last_samples": min_last,
                     "speakers": dict(sorted(speakers.items())), "utterances": utterances,
                     "skipped": skipped, "audio_seconds": round(seconds, 3)}
        path = writer.commit(full_meta, annotations)
        total = writer.count
    return Summary(path, total, utterances, dict(sorted(speakers.items())), skipped, problems,
                   seconds, time.perf_counter() - started, full_meta)


def prepare_iemocap(root: str | Path, out: str | Path, *, evaluator: str = DEFAULT_EVALUATOR,
                    window_seconds: float = WINDOW_SECONDS, min_last_seconds: float = MIN_LAST_SECONDS,
                    skip_invalid: bool = False, resample: bool = False, workers: int | None = None,
                    log: Callable[[str], None] | None = None) -> Summary:
    """An IEMOCAP release (or the demo corpus, which has its layout) -> dataset at `out`."""
    from raylab.data.corpora import iemocap
    from raylab.data.corpora.demo import read_marker
    from raylab.data.corpora.windows import window_lengths

    window, min_last = window_lengths(window_seconds, min_last_seconds)
    corpus = iemocap.read_corpus(root)
    iemocap.check_evaluator(corpus.turns, evaluator, corpus.root)
    items, unrated = [], 0
    broken = {p.utterance_id for p in corpus.problems}
    for turn in corpus.turns:
        if turn.utterance_id in broken:
            continue  # counted under its problem's reason, not as unrated
        labels = iemocap.labels_for(turn, evaluator)
        if labels is None:
            unrated += 1
            continue
        items.append(Item(turn.utterance_id, str(turn.wav), turn.speaker, turn.session, *labels))
    marker = read_marker(corpus.root)
    meta = {"corpus": "demo" if marker else "iemocap", "evaluator": evaluator,
            "source": str(corpus.root), "label_rule": "class = round_half_up(rating) - 1",
            "turns": len(corpus.turns)}
    if marker:
        meta["demo"] = {k: marker[k] for k in ("version", "seed", "speakers", "turns_per_speaker")}
    return write_dataset(items, out, window=window, min_last=min_last, problems=corpus.problems,
                         meta=meta, annotations=iemocap.annotations_table(corpus.turns),
                         skipped={"unrated": unrated} if unrated else {},
                         skip_invalid=skip_invalid, resample=resample, workers=workers, log=log)


def prepare_manifest(manifest: str | Path, out: str | Path, *, labels: str = "ratings",
                     window_seconds: float = WINDOW_SECONDS, min_last_seconds: float = MIN_LAST_SECONDS,
                     skip_invalid: bool = False, resample: bool = False, workers: int | None = None,
                     log: Callable[[str], None] | None = None) -> Summary:
    """A CSV manifest (`path,speaker,valence,arousal`) -> dataset at `out`."""
    from raylab.data.corpora.manifest import read_manifest
    from raylab.data.corpora.windows import window_lengths

    window, min_last = window_lengths(window_seconds, min_last_seconds)
    rows, problems, annotations = read_manifest(manifest, labels)
    items = [Item(r["utterance_id"], r["wav"], r["speaker"], r["session"], r["valence"], r["arousal"])
             for r in rows]
    meta = {"corpus": "manifest", "evaluator": "manifest", "labels": labels,
            "source": str(Path(manifest).expanduser().resolve())}
    return write_dataset(items, out, window=window, min_last=min_last, problems=problems, meta=meta,
                         annotations=annotations, skipped={}, skip_invalid=skip_invalid,
                         resample=resample, workers=workers, log=log)


# The paper's full release labelled by E2: 8522 windows (section 3.1), and the most frequent label
# of the test sets' prior, arousal 3 and valence 1 on the 1-5 scale (section 4.1): classes 2 and 0.
PAPER_MAJORITY = {"arousal": 2, "valence": 0}
IEMOCAP_SESSIONS = (1, 2, 3, 4, 5)


def paper_corpus_check(meta: dict, sessions: Iterable[int], labels: dict[str, np.ndarray]) -> list[str]:
    """On a dataset of the full IEMOCAP release (five sessions): its window count and majority
    classes beside the paper's, then a `warning:` line for each that differs. Nothing for other
    corpora (the demo, a manifest, a partial release)."""
    if meta.get("corpus") != "iemocap" or set(IEMOCAP_SESSIONS) - {int(s) for s in sessions}:
        return []
    windows = len(next(iter(labels.values())))
    evaluator = meta.get("evaluator")
    majority = {d: int(np.bincount(labels[d].astype(np.int64), minlength=NUM_CLASSES).argmax())
                for d in PAPER_MAJORITY}
    lines = [f"paper     {evaluator} windows {windows} (the paper: {PAPER_WINDOWS} with E2); "
             + "; ".join(f"most frequent {d} class {majority[d] + 1} (the paper: "
                         f"{PAPER_MAJORITY[d] + 1})"
                         for d in PAPER_MAJORITY)]
    if evaluator != DEFAULT_EVALUATOR:
        lines.append(f"warning: labelled by {evaluator}; the paper's figures are for evaluator "
                     f"{DEFAULT_EVALUATOR}")
    if windows != PAPER_WINDOWS:
        lines.append(f"warning: {windows} windows, not the paper's {PAPER_WINDOWS}: a different "
                     "release, evaluator or window rule gives other folds and baselines than "
                     "Table 5's")
    for dim, label in majority.items():
        if label != PAPER_MAJORITY[dim]:
            lines.append(f"warning: the most frequent {dim} class is {label + 1}, not the "
                         f"paper's {PAPER_MAJORITY[dim] + 1}: the most-frequent-label baseline "
                         "differs from Table 5's")
    return lines


def check_against_paper(path: str | Path) -> list[str]:
    """`paper_corpus_check` of the dataset at `path` (what `raylab data prepare` prints)."""
    from raylab.data.dataset import load_dataset

    data = load_dataset(path, audio=False)
    return paper_corpus_check(data.meta, np.unique(data.session),
                              {d: data.labels(d) for d in PAPER_MAJORITY})


def describe_dataset(path: str | Path) -> str:
    """What `raylab data info` prints: provenance, counts, windows and label histograms per speaker."""
    from raylab.data.dataset import load_dataset

    data = load_dataset(path, audio=False)
    meta, rate = data.meta, data.sample_rate
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(meta.get("skipped", {}).items())) or "none"
    lines = [f"dataset   {path} (corpus {meta.get('corpus')}, evaluator {meta.get('evaluator')}, "
             f"format {meta.get('format_version')})",
             f"source    {meta.get('source')}",
             f"windows   {len(data)} of {meta['window_samples'] / rate:g} s ({meta['window_samples']} "
             f"samples at {rate} Hz; last cut kept if > {meta.get('min_last_samples', 0) / rate:g} s) "
             f"from {meta.get('utterances')} utterances",
             f"skipped   {skipped}",
             "",
             f"{'speaker':<10}{'windows':>8}   valence classes 1-5        arousal classes 1-5"]
    groups = [(s, data.speaker == s) for s in data.speakers] + [("all", np.ones(len(data), bool))]
    for name, mask in groups:
        hist = [np.bincount(data.labels(dim)[mask].astype(np.int64), minlength=NUM_CLASSES)[:NUM_CLASSES]
                for dim in DIMENSIONS]
        cells = ["".join(f"{int(c):>5}" for c in h) for h in hist]
        lines.append(f"{name:<10}{int(mask.sum()):>8}   {cells[0]}   {cells[1]}")
    check = paper_corpus_check(meta, np.unique(data.session),
                               {d: data.labels(d) for d in PAPER_MAJORITY})
    return "\n".join(lines + ([""] + check if check else []))
