"""Saliency maps on the raw waveform (paper section 2.3.2, 4.2.1, Figure 4).

A saliency map is the attribution of one head's predicted-class logit (pre-softmax) to every input
sample, computed with Captum: guided backpropagation (the paper's choice, `GuidedBackprop`), the
plain gradient (`Saliency`, signed), integrated gradients from a silent baseline
(`IntegratedGradients`) or occlusion (`Occlusion`: the logit's drop when 50 ms of the waveform is
silenced, in steps of 50 ms). Guided backpropagation barely depends on the network's weights
(Adebayo et al. 2018), so every report carries its own randomisation check (`analysis.sanity`).
Any other input of the network (the IS10 features of ELoR+FTR) is passed
through unchanged, so it is held fixed and receives no attribution.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from raylab import DIMENSIONS, SAMPLE_RATE

HEADS = DIMENSIONS  # the networks' two heads
METHODS = ("guided", "gradient", "integrated", "occlusion")
METHOD_NAMES = {"guided": "guided backpropagation", "gradient": "plain gradient",
                "integrated": "integrated gradients", "occlusion": "occlusion (50 ms)"}
OCCLUSION_S = 0.05
# The paper's "Pearson correlation between input signal and saliency map" (section 4.2.1), read
# literally: r(x, s), signed, over each window's samples without its zero padding. The other
# readings are ours, reported beside it and named for what they are.
PRIMARY = ("signed_valence", "signed_arousal")
HISTOGRAMS = {"signed_valence": "r(x, s), valence (the paper's reading)",
              "signed_arousal": "r(x, s), arousal (the paper's reading)",
              "abs_valence": "r(|x|, |s|), valence", "abs_arousal": "r(|x|, |s|), arousal",
              "heads": "r(s valence, s arousal)"}
ENVELOPE_S = 0.01
SECONDARY = {"abs": "r(|x|, |s|): amplitude against saliency magnitude",
             "positive": "r(x+, s+): positive parts (x and s clipped at 0)",
             "envelope": f"r(env x, env s): {1e3 * ENVELOPE_S:.0f} ms RMS envelopes of x and s"}
PAPER = {"signed_valence": 0.53, "signed_arousal": 0.50, "heads": 0.96}  # section 4.2.1

# (model, head, waveform (B, T), target (B,), other inputs) -> attribution (B, T)
Method = Callable[[nn.Module, str, torch.Tensor, torch.Tensor, tuple], torch.Tensor]


class HeadLogits(nn.Module):
    """`forward(waveform, *other_inputs)` -> the logits (B, 5) of one head of `model`."""

    def __init__(self, model: nn.Module, head: str) -> None:
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, waveform: torch.Tensor, *other: torch.Tensor) -> torch.Tensor:
        return self.model(waveform, *other)[self.head]


def attribute(model: nn.Module, head: str, method: str | Method, waveform: torch.Tensor,
              target: torch.Tensor, other: tuple = (), ig_steps: int = 32,
              sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Attribution (B, T) of the logit `target` of `head` to the waveform (B, T)."""
    if callable(method):
        return method(model, head, waveform, target, other)
    from captum.attr import GuidedBackprop, IntegratedGradients, Occlusion, Saliency

    wrapper = HeadLogits(model, head)
    extra = other if other else None
    with warnings.catch_warnings():  # Captum warns every call that it hooks the ReLUs
        warnings.simplefilter("ignore", UserWarning)
        if method == "guided":
            return GuidedBackprop(wrapper).attribute(waveform, target=target,
                                                     additional_forward_args=extra)
        if method == "gradient":
            return Saliency(wrapper).attribute(waveform, target=target, abs=False,
                                               additional_forward_args=extra)
        if method == "integrated":
            return IntegratedGradients(wrapper).attribute(
                waveform, baselines=0.0, target=target, additional_forward_args=extra,
                n_steps=ig_steps, internal_batch_size=len(waveform) * 8)
        if method == "occlusion":
            width = max(1, int(OCCLUSION_S * sample_rate))
            with torch.no_grad():
                return Occlusion(wrapper).attribute(
                    waveform.detach(), sliding_window_shapes=(width,), strides=(width,),
                    baselines=0.0, target=target, additional_forward_args=extra,
                    perturbations_per_eval=8)
    raise ValueError(f"unknown saliency method {method!r}; expected one of {', '.join(METHODS)}")


