"""The paper's training procedure (plain torch), the folds and one fold end to end."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from raylab.data.dataset import DatasetWriter, Window, load_dataset
from raylab.errors import ConfigError, DataError
from raylab.models import build_model
from raylab.train import loop, params
from raylab.train.fold import build_arrays, run_fold, save_fold_outputs
from raylab.train.folds import FoldSplit, check_no_leakage, fold_split, search_split
from raylab.train.loop import ArraySet, fit, predict
from raylab.train.params import PAPER_HPARAMS, TrainConfig, split_params, worker_batch_size
from tests.test_models import TOY, one_thread  # noqa: F401  (fixture)

SPEAKERS = ("Ses01F", "Ses01M", "Ses02F", "Ses02M")
TOY_ELOR = dict(conv1_filters=6, conv1_kernel=16, pool1=2, conv2_filters=6, conv2_kernel=5, pool2=4,
                conv3_filters=6, conv3_kernel=5, pool3=4, hidden1=24, hidden2=12, dropout=0.1)


def make_tone_dataset(out, per_speaker: int = 40, samples: int = 4000, seed: int = 0):
    """Windows whose arousal class sets a tone's loudness and pitch; valence is random."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000
    with DatasetWriter(out, samples) as writer:
        for spk in SPEAKERS:
            for i in range(per_speaker):
                arousal, valence = int(rng.integers(0, 5)), int(rng.integers(0, 5))
                wave = (0.05 + 0.18 * arousal) * np.sin(2 * np.pi * (150 + 100 * arousal) * t
                                                        + rng.uniform(0, 2 * np.pi))
                wave += 0.01 * rng.standard_normal(samples)
                uid = f"{spk[:5]}_impro01_{spk[-1]}{i:03d}"
                writer.add([Window(f"{uid}_0", uid, spk, int(spk[3:5]), 0,
                                   (wave * 32767).astype(np.int16), valence, arousal)])
        return writer.commit({"sample_rate": 16000, "min_last_samples": samples // 2,
                              "evaluator": "E2", "source": "synthetic tones", "corpus": "demo",
                              "speakers": {s: per_speaker for s in SPEAKERS},
                              "utterances": per_speaker * len(SPEAKERS), "skipped": {}})


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return make_tone_dataset(tmp_path_factory.mktemp("tones") / "data")


def random_set(name: str, n: int = 12, seed: int = 0) -> ArraySet:
    rng = np.random.default_rng(seed)
    model = build_model(name, **TOY[name])
    shapes = {"waveform": (TOY[name].get("input_samples", 0),), "is10": (TOY[name].get("num_features", 0),),
              "mfcc": (26, TOY[name].get("mfcc_frames", 0))}
    inputs = {k: rng.standard_normal((n, *shapes[k])).astype(np.float32) * 0.3 for k in model.inputs}
    targets = {d: rng.integers(0, 5, n).astype(np.int64) for d in ("valence", "arousal")}
    return ArraySet(inputs, targets, np.array([f"w{i}" for i in range(n)]))


def record_steps(monkeypatch, model):
    """Wrap every optimizer `fit` makes: log (optimizer key, names of the parameters a step changed)."""
    log, original = [], loop._optimizers

    def patched(net, cfg):
        optimizers = original(net, cfg)
        for key, opt in optimizers.items():
            def step(*args, _step=opt.step, _key=key, **kwargs):
                before = {n: p.detach().clone() for n, p in model.named_parameters()}
                out = _step(*args, **kwargs)
                log.append((_key, {n for n, p in model.named_parameters() if not torch.equal(before[n], p)},
                            model.trunk.blocks.block1.conv.weight.detach().clone()))
                return out
            opt.step = step
        return optimizers

    monkeypatch.setattr(loop, "_optimizers", patched)
    return log


