"""Runs shared by the test modules that read them (each costs a minute on a 2-core machine): a
two-fold ten-fold run of a toy ELoR through the CLI, and a three-trial search interrupted after
its first trial and resumed to its budget."""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
from ray.tune import Callback

TOY = dict(conv1_filters=4, conv1_kernel=40, pool1=8, conv2_filters=4, conv2_kernel=8, pool2=8,
           conv3_filters=4, conv3_kernel=8, pool3=8, hidden1=16, hidden2=8, epochs=1,
           batch_size=16, lr=0.01)
SPACES = Path(__file__).parent / "data" / "search_spaces"
TINY = SPACES / "ok_tiny_elor.yaml"      # 3 trials of 2 epochs of a toy ELoR


class InterruptAfter(Callback):
    """Sends the driver the signal Ray Tune treats as Ctrl-C once `n` trials have finished.

    The condition counts finished trials of the whole search, so the copy of this callback that
    `Tuner.restore` brings back does not fire again in the resumed search.
    """

    def __init__(self, n: int) -> None:
        self.n = n

    def on_trial_complete(self, iteration, trials, trial, **info):
        if sum(t.status == "TERMINATED" or t is trial for t in trials) == self.n:
            os.kill(os.getpid(), signal.SIGUSR1)


@pytest.fixture(scope="session")
def tenfold(ray_local, demo_dataset, tmp_path_factory):
    """`raylab train elor` on two folds (toy size, 1 epoch) on Ray Train, tracked in a SQLite
    MLflow store: what it printed, and what it wrote."""
    from raylab.cli import main
    from raylab.data.dataset import load_dataset

    results = tmp_path_factory.mktemp("crossval") / "results"
    folds = load_dataset(demo_dataset, audio=False).speakers[:3]
    sets = [arg for key, value in TOY.items() for arg in ("--set", f"{key}={value}")]
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("RAYLAB_STORAGE", raising=False)
        code = main(["--results", str(results), "train", "elor", "--data", str(demo_dataset),
                     "--folds", ",".join(folds[:2]), "--cpus-per-worker", "0.5",
                     "--max-failures", "0", *sets])
    run_dir = results / "elor-tenfold"
    run = json.loads((run_dir / "run.json").read_text())
    return SimpleNamespace(code=code, text=printed.getvalue(), results=results, run_dir=run_dir,
                           name=run_dir.name, run=run, trained=run["completed"], spare=folds[2],
                           summary=json.loads((run_dir / "summary.json").read_text()),
                           tracking_uri=f"sqlite:///{results / 'mlflow.db'}")



@pytest.fixture(scope="session")
def resumed_search(ray_local, demo_dataset, tmp_path_factory):
    """`run_search` of TINY named `tiny`: two trials at once, Ctrl-C (as Tune receives it) when
    the first finishes (the second may be cut off in the middle), then `resume=True` to the
    budget of three. `first` and `done` are the two SearchResults."""
    from raylab.search.driver import SearchOptions, run_search

    results = tmp_path_factory.mktemp("search") / "results"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAYLAB_RESULTS", str(results))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("RAYLAB_STORAGE", raising=False)
        first = run_search("elor", str(demo_dataset), SearchOptions(TINY, name="tiny"),
                           results=results, callbacks=[InterruptAfter(1)])
        again = None
        try:
            run_search("elor", str(demo_dataset), SearchOptions(TINY, name="tiny"), results=results)
        except Exception as err:  # noqa: BLE001  (the test checks it)
            again = err
        done = run_search("elor", None, SearchOptions(resume=True, name="tiny"), results=results)
    return SimpleNamespace(first=first, again=again, done=done, results=results,
                           tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
