"""One fold, end to end: arrays from a dataset, the split, `fit`, test predictions, fold outputs.

`run_fold` is the one function that `raylab train --local`, every Tune trial (with
`evaluate_test=False`) and every Ray Train worker call; `save_fold_outputs` writes a fold's folder
the same way for all of them. Plain torch and numpy: no Ray, no MLflow.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from torch import nn

from raylab import DIMENSIONS, NUM_CLASSES
from raylab.data.dataset import Dataset, load_dataset
from raylab.errors import ConfigError, DataError
from raylab.models import SHAPE_KEYS, build_model, model_class
from raylab.report.layout import (CHECKPOINT_FILE, CONFIG_FILE, FOLDS_DIR, METRICS_FILE,
                                  PREDICTIONS_FILE, RUN_FILE, SPLIT_FILE, RunRecord, confusion_file)
from raylab.report.plots import plot_confusion
from raylab.report.pooled import collapsed_folds
from raylab.report.table5 import collapse_note
from raylab.runtime.fsutil import atomic_path, write_atomic
from raylab.train.folds import FoldSplit, fold_split
from raylab.train.loop import ArraySet, EpochReport, fit, predict
from raylab.train.params import compute_dtype, split_params
from raylab.report.metrics import confusion, majority_label, most_frequent_baseline, summarize

PROB_COLUMNS = tuple(f"prob_{k}" for k in range(NUM_CLASSES))
PREDICTION_COLUMNS = ("window_id", "utterance_id", "speaker", "fold", "dimension", "target",
                      "predicted", *PROB_COLUMNS)


def build_arrays(dataset: Dataset | str | os.PathLike, name: str, feature_stats: dict | None = None,
                 waveform_dtype: str = "float32") -> ArraySet:
    """The inputs network `name` takes, its targets and the window ids, row-aligned.

    Audio: float32 in [-1, 1] (section 3.2), or int16 as stored with `waveform_dtype="int16"`
    (scaled per batch by `fit`/`predict`). MFCC and IS10 come from the dataset's feature files.
    IS10 is standardised only when `feature_stats` is given: statistics must come from a training
    split (`feature_stats_of`), never from the windows being scaled.
    """
    if not isinstance(dataset, Dataset):
        dataset = load_dataset(dataset, audio="waveform" in model_class(name).inputs)
    inputs: dict[str, np.ndarray] = {}
    for kind in model_class(name).inputs:
        if kind == "waveform":
            if dataset.audio is None:
                raise DataError(f"{dataset.path}: loaded without audio; {name} needs the waveform")
            if waveform_dtype == "int16":
                inputs[kind] = dataset.audio
            else:
                inputs[kind] = dataset.audio.astype(np.float32) * np.float32(1 / 32768)
        else:
            from raylab.data.features import load_features

            inputs[kind] = load_features(dataset.path, kind, dataset.window_id)
    arrays = ArraySet(inputs, {d: dataset.labels(d).astype(np.int64) for d in DIMENSIONS},
                      dataset.window_id,
                      info={"speaker": dataset.speaker, "utterance_id": dataset.utterance_id},
                      attrs={"dataset": str(dataset.path), "sample_rate": dataset.sample_rate,
                             "window_samples": int(dataset.meta["window_samples"]),
                             "evaluator": dataset.meta.get("evaluator"),
                             "corpus": dataset.meta.get("corpus"), "windows": len(dataset)})
    return standardized(arrays, feature_stats) if feature_stats else arrays


def feature_stats_of(arrays: ArraySet, rows: np.ndarray) -> dict | None:
    """{"is10": {"mean", "std"}} over `rows` (a training split); None without IS10 input."""
    if "is10" not in arrays.inputs:
        return None
    train = arrays.inputs["is10"][rows].astype(np.float64)
    std = train.std(axis=0)
    std[std < 1e-8] = 1.0  # constant features pass through centred
    return {"is10": {"mean": train.mean(axis=0).astype(np.float32), "std": std.astype(np.float32)}}


def standardized(arrays: ArraySet, stats: dict | None) -> ArraySet:
    """A copy whose IS10 input is (x - mean) / std; other arrays are shared, not copied."""
    if not stats or "is10" not in arrays.inputs:
        return arrays
    is10 = stats["is10"]
    scaled = (arrays.inputs["is10"] - np.asarray(is10["mean"])) / np.asarray(is10["std"])
    return dataclasses.replace(arrays, inputs={**arrays.inputs, "is10": scaled.astype(np.float32)})


def shape_arguments(name: str, arrays: ArraySet, params: Mapping[str, Any]) -> dict[str, int]:
    """The constructor arguments fixed by the data; a conflicting value in `params` is an error."""
    shapes: dict[str, int] = {}
    for kind, array in arrays.inputs.items():
        if kind == "waveform":
            shapes["input_samples"] = array.shape[1]
        elif kind == "mfcc":
            shapes["mfcc_channels"], shapes["mfcc_frames"] = array.shape[1], array.shape[2]
        elif kind == "is10":
            shapes["num_features"] = array.shape[1]
    for key, value in shapes.items():
        if key in params and int(params[key]) != value:
            raise ConfigError(f"{key}={params[key]}: the data gives {value} for {name}")
    return shapes


@dataclass
class FoldResult:
    """A trained fold: the network, its history, and (when evaluated) its test predictions."""

    name: str
    test_speaker: str
    model: nn.Module
    history: list[dict[str, float]]
    val_metrics: dict[str, float]
    test_predictions: pd.DataFrame | None
    feature_stats: dict | None
    split: FoldSplit
    train_config: dict[str, Any]
    train_majority: dict[str, int]
    split_info: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    test_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0
    compute_dtype: str = "fp32"

    def flat_test_metrics(self) -> dict[str, float]:
        """{test_valence_war, ...} for trackers."""
        return {f"test_{d}_{k}": v for d, m in self.test_metrics.items() for k, v in m.items()}


def predictions_frame(arrays: ArraySet, rows: np.ndarray, probs: dict[str, np.ndarray],
                      fold: str) -> pd.DataFrame:
    """The long table of docs/architecture.md: one row per window (`rows`) and dimension."""
    parts = []
    for dim in DIMENSIONS:
        part = pd.DataFrame({
            "window_id": arrays.window_id[rows], "utterance_id": arrays.info["utterance_id"][rows],
            "speaker": arrays.info["speaker"][rows], "fold": fold, "dimension": dim,
            "target": arrays.targets[dim][rows].astype(np.int64),
            "predicted": probs[dim].argmax(axis=1).astype(np.int64)})
        for k, column in enumerate(PROB_COLUMNS):
            part[column] = probs[dim][:, k].astype(np.float32)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def run_fold(name: str, dataset: Dataset | ArraySet | str | os.PathLike, test_speaker: str,
             params: Mapping[str, Any], device: str = "cpu",
             on_epoch: Callable[[EpochReport], None] | None = None, evaluate_test: bool = True,
             *, on_batch: Callable[[int, int], None] | None = None,
             shard: tuple[int, int] | None = None, val_fraction: float = 0.2,
             prepare_model: Callable[[nn.Module], nn.Module] | None = None) -> FoldResult:
    """Train network `name` on one fold (section 3.2) and predict its test speaker's windows.

    `dataset` may be an ArraySet from `build_arrays` without statistics (shared by many trials,
    e.g. through Ray's object store): it is only read. The split and the weights are seeded by
    `params["seed"]` (default 0); with `is10_scaling="zscore"` the IS10 statistics come from the
    fold's training rows only, with "none" the features enter as extracted.
    `prepare_model` wraps the network for training (DDP, with `shard=(rank, world)`); the result
    holds the unwrapped network.
    """
    from raylab.runtime.settings import pick_device

    start = time.perf_counter()
    model_kwargs, cfg = split_params(name, params)
    cfg = dataclasses.replace(cfg, device=pick_device(device))
    # int16 audio, scaled per batch: half the memory, the same numbers (1/32768 is exact)
    arrays = dataset if isinstance(dataset, ArraySet) else build_arrays(dataset, name, waveform_dtype="int16")
    split = fold_split(arrays.info["speaker"], test_speaker, val_fraction, seed=cfg.seed)
    stats = feature_stats_of(arrays, split.train_idx) if cfg.is10_scaling == "zscore" else None
    data = standardized(arrays, stats)
    model_kwargs.update(shape_arguments(name, data, params))
    import torch

    torch.manual_seed(cfg.seed)
    model = build_model(name, **model_kwargs)
    trained = prepare_model(model) if prepare_model is not None else model
    history = fit(trained, data.view(split.train_idx), data.view(split.val_idx), cfg,
                  on_epoch=on_epoch, on_batch=on_batch, shard=shard)
    majority = {d: majority_label(data.targets[d][split.train_idx]) for d in DIMENSIONS}
    result = FoldResult(name, test_speaker, model, history.history, history.val_metrics, None,
                        stats, split, dataclasses.asdict(cfg), majority,
                        split.describe(arrays.window_id, arrays.info["speaker"]), dict(arrays.attrs),
                        compute_dtype=compute_dtype(cfg, cfg.device))
    if evaluate_test:
        test = data.view(split.test_idx)
        probs = predict(model, test, batch_size=cfg.batch_size, amp=cfg.amp)
        result.test_predictions = predictions_frame(data, split.test_idx, probs, test_speaker)
        result.test_metrics = {d: summarize(data.targets[d][split.test_idx], probs[d].argmax(1))
                               for d in DIMENSIONS}
    result.seconds = time.perf_counter() - start
    return result


def save_fold_outputs(result: FoldResult, folder: str | os.PathLike) -> dict[str, Path]:
    """Write a fold's checkpoint.pt, predictions.parquet, metrics.json, split.json and
    confusion_<dim>.png into `folder` (each under a temporary name, then renamed)."""
    import matplotlib.pyplot as plt

    from raylab.train.checkpoint import save_checkpoint

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    attrs = result.attrs
    extra = {"fold": result.test_speaker, "train_config": result.train_config,
             "dataset": attrs.get("dataset"), "evaluator": attrs.get("evaluator")}
    paths = {"checkpoint": save_checkpoint(
        folder / CHECKPOINT_FILE, result.model, result.name, result.feature_stats, extra,
        sample_rate=attrs.get("sample_rate"), window_samples=attrs.get("window_samples"))}
    split = result.split
    split_doc = {**result.split_info, "train_majority": result.train_majority}
    paths["split"] = write_atomic(folder / SPLIT_FILE, json.dumps(split_doc, indent=2) + "\n")
    metrics = {"arch": result.name, "fold": result.test_speaker, "test": result.test_metrics,
               "val": result.val_metrics, "history": result.history, "windows": split.counts(),
               "train_config": result.train_config, "compute_dtype": result.compute_dtype,
               "model_config": dict(result.model.config), "seconds": result.seconds}
    if result.test_predictions is not None:
        frame = result.test_predictions
        metrics["most_frequent_baseline"] = {}
        for dim in DIMENSIONS:
            part = frame[frame["dimension"] == dim]
            baseline = most_frequent_baseline([result.train_majority[dim]], part["target"])
            metrics["most_frequent_baseline"][dim] = baseline
            matrix = confusion(part["target"], part["predicted"])
            m = result.test_metrics[dim]
            fig = plot_confusion(matrix, f"{result.name} test {result.test_speaker}, {dim}: "
                                         f"WAR {m['war']:.3f}, UAR {m['uar']:.3f}")
            paths[f"confusion_{dim}"] = folder / confusion_file(dim)
            with atomic_path(paths[f"confusion_{dim}"]) as tmp:
                fig.savefig(tmp, format="png")
            plt.close(fig)
        paths["predictions"] = folder / PREDICTIONS_FILE
        with atomic_path(paths["predictions"]) as tmp:
            frame.to_parquet(tmp, index=False)
    paths["metrics"] = write_atomic(folder / METRICS_FILE,
                                    json.dumps(metrics, indent=2, default=float) + "\n")
    return paths


PAPER_FOLD = "Ses03F"  # the paper's representative test speaker (section 3.2)


@dataclass
class LocalRun:
    """What `train_local` did: where it wrote, the MLflow run, the fold's result."""

    name: str
    run_dir: Path
    result: FoldResult
    mlflow_run_id: str | None
    tracking_uri: str | None
    experiment_id: str | None = None

    def render(self) -> str:
        r = self.result
        counts = r.split.counts()
        lines = [f"{r.name} on test speaker {r.test_speaker}: {counts['train']} train, "
                 f"{counts['val']} validation, {counts['test']} test windows, "
                 f"{len(r.history)} epochs, {r.seconds:.1f} s",
                 f"{'dimension':<10} {'WAR':>6} {'UAR':>6} {'F1':>6}   most frequent label (WAR)"]
        frame = r.test_predictions
        for dim in DIMENSIONS:
            m = r.test_metrics[dim]
            targets = frame.loc[frame["dimension"] == dim, "target"]
            base = most_frequent_baseline([r.train_majority[dim]], targets)
            lines.append(f"{dim:<10} {m['war']:>6.3f} {m['uar']:>6.3f} {m['f1']:>6.3f}   "
                         f"{base['war']:.3f} (class {base['label'] + 1})")
        collapsed = collapsed_folds(frame)
        if collapsed:
            lines.append(collapse_note(collapsed))
        lines.append(f"results: {self.run_dir}")
        if self.mlflow_run_id and self.tracking_uri and self.experiment_id:
            from raylab.runtime.tracking import ui_lines

            lines += ui_lines(self.tracking_uri, self.experiment_id)
        return "\n".join(lines)


def resolved_params(result: FoldResult) -> dict[str, Any]:
    """The flat parameters that rebuild this training (model arguments + training settings)."""
    train = {k: v for k, v in result.train_config.items() if k != "device"}
    return {**dict(result.model.config), **train}


def train_local(arch: str, data: str | os.PathLike, fold: str | None, params: Mapping[str, Any],
                results: str | os.PathLike, *, name: str | None = None, device: str = "auto",
                track: bool = True, on_epoch: Callable[[EpochReport], None] | None = None,
                on_batch: Callable[[int, int], None] | None = None) -> LocalRun:
    """`raylab train ARCH --local`: one fold in this process, tracked in MLflow, written to
    `<results>/<name>/` (run.json, config.yaml, folds/<SPEAKER>/...)."""
    import yaml

    from raylab.data.dataset import dataset_record
    from raylab.report.metric_names import epoch_metrics, test_metrics
    from raylab.runtime import tracking
    from raylab.runtime.settings import pick_device, run_folder
    from raylab.train.params import recorded_settings

    model_kwargs, cfg = split_params(arch, params)  # every mistake before anything starts
    device = pick_device(device)
    settings = recorded_settings(cfg, device)
    data = str(data) if "://" in str(data) else str(Path(data).expanduser().resolve())
    dataset = load_dataset(data, audio="waveform" in model_class(arch).inputs)
    fold = fold or (PAPER_FOLD if PAPER_FOLD in dataset.speakers else dataset.speakers[0])
    if fold not in dataset.speakers:
        raise ConfigError(f"--fold {fold}: no windows of this speaker in {data}; speakers: "
                          f"{', '.join(dataset.speakers)}")
    name = name or f"{arch}-local-{fold}"
    results = Path(results)
    run_dir = run_folder(results, name, "train-local")
    tracker = tracking.Tracker(results, enabled=track)
    tags = {tracking.KIND_TAG: "train-local", tracking.ARCH_TAG: arch,
            tracking.RUN_DIR_TAG: str(run_dir), "raylab.fold": fold, "raylab.dataset": data,
            tracking.NOTE_TAG: f"One fold of {arch} trained in this process (`--local`): test "
                               f"speaker {fold}, the others 80/20 into training and validation. "
                               f"Folder: {run_dir}"}
    with tracker.start_run(name, tags=tags) as run:
        given = {k: v for k, v in {**model_kwargs, **dataclasses.asdict(cfg)}.items()
                 if k not in SHAPE_KEYS and k != "device"}
        run.log_params({**given, **settings, "dataset": data, "fold": fold, "device": device,
                        "windows": len(dataset)})
        run.log_dataset(**dataset_record(dataset))

        def epoch_done(report: EpochReport) -> None:
            run.log_metrics(epoch_metrics(report), step=report.epoch)
            if on_epoch is not None:
                on_epoch(report)

        result = run_fold(arch, dataset, fold, params, device, epoch_done, on_batch=on_batch)
        config = {"arch": arch, "params": resolved_params(result), "dataset": data,
                  "fold": fold, "device": device, "compute_dtype": settings["compute_dtype"]}
        run.log_params({k: v for k, v in result.model.config.items() if k in SHAPE_KEYS})
        fold_dir = run_dir / FOLDS_DIR / fold
        save_fold_outputs(result, fold_dir)
        write_atomic(run_dir / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
        info = RunRecord("train-local", name, arch, data, run.run_id,
                         evaluator=dataset.meta.get("evaluator"), windows=len(dataset),
                         folds=[fold], test=result.test_metrics, **settings)
        write_atomic(run_dir / RUN_FILE, info.to_json())
        run.log_metrics(test_metrics(result.test_metrics), step=len(result.history))
        run.log_artifact(run_dir / CONFIG_FILE)
        run.log_artifact(run_dir / RUN_FILE)
        # The fold's folder holds the files; MLflow the figures and, once, the network (model)
        for path in sorted(fold_dir.glob("*.png")):
            run.log_artifact(path, f"{FOLDS_DIR}/{fold}")
        if run.enabled:
            from raylab.predict.mlflow_model import log_model

            log_model(run, {fold: fold_dir / CHECKPOINT_FILE})
    return LocalRun(name, run_dir, result, run.run_id, tracker.uri, run.experiment_id)
