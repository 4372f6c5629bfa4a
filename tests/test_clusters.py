"""clusters/*.yaml: Ray's own schema, commands that exist, security, the environment they set up;
and datasets read from shared storage through pyarrow's filesystems."""
from __future__ import annotations

import copy
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest
import yaml

from tests.test_readme import invocation_problems

ROOT = Path(__file__).resolve().parents[1]
CLUSTERS = sorted((ROOT / "clusters").glob("*.yaml"))
CLOUD = [p for p in CLUSTERS if yaml.safe_load(p.read_text())["provider"]["type"] != "local"]
COMMAND_KEYS = ("initialization_commands", "setup_commands", "head_setup_commands",
                "worker_setup_commands", "head_start_ray_commands", "worker_start_ray_commands")
VENV_BIN = str(Path(sys.executable).parent)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def commands(config: dict) -> list[str]:
    """Every shell command of a config, node-type-specific ones included."""
    found = [c for key in COMMAND_KEYS for c in config.get(key, [])]
    for node_type in config.get("available_node_types", {}).values():
        found += [c for key in COMMAND_KEYS for c in node_type.get(key, [])]
    return found


def _substitutions(text: str) -> tuple[str, list[str]]:
    """`$( ... )` replaced by a word; the inner commands returned to be checked on their own."""
    out, inner, i = [], [], 0
    while i < len(text):
        if text.startswith("$(", i):
            depth, j = 1, i + 2
            while depth:
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
            inner.append(text[i + 2:j - 1])
            out.append("SUBSTITUTED")
            i = j
        else:
            out.append(text[i])
            i += 1
    return "".join(out), inner


def simple_commands(text: str) -> list[list[str]]:
    """The argv of each simple command in a shell line (redirections and VAR= prefixes dropped)."""
    text, inner = _substitutions(text)
    text = re.sub(r"(?<!\S)\d*(>>?|<)&?\s*[^\s;&|]+", " ", text)  # > file, 2>&1, < /dev/null
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    argvs, argv = [], []
    for token in lexer:
        if set(token) <= set(";&|"):
            argvs.append(argv)
            argv = []
        else:
            argv.append(token)
    argvs.append(argv)
    for i, argv in enumerate(argvs):
        while argv and (re.match(r"^\w+=", argv[0]) or argv[0] in ("nohup", "setsid", "exec")):
            argv = argv[1:]
        argvs[i] = argv
    return [a for a in argvs if a] + [a for c in inner for a in simple_commands(c)]


def local_path(config: dict, remote: str) -> Path | None:
    """The repository path that file_mounts copies to `remote` (None when none does)."""
    for target, source in config.get("file_mounts", {}).items():
        for prefix in {target, target.replace("/home/ray/", "~/", 1)}:
            if remote == prefix or remote.startswith(prefix.rstrip("/") + "/"):
                return (ROOT / source / remote[len(prefix):].lstrip("/")).resolve()
    return None


def repo_problems(config: dict, argv: list[str]) -> list[str]:
    """pip and make must find the repository files the mounts put on the node."""
    problems = []
    if argv[0] == "pip":
        for flag, value in zip(argv, argv[1:]):
            if flag in ("-r", "-e"):
                found = local_path(config, value)
                needed = found if flag == "-r" else (found / "pyproject.toml" if found else None)
                if needed is None or not needed.exists():
                    problems.append(f"pip {flag} {value}: not in the repository copied to the node")
    if argv[0] == "make" and "-C" in argv:
        folder = local_path(config, argv[argv.index("-C") + 1])
        if folder is None or not (folder / "Makefile").exists():
            problems.append(f"{' '.join(argv)}: no Makefile there")
    return problems


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.name)
def test_validates_against_rays_cluster_schema(path):
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(load(path)))  # ray-schema.json, shipped with the pinned Ray


def test_the_schema_check_rejects_a_broken_config():
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    broken = copy.deepcopy(load(CLOUD[0]))
    worker = next(t for t in broken["available_node_types"].values() if "GPU" in t["resources"])
    worker["resources"]["GPU"] = 0.5  # fractions belong to trials, not to nodes
    with pytest.raises(jsonschema.ValidationError, match="0.5 is not of type 'integer'"):
        validate_config(prepare_config(broken))


def test_there_are_aws_gcp_and_onprem_clusters():
    assert {p.name for p in CLUSTERS} >= {"aws-gpu.yaml", "gcp-gpu.yaml", "onprem.yaml"}
    assert {load(p)["provider"]["type"] for p in CLUSTERS} == {"aws", "gcp", "local"}


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.name)
def test_every_command_parses_and_exists(path):
    config = load(path)
    programs, problems = set(), []
    for command in commands(config):
        check = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
        assert check.returncode == 0, f"{path.name}: not valid bash: {command}\n{check.stderr}"
        for argv in simple_commands(command):
            programs.add(" ".join(argv[:2]))
            problems += invocation_problems(argv) + repo_problems(config, argv)
    assert not problems, f"{path.name}:\n" + "\n".join(problems)
    assert {"ray start", "mlflow server", "ray stop"} <= programs
    head = " ".join(config["head_start_ray_commands"])
    assert "ray start --head" in head and "mlflow server" in head
    assert "ray start --address=$RAY_HEAD_IP:6379" in " ".join(config["worker_start_ray_commands"])


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.name)
def test_the_commands_in_the_comments_exist(path):
    lines = [re.sub(r"^#\s*", "", line).split("  #")[0] for line in path.read_text().splitlines()
             if re.match(r"^#\s+ray (up|exec|down|get-auth-token)\b", line)]
    assert len(lines) >= 3
    problems = [p for line in lines for p in invocation_problems(shlex.split(line))]
    assert not problems, problems


