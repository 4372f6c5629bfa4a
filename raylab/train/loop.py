"""The paper's training procedure in plain PyTorch (section 2.1.1, Tables 1-4): no Ray, no MLflow.

Loss, eq. (3), per head: cross-entropy + alpha_w * sum of the squared weights (conv and linear
weights; biases and batch-norm affine parameters are not decayed). `loss_reduction="sum"` is eq. (3)
as written, the cross-entropy summed over the batch's windows; "mean" averages it (a gradient
batch_size times smaller: it changes what the Tables' lr and alpha_w mean). The L2 term is applied
as SGD weight decay 2 * alpha_w, which is exactly its gradient whatever the reduction, once per
optimizer step, instead of being added to the graph. Data-parallel workers (`shard`) each take
batch_size / world windows of every batch; DDP averages their gradients, so a summed loss is
scaled by the world size to stay the sum over the whole batch.

`is10_scaling` (applied by `raylab.train.fold.run_fold`): "none" feeds the IS10 functionals
"directly" (section 2.2.2); "zscore" standardises them with the training split's statistics.
SGD with Nesterov momentum; the learning rate is multiplied by `lr_decay` after every epoch.

`update="alternate"` (the paper's, default): per batch the head order is drawn at random (seeded);
the first head's loss is back-propagated and a step is taken over that head + the trunk; then the
second head's loss is computed on the *updated* network for the same batch and a step is taken over
the second head + the trunk. Each head has its own optimizer over (head + trunk), so the trunk
keeps one momentum buffer per head: the velocity built from the arousal loss is never applied in
a valence step, as with the two separately compiled update functions of the paper's era
(Keras/Lasagne). `update="joint"`: both losses summed, one optimizer, one step per batch.

The training loss reported per epoch is the mean over batches of the two heads' mean cross-entropy
per window, whatever `loss_reduction` (in `alternate` mode the second is measured after the first
step), plus the L2 term at epoch end.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raylab import DIMENSIONS
from raylab.errors import DataError, DivergedError
from raylab.report.metrics import per_dimension
from raylab.train.params import TrainConfig, worker_batch_size

__all__ = ["ArraySet", "ArrayView", "EpochReport", "FitResult", "fit", "predict"]

@dataclass
class ArraySet:
    """Network inputs, int64 targets per dimension and window ids, row-aligned numpy arrays.

    `info` holds further per-window columns (speaker, utterance_id); `attrs` describes the source
    (dataset path, sample rate, window samples). Audio may be float32 in [-1, 1] or int16 (scaled
    per batch by `fit` and `predict`, to halve the memory of a shared dataset).
    """

    inputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    window_id: np.ndarray
    info: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.window_id)
        columns = {**self.inputs, **self.targets, **self.info}
        bad = {k: len(v) for k, v in columns.items() if len(v) != n}
        if bad:
            raise DataError(f"arrays of different lengths: {n} window ids but {bad}")

    def __len__(self) -> int:
        return len(self.window_id)

    def subset(self, idx: np.ndarray) -> "ArraySet":
        """A copy holding rows `idx`."""
        take = lambda d: {k: v[idx] for k, v in d.items()}  # noqa: E731
        return ArraySet(take(self.inputs), take(self.targets), self.window_id[idx],
                        take(self.info), dict(self.attrs))

    def view(self, idx: np.ndarray) -> "ArrayView":
        """Rows `idx` without copying: `fit` and `predict` index the shared arrays per batch."""
        return ArrayView(self, np.asarray(idx, dtype=np.int64))


@dataclass
class ArrayView:
    """Rows of an ArraySet, not copied (a fold's train/validation/test parts of one dataset)."""

    base: ArraySet
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


def as_view(data: ArraySet | ArrayView) -> ArrayView:
    return data if isinstance(data, ArrayView) else ArrayView(data, np.arange(len(data)))


@dataclass
class EpochReport:
    """What `fit` reports after each epoch (epochs count from 1)."""

    epoch: int
    train_loss: float
    val: dict[str, float]
    lr: float
    seconds: float

    def metrics(self) -> dict[str, float]:
        """Flat, for trackers: train_loss, lr, epoch_seconds, val_<key>."""
        return {"train_loss": self.train_loss, "lr": self.lr, "epoch_seconds": self.seconds,
                **{f"val_{k}": v for k, v in self.val.items()}}


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    val_metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)  # DistributedDataParallel keeps the network in .module


