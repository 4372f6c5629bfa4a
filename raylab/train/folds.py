"""Leave-one-speaker-out folds (section 3.2) and the fixed split of the search (section 3.3).

A fold's test set is every window of one speaker; the other speakers' windows are shuffled
(seeded) and split 80/20 into training and validation, as the paper does (windows, not utterances:
the slices of one long utterance may fall on both sides of the train/validation line, never on the
test side). The test speaker cannot reach training or validation by construction, and
`check_no_leakage` asserts it at run time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from raylab.errors import ConfigError, DataError

# The search holds out the first speaker in sorted order (Ses01F on IEMOCAP) and never sees it.
SEARCH_TEST_SPEAKER = "Ses01F"


@dataclass(frozen=True)
class FoldSplit:
    """Row indices (into the dataset's order) of one fold's three parts."""

    test_speaker: str
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    seed: int = 0
    val_fraction: float = 0.2

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train_idx), "val": len(self.val_idx), "test": len(self.test_idx)}

    def describe(self, window_id: np.ndarray, speakers: np.ndarray) -> dict[str, Any]:
        """The fold file saved with a run: speaker -> part, counts and the window ids of each part."""
        roles = {str(s): ("test" if s == self.test_speaker else "train+val")
                 for s in sorted(set(np.asarray(speakers).tolist()))}
        return {"test_speaker": self.test_speaker, "seed": self.seed,
                "val_fraction": self.val_fraction, "speakers": roles, "counts": self.counts(),
                "window_ids": {part: np.asarray(window_id)[idx].tolist() for part, idx in
                               (("train", self.train_idx), ("val", self.val_idx),
                                ("test", self.test_idx))}}


def fold_split(speakers: Sequence[str] | np.ndarray, test_speaker: str,
               val_fraction: float = 0.2, seed: int = 0) -> FoldSplit:
    """Test = `test_speaker`'s windows; the rest shuffled with `seed` and cut 80/20."""
    speakers = np.asarray(speakers)
    available = sorted(set(speakers.tolist()))
    if test_speaker not in available:
        raise ConfigError(f"test speaker {test_speaker!r} has no windows in this dataset; "
                          f"speakers: {', '.join(available)}")
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction={val_fraction}: expected a fraction in [0, 1)")
    test_idx = np.flatnonzero(speakers == test_speaker)
    rest = np.flatnonzero(speakers != test_speaker)
    if rest.size == 0:
        raise DataError(f"only speaker {test_speaker} in the dataset: nothing left to train on")
    shuffled = np.random.default_rng(seed).permutation(rest)
    n_val = int(round(val_fraction * rest.size))
    if n_val >= rest.size:
        n_val = rest.size - 1
    split = FoldSplit(test_speaker, np.sort(shuffled[n_val:]), np.sort(shuffled[:n_val]),
                      test_idx, seed=seed, val_fraction=val_fraction)
    check_no_leakage(split, speakers)
    return split


def check_no_leakage(split: FoldSplit, speakers: Sequence[str] | np.ndarray) -> None:
    """Raise a DataError if a window of the test speaker is in training or validation, or if the
    parts overlap."""
    speakers = np.asarray(speakers)
    for part, idx in (("train", split.train_idx), ("validation", split.val_idx)):
        leaked = int(np.sum(speakers[idx] == split.test_speaker))
        if leaked:
            raise DataError(f"leakage: {leaked} windows of test speaker {split.test_speaker} "
                            f"in {part}")
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = np.intersect1d(getattr(split, f"{a}_idx"), getattr(split, f"{b}_idx")).size
        if shared:
            raise DataError(f"leakage: {shared} windows in both {a} and {b} of fold "
                            f"{split.test_speaker}")


def search_speaker(speakers: Sequence[str] | np.ndarray) -> str:
    """The speaker the search holds out: Ses01F when present, else the first in sorted order."""
    available = sorted(set(np.asarray(speakers).tolist()))
    if not available:
        raise DataError("no speakers in the dataset")
    return SEARCH_TEST_SPEAKER if SEARCH_TEST_SPEAKER in available else available[0]


def search_split(speakers: Sequence[str] | np.ndarray, seed: int = 0,
                 val_fraction: float = 0.2) -> FoldSplit:
    """The fixed split every search trial uses: `search_speaker` held out, 80/20 of the rest.

    Equal to `fold_split(speakers, search_speaker(speakers), val_fraction, seed)`, which is what
    `raylab.train.fold.run_fold` builds for that speaker and seed.
    """
    return fold_split(speakers, search_speaker(speakers), val_fraction, seed)
