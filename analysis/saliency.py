"""Saliency maps on the raw waveform (paper section 2.3.2, 4.2.1, Figure 4).

A saliency map is the attribution of one head's predicted-class logit (pre-softmax) to every input
sample, computed with Captum: guided backpropagation (the paper's choice, `GuidedBackprop`), the
plain gradient (`Saliency`, signed) or integrated gradients from a silent baseline
(`IntegratedGradients`). Any other input of the network (the IS10 features of ELoR+FTR) is passed
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

HEADS = ("valence", "arousal")
METHODS = ("guided", "gradient", "integrated")
METHOD_NAMES = {"guided": "guided backpropagation", "gradient": "plain gradient",
                "integrated": "integrated gradients"}
HISTOGRAMS = {"abs_valence": "r(|x|, |s|), valence", "abs_arousal": "r(|x|, |s|), arousal",
              "signed_valence": "r(x, s), valence", "signed_arousal": "r(x, s), arousal",
              "heads": "r(s valence, s arousal)"}
PAPER = {"abs_valence": 0.53, "abs_arousal": 0.50, "heads": 0.96}  # section 4.2.1

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
              target: torch.Tensor, other: tuple = (), ig_steps: int = 32) -> torch.Tensor:
    """Attribution (B, T) of the logit `target` of `head` to the waveform (B, T)."""
    if callable(method):
        return method(model, head, waveform, target, other)
    from captum.attr import GuidedBackprop, IntegratedGradients, Saliency

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


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of `a` (N, T) with the same row of `b`; NaN where a row
    is constant."""
    a = np.asarray(a, np.float64) - np.mean(a, axis=1, keepdims=True)
    b = np.asarray(b, np.float64) - np.mean(b, axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(axis=1) / denom, np.nan)


def window_correlations(x: np.ndarray, maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per window (rows of x (N, T)), over all T samples of the window (padding included):

    - `abs_<head>`: Pearson r between the amplitude |x[t]| and the saliency magnitude |s[t]|, the
      paper's "correlation between the input signal and the saliency map" (0.50 arousal, 0.53
      valence), read as amplitude vs importance since a sign-blind reading is the one that
      supports the paper's conclusion that louder parts matter more;
    - `signed_<head>`: Pearson r between x[t] and s[t] as they are;
    - `heads`: Pearson r between the valence map and the arousal map (signed; paper 0.96), and
      `heads_abs` between their magnitudes.
    """
    out = {}
    for head in HEADS:
        out[f"abs_{head}"] = pearson_rows(np.abs(x), np.abs(maps[head]))
        out[f"signed_{head}"] = pearson_rows(x, maps[head])
    out["heads"] = pearson_rows(maps["valence"], maps["arousal"])
    out["heads_abs"] = pearson_rows(np.abs(maps["valence"]), np.abs(maps["arousal"]))
    return out


@dataclass
class SaliencyResult:
    """Per-window table (correlations, targets, labels) and the maps of the kept windows."""

    table: pd.DataFrame
    kept: dict[int, dict[str, np.ndarray]]  # row -> {head: map (T,)}


def analyze(model: nn.Module, inputs: dict[str, np.ndarray], window_ids: np.ndarray,
            method: str = "guided", batch_size: int = 8, device: str = "cpu",
            keep: tuple[int, ...] = (), labels: dict[str, np.ndarray] | None = None,
            ) -> SaliencyResult:
    """Saliency of every window, streamed: correlations per window, maps only for `keep` rows."""
    rows, kept = [], {}
    for span, maps, targets in saliency_batches(model, inputs, method, batch_size, device):
        x = np.asarray(inputs["waveform"][span], np.float32)
        corr = window_correlations(x, maps)
        for i, row in enumerate(range(span.start, span.stop)):
            record = {"window_id": str(window_ids[row])}
            record.update({f"predicted_{h}": int(targets[h][i]) for h in HEADS})
            if labels is not None:
                record.update({f"label_{h}": int(labels[h][row]) for h in HEADS})
            record.update({key: float(values[i]) for key, values in corr.items()})
            rows.append(record)
            if row in keep:
                kept[row] = {head: maps[head][i] for head in HEADS}
    return SaliencyResult(pd.DataFrame(rows), kept)


def summarize(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Mean, std, median and count (NaN rows left out) of every correlation column."""
    summary = {}
    for column in [c for c in table.columns if c.startswith(("abs_", "signed_", "heads"))]:
        values = table[column].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        summary[column] = {"mean": float(values.mean()) if len(values) else float("nan"),
                           "std": float(values.std()) if len(values) else float("nan"),
                           "median": float(np.median(values)) if len(values) else float("nan"),
                           "n": int(len(values))}
    return summary


def run_saliency(target, method: str = "guided", windows: int | None = None,
                 out: str | None = None, batch_size: int = 8, device: str = "cpu",
                 figures: int = 3, track: bool = True) -> dict:
    """`raylab analyze saliency`: maps for the fold's test windows, correlations per window
    (correlations.csv), their summary (saliency_summary.json), histogram and Figure 4 PNGs."""
    from analysis import plots, runs

    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}")
    dataset = runs.load_data(target)
    rows = runs.fold_test_rows(dataset, target.fold, windows)
    inputs = runs.network_inputs(target, dataset, rows)
    loudness = np.sqrt(np.mean(np.square(inputs["waveform"]), axis=1))
    keep = tuple(int(i) for i in np.argsort(-loudness)[:figures])  # the loudest windows
    labels = {h: dataset.labels(h)[rows] for h in HEADS}
    result = analyze(target.model, inputs, dataset.window_id[rows], method, batch_size, device,
                     keep, labels)
    summary = {"method": method, "method_name": METHOD_NAMES[method], "arch": target.arch,
               "fold": target.fold, "checkpoint": str(target.checkpoint), "windows": len(rows),
               "target": "logit (pre-softmax) of each head's predicted class",
               "correlations": summarize(result.table), "paper": PAPER,
               "accuracy": {h: float(np.mean(result.table[f"predicted_{h}"]
                                             == result.table[f"label_{h}"])) for h in HEADS}}
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
                              f"{int(result.table[f'predicted_{head}'][row])}, window {wid}")
        (tmp / "saliency_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    corr = summary["correlations"]
    summary["out"] = str(final)
    summary["mlflow_run_id"] = runs.publish(target, final, {
        f"analysis_{method}_{key}_mean": corr[key]["mean"]
        for key in ("abs_valence", "abs_arousal", "signed_valence", "signed_arousal", "heads")},
        track)
    return summary


def format_summary(summary: dict) -> str:
    """The headline numbers, against the paper's."""
    corr = summary["correlations"]
    line = lambda key: f"{corr[key]['mean']:+.3f} ± {corr[key]['std']:.3f}"  # noqa: E731
    return "\n".join([
        f"{summary['method_name']} saliency of {summary['arch']} fold {summary['fold']}, "
        f"{summary['windows']} windows (accuracy valence {summary['accuracy']['valence']:.3f}, "
        f"arousal {summary['accuracy']['arousal']:.3f})",
        f"  r(|x|, |saliency|)  valence {line('abs_valence')}  arousal {line('abs_arousal')}"
        f"   (paper: 0.53, 0.50)",
        f"  r(x, saliency)      valence {line('signed_valence')}  arousal {line('signed_arousal')}",
        f"  r(valence map, arousal map) {line('heads')}   (paper: 0.96)",
        f"  written to {summary['out']}"])


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)
