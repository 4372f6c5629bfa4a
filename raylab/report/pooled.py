"""Results of a ten-fold run: pooled WAR/UAR, per-fold spread, baselines, the per-utterance view.

Section 4.1: "the predictions and targets of all 10 test sets have been combined" before WAR and
UAR are computed, per dimension. Beside the pooled figures: the per-fold mean ± std (sample std,
ddof=1; 0 with one fold), random guessing (0.200 for five classes) and two most-frequent-label
baselines: the paper's (one label per dimension, the most frequent in the pooled test sets, i.e.
their prior, predicted for every window; Table 5's arousal 3 and valence 1 on IEMOCAP) and ours
(each fold's *training-set* most frequent label predicted for its whole test set, pooled).

A fold whose test predictions are one class for every window of a dimension has collapsed: its
figures are those of a constant guess, not of a learned model. `summary["collapsed"]` lists them.

`predictions` is the long table every fold writes (`predictions.parquet`): one row per test window
and dimension with columns window_id, utterance_id, speaker, fold, dimension, target, predicted,
prob_0..prob_4.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from raylab import DIMENSIONS, NUM_CLASSES
from raylab.errors import DataError
from raylab.report import metrics

RANDOM_BASELINE = 1.0 / NUM_CLASSES  # 0.200, the paper's "random guessing" row
PROB_COLUMNS = tuple(f"prob_{k}" for k in range(NUM_CLASSES))
PREDICTION_COLUMNS = ("window_id", "utterance_id", "speaker", "fold", "dimension",
                      "target", "predicted", *PROB_COLUMNS)


def scores(targets, predicted) -> dict[str, float]:
    """WAR (accuracy), UAR (mean per-class recall) and macro-F1 of one set of predictions."""
    return {k: float(v) for k, v in metrics.summarize(np.asarray(targets), np.asarray(predicted)).items()}


def most_frequent_baseline(predictions: pd.DataFrame,
                           train_majority: dict[str, dict[str, int]]) -> dict[str, dict]:
    """Each fold's training majority label applied to its test windows, pooled, per dimension.

    `train_majority[fold][dimension]` is that fold's most frequent training label.
    """
    out: dict[str, dict] = {}
    for dim, part in _by_dimension(predictions):
        missing = sorted(set(part["fold"]) - set(train_majority))
        if missing:
            raise KeyError(f"no training majority label for folds {missing}")
        constant = part["fold"].map(lambda fold: int(train_majority[fold][dim])).to_numpy()
        out[dim] = {**scores(part["target"].to_numpy(), constant),
                    "labels": {fold: int(train_majority[fold][dim]) for fold in sorted(set(part["fold"]))}}
    return out


def pooled_prior_baseline(predictions: pd.DataFrame) -> dict[str, dict]:
    """The paper's most-frequent-label baseline: per dimension, the most frequent target of all
    test folds pooled (ties: the smallest class) predicted for every window."""
    out: dict[str, dict] = {}
    for dim, part in _by_dimension(predictions):
        targets = part["target"].to_numpy()
        label = metrics.majority_label(targets)
        out[dim] = {**scores(targets, np.full_like(targets, label)), "label": int(label)}
    return out


def collapsed_folds(predictions: pd.DataFrame) -> dict[str, list[str]]:
    """`{fold: [dimension, ...]}` of the folds that predicted one class for every test window."""
    out: dict[str, list[str]] = {}
    for dim, part in _by_dimension(predictions):
        for fold, fold_part in part.groupby("fold", sort=True):
            if fold_part["predicted"].nunique() == 1:
                out.setdefault(str(fold), []).append(dim)
    return out


def utterance_votes(part: pd.DataFrame) -> pd.DataFrame:
    """One row per utterance: its target and the majority vote over its windows' predictions.

    A tie between classes is broken by the highest mean probability over the utterance's windows,
    then by the smallest class. Every window of an utterance carries the utterance's labels, so the
    target is the first window's.
    """
    rows = []
    probs = part[list(PROB_COLUMNS)].to_numpy(dtype=np.float64)
    for _, index in part.groupby("utterance_id", sort=True).indices.items():
        votes = np.bincount(part["predicted"].to_numpy()[index], minlength=NUM_CLASSES)
        tied = np.flatnonzero(votes == votes.max())
        mean_prob = probs[index].mean(axis=0)
        winner = int(tied[np.argmax(mean_prob[tied])])  # argmax takes the smallest on equal means
        rows.append((part["utterance_id"].iloc[index[0]], part["fold"].iloc[index[0]],
                     int(part["target"].iloc[index[0]]), winner))
    return pd.DataFrame(rows, columns=["utterance_id", "fold", "target", "predicted"])


def summarize_predictions(predictions: pd.DataFrame,
                          train_majority: dict[str, dict[str, int]] | None = None) -> dict:
    """Every figure of a ten-fold run from its pooled predictions (see the module docstring)."""
    _check_columns(predictions)
    folds = sorted(set(predictions["fold"]))
    summary: dict = {"folds": folds, "windows": int(predictions["window_id"].nunique()),
                     "utterances": int(predictions["utterance_id"].nunique()),
                     "pooled": {}, "per_fold": {}, "by_fold": {f: {} for f in folds},
                     "utterance": {}, "collapsed": collapsed_folds(predictions),
                     "baselines": {"random": {d: {"war": RANDOM_BASELINE, "uar": RANDOM_BASELINE}
                                              for d in DIMENSIONS},
                                   "test_prior": pooled_prior_baseline(predictions)}}
    for dim, part in _by_dimension(predictions):
        summary["pooled"][dim] = scores(part["target"], part["predicted"])
        for fold, fold_part in part.groupby("fold", sort=True):
            summary["by_fold"][fold][dim] = scores(fold_part["target"], fold_part["predicted"])
        summary["per_fold"][dim] = {
            key: _mean_std([summary["by_fold"][f][dim][key] for f in folds if dim in summary["by_fold"][f]])
            for key in ("war", "uar", "f1")}
        votes = utterance_votes(part)
        summary["utterance"][dim] = scores(votes["target"], votes["predicted"])
    if train_majority is not None:
        summary["baselines"]["most_frequent"] = most_frequent_baseline(predictions, train_majority)
    return summary


def _mean_std(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "std": std}


def _by_dimension(predictions: pd.DataFrame):
    for dim in DIMENSIONS:
        part = predictions[predictions["dimension"] == dim]
        if len(part):
            yield dim, part


def _check_columns(predictions: pd.DataFrame) -> None:
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise DataError(f"predictions: missing columns {missing}; expected {list(PREDICTION_COLUMNS)}")