def test_the_raylab_entry_point_is_installed():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["raylab"] == "raylab.cli:run"
    (installed,) = entry_points(group="console_scripts", name="raylab")
    assert installed.value == "raylab.cli:run" and (Path(VENV_BIN) / "raylab").exists()
    assert (Path(VENV_BIN) / "mlflow").exists() and (Path(VENV_BIN) / "ray").exists()


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.name)
def test_security_rules(path):
    import ray

    config, text = load(path), path.read_text()
    assert "0.0.0.0" not in yaml.safe_dump(config)  # nothing binds or opens to every address
    assert "IpPermissions" not in config["provider"].get("security_group", {})
    setup = " ".join(config["setup_commands"])
    assert "'export RAY_AUTH_MODE=token'" in setup
    for command in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        if "ray start" in command:
            assert command.startswith(". ~/raylab.env;")  # RAY_AUTH_MODE=token before Ray starts
    assert "--dashboard-host=127.0.0.1" in " ".join(config["head_start_ray_commands"])
    assert config["file_mounts"][next(k for k in config["file_mounts"] if
                                      k.endswith(".ray/auth_token"))] == "~/.ray/auth_token"
    assert not re.search(r"AKIA[0-9A-Z]{16}|BEGIN [A-Z ]*PRIVATE KEY", text)
    assert not re.search(r"credentials|access_key|secret|passw", yaml.safe_dump(config), re.I)
    images = [v for k, v in config.get("docker", {}).items() if k.endswith("image")]
    assert all(re.fullmatch(rf"rayproject/ray:{re.escape(ray.__version__)}-py311-(gpu|cpu)", i)
               for i in images) and "ray-ml" not in yaml.safe_dump(config)
    assert (config["provider"]["type"] == "local") == (not images)


@pytest.mark.parametrize("path", CLOUD, ids=lambda p: p.name)
def test_cloud_clusters_autoscale_gpu_workers(path):
    config = load(path)
    types = config["available_node_types"]
    assert "GPU" not in types[config["head_node_type"]]["resources"]
    gpu = [t for name, t in types.items() if t["resources"].get("GPU", 0) >= 1]
    assert gpu and all(t["min_workers"] == 0 < t["max_workers"] for t in gpu)
    assert sum(t.get("min_workers", 0) for t in types.values()) <= config["max_workers"]


def fill_in(text: str, storage: Path) -> str:
    """The YAML as a user completes it: the storage placeholders replaced."""
    text = re.sub(r"(s3|gs)://FILL-IN-BUCKET/raylab", str(storage), text)
    return text.replace("/mnt/FILL-IN-SHARED/raylab", str(storage))


def node_shell(home: Path, command: str, **env: str) -> subprocess.CompletedProcess:
    """Run one command as `ray up` would, with HOME a folder where ~/raylab is this repository."""
    environ = {**os.environ, "HOME": str(home), "PATH": f"{VENV_BIN}:{os.environ['PATH']}", **env}
    return subprocess.run(["bash", "-c", command], env=environ, capture_output=True, text=True,
                          timeout=120)


def env_commands(config: dict, key: str) -> list[str]:
    return [c for c in config.get(key, []) if "raylab.env" in c and "ray start" not in c]


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.name)
def test_every_node_gets_storage_auth_mode_and_tracking_uri(path, tmp_path):
    import ray.util

    storage = tmp_path / "shared"
    config = load(path)
    write_env = next(c for c in config["setup_commands"] if "> ~/raylab.env" in c)
    guard = next(c for c in config["setup_commands"] + config.get("head_setup_commands", [])
                 if "*FILL-IN*" in c)  # a node refuses to start with the placeholder in place
    assert node_shell(tmp_path, write_env).returncode == 0
    refused = node_shell(tmp_path, guard)
    assert refused.returncode == 1 and f"{path.name}: set RAYLAB_STORAGE" in refused.stderr
    assert not Path("/mnt/FILL-IN-SHARED").exists()
    config = yaml.safe_load(fill_in(path.read_text(), storage))
    (tmp_path / "raylab").symlink_to(ROOT)
    for role, head_ip in (("head", ray.util.get_node_ip_address()), ("worker", "10.1.2.3")):
        steps = env_commands(config, "setup_commands") + env_commands(config, f"{role}_setup_commands")
        for _ in range(2):  # `ray up` runs the setup again on a running cluster
            for step in steps:
                done = node_shell(tmp_path, step, RAY_HEAD_IP="10.1.2.3")
                assert done.returncode == 0, (step, done.stderr)
        shown = node_shell(tmp_path, ". ~/raylab.env; echo $RAYLAB_STORAGE $RAY_AUTH_MODE "
                                     "$MLFLOW_TRACKING_URI").stdout.split()
        assert shown == [str(storage), "token", f"http://{head_ip}:5000"], role
        assert (tmp_path / "raylab.env").read_text().count("MLFLOW_TRACKING_URI") == 1
        assert (tmp_path / ".bashrc").read_text().count(". ~/raylab.env") == 1


