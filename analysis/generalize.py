"""Generalized input signals (paper section 2.3.1, eq. 4, Figure 5, Table 6).

For each head and class c, x* = argmax_x a_c(x) − λ‖x‖² where a_c is the class's logit
(pre-softmax output of the head: the softmax would let a class win by pushing the others down).
The network is frozen in eval mode (batch norm uses its running statistics, no dropout); x starts
from seeded Gaussian noise or the dataset's mean window and climbs the objective with Adam (the
paper says "stochastic gradient ascent" without naming a variant; Adam's per-sample step size is
insensitive to the scale of the gradient), clipped to [-1, 1] after every step. All ten signals
are optimised in one batch: in eval mode the rows do not interact.

Hand-written: no maintained library does activation maximisation on 1-D audio (the released
Captum has none; its unreleased `optim` branch and lucent target images).
"""
from __future__ import annotations

import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from raylab import DIMENSIONS, IS10_DIM, NUM_CLASSES, SAMPLE_RATE
from raylab.errors import DataError

from analysis.acoustics import characteristics, table6, to_markdown
from analysis.methods import (DEFAULT_METHOD, F0_GRID, METHOD_DEFAULTS, METHODS, PAUSE_GRID,
                              PHRASE_GRID, RATE_GRID, with_prior)
from analysis.prior import PRIOR_WINDOWS, FeaturePrior
from analysis.shaped import ProsodySignal, ShapedSignal, SourceFilterSignal, jitter

# Table 6 and Figure 5 list arousal first, as the paper does
TABLE_HEADS = DIMENSIONS[::-1]
INITS = ("noise", "mean")
JITTER_COPIES, SHIFT_MS, JITTER_DB = 1, 20.0, 1.0
TIE = 1e-3  # two scores (log-odds) this close are a tie on a grid
_SPEECH, _PROSODY = METHOD_DEFAULTS["speech"], METHOD_DEFAULTS["prosody"]
OBJECTIVES = {"paper": "class logit (pre-softmax) - l2 * ||x||^2 (eq. 4), on raw samples",
              "shaped": f"class log-softmax - l2 * ||x||^2 of a copy shifted by up to "
                        f"{SHIFT_MS:g} ms and scaled by up to {JITTER_DB:g} dB (new draw every "
                        "step), on gain x envelope x carrier",
              "speech": f"class log-odds log(p / (1 - p)) - l2 * ||x||^2 of a copy shifted by up "
                        f"to {_SPEECH['shift_ms']:g} ms and scaled by up to {JITTER_DB:g} dB (new "
                        "draw every step), on tanh(gain x envelope x filtered harmonic-plus-noise "
                        f"source); the best of {_SPEECH['starts']} starts and of a grid of f0 per "
                        "class",
              "prosody": f"class log-odds log(p / (1 - p)) - l2 * ||x||^2 of a copy shifted by up "
                         f"to {_PROSODY['shift_ms']:g} ms and scaled by up to {JITTER_DB:g} dB "
                         "(new draw every step), on tanh(gain x syllable train x filtered "
                         "harmonic-plus-noise source); the best of "
                         f"{_PROSODY['starts']} gain starts per class; f0, then syllable rate "
                         "and pause together (every pair), then syllables per phrase chosen from "
                         "grids by evaluation (a tie goes to the values scoring higher at "
                         f"{_PROSODY['tie_drive']:g} of the gain)"}
CHANCE_UAR, LEARNED_MARGIN = 0.2, 0.1  # a head whose test UAR is under 0.3 is taken as at chance
# Which acoustic measure reads each planted cue of the demo corpus (raylab.data.corpora.demo.CUES);
# pause jitter has no measure here.
CUE_MEASURES = {"f0_hz": "f0_hz", "peak_amplitude": "peak_amplitude", "pause_ms": "pause_ms",
                "brightness_hz": "centroid_hz", "syllables_per_s": "syllable_rate_hz"}
