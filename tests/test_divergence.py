"""Non-finite numbers never become a score: NaN/inf parameters, feature files, losses and outputs
stop the run with one line, and a search never picks a trial whose metric is not finite."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch.nn.functional as F

from raylab.cli import main
from raylab.data.dataset import load_dataset
from raylab.errors import DataError, DivergedError
from raylab.data.features import FEATURE_FILES, load_features
from raylab.report.metrics import summarize, war
from raylab.search.results import SearchResult, TrialSummary, format_summary
from tests.test_models import one_thread  # noqa: F401  (fixture)
from tests.test_training import make_tone_dataset

SMALL = ["--set", "preset=small", "--set", "conv1_filters=4", "--set", "conv1_kernel=16", "--set", "pool2=4",
         "--set", "pool3=4", "--set", "hidden1=8", "--set", "hidden2=4"]


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return make_tone_dataset(tmp_path_factory.mktemp("tones") / "data", per_speaker=6)


def _train(results, data, *extra: str) -> list[str]:
    return ["--results", str(results), "train", "elor", "--local", "--data", str(data),
            "--epochs", "1", "--no-track", "--name", "r", *SMALL, *extra]


@pytest.mark.parametrize("value, message", [
    ("inf", "lr=inf: lr must be a finite number, found inf"),
    (".nan", "lr=nan: lr must be a finite number, found nan"),
    ("1e30", "lr=1e+30: lr must lie in (0, 10], found 1e+30"),
])
def test_non_finite_or_absurd_parameters_stop_before_training(value, message, tones, results, capsys):
    assert main(_train(results, tones, "--set", f"lr={value}")) == 1
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1
    assert "epoch 1" not in captured.out and not (results / "r").exists()


def test_non_finite_sizes_and_dropout_are_one_line_errors(tones, results, capsys):
    for item, message in (("conv1_filters=inf", "conv1_filters='inf': expected an int"),
                          ("dropout=nan", "dropout='nan': dropout must be a finite number")):
        assert main(_train(results, tones, "--set", item)) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_a_nan_loss_stops_the_fit_instead_of_scoring_class_0(tones, results, capsys, monkeypatch,
                                                             one_thread):  # noqa: F811
    real = F.cross_entropy
    monkeypatch.setattr(F, "cross_entropy", lambda *a, **k: real(*a, **k) * float("nan"))
    assert main(_train(results, tones)) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1
    assert "training diverged: the loss is nan in epoch 1 of 1, from batch 1 of" in captured.err
    assert "lower lr" in captured.err and "WAR" not in captured.out
    assert not list(results.rglob("metrics.json")) and not list(results.rglob("run.json"))


def test_non_finite_network_outputs_are_an_error_not_class_0(tones, one_thread):  # noqa: F811
    import torch

    from raylab.models import build_model
    from raylab.train.fold import build_arrays
    from raylab.train.loop import fit, predict
    from raylab.train.params import TrainConfig
    from tests.test_training import TOY_ELOR

    arrays = build_arrays(tones, "elor")
    message = r"outputs are NaN/inf for \d+ of \d+ windows"
    model = build_model("elor", input_samples=arrays.inputs["waveform"].shape[1], **TOY_ELOR)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(DivergedError, match=message):
        predict(model, arrays)
    # validation in `fit`: training (batch statistics) stays finite, eval mode reads the NaN
    # running variance of the batch norms
    model = build_model("elor", input_samples=arrays.inputs["waveform"].shape[1], **TOY_ELOR)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert norms
    for norm in norms:
        norm.running_var.fill_(float("nan"))
    with pytest.raises(DivergedError, match=message):
        fit(model, arrays, arrays, TrainConfig(batch_size=4, epochs=1, lr=0.01, l2=0.0))


def test_metrics_refuse_non_finite_predictions():
    with pytest.raises(ValueError, match="predictions hold NaN or inf"):
        war([0, 0, 1], np.array([np.nan, 0.0, 1.0]))
    with pytest.raises(ValueError, match="targets hold NaN or inf"):
        summarize(np.array([np.inf, 0.0]), [0, 0])
    assert war([0, 0, 1], np.array([0.0, 0.0, 1.0])) == 1.0


def test_a_nan_in_a_feature_file_stops_the_run_naming_file_and_windows(tmp_path, results, capsys):
    data = make_tone_dataset(tmp_path / "tones", per_speaker=3)
    ids = load_dataset(data, audio=False).window_id
    values = np.ones((len(ids), 8), dtype=np.float32)
    values[2, 5] = np.nan
    values[4, 0] = np.inf
    columns = {"window_id": pa.array(ids)} | {f"f{j}": values[:, j] for j in range(8)}
    pq.write_table(pa.table(columns), data / FEATURE_FILES["is10"])
    with pytest.raises(DataError, match=rf"features_is10.parquet: 2 window\(s\) hold NaN or inf "
                                        rf"values: {ids[2]}, {ids[4]}; compute them again"):
        load_features(data, "is10")
    assert main(["--results", str(results), "train", "ftr", "--local", "--data", str(data),
                 "--epochs", "1", "--no-track"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 window(s) hold NaN or inf values" in err


def test_best_trial_selection_skips_a_nan_metric(tmp_path):
    trials = (TrialSummary("a", "FINISHED", float("nan"), 3, {"lr": 5.0}),
              TrialSummary("b", "FINISHED", 0.41, 3, {"lr": 0.01}),
              TrialSummary("c", "FINISHED", float("inf"), 3, {"lr": 9.0}),
              TrialSummary("d", "FAILED", None, 1, {"lr": 8.0}, "DivergedError: training diverged"))
    result = SearchResult("s", "elor", "val_acc_mean", "max", 4, trials, tmp_path, "x", None, None,
                          None, ("lr",))
    assert result.best.trial_id == "b" and [t.trial_id for t in result.ranked()] == ["b"]
    assert "failed d: DivergedError: training diverged" in format_summary(result)