@pytest.mark.slow
@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.name)
def test_the_head_starts_an_mlflow_server_that_answers(path, tmp_path):
    storage = tmp_path / "shared"
    storage.mkdir()
    config = yaml.safe_load(fill_in(path.read_text(), storage).replace("/home/ray/", f"{tmp_path}/"))
    with socket.socket() as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
    start = next(c for c in config["head_start_ray_commands"] if "mlflow server" in c)
    node_shell(tmp_path, next(c for c in config["setup_commands"] if "printf" in c))
    host = subprocess.run([sys.executable, "-c", "import ray.util; print(ray.util.get_node_ip_address())"],
                          capture_output=True, text=True).stdout.strip()
    node_shell(tmp_path, f"echo 'export MLFLOW_TRACKING_URI=http://{host}:{port}' >> ~/raylab.env")
    assert node_shell(tmp_path, start.replace("--port 5000", f"--port {port}")).returncode == 0
    pid = int((tmp_path / "mlflow" / "server.pid").read_text())
    try:
        deadline, answer = time.monotonic() + 240, None
        while time.monotonic() < deadline and answer is None:
            try:
                answer = urllib.request.urlopen(f"http://{host}:{port}/health", timeout=2).read()
            except OSError:
                time.sleep(1)
        assert answer == b"OK", (tmp_path / "mlflow" / "server.log").read_text()[-2000:]
        assert (tmp_path / "mlflow" / "mlflow.db").exists()
    finally:  # stop it as the next `ray up` would: its process group (setsid), TERM then KILL
        restart = next(c for c in config["head_start_ray_commands"] if "mlflow server" in c)
        node_shell(tmp_path, restart.split(". ~/raylab.env;")[0])
        assert _group_gone(pid), f"mlflow server group {pid} still running"


def _group_gone(pgid: int, wait: float = 15.0) -> bool:
    """No live process of the group is left (zombies aside) within `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        listing = subprocess.run(["ps", "-eo", "pgid=,stat="], capture_output=True, text=True).stdout
        if not any(int(g) == pgid and not s.startswith("Z")
                   for g, s in (line.split() for line in listing.splitlines())):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def make_dataset(out: Path) -> Path:
    from tests.test_doctor import make_dataset as build

    return build(out)


def test_a_dataset_loads_from_a_file_uri_as_from_its_path(tmp_path):
    from raylab.data.dataset import load_dataset

    dataset = make_dataset(tmp_path / "ds")
    by_path, by_uri = load_dataset(dataset), load_dataset(dataset.as_uri())
    assert by_uri.meta == by_path.meta and by_uri.speakers == ["Ses01F", "Ses01M"]
    assert np.array_equal(by_uri.audio, by_path.audio)
    assert np.array_equal(by_uri.window_id, by_path.window_id)


def test_a_dataset_on_object_storage_is_read_through_pyarrow(tmp_path, monkeypatch):
    """s3://bucket/... resolved by pyarrow to a filesystem whose root is not the local root."""
    import raylab.data.dataset as dataset_module
    from raylab.data.dataset import load_dataset
    from raylab.runtime import doctor

    bucket = tmp_path / "bucket-root"
    make_dataset(bucket / "lab-bucket" / "iemocap")
    served = []

    class FileSystem:
        @staticmethod
        def from_uri(uri: str):
            assert uri.startswith("s3://")
            served.append(uri)
            return pafs.SubTreeFileSystem(str(bucket), pafs.LocalFileSystem()), uri[len("s3://"):]

    monkeypatch.setattr(dataset_module, "pafs",
                        type("pafs", (), {"FileSystem": FileSystem,
                                          "LocalFileSystem": pafs.LocalFileSystem}))
    loaded = load_dataset("s3://lab-bucket/iemocap")
    assert len(loaded) == 6 and loaded.audio.shape == (6, 320) and served
    assert doctor.check_dataset("s3://lab-bucket/iemocap").status == doctor.OK


def test_an_unreadable_uri_is_a_data_error(tmp_path):
    from raylab.data.dataset import load_dataset
    from raylab.errors import DataError

    with pytest.raises(DataError, match="not a raylab dataset"):
        load_dataset("mock:///nothing-here")  # pyarrow's in-memory filesystem, empty
    with pytest.raises(DataError, match="cannot open this URI"):
        load_dataset("nosuchscheme://bucket/data")