# The paper's observations (section 4.2.2), checked on any other corpus: (dimension, measure, sign).
PAPER_CUES = (("arousal", "centroid_hz", +1), ("arousal", "peak_amplitude", +1),
              ("valence", "loudness_dbfs", -1))


def demo_cues() -> tuple[tuple[str, str, int], ...]:
    """(dimension, measure, expected sign) of every planted cue that has a measure, the sign read
    from the demo corpus's own table (e.g. pause_ms falls with valence: -1)."""
    from raylab.data.corpora.demo import CUES

    checks = []
    for dim, cues in CUES.items():
        for cue, values in cues.items():
            if cue in CUE_MEASURES:
                checks.append((dim, CUE_MEASURES[cue], 1 if values[-1] > values[0] else -1))
    return tuple(checks)


@dataclass
class Generalized:
    """The optimised signals {(head, class): (T,)} and how far each got."""

    signals: dict[tuple[str, int], np.ndarray]
    logits: dict[tuple[str, int], float]          # a_c(x*)
    probability: dict[tuple[str, int], float]     # softmax of the class at x*
    history: list[list[float]] = field(default_factory=list)  # objective per row, every log step
    # "speech" and "prosody": the f0 of F0_GRID chosen for each signal's harmonic source, its
    # voicing (the harmonic share of the source's power, sigmoid of the learned logit: 0 noise,
    # 1 harmonic) and its gain (the factor on the unit-RMS carrier inside tanh: loudness)
    source_f0_hz: dict[tuple[str, int], float] = field(default_factory=dict)
    voicing: dict[tuple[str, int], float] = field(default_factory=dict)
    gain: dict[tuple[str, int], float] = field(default_factory=dict)
    # "prosody" only: the syllable train chosen for each signal (rate_hz, pause_ms, phrase)
    rhythm: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)
    # with a data prior: each signal's log-density per dimension (up to a constant) among the
    # windows the prior was fitted on
    typicality: dict[tuple[str, int], float] = field(default_factory=dict)


def held_inputs(model: nn.Module, n: int, device: str = "cpu") -> tuple[torch.Tensor, ...]:
    """The inputs after the waveform, held while the waveform is optimised: IS10 (ELoR+FTR) at 0,
    the training mean of the standardised features."""
    return tuple(torch.zeros(n, int(model.config.get("num_features", IS10_DIM)), device=device)
                 for _ in model.inputs[1:])


def data_prior(target, dataset, device: str = "cpu") -> FeaturePrior:
    """`analysis.prior` fitted on up to PRIOR_WINDOWS of the windows the network could have seen
    (not its test speaker's), spread evenly, with their classes."""
    from analysis import runs

    rows = runs.spread_rows(np.flatnonzero(dataset.speaker != target.fold), PRIOR_WINDOWS)
    if not len(rows):
        raise DataError(f"{dataset.path}: the data prior needs windows of other speakers, and "
                        f"every window is the test speaker's ({target.fold}); --no-prior runs "
                        "without it")
    try:
        return FeaturePrior.fit(target.model, dataset.audio[rows],
                                {dim: dataset.labels(dim)[rows] for dim in TABLE_HEADS},
                                lambda n: held_inputs(target.model, n, device), device=device,
                                scale=1 / 32768)
    except ValueError as err:  # e.g. no class with two windows
        raise DataError(f"{dataset.path}: {err}; --no-prior runs without it") from err


def pick_on_grid(scores: torch.Tensor, low: torch.Tensor | None = None,
                 tie: float = TIE) -> torch.Tensor:
    """Per row, the grid value chosen from `scores` (values, rows): the highest, the first of
    equal ones. With `low`, the same values' scores with the signal attenuated: among the values
    within `tie` of the row's highest score, the one whose `low` is highest (the first of equal
    ones). A class at its ceiling (the heads' sigmoids saturated) scores alike for many values;
    the attenuated signal, below the ceiling, tells them apart."""
    if low is None:
        return scores.argmax(0)
    near = scores >= scores.amax(0, keepdim=True) - tie
    return torch.where(near, low, torch.full_like(low, -torch.inf)).argmax(0)


