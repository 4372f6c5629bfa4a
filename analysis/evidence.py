"""What a saliency report says about its own evidence (`raylab analyze saliency`).

The method's randomisation check (`analysis.sanity`) on a few of the report's windows, read from
a previous `analyze sanity` where one covered the method, and the report's headline correlations
on those windows for the trained and the fully random network: a correlation that a network which
learned nothing gives as well says nothing about what this one learned.
"""
from __future__ import annotations

import json

import numpy as np
from torch import nn

from analysis.saliency import Method, compute_maps, window_correlations
from analysis.sanity import (INSENSITIVE_HINTS, SENSITIVE_BELOW, SPEARMAN_OVER,
                             cascading_randomization, context_text, randomize, verdicts)
from raylab import SAMPLE_RATE


def saliency_evidence(target, inputs: dict[str, np.ndarray], method: str, windows: int = 4,
                      batch_size: int = 8, device: str = "cpu", seed: int = 0,
                      trained: tuple[dict, dict] | None = None) -> dict:
    """The randomisation check that goes with a saliency report of `method`.

    A previous `raylab analyze sanity` of the same network that covered `method` (its
    sanity_summary.json in the default output folder) over each window's signal, as now, is read
    as it is: it had more windows and the permuted-label network. Otherwise the cascading
    randomisation runs here on the first `windows` of `inputs` (no permuted-label training: that
    needs minutes), which for the toy demo network costs seconds. Either way the report's own
    correlations are computed on those windows for the trained and the fully random network
    (`random_baseline`). `trained`: the trained network's maps {head: (N, T)} and targets
    {head: (N,)} on those windows where the report has them. Returns the verdict with where it
    came from."""
    from analysis import runs

    few = {name: values[:windows] for name, values in inputs.items()}
    if trained is None:
        trained = compute_maps(target.model, few, method, batch_size, device)
    baseline = random_baseline(target.model, few, method, batch_size, device, seed,
                               target.sample_rate, trained)
    previous = runs.output_dir(target, "sanity", None) / "sanity_summary.json"
    if previous.is_file():
        summary = json.loads(previous.read_text())
        if (method in summary.get("verdicts", {})
                and summary.get("spearman_over") == SPEARMAN_OVER):
            return {**summary["verdicts"][method], "source": str(previous),
                    "windows": summary.get("windows"), "threshold": summary.get("threshold"),
                    "baseline": baseline}
    table = cascading_randomization(target.model, few, {method: method}, batch_size, device, seed,
                                    sample_rate=target.sample_rate,
                                    originals=({method: trained[0]}, trained[1]))
    return {**verdicts(table)[method], "source": f"cascading randomisation of this run "
            f"({len(few['waveform'])} windows, no permuted labels)",
            "windows": int(len(few["waveform"])), "threshold": SENSITIVE_BELOW,
            "steps": {str(k): float(v) for k, v in
                      table.groupby("step", sort=False)["spearman_mean"].mean().items()},
            "baseline": baseline}


BASELINE_KEYS = ("signed_valence", "signed_arousal", "heads")


def random_baseline(model: nn.Module, inputs: dict[str, np.ndarray], method: str | Method,
                    batch_size: int = 8, device: str = "cpu", seed: int = 0,
                    sample_rate: int = SAMPLE_RATE, trained: tuple[dict, dict] | None = None
                    ) -> dict:
    """The saliency report's headline correlations (r(x, s) per head, r between the heads' maps;
    `analysis.saliency.window_correlations`) on `inputs` for the trained network and for the
    fully random one of the cascade (same targets): what a correlation is worth when a network
    that learned nothing gives it too. `trained`: the trained network's maps and targets
    (`compute_maps`'s pair) where they are already computed. Returns {"windows", "trained":
    {...}, "random": {...}}."""
    x = np.asarray(inputs["waveform"], np.float32)
    trained, targets = trained or compute_maps(model, inputs, method, batch_size, device)
    *_, (_, random_net) = randomize(model, seed)
    maps = {"trained": trained,
            "random": compute_maps(random_net, inputs, method, batch_size, device, targets)[0]}
    out = {"windows": int(len(x))}
    for name, found in maps.items():
        corr = window_correlations(x, found, sample_rate)
        out[name] = {key: float(np.nanmean(corr[key])) if np.isfinite(corr[key]).any() else None
                     for key in BASELINE_KEYS}
    return out


def baseline_line(baseline: dict) -> str:
    """One line: the headline correlations of the trained and the fully random network."""
    text = lambda v: "undefined" if v is None else f"{v:+.2f}"  # noqa: E731
    ours, rand = baseline["trained"], baseline["random"]
    return (f"on {baseline['windows']} windows, trained vs fully random network: r(x, s) "
            f"valence {text(ours['signed_valence'])} vs {text(rand['signed_valence'])}, "
            f"arousal {text(ours['signed_arousal'])} vs {text(rand['signed_arousal'])}; "
            f"r(valence map, arousal map) {text(ours['heads'])} vs {text(rand['heads'])}")


def evidence_line(evidence: dict, method: str) -> str:
    """One line for a saliency report: does the map depend on the weights?"""
    verdict = ("depends on the weights" if evidence["depends_on_weights"] else
               f"does NOT depend on the weights{INSENSITIVE_HINTS.get(method, '')}: read the "
               "correlations above as a property of the input, not of what the network learned")
    line = (f"sanity check: mean Spearman ρ of |map| with the original after every layer is "
            f"randomised {evidence['fully_random']:+.2f} (threshold {evidence['threshold']}) -> "
            f"{verdict}")
    if "permuted_labels" in evidence:
        line += f"; {evidence['permuted_labels']:+.2f} after permuted-label training"
    if context_text(evidence):
        line += f" ({context_text(evidence)})"
    return f"{line} [{evidence['source']}]"
