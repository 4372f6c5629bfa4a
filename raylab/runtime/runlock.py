"""One process per run name at a time: an advisory lock on `<results>/<name>/.lock`.

`fcntl.flock` ties the lock to the open file, so it dies with the process that holds it (Ctrl-C,
SIGKILL, a lost machine: no stale lock to clear by hand). The file holds the holder's pid, host
and start time, which the refusal names. On a shared results folder (NFS) flock reaches other
machines where the mount supports it.

A folder the lock creates gets the marker of a raylab run folder (`raylab.runtime.fsutil`'s
`.raylab-folder`, kind `run`), so that a run killed before it wrote its `run.json` (or while it
wrote it) leaves a folder raylab knows as its own: `raylab runs delete` removes it, as it removes a
folder holding nothing but this lock and the run's log. A folder that existed before is never
marked: the user's files in it stay the user's.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from raylab.errors import ConfigError
from raylab.report.layout import LOCK_FILE, LOG_FILE
from raylab.runtime.fsutil import MARKER_FILE, read_marker, write_marker

RUN_MARKER = "run"  # the kind of marker a run folder made by `run_lock` holds


@contextlib.contextmanager
def run_lock(results: Path, name: str) -> Iterator[Path]:
    """Hold the lock of run `name` for the block; refuse when another process holds it."""
    from raylab.runtime.settings import check_run_name

    folder = Path(results) / check_run_name(name)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    if created:
        write_marker(folder, RUN_MARKER)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"run {name!r} is in use by {_holder(path)}; wait for it to end, "
                              "or choose another --name") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        try:
            yield path
        finally:
            _remove_if_unused(folder, path, created)
    finally:
        os.close(fd)  # releases the lock


def _remove_if_unused(folder: Path, path: Path, created: bool) -> None:
    """A run refused before it wrote anything leaves no folder behind (only the one made here,
    with its lock and the log of its attempt)."""
    if created and {p.name for p in folder.iterdir()} <= {LOCK_FILE, LOG_FILE, MARKER_FILE}:
        with contextlib.suppress(OSError):
            (folder / LOG_FILE).unlink(missing_ok=True)
            (folder / MARKER_FILE).unlink(missing_ok=True)
            path.unlink()
            folder.rmdir()


def interrupted_start(folder: Path) -> bool:
    """Whether `folder`, a run folder without a readable run.json, is raylab's own: made by
    `run_lock` (its marker), or holding nothing but raylab's lock and log (as a run killed before
    it wrote anything leaves them; a lock of another format is not raylab's)."""
    marker = read_marker(folder)
    if marker is not None:
        return marker["kind"] == RUN_MARKER
    entries = {p.name for p in folder.iterdir()}
    lock = folder / LOCK_FILE
    return entries <= {LOCK_FILE, LOG_FILE} and (not lock.is_file() or lock.stat().st_size == 0
                                                 or _read_holder(lock) is not None)


def _read_holder(path: Path) -> dict | None:
    """The lock file's holder as `run_lock` writes it (pid, host, start), or None."""
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(holder, dict) and set(holder) == {"pid", "host", "started"} and \
        isinstance(holder["pid"], int) and isinstance(holder["host"], str)
    return holder if ok else None


def _holder(path: Path) -> str:
    holder = _read_holder(path)
    if holder is None:
        return "another process"
    return f"process {holder['pid']} on {holder['host']} (started {holder['started']})"