@torch.no_grad()
def predict_classes(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """The predicted class (argmax of the logits) of every head: {head: (B,)}."""
    logits = model(*inputs)
    return {head: logits[head].argmax(dim=1) for head in HEADS}


def saliency_batches(model: nn.Module, inputs: dict[str, np.ndarray], method: str | Method = "guided",
                     batch_size: int = 8, device: str = "cpu",
                     targets: dict[str, np.ndarray] | None = None, ig_steps: int = 32,
                     ) -> Iterator[tuple[slice, dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Yield (rows, {head: maps (b, T)}, {head: target class (b,)}) batch by batch.

    `inputs` holds one array per name in `model.inputs` (waveform first). The target of each
    window and head is the predicted class unless `targets` gives it. The model is put in eval mode.
    """
    model.eval().to(device)
    count = len(inputs["waveform"])
    for start in range(0, count, batch_size):
        rows = slice(start, min(start + batch_size, count))
        tensors = tuple(torch.as_tensor(np.asarray(inputs[name][rows], np.float32), device=device)
                        for name in model.inputs)
        chosen = predict_classes(model, tensors) if targets is None else {
            head: torch.as_tensor(targets[head][rows], device=device) for head in HEADS}
        maps = {}
        for head in HEADS:
            waveform = tensors[0].clone().requires_grad_(True)
            result = attribute(model, head, method, waveform, chosen[head], tensors[1:], ig_steps)
            maps[head] = result.detach().cpu().numpy().astype(np.float32)
        yield rows, maps, {head: chosen[head].cpu().numpy() for head in HEADS}


def compute_maps(model: nn.Module, inputs: dict[str, np.ndarray], method: str | Method = "guided",
                 batch_size: int = 8, device: str = "cpu",
                 targets: dict[str, np.ndarray] | None = None,
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """All maps at once: ({head: (N, T)}, {head: target class (N,)}); for a few windows."""
    maps: dict[str, list] = {head: [] for head in HEADS}
    chosen: dict[str, list] = {head: [] for head in HEADS}
    for _, batch_maps, batch_targets in saliency_batches(model, inputs, method, batch_size,
                                                         device, targets):
        for head in HEADS:
            maps[head].append(batch_maps[head])
            chosen[head].append(batch_targets[head])
    return ({head: np.concatenate(maps[head]) for head in HEADS},
            {head: np.concatenate(chosen[head]) for head in HEADS})


def pearson_rows(a: np.ndarray, b: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """Pearson correlation of each row of `a` (N, T) with the same row of `b`, over its first
    `lengths[i]` samples (default all); NaN where a row is constant."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if lengths is None:
        lengths = np.full(len(a), a.shape[1])
    out = np.full(len(a), np.nan)
    for i, n in enumerate(lengths):
        x, y = a[i, :n] - a[i, :n].mean(), b[i, :n] - b[i, :n].mean()
        denom = np.sqrt((x * x).sum() * (y * y).sum())
        if n > 1 and denom > 0:
            out[i] = (x * y).sum() / denom
    return out


def signal_lengths(x: np.ndarray) -> np.ndarray:
    """Samples of each window up to its last non-zero one: the zero padding of a short utterance
    or of a last slice (raylab's windowing pads with exact zeros at the end) is left out."""
    nonzero = np.asarray(x) != 0
    last = x.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), last, 0)


def envelope(x: np.ndarray, samples: int) -> np.ndarray:
    """RMS over a moving window of `samples` along each row."""
    kernel = np.ones(samples) / samples
    power = np.apply_along_axis(np.convolve, 1, np.square(np.asarray(x, np.float64)), kernel, "same")
    return np.sqrt(power)


def window_correlations(x: np.ndarray, maps: dict[str, np.ndarray],
                        sample_rate: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """Per window (rows of x (N, T)), over its samples without the zero padding:

    - `signed_<head>`: Pearson r between x[t] and s[t] as they are, the paper's "correlation
      between input signal and saliency map" read literally (paper: 0.50 arousal, 0.53 valence);
    - ours, secondary: `abs_<head>` r(|x|, |s|), `positive_<head>` r(max(x, 0), max(s, 0)),
      `envelope_<head>` r of the 10 ms RMS envelopes of x and s;
    - `heads`: Pearson r between the valence map and the arousal map (signed; paper 0.96), and
      `heads_abs` between their magnitudes.
    """
    lengths = signal_lengths(x)
    window = max(1, int(ENVELOPE_S * sample_rate))
    env_x = envelope(x, window)
    out = {}
    for head in HEADS:
        s = maps[head]
        out[f"signed_{head}"] = pearson_rows(x, s, lengths)
        out[f"abs_{head}"] = pearson_rows(np.abs(x), np.abs(s), lengths)
        out[f"positive_{head}"] = pearson_rows(np.maximum(x, 0), np.maximum(s, 0), lengths)
        out[f"envelope_{head}"] = pearson_rows(env_x, envelope(s, window), lengths)
    out["heads"] = pearson_rows(maps["valence"], maps["arousal"], lengths)
    out["heads_abs"] = pearson_rows(np.abs(maps["valence"]), np.abs(maps["arousal"]), lengths)
    return out


@dataclass
class SaliencyResult:
    """Per-window table (correlations, targets, labels) and the maps of the kept windows."""

    table: pd.DataFrame
    kept: dict[int, dict[str, np.ndarray]]  # row -> {head: map (T,)}


def analyze(model: nn.Module, inputs: dict[str, np.ndarray], window_ids: np.ndarray,
            method: str = "guided", batch_size: int = 8, device: str = "cpu",
            keep: tuple[int, ...] = (), labels: dict[str, np.ndarray] | None = None,
            sample_rate: int = SAMPLE_RATE, progress: bool = False) -> SaliencyResult:
    """Saliency of every window, streamed: correlations per window, maps only for `keep` rows;
    a bar of the windows done with `progress`."""
    from raylab.runtime import console

    rows, kept = [], {}
    bar = console.progress(len(window_ids), f"saliency ({method})", "windows") if progress else None
    for span, maps, targets in saliency_batches(model, inputs, method, batch_size, device):
        if bar is not None:
            bar.advance(span.stop - span.start)
        x = np.asarray(inputs["waveform"][span], np.float32)
        corr = window_correlations(x, maps, sample_rate)
        for i, row in enumerate(range(span.start, span.stop)):
            record = {"window_id": str(window_ids[row])}
            record.update({f"predicted_{h}": int(targets[h][i]) for h in HEADS})
            if labels is not None:
                record.update({f"label_{h}": int(labels[h][row]) for h in HEADS})
            record.update({key: float(values[i]) for key, values in corr.items()})
            rows.append(record)
            if row in keep:
                kept[row] = {head: maps[head][i] for head in HEADS}
    if bar is not None:
        bar.close()
    return SaliencyResult(pd.DataFrame(rows), kept)


def summarize(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Mean, std, median and count (NaN rows left out) of every correlation column."""
    summary = {}
    prefixes = ("signed_", "abs_", "positive_", "envelope_", "heads")
    for column in [c for c in table.columns if c.startswith(prefixes)]:
        values = table[column].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        summary[column] = {"mean": float(values.mean()) if len(values) else float("nan"),
                           "std": float(values.std()) if len(values) else float("nan"),
                           "median": float(np.median(values)) if len(values) else float("nan"),
                           "n": int(len(values))}
    return summary


def run_saliency(target, method: str = "guided", windows: int | None = None,
                 out: str | None = None, batch_size: int = 8, device: str = "cpu",
                 figures: int = 3, track: bool = True, all_windows: bool = False,
                 sanity_windows: int = 4) -> dict:
    """`raylab analyze saliency`: maps for the fold's test windows (every window of the dataset
    with `all_windows`, as the paper's "over the dataset"), correlations per window
    (correlations.csv), their summary (saliency_summary.json), histogram and Figure 4 PNGs,
    with the method's randomisation check (`analysis.evidence.saliency_evidence` on
    `sanity_windows` windows; 0 skips it)."""
    from analysis import plots, runs
    from analysis.evidence import saliency_evidence

    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}")
    dataset = runs.load_data(target)
    rows = (runs.fold_test_rows(dataset, target.fold, windows) if not all_windows else
            runs.spread_rows(np.arange(len(dataset.window_id)), windows))
    inputs = runs.network_inputs(target, dataset, rows)
    loudness = np.sqrt(np.mean(np.square(inputs["waveform"]), axis=1))
    keep = tuple(int(i) for i in np.argsort(-loudness)[:figures])  # the loudest windows
    checked = range(min(sanity_windows, len(rows)))  # the check's windows: their maps are kept
    labels = {h: dataset.labels(h)[rows] for h in HEADS}
    result = analyze(target.model, inputs, dataset.window_id[rows], method, batch_size, device,
                     tuple(sorted({*keep, *checked})), labels, target.sample_rate, progress=True)
    summary = {"method": method, "method_name": METHOD_NAMES[method], "arch": target.arch,
               "fold": target.fold, "checkpoint": str(target.checkpoint), "windows": len(rows),
               "over": "every window of the dataset" if all_windows else
                       f"the test windows of fold {target.fold}",
               "target": "logit (pre-softmax) of each head's predicted class",
               "primary": "r(x, s): signed waveform against signed saliency, zero padding left "
                          "out (the paper's reading)",
               "secondary": SECONDARY,
               "correlations": summarize(result.table), "paper": PAPER,
               "accuracy": {h: float(np.mean(result.table[f"predicted_{h}"]
                                             == result.table[f"label_{h}"])) for h in HEADS}}
    if sanity_windows:
        trained = ({h: np.stack([result.kept[i][h] for i in checked]) for h in HEADS},
                   {h: np.array(result.table[f"predicted_{h}"][:len(checked)]) for h in HEADS})
        summary["sanity"] = saliency_evidence(target, inputs, method, sanity_windows, batch_size,
                                              device, trained=trained)
    final = runs.output_dir(target, "saliency", out)
    sr = target.sample_rate
    with runs.staged(final) as tmp:
        result.table.to_csv(tmp / "correlations.csv", index=False)
        plots.correlation_histogram(
            {label: result.table[name].to_numpy(float) for name, label in HISTOGRAMS.items()},
            tmp / "correlation_histogram.png",
            f"{METHOD_NAMES[method]}: per-window Pearson r, fold {target.fold} ({len(rows)} windows)")
        for row in keep:
            wid = str(dataset.window_id[rows][row])
            for head in HEADS:
                plots.figure4(inputs["waveform"][row], result.kept[row][head], sr,
                              tmp / f"figure4_{head}_{_safe(wid)}.png",
                              f"{METHOD_NAMES[method]} saliency, {head} class "
                              f"{int(result.table[f'predicted_{head}'][row]) + 1}, window {wid}")
        (tmp / "saliency_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    corr = summary["correlations"]
    summary["out"] = str(final)
    summary["mlflow_run_id"] = runs.publish(target, final, {
        f"{method}_{key}_mean": corr[key]["mean"]
        for key in ("signed_valence", "signed_arousal", "abs_valence", "abs_arousal",
                    "positive_valence", "positive_arousal", "envelope_valence",
                    "envelope_arousal", "heads")},
        track)
    return summary


def format_summary(summary: dict) -> str:
    """The headline numbers, against the paper's, and the method's sanity check."""
    from analysis.evidence import baseline_line, evidence_line

    corr = summary["correlations"]
    line = lambda key: f"{corr[key]['mean']:+.3f} ± {corr[key]['std']:.3f}"  # noqa: E731
    return "\n".join([
        f"{summary['method_name']} saliency of {summary['arch']} fold {summary['fold']}, "
        f"{summary['windows']} windows, {summary.get('over', 'the fold')} (accuracy valence "
        f"{summary['accuracy']['valence']:.3f}, arousal {summary['accuracy']['arousal']:.3f})",
        f"  r(x, s), the paper's reading   valence {line('signed_valence')}  arousal "
        f"{line('signed_arousal')}   (paper: 0.53, 0.50)",
        f"  r(valence map, arousal map)    {line('heads')}   (paper: 0.96)",
        "  ours, secondary:",
        f"  r(|x|, |s|)                    valence {line('abs_valence')}  arousal {line('abs_arousal')}",
        f"  r(x+, s+) positive parts       valence {line('positive_valence')}  arousal "
        f"{line('positive_arousal')}",
        f"  r(env x, env s) 10 ms RMS      valence {line('envelope_valence')}  arousal "
        f"{line('envelope_arousal')}",
        "  " + (evidence_line(summary["sanity"], summary["method"]) if summary.get("sanity")
                else "sanity check: not run (--sanity-windows 0); see `raylab analyze sanity`"),
        *(["  " + baseline_line(summary["sanity"]["baseline"])]
          if summary.get("sanity", {}).get("baseline") else []),
        f"  written to {summary['out']}"])


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)
