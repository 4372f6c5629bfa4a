"""Sanity checks for saliency maps (Adebayo et al. 2018, "Sanity checks for saliency maps").

A map that explains the network must change when the network's weights change. Two tests:
- cascading randomisation: re-initialise the layers one by one from the top (each head's output
  layer, then its hidden layers, then conv3, conv2, conv1; PyTorch's default initialisation,
  seeded; batch-norm statistics kept), recomputing the maps after each step;
- a network trained on permuted labels (the run's architecture and settings, briefly).
At each step: the Spearman rank correlation between |original map| and |new map| per window,
over the window's signal (its zero padding left out, as in `analysis.saliency`'s correlations),
averaged over windows, with the target class fixed to the original network's prediction. A method
whose correlation stays high after the whole network is random does not depend on the weights
(guided backpropagation is known to behave so on images; this reports what it does here).

Why the padding is left out: a short utterance's window ends in exact zeros, often half of it. There
every network's map is near or exactly zero whatever its weights: occlusion and integrated
gradients give exactly 0, and on the demo network the median |gradient| in the padding is below a
thousandth of that in the signal, trained or random. So for any two networks the padding's samples
take the lowest ranks together, and that block of shared ranks measured the padding's length: on
the demo network the plain gradient's ρ after full randomisation was 0.49 with the padding and
0.09 without (README, "Saliency and its evidence").

Two numbers are reported beside the verdict to say what is left of a high ρ, and do not change
it (the threshold stays `SENSITIVE_BELOW`):
- the floor: ρ between the maps of two independently randomised networks. What any network
  draws alike is the input's structure; Adebayo et al. compare such maps with an edge detector
  applied to the input. Binder et al. (2022, "Shortcomings of top-down randomization-based
  sanity checks") show that top-down randomisation keeps the scale of the forward activations,
  so that inputs with large activations still get large attributions after it, and that maps
  without information (noise) pass the check easily: a low ρ alone proves little;
- ρ of |map| with the input's own 10 ms RMS envelope, for the original network and the fully
  random one: where the waveform is loud the activations are large, so a map that follows the
  envelope keeps a high ρ whatever the weights. Maps that multiply by the input (integrated
  gradients) carry the input itself (Kindermans et al. 2019, "The (un)reliability of saliency
  methods").
A method that fails with ρ near its floor and its envelope ρ draws the input, not the network.
"""
from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from analysis.acoustics import to_markdown
from analysis.saliency import (ENVELOPE_S, HEADS, METHODS, Method, compute_maps, envelope,
                               signal_lengths)
from raylab import SAMPLE_RATE

SENSITIVE_BELOW = 0.5  # mean rank correlation under which a map is said to depend on the weights
SPEARMAN_OVER = "signal"  # what the rank correlations cover: each window without its zero padding
FLOOR_STEP = "two random networks"  # the floor's row: a second random network against the first
FLOOR_SEED = 1000  # the second random network's seeds start here, after the first's
INSENSITIVE_HINTS = {
    "guided": " (guided backpropagation's known failure: Adebayo et al. 2018)",
    "integrated": " (it multiplies the gradient by the input, whose magnitudes then dominate)",
    "occlusion": " (silencing a loud stretch moves any network's logit more than a quiet one's)"}


def layer_groups(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """Layers to randomise, top first: the k-th last Linear of every head together ("output",
    "hidden2", "hidden1"), then the trunk's convolutions from the last to the first."""
    per_head = [[m for m in head.modules() if isinstance(m, nn.Linear)]
                for head in model.heads.values()]
    depth = max(len(layers) for layers in per_head)
    groups = []
    for k in range(1, depth + 1):
        name = "output" if k == 1 else f"hidden{depth - k + 1}"
        groups.append((name, [layers[-k] for layers in per_head if len(layers) >= k]))
    in_heads = {id(m) for m in model.heads.modules()}
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d) and id(m) not in in_heads]
    for i in range(len(convs), 0, -1):
        groups.append((f"conv{i}", [convs[i - 1]]))
    return groups


