"""Replacing an output folder whole, and only when it is ours to replace."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from raylab.errors import ConfigError


def check_replaceable(out: Path, markers: tuple[str, ...], what: str) -> None:
    """Refuse to overwrite a folder that is neither empty nor an earlier `what` (one holding a
    file named in `markers`): `--out data/corpus` must never delete the user's corpus."""
    if out.is_file():
        raise ConfigError(f"{out}: is a file; --out needs a folder for the {what}")
    if out.is_dir() and any(out.iterdir()) and not any((out / m).exists() for m in markers):
        raise ConfigError(f"{out}: exists and is not a {what} (no {' or '.join(markers)}); "
                          "choose another --out, or remove it first")


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