def _optimizers(net: nn.Module, cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    """{dim: SGD over (head + trunk)} for `alternate`; {"joint": SGD over everything} otherwise."""
    def sgd(params: list[nn.Parameter]) -> torch.optim.Optimizer:
        decay = [p for p in params if p.ndim > 1]        # conv and linear weights: eq. (3)
        other = [p for p in params if p.ndim <= 1]       # biases, batch-norm scale and shift
        groups = [{"params": decay, "weight_decay": 2 * cfg.l2}, {"params": other, "weight_decay": 0.0}]
        return torch.optim.SGD([g for g in groups if g["params"]], lr=cfg.lr,
                               momentum=cfg.momentum, nesterov=cfg.momentum > 0)

    trunk = list(net.trunk_parameters())
    if cfg.update == "joint":
        return {"joint": sgd(list(net.parameters()))}
    return {dim: sgd(list(net.heads[dim].parameters()) + trunk) for dim in DIMENSIONS}


class _Staged:
    """A view's arrays as tensors, converted once: moved to the GPU whole when they take less than
    40 % of its free memory, else left in host memory (zero-copy) and copied a batch at a time.

    Arrays stay in their stored dtype (int16 audio is scaled per batch); tensors of arrays already
    staged (train and validation share their base arrays) are reused.
    """

    def __init__(self, view: ArrayView, names: tuple[str, ...], device: torch.device,
                 cache: dict[int, torch.Tensor]) -> None:
        self.device = device
        self.inputs = [self._tensor(view.base.inputs[n], cache) for n in names]
        self.targets = {d: self._tensor(view.base.targets[d], cache) for d in DIMENSIONS}
        self.rows = torch.as_tensor(view.rows, dtype=torch.int64, device=self.inputs[0].device)

    def _tensor(self, array: np.ndarray, cache: dict[int, torch.Tensor]) -> torch.Tensor:
        if id(array) not in cache:
            with warnings.catch_warnings():  # read-only arrays (Ray's object store): never written
                warnings.simplefilter("ignore", UserWarning)
                t = torch.as_tensor(array)
            if self.device.type == "cuda":
                free, _ = torch.cuda.mem_get_info(self.device)
                t = t.to(self.device) if t.nbytes < 0.4 * free else t
            cache[id(array)] = t
        return cache[id(array)]

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, positions: torch.Tensor) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Inputs (float32 on the device) and int64 targets of rows[positions]."""
        idx = self.rows[positions.to(self.rows.device)]
        xs = []
        for t in self.inputs:
            x = t.index_select(0, idx.to(t.device)).to(self.device, non_blocking=True)
            xs.append(x.float().mul_(1 / 32768) if x.dtype == torch.int16 else x.float())
        ys = {d: t.index_select(0, idx.to(t.device)).to(self.device, non_blocking=True).long()
              for d, t in self.targets.items()}
        return xs, ys


def _autocast(device: torch.device, amp: bool):
    if device.type == "cuda" and amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _cross_entropy(logits: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    """Eq. (3)'s data term over one batch: summed over its windows, or their mean."""
    return F.cross_entropy(logits.float(), target, reduction=reduction)


def _per_window(ys: dict[str, torch.Tensor], cfg: TrainConfig) -> int:
    """Divides a batch's loss into the mean per window, the figure reported as `train_loss`."""
    return len(next(iter(ys.values()))) if cfg.loss_reduction == "sum" else 1


def _l2_penalty(net: nn.Module, l2: float) -> float:
    with torch.no_grad():
        return l2 * float(sum(p.double().pow(2).sum() for p in net.parameters() if p.ndim > 1))


