"""The data prior (analysis.prior; the prosody method's default in `raylab analyze generalize`, any
method but paper's through `generalize(prior=...)`): the density of the training windows in each
head's first hidden layer, added to the objective."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.generalize import generalize, held_inputs
from analysis.prior import FeaturePrior
from raylab.models import build_model
from tests.cue_corpus import SECONDS, SR, TOY, corpus

pytestmark = pytest.mark.usefixtures("torch_one_thread")
SAMPLES = int(SR * SECONDS)
HEADS = {"arousal": "loudness", "valence": "pitch"}


@pytest.fixture(scope="module")
def net_and_data():
    torch.manual_seed(0)
    net = build_model("elor", input_samples=SAMPLES, conv_impl="direct", **TOY).eval()
    clips, labels = corpus(HEADS, 120, seed=0)
    return net, clips, labels


def hidden(net, x: np.ndarray, head: str) -> torch.Tensor:
    """The head's first hidden pre-activation, computed without the prior's hooks."""
    with torch.no_grad():
        return net.heads[head].fc1(net.features(torch.as_tensor(x)))


def test_the_prior_holds_each_class_s_mean_and_ranks_training_windows_above_others(net_and_data):
    net, clips, labels = net_and_data
    prior = FeaturePrior.fit(net, clips, labels, batch=50)
    assert prior.windows == len(clips) and prior.dim == TOY["hidden1"]
    for head, y in labels.items():
        z = hidden(net, clips, head)
        for k in range(5):
            torch.testing.assert_close(prior.means[head][k], z[torch.as_tensor(y == k)].mean(0),
                                       rtol=1e-4, atol=1e-5)
        own = prior.log_density(head, z)
        assert float(own.median()) == pytest.approx(prior.reference[head], abs=1e-6)
        # clips unlike the corpus (white noise, a held tone) lie far below the training windows
        rng = np.random.default_rng(1)
        far = np.stack([rng.normal(0, 0.3, SAMPLES),
                        0.5 * np.sin(2 * np.pi * 60 * np.arange(SAMPLES) / SR)]).astype(np.float32)
        assert prior.log_density(head, hidden(net, far, head)).max() < own.quantile(0.05)
    # int16 windows as stored, scaled as the network takes them: the same prior
    stored = np.round(clips * 32767).astype(np.int16)
    again = FeaturePrior.fit(net, stored, labels, scale=1 / 32768)
    for head in labels:
        torch.testing.assert_close(again.means[head], prior.means[head], rtol=1e-3, atol=1e-3)


def test_a_class_with_fewer_than_two_windows_is_left_out(net_and_data):
    net, clips, labels = net_and_data
    y = labels["arousal"].copy()
    y[y == 3] = 2
    y[np.flatnonzero(y == 2)[0]] = 3  # class 3: one window
    prior = FeaturePrior.fit(net, clips, {"arousal": y})
    z = hidden(net, clips, "arousal")
    kept = y != 3
    for row, k in enumerate((0, 1, 2, 4)):
        torch.testing.assert_close(prior.means["arousal"][row], z[torch.as_tensor(y == k)].mean(0),
                                   rtol=1e-4, atol=1e-5)
    assert prior.windows == int(kept.sum()) == len(clips) - 1
    assert prior.reference["arousal"] == pytest.approx(
        float(prior.log_density("arousal", z[torch.as_tensor(kept)]).median()), abs=1e-6)
    with pytest.raises(ValueError, match="at least two training windows"):
        FeaturePrior.fit(net, clips[:5], {"arousal": np.arange(5)})
    with pytest.raises(ValueError, match="none given"):
        FeaturePrior.fit(net, clips[:0], {"arousal": y[:0]})
    with pytest.raises(ValueError, match="labels: 5 for 120 windows"):
        FeaturePrior.fit(net, clips, {"arousal": y[:5]})


def test_generalize_adds_the_prior_and_reports_each_signal_s_density(net_and_data):
    """With the prior the chosen signals change (the replay test in test_generalize.py checks the
    choice itself), and each signal's reported density is the prior's on that signal."""
    net, clips, labels = net_and_data
    prior = FeaturePrior.fit(net, clips, labels)
    targets = [("arousal", 0), ("arousal", 4), ("valence", 0)]
    kwargs = dict(steps=1, seed=0, sample_rate=SR, targets=targets)
    plain = generalize(net, SAMPLES, **kwargs)
    with_prior = generalize(net, SAMPLES, prior=prior, **kwargs)
    assert plain.typicality == {} and set(with_prior.typicality) == set(targets)
    assert any(not np.array_equal(plain.signals[k], with_prior.signals[k]) for k in targets)
    for head, c in targets:
        z = hidden(net, with_prior.signals[(head, c)][None], head)
        assert with_prior.typicality[(head, c)] == pytest.approx(
            float(prior.log_density(head, z)[0]), rel=1e-4, abs=1e-6)
    assert not prior.captured  # the hooks are gone with the optimisation
    assert all(not module._forward_hooks for module in net.modules())
    for method in ("speech", "shaped"):  # the other methods take it too
        other = generalize(net, SAMPLES, steps=2, seed=0, sample_rate=SR, method=method,
                           targets=targets[:2], prior=prior)
        assert all(np.isfinite(v) for v in other.typicality.values()) and len(other.typicality) == 2
    with pytest.raises(ValueError, match="no data prior"):
        generalize(net, SAMPLES, steps=1, method="paper", prior=prior, targets=targets)


def test_a_prior_that_does_not_fit_the_network_or_targets_is_a_one_line_error(net_and_data):
    net, clips, labels = net_and_data
    arousal_only = FeaturePrior.fit(net, clips, {"arousal": labels["arousal"]})
    flags = [p.requires_grad for p in net.parameters()]
    with pytest.raises(ValueError, match=r"no valence head \(fitted: arousal\)"):
        generalize(net, SAMPLES, steps=1, sample_rate=SR, prior=arousal_only,
                   targets=[("valence", 0)])
    wider = build_model("elor", input_samples=SAMPLES, conv_impl="direct",
                        **{**TOY, "hidden1": 2 * TOY["hidden1"]}).eval()
    with pytest.raises(ValueError, match="the width differs"):
        generalize(wider, SAMPLES, steps=1, sample_rate=SR, prior=arousal_only,
                   targets=[("arousal", 0)])
    with pytest.raises(KeyError):  # a head the network lacks: the hooks do not stay behind
        with arousal_only.watching(net, ["arousal", "dominance"]):
            pass
    assert all(not module._forward_hooks for module in net.modules())
    assert [p.requires_grad for p in net.parameters()] == flags


def test_data_prior_fits_the_other_speakers_int16_windows_as_the_network_takes_them(net_and_data):
    """`analyze generalize`'s prior fit: the stored int16 audio of every speaker but the test
    fold's, scaled as in training, with both heads' labels."""
    from types import SimpleNamespace

    from analysis.generalize import data_prior
    from raylab.errors import DataError

    net, clips, labels = net_and_data
    speaker = np.array(["Ses01F", "Ses02M", "Ses03F"] * 40)
    stored = np.round(clips * 32767).astype(np.int16)
    dataset = SimpleNamespace(path="data", speaker=speaker, audio=stored,
                              labels=lambda dim: labels["arousal" if dim == "arousal" else
                                                        "valence"])
    prior = data_prior(SimpleNamespace(model=net, fold="Ses03F"), dataset)
    train = speaker != "Ses03F"
    expected = FeaturePrior.fit(net, clips[train], {h: y[train] for h, y in labels.items()})
    assert prior.windows == int(train.sum())
    for head in labels:
        torch.testing.assert_close(prior.means[head], expected.means[head], rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(prior.precision[head], expected.precision[head], rtol=1e-2,
                                   atol=1e-2)
    with pytest.raises(DataError, match="every window is the test speaker's"):
        data_prior(SimpleNamespace(model=net, fold="Ses03F"),
                   SimpleNamespace(path="data", speaker=np.full(5, "Ses03F"), audio=stored[:5],
                                   labels=dataset.labels))


def test_elor_ftr_s_prior_holds_the_features_as_generalize_does():
    torch.manual_seed(0)
    net = build_model("elor_ftr", input_samples=SAMPLES, num_features=7, conv_impl="direct",
                      **TOY).eval()
    clips, labels = corpus(HEADS, 40, seed=0)
    prior = FeaturePrior.fit(net, clips, labels, other=lambda n: held_inputs(net, n))
    with torch.no_grad():  # IS10 at 0, as generalize holds it
        z = net.heads["arousal"].fc1(net.features(torch.as_tensor(clips), torch.zeros(40, 7)))
    y = torch.as_tensor(labels["arousal"])
    for k in range(5):
        torch.testing.assert_close(prior.means["arousal"][k], z[y == k].mean(0), rtol=1e-4,
                                   atol=1e-5)
    result = generalize(net, SAMPLES, steps=1, sample_rate=SR, prior=prior,
                        targets=[("arousal", 0), ("valence", 4)])
    assert set(result.typicality) == {("arousal", 0), ("valence", 4)}
