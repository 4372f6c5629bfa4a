"""WAR, UAR, macro F1 and confusion matrices against scikit-learn and hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

from raylab.report import metrics


def _cases():
    rng = np.random.default_rng(0)
    for i in range(40):
        n = int(rng.integers(1, 60))
        present = rng.choice(5, size=int(rng.integers(1, 6)), replace=False)  # some classes absent
        t = rng.choice(present, size=n)
        p = np.where(rng.random(n) < 0.4, t, rng.integers(0, 5, n))
        yield t, p


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_agree_with_scikit_learn_on_random_cases():
    for t, p in _cases():
        assert metrics.war(t, p) == pytest.approx(accuracy_score(t, p))
        assert metrics.uar(t, p) == pytest.approx(balanced_accuracy_score(t, p))
        assert metrics.macro_f1(t, p) == pytest.approx(f1_score(t, p, average="macro", zero_division=0))
        np.testing.assert_array_equal(metrics.confusion(t, p), confusion_matrix(t, p, labels=range(5)))


def test_hand_computed_case():
    t = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    p = np.array([0, 0, 0, 1, 1, 2, 2, 2, 0, 4])
    assert metrics.war(t, p) == pytest.approx(6 / 10)
    assert metrics.uar(t, p) == pytest.approx((3 / 4 + 1 / 2 + 2 / 4) / 3)  # classes 3, 4 absent
    # F1 per class over {0, 1, 2, 4}: 0: 2*3/(4+4); 1: 2*1/(2+2); 2: 2*2/(4+3); 4: 0
    assert metrics.macro_f1(t, p) == pytest.approx((6 / 8 + 2 / 4 + 4 / 7 + 0) / 4)
    cm = metrics.confusion(t, p)
    assert cm.shape == (5, 5) and cm[0, 0] == 3 and cm[2, 4] == 1 and cm.sum() == 10
    assert metrics.summarize(t, p) == {"war": metrics.war(t, p), "uar": metrics.uar(t, p),
                                       "f1": metrics.macro_f1(t, p)}


def test_constant_prediction_has_uar_one_over_the_classes_present():
    t = np.array([0, 1, 2, 3, 4, 4, 4])
    assert metrics.uar(t, np.full(7, 4)) == pytest.approx(0.2)
    assert metrics.war(t, np.full(7, 4)) == pytest.approx(3 / 7)


def test_most_frequent_baseline_uses_the_training_labels():
    train = np.array([2, 2, 2, 1, 3, 3])
    test = np.array([1, 2, 3, 3])
    base = metrics.most_frequent_baseline(train, test)
    assert base["label"] == 2 and base["war"] == pytest.approx(0.25) and base["uar"] == pytest.approx(1 / 3)
    assert metrics.majority_label([1, 1, 3, 3]) == 1  # ties: the smallest class


def test_per_dimension_flattens_and_averages():
    t = {"valence": np.array([0, 1, 1]), "arousal": np.array([2, 2, 2])}
    p = {"valence": np.array([0, 1, 0]), "arousal": np.array([2, 2, 2])}
    out = metrics.per_dimension(t, p)
    assert out["valence_war"] == pytest.approx(2 / 3) and out["arousal_uar"] == 1.0
    assert out["mean_war"] == pytest.approx((2 / 3 + 1) / 2)
    assert set(out) == {f"{d}_{k}" for d in ("valence", "arousal", "mean") for k in ("war", "uar", "f1")}


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        metrics.war([0, 1], [0])