def fit(model: nn.Module, train: ArraySet | ArrayView, val: ArraySet | ArrayView | None,
        cfg: TrainConfig, on_epoch: Callable[[EpochReport], None] | None = None,
        on_batch: Callable[[int, int], None] | None = None,
        shard: tuple[int, int] | None = None) -> FitResult:
    """Train `model` in place for `cfg.epochs`; validation metrics after every epoch.

    `on_batch(done, total)` is called after each batch (progress bars); `shard=(rank, world)` makes
    each data-parallel worker take its own slice of every epoch's (shared, seeded) permutation,
    batch_size / world windows of every batch (`worker_batch_size`).
    """
    start = time.perf_counter()
    device = torch.device(cfg.device)
    net = _unwrap(model)
    torch.manual_seed(cfg.seed)  # dropout
    gen = torch.Generator().manual_seed(cfg.seed)  # batch order and head order
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model.to(device)
    cache: dict[int, torch.Tensor] = {}
    if len(train) == 0:
        raise DataError("no training windows: the fold's training split is empty")
    data = _Staged(as_view(train), net.inputs, device, cache)
    val_data = _Staged(as_view(val), net.inputs, device, cache) if val is not None and len(val) else None
    optimizers = _optimizers(net, cfg)
    rank, world = shard if shard is not None else (0, 1)
    batch_size = worker_batch_size(cfg.batch_size, world)
    # DDP averages the workers' gradients: a summed loss is scaled back to the whole batch's sum
    scale = float(world) if cfg.loss_reduction == "sum" else 1.0
    # Fuses conv -> batch norm -> pool -> ReLU; validation still runs the eager `model`.
    step_model = torch.compile(model) if cfg.compile else model
    result = FitResult()
    for epoch in range(cfg.epochs):
        tick = time.perf_counter()
        lr = cfg.lr * cfg.lr_decay ** epoch
        for opt in optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        model.train()
        # On the device of the staged rows: indexing GPU-resident data with a CPU index tensor
        # costs a pageable host-to-device copy, and with it a stream synchronisation, per batch.
        order = torch.randperm(len(data), generator=gen).to(data.rows.device)
        if shard is not None:  # batch k of every worker is its slice of the global batch k
            order = order[: len(order) // world * world][rank::world]
        batches = order.split(batch_size)
        first = torch.randint(0, 2, (len(batches),), generator=gen).tolist()
        total = torch.zeros((), device=device)
        first_bad = torch.full((), -1, dtype=torch.long, device=device)  # no host sync per batch
        for b, positions in enumerate(batches):
            xs, ys = data.batch(positions)
            if cfg.update == "joint":
                opt = optimizers["joint"]
                opt.zero_grad(set_to_none=True)
                with _autocast(device, cfg.amp):
                    out = step_model(*xs)
                losses = [_cross_entropy(out[d], ys[d], cfg.loss_reduction) for d in DIMENSIONS]
                (scale * sum(losses)).backward()
                opt.step()
                total += sum(loss.detach() for loss in losses) / _per_window(ys, cfg)
            else:
                for dim in (DIMENSIONS if first[b] == 0 else DIMENSIONS[::-1]):
                    opt = optimizers[dim]
                    opt.zero_grad(set_to_none=True)
                    with _autocast(device, cfg.amp):
                        out = step_model(*xs)  # the second head sees the network updated by the first
                    loss = _cross_entropy(out[dim], ys[dim], cfg.loss_reduction)
                    (scale * loss).backward()
                    opt.step()
                    total += loss.detach() / _per_window(ys, cfg)
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(total), b, first_bad)
            if on_batch is not None:
                on_batch(b + 1, len(batches))
        train_loss = float(total) / max(len(batches), 1) + _l2_penalty(net, cfg.l2)
        if not math.isfinite(train_loss):
            where = (f"batch {int(first_bad) + 1} of {len(batches)}" if int(first_bad) >= 0
                     else "the weights after its last step")
            raise DivergedError(f"training diverged: the loss is {train_loss} in epoch {epoch + 1} "
                                f"of {cfg.epochs}, from {where} (lr {lr:g}); lower lr, or check the "
                                "inputs for NaN/inf")
        # evaluation batches no larger than training ones: on a CPU the first conv's output of a
        # larger batch (B x filters x 96 000 floats) sets the process's memory peak
        val_metrics = _evaluate_staged(model, val_data, cfg.batch_size, device, cfg.amp)
        report = EpochReport(epoch + 1, train_loss, val_metrics, lr, time.perf_counter() - tick)
        result.history.append({"epoch": report.epoch, **report.metrics()})
        result.val_metrics = val_metrics
        if on_epoch is not None:
            on_epoch(report)
    result.seconds = time.perf_counter() - start
    return result


@torch.no_grad()
def _probabilities(model: nn.Module, data: _Staged, batch_size: int, device: torch.device,
                   amp: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Softmax (eq. 2) probabilities and targets of every row of `data`, in row order."""
    was_training = model.training
    model.eval()
    probs: dict[str, list[torch.Tensor]] = {d: [] for d in DIMENSIONS}
    targets: dict[str, list[torch.Tensor]] = {d: [] for d in DIMENSIONS}
    for positions in torch.arange(len(data), device=data.rows.device).split(batch_size):
        xs, ys = data.batch(positions)
        with _autocast(device, amp):
            out = model(*xs)
        for d in DIMENSIONS:
            probs[d].append(torch.softmax(out[d].float(), dim=1))
            targets[d].append(ys[d])
    model.train(was_training)
    cat = lambda parts: {d: torch.cat(v).cpu().numpy() for d, v in parts.items()}  # noqa: E731
    probs_np = cat(probs)
    for d, p in probs_np.items():  # argmax would score NaN outputs as class 0, an accuracy
        bad = int((~np.isfinite(p).all(axis=1)).sum())
        if bad:
            raise DivergedError(f"the network's {d} outputs are NaN/inf for {bad} of {len(p)} "
                                "windows: its weights or inputs are not finite; lower lr, or check "
                                "the inputs for NaN/inf")
    return probs_np, cat(targets)


def _evaluate_staged(model, data, batch_size, device, amp) -> dict[str, float]:
    if data is None:
        return {}
    probs, targets = _probabilities(model, data, batch_size, device, amp)
    loss = sum(float(F.nll_loss(torch.log(torch.from_numpy(probs[d]).clamp_min(1e-12)),
                                torch.from_numpy(targets[d]))) for d in DIMENSIONS)
    return {**per_dimension(targets, {d: p.argmax(1) for d, p in probs.items()}), "loss": loss}


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def predict(model: nn.Module, data: ArraySet | ArrayView | Mapping[str, np.ndarray],
            batch_size: int = 64, device: str | None = None, amp: bool = False) -> dict[str, np.ndarray]:
    """{dim: softmax probabilities (N, 5)} in eval mode; `device` None = where the model is."""
    net = _unwrap(model)
    if not isinstance(data, (ArraySet, ArrayView)):
        n = len(next(iter(data.values())))
        zeros = np.zeros(n, dtype=np.int64)
        data = ArraySet(dict(data), {d: zeros for d in DIMENSIONS}, np.arange(n))
    target = torch.device(device) if device else _model_device(model)
    model.to(target)
    staged = _Staged(as_view(data), net.inputs, target, {})
    return _probabilities(model, staged, batch_size, target, amp)[0]

