"""Writing files and folders whole: the one atomic writer, and replacing an output folder only
when it is ours to replace.

Every file raylab writes goes through `write_atomic` (or `atomic_path` for writers that want a
path, such as `savefig`, `to_parquet`, `torch.save`): it is written under a temporary name unique to
the writer (`temp_name`), then renamed into place, so a reader never sees half a file and two
writers never share a temporary file.

A folder raylab writes whole (a dataset, an analysis folder, the demo corpus) gets a marker file,
`.raylab-folder`: JSON with the key `"raylab_folder": "v1"`, the kind of folder and the names of
the entries written with it. `--out DIR` replaces an existing DIR only when it is empty, or holds a
marker of the same kind and no entry besides the marker's, the kind's `known` names (files a later
command adds, like a dataset's feature files) and the marker itself. A folder written before the
marker existed is replaced when the kind's `legacy` rule accepts its entries (e.g. exactly files
raylab writes). Anything else is refused, naming the folder and the entries raylab did not write:
one file named `meta.json` among a user's files no longer makes a folder ours.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Collection, Iterator

from raylab.errors import ConfigError

MARKER_FILE = ".raylab-folder"
MARKER_KEY, MARKER_VERSION = "raylab_folder", "v1"


def temp_name(name: str) -> str:
    """A hidden name beside `name`, unique to this writer: `.<name>.tmp-<8 hex digits>`."""
    return f".{name}.tmp-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed to `path` when the block succeeds,
    removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(temp_name(path.name))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write a whole file (text or bytes) under a temporary name, then rename it into place."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)
    return Path(path)


@contextlib.contextmanager
def staged_folder(out: Path, kind: str) -> Iterator[Path]:
    """A temporary folder beside `out` that, marked as a `kind` folder, replaces `out` whole when
    the block succeeds; removed when it fails."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / temp_name(out.name)
    tmp.mkdir()
    try:
        yield tmp
        write_marker(tmp, kind)
        replace_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_marker(folder: Path, kind: str) -> None:
    """Mark `folder` (complete, not yet in place) as a `kind` folder raylab wrote, listing its entries."""
    entries = sorted(p.name for p in folder.iterdir() if p.name != MARKER_FILE)
    doc = {MARKER_KEY: MARKER_VERSION, "kind": kind, "entries": entries}
    write_atomic(folder / MARKER_FILE, json.dumps(doc, indent=2) + "\n")


def read_marker(folder: Path) -> dict | None:
    """The marker of `folder`, or None when it has none (or a file of that name raylab did not write)."""
    try:
        doc = json.loads((folder / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(doc, dict) and doc.get(MARKER_KEY) == MARKER_VERSION and \
        isinstance(doc.get("kind"), str) and isinstance(doc.get("entries"), list)
    return doc if ok else None


def check_replaceable(out: Path, kind: str, what: str, *, known: Collection[str] = (),
                      legacy: Callable[[set[str]], bool] | None = None) -> None:
    """Refuse to replace `out` unless it is missing, empty, or a `kind` folder holding nothing that
    raylab did not write (see the module docstring): `--out` must never delete a user's files."""
    if out.is_file():
        raise ConfigError(f"{out}: is a file; --out needs a folder for the {what}")
    if not out.is_dir():
        return
    entries = {p.name for p in out.iterdir()}
    if not entries:
        return
    marker = read_marker(out)
    if marker is None:
        if legacy is not None and legacy(entries):
            return
        raise ConfigError(f"{out}: exists and is not a {what} raylab may replace (no {MARKER_FILE}; "
                          f"holds {_listing(entries)}); choose another --out, or remove it first")
    if marker["kind"] != kind:
        raise ConfigError(f"{out}: is a raylab {marker['kind']} folder, not a {what}; choose "
                          "another --out")
    foreign = entries - set(marker["entries"]) - set(known) - {MARKER_FILE}
    if foreign:
        raise ConfigError(f"{out}: a {what}, but it also holds {_listing(foreign)}, which raylab "
                          "did not write; move that out, or choose another --out")


def _listing(names: Collection[str], limit: int = 5) -> str:
    ordered = sorted(names)
    more = f" and {len(ordered) - limit} more" if len(ordered) > limit else ""
    return ", ".join(ordered[:limit]) + more


def replace_folder(tmp: Path, out: Path) -> Path:
    """Move the finished folder `tmp` to `out`, replacing an older `out` only at the last step."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out
