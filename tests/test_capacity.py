"""What the cluster holds, node by node: trials no node holds are refused, fold concurrency."""
from __future__ import annotations

import pytest

from raylab.errors import ConfigError
from raylab.runtime import ray_capacity as capacity
from raylab.runtime.tracking import check_store_reachable

ONE_CPU_NODES = [{"CPU": 1.0}, {"CPU": 1.0}, {"CPU": 1.0}]


def test_a_trial_bigger_than_every_node_is_refused_with_flags_that_fit():
    # 3 CPUs in total, but no node of 2 and no GPU anywhere: Ray would wait forever
    with pytest.raises(ConfigError, match="--gpus-per-trial 0 --cpus-per-trial 1$") as err:
        capacity.check_trial_fits(ONE_CPU_NODES, cpus=2, gpus=0.25)
    assert "no node of the Ray cluster holds that" in str(err.value)
    assert "\n" not in str(err.value)
    capacity.check_trial_fits(ONE_CPU_NODES, cpus=1, gpus=0)
    capacity.check_trial_fits([{"CPU": 1.0}, {"CPU": 8.0, "GPU": 1.0}], cpus=2, gpus=0.25)
    with pytest.raises(ConfigError, match="--gpus-per-worker 1 --cpus-per-worker 8"):
        capacity.check_trial_fits([{"CPU": 8.0, "GPU": 1.0}], 16, 2,
                                  "--cpus-per-worker", "--gpus-per-worker")


def test_worker_groups_count_node_by_node():
    assert capacity.worker_groups(ONE_CPU_NODES, workers=1, cpus=1, gpus=0) == 3
    assert capacity.worker_groups(ONE_CPU_NODES, workers=2, cpus=1, gpus=0) == 1
    assert capacity.worker_groups(ONE_CPU_NODES, workers=1, cpus=1.5, gpus=0) == 0
    assert capacity.worker_groups([{"CPU": 2.0}], workers=1, cpus=0.5, gpus=0) == 4
    assert capacity.worker_groups([{"CPU": 16.0, "GPU": 2.0}], 1, 1, 1) == 2


def test_a_refused_token_is_one_line_naming_it():
    from ray.exceptions import AuthenticationError

    err = capacity.auth_error(AuthenticationError("InvalidAuthToken: token mismatch"), "h:6379")
    assert isinstance(err, ConfigError) and "h:6379" in str(err) and "RAY_AUTH_TOKEN" in str(err)
    assert capacity.auth_error(ConnectionError("UNAUTHENTICATED: bad token"), None) is not None
    assert capacity.auth_error(ConnectionError("timed out"), "h:6379") is None


def test_a_sqlite_store_is_refused_on_several_nodes():
    check_store_reachable("sqlite:////r/mlflow.db", 1)
    check_store_reachable("http://tracking:5000", 4)
    with pytest.raises(ConfigError, match="other 3 node"):
        check_store_reachable("sqlite:////r/mlflow.db", 4)
