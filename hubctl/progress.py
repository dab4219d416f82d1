"""Progress: rich bars with bytes, rate and ETA (transfers) or steps (a generation) on a terminal; no bars otherwise.

``make_progress(enabled)`` returns an object with ``task(label, total) -> Task`` (``Task.advance(n)``,
``Task.done()``), ``note(text)`` and ``close()``; it is a context manager and thread-safe. Bars go to
stderr and only when stderr is a terminal and ``enabled`` (the CLI passes ``not --json``), so piped or
machine-readable runs stay quiet. Notes (``note(text)``, and :func:`notice` from deep inside a transfer, e.g. a
retry) are one line each on stderr whenever ``enabled``, terminal or not; never with --json. Knows nothing about
what is being transferred.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Optional

__all__ = ["make_progress", "notice", "Task", "ProgressSink"]

_active: list["ProgressSink"] = []  # the enabled sinks in use (entered), innermost last
_active_lock = threading.Lock()


def notice(text: str) -> None:
    """One line for the user from code that holds no progress sink (a source retrying): shown by the innermost
    enabled sink in use; nothing when there is none (--json, library calls)."""
    with _active_lock:
        sink = _active[-1] if _active else None
    if sink is not None:
        sink.note(text)


class Task:
    """One bar (or nothing)."""

    def __init__(self, owner: Optional["ProgressSink"] = None, task_id: Any = None) -> None:
        self._owner = owner
        self._id = task_id

    def advance(self, n: int) -> None:
        if self._owner is not None:
            self._owner._advance(self._id, n)

    def done(self) -> None:
        if self._owner is not None:
            self._owner._done(self._id)


class ProgressSink:
    """The silent progress: every call is a no-op. Subclassed by the rich one."""

    def task(self, label: str, total: Optional[int]) -> Task:
        return Task()

    def note(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass

    def _advance(self, task_id: Any, n: int) -> None:
        pass

    def _done(self, task_id: Any) -> None:
        pass

    shows_notes = False

    def __enter__(self) -> "ProgressSink":
        if self.shows_notes:
            with _active_lock:
                _active.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.shows_notes:
            with _active_lock:
                for i in range(len(_active) - 1, -1, -1):
                    if _active[i] is self:
                        del _active[i]
                        break
        self.close()


class _LineSink(ProgressSink):
    """Enabled, but stderr is not a terminal: no bars; each note is one plain line on stderr."""

    shows_notes = True

    def note(self, text: str) -> None:
        try:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


class _RichProgress(ProgressSink):
    shows_notes = True

    def __init__(self, unit: str = "bytes") -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._console = Console(file=sys.stderr)
        counts = (DownloadColumn(), TransferSpeedColumn()) if unit == "bytes" else (MofNCompleteColumn(), TimeElapsedColumn())
        self._p = Progress(
            TextColumn("{task.description}", style="cyan"),
            BarColumn(),
            *counts,
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._lock = threading.Lock()
        self._started = False

    def _start(self) -> None:
        with self._lock:
            if not self._started:
                self._p.start()
                self._started = True

    def task(self, label: str, total: Optional[int]) -> Task:
        from rich.markup import escape

        from hubctl.display import safe

        self._start()
        return Task(self, self._p.add_task(escape(safe(label)), total=total))  # labels are file names from data

    def note(self, text: str) -> None:
        from rich.markup import escape

        from hubctl.display import safe

        self._start()
        self._p.console.print(escape(safe(text)))

    def _advance(self, task_id: Any, n: int) -> None:
        self._p.advance(task_id, n)

    def _done(self, task_id: Any) -> None:
        t = next((t for t in self._p.tasks if t.id == task_id), None)
        if t is not None and t.total is not None:
            self._p.update(task_id, completed=t.total)

    def close(self) -> None:
        with self._lock:
            if self._started:
                self._p.stop()
                self._started = False


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def make_progress(enabled: bool | ProgressSink = True, *, unit: str = "bytes") -> ProgressSink:
    """Rich bars when ``enabled`` and stderr is a terminal; plain note lines when ``enabled`` otherwise; else the
    silent sink. A ProgressSink passed in is returned as it is. ``unit``: "bytes" (size, rate) or "steps"
    (n/total, elapsed)."""
    if isinstance(enabled, ProgressSink):
        return enabled
    if enabled and _stderr_is_tty():
        return _RichProgress(unit)
    return _LineSink() if enabled else ProgressSink()
