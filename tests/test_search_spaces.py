"""Search-space files: the shipped ones cover the paper, broken ones fail naming file and key."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from raylab.cli import main
from raylab.errors import ConfigError
from raylab.models import SHAPE_KEYS, model_defaults
from raylab.search.space import (dump_search_space, load_search_space, paper_values,
                                 parse_search_space)
from raylab.train.params import PAPER_HPARAMS

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "search_spaces").glob("*.yaml"))
DATA = Path(__file__).parent / "data" / "search_spaces"
BUDGETS = {"elor": 70, "lom": 150, "ftr": 150, "elor_ftr": 70}  # section 3.3; elor_ftr: ours

BROKEN = {
    "bad_unknown_key.yaml": "num_sample: unknown key",
    "bad_inverted_bounds.yaml": "space.lr: inverted or empty range: low 0.1 must be below high",
    "bad_log_nonpositive.yaml": "space.l2.low: a log range needs positive bounds, found low 0.0",
    "bad_string_number.yaml": "space.lr.low: expected a number, found the string '1e-4'",
    "bad_start_outside.yaml": "start.lr: 0.5 lies outside [0.0001, 0.1]",
    "bad_start_unknown.yaml": "start.learning_rate: not a searched parameter",
    "bad_start_missing.yaml": "start: missing searched parameters: l2",
    "bad_unknown_arch.yaml": "arch: unknown network 'resnet'; expected one of elor",
    "bad_unknown_param.yaml": "space.conv4_filters: not a parameter of this network",
    "bad_paper_outside.yaml": "space.lr: the paper's value 0.006 lies outside [0.01, 0.1]",
    "bad_entry_key.yaml": "space.lr.logscale: unknown key",
    "bad_int_as_float.yaml": "space.batch_size.type: batch_size is an integer",
    "bad_step_grid.yaml": "space.conv1_filters.low: 4 is not a multiple of step 8",
    "bad_fixed_and_searched.yaml": "fixed.lr: is both fixed and searched",
    "bad_gpus.yaml": "resources.gpus_per_trial: expected a fraction in [0, 1]",
    "bad_not_yaml.yaml": "line 4: not valid YAML",
    "bad_update_value.yaml": "fixed: update='joiint': expected one of alternate, joint",
    "bad_nonfinite_bound.yaml": "space.lr.high: expected a number, found float inf",
    "bad_absurd_fixed.yaml": "fixed.lr: lr must lie in (0, 10], found 1e+30",
    "bad_nan_fixed.yaml": "fixed.dropout: expected a number, found float nan",
}


def test_every_broken_file_is_listed():
    assert sorted(p.name for p in DATA.glob("bad_*.yaml")) == sorted(BROKEN)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_space_fails_naming_file_and_key(name):
    with pytest.raises(ConfigError) as err:
        load_search_space(DATA / name)
    message = str(err.value)
    assert message.startswith(str(DATA / name) + ":")
    assert BROKEN[name] in message
    assert "\n" not in message


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_space_covers_the_paper(path):
    space = load_search_space(path, path.stem)
    assert space.num_samples == BUDGETS[space.arch]
    assert space.metric == "val_acc_mean" and space.mode == "max"
    # conv_impl picks how a convolution is computed (same network, same weights): not searched
    model_args = set(model_defaults(space.arch)) - set(SHAPE_KEYS) - {"conv_impl"}
    # every hyperparameter of Tables 1-4 and every architecture number is searched
    assert set(PAPER_HPARAMS[space.arch]) | model_args <= set(space.names)
    # the first point is the paper's configuration (Tables 1-4 + the model defaults)
    assert space.start == {k: paper_values(space.arch)[k] for k in space.names}
    assert all(space.param(k).contains(v) for k, v in space.start.items())
    assert space.fixed.get("update") == "alternate"
    # section 3.3: "a uniform distribution"; a log scale would be our deviation, not shipped
    assert not [p.name for p in space.params if p.log]
    demo = space.for_demo()
    assert demo.num_samples <= 4 and demo.fixed["epochs"] <= 4
    assert demo.resources.gpus_per_trial == 0
    assert set(demo.start) == set(demo.names) and not set(demo.names) & set(demo.fixed)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_tpe_draws_stay_inside_the_space(path):
    from hyperopt.pyll import stochastic

    from raylab.search.ray_tune import hyperopt_space

    space = load_search_space(path)
    expr = hyperopt_space(space)
    for seed in range(50):
        draw = stochastic.sample(expr, rng=np.random.default_rng(seed))
        for name, value in draw.items():
            assert space.param(name).contains(value), (name, value)


def test_resolved_space_round_trips():
    space = load_search_space(ROOT / "search_spaces" / "lom.yaml").for_demo()
    again = parse_search_space(yaml.safe_load(dump_search_space(space)), space.source)
    assert again.params == space.params and again.start == space.start
    assert again.fixed == space.fixed and again.num_samples == space.num_samples


def test_with_fixed_moves_parameters_out_of_the_space():
    space = load_search_space(ROOT / "search_spaces" / "elor.yaml").with_fixed({"epochs": 3})
    assert "epochs" not in space.names and "epochs" not in space.start
    assert space.fixed["epochs"] == 3


def test_arch_mismatch_is_an_error():
    with pytest.raises(ConfigError, match=r"lom\.yaml: arch: the file is for 'lom', not 'elor'"):
        load_search_space(ROOT / "search_spaces" / "lom.yaml", "elor")


def test_validate_command(capsys):
    assert main(["search-spaces", "validate", *map(str, SHIPPED)]) == 0
    out = capsys.readouterr().out
    assert out.count(": ok (") == len(SHIPPED) == 4
    bad = DATA / "bad_string_number.yaml"
    assert main(["search-spaces", "validate", str(SHIPPED[0]), str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].endswith("ok (elor, 18 parameters, 70 trials)")
    assert captured.err.splitlines() == [
        f"raylab: error: {bad}: space.lr.low: expected a number, found the string '1e-4' "
        "(YAML reads numbers like 1e-4 as strings; write 1.0e-4)"]
