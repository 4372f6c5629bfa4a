"""One process per run name at a time: an advisory lock on `<results>/<name>/.lock`.

`fcntl.flock` ties the lock to the open file, so it dies with the process that holds it (Ctrl-C,
SIGKILL, a lost machine: no stale lock to clear by hand). The file holds the holder's pid, host
and start time, which the refusal names. On a shared results folder (NFS) flock reaches other
machines where the mount supports it.
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


@contextlib.contextmanager
def run_lock(results: Path, name: str) -> Iterator[Path]:
    """Hold the lock of run `name` for the block; refuse when another process holds it."""
    from raylab.runtime.settings import check_run_name

    folder = Path(results) / check_run_name(name)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
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
    if created and {p.name for p in folder.iterdir()} <= {LOCK_FILE, LOG_FILE}:
        with contextlib.suppress(OSError):
            (folder / LOG_FILE).unlink(missing_ok=True)
            path.unlink()
            folder.rmdir()


def _holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text())
        return f"process {holder['pid']} on {holder['host']} (started {holder['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
