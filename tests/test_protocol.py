"""The protocol as the paper wrote it: eq. (3)'s summed loss, raw IS10 features, the global batch
over data-parallel workers, and the compute dtype of every run."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from raylab import DIMENSIONS
from raylab.errors import ConfigError
from raylab.models import build_model
from raylab.train.fold import run_fold
from raylab.train.loop import fit
from raylab.train.params import TrainConfig, compute_dtype, split_params
from tests.test_models import TOY, one_thread  # noqa: F401  (fixture)
from tests.test_training import random_set

FTR = {**TOY["ftr"], "dropout": 0.0}


def one_step(reduction: str, l2: float = 0.0, n: int = 10, shard=None) -> tuple[dict, dict, object]:
    """Weights before and after one joint SGD step (no momentum) over one batch of n windows."""
    torch.manual_seed(0)
    model = build_model("ftr", **FTR)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    cfg = TrainConfig(batch_size=n, epochs=1, lr=0.1, momentum=0.0, l2=l2, update="joint",
                      loss_reduction=reduction)
    data = random_set("ftr", n=n)
    fit(model, data, None, cfg, shard=shard)
    after = {k: v.detach().clone() for k, v in model.named_parameters()}
    return before, after, data


def test_summed_loss_gives_batch_size_times_the_mean_gradient():
    n = 10
    before, after_sum, _ = one_step("sum", n=n)
    _, after_mean, _ = one_step("mean", n=n)
    for k in before:
        torch.testing.assert_close(after_sum[k] - before[k], n * (after_mean[k] - before[k]),
                                   rtol=1e-4, atol=1e-6)


def test_a_worker_scales_its_summed_loss_by_the_world_size():
    """DDP averages the workers' gradients: a worker of 2 with 4 of the batch's 8 windows
    back-propagates 2 x its sum, so the average over the workers is the sum over the batch."""
    before, after_sum, _ = one_step("sum", n=8, shard=(0, 2))
    _, after_mean, _ = one_step("mean", n=8, shard=(0, 2))
    for k in before:
        torch.testing.assert_close(after_sum[k] - before[k], 2 * 4 * (after_mean[k] - before[k]),
                                   rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_weight_decay_is_the_gradient_of_the_l2_term(reduction):
    """One step equals lr x the autograd gradient of CE (summed or averaged) + alpha_w * ||w||^2
    over the conv and linear weights, the L2 term added once, whatever the reduction."""
    alpha, lr = 0.05, 0.1
    before, after, data = one_step(reduction, l2=alpha)
    model = build_model("ftr", **FTR)
    model.load_state_dict({**model.state_dict(), **before})
    x = torch.as_tensor(data.inputs["is10"])
    out = model(x)
    loss = sum(F.cross_entropy(out[d], torch.as_tensor(data.targets[d]), reduction=reduction)
               for d in DIMENSIONS)
    loss = loss + alpha * sum(p.pow(2).sum() for p in model.parameters() if p.ndim > 1)
    loss.backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(after[name], before[name] - lr * p.grad, rtol=1e-4, atol=1e-6)


def test_loss_and_scaling_options_are_validated():
    _, cfg = split_params("ftr", {"loss_reduction": "sum", "is10_scaling": "none"})
    assert (cfg.loss_reduction, cfg.is10_scaling) == ("sum", "none")
    with pytest.raises(ConfigError, match="loss_reduction='total': expected one of sum, mean"):
        split_params("ftr", {"loss_reduction": "total"})
    with pytest.raises(ConfigError, match="is10_scaling='minmax': expected one of none, zscore"):
        split_params("elor_ftr", {"is10_scaling": "minmax"})


@pytest.mark.parametrize("scaling", ["none", "zscore"])
def test_is10_scaling_none_passes_the_raw_features(monkeypatch, scaling):
    """The network sees the extracted functionals unchanged with `none`, z-scores with `zscore`."""
    data = random_set("ftr", n=40)
    data.inputs["is10"] = data.inputs["is10"] * 50 + 7  # far from standardised
    data.info["speaker"] = np.repeat(["A", "B", "C", "D"], 10)
    data.info["utterance_id"] = data.window_id
    seen = []
    from raylab.train import loop

    original = loop._Staged.__init__

    def spy(self, view, names, device, cache):
        original(self, view, names, device, cache)
        seen.append(view.base.inputs["is10"])

    monkeypatch.setattr(loop._Staged, "__init__", spy)
    result = run_fold("ftr", data, "A", {**FTR, "epochs": 1, "is10_scaling": scaling}, "cpu")
    train = seen[0][result.split.train_idx]
    if scaling == "none":
        assert result.feature_stats is None
        np.testing.assert_array_equal(seen[0], data.inputs["is10"])
    else:
        assert result.feature_stats is not None
        np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-4)
        np.testing.assert_allclose(train.std(axis=0), 1, atol=1e-3)


def test_compute_dtype():
    assert compute_dtype(TrainConfig(), "cpu") == "fp32"
    assert compute_dtype(TrainConfig(amp=True), "cuda:0") == "bf16"
    assert compute_dtype(TrainConfig(amp=False), "cuda") == "fp32"


def test_amp_parity_bench_measures_nothing_without_cuda(monkeypatch, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "amp_parity.py"
    spec = importlib.util.spec_from_file_location("amp_parity", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert module.main([]) == 0
    assert capsys.readouterr().out == "no CUDA device; nothing measured\n"
