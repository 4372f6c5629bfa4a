"""`--name`: one folder in the results folder, and never a run of another kind (or no run) reused."""
from __future__ import annotations

import json

import pytest

from raylab.cli import main
from raylab.errors import ConfigError
from raylab.runtime.settings import check_run_name, run_folder
from tests.test_train_local import TOY


@pytest.mark.parametrize("name", ["c1", "elor-local-Ses03F", "run_2.b", "A" * 100])
def test_good_names(name):
    assert check_run_name(name) == name


@pytest.mark.parametrize("name", ["", "../x", "..", ".", "/tmp/x", "a/b", ".hidden", "-x", "a b",
                                  "x\\y", "A" * 101, "ray", "demo-data"])
def test_names_that_leave_the_results_folder_or_take_its_own_are_refused(name):
    with pytest.raises(ConfigError, match="a run name is one folder in the results folder"):
        check_run_name(name)


def _ten_fold_run(results, name="c1") -> str:
    folder = results / name
    (folder / "folds" / "Ses01F").mkdir(parents=True)
    text = json.dumps({"kind": "crossval", "arch": "elor", "name": name, "folds": ["Ses01F"]})
    (folder / "run.json").write_text(text)
    (folder / "config.yaml").write_text("arch: elor\n")
    return text


def test_run_folder_of_another_kind_or_of_no_run_is_refused(tmp_path):
    text = _ten_fold_run(tmp_path)
    assert run_folder(tmp_path, "c1", "crossval") == tmp_path / "c1"
    assert run_folder(tmp_path, "new", "search") == tmp_path / "new"
    with pytest.raises(ConfigError, match=r"--name c1: .*c1 holds a ten-fold run \(raylab train\) "
                                          r"of 'elor', not a one-fold run \(raylab train --local\)"):
        run_folder(tmp_path, "c1", "train-local")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="mine exists and is not a raylab run"):
        run_folder(tmp_path, "mine", "search")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="file exists and is not a raylab run"):
        run_folder(tmp_path, "file", "crossval")
    assert (tmp_path / "c1" / "run.json").read_text() == text


def test_train_local_never_writes_over_a_ten_fold_run_or_outside_results(tmp_path, demo_dataset,
                                                                         results, capsys):
    text = _ten_fold_run(results)
    base = ["--results", str(results), "train", "elor", "--local", "--data", str(demo_dataset),
            "--no-track", "--epochs", "1", *TOY]
    assert main([*base, "--name", "c1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a ten-fold run (raylab train) of 'elor'" in err
    assert (results / "c1" / "run.json").read_text() == text
    assert (results / "c1" / "config.yaml").read_text() == "arch: elor\n"
    assert [p.name for p in (results / "c1" / "folds").iterdir()] == ["Ses01F"]
    for name in ("../x", str(tmp_path / "abs")):
        assert main([*base, "--name", name]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "a run name is one folder in the results folder" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "abs").exists()


def test_tune_and_ten_fold_train_refuse_a_run_of_another_kind(tmp_path, results, capsys):
    _ten_fold_run(results)
    local = results / "l1"
    local.mkdir()
    (local / "run.json").write_text(json.dumps({"kind": "train-local", "arch": "ftr"}))
    argv = ["--results", str(results)]
    assert main([*argv, "tune", "elor", "--name", "c1", "--data", str(tmp_path)]) == 1
    assert "holds a ten-fold run (raylab train) of 'elor', not a TPE search" in capsys.readouterr().err
    assert main([*argv, "train", "elor", "--name", "l1", "--data", str(tmp_path)]) == 1
    assert ("holds a one-fold run (raylab train --local) of 'ftr', not a ten-fold run"
            in capsys.readouterr().err)
    assert main([*argv, "tune", "elor", "--name", "../up", "--data", str(tmp_path)]) == 1
    assert "a run name is one folder in the results folder" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["logs", "mlartifacts", "mlflow.db"])
def test_the_results_folders_own_entries_are_not_run_names(name):
    from raylab.runtime.settings import check_run_name

    with pytest.raises(ConfigError, match="not ray, demo-data"):
        check_run_name(name)
