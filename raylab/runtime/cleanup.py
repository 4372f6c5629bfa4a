"""Deleting runs whole: the run folder, Ray's state of the run and its MLflow runs, together.

A run lives in three places: its folder `<results>/<name>/` (the source of truth), Ray's storage
(`<storage>/<name>` and, for a ten-fold run, `<storage>/<name>-<SPEAKER>`: what Ray needs to
resume) and the MLflow store (a parent run whose `raylab.run_dir` tag names the folder, its child
runs, and the `table5` runs that read it). `delete_runs` removes all three, so no MLflow run is
left pointing at a folder that is gone; `prune_runs` marks deleted the MLflow runs whose folders
were removed some other way. MLflow keeps deleted runs in its "deleted" list until `mlflow gc`.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from raylab.errors import ConfigError
from raylab.report.layout import LOCK_FILE, RUN_FILE
from raylab.runtime.fsutil import MARKER_FILE
from raylab.runtime.runlock import interrupted_start, run_lock
from raylab.runtime.settings import RUN_KINDS, check_run_name, storage_root


@dataclass
class Deleted:
    folders: list[Path] = field(default_factory=list)
    ray_state: list[str] = field(default_factory=list)
    mlflow_runs: list[str] = field(default_factory=list)  # run names
    missing: list[str] = field(default_factory=list)      # names with no folder

    def render(self) -> str:
        lines = [f"deleted {f}" for f in self.folders]
        lines += [f"deleted Ray state {s}" for s in self.ray_state]
        if self.mlflow_runs:
            lines.append(f"marked {len(self.mlflow_runs)} MLflow run(s) deleted: "
                         + ", ".join(self.mlflow_runs))
        lines += [f"no run named {name}" for name in self.missing]
        return "\n".join(lines) or "nothing to delete"


def delete_runs(results: Path, names: list[str], missing_ok: bool = False,
                track: bool = True) -> Deleted:
    """Delete runs `names` of `results`: folder, Ray state and MLflow runs. A name that is not a
    raylab run folder (a run.json of a known kind, or `runlock.interrupted_start`: a run killed
    before it wrote one) is an error (with `missing_ok`, a name with no folder is skipped)."""
    results = Path(results)
    done = Deleted()
    found: dict[Path, list[str]] = {}  # folder -> its folds (Ray Train's state per fold)
    for name in dict.fromkeys(names):
        folder = results / check_run_name(name)
        if not folder.exists():
            if not missing_ok:
                raise ConfigError(f"{folder}: no such run; pass --missing-ok to skip it")
            done.missing.append(name)
            found[folder] = []
            continue
        run = _run_json(folder)
        if run.get("kind") not in RUN_KINDS and not (folder.is_dir()
                                                     and interrupted_start(folder)):
            raise ConfigError(f"{folder}: not a raylab run (no {RUN_FILE} of a known kind, no "
                              f"{MARKER_FILE} of a run); nothing deleted. If a raylab command "
                              f"that was killed left it, look inside, then `rm -r {folder}`")
        found[folder] = list(run.get("folds") or []) if run.get("kind") == "crossval" else []
    try:
        for folder, folds in found.items():
            if folder.exists():
                with run_lock(results, folder.name):  # refused while a command runs it
                    for path in sorted(folder.iterdir()):
                        if path.name != LOCK_FILE:
                            shutil.rmtree(path) if path.is_dir() else path.unlink()
                shutil.rmtree(folder, ignore_errors=True)
                done.folders.append(folder)
                done.ray_state += _delete_ray_state(results, folder.name, folds)
            elif _storage_under(results):  # a shared storage's state is not ours to guess at
                done.ray_state += _delete_ray_state(results, folder.name, folds)
    except OSError as err:
        where = err.filename or results
        raise ConfigError(f"{where}: cannot delete ({err.strerror or err})") from err
    finally:  # what was deleted leaves no MLflow run pointing at it, whatever stopped the rest
        gone = done.folders + [results / name for name in done.missing]
        if track and gone:
            done.mlflow_runs = prune_runs(results, gone)
    return done


def prune_runs(results: Path, removed: list[Path] | None = None) -> list[str]:
    """Mark deleted the MLflow runs of `results` that point at a folder that is gone (their
    `raylab.run_dir`, or one of the folders a `table5` run read), with their child runs; returns
    their names. Only folders directly in `results` count, so a shared server's runs of other
    results folders or hosts are never touched; with `removed`, only runs of those folders."""
    from raylab.runtime.tracking import RUN_DIR_TAG, SOURCES_TAG, Tracker, delete_runs_where

    root = Path(results).resolve()
    only = None if removed is None else {Path(p).resolve() for p in removed}

    def ours_and_gone(path: str) -> bool:
        folder = Path(path).resolve()
        if folder.parent != root:
            return False
        return folder in only if only is not None else not folder.exists()

    def gone(tags: dict[str, str]) -> bool:
        if tags.get(RUN_DIR_TAG):
            return ours_and_gone(tags[RUN_DIR_TAG])
        if tags.get(SOURCES_TAG):
            try:
                sources = json.loads(tags[SOURCES_TAG])
            except ValueError:
                return False
            return any(ours_and_gone(p) for p in sources)
        return False

    tracker = Tracker(results)
    if tracker.uri.startswith("sqlite:///") and not Path(tracker.uri[len("sqlite:///"):]).exists():
        return []  # no store yet: nothing to mark
    try:
        return delete_runs_where(tracker, gone)
    except Exception as err:  # MlflowException, a refused connection: one line, not a traceback
        first = (str(err).splitlines() or [""])[0]
        raise ConfigError(f"MLflow store {tracker.uri}: cannot mark the runs deleted "
                          f"({type(err).__name__}: {first}); run `raylab runs prune` when it is "
                          "reachable") from err


def _storage_under(results: Path) -> bool:
    storage = storage_root(results)
    return "://" not in storage and Path(storage).resolve().is_relative_to(Path(results).resolve())


def _run_json(folder: Path) -> dict:
    try:
        run = json.loads((folder / RUN_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return run if isinstance(run, dict) else {}


def _delete_ray_state(results: Path, name: str, folds: list[str]) -> list[str]:
    """Ray Tune's folder of the run and Ray Train's of each of its folds (`<name>-<fold>`), on a
    local storage path (a cloud storage's are left to its lifecycle rules)."""
    storage = storage_root(results)
    if "://" in storage:
        return []
    root = Path(storage)
    deleted = []
    for path in (root / name, *(root / f"{name}-{fold}" for fold in folds)):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            deleted.append(str(path))
    return deleted
