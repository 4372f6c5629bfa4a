"""MLflow tracking: the only module of raylab that imports mlflow.

The store is `$MLFLOW_TRACKING_URI` when set (a tracking server on a cluster), else a SQLite file in
the results folder, `sqlite:///<results>/mlflow.db`, with artifacts in `<results>/mlartifacts`
(never a bare `file://` store, which recent MLflow refuses). Runs are created through
`MlflowClient` with explicit run ids rather than MLflow's process-global "active run", so child runs
can be opened in other processes (Ray workers) under a parent given by id (`parent_run_id`, tag
`mlflow.parentRunId`). A new SQLite store is a copy of an empty, fully migrated store built once per
MLflow version in `~/.cache/raylab/`: it appears whole in one `link()`, so processes opening a new
store at once never race MLflow's schema migrations, and it costs milliseconds instead of the ~5 s
those migrations take. With tracking off (`--no-track`) every method is a no-op, so training code
never branches on it.
"""
from __future__ import annotations

import contextlib
import functools
import getpass
import json
import logging
import math
import os
import random
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

from raylab.errors import ConfigError
from raylab.runtime.fsutil import atomic_path, temp_name

DEFAULT_EXPERIMENT = "raylab"
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
RUN_DIR_TAG, KIND_TAG, ARCH_TAG = "raylab.run_dir", "raylab.kind", "raylab.arch"
PARENT_TAG = "mlflow.parentRunId"
NODE_TAG = "raylab.node_id"  # the Ray node a trial or fold ran on
BEST_TAG = "raylab.best"  # "true" on a search's best trial
SOURCES_TAG = "raylab.sources"  # a `table5` run: JSON list of the run folders it read
MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter value
T = TypeVar("T")

# MLflow's own tags: what ran (the raylab command line), from which commit, by whom; a run's
# description; and the kind of experiment, which makes the UI open on its runs table.
SOURCE_NAME, SOURCE_TYPE = "mlflow.source.name", "mlflow.source.type"
GIT_COMMIT, USER_TAG, NOTE_TAG = "mlflow.source.git.commit", "mlflow.user", "mlflow.note.content"
SOURCE_TAGS = (SOURCE_NAME, SOURCE_TYPE, GIT_COMMIT, USER_TAG)
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
_command: list[str] = []


def tracking_uri(results_dir: str | os.PathLike | None = None) -> str:
    """`$MLFLOW_TRACKING_URI`, else `sqlite:///<results>/mlflow.db`."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    from raylab.runtime.settings import results_dir as default_results

    folder = Path(results_dir).expanduser().resolve() if results_dir else default_results()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / DB_FILE}"


def artifact_root(uri: str) -> str | None:
    """`<folder of the SQLite file>/mlartifacts` as a URI for a SQLite store; None (the server's
    choice) for a tracking server."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri[len("sqlite:///"):]).parent / ARTIFACTS_DIR).resolve().as_uri()


def _quiet() -> None:
    """MLflow and its database migrations log at INFO on every store opening: keep warnings only.

    MLflow sets its logger's level from $MLFLOW_LOGGING_LEVEL when imported, so both are set.
    """
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow  # noqa: F401  (configures its loggers on import)

    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _template() -> Path | None:
    """An empty, migrated SQLite store for this MLflow version (None if it cannot be made)."""
    import mlflow

    try:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "raylab"
    except (RuntimeError, KeyError):  # no home folder
        return None
    template = cache / f"mlflow-{mlflow.__version__}-empty.db"
    if template.exists():
        return template
    try:
        with atomic_path(template) as tmp:
            mlflow.MlflowClient(f"sqlite:///{tmp}").search_experiments(max_results=1)  # migrates
            with contextlib.closing(sqlite3.connect(tmp)) as con, con:
                # MLflow recreates its "Default" experiment, with the right folder, on first opening
                con.execute("DELETE FROM experiments WHERE experiment_id = 0")
    except Exception:  # only a shortcut: MLflow then creates the store itself
        return None
    return template


def _ensure_store(uri: str) -> None:
    """Create a missing SQLite store from the template (a no-op for servers and existing files)."""
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri[len("sqlite:///"):])
    if path.exists():
        return
    template = _template()
    if template is None:
        return  # MLflow creates and migrates the file itself
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(temp_name(path.name))
    try:
        shutil.copyfile(template, tmp)
        os.link(tmp, path)  # never replaces a store another process has just created
    except OSError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def set_command(argv: list[str]) -> None:
    """Record the command line of this process (`raylab.cli.main`, at its edge) for the
    `mlflow.source.name` tag of the runs it opens."""
    _command[:] = list(argv)


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout raylab runs from; None when it is not a git checkout of its
    own (an installed copy, no git)."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != root:
        return None  # e.g. installed inside some other repository
    return lines[1]


