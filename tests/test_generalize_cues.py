"""Do generalized signals recover what a network learned? Networks trained on a corpus whose classes
differ by one known cue each (tests/cue_corpus.py); each cue must order that head's five signals
(Spearman ρ ≥ 0.9, right sign). Where a method is known to miss a cue, the test says so with
xfail and the measured reason, so that a fix shows up as XPASS.

The default run has the fast variant (loudness, by the default method with its data prior, on a
network trained on fewer clips); `pytest -m slow` runs all four cues by the default method with
its data prior (analysis.prior, fitted on the training clips, as `raylab analyze generalize` fits
it on the other speakers' windows), without it (`--no-prior`), and by the paper's method (two
networks trained for 1-2 min each, twelve optimisations: 6.6 min on a 2-core machine with another
job beside it).
"""
from __future__ import annotations

import pytest

from analysis.generalize import DEFAULT_METHOD, cue_checks, generalize
from analysis.methods import with_prior
from analysis.prior import FeaturePrior
from tests.cue_corpus import MEASURES, SECONDS, SR, corpus, train_network

pytestmark = pytest.mark.usefixtures("torch_one_thread")
SAMPLES = int(SR * SECONDS)
NETWORKS = ({"arousal": "loudness", "valence": "pitch"}, {"arousal": "rate", "valence": "pause"})
# Measured with seed 0 (README "Generalized signals"): where a method misses a cue, and why; only
# the paper's method misses any. The prosody method recovers all four cues at seed 0, with its data
# prior and without (over seeds 0-2, 11 (cue, seed) pairs of 12 both ways); when the networks
# trained on 1000 clips for 10 epochs, the network's pause head learned only 0.765, and pause was a
# known miss of the prosody method (README).
KNOWN_MISSES = {
    ("paper", "loudness"): "ρ -0.30: raw-sample ascent never reaches the loudest class (p 0.00) "
                           "and its peak amplitudes (0.02-0.23) are not ordered",
    ("paper", "pitch"): "ρ +0.40: the raw-sample signals' F0 is 71-89 Hz in every class",
    ("paper", "rate"): "ρ 0.00: syllable rates 5.5-6.0 in every class",
    ("paper", "pause"): "raw-sample ascent makes no pauses at all (ρ undefined)",
}


def order(model, heads: dict[str, str], method: str, seed: int = 0, steps: int | None = None,
          targets=None, prior: FeaturePrior | None = None) -> dict[str, float | None]:
    """Spearman ρ of each cue over its head's signals by `method` (with `prior`: adding it, as
    `raylab analyze generalize` does for the prosody method)."""
    result = generalize(model, SAMPLES, steps, method=method, seed=seed, sample_rate=SR,
                        targets=targets, prior=prior)
    checks = cue_checks(result.signals, SR,
                        tuple((head, MEASURES[cue], 1) for head, cue in heads.items()
                              if targets is None or any(t[0] == head for t in targets)))
    return {heads[c["dimension"]]: c["spearman"] for c in checks}


def trained(heads: dict[str, str], n: int = 2000, **kwargs):
    """The network trained on `corpus(heads, n)`, its accuracy, and the data prior fitted on the
    same clips."""
    model, accuracy = train_network(heads, n=n, **kwargs)
    return model, accuracy, FeaturePrior.fit(model, *corpus(heads, n, kwargs.get("seed", 0)))


@pytest.fixture(scope="module")
def networks():
    return [(heads, *trained(heads)) for heads in NETWORKS]


def test_fast_variant_loudness_orders_the_default_method_s_signals():
    heads = NETWORKS[0]
    model, accuracy, prior = trained(heads, n=400, epochs=8)
    assert accuracy["arousal"] > 0.7, accuracy
    rho = order(model, heads, DEFAULT_METHOD, steps=60,
                targets=[("arousal", c) for c in range(5)], prior=prior)
    assert rho["loudness"] is not None and rho["loudness"] >= 0.9, rho


VARIANTS = (DEFAULT_METHOD, f"{DEFAULT_METHOD}-no-prior", "paper")
CASES = [(variant, net, cue) for variant in VARIANTS
         for net, heads in enumerate(NETWORKS) for cue in heads.values()]


@pytest.mark.slow
@pytest.mark.parametrize("variant,net,cue", [
    pytest.param(v, n, c, marks=pytest.mark.xfail(reason=KNOWN_MISSES[(v, c)], strict=False))
    if (v, c) in KNOWN_MISSES else (v, n, c) for v, n, c in CASES])
def test_each_cue_orders_its_head_s_signals(networks, variant, net, cue):
    heads, model, accuracy, prior = networks[net]
    head = next(h for h, c in heads.items() if c == cue)
    method = variant.removesuffix("-no-prior")
    prior_on = with_prior(method, no_prior=variant.endswith("-no-prior"))
    rho = order(model, heads, method, targets=[(head, c) for c in range(5)],
                prior=prior if prior_on else None)[cue]
    assert rho is not None and rho >= 0.9, (f"{variant}: {cue} ρ={rho} (network accuracy "
                                             f"{accuracy})")


@pytest.mark.slow
def test_the_networks_learned_their_cues(networks):
    for heads, _, accuracy, _ in networks:
        for head, cue in heads.items():
            assert accuracy[head] >= 0.95, (cue, accuracy)
