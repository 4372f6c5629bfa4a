"""Figures of a run: matplotlib, imported inside the plotting functions only."""
from __future__ import annotations

import numpy as np


def plot_confusion(matrix: np.ndarray, title: str):
    """A labelled confusion-matrix figure (counts, row = target class)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4.0), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center",
                color="white" if count > matrix.max() / 2 else "black", fontsize=9)
    ticks = range(matrix.shape[0])
    ax.set_xticks(ticks, [str(k + 1) for k in ticks])
    ax.set_yticks(ticks, [str(k + 1) for k in ticks])
    ax.set_xlabel("predicted class (1-5, as rated)")
    ax.set_ylabel("annotated class (1-5, as rated)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
