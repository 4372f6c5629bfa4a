"""Do generalized signals recover what a network learned? Networks trained on a corpus whose classes
differ by one known cue each (tests/cue_corpus.py); each cue must order that head's five signals
(Spearman ρ ≥ 0.9, right sign). Where a method is known to miss a cue, the test says so with
xfail and the measured reason, so that a fix shows up as XPASS.

The default run has the fast variant (loudness, by the default method with its data prior, on a
network trained on fewer clips); `pytest -m slow` runs all four cues by the default method with
its data prior (analysis.prior, fitted on the training clips, as `raylab analyze generalize` fits
it on the other speakers' windows), without it (`--no-prior`), and by the paper's method (two
networks, twelve optimisations: minutes on a busy 2-core machine).
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
# Measured with seed 0 (README "Generalized signals"): where a method misses a cue, and why. Each
# head ends in two sigmoid layers (the paper's), so a class's log-odds has a ceiling, and many
# signals reach it: the loudness head's classes end at p 0.78/0.64/0.84/0.80/0.87 by the speech and
# the prosody method in every seed, the pause head's first and last class at 0.58 and 0.76. There
# many values of a grid score the same; the prosody method gives the tie to the values that the
# signal at a quarter of its gain scores higher, and chooses rate and pause together. The data
# prior (analysis.prior) prefers signals like the training clips.
KNOWN_MISSES = {
    ("prosody", "pause"): "ρ +0.82 (seeds 1, 2: -0.22, +0.97): pauses of 0, 80, 160, 170 and "
                          "160 ms, the longest-pause class at its ceiling (p 0.76); on clips like "
                          "the corpus's the network orders pauses (README)",
    ("prosody-no-prior", "pitch"): "ρ +0.70 (seeds 1, 2: +1.00, +0.90): measured F0 151, 255, "
                                   "1333, 531 and 1142 Hz, the third and fifth a harmonic or a "
                                   "filter peak",
    ("prosody-no-prior", "pause"): "ρ +0.40 (seeds 1, 2: +1.00, +1.00): pauses of 0, 80, 160, "
                                   "170 and 30 ms, the longest-pause class at its ceiling (p "
                                   "0.76), which it also reaches with almost no pause",
    ("paper", "loudness"): "ρ -0.60: raw-sample ascent never reaches the loudest class (p 0.01) "
                           "and its peak amplitudes (0.08-0.38) are not ordered",
    ("paper", "pitch"): "ρ -0.10: the raw-sample signals' F0 (69-244 Hz) is not ordered",
    ("paper", "rate"): "ρ -0.10: syllable rates 3.5-5.5 in every class, unordered",
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


def trained(heads: dict[str, str], n: int = 1000, **kwargs):
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
            assert accuracy[head] > 0.75, (cue, accuracy)
