"""What a person sees while a command runs: raylab's own lines and progress bars, nothing else.

`quiet(log_file, verbose)` sends what Ray, Tune and the libraries print (their loggers, the
workers' lines Ray forwards to the driver, Tune's status tables, anything written to the
process's stdout and stderr, C++ glog lines included) to the log file, and keeps the terminal for
`say` and `progress`; `--verbose` leaves everything live. A warning raylab itself logs (a real
problem: `raylab.*`/`analysis.*` loggers, Python warnings raised in their code) stays on the
terminal, once; errors that Ray logs are counted in the closing line that names the log file.

`progress(total, desc, unit)` is a tqdm bar with ETA on a terminal; elsewhere (CI, pipes, files)
the same text as a plain line at most every `PLAIN_EVERY` seconds, plus the first and the last.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import IO, Any, Iterator

from raylab.errors import RaylabError

PLAIN_EVERY = 30.0  # seconds between two plain progress lines off a terminal
OWN_PACKAGES = ("raylab", "analysis")
_streams: dict[str, IO[str]] = {}  # the terminal's streams while `quiet` is in force


def stream(name: str = "stderr") -> IO[str]:
    """The console's stdout or stderr: the terminal's while `quiet` holds the process's, else
    `sys.<name>` as it is now."""
    return _streams.get(name) or getattr(sys, name)


def say(line: str, name: str = "stderr") -> None:
    """One line on the console (above a running bar, which tqdm redraws below it)."""
    from tqdm import tqdm

    tqdm.write(line, file=stream(name))


class Progress:
    """A step's progress: `advance`/`set` the count, `note` the postfix (refreshed with the next
    count), `close` prints the last state. Off a terminal the bar is an occasional plain line."""

    def __init__(self, total: int | None, desc: str, unit: str, initial: int = 0,
                 out: IO[str] | None = None) -> None:
        from tqdm import tqdm

        out = out or stream()
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.out, self.last_line, self.printed = out, "", 0.0
        fmt = ("{desc}: {n_fmt}/{total_fmt} " + unit + " |{bar}| {elapsed} elapsed, ETA "
               "{remaining}{postfix}") if total else "{desc}: {n_fmt} " + unit + " {elapsed}{postfix}"
        if not self.tty:
            fmt = fmt.replace(" |{bar}|", "")
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, bar_format=fmt,
                        file=out if self.tty else _Discard(), dynamic_ncols=self.tty,
                        mininterval=0.5 if self.tty else 0.0, maxinterval=3600.0, leave=True,
                        delay=0, smoothing=0.1)
        self._plain(force=True)

    @property
    def n(self) -> int:
        return self.bar.n

    def advance(self, count: int = 1) -> None:
        self.bar.update(count)
        self._plain()

    def set(self, count: int) -> None:
        if count != self.bar.n:
            self.bar.update(count - self.bar.n)
        self._plain()

    def note(self, text: str) -> None:
        self.bar.set_postfix_str(text, refresh=self.tty)

    def write(self, line: str) -> None:
        self.bar.write(line, file=self.out)

    def close(self) -> None:
        if self.tty:
            self.bar.refresh()
        self.bar.close()
        self._plain(force=True)

    def _plain(self, force: bool = False) -> None:
        if self.tty:
            return
        now = time.monotonic()
        if not force and now - self.printed < PLAIN_EVERY:
            return
        line = self.bar.format_meter(**{**self.bar.format_dict, "ncols": None}).strip()
        if line and line != self.last_line:
            self.out.write(line + "\n")
            self.out.flush()
            self.last_line, self.printed = line, now

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(total: int | None, desc: str, unit: str, initial: int = 0,
             out: IO[str] | None = None) -> Progress:
    return Progress(total, desc, unit, initial, out)


class CountBar:
    """A `progress(done, total)` callback (the form library functions take) drawing a bar from its
    first call; nothing when it is never called (nothing to do)."""

    def __init__(self, desc: str, unit: str) -> None:
        self.desc, self.unit = desc, unit
        self.bar: Progress | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = progress(total, self.desc, self.unit)
        self.bar.set(done)

    def __enter__(self) -> "CountBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()


class _Discard:
    """Where tqdm draws when the console is not a terminal (`Progress` prints the lines)."""

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


class _OwnWarnings(logging.Handler):
    """Warnings of raylab's own loggers on the console, each message once; the others' into the
    log, errors counted for the closing line. Sits on the root logger and on Ray's (which does
    not propagate)."""

    def __init__(self, log: IO[str]) -> None:
        super().__init__(logging.WARNING)
        self.log = log
        self.seen: set[str] = set()
        self.errors = 0
        self.last: logging.LogRecord | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record is self.last:  # seen on Ray's logger and again on the root
            return
        self.last = record
        message = record.getMessage()
        if record.name.split(".")[0] in OWN_PACKAGES:
            if message not in self.seen:
                self.seen.add(message)
                say(f"raylab: {record.levelname.lower()}: {message}")
            return
        self.errors += record.levelno >= logging.ERROR
        ray_writes = record.name.split(".")[0] == "ray" and any(
            h is not self for h in logging.getLogger("ray").handlers)  # Ray's handler: the log
        if not ray_writes:
            self.log.write(f"{record.levelname} {record.name}: {message}\n")


def _own_copy(current: IO[str]) -> IO[str]:
    """A stream to the console that survives the process's fds being pointed at the log: a
    duplicate of the stream's fd, or the stream itself when it has none (a test's capture)."""
    try:
        fd = current.fileno()
    except (AttributeError, OSError, ValueError):
        return current
    current.flush()
    return open(os.dup(fd), "w", buffering=1, encoding=getattr(current, "encoding", None) or "utf-8",
                errors="replace")


@contextlib.contextmanager
def quiet(log_file: str | os.PathLike | None, verbose: bool = False) -> Iterator[Path | None]:
    """Everything but raylab's console lines into `log_file` (appended) while the block runs;
    one closing line names it. With `verbose` (or no file) nothing changes."""
    if verbose or log_file is None or _streams:
        yield None
        return
    path = Path(log_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    log = open(path, "a", buffering=1, encoding="utf-8", errors="replace")
    log.write(f"---- {time.strftime('%Y-%m-%d %H:%M:%S')} raylab {' '.join(sys.argv[1:])}\n")
    terminal = {name: _own_copy(getattr(sys, name)) for name in ("stdout", "stderr")}
    before = {name: getattr(sys, name) for name in ("stdout", "stderr")}
    saved_fds = {}
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            saved_fds[fd] = os.dup(fd)
            os.dup2(log.fileno(), fd)
    handlers = _retarget_handlers(set(map(id, before.values())), log)
    own = _OwnWarnings(log)
    loggers = (logging.getLogger(), logging.getLogger("ray"))
    for logger in loggers:
        logger.addHandler(own)
    shown = warnings.showwarning
    warnings.showwarning = _show_warning(log)
    _streams.update(terminal)
    sys.stdout = sys.stderr = log
    refused = False
    try:
        yield path
    except RaylabError:
        refused = True  # raylab's own one-line error says it all; the log adds nothing
        raise
    finally:
        for name, value in before.items():
            setattr(sys, name, value)
        _streams.clear()
        warnings.showwarning = shown
        for logger in loggers:
            logger.removeHandler(own)
        for handler, old in handlers:
            handler.setStream(old)
        log.flush()
        for fd, copy in saved_fds.items():
            os.dup2(copy, fd)
            os.close(copy)
        log.close()
        errors = f" (Ray logged {own.errors} error{'s' * (own.errors != 1)})" if own.errors else ""
        if not refused:
            print(f"log: {path}{errors}", file=terminal["stderr"], flush=True)
        for name, copy in terminal.items():
            if copy is not before[name]:
                copy.close()


def _retarget_handlers(streams: set[int], log: IO[str]) -> list[tuple[logging.StreamHandler, Any]]:
    """Point the logging handlers that write to the console streams (Ray's, set up when it was
    imported) at the log, returning them with their streams."""
    loggers = [logging.getLogger(), *(lg for lg in logging.root.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger))]
    changed = []
    for logger in loggers:
        for handler in logger.handlers:
            if (isinstance(handler, logging.StreamHandler)
                    and not isinstance(handler, logging.FileHandler)
                    and id(handler.stream) in streams):
                changed.append((handler, handler.setStream(log)))
    return changed


def _show_warning(log: IO[str]):
    """Python warnings raised in raylab's code on the console (once per place, Python's
    default); the libraries' into the log."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        parts = Path(filename).parts
        own = any(pkg in parts for pkg in OWN_PACKAGES) and "site-packages" not in parts
        if own:
            say(f"raylab: warning: {message}")
        else:
            log.write(warnings.formatwarning(message, category, filename, lineno, line))

    return show
