"""`raylab doctor`: is this machine (or cluster) ready to run raylab? One line per check.

Checks the pinned dependencies (pyproject.toml's pins against the installed versions), Ray and the
resources of the cluster it joins (or of this machine, through a local Ray started for a moment),
the GPUs torch sees, the MLflow store (opened, its experiments listed), the shared storage that
cluster runs need (`$RAYLAB_STORAGE`), and every dataset found: the results folder's demo dataset,
each `--data`, and each folder under `./data` with a `meta.json`, whose counts must match its files.
Every check is a `Check`; a failed one says how to fix it.
"""
from __future__ import annotations

import os
import platform
import socket
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Sequence
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from raylab.data.dataset import FORMAT_VERSION, META_FILE, WINDOWS_FILE, filesystem_for, read_meta
from raylab.errors import DataError
from raylab.runtime.settings import STORAGE_ENV, demo_data_dir

OK, WARN, FAIL = "ok", "WARN", "FAIL"
SETUP_FIX = "make setup (or: pip install -r requirements.lock)"


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, how it went, and how to fix it."""

    name: str
    status: str  # OK, WARN or FAIL
    detail: str
    fix: str = ""


def run_checks(results: Path, address: str | None = None, data: Sequence[str] = ()) -> list[Check]:
    """Every check, in the order the report prints them."""
    cluster = address or os.environ.get("RAY_ADDRESS")
    seen: dict = {}
    checks = [check_python(), *check_packages(), check_ray(cluster, seen), check_gpu(),
              check_tracking(results, seen.get("nodes", 1)), check_storage(bool(cluster))]
    datasets = find_datasets(results, data)
    checks += [check_dataset(path) for path in datasets]
    if not datasets:
        checks.append(Check("datasets", WARN, "no dataset found (demo, --data, ./data/*)",
                            "raylab data info (builds the demo dataset), or raylab data "
                            "prepare iemocap IEMOCAP_DIR --out data/iemocap"))
    return checks


def format_checks(checks: Sequence[Check]) -> str:
    """The report: one line per check, then a one-line summary."""
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        fix = f"  -> fix: {c.fix}" if c.fix and c.status != OK else ""
        lines.append(f"{c.status:<4}  {c.name:<{width}}  {c.detail}{fix}")
    counts = Counter(c.status for c in checks)
    lines.append(f"{len(checks)} checks: {counts[OK]} ok, {counts[WARN]} WARN, {counts[FAIL]} FAIL")
    return "\n".join(lines)


def check_python() -> Check:
    version = platform.python_version()
    if version.startswith("3.11."):
        return Check("python", OK, f"Python {version}")
    return Check("python", WARN, f"Python {version}; requirements.lock was resolved for 3.11",
                 "use Python 3.11 (make setup PYTHON=python3.11)")


def pinned_requirements() -> list[str]:
    """The dependency pins: this source tree's pyproject.toml, else the installed metadata."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        project = tomllib.loads(pyproject.read_text()).get("project", {})
        if project.get("name") == "raylab":
            return list(project.get("dependencies", []))
    return list(metadata.requires("raylab") or [])


def check_packages(requirements: Sequence[str] | None = None) -> list[Check]:
    """One line if every pin is met; else one line per missing or mismatched package."""
    from packaging.requirements import Requirement

    reqs = [Requirement(text) for text in (pinned_requirements() if requirements is None
                                           else requirements)]
    reqs = [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]
    problems = []
    for req in reqs:
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(Check(f"package {req.name}", FAIL,
                                  f"{req.name} is not installed (pinned: {req.specifier})", SETUP_FIX))
            continue
        if not req.specifier.contains(installed, prereleases=True):
            problems.append(Check(f"package {req.name}", WARN,
                                  f"{req.name} {installed} installed, pyproject.toml pins "
                                  f"{req.specifier}", SETUP_FIX))
    return problems or [Check("packages", OK, f"{len(reqs)} pinned dependencies at their pins")]


