"""The names of the metrics raylab logs to MLflow: one name per figure, grouped by prefix.

MLflow's chart view puts metrics with a common `prefix/` in a section of their own, so every
figure is `train/…` (the training loss, learning rate, seconds per epoch), `val/…` (validation
figures after each epoch), `test/…` (a fold's test speaker, the pooled ten-fold figures and
their baselines) or `analysis/…` (what `raylab analyze` measured). Each figure is logged under
one name only. The files of a run folder (metrics.json, summary.json) keep their own keys; Ray
Tune keeps the search-space file's metric names (`val_acc_mean`), mapped here.
"""
from __future__ import annotations

from typing import Any, Mapping

PREFIXES = ("train/", "val/", "test/", "analysis/")
# A search-space file's `metric` (the key a trial reports to Tune) -> the validation figure it is.
SEARCH_METRICS = {"val_acc_mean": "val/mean_war", "val_uar_mean": "val/mean_uar"}


def epoch_metrics(report: Any) -> dict[str, float]:
    """One epoch of `raylab.train.loop.EpochReport`: train/loss, train/lr, train/epoch_seconds,
    val/<dimension>_<war|uar|f1>, val/mean_<war|uar|f1>, val/loss."""
    return {"train/loss": report.train_loss, "train/lr": report.lr,
            "train/epoch_seconds": report.seconds,
            **{f"val/{key}": value for key, value in report.val.items()}}


def test_metrics(per_dimension: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """A fold's test figures {dim: {war, uar, f1}} as test/<dim>_<key>."""
    return {f"test/{dim}_{key}": value for dim, figures in per_dimension.items()
            for key, value in figures.items()}


def pooled_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """A ten-fold summary (`raylab.report.table5.summarize_run`): test/pooled_<dim>_<key> (all
    folds' windows pooled, the paper's figure), test/utterance_…, test/fold_mean_… and
    test/fold_std_… (over the folds), and the baselines test/most_frequent_… (each fold's
    training majority) and test/test_prior_<dim>_war (the paper's)."""
    flat: dict[str, float] = {}
    for dim in summary["pooled"]:
        for key in ("war", "uar", "f1"):
            flat[f"test/pooled_{dim}_{key}"] = summary["pooled"][dim][key]
            flat[f"test/utterance_{dim}_{key}"] = summary["utterance"][dim][key]
            flat[f"test/fold_mean_{dim}_{key}"] = summary["per_fold"][dim][key]["mean"]
            flat[f"test/fold_std_{dim}_{key}"] = summary["per_fold"][dim][key]["std"]
        for baseline, keys in (("most_frequent", ("war", "uar")), ("test_prior", ("war",))):
            # the test prior's UAR is 1/5 by construction (one label for every window)
            for key in keys:
                if dim in summary["baselines"].get(baseline, {}):
                    flat[f"test/{baseline}_{dim}_{key}"] = summary["baselines"][baseline][dim][key]
    return flat


def analysis_metrics(figures: Mapping[str, float | None]) -> dict[str, float]:
    """An analysis's headline figures as analysis/<name> (figures that are None are left out)."""
    return {f"analysis/{name}": value for name, value in figures.items() if value is not None}