def _target_scores(out: dict[str, torch.Tensor], targets: list[tuple[str, int]],
                   objective: str) -> torch.Tensor:
    """Per row i: the logit of targets[i], its log-softmax, or its log-odds (rows may repeat the
    targets)."""
    rows = out[targets[0][0]].shape[0]
    scores = []
    for i in range(rows):
        head, c = targets[i % len(targets)]
        z = out[head][i]
        if objective == "logit":
            scores.append(z[c])
        elif objective == "log_odds":  # log p / (1 - p): keeps rising after the class wins
            others = torch.cat([z[:c], z[c + 1:]])
            scores.append(z[c] - torch.logsumexp(others, dim=0))
        else:
            scores.append(torch.log_softmax(z, dim=0)[c])
    return torch.stack(scores)  # (rows,)


def generalize(model: nn.Module, samples: int, steps: int | None = None, l2: float | None = None,
               lr: float | None = None, init: str = "noise", seed: int = 0,
               init_scale: float = 0.01, mean_window: np.ndarray | None = None,
               device: str = "cpu", targets: list[tuple[str, int]] | None = None,
               log_every: int = 50, on_log: Callable[[int, list[float]], None] | None = None,
               method: str = DEFAULT_METHOD, sample_rate: int = SAMPLE_RATE,
               progress: bool = False, prior: FeaturePrior | None = None) -> Generalized:
    """One generalized signal for every (head, class) in `targets` (default: both heads × classes
    0..4) by `method` (see METHODS; None settings take the method's defaults);
    `on_log(step, objective per signal)` every `log_every` steps; with `progress` a bar of the
    steps with the mean objective (`raylab.runtime.console.progress`). With `prior`
    (`analysis.prior`; not for "paper", which is eq. 4 unchanged) every score adds the signal's
    log-density per dimension among the windows the prior was fitted on; the prosody method's
    default prior is fitted and passed by `run_generalize` (here None means none)."""
    from raylab.runtime import console

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if prior is not None and method == "paper":
        raise ValueError("the paper method is eq. (4) unchanged: it takes no data prior")
    settings = {**METHOD_DEFAULTS[method], **{k: v for k, v in
                                               (("steps", steps), ("l2", l2), ("lr", lr))
                                               if v is not None}}
    steps, l2, lr = settings["steps"], settings["l2"], settings["lr"]
    targets = targets or [(head, c) for head in TABLE_HEADS for c in range(NUM_CLASSES)]
    # every check before the network is frozen: a bad argument leaves it as it was
    if method == "paper" and init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if method == "paper" and init == "mean" and mean_window is None:
        raise ValueError("init 'mean' needs the dataset's mean window")
    if prior is not None:
        prior.check(model, {h for h, _ in targets})
        prior.to(device)
    model.eval().to(device)
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    rows = len(targets)

    def other(n: int) -> tuple[torch.Tensor, ...]:
        return held_inputs(model, n, device)

    row_targets, starts, source = list(targets), 1, None  # the target of every optimised row
    if method == "paper":
        if init == "mean":
            start = torch.as_tensor(np.asarray(mean_window, np.float32)).expand(rows, samples).clone()
        else:  # "noise"
            gen = torch.Generator().manual_seed(seed)
            start = torch.randn(rows, samples, generator=gen) * init_scale
        x = start.clamp(-1, 1).to(device).requires_grad_(True)  # (R, T)
        signal, render = (lambda: x), (lambda: x)
        params = lambda: [x]  # noqa: E731
    else:
        if method == "shaped":
            signal = ShapedSignal(rows, samples, sample_rate, seed).to(device)
        elif method == "prosody":  # `starts` gain starts per target, every grid by evaluation
            starts = settings["starts"]
            row_targets = list(targets) * starts
            source = signal = ProsodySignal(
                rows * starts, samples, sample_rate, torch.arange(starts).repeat_interleave(rows),
                F0_GRID, RATE_GRID, PAUSE_GRID, PHRASE_GRID, seed, settings["gain_grid"],
                settings["max_gain"]).to(device)
        else:  # "speech": `starts` envelope starts per target (start-major rows), f0 from a grid
            starts = settings["starts"]
            row_targets = list(targets) * starts
            source = signal = SourceFilterSignal(
                rows * starts, samples, sample_rate, torch.arange(starts).repeat_interleave(rows),
                F0_GRID, torch.zeros(rows * starts, dtype=torch.long), seed,
                **{k: settings[k] for k in ("max_modulation_hz", "envelope_std", "gain_grid")
                   if k in settings}
            ).to(device)
        gen = torch.Generator().manual_seed(seed + 1)
        shift = int(sample_rate * settings.get("shift_ms", SHIFT_MS) / 1000)
        params = signal.parameters

        def render() -> torch.Tensor:
            return jitter(signal(), settings.get("copies", JITTER_COPIES), shift, JITTER_DB,
                          gen)  # (copies·R, T)

    objective_kind = settings["objective"]
    history = []

    def score(x: torch.Tensor) -> torch.Tensor:
        value = _target_scores(model(x, *other(len(x))), row_targets, objective_kind)
        if prior is not None:  # + (1/d) log p(z), z the heads' first hidden layer: analysis.prior
            value = value + prior.term(row_targets)
        return value - l2 * (x * x).sum(dim=1)  # eq. (4) for "paper", per row

    def objective() -> torch.Tensor:
        return score(render()).view(-1, len(row_targets)).mean(dim=0)  # mean over copies

    tie_drive = settings.get("tie_drive")

    def choose() -> torch.Tensor:
        """Every row's values of the source's grids, choice by choice (`choices()`: f0; for
        "prosody" then rate and pause together, then syllables per phrase), every combination of
        a choice's values evaluated with the other parameters fixed, picked by `pick_on_grid`;
        the score per row."""
        grids = source.grids()
        with torch.no_grad():
            for names in source.choices():
                combos = list(itertools.product(*(range(len(grids[n])) for n in names)))

                def scored() -> torch.Tensor:  # (combinations, rows)
                    return torch.stack([score(source.render_choice(
                        {n: torch.full_like(getattr(source, f"{n}_index"), g)
                         for n, g in zip(names, combo)})) for combo in combos])

                scores, low = scored(), None
                if tie_drive:  # the same values with the signal attenuated
                    source.drive = tie_drive
                    try:
                        low = scored()
                    finally:
                        source.drive = 1.0
                pick = pick_on_grid(scores, low)
                table = torch.tensor(combos, dtype=torch.long, device=pick.device)
                for j, n in enumerate(names):
                    setattr(source, f"{n}_index", table[pick, j].clone())
                best = scores.gather(0, pick[None])[0]
        return best

    # "speech", "prosody": the grids chosen at the start, when the starts are cut to the best one
    # per target (after `explore` of the steps), and half-way through the rest
    explore = int(round(steps * settings.get("explore", 0.0)))
    choose_at = {0, explore, explore + (steps - explore) // 2} if source is not None else set()
    optimizer = torch.optim.Adam(params(), lr=lr)
    bar = console.progress(steps, f"generalize ({method}, {rows} signals"
                           + (f", {starts} starts each" if starts > 1 else "") + ")", "steps") \
        if progress else None
    def cut(value: torch.Tensor) -> None:
        """Keep the best start of every target by `value` (its score per row)."""
        nonlocal row_targets
        best = value.view(starts, rows).argmax(dim=0)
        source.keep(best * rows + torch.arange(rows, device=best.device))
        row_targets = list(targets)

    hooks = contextlib.ExitStack()  # the prior's: removed however the optimisation ends
    try:
        if prior is not None:
            hooks.enter_context(prior.watching(model, {h for h, _ in targets}))
        for step in range(steps):
            if step in choose_at:
                value = choose()
                if step == explore and len(row_targets) > rows:
                    cut(value)
                    optimizer = torch.optim.Adam(params(), lr=lr)
            optimizer.zero_grad()
            value = objective()
            (-value.sum()).backward()
            optimizer.step()
            if method == "paper":
                with torch.no_grad():
                    x.clamp_(-1.0, 1.0)
            value = value.detach().view(-1, rows).amax(dim=0)  # the best start of each target
            if bar is not None:
                bar.note(f"objective {value.mean().item():+.3f}")
                bar.advance()
            if step % log_every == 0 or step == steps - 1:
                history.append(value.cpu().tolist())
                if on_log is not None:
                    on_log(step, history[-1])
        if len(row_targets) > rows:  # `explore` rounded to `steps` or more: cut at the end
            cut(choose())
        with torch.no_grad():
            final = signal()
            out = model(final, *other(rows))
            typicality = prior.term(targets).tolist() if prior is not None else None
    finally:
        hooks.close()
        if bar is not None:
            bar.close()
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
    signals, logits, probability = {}, {}, {}
    source_f0_hz, voicing, gain, rhythm = {}, {}, {}, {}
    chosen = source.chosen() if source is not None else {}
    for i, (head, c) in enumerate(targets):
        signals[(head, c)] = final[i].detach().cpu().numpy().astype(np.float32)
        logits[(head, c)] = float(out[head][i, c])
        probability[(head, c)] = float(torch.softmax(out[head][i], dim=0)[c])
        if source is not None:
            source_f0_hz[(head, c)] = chosen["f0"][i]
            if "rate" in chosen:
                rhythm[(head, c)] = {"rate_hz": chosen["rate"][i],
                                     "pause_ms": round(1000 * chosen["pause"][i], 1),
                                     "phrase": int(chosen["phrase"][i])}
            voicing[(head, c)] = torch.sigmoid(source.voicing[i, 0]).item()
            gain[(head, c)] = source.peak_gain()[i, 0].item()
    return Generalized(signals, logits, probability, history, source_f0_hz, voicing, gain,
                       rhythm, {} if typicality is None else dict(zip(targets, typicality)))


def cue_checks(signals: dict[tuple[str, int], np.ndarray], sr: int,
               checks: tuple[tuple[str, str, int], ...], min_rho: float = 0.9) -> list[dict]:
    """Do the signals order by a cue? Spearman ρ between class (0..4) and each measure; a check
    holds when ρ has the expected sign and |ρ| ≥ `min_rho` (issue 15's bar, 0.9). ρ is rounded
    to 10 decimals: over five classes it is a multiple of 0.05, which scipy returns with a
    rounding error (one swapped pair gives 0.8999999999999998, and would fail ρ ≥ 0.9)."""
    from scipy.stats import spearmanr

    measured = {key: characteristics(x, sr) for key, x in signals.items()}
    results = []
    for dim, measure, sign in checks:
        keys = sorted(k for k in measured if k[0] == dim)
        if len(keys) < 3:
            continue
        values = [getattr(measured[k], measure) for k in keys]
        # equal values (e.g. no pauses in any signal) leave ρ undefined: reported as None
        rho = (round(float(spearmanr([k[1] for k in keys], values).statistic), 10)
               if np.ptp(values) else None)
        results.append({"dimension": dim, "measure": measure, "expected_sign": sign,
                        "values": [float(v) for v in values], "spearman": rho,
                        "ordered": rho is not None and sign * rho >= min_rho})
    return results


def run_generalize(target, steps: int | None = None, l2: float | None = None,
                   lr: float | None = None, init: str = "noise", seed: int = 0,
                   init_scale: float = 0.01, out: str | None = None, device: str = "cpu",
                   track: bool = True, method: str = DEFAULT_METHOD, progress: bool = True,
                   prior: bool | None = None) -> dict:
    """`raylab analyze generalize`: ten signals as WAV, Figure 5 PNGs, table6.csv/.md and
    generalize_summary.json (settings, final logits, cue checks with the network's test UAR).
    `prior`: fit `analysis.prior` on the other speakers' windows and add it to the objective
    (None: the method's default, on for "prosody")."""
    import soundfile as sf

    from analysis import plots, runs

    if method != "paper" and init != "noise":
        raise ValueError(f"--init {init} is the paper method's; {method} starts from its own "
                         "seeded parameters")
    settings = {**METHOD_DEFAULTS[method], **{k: v for k, v in
                                               (("steps", steps), ("l2", l2), ("lr", lr))
                                               if v is not None}}
    steps, l2, lr = settings["steps"], settings["l2"], settings["lr"]
    prior = with_prior(method) if prior is None else prior
    if prior and method == "paper":
        raise ValueError("the paper method is eq. (4) unchanged: it takes no data prior")
    dataset = runs.load_data(target, audio=init == "mean" or prior)
    sr = target.sample_rate
    mean_window = None
    if init == "mean":  # over the windows the network could have seen: not its test speaker's
        train = dataset.audio[dataset.speaker != target.fold]
        mean_window = (train.mean(axis=0, dtype=np.float64) / 32768.0).astype(np.float32)
    start = time.perf_counter()
    fitted = data_prior(target, dataset, device) if prior else None
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = generalize(target.model, int(dataset.meta["window_samples"]), steps, l2, lr, init,
                        seed, init_scale, mean_window, device, log_every=max(1, steps // 10),
                        method=method, sample_rate=sr, progress=progress, prior=fitted)
    seconds = time.perf_counter() - start
    table = table6({(h, c + 1): x for (h, c), x in result.signals.items()}, sr)  # ratings 1-5
    corpus = dataset.meta.get("corpus", "?")
    checks = cue_checks(result.signals, sr, demo_cues() if corpus == "demo" else PAPER_CUES)
    metrics = runs.fold_test_metrics(target)
    for check in checks:
        uar = (metrics or {}).get(check["dimension"], {}).get("uar")
        check["test_uar"] = uar
        check["head_learned"] = None if uar is None else bool(uar >= CHANCE_UAR + LEARNED_MARGIN)
    summary = {
        "arch": target.arch, "fold": target.fold, "checkpoint": str(target.checkpoint),
        "corpus": corpus, "method": method, "steps": steps, "l2": l2, "lr": lr, "init": init,
        "seed": seed, "init_scale": init_scale, "seconds": round(seconds, 1),
        "optimizer": "Adam (gradient ascent)" + (", clipped to [-1, 1]" if method == "paper" else
                                                 " on the parameters of analysis.shaped"),
        **({"starts": settings["starts"], "explore": settings["explore"], "f0_grid_hz": F0_GRID,
            "gain_grid": settings["gain_grid"]}
           if method in ("speech", "prosody") else {}),
        **({"rate_grid_hz": RATE_GRID, "pause_grid_ms": [round(1000 * p, 1) for p in PAUSE_GRID],
            "phrase_grid": PHRASE_GRID, "max_gain": settings["max_gain"],
            "tie_drive": settings["tie_drive"]}
           if method == "prosody" else {}),
        "objective": OBJECTIVES[method] + (" + the signal's log-density per dimension among "
                                           "the other speakers' windows (analysis.prior)"
                                           if prior else ""),
        "prior": None if fitted is None else {
            "space": "pre-activation of each head's first hidden layer", "dim": fitted.dim,
            "model": "class-conditional Gaussians, shared Ledoit-Wolf covariance",
            "windows": fitted.windows, "windows_median": fitted.reference,
            "fit_seconds": round(fit_seconds, 1)},
        "final": {f"{h} {c + 1}": {"logit": result.logits[(h, c)],
                               "probability": result.probability[(h, c)],
                               **({"source_f0_hz": result.source_f0_hz[(h, c)],
                                   "voicing": result.voicing[(h, c)],
                                   "gain": result.gain[(h, c)]}
                                  if (h, c) in result.source_f0_hz else {}),
                               **({"rhythm": result.rhythm[(h, c)]}
                                  if (h, c) in result.rhythm else {}),
                               **({"log_density_per_dim": result.typicality[(h, c)]}
                                  if (h, c) in result.typicality else {})}
                  for h, c in result.signals},
        "test_metrics": metrics,
        "history": {"every": max(1, steps // 10), "objective": result.history},
        "cues": checks, "cue_source": "planted (demo corpus)" if corpus == "demo"
        else "the paper's observations (section 4.2.2)",
    }
    final = runs.output_dir(target, "generalize", out)
    with runs.staged(final) as tmp:
        for (head, c), x in result.signals.items():
            sf.write(tmp / f"{head}_{c}.wav", x, sr, subtype="PCM_16")
        np.savez(tmp / "signals.npz", **{f"{h}_{c}": x for (h, c), x in result.signals.items()})
        for head in TABLE_HEADS:
            plots.figure5({c: x for (h, c), x in result.signals.items() if h == head}, sr,
                          tmp / f"figure5_{head}.png",
                          f"generalized input signals, {head} (ratings 1..5), {target.arch} "
                          f"fold {target.fold}")
        table.to_csv(tmp / "table6.csv")
        (tmp / "table6.md").write_text(to_markdown(table))
        (tmp / "generalize_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    summary["out"] = str(final)
    summary["table6"] = table
    summary["mlflow_run_id"] = runs.publish(
        target, final, {f"generalize_{c['dimension']}_{c['measure']}_spearman":
                        c["spearman"] for c in checks if c["spearman"] is not None}, track)
    return summary


def format_summary(summary: dict) -> str:
    """Table 6, the optimisation's outcome and the cue checks, as printed by the CLI."""
    lines = [f"generalized input signals of {summary['arch']} fold {summary['fold']}, method "
             f"{summary.get('method', 'paper')} ({summary['steps']} steps, λ={summary['l2']}, "
             f"lr={summary['lr']}, seed {summary['seed']}, {summary.get('seconds', '?')} s)",
             "Table 6 (columns: dimension and rating 1-5)", to_markdown(summary["table6"]),
             "softmax probability of the target class at x*: " + ", ".join(
                 f"{key} {v['probability']:.2f}" for key, v in summary["final"].items())]
    if any("source_f0_hz" in v for v in summary["final"].values()):  # "speech", "prosody"
        lines.append("source f0 chosen from the grid (Hz) and voicing (harmonic share of the "
                     "source, 0..1): " + ", ".join(
                         f"{key} {v['source_f0_hz']:g} / {v['voicing']:.2f}"
                         for key, v in summary["final"].items() if "source_f0_hz" in v))
    if any("rhythm" in v for v in summary["final"].values()):  # "prosody"
        lines.append("syllable train chosen from the grids (syllables/s, pause ms, syllables per "
                     "phrase): " + ", ".join(
                         f"{key} {v['rhythm']['rate_hz']:g} / {v['rhythm']['pause_ms']:g} / "
                         f"{v['rhythm']['phrase']}"
                         for key, v in summary["final"].items() if "rhythm" in v))
    if summary.get("prior"):
        lines.append(f"data prior ({summary['prior']['windows']} windows of the other speakers): "
                     "log-density per dimension of each signal among them, up to a constant (the "
                     "windows' own median: "
                     + ", ".join(f"{h} {v:+.2f}" for h, v in summary["prior"]["windows_median"]
                                 .items()) + "): " + ", ".join(
                         f"{key} {v['log_density_per_dim']:+.2f}"
                         for key, v in summary["final"].items() if "log_density_per_dim" in v))
    for check in summary["cues"]:  # Spearman of the rating against the measure
        verdict = "order" if check["ordered"] else "do NOT order"
        rho = "undefined (all equal)" if check["spearman"] is None else f"{check['spearman']:+.2f}"
        uar = check.get("test_uar")
        head = ("test UAR unknown" if uar is None else f"{check['dimension']} test UAR {uar:.2f}"
                + ("" if check.get("head_learned") else
                   f", at chance ({CHANCE_UAR:.2f}): no cue can be expected"))
        lines.append(f"cue ({summary['cue_source']}): {check['dimension']} class vs "
                     f"{check['measure']}: Spearman {rho} (expected sign "
                     f"{check['expected_sign']:+d}) -> the signals {verdict} by this cue; {head}")
    lines.append(f"written to {summary['out']}")
    return "\n".join(lines)