def source_tags() -> dict[str, str]:
    """MLflow's source and user tags for a run opened by this process."""
    argv = _command or ["raylab" if Path(sys.argv[0]).name in ("raylab", "__main__.py")
                        else Path(sys.argv[0]).name, *sys.argv[1:]]
    tags = {SOURCE_NAME: shlex.join(argv)[:MAX_PARAM_CHARS], SOURCE_TYPE: "LOCAL"}
    try:
        tags[USER_TAG] = getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (some containers)
        pass
    commit = git_commit()
    if commit:
        tags[GIT_COMMIT] = commit
    return tags


def _retry(fn: Callable[..., T], *args: Any, attempts: int = 8, **kwargs: Any) -> T:
    """Call `fn`, retrying when several processes hold the SQLite file at once."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # mlflow wraps sqlalchemy's OperationalError in MlflowException
            if "database is locked" not in str(err) or attempt == attempts - 1:
                raise
            time.sleep(0.1 * 2 ** attempt * (1 + random.random()))
    raise AssertionError("unreachable")


def _flat(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)[:MAX_PARAM_CHARS]
    return out


class Run:
    """One MLflow run, or nothing at all when tracking is off (`run_id` None)."""

    def __init__(self, client: Any = None, run_id: str | None = None,
                 experiment_id: str | None = None) -> None:
        self.client, self.run_id, self.experiment_id = client, run_id, experiment_id
        self.outcome: str | None = None

    def end_as(self, status: str | None) -> None:
        """End FAILED or KILLED (None: FINISHED) although no exception leaves the run's block:
        a job that records its failures instead of raising them."""
        self.outcome = status

    @property
    def enabled(self) -> bool:
        return self.run_id is not None

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in _flat(params).items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            _retry(self.client.log_batch, self.run_id, params=items[i:i + 100])

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(step or 0)) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        for i in range(0, len(items), 1000):
            _retry(self.client.log_batch, self.run_id, metrics=items[i:i + 1000])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        from mlflow.entities import RunTag

        _retry(self.client.log_batch, self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_dataset(self, name: str, digest: str, source: str, profile: Mapping[str, Any],
                    context: str = "training") -> None:
        """The dataset the run read, as an MLflow dataset input (`mlflow.log_input`'s record):
        its name, digest, location and a profile of figures (windows, evaluator, ...)."""
        if not self.enabled:
            return
        from mlflow.entities import Dataset, DatasetInput, InputTag

        kind = source.split("://", 1)[0] if "://" in source else "local"
        dataset = Dataset(name=name, digest=digest, source_type=kind,
                          source=json.dumps({"uri": source}),
                          profile=json.dumps(dict(profile), default=str))
        _retry(self.client.log_inputs, self.run_id,
               [DatasetInput(dataset, [InputTag("mlflow.data.context", context)])])

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        if self.enabled:
            _retry(self.client.log_artifact, self.run_id, str(path), artifact_path)

    def log_artifacts(self, folder: str | os.PathLike, artifact_path: str | None = None) -> None:
        if self.enabled:
            _retry(self.client.log_artifacts, self.run_id, str(folder), artifact_path)

    def log_config(self, config: Mapping[str, Any], name: str = "config.yaml") -> None:
        """The resolved configuration as a YAML artifact `name`."""
        if not self.enabled:
            return
        import yaml

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
            self.log_artifact(path)

    def log_figure(self, figure: Any, name: str) -> None:
        if self.enabled:
            _retry(self.client.log_figure, self.run_id, figure, name)


class Tracker:
    """Opens runs in one store (`results_dir`'s, or `uri`); `enabled=False` makes every run a no-op."""

    def __init__(self, results_dir: str | os.PathLike | None = None, enabled: bool = True,
                 uri: str | None = None) -> None:
        self.enabled = enabled
        self.uri = (uri or tracking_uri(results_dir)) if enabled else None
        self._client = None

    @property
    def client(self) -> Any:
        if self._client is None:
            _quiet()
            from mlflow import MlflowClient

            _ensure_store(self.uri)
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def experiment_id(self, name: str) -> str:
        """The id of experiment `name`, created (with our artifact root) when missing."""
        found = _retry(self.client.get_experiment_by_name, name)
        if found is not None:
            if found.tags.get(EXPERIMENT_KIND[0]) is None:  # a store of an earlier raylab
                _retry(self.client.set_experiment_tag, found.experiment_id, *EXPERIMENT_KIND)
            return found.experiment_id
        try:
            return _retry(self.client.create_experiment, name, artifact_location=artifact_root(self.uri),
                          tags={EXPERIMENT_KIND[0]: EXPERIMENT_KIND[1]})
        except Exception:  # another process created it in between
            found = _retry(self.client.get_experiment_by_name, name)
            if found is None:
                raise
            return found.experiment_id

    @contextlib.contextmanager
    def start_run(self, name: str, experiment: str = DEFAULT_EXPERIMENT,
                  parent_run_id: str | None = None, tags: Mapping[str, Any] | None = None,
                  run_id: str | None = None) -> Iterator[Run]:
        """A run that ends FINISHED, or FAILED/KILLED on an exception; `run_id` reopens a run
        (a resumed job); `parent_run_id` makes it a child of a run created anywhere, which takes
        its parent's source and user tags (its own process may be a Ray worker)."""
        if not self.enabled:
            run = Run()
        else:
            if parent_run_id:
                parent = _retry(self.client.get_run, parent_run_id).data.tags
                inherited = {k: parent[k] for k in SOURCE_TAGS if k in parent}
            else:
                inherited = source_tags()
            all_tags = {**inherited, **{k: str(v) for k, v in (tags or {}).items()}}
            if parent_run_id:
                all_tags[PARENT_TAG] = parent_run_id
            if run_id:
                _retry(self.client.update_run, run_id, status="RUNNING")
                run = Run(self.client, run_id, _retry(self.client.get_run, run_id).info.experiment_id)
                run.set_tags(all_tags)
            else:
                experiment_id = self.experiment_id(experiment)
                created = _retry(self.client.create_run, experiment_id, tags=all_tags, run_name=name)
                run = Run(self.client, created.info.run_id, experiment_id)
        status = "FINISHED"
        try:
            yield run
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        except BaseException:
            status = "FAILED"
            raise
        finally:
            if run.enabled:
                _retry(self.client.set_terminated, run.run_id,
                       run.outcome if status == "FINISHED" and run.outcome else status)


def close_stale_children(tracker: Tracker, parent_id: str | None, status: str = "KILLED") -> int:
    """End every child run of `parent_id` still RUNNING as `status`: their processes are gone (a
    killed attempt, a lost node), since nothing of the parent's job runs when this is called.
    Returns how many were closed."""
    if not (tracker.enabled and parent_id):
        return 0
    client = tracker.client
    experiment = _retry(client.get_run, parent_id).info.experiment_id
    stale = _retry(client.search_runs, [experiment],
                   f"tags.`{PARENT_TAG}` = '{parent_id}' and attributes.status = 'RUNNING'")
    for run in stale:
        _retry(client.set_tag, run.info.run_id, "raylab.interrupted", "true")
        _retry(client.set_terminated, run.info.run_id, status)
    return len(stale)


def delete_runs_where(tracker: Tracker, doomed: Callable[[dict[str, str]], bool]) -> list[str]:
    """Mark deleted every active run whose tags `doomed` accepts, and the runs nested under it at
    any depth; returns their names."""
    client = tracker.client
    experiments = [e.experiment_id for e in _retry(client.search_experiments)]
    runs, token = [], None
    while experiments:
        page = _retry(client.search_runs, experiments, max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            break
    children: dict[str, list[Any]] = {}
    for run in runs:
        children.setdefault(run.data.tags.get(PARENT_TAG), []).append(run)
    todo = [run for run in runs if doomed(run.data.tags)]
    deleted: dict[str, str] = {}
    while todo:
        run = todo.pop()
        if run.info.run_id not in deleted:
            deleted[run.info.run_id] = run.info.run_name
            todo += children.get(run.info.run_id, [])
    for run_id in deleted:
        _retry(client.delete_run, run_id)
    return list(deleted.values())


def check_store_reachable(uri: str | None, nodes: int) -> None:
    """Refuse a SQLite MLflow store (a file on the driver) when Ray spans several nodes."""
    if uri and uri.startswith("sqlite:") and nodes > 1:
        raise ConfigError(f"MLflow store {uri} is a file on this machine, which runs on the "
                          f"other {nodes - 1} node(s) of the Ray cluster cannot reach; set "
                          "MLFLOW_TRACKING_URI to the cluster's tracking server, or pass --no-track")


UI_ADDRESS = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default
# The MLflow 3 UI's route of an experiment's runs table and its "Model training" view (its
# `/experiments/:experimentId/runs` route and `workflowType` parameter; without it the UI opens
# the GenAI overview of traces).
RUNS_VIEW = "#/experiments/{experiment}/runs{run}?workflowType=machine_learning"


def ui_url(uri: str, experiment_id: str, run_id: str | None = None) -> str:
    """The address that opens the runs table of an experiment (or one run's page) in the MLflow
    UI: the tracking server's own for an http(s) store, else that of a local `mlflow ui`."""
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI_ADDRESS
    return f"{base}/" + RUNS_VIEW.format(experiment=experiment_id, run=f"/{run_id}" if run_id else "")


def ui_command(uri: str) -> str:
    """How to see this store in the MLflow UI: a tracking server serves it at its own URI."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    return f"mlflow ui --backend-store-uri {uri}"


def ui_lines(uri: str, experiment_id: str, run_id: str | None = None) -> list[str]:
    """What a command that wrote runs prints at its end: the address of the runs view and, for
    a local store, the command that starts the UI (a tracking server already serves it)."""
    url = ui_url(uri, experiment_id, run_id)
    if uri.startswith(("http://", "https://")):
        return [f"MLflow runs: {url}"]
    return [f"MLflow runs: {url}", f"  (start the UI first: {ui_command(uri)})"]
