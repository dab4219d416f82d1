"""How long a network transfer keeps trying: the one retry policy for every request hubctl makes (https
downloads and header reads, URL registries, the Hub's metadata), the line a user sees for each retry, and the
low-speed rule (curl's ``--speed-limit``/``--speed-time``) with a bound on the total time a transfer may stall.

Read at call time from the environment (README's table):

    HUBCTL_HTTP_RETRIES      tries without progress before giving up (default 5)
    HUBCTL_HTTP_BACKOFF      first delay between tries in seconds (default 0.5), doubling, at most 8 s, +-25%
    HUBCTL_HTTP_TIMEOUT      seconds one socket read or connect may wait (default 60)
    HUBCTL_HTTP_SPEED_LIMIT  bytes per second a transfer must keep up (default 1024; 0 turns the rule off) ...
    HUBCTL_HTTP_SPEED_TIME   ... over any window of this many seconds (default 30, or HUBCTL_HTTP_TIMEOUT when
                             smaller); slower, the connection is dropped and the transfer retried (resumed)
    HUBCTL_HTTP_STALL_MAX    seconds a transfer may spend stalled in all (slow windows, failed tries and the
                             waits between them) before it fails with exit 3 (default 120)

:class:`Budget` is one transfer's account (tries since the last progress, stalled seconds); :class:`Watch` is
the low-speed watchdog of one connection: a single daemon thread checks every watched connection and shuts down
the socket of one that falls below the limit, so a read blocked in any layer (headers, body, TLS) returns.

Owns no connection and builds no request (that is :mod:`hubctl.sources.http`); prints nothing itself: the
retry line goes through :func:`hubctl.progress.notice` (stderr, never with --json). Messages hold no token:
callers pass a redacted display name.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

from hubctl.display import plural
from hubctl.errors import SourceError

__all__ = ["Policy", "policy", "Budget", "Watch", "backoff"]


def _env_float(name: str, default: float) -> float:
    try:
        v = float(os.environ.get(name, "") or default)
    except ValueError:
        return default
    return v if v == v and v not in (float("inf"), float("-inf")) else default


@dataclass(frozen=True)
class Policy:
    """The retry and low-speed settings in force (see the module docstring)."""

    tries: int = 5
    first_delay: float = 0.5
    timeout: float = 60.0
    speed_limit: float = 1024.0
    speed_time: float = 30.0
    stall_max: float = 120.0


def policy() -> Policy:
    """The policy from the environment, read now."""
    timeout = max(0.1, _env_float("HUBCTL_HTTP_TIMEOUT", 60.0))
    speed_time = os.environ.get("HUBCTL_HTTP_SPEED_TIME")
    return Policy(
        tries=max(1, int(_env_float("HUBCTL_HTTP_RETRIES", 5))),
        first_delay=max(0.0, _env_float("HUBCTL_HTTP_BACKOFF", 0.5)),
        timeout=timeout,
        speed_limit=max(0.0, _env_float("HUBCTL_HTTP_SPEED_LIMIT", 1024.0)),
        speed_time=max(0.05, _env_float("HUBCTL_HTTP_SPEED_TIME", 30.0)) if speed_time else min(30.0, timeout),
        stall_max=max(0.0, _env_float("HUBCTL_HTTP_STALL_MAX", 120.0)),
    )


def backoff(first_delay: float, failures: int) -> float:
    """Exponential backoff with jitter: first_delay * 2**(failures-1), at most 8 s, then +-25%."""
    return min(8.0, first_delay * (2 ** (failures - 1))) * (0.75 + random.random() / 2)


def _seconds(s: float) -> str:
    """2 -> "2", 0.5 -> "0.5", 0.0123 -> "0.01", 12.3 -> "12"."""
    text = f"{s:.0f}" if s >= 10 else f"{s:.1f}" if s >= 1 else f"{s:.2f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) or "0"


class Budget:
    """One transfer's retry account: failures since the last progress (bounded by ``tries``) and the seconds it
    has stalled in all (bounded by ``stall_max``). Not shared between threads: each part of a download has its own."""

    def __init__(self, display: str, pol: Optional[Policy] = None) -> None:
        self.display = display
        self.policy = pol or policy()
        self.failures = 0
        self.stalled = 0.0

    def retry_or_raise(self, what: str, *, progressed: bool = False, stalled: float = 0.0,
                       final: Optional[str] = None, wait: float = 0.0) -> None:
        """After a failed try: raise SourceError (exit 3) when the budget is spent; else say so in one line
        ("retrying in 2 s (3/5): connection refused") and wait. ``progressed`` (the try moved the transfer on)
        gives back the tries; ``stalled`` is how long the try went without progress; ``final`` replaces ``what``
        in the message when giving up; ``wait`` is what the server asked for (Retry-After): the delay is at
        least that, within the stall bound."""
        p = self.policy
        if progressed:
            self.failures = 0
        self.failures += 1
        self.stalled += max(0.0, stalled)
        if self.failures >= p.tries:
            raise SourceError(f"{self.display}: {final or what} (gave up after {plural(p.tries, 'try', 'tries')})")
        if self.stalled >= p.stall_max:
            raise SourceError(f"{self.display}: {final or what} (gave up after stalling for {_seconds(self.stalled)} s "
                              f"in all; HUBCTL_HTTP_STALL_MAX={p.stall_max:g})")
        delay = min(max(backoff(p.first_delay, self.failures), wait), max(0.0, p.stall_max - self.stalled))
        from hubctl.progress import notice

        notice(f"{self.display}: retrying in {_seconds(delay)} s ({self.failures}/{p.tries}): {what}")
        time.sleep(delay)
        self.stalled += delay


# ------------------------------------------------------------------------------------------ low speed


class Watch:
    """The low-speed watchdog of one connection. ``attach(sock)`` once connected, ``add(n)`` for each body read,
    ``close()`` when done. When fewer than ``speed_limit`` bytes per second arrived over a window of ``speed_time``
    seconds (response headers count as no bytes: they must arrive within one window), the socket is shut down,
    ``too_slow`` is set and ``reason`` says why; the reader then sees its read end and reports ``reason``."""

    def __init__(self, pol: Optional[Policy] = None) -> None:
        self.policy = pol or policy()
        now = time.monotonic()
        self.started = now
        self.last_good = now
        self.received = 0
        self.too_slow = False
        self._mark = (now, 0)
        self._sock: Optional[socket.socket] = None

    @property
    def reason(self) -> str:
        p = self.policy
        return f"slower than {p.speed_limit:g} bytes/s for {_seconds(p.speed_time)} s (HUBCTL_HTTP_SPEED_LIMIT)"

    def attach(self, sock: Any) -> None:
        if self.policy.speed_limit <= 0 or sock is None:
            return
        self._sock = sock
        _monitor().add(self)

    def add(self, n: int) -> None:
        self.received += n

    def stalled(self) -> float:
        """Seconds since this connection last kept up the speed (or since it opened)."""
        return time.monotonic() - self.last_good

    def close(self) -> None:
        if self._sock is not None:
            _monitor().discard(self)
            self._sock = None

    def check(self, now: float) -> None:
        """Called by the monitor thread."""
        since, count = self._mark
        elapsed = now - since
        if elapsed < self.policy.speed_time:
            return
        if self.received - count >= self.policy.speed_limit * elapsed:
            self._mark = (now, self.received)
            self.last_good = now
            return
        self.too_slow = True
        sock = self._sock
        _monitor().discard(self)
        if sock is not None:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's: wakes a read in any layer
            except (OSError, TypeError):
                pass


class _Monitor(threading.Thread):
    """One daemon thread for the process: checks every watched connection a few times a second."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="hubctl-low-speed")
        self._watched: set[Watch] = set()
        self._cond = threading.Condition()

    def add(self, w: Watch) -> None:
        with self._cond:
            self._watched.add(w)
            self._cond.notify()

    def discard(self, w: Watch) -> None:
        with self._cond:
            self._watched.discard(w)

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._watched:
                    self._cond.wait()
                watched = list(self._watched)
                tick = max(0.02, min(0.25, min(w.policy.speed_time for w in watched) / 4))
            now = time.monotonic()
            for w in watched:
                w.check(now)
            time.sleep(tick)


_the_monitor: Optional[_Monitor] = None
_monitor_lock = threading.Lock()


def _monitor() -> _Monitor:
    global _the_monitor
    with _monitor_lock:
        if _the_monitor is None or not _the_monitor.is_alive():
            _the_monitor = _Monitor()
            _the_monitor.start()
        return _the_monitor