def check_ray(address: str | None, seen: dict | None = None) -> Check:
    """Connect to `address` (or start a local Ray briefly) and report its CPUs, GPUs and nodes
    (also put in `seen["nodes"]`, for the checks that depend on them)."""
    from raylab.runtime.ray_capacity import auth_error
    from raylab.runtime.ray_session import (cluster_resources, is_running, live_nodes,
                                            ray_session, ray_version)

    if is_running():
        where, session = "this process's Ray", {}
    elif address:
        where, session = f"cluster at {address}", {"address": address}
    else:  # a new instance, never a running one
        where = "this machine (local Ray)"
        session = {"address": "local", "include_dashboard": False,
                   "object_store_memory": 100 * 1024 * 1024}
    try:
        if address and session:
            _probe(address)
        with ray_session(**session, host_allocator=False):
            resources, nodes = cluster_resources(), live_nodes()
    except Exception as err:  # ray raises ConnectionError, RuntimeError, ... for one cause
        refused = auth_error(err, address)
        if refused is not None:
            return Check("ray", FAIL, f"ray {ray_version()}: {address or 'a local Ray'} "
                         f"answered but refused this process's token ({refused.reason}: an "
                         "authentication failure)", str(refused).split("): ", 1)[-1])
        return Check("ray", FAIL, f"ray {ray_version()}: cannot reach {address or 'a local Ray'}: "
                     f"{str(err).splitlines()[0] if str(err) else type(err).__name__}",
                     "start the cluster (ray up CLUSTER.yaml) and run on its head with "
                     "--address auto, or unset RAY_ADDRESS to use this machine")
    if seen is not None:
        seen["nodes"] = nodes
    return Check("ray", OK, f"ray {ray_version()}, {where}: {resources.get('CPU', 0):g} CPUs, "
                 f"{resources.get('GPU', 0):g} GPUs, {nodes} node{'s' if nodes != 1 else ''}")


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds on a HOST:PORT nobody answers at (ray.init would wait for minutes)."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return  # "auto" or a ray:// client address: ray.init reports those itself
    with socket.create_connection((host, int(port)), timeout=timeout):
        pass