def rank_correlations(a: np.ndarray, b: np.ndarray, lengths: np.ndarray | None = None
                      ) -> np.ndarray:
    """Spearman ρ between |a[i]| and |b[i]| for every row i, over its first `lengths[i]` samples
    (default all); NaN where a row is constant there."""
    from scipy.stats import spearmanr

    lengths = np.full(len(a), np.shape(a)[1]) if lengths is None else lengths
    out = np.full(len(a), np.nan)
    for i, n in enumerate(lengths):
        u, v = np.abs(a[i, :n]), np.abs(b[i, :n])
        if n > 1 and np.ptp(u) > 0 and np.ptp(v) > 0:
            out[i] = spearmanr(u, v).statistic
    return out


def _mean_std(rho: np.ndarray) -> tuple[float, float]:
    if not np.isfinite(rho).any():
        return np.nan, np.nan
    return float(np.nanmean(rho)), float(np.nanstd(rho))


def _compare(model: nn.Module, inputs: dict[str, np.ndarray], methods: dict[str, str | Method],
             originals: dict, targets: dict, step: str, batch_size: int, device: str,
             sample_rate: int, found: dict | None = None) -> tuple[list[dict], dict]:
    """One row per (method, head): ρ of this network's maps (`found` where they are already
    computed) with `originals` and with the input's envelope, over each window's signal; and the
    maps {method: {head: (N, T)}}."""
    x = np.asarray(inputs["waveform"])
    lengths = signal_lengths(x)
    env = envelope(x, max(1, int(ENVELOPE_S * sample_rate)))
    rows, all_maps = [], {}
    for name, method in methods.items():
        all_maps[name] = (found[name] if found is not None else
                          compute_maps(model, inputs, method, batch_size, device, targets)[0])
        for head in HEADS:
            maps = all_maps[name][head]
            mean, std = _mean_std(rank_correlations(originals[name][head], maps, lengths))
            rows.append({"step": step, "method": name, "head": head, "spearman_mean": mean,
                         "spearman_std": std, "envelope_spearman":
                         _mean_std(rank_correlations(env, maps, lengths))[0]})
    return rows, all_maps


