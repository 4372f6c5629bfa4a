"""The trained networks on audio windows: one fold's network, or the mean of several (ensemble).

Inputs are made exactly as in training: the waveform as int16 windows scaled by 1/32768 (in
`training.predict`), MFCC and IS10 by `raylab.data.features` from the same float32 windows that
`raylab features` extracts from, IS10 standardised with each fold's own training statistics
(stored in its checkpoint, `experiment.standardized`). An ensemble averages its members'
softmax probabilities per window.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from torch import nn

from raylab import DIMENSIONS, NUM_CLASSES, SAMPLE_RATE, WINDOW_SAMPLES
from raylab.errors import DataError
from raylab.predict.audio import Clip

BATCH_SIZE = 64


@dataclass
class Member:
    """One fold's network and its checkpoint's description (`checkpoint.load_model`'s info)."""

    fold: str
    model: nn.Module
    info: dict


class Predictor:
    """Loaded networks of one architecture and window length; `probabilities(windows)`."""

    def __init__(self, members: list[Member], device: str = "auto", batch_size: int = BATCH_SIZE,
                 source: str = "") -> None:
        from raylab.runtime.settings import pick_device

        if not members:
            raise DataError(f"{source or 'run'}: no network to predict with")
        arches = {m.info["name"] for m in members}
        windows = {self._window_of(m) for m in members}
        if len(arches) > 1 or len(windows) > 1:
            raise DataError(f"{source}: the folds' networks differ ({', '.join(sorted(arches))}; "
                            f"windows of {sorted(windows)} samples); predict with one --fold")
        self.members, self.source, self.batch_size = members, source, batch_size
        self.arch = arches.pop()
        self.window = windows.pop()
        self.sample_rate = int(members[0].info.get("sample_rate") or SAMPLE_RATE)
        self.device = pick_device(device)
        self.inputs = tuple(members[0].model.inputs)
        for m in members:
            m.model.to(self.device)

    @staticmethod
    def _window_of(member: Member) -> int:
        """The window length the network was trained on (6 s when the checkpoint does not say)."""
        value = member.info.get("window_samples") or member.model.config.get("input_samples")
        return int(value or WINDOW_SAMPLES)

    @classmethod
    def from_checkpoints(cls, checkpoints: dict[str, str | os.PathLike], device: str = "auto",
                         batch_size: int = BATCH_SIZE, source: str = "") -> "Predictor":
        """Load {fold: checkpoint file}; a file that is not a raylab checkpoint is a DataError."""
        from raylab.train.checkpoint import load_model

        members = []
        for fold, path in checkpoints.items():
            model, info = load_model(path)
            members.append(Member((info.get("extra") or {}).get("fold") or fold, model, info))
        return cls(members, device, batch_size, source)

    @property
    def folds(self) -> list[str]:
        return [m.fold for m in self.members]

    def describe(self) -> str:
        from raylab.models import DISPLAY_NAMES

        kind = (f"mean of {len(self.members)} fold networks ({', '.join(self.folds)})"
                if len(self.members) > 1 else f"the network of fold {self.folds[0]}")
        return (f"{DISPLAY_NAMES.get(self.arch, self.arch)}, {kind}; windows of "
                f"{self.window / self.sample_rate:g} s on {self.device}")

    def features(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        return window_inputs(windows, self.inputs, self.sample_rate)

    def probabilities(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{dim: (K, 5)} softmax probabilities, the mean over the members."""
        from raylab.train.fold import standardized
        from raylab.train.loop import ArraySet, predict

        n = len(next(iter(inputs.values())))
        if n == 0:
            return {d: np.zeros((0, NUM_CLASSES), np.float32) for d in DIMENSIONS}
        zeros = np.zeros(n, np.int64)
        arrays = ArraySet(dict(inputs), {d: zeros for d in DIMENSIONS}, np.arange(n))
        total = {d: np.zeros((n, NUM_CLASSES), np.float64) for d in DIMENSIONS}
        for m in self.members:
            data = standardized(arrays, m.info.get("feature_stats"))
            probs = predict(m.model, data, batch_size=self.batch_size, device=self.device)
            for d in DIMENSIONS:
                total[d] += probs[d]
        return {d: (total[d] / len(self.members)).astype(np.float32) for d in DIMENSIONS}

    def predict_clips(self, clips: Iterable[Clip | tuple[Clip, dict[str, np.ndarray]]],
                      on_clip: Callable[[Clip], None] | None = None) -> list[tuple[Clip, dict]]:
        """(clip, {dim: (K, 5)}) per clip (a clip may come with its `features` computed
        elsewhere); windows of several clips go through the networks in batches of at least
        `batch_size` windows."""
        out: list[tuple[Clip, dict]] = []
        pending: list[tuple[Clip, dict[str, np.ndarray]]] = []

        def flush() -> None:
            if not pending:
                return
            joined = {k: np.concatenate([f[k] for _, f in pending]) for k in self.inputs}
            probs = self.probabilities(joined)
            first = 0
            for clip, _ in pending:
                k = len(clip.windows)
                out.append((clip, {d: probs[d][first:first + k] for d in DIMENSIONS}))
                first += k
            pending.clear()

        for item in clips:
            clip, features = item if isinstance(item, tuple) else (item, None)
            pending.append((clip, features if features is not None else self.features(clip.windows)))
            if sum(len(c.windows) for c, _ in pending) >= self.batch_size:
                flush()
            if on_clip is not None:
                on_clip(clip)
        flush()
        return out


def window_inputs(windows: np.ndarray, inputs: tuple[str, ...], sample_rate: int) -> dict[str, np.ndarray]:
    """The network inputs of int16 windows (K, W), before standardisation."""
    from raylab.data.features import extractor

    out: dict[str, np.ndarray] = {}
    waves = None
    for kind in inputs:
        if kind == "waveform":
            out[kind] = windows  # int16, scaled by 1/32768 per batch in training.predict
            continue
        if waves is None:
            waves = windows.astype(np.float32) / 32768.0  # as features._extract_chunk
        fn = extractor(kind)
        out[kind] = np.stack([np.asarray(fn(w, sample_rate), np.float32) for w in waves])
    return out


def load_predictor(run: str, fold: str | None, results: Path, device: str = "auto",
                   batch_size: int = BATCH_SIZE) -> Predictor:
    """The network(s) `--run` names (`raylab.predict.runs`): every fold's (their mean) unless
    `fold` picks one."""
    from raylab.predict.runs import locate

    ref = locate(run, results)
    return Predictor.from_checkpoints(ref.pick(fold), device, batch_size,
                                      source=str(ref.run_dir or run))