def check_gpu() -> Check:
    import torch

    if torch.cuda.is_available():
        names = Counter(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        listing = ", ".join(f"{n} x {name}" for name, n in names.items())
        return Check("gpu", OK, f"torch {torch.__version__} sees {listing} (CUDA {torch.version.cuda})")
    build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
    return Check("gpu", WARN, f"torch {torch.__version__} ({build}) sees no CUDA GPU: training runs "
                 "on the CPU", "on a GPU machine: check `nvidia-smi`, then pip install "
                 "torch==2.13.0 from PyPI (its Linux wheels include CUDA)")


def check_tracking(results: Path, nodes: int = 1) -> Check:
    """Open the MLflow store that runs will use and list its experiments; on a cluster of
    `nodes` nodes, refuse what `raylab tune` and `raylab train` refuse there (a SQLite file)."""
    from raylab.errors import ConfigError
    from raylab.runtime.tracking import Tracker, check_store_reachable, tracking_uri, ui_command

    uri = tracking_uri(results)
    try:
        check_store_reachable(uri, nodes)
    except ConfigError as err:
        return Check("mlflow", FAIL, f"raylab tune and train refuse it here: {err}",
                     "mlflow server --host 0.0.0.0 on the head, then export "
                     "MLFLOW_TRACKING_URI=http://HEAD:5000 on every node")
    if uri.startswith(("file:", "/", ".", "~")):  # a plain path is a file store too
        return Check("mlflow", FAIL, f"{uri}: a bare file store, which recent MLflow refuses",
                     "unset MLFLOW_TRACKING_URI (the results folder's SQLite store is used) or "
                     "set it to sqlite:///PATH/mlflow.db or http://HOST:5000")
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        return Check("mlflow", OK, f"{uri} (created by the first tracked run)")
    try:  # a tracking server that is down should fail in seconds, not after MLflow's retries
        with mock.patch.dict(os.environ, {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                                          "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}):
            experiments = Tracker(uri=uri).client.search_experiments()
    except Exception as err:  # mlflow raises MlflowException, requests' and sqlalchemy's errors
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        fix = ("is the server up? on a cluster: ray exec CLUSTER.yaml 'tail ~/mlflow/server.log'"
               if uri.startswith("http") else "move the broken file aside; a new store is created")
        return Check("mlflow", FAIL, f"{uri}: cannot open ({first})", fix)
    names = ", ".join(e.name for e in experiments[:5]) + (", ..." if len(experiments) > 5 else "")
    return Check("mlflow", OK, f"{uri}: reachable, {len(experiments)} experiment(s) ({names}); "
                 f"browse: {ui_command(uri) if uri.startswith('sqlite') else uri}")


def check_storage(cluster: bool) -> Check:
    """`$RAYLAB_STORAGE` must be readable shared storage when runs span several machines."""
    storage = os.environ.get(STORAGE_ENV)
    if not storage:
        if cluster:
            return Check("storage", WARN, f"${STORAGE_ENV} is not set: Tune/Train keep trial state "
                         "on each node's disk, which multi-node runs cannot share",
                         f"export {STORAGE_ENV}=s3://BUCKET/raylab (or gs://..., or an NFS path)")
        return Check("storage", OK, f"local: Tune/Train state under the results folder "
                     f"(set ${STORAGE_ENV} for clusters)")
    try:
        fs, root = filesystem_for(storage)
        info = fs.get_file_info(root)
    except (DataError, OSError, pa.ArrowException) as err:
        return Check("storage", FAIL, f"${STORAGE_ENV}={storage}: cannot open ({err})",
                     "check the URI and this node's credentials (instance role / service account)")
    if info.type == pafs.FileType.File:
        return Check("storage", FAIL, f"${STORAGE_ENV}={storage} is a file, not a folder",
                     f"point {STORAGE_ENV} at a folder")
    if info.type == pafs.FileType.NotFound and "://" not in storage:
        return Check("storage", FAIL, f"${STORAGE_ENV}={storage} does not exist on this node",
                     "mount the shared folder there (or mkdir it)")
    return Check("storage", OK, f"${STORAGE_ENV}={storage} ({fs.type_name})")


def find_datasets(results: Path, data: Sequence[str] = (), root: Path = Path("data")) -> list[str]:
    """Each `--data` (checked even when missing), the demo dataset, every ./data/**/meta.json."""
    found = [str(d) for d in data]
    demo = demo_data_dir(results)
    if (demo / META_FILE).is_file():
        found.append(str(demo))
    if root.is_dir():
        for meta in sorted(root.rglob(META_FILE)):
            if not any(part.startswith(".") for part in meta.relative_to(root).parts):
                found.append(str(meta.parent))
    unique: dict[str, str] = {}
    for path in found:  # the same folder named twice is checked once
        unique.setdefault(path if "://" in path else str(Path(path).resolve()), path)
    return list(unique.values())


def check_dataset(path: str) -> Check:
    """Does `meta.json` match the files? Windows, window length, speakers, feature files."""
    write = f"raylab data prepare iemocap IEMOCAP_DIR --out {path}"
    try:
        meta = read_meta(path)
    except DataError as err:  # no dataset there (never prepared, or a wrong path), or no JSON
        return Check("dataset", FAIL, str(err),
                     f"check the path, or write a dataset there: {write}")
    try:
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{path}/{META_FILE}: format_version {meta.get('format_version')!r}, "
                            f"this raylab reads {FORMAT_VERSION}")
        fs, root = filesystem_for(path)
        with fs.open_input_file(f"{root}/{WINDOWS_FILE}") as handle:
            windows = pq.ParquetFile(handle)
            rows, audio = windows.metadata.num_rows, windows.schema_arrow.field("audio").type
            table = windows.read(columns=["window_id", "speaker"])
    except (DataError, OSError, KeyError, pa.ArrowException) as err:
        message = str(err) if isinstance(err, DataError) else f"{path}/{WINDOWS_FILE}: {err}"
        return Check("dataset", FAIL, message,
                     f"its files are incomplete or of another version; write it afresh: {write}")
    errors = _meta_mismatches(meta, rows, audio, table.column("speaker").to_pylist())
    if errors:
        return Check("dataset", FAIL, f"{path}: " + "; ".join(errors),
                     f"its files disagree with its meta.json; write it afresh: {write}, then "
                     f"raylab features {path}")
    ids = table.column("window_id").to_numpy(zero_copy_only=False)
    present, notes, status = _feature_state(path, meta, ids)
    summary = (f"{rows} windows, {len(meta.get('speakers', {}))} speakers, "
               f"{meta.get('sample_rate')} Hz, evaluator {meta.get('evaluator')}, "
               f"features: {', '.join(present) or 'none yet (raylab features DATA)'}")
    return Check("dataset", status, f"{path}: {summary}" + "".join(f"; {n}" for n in notes),
                 f"raylab features {path} --force" if notes else "")


def _meta_mismatches(meta: dict, rows: int, audio: pa.DataType, speakers: list[str]) -> list[str]:
    """What meta.json claims that windows.parquet does not hold."""
    errors = []
    if meta.get("windows") != rows:
        errors.append(f"meta.json says windows={meta.get('windows')}, "
                      f"{WINDOWS_FILE} has {rows} rows")
    size = getattr(audio, "list_size", None)
    if size != meta.get("window_samples"):
        errors.append(f"meta.json says window_samples={meta.get('window_samples')}, "
                      f"the audio column holds {size if size is not None else audio} samples")
    counted, claimed = Counter(speakers), meta.get("speakers", {})
    wrong = sorted(s for s in set(counted) | set(claimed) if counted.get(s, 0) != claimed.get(s, 0))
    if wrong:
        listing = ", ".join(f"{s} meta {claimed.get(s, 0)} vs file {counted.get(s, 0)}"
                            for s in wrong[:3])
        errors.append(f"speaker window counts differ: {listing}"
                      + (f" and {len(wrong) - 3} more" if len(wrong) > 3 else ""))
    return errors


def _feature_state(path: str, meta: dict, ids: np.ndarray) -> tuple[list[str], list[str], str]:
    """(feature kinds present and current, notes on the others, worst status)."""
    from raylab.data.features import FEATURE_FILES, KINDS, feature_params, stored_state

    present, notes, status = [], [], OK
    for kind in KINDS:
        state = stored_state(path, kind, ids, feature_params(kind, meta))
        if state == "current":
            present.append(kind)
        elif state != "missing":
            notes.append(f"{FEATURE_FILES[kind]} {state}")
            stale = state.startswith("made with other settings")
            status = FAIL if not stale or status == FAIL else WARN
    return present, notes, status