def test_alternate_takes_two_steps_per_batch_each_on_its_head_and_the_trunk(monkeypatch):
    torch.manual_seed(0)
    model = build_model("elor", **{**TOY["elor"], "dropout": 0.0})
    seen = []  # conv1 weight at every training forward
    model.register_forward_pre_hook(lambda m, a: seen.append(m.trunk.blocks.block1.conv.weight.detach().clone())
                                    if m.training else None)
    log = record_steps(monkeypatch, model)
    fit(model, random_set("elor", n=12), None, TrainConfig(batch_size=4, epochs=4, lr=0.05, l2=0.0))
    batches = 3 * 4
    assert len(log) == 2 * batches
    names = [n for n, _ in model.named_parameters()]
    trunk = {n for n in names if n.startswith("trunk.")}
    firsts = []
    for b in range(batches):
        pair = log[2 * b: 2 * b + 2]
        assert {pair[0][0], pair[1][0]} == {"valence", "arousal"}
        firsts.append(pair[0][0])
        for key, changed, _ in pair:
            other = "arousal" if key == "valence" else "valence"
            head = {n for n in names if n.startswith(f"heads.{key}.")}
            assert changed <= head | trunk and changed & head and "trunk.blocks.block1.conv.weight" in changed
            assert not {n for n in changed if n.startswith(f"heads.{other}.")}
        # the second head's loss is computed on the network the first step updated
        assert torch.equal(seen[2 * b + 1], pair[0][2]) and not torch.equal(seen[2 * b], seen[2 * b + 1])
    assert set(firsts) == {"valence", "arousal"}  # the order is drawn per batch


def test_joint_takes_one_step_over_everything(monkeypatch):
    torch.manual_seed(0)
    model = build_model("elor", **{**TOY["elor"], "dropout": 0.0})
    log = record_steps(monkeypatch, model)
    fit(model, random_set("elor", n=12), None, TrainConfig(batch_size=4, epochs=1, update="joint", l2=0.0))
    assert [key for key, _, _ in log] == ["joint"] * 3
    for _, changed, _ in log:
        assert any(n.startswith("heads.valence.") for n in changed)
        assert any(n.startswith("heads.arousal.") for n in changed)


