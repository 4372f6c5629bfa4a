"""Classification metrics of the paper (section 4.1), per emotional dimension.

WAR (weighted average recall) is the accuracy: per-class recall weighted by class support. UAR
(unweighted average recall) is the plain mean of the per-class recalls over the classes present in
the targets (scikit-learn's `balanced_accuracy_score`). Macro F1 averages the per-class F1 over the
classes present in the targets or the predictions (scikit-learn's default `labels`), 0 where a class
has no predictions or no targets. Written with numpy because they are a few lines each and the
training loop calls them every epoch; the tests check them against scikit-learn.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from raylab import DIMENSIONS, NUM_CLASSES


def _pair(targets, predicted) -> tuple[np.ndarray, np.ndarray]:
    for name, values in (("targets", targets), ("predictions", predicted)):
        values = np.asarray(values)
        if values.dtype.kind == "f" and not np.isfinite(values).all():  # would cast to some class
            raise ValueError(f"{name} hold NaN or inf: no accuracy can be computed from them")
    t = np.asarray(targets, dtype=np.int64).ravel()
    p = np.asarray(predicted, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"targets ({t.size}) and predictions ({p.size}) differ in length")
    return t, p


def confusion(targets, predicted, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(num_classes, num_classes) counts: row = target class, column = predicted class."""
    t, p = _pair(targets, predicted)
    counts = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts[: num_classes * num_classes].reshape(num_classes, num_classes)


def war(targets, predicted) -> float:
    """Weighted average recall = accuracy (nan for no windows)."""
    t, p = _pair(targets, predicted)
    return float(np.mean(t == p)) if t.size else float("nan")


def uar(targets, predicted, num_classes: int = NUM_CLASSES) -> float:
    """Unweighted average recall: mean recall over the classes present in `targets`."""
    t, p = _pair(targets, predicted)
    size = max(num_classes, int(t.max(initial=-1)) + 1, int(p.max(initial=-1)) + 1)
    cm = confusion(t, p, size)
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float(np.mean(np.diag(cm)[present] / support[present]))


def macro_f1(targets, predicted, num_classes: int = NUM_CLASSES) -> float:
    """Mean F1 over the classes present in the targets or the predictions."""
    t, p = _pair(targets, predicted)
    size = max(num_classes, int(t.max(initial=-1)) + 1, int(p.max(initial=-1)) + 1)
    cm = confusion(t, p, size)
    tp, support, predicted_n = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    labels = (support + predicted_n) > 0
    if not labels.any():
        return float("nan")
    denom = support + predicted_n  # F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (support + predicted)
    f1 = np.divide(2 * tp, denom, out=np.zeros(size, dtype=float), where=denom > 0)
    return float(np.mean(f1[labels]))


def summarize(targets, predicted) -> dict[str, float]:
    """{"war", "uar", "f1"} of one set of predictions."""
    return {"war": war(targets, predicted), "uar": uar(targets, predicted),
            "f1": macro_f1(targets, predicted)}


def per_dimension(targets: Mapping[str, np.ndarray],
                  predicted: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Flat `{valence_war, valence_uar, valence_f1, arousal_..., mean_war, mean_uar, mean_f1}`."""
    out: dict[str, float] = {}
    for dim in DIMENSIONS:
        for key, value in summarize(targets[dim], predicted[dim]).items():
            out[f"{dim}_{key}"] = value
    for key in ("war", "uar", "f1"):
        out[f"mean_{key}"] = float(np.mean([out[f"{dim}_{key}"] for dim in DIMENSIONS]))
    return out


def majority_label(labels, num_classes: int = NUM_CLASSES) -> int:
    """The most frequent class (ties: the smallest class)."""
    return int(np.argmax(np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)))


def most_frequent_baseline(train_targets, test_targets) -> dict[str, float]:
    """The most frequent training label predicted for every test window: {"label", war, uar, f1}."""
    label = majority_label(train_targets)
    constant = np.full(len(np.asarray(test_targets)), label, dtype=np.int64)
    return {"label": label, **summarize(test_targets, constant)}
