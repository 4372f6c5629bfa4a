"""Figures of the analysis package (paper Figures 4 and 5, correlation histograms, sanity checks).

matplotlib is imported inside each function (Agg backend), so importing this module is cheap and
needs no display. Every function saves one PNG and returns its path.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure4(x: np.ndarray, saliency: np.ndarray, sr: int, path: Path, title: str) -> Path:
    """Waveform, positive saliency, and waveform coloured by saliency (red positive, blue
    negative), on one time axis in seconds (paper Figure 4)."""
    plt = _pyplot()
    from matplotlib.collections import LineCollection
    from matplotlib.colors import TwoSlopeNorm

    t = np.arange(len(x)) / sr
    fig, axes = plt.subplots(3, 1, figsize=(10, 6.5), sharex=True, layout="constrained")
    axes[0].plot(t, x, lw=0.4, color="black")
    axes[0].set_ylabel("amplitude")
    axes[0].set_title("input waveform")
    axes[1].plot(t, np.clip(saliency, 0, None), lw=0.4, color="tab:red")
    axes[1].set_ylabel("saliency")
    axes[1].set_title("positive saliency")
    # colour scale: the 99.5th percentile of |saliency|, so that one spike does not wash out the rest
    limit = float(np.percentile(np.abs(saliency), 99.5)) or float(np.max(np.abs(saliency))) or 1.0
    points = np.stack([t, x], axis=1)
    segments = np.stack([points[:-1], points[1:]], axis=1)  # (T-1, 2, 2)
    lines = LineCollection(segments, cmap="coolwarm", norm=TwoSlopeNorm(0.0, -limit, limit), lw=0.5)
    lines.set_array(np.clip(saliency[:-1], -limit, limit))
    axes[2].add_collection(lines)
    axes[2].set_ylim(*(np.array([-1.05, 1.05]) * (np.max(np.abs(x)) or 1.0)))
    axes[2].set_ylabel("amplitude")
    axes[2].set_title("waveform coloured by saliency (red positive, blue negative)")
    axes[2].set_xlabel("time (s)")
    axes[2].set_xlim(0, t[-1])
    fig.colorbar(lines, ax=axes, label="saliency", shrink=0.35, anchor=(0.0, 0.0))
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def correlation_histogram(columns: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """One histogram per correlation (per-window Pearson r), with its mean marked."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(columns), figsize=(3.6 * len(columns), 3.2), squeeze=False)
    for ax, (name, values) in zip(axes[0], columns.items()):
        values = values[np.isfinite(values)]
        ax.hist(values, bins=np.linspace(-1, 1, 41), color="tab:blue", alpha=0.8)
        if len(values):
            ax.axvline(values.mean(), color="black", ls="--", label=f"mean {values.mean():.2f}")
            ax.legend(fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("Pearson r")
        ax.set_ylabel("windows")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figure5(signals: dict[int, np.ndarray], sr: int, path: Path, title: str) -> Path:
    """Generalized input signals of one dimension: one column per class, the signal in time
    (top) and its Welch power spectrum in dB (bottom), as the paper's Figure 5."""
    plt = _pyplot()
    from analysis.acoustics import power_spectrum

    classes = sorted(signals)
    fig, axes = plt.subplots(2, len(classes), figsize=(3.2 * len(classes), 5.0), squeeze=False,
                             sharey="row")
    for col, label in enumerate(classes):
        x = signals[label]
        axes[0, col].plot(np.arange(len(x)) / sr, x, lw=0.3, color="black")
        axes[0, col].set_title(f"rating {label + 1}")  # classes 0-4 are ratings 1-5
        axes[0, col].set_xlabel("time (s)")
        freqs, psd = power_spectrum(x, sr)
        axes[1, col].plot(freqs / 1000, 10 * np.log10(psd + 1e-20), lw=0.6, color="tab:blue")
        axes[1, col].set_xlabel("frequency (kHz)")
    axes[0, 0].set_ylabel("amplitude")
    axes[1, 0].set_ylabel("power (dB re 1/Hz)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sanity_plot(steps: list[str], curves: dict[str, list[float]], path: Path, title: str) -> Path:
    """Mean Spearman rank correlation with the original maps after each randomisation step."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.1 * len(steps) + 3, 4))
    for name, values in curves.items():
        ax.plot(range(len(steps)), values, marker="o", label=name)
    ax.set_xticks(range(len(steps)))
    ax.set_xticklabels(steps, rotation=30, ha="right")
    ax.set_ylim(-0.2, 1.05)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("Spearman rank corr. of |maps| with original")
    ax.set_xlabel("layers randomised so far (cascading, top layer first); network trained on "
                  "permuted labels")
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