def _layer_groups_or_raise(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    groups = layer_groups(model)
    if not groups:
        raise ValueError(f"{type(model).__name__} has no Linear layer in its heads and no Conv1d "
                         "in its trunk: nothing to randomise")
    return groups


def randomize(model: nn.Module, seed: int) -> Iterator[tuple[str, nn.Module]]:
    """Re-initialise a copy of `model` cumulatively, top layer group first (PyTorch's default
    initialisation, seed `seed + k` for the k-th group); yield (step, the copy) after each.
    ValueError when `layer_groups` finds no layer."""
    randomized = copy.deepcopy(model)
    for k, (step, layers) in enumerate(_layer_groups_or_raise(randomized)):
        torch.manual_seed(seed + k)
        for layer in layers:
            layer.reset_parameters()
        yield step, randomized


def cascading_randomization(model: nn.Module, inputs: dict[str, np.ndarray],
                            methods: dict[str, str | Method], batch_size: int = 8,
                            device: str = "cpu", seed: int = 0,
                            permuted: nn.Module | None = None,
                            sample_rate: int = SAMPLE_RATE,
                            originals: tuple[dict, dict] | None = None) -> pd.DataFrame:
    """One row per (step, method, head): mean and std over windows of the rank correlation with
    the original maps, and the mean rank correlation of the step's maps with the input's
    envelope (`envelope_spearman`). Steps: "original", then each layer group of `layer_groups`
    cumulatively, then `FLOOR_STEP` (the fully random network's maps against those of a second,
    independently randomised one: the floor), then "permuted labels" when a network trained on
    permuted labels is given. `originals`: the original network's maps {method: {head: (N, T)}}
    and targets {head: (N,)} where they are already computed. ValueError when `layer_groups`
    finds no layer."""
    _layer_groups_or_raise(model)  # before the original maps are computed
    model.eval()
    if originals is not None:
        originals, targets = originals
    else:
        originals, targets = {}, None
        for name, method in methods.items():
            originals[name], chosen = compute_maps(model, inputs, method, batch_size, device,
                                                   targets)
            targets = targets or chosen
    common = (batch_size, device, sample_rate)
    rows, _ = _compare(model, inputs, methods, originals, targets, "original", *common,
                       found=originals)
    for step, randomized in randomize(model, seed):
        found, random_maps = _compare(randomized, inputs, methods, originals, targets, step,
                                      *common)
        rows += found
    *_, (_, second) = randomize(model, seed + FLOOR_SEED)
    rows += _compare(second, inputs, methods, random_maps, targets, FLOOR_STEP, *common)[0]
    if permuted is not None:
        rows += _compare(permuted, inputs, methods, originals, targets, "permuted labels",
                         *common)[0]
    return pd.DataFrame(rows)


def verdicts(table: pd.DataFrame, threshold: float = SENSITIVE_BELOW) -> dict[str, dict]:
    """Per method: the mean correlation (both heads) after every layer is random and after the
    permuted-label training, and whether each is below `threshold` (the map depends on weights);
    with the floor and the envelope correlations of the original and the fully random network
    where the table has them (they do not enter the verdict)."""
    steps = [s for s in table["step"].unique()
             if s not in ("original", "permuted labels", FLOOR_STEP)]
    out = {}
    for method, part in table.groupby("method", sort=False):
        by_step = part.groupby("step", sort=False)["spearman_mean"].mean()
        last = float(by_step[steps[-1]]) if steps else float("nan")
        entry = {"fully_random": last, "depends_on_weights": bool(last < threshold)}
        if FLOOR_STEP in by_step:
            entry["floor"] = float(by_step[FLOOR_STEP])
        if "envelope_spearman" in part and steps:
            env = part.groupby("step", sort=False)["envelope_spearman"].mean()
            entry["envelope_original"] = float(env["original"])
            entry["envelope_random"] = float(env[steps[-1]])
        if "permuted labels" in by_step:
            entry["permuted_labels"] = float(by_step["permuted labels"])
            entry["depends_on_labels"] = bool(entry["permuted_labels"] < threshold)
        out[str(method)] = entry
    return out


def context_text(verdict: dict) -> str:
    """The floor and the envelope correlations of a verdict, where it has them."""
    parts = []
    if "floor" in verdict:
        parts.append(f"floor (two random networks) {verdict['floor']:+.2f}")
    if "envelope_original" in verdict:
        parts.append(f"ρ of |map| with the input's envelope {verdict['envelope_original']:+.2f} "
                     f"trained, {verdict['envelope_random']:+.2f} random")
    return "; ".join(parts)


def permuted_label_model(target, dataset, epochs: int | None, seed: int = 0,
                         device: str = "cpu", train_limit: int | None = None) -> nn.Module:
    """A fresh network of the run's architecture trained with raylab.train.loop.fit on the fold's
    training windows with their labels shuffled (seeded), for `epochs` (default: the run's)."""
    from analysis import runs
    from raylab.train.folds import fold_split
    from raylab.train.loop import fit
    from raylab.train.params import split_params

    split = fold_split(dataset.speaker, target.fold, seed=seed)
    rng = np.random.default_rng(seed)
    train_idx, val_idx = np.asarray(split.train_idx), np.asarray(split.val_idx)
    if train_limit:
        train_idx = rng.permutation(train_idx)[:train_limit]
        val_idx = rng.permutation(val_idx)[:max(1, train_limit // 4)]
    rows = np.concatenate([train_idx, val_idx])
    arrays = runs.network_arrays(target, dataset, rows)
    for dim in HEADS:
        arrays.targets[dim] = rng.permutation(arrays.targets[dim])  # labels of other windows
    _, cfg = split_params(target.arch, runs.train_params(target))
    cfg = replace(cfg, epochs=int(epochs or cfg.epochs), device=device, seed=seed)
    torch.manual_seed(seed)
    model = type(target.model)(**target.model.config)
    n = len(train_idx)
    fit(model, arrays.view(np.arange(n)), arrays.view(np.arange(n, len(rows))), cfg)
    return model.eval()


def run_sanity(target, methods: tuple[str, ...] = METHODS, windows: int = 16,
               epochs: int | None = None, permute: bool = True, seed: int = 0,
               out: str | None = None, batch_size: int = 8, device: str = "cpu",
               train_limit: int | None = None, track: bool = True) -> dict:
    """`raylab analyze sanity`: sanity.csv, sanity.md, sanity.png, sanity_summary.json."""
    from analysis import plots, runs

    for method in methods:
        if method not in METHODS:
            raise ValueError(f"unknown saliency method {method!r}")
    dataset = runs.load_data(target)
    rows = runs.fold_test_rows(dataset, target.fold, windows)
    inputs = runs.network_inputs(target, dataset, rows)
    permuted = (permuted_label_model(target, dataset, epochs, seed, device, train_limit)
                if permute else None)
    table = cascading_randomization(target.model, inputs, {m: m for m in methods}, batch_size,
                                    device, seed, permuted, target.sample_rate)
    wide = table.pivot_table(index="step", columns=["method", "head"], values="spearman_mean",
                             sort=False).round(3)
    wide.columns = [f"{m} {h}" for m, h in wide.columns]
    summary = {"arch": target.arch, "fold": target.fold, "windows": int(len(inputs["waveform"])),
               "methods": list(methods), "threshold": SENSITIVE_BELOW,
               "spearman_over": SPEARMAN_OVER,
               "verdicts": verdicts(table), "permuted_label_epochs": epochs}
    final = runs.output_dir(target, "sanity", out)
    with runs.staged(final) as tmp:
        table.to_csv(tmp / "sanity.csv", index=False)
        (tmp / "sanity.md").write_text(to_markdown(wide))
        cascade = table[table.step != FLOOR_STEP]
        curves = {m: cascade[cascade.method == m].groupby("step", sort=False)["spearman_mean"]
                  .mean().tolist() for m in methods}
        plots.sanity_plot(list(cascade.step.unique()), curves, tmp / "sanity.png",
                          f"saliency sanity checks, {target.arch} fold {target.fold}")
        (tmp / "sanity_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    summary["out"], summary["table"] = str(final), wide
    summary["mlflow_run_id"] = runs.publish(
        target, final, {f"sanity_{m}_fully_random": v["fully_random"]
                        for m, v in summary["verdicts"].items()}, track)
    return summary


def format_summary(summary: dict) -> str:
    lines = [f"sanity checks (Adebayo et al. 2018) of {summary['arch']} fold {summary['fold']}, "
             f"{summary['windows']} windows: mean Spearman of |maps| with the original, over "
             f"each window's signal (zero padding left out); \"{FLOOR_STEP}\": a second random "
             "network's maps against the first's (the floor)",
             to_markdown(summary["table"])]
    for method, v in summary["verdicts"].items():
        text = (f"{method}: {v['fully_random']:+.2f} with every layer random -> "
                + ("depends on the weights" if v["depends_on_weights"]
                   else f"does NOT depend on the weights{INSENSITIVE_HINTS.get(method, '')}"))
        if "permuted_labels" in v:
            text += (f"; {v['permuted_labels']:+.2f} after permuted-label training -> "
                     + ("depends on the labels" if v["depends_on_labels"]
                        else "does NOT depend on the labels"))
        if context_text(v):
            text += f" ({context_text(v)})"
        lines.append(text)
    lines.append(f"written to {summary['out']}")
    return "\n".join(lines)
