"""`raylab train ARCH --local` end to end on the demo fixture corpus, tracked in MLflow."""
from __future__ import annotations

import json

import pytest
import yaml

from raylab.cli import main
from tests.test_models import one_thread  # noqa: F401  (fixture)

TOY = ["--set", "conv1_filters=2", "--set", "conv1_kernel=8", "--set", "pool1=16",
       "--set", "conv2_filters=4", "--set", "conv2_kernel=4", "--set", "pool2=8",
       "--set", "conv3_filters=4", "--set", "conv3_kernel=8", "--set", "pool3=8",
       "--set", "hidden1=16", "--set", "hidden2=8", "--set", "lr=1.0e-2"]


def test_train_local_runs_end_to_end_and_tracks_in_mlflow(demo_dataset, results, capsys):
    from mlflow import MlflowClient

    from raylab.runtime.tracking import tracking_uri
    from raylab.train.checkpoint import load_model

    code = main(["--results", str(results), "train", "elor", "--local", "--data", str(demo_dataset),
                 "--epochs", "2", *TOY])
    out = capsys.readouterr().out
    assert code == 0
    assert "epoch 1/2" in out and "epoch 2/2" in out  # not a terminal: one line per epoch
    assert "elor on test speaker Ses03F" in out and "arousal" in out and "MLflow runs: http://127.0.0.1:5000/#/experiments/" in out
    run_dir = results / "elor-local-Ses03F"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["kind"] == "train-local" and info["arch"] == "elor" and info["folds"] == ["Ses03F"]
    assert info["dataset"] == str(demo_dataset.resolve()) and info["evaluator"] == "E2" and info["windows"] > 100
    fold = run_dir / "folds" / "Ses03F"
    for name in ("checkpoint.pt", "predictions.parquet", "metrics.json", "split.json",
                 "confusion_valence.png", "confusion_arousal.png"):
        assert (fold / name).exists(), name
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["arch"] == "elor" and config["params"]["conv1_filters"] == 2 and config["params"]["lr"] == 0.01
    assert config["params"]["input_samples"] == 96_000 and config["params"]["batch_size"] == 15  # Table 1
    model, ck = load_model(fold / "checkpoint.pt")
    assert ck["name"] == "elor" and ck["window_samples"] == 96_000 and ck["extra"]["fold"] == "Ses03F"

    client = MlflowClient(tracking_uri(results))
    run = client.get_run(info["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["raylab.run_dir"] == str(run_dir) and run.data.tags["raylab.kind"] == "train-local"
    assert run.data.tags["raylab.arch"] == "elor"
    params = run.data.params
    assert params["lr"] == "0.01" and params["conv1_filters"] == "2" and params["fold"] == "Ses03F"
    assert params["input_samples"] == "96000" and params["update"] == "alternate"
    assert params["compute_dtype"] == "fp32" and params["amp"] == "True"  # a CPU computes in fp32
    assert {params["loss_reduction"], params["is10_scaling"]} <= {"sum", "mean", "none", "zscore"}
    assert config["compute_dtype"] == "fp32" and info["compute_dtype"] == "fp32"
    assert config["params"]["loss_reduction"] == info["loss_reduction"] == params["loss_reduction"]
    assert config["params"]["is10_scaling"] == info["is10_scaling"] == params["is10_scaling"]
    assert json.loads((fold / "metrics.json").read_text())["compute_dtype"] == "fp32"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/arousal_uar")] == [1, 2]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2]
    assert {"test/valence_war", "test/arousal_uar", "test/arousal_f1"} <= set(run.data.metrics)
    assert all(m.startswith(("train/", "val/", "test/")) for m in run.data.metrics)
    assert run.inputs.dataset_inputs[0].dataset.name == demo_dataset.name
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "run.json", "folds", "model"} <= top  # model: the pyfunc model
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "folds/Ses03F")}
    # the folder holds the files; MLflow the figures, and the network once, in the model
    assert logged == {"folds/Ses03F/confusion_arousal.png", "folds/Ses03F/confusion_valence.png"}

    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_config_file_round_trip_and_no_tracking(tmp_path, results, capsys):
    from tests.test_training import make_tone_dataset

    data = make_tone_dataset(tmp_path / "tones", per_speaker=10)
    small = ["--set", "preset=small", "--set", "conv1_filters=4", "--set", "conv1_kernel=16", "--set", "pool2=4",
             "--set", "pool3=4", "--set", "hidden1=8", "--set", "hidden2=4"]
    assert main(["--results", str(results), "train", "elor", "--local", "--data", str(data),
                 "--epochs", "1", "--no-track", "--name", "first", *small]) == 0
    config = results / "first" / "config.yaml"
    assert main(["--results", str(results), "train", "elor", "--local", "--data", str(data),
                 "--config", str(config), "--no-track", "--name", "again", "--fold", "Ses01M",
                 "--update", "joint", "--set", "lr=0.02"]) == 0
    again = json.loads((results / "again" / "run.json").read_text())
    assert again["mlflow_run_id"] is None and again["folds"] == ["Ses01M"]
    params = yaml.safe_load((results / "again" / "config.yaml").read_text())["params"]
    assert (params["conv1_filters"], params["hidden2"], params["epochs"]) == (4, 4, 1)
    assert params["update"] == "joint" and params["lr"] == 0.02
    assert not (results / "mlflow.db").exists()
    capsys.readouterr()
    assert main(["--results", str(results), "train", "ftr", "--local", "--data", str(data),
                 "--config", str(config), "--no-track"]) == 1
    assert "arch: the file is for 'elor', not 'ftr'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "elor", "--local", "--set", "colour=red"], "unknown parameter(s) for elor: colour; valid:"),
    (["train", "elor", "--local", "--set", "lr"], "--set 'lr': expected KEY=VALUE"),
    (["train", "resnet", "--local"], "unknown network 'resnet'; expected one of elor, lom, ftr, elor_ftr"),
    (["train", "elor", "--local", "--fold", "Ses09X", "--no-track", "--epochs", "1"],
     "--fold Ses09X: no windows of this speaker in"),
    (["train", "elor", "--fold", "Ses01F"], "--fold picks the test speaker of --local"),
])
def test_bad_input_is_one_line_error(argv, message, demo_dataset, results, capsys):
    assert main(["--results", str(results), *argv, "--data", str(demo_dataset), *TOY]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise():
    import io

    from raylab.cli.train import EpochPrinter, parse_sets
    from raylab.train.loop import EpochReport

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    report = EpochReport(1, 2.5, {"valence_war": 0.3, "arousal_war": 0.4, "valence_uar": 0.2,
                                  "arousal_uar": 0.25}, 0.01, 1.5)
    tty = Terminal()
    printer = EpochPrinter(2, tty)
    for done in (1, 2, 3):
        printer.batch(done, 3)
    printer.epoch_done(report)
    assert "epoch 1/2" in tty.getvalue() and "3/3" in tty.getvalue() and "UAR v 0.200 a 0.250" in tty.getvalue()
    plain = io.StringIO()
    printer = EpochPrinter(2, plain)
    printer.batch(1, 3)
    printer.epoch_done(report)
    assert plain.getvalue() == ("epoch 1/2  loss 2.500  val WAR v 0.300 a 0.400  UAR v 0.200 a 0.250  (1.5 s)\n")
    assert parse_sets(["lr=1.0e-3", "update=joint", "amp=false", "batch_size=15"]) == {
        "lr": 1e-3, "update": "joint", "amp": False, "batch_size": 15}


@pytest.mark.parametrize("argv, message", [
    (["--local", "--folds", "Ses01F"], "--folds: an option of the ten-fold run on Ray Train, not of --local"),
    (["--local", "--resume", "--max-failures", "0"], "--resume, --max-failures: an option of the ten-fold"),
    (["--local", "--gpus-per-worker", "0", "--address", "auto"], "--gpus-per-worker, --address: an option"),
    (["--local", "--set", "device=cuda"], "--set: device=cuda: choose the device with --device"),
    (["--local", "--seed", "1", "--set", "seed=2"], "--seed 1 and --set seed=2: give one"),
    (["--device", "cuda:1"], "--device 'cuda:1': the ten-fold run takes auto, cpu or cuda"),
])
def test_options_that_would_be_ignored_are_refused(argv, message, demo_dataset, results, capsys):
    assert main(["--results", str(results), "train", "elor", *argv, "--data", str(demo_dataset),
                 *TOY]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (results / "elor-tenfold").exists()


class _Stop(Exception):
    pass


def test_demo_runs_get_their_features_and_resume_leaves_the_demo_alone(results, monkeypatch):
    """Without --data, train computes the demo features its network reads (local and ten-fold),
    as tune does; a ten-fold --resume hands crossval no data, so the demo is not built for it."""
    import raylab.crossval.driver
    from raylab.data import demo_cache

    computed = []
    monkeypatch.setattr(demo_cache, "ensure_demo_dataset", lambda results_dir: results_dir / "demo")

    def features(dataset, arch):
        computed.append((dataset, arch))
        raise _Stop

    monkeypatch.setattr(demo_cache, "ensure_demo_features", features)
    for argv in (["lom", "--local"], ["ftr"]):
        with pytest.raises(_Stop):
            main(["--results", str(results), "train", *argv, "--epochs", "1"])
    assert computed == [(str(results / "demo"), "lom"), (str(results / "demo"), "ftr")]

    calls = []

    def crossval(**kw):
        calls.append(kw)
        raise _Stop

    monkeypatch.setattr(demo_cache, "ensure_demo_dataset", lambda *a, **k: pytest.fail("demo built"))
    monkeypatch.setattr(raylab.crossval.driver, "run_crossval", crossval)
    with pytest.raises(_Stop):
        main(["--results", str(results), "train", "elor", "--resume", "--name", "real"])
    options = calls[0]["options"]
    assert calls[0]["data"] is None and options.resume is True and options.name == "real"
    assert options.gpus_per_worker is None  # crossval's default: resolved from the cluster


def test_ensure_demo_features_computes_only_what_the_network_reads(monkeypatch):
    import raylab.data.features
    from raylab.data.demo_cache import ensure_demo_features

    asked = []
    monkeypatch.setattr(raylab.data.features, "compute_features",
                        lambda path, kinds: asked.append((path, tuple(kinds))))
    for arch in ("elor", "lom", "ftr", "elor_ftr"):
        ensure_demo_features("demo", arch)
    assert asked == [("demo", ("mfcc",)), ("demo", ("is10",)), ("demo", ("is10",))]


def test_test_windows_are_predicted_in_training_batches(tmp_path, monkeypatch):
    """Memory: test prediction uses the configured batch size, not max(64, it)."""
    from raylab.train import fold
    from tests.test_training import make_tone_dataset

    sizes = []
    real = fold.predict
    monkeypatch.setattr(fold, "predict", lambda *a, batch_size, **k:
                        sizes.append(batch_size) or real(*a, batch_size=batch_size, **k))
    data = make_tone_dataset(tmp_path / "tones", per_speaker=6)
    small = dict(preset="small", conv1_filters=2, conv1_kernel=16, pool2=4, pool3=4, hidden1=4, hidden2=4,
                 epochs=1, batch_size=5)
    fold.run_fold("elor", data, "Ses01M", small)
    assert sizes == [5]