def test_fit_is_reproducible_and_decays_the_learning_rate():
    def run(seed):
        torch.manual_seed(0)
        model = build_model("elor", **TOY["elor"])
        cfg = TrainConfig(batch_size=5, epochs=3, lr=0.02, lr_decay=0.5, seed=seed)
        data = random_set("elor", n=20)
        result = fit(model, data, random_set("elor", n=8, seed=1), cfg)
        return model.state_dict(), result

    (a, ra), (b, rb), (c, _) = run(0), run(0), run(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    strip = lambda h: [{k: v for k, v in e.items() if k != "epoch_seconds"} for e in h]  # noqa: E731
    assert strip(ra.history) == strip(rb.history)
    assert [e["lr"] for e in ra.history] == pytest.approx([0.02, 0.01, 0.005])
    assert {"train_loss", "val_valence_war", "val_arousal_uar", "val_mean_war", "val_mean_uar",
            "val_loss"} <= set(ra.history[0])
    assert ra.val_metrics["mean_uar"] == ra.history[-1]["val_mean_uar"]


@pytest.mark.parametrize("name", ["lom", "ftr", "elor_ftr"])
def test_every_network_trains_and_predicts(name):
    torch.manual_seed(0)
    model = build_model(name, **TOY[name])
    data = random_set(name, n=10)
    fit(model, data, data, TrainConfig(batch_size=5, epochs=1, **{"lr": 0.01}))
    probs = predict(model, data, batch_size=4)
    assert set(probs) == {"valence", "arousal"}
    for p in probs.values():
        assert p.shape == (10, 5) and np.allclose(p.sum(1), 1, atol=1e-5)


def test_int16_audio_is_scaled_per_batch_like_float_audio():
    torch.manual_seed(0)
    model = build_model("elor", **TOY["elor"]).eval()
    audio = (np.random.default_rng(0).standard_normal((6, 2000)) * 4000).astype(np.int16)
    as_float = predict(model, {"waveform": audio.astype(np.float32) / 32768})
    as_int = predict(model, {"waveform": audio})
    for dim in as_float:
        np.testing.assert_allclose(as_float[dim], as_int[dim], rtol=1e-5, atol=1e-6)


def test_shards_split_each_epoch_between_workers(monkeypatch):
    torch.manual_seed(0)
    model = build_model("elor", **TOY["elor"])
    log = record_steps(monkeypatch, model)
    fit(model, random_set("elor", n=13), None, TrainConfig(batch_size=4, epochs=1), shard=(1, 2))
    assert len(log) == 3 * 2  # 13 -> 12 shared -> 6 for this rank -> 3 batches of 4 / 2 = 2


def test_workers_split_the_global_batch():
    assert worker_batch_size(15, 1) == 15
    assert worker_batch_size(16, 4) == 4
    with pytest.raises(ConfigError, match="batch_size=15 does not divide over 2 workers"):
        worker_batch_size(15, 2)
    with pytest.raises(ConfigError, match="batch_size=15 does not divide over 2 workers"):
        fit(build_model("elor", **TOY["elor"]), random_set("elor", n=8), None,
            TrainConfig(batch_size=15, epochs=1), shard=(0, 2))


def test_shards_make_up_the_global_batch(monkeypatch):
    """With 3 workers and batch_size 6, each worker takes 2 windows of every batch, and the
    workers' batch k together are exactly the one-worker batch k."""
    batches: list[list[int]] = []
    original = loop._Staged.batch

    def spy(self, positions):
        batches.append(sorted(self.rows[positions.to(self.rows.device)].tolist()))
        return original(self, positions)

    monkeypatch.setattr(loop._Staged, "batch", spy)
    cfg = TrainConfig(batch_size=6, epochs=1, update="joint")
    fit(build_model("ftr", **TOY["ftr"]), random_set("ftr", n=18), None, cfg)
    single, batches[:] = list(batches), []
    per_rank = []
    for rank in range(3):
        fit(build_model("ftr", **TOY["ftr"]), random_set("ftr", n=18), None, cfg, shard=(rank, 3))
        per_rank.append(list(batches))
        batches.clear()
    assert [len(b) for b in single] == [6, 6, 6]
    assert all(len(b) == 2 for rank in per_rank for b in rank)
    assert [sorted(sum((rank[k] for rank in per_rank), [])) for k in range(3)] == single


def test_split_params_uses_the_papers_tables_and_checks_keys():
    model, cfg = split_params("lom", {})
    assert dataclasses.asdict(cfg) | PAPER_HPARAMS["lom"] == dataclasses.asdict(cfg)
    assert (cfg.batch_size, cfg.lr, cfg.epochs, cfg.lr_decay, cfg.momentum, cfg.l2) == (5, 0.08, 14, 0.75, 0.7, 0.001)
    assert PAPER_HPARAMS["elor"] == dict(batch_size=15, lr=0.006, epochs=9, lr_decay=0.9, momentum=0.65, l2=1e-9)
    assert PAPER_HPARAMS["ftr"]["l2"] == 3.4e-8 and PAPER_HPARAMS["elor_ftr"]["epochs"] == 6
    model, cfg = split_params("elor", {"l2": "1e-9", "conv1_filters": 8.0, "update": "joint", "amp": "false"})
    assert cfg.l2 == 1e-9 and model["conv1_filters"] == 8 and cfg.update == "joint" and cfg.amp is False
    with pytest.raises(ConfigError, match="unknown parameter.*: colour; valid: batch_size, lr"):
        split_params("elor", {"colour": 1})
    with pytest.raises(ConfigError, match="conv1_filters=2.5: expected an int"):
        split_params("elor", {"conv1_filters": 2.5})
    with pytest.raises(ConfigError, match="update='both': expected one of alternate, joint"):
        split_params("elor", {"update": "both"})
    with pytest.raises(ConfigError, match="lr_decay=1.5"):
        TrainConfig(lr_decay=1.5)


def test_params_file(tmp_path):
    good = tmp_path / "best.yaml"
    good.write_text("arch: elor\nmetric: val_acc_mean\nparams:\n  lr: 1.0e-3\n  conv1_filters: 32\n")
    assert params.load_params_file(good, "elor") == {"lr": 1e-3, "conv1_filters": 32}
    with pytest.raises(ConfigError, match="best.yaml: arch: the file is for 'elor', not 'ftr'"):
        params.load_params_file(good, "ftr")
    bad = tmp_path / "bad.yaml"
    bad.write_text("arch: elor\nparams:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match="bad.yaml: params: unknown parameter.*lrr"):
        params.load_params_file(bad, "elor")
    bad.write_text("arch: [elor\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        params.load_params_file(bad, "elor")


def test_folds_hold_out_one_speaker_and_split_the_rest():
    speakers = np.repeat(np.array(SPEAKERS), [10, 20, 30, 40])
    split = fold_split(speakers, "Ses02F", seed=3)
    assert set(speakers[split.test_idx]) == {"Ses02F"} and len(split.test_idx) == 30
    rest = np.concatenate([split.train_idx, split.val_idx])
    assert sorted(rest) == sorted(np.flatnonzero(speakers != "Ses02F")) and len(split.val_idx) == 14
    assert np.array_equal(fold_split(speakers, "Ses02F", seed=3).val_idx, split.val_idx)
    assert not np.array_equal(fold_split(speakers, "Ses02F", seed=4).val_idx, split.val_idx)
    assert search_split(speakers, seed=3).test_speaker == "Ses01F"
    assert search_split(speakers[10:]).test_speaker == "Ses01M"  # no Ses01F: the first speaker
    with pytest.raises(ConfigError, match="test speaker 'Ses09F' has no windows.*speakers: Ses01F, Ses01M"):
        fold_split(speakers, "Ses09F")
    leaky = FoldSplit("Ses02F", np.concatenate([split.train_idx, split.test_idx[:2]]), split.val_idx, split.test_idx)
    with pytest.raises(DataError, match="leakage: 2 windows of test speaker Ses02F in train"):
        check_no_leakage(leaky, speakers)


def test_build_arrays_scales_audio_and_standardises_is10_with_training_statistics(tones, monkeypatch):
    dataset = load_dataset(tones)
    arrays = build_arrays(dataset, "elor")
    np.testing.assert_allclose(arrays.inputs["waveform"], dataset.audio / 32768.0, rtol=1e-6)
    assert arrays.inputs["waveform"].dtype == np.float32 and np.abs(arrays.inputs["waveform"]).max() <= 1
    assert build_arrays(dataset, "elor", waveform_dtype="int16").inputs["waveform"].dtype == np.int16
    rng = np.random.default_rng(0)
    features = (rng.standard_normal((len(dataset), 30)) * 5 + 100).astype(np.float32)
    features[:, 0] += dataset.arousal * 10  # a cue the FTR net can use
    table = pa.table({"window_id": dataset.window_id, **{f"f{j}": features[:, j] for j in range(30)}})
    pq.write_table(table, tones / "features_is10.parquet")
    result = run_fold("ftr", tones, "Ses02M", {"epochs": 2, "batch_size": 16, "lr": 0.05, "hidden1": 16,
                                               "hidden2": 8, "is10_scaling": "zscore",
                                               "loss_reduction": "mean"})
    train = result.split.train_idx
    np.testing.assert_allclose(result.feature_stats["is10"]["mean"], features[train].mean(0), rtol=1e-5)
    assert result.model.config["num_features"] == 30
    stats = result.feature_stats
    scaled = build_arrays(dataset, "ftr", stats).inputs["is10"]
    np.testing.assert_allclose(scaled[train].mean(0), 0, atol=1e-4)
    with pytest.raises(ConfigError, match="num_features=12: the data gives 30"):
        run_fold("ftr", tones, "Ses02M", {"epochs": 1, "num_features": 12})


def test_a_fold_learns_the_planted_arousal_cue_and_writes_its_outputs(tones, tmp_path):
    reports = []
    result = run_fold("elor", tones, "Ses01F", {**TOY_ELOR, "epochs": 10, "batch_size": 8, "lr": 0.05,
                                                "momentum": 0.9, "seed": 0, "loss_reduction": "mean"},
                      on_epoch=reports.append)
    assert [r.epoch for r in reports] == list(range(1, 11))
    assert result.val_metrics["arousal_uar"] > 0.5 and result.test_metrics["arousal"]["uar"] > 0.5
    frame = result.test_predictions
    assert list(frame.columns) == ["window_id", "utterance_id", "speaker", "fold", "dimension", "target",
                                   "predicted", *[f"prob_{k}" for k in range(5)]]
    assert len(frame) == 2 * 40 and set(frame["speaker"]) == {"Ses01F"} and set(frame["fold"]) == {"Ses01F"}
    paths = save_fold_outputs(result, tmp_path / "fold")
    assert {p.name for p in paths.values()} == {"checkpoint.pt", "predictions.parquet", "metrics.json",
                                               "split.json", "confusion_valence.png", "confusion_arousal.png"}
    metrics = json.loads((tmp_path / "fold" / "metrics.json").read_text())
    assert metrics["test"]["arousal"]["uar"] == result.test_metrics["arousal"]["uar"] and len(metrics["history"]) == 10
    split = json.loads((tmp_path / "fold" / "split.json").read_text())
    assert split["speakers"]["Ses01F"] == "test" and set(split["train_majority"]) == {"valence", "arousal"}
    assert not set(split["window_ids"]["test"]) & set(split["window_ids"]["train"] + split["window_ids"]["val"])


def test_prepare_model_wraps_the_network_for_training_only(tones):
    class Wrapper(torch.nn.Module):  # shaped like DistributedDataParallel: the network in .module
        def __init__(self, module):
            super().__init__()
            self.module, self.calls = module, 0

        def forward(self, *inputs):
            self.calls += 1
            return self.module(*inputs)

    wrappers = []
    result = run_fold("elor", tones, "Ses02F", {**TOY_ELOR, "epochs": 1, "batch_size": 40},
                      prepare_model=lambda m: wrappers.append(Wrapper(m)) or wrappers[-1])
    assert wrappers[0].calls >= 2 * 3  # 120 training windows: 3 batches, two forwards each
    assert result.model is wrappers[0].module and "input_samples" in result.model.config


def test_one_joint_step_is_sgd_on_equation_3():
    torch.manual_seed(0)
    model = build_model("elor", **{**TOY["elor"], "dropout": 0.0})
    reference = build_model("elor", **{**TOY["elor"], "dropout": 0.0})
    reference.load_state_dict(model.state_dict())
    data = random_set("elor", n=6)
    cfg = TrainConfig(batch_size=6, epochs=1, lr=0.1, momentum=0.0, l2=0.05, update="joint",
                      loss_reduction="mean")  # the summed loss: tests/test_protocol.py
    fit(model, data, None, cfg)
    x = torch.from_numpy(data.inputs["waveform"])
    out = reference(x)
    loss = sum(torch.nn.functional.cross_entropy(out[d], torch.from_numpy(data.targets[d]))
               for d in ("valence", "arousal"))
    loss = loss + 0.05 * sum(p.pow(2).sum() for p in reference.parameters() if p.ndim > 1)  # eq. (3)
    loss.backward()
    with torch.no_grad():
        for p in reference.parameters():
            p -= 0.1 * p.grad
    for (name, a), b in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("update", ["alternate", "joint"])
def test_compiled_training_matches_eager(update):
    """`compile=True` trains the same network as eager mode (dropout off: inductor draws its own
    random numbers); one torch.compile costs tens of seconds on a 2-core CPU, hence slow."""
    rng = np.random.default_rng(0)
    n = 12
    data = ArraySet({"waveform": rng.uniform(-1, 1, (n, 800)).astype(np.float32)},
                    {d: rng.integers(0, 5, n) for d in ("valence", "arousal")}, np.arange(n))
    states = []
    for compile_ in (False, True):
        torch.manual_seed(0)
        model = build_model("elor", input_samples=800, conv1_kernel=20, pool1=2, conv2_kernel=5,
                            pool2=4, conv3_kernel=3, pool3=4, dropout=0.0)
        fit(model, data, None, TrainConfig(batch_size=4, epochs=2, update=update,
                                           compile=compile_))
        states.append(model.state_dict())
    for key, value in states[0].items():
        torch.testing.assert_close(states[1][key], value, rtol=1e-4, atol=1e-5, msg=key)
