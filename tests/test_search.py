"""The TPE search on a local Ray: the paper's point first, MLflow runs, resume, failed trials."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from raylab.errors import ConfigError
from raylab.search.driver import SearchOptions, run_search
from raylab.train.params import PAPER_HPARAMS, load_params_file

from tests.fixtures_runs import SPACES, TINY

FAILING = SPACES / "ok_failing_trial.yaml"  # its first point cannot be built


def _runs(results: Path) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    ids = [e.experiment_id for e in client.search_experiments()]
    return client, client.search_runs(ids)


def test_search_resumes_to_the_budget_and_tracks_each_trial_once(resumed_search, demo_dataset):
    # two trials at once; Ctrl-C (as Tune receives it) when the first finishes, the second may
    # be cut off in the middle; then --resume
    first, done, results = resumed_search.first, resumed_search.done, resumed_search.results
    assert not first.complete and 1 <= len(first.trials) <= 2
    assert any(t.status == "FINISHED" for t in first.trials)
    paper = PAPER_HPARAMS["elor"]
    searched = ("batch_size", "lr", "lr_decay", "momentum", "l2")
    # the first trial proposed is the paper's configuration (Table 1)
    assert {k: first.trials[0].params[k] for k in searched} == {k: paper[k] for k in searched}
    assert isinstance(resumed_search.again, ConfigError)
    assert "a search named 'tiny' exists" in str(resumed_search.again)

    assert done.complete and len(done.trials) == 3
    assert len({t.trial_id for t in done.trials}) == 3
    assert all(t.status == "FINISHED" and t.epochs == 2 for t in done.trials)
    for before in (t for t in first.trials if t.status == "FINISHED"):
        after = next(t for t in done.trials if t.trial_id == before.trial_id)
        assert after.value == before.value and after.params == before.params
    assert done.mlflow_run_id == first.mlflow_run_id
    assert [t.trial_id for t in done.trials[:len(first.trials)]] == \
        [t.trial_id for t in first.trials]
    # the restored searcher did not propose the paper's point again
    assert sum(all(t.params[k] == paper[k] for k in searched) for t in done.trials) == 1

    client, runs = _runs(results)
    parents = [r for r in runs if r.data.tags.get("raylab.kind") == "search"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == first.mlflow_run_id]
    assert [p.info.run_id for p in parents] == [first.mlflow_run_id]
    assert parents[0].info.status == "FINISHED"
    finished = [r for r in children if r.info.status == "FINISHED"]
    # one finished child per trial: no finished trial ran again after the resume; a trial the
    # interruption cut off left a KILLED child and ran again
    assert sorted(r.data.tags["raylab.trial_id"] for r in finished) == \
        sorted(t.trial_id for t in done.trials)
    assert all(r.info.status == "KILLED" for r in children if r not in finished)
    for child in finished:
        trial = next(t for t in done.trials if t.trial_id == child.data.tags["raylab.trial_id"])
        history = client.get_metric_history(child.info.run_id, "val/mean_war")
        assert sorted(m.step for m in history) == [1, 2]
        assert child.data.metrics["val/mean_war"] == trial.value  # the last epoch's
        assert not any(k.startswith("test") for k in child.data.metrics)
        assert float(child.data.params["lr"]) == trial.params["lr"]

    run_dir = results / "tiny"
    assert done.best_file == run_dir / "best.yaml"
    assert load_params_file(done.best_file, "elor") == done.ranked()[0].params
    info = json.loads((run_dir / "run.json").read_text())
    assert info["kind"] == "search" and info["arch"] == "elor" and info["num_samples"] == 3
    assert info["mlflow_run_id"] == first.mlflow_run_id and info["complete"] is True
    assert info["dataset"] == str(Path(demo_dataset).resolve())
    assert info["test_speaker"] == "Ses01F"
    artifacts = {a.path for a in client.list_artifacts(first.mlflow_run_id)}
    assert {"best.yaml", "search_space.yaml"} <= artifacts


def test_failing_trial_is_recorded_while_the_others_finish(ray_local, demo_dataset, results):
    result = run_search("elor", str(demo_dataset),
                        SearchOptions(FAILING, name="failing", max_failures=1), results=results)
    assert result.complete and len(result.trials) == 3
    failed = [t for t in result.trials if t.status == "FAILED"]
    assert len(failed) == 1 and failed[0].params["pool1"] == 100_000
    assert "ConfigError" in failed[0].error and "nothing left of the 96000 steps" in failed[0].error
    assert sum(t.status == "FINISHED" for t in result.trials) == 2
    assert result.best.params["pool1"] != 100_000

    _, runs = _runs(results)
    attempts = [r for r in runs if r.data.tags.get("raylab.trial_id") == failed[0].trial_id]
    assert len(attempts) == 2  # the first try and one retry (max_failures=1)
    assert all(r.info.status == "FAILED" and "nothing left" in r.data.tags["raylab.error"]
               for r in attempts)


def test_resume_without_a_search_is_an_error(results):
    with pytest.raises(ConfigError, match="nothing to resume"):
        run_search("elor", None, SearchOptions(resume=True, name="never-ran"), results=results)


@pytest.mark.gpu
def test_two_trials_share_one_gpu(ray_local, demo_dataset, results):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    result = run_search("elor", str(demo_dataset),
                        SearchOptions(TINY, name="gpu", num_samples=2, gpus_per_trial=0.5),
                        results=results)
    assert result.complete and all(t.status == "FINISHED" for t in result.trials)
    _, runs = _runs(results)
    trials = [r for r in runs if r.data.tags.get("raylab.kind") == "trial"]
    assert len(trials) == 2 and all(r.data.tags["raylab.device"] == "cuda" for r in trials)


def test_cuda_without_a_gpu_share_fails_before_ray_starts(demo_dataset, results, monkeypatch):
    import raylab.search.driver

    monkeypatch.setattr(raylab.search.driver, "ray_session", lambda *a, **k: pytest.fail("Ray started"))
    with pytest.raises(ConfigError, match="--device cuda with 0 GPUs per trial"):
        run_search("elor", str(demo_dataset),
                   SearchOptions(TINY, device="cuda", gpus_per_trial=0), results=results)
    with pytest.raises(ConfigError, match="--device cuda with 0 GPUs per trial"):
        run_search("elor", str(demo_dataset), SearchOptions(TINY, device="cuda"),  # file: 0
                   results=results)
    with pytest.raises(ConfigError, match="--device 'cuda:1': expected cpu or cuda"):
        run_search("elor", str(demo_dataset), SearchOptions(TINY, device="cuda:1"),
                   results=results)


def test_options_a_resumed_search_ignores_are_named():
    from raylab.search.driver import ignored_on_resume

    state = {"seed": 3, "scheduler": "asha"}
    assert ignored_on_resume(state, space=None, epochs=None, max_concurrent=None,
                             max_failures=None, scheduler=None, seed=None) == []
    assert ignored_on_resume(state, space="x.yaml", epochs=4, max_concurrent=None,
                             max_failures=0, scheduler="asha", seed=5) == \
        ["--space x.yaml", "--epochs 4", "--max-failures 0", "--seed 5"]


def test_tune_cli_leaves_unset_options_to_the_search():
    from raylab.cli import build_parser

    args = build_parser().parse_args(["tune", "elor", "--resume"])
    assert (args.seed, args.scheduler, args.max_failures) == (None, None, None)


def test_a_sqlite_store_is_refused_on_several_nodes():
    from raylab.runtime.tracking import check_store_reachable

    check_store_reachable("sqlite:////r/mlflow.db", 1)
    check_store_reachable("http://tracking:5000", 4)
    check_store_reachable(None, 4)  # --no-track
    with pytest.raises(ConfigError, match="other 3 node.*MLFLOW_TRACKING_URI"):
        check_store_reachable("sqlite:////r/mlflow.db", 4)


def test_networks_without_a_waveform_input_load_no_audio(demo_dataset, monkeypatch):
    import raylab.data.dataset
    from raylab.search.ray_tune import _load_arrays

    asked = []

    def load(path, audio=True):
        asked.append(audio)
        raise ConfigError("stop")

    monkeypatch.setattr(raylab.data.dataset, "load_dataset", load)
    for arch in ("elor", "lom", "ftr", "elor_ftr"):
        with pytest.raises(ConfigError, match="stop"):
            _load_arrays(arch, str(demo_dataset), 0)
    assert asked == [True, False, False, True]


def test_an_interrupted_search_marks_its_best_yaml_partial_and_keeps_the_address(tmp_path):
    import yaml

    from raylab.search.results import SearchResult, TrialSummary, format_summary, write_best

    trial = TrialSummary("93d5500f", "FINISHED", 0.5, 1, {"lr": 0.01})
    path = write_best(tmp_path, "elor", "val_acc_mean", trial, partial=(1, 4))
    text = path.read_text()
    assert text.startswith("# partial: the best of an interrupted search, 1 of 4 trials ended")
    assert yaml.safe_load(text)["partial"] is True
    assert load_params_file(path, "elor") == {"lr": 0.01}
    assert "partial" not in write_best(tmp_path, "elor", "val_acc_mean", trial).read_text()
    result = SearchResult("s", "elor", "val_acc_mean", "max", 4, (trial,), tmp_path, "", path,
                          "r1", "http://head:5000", ("lr",), address="10.0.0.1:6379",
                          experiment_id="7")
    shown = format_summary(result)
    assert "raylab tune elor --name s --resume --address 10.0.0.1:6379" in shown
    # a tracking server: its own address, opening the runs table; no `mlflow ui` to start
    assert shown.endswith("MLflow runs: http://head:5000/#/experiments/7/runs"
                          "?workflowType=machine_learning")
    assert "backend-store-uri" not in shown


def test_a_trial_cut_off_before_its_first_report_is_known_by_its_folder():
    from raylab.search.ray_tune import trial_id_of

    folder = "_trial_93d5500f_1_batch_size=15,l2=0.0000_2026-11-30_01-17-27"
    assert trial_id_of(folder) == "93d5500f"
    assert trial_id_of("_trial_93d5500f_00001_3_x=1_2026-11-30") == "93d5500f_00001"


def test_trials_are_named_by_their_number_in_the_order_tune_created_them():
    from raylab.search.ray_tune import trial_number, trial_run_name

    assert trial_number("_trial_93d5500f_7_batch_size=15,l2=0.0000_2026-11-30_01-17-27") == 7
    assert trial_number("_trial_93d5500f_00001_12_x=1_2026-11-30") == 12
    assert trial_number("no-number-here") is None
    assert trial_run_name("elor-search", 7, 70) == "elor-search #07"
    assert trial_run_name("elor-search", 7, 4) == "elor-search #07"
    assert trial_run_name("big", 7, 250) == "big #007"


def test_a_wrong_token_is_one_line_not_a_traceback(demo_dataset, results, monkeypatch, capsys):
    import ray
    from ray.exceptions import AuthenticationError

    from raylab.cli import main

    def refuse(**kwargs):
        raise AuthenticationError("InvalidAuthToken")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    assert main(["tune", "elor", "--data", str(demo_dataset), "--space", str(TINY),
                 "--address", "10.0.0.1:6379", "--no-track"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused this process's token" in err


def test_an_attempt_whose_process_died_ends_failed_and_the_retry_as_the_trial(results):
    import time

    from raylab.runtime.tracking import Tracker
    from raylab.search.ray_tune import _settle_children

    tracker = Tracker(results)
    with tracker.start_run("search") as parent:
        experiment = tracker.experiment_id("raylab")
        attempts = []
        for _ in range(2):  # both left RUNNING: the first by a lost node, the second by Ray
            attempts.append(tracker.client.create_run(
                experiment, tags={"mlflow.parentRunId": parent.run_id,
                                  "raylab.trial_id": "93d5500f"}).info.run_id)
            time.sleep(0.01)
        _settle_children(tracker, parent.run_id, {"93d5500f": "FINISHED"})
    first, retry = (tracker.client.get_run(run_id) for run_id in attempts)
    assert first.info.status == "FAILED" and "died" in first.data.tags["raylab.error"]
    assert retry.info.status == "FINISHED"
