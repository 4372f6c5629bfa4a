"""Pooled figures and baselines of a ten-fold run, on cases small enough to compute by hand."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from raylab.report.pooled import (PROB_COLUMNS, RANDOM_BASELINE, most_frequent_baseline, pooled_prior_baseline,
                           summarize_predictions, utterance_votes)


def frame(rows: list[tuple], dimension: str = "arousal") -> pd.DataFrame:
    """rows: (fold, utterance_id, target, predicted[, probs]) -> the predictions.parquet table."""
    records = []
    for i, row in enumerate(rows):
        fold, utt, target, predicted = row[:4]
        probs = row[4] if len(row) > 4 else np.eye(5)[predicted]
        records.append({"window_id": f"{utt}_{i}", "utterance_id": utt, "speaker": fold,
                        "fold": fold, "dimension": dimension, "target": target,
                        "predicted": predicted, **dict(zip(PROB_COLUMNS, probs))})
    return pd.DataFrame(records)


def test_most_frequent_baseline_by_hand():
    # Fold A predicts its training majority 2 for [2, 2, 1, 3]: 2 right of 4.
    # Fold B predicts its training majority 1 for [1, 0, 0]: 1 right of 3.
    # Pooled WAR = 3/7. Recall per class present: 0 -> 0/2, 1 -> 1/2, 2 -> 2/2, 3 -> 0/1;
    # UAR = (0 + 0.5 + 1 + 0) / 4 = 0.375.
    preds = frame([("A", "a1", 2, 0), ("A", "a2", 2, 0), ("A", "a3", 1, 0), ("A", "a4", 3, 0),
                   ("B", "b1", 1, 0), ("B", "b2", 0, 0), ("B", "b3", 0, 0)])
    majority = {"A": {"arousal": 2, "valence": 0}, "B": {"arousal": 1, "valence": 0}}
    out = most_frequent_baseline(preds, majority)["arousal"]
    assert out["war"] == pytest.approx(3 / 7)
    assert out["uar"] == pytest.approx(0.375)
    assert out["labels"] == {"A": 2, "B": 1}


def test_most_frequent_uses_the_training_label_not_the_test_majority():
    # The test set's own majority (4) would score 3/4; the training majority (0) scores 0.
    preds = frame([("A", "a1", 4, 0), ("A", "a2", 4, 0), ("A", "a3", 4, 0), ("A", "a4", 1, 0)])
    out = most_frequent_baseline(preds, {"A": {"arousal": 0}})["arousal"]
    assert out["war"] == 0.0 and out["uar"] == 0.0


def test_the_papers_baseline_by_hand():
    """The paper's most frequent label: one per dimension, the pooled test sets' prior.
    Targets pooled over A and B: [2, 2, 1, 3, 1, 0, 0] -> class 0, 1 and 2 twice each: the
    smallest, 0, wins the tie; predicted for all 7 windows: WAR 2/7, UAR 1/4 (4 classes present)."""
    preds = frame([("A", "a1", 2, 0), ("A", "a2", 2, 0), ("A", "a3", 1, 0), ("A", "a4", 3, 0),
                   ("B", "b1", 1, 0), ("B", "b2", 0, 0), ("B", "b3", 0, 0)])
    out = pooled_prior_baseline(preds)["arousal"]
    assert out["label"] == 0 and out["war"] == pytest.approx(2 / 7) and out["uar"] == 0.25
    # one more window of class 2 makes 2 the prior: WAR 3/8
    out = pooled_prior_baseline(pd.concat([preds, frame([("B", "b4", 2, 0)])]))["arousal"]
    assert out["label"] == 2 and out["war"] == pytest.approx(3 / 8)
    summary = summarize_predictions(preds)
    assert summary["baselines"]["test_prior"]["arousal"]["label"] == 0
    assert summary["collapsed"] == {"A": ["arousal"], "B": ["arousal"]}   # all predicted 0


def test_random_baseline_is_one_fifth():
    summary = summarize_predictions(frame([("A", "a", 1, 1)]))
    assert RANDOM_BASELINE == pytest.approx(0.2)
    assert summary["baselines"]["random"]["arousal"] == {"war": 0.2, "uar": 0.2}


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_pooled_is_not_the_mean_of_the_folds():
    # Fold A: 1 window, right (WAR 1). Fold B: 3 windows, 1 right (WAR 1/3).
    # Pooled WAR = 2/4 = 0.5; per-fold mean = (1 + 1/3) / 2 = 2/3, sample std = 0.4714.
    preds = frame([("A", "a1", 1, 1), ("B", "b1", 2, 2), ("B", "b2", 2, 0), ("B", "b3", 3, 0)])
    summary = summarize_predictions(preds, {"A": {"arousal": 1}, "B": {"arousal": 2}})
    assert summary["pooled"]["arousal"]["war"] == pytest.approx(0.5)
    assert summary["per_fold"]["arousal"]["war"]["mean"] == pytest.approx(2 / 3)
    assert summary["per_fold"]["arousal"]["war"]["std"] == pytest.approx(np.std([1, 1 / 3], ddof=1))
    assert summary["by_fold"]["B"]["arousal"]["war"] == pytest.approx(1 / 3)
    t, p = preds["target"], preds["predicted"]
    assert summary["pooled"]["arousal"]["uar"] == pytest.approx(balanced_accuracy_score(t, p))
    assert summary["windows"] == 4 and summary["folds"] == ["A", "B"]
    assert "valence" not in summary["pooled"]  # only the dimensions present are reported


def test_utterance_vote_majority_and_tie_breaks():
    probs_low, probs_high = [0.1, 0.5, 0.2, 0.1, 0.1], [0.1, 0.2, 0.6, 0.05, 0.05]
    preds = frame([
        ("A", "u1", 3, 3), ("A", "u1", 3, 3), ("A", "u1", 3, 0),       # majority 3
        ("A", "u2", 2, 1, probs_low), ("A", "u2", 2, 2, probs_high),   # tie 1-2: higher mean prob 2
        ("A", "u3", 0, 4, [0.2] * 5), ("A", "u3", 0, 1, [0.2] * 5),    # tie, equal probs: smaller 1
    ])
    votes = utterance_votes(preds).set_index("utterance_id")
    assert votes.loc["u1", "predicted"] == 3
    assert votes.loc["u2", "predicted"] == 2
    assert votes.loc["u3", "predicted"] == 1
    summary = summarize_predictions(preds)
    assert summary["utterances"] == 3
    assert summary["utterance"]["arousal"]["war"] == pytest.approx(accuracy_score([3, 2, 0], [3, 2, 1]))


def test_missing_columns_are_a_data_error():
    from raylab.errors import DataError

    with pytest.raises(DataError, match="missing columns"):
        summarize_predictions(frame([("A", "a", 1, 1)]).drop(columns=["prob_4"]))
