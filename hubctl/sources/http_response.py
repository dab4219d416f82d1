"""Reading an HTTP response, for :mod:`hubctl.sources.http`: the open :class:`Response` (connection,
response, URL after redirects), its body as a file-like stream cut at a limit, the parsing of
Content-Length / Content-Range / ETag values, and a few words for a transport error.

Owns no policy: must not open connections, follow redirects, retry, choose credentials or write into
a sink (all in :mod:`hubctl.sources.http`). Never puts a token in a message: a URL goes through ``redact``.
"""

from __future__ import annotations

import http.client
import io
import re
import socket
from dataclasses import dataclass
from typing import Any, Optional

from hubctl.errors import SourceError, redact

__all__ = ["Response"]


@dataclass
class Response:
    """An open response (body not read), the URL it came from after redirects, and the low-speed watchdog of
    its connection (:class:`hubctl.sources.retry.Watch`: told of each body read, closed with the response)."""

    conn: http.client.HTTPConnection
    resp: http.client.HTTPResponse
    url: str
    watch: Any = None

    @property
    def status(self) -> int:
        return self.resp.status

    def header(self, name: str) -> Optional[str]:
        return self.resp.getheader(name)

    def close(self) -> None:
        try:
            self.resp.close()
        finally:
            self.conn.close()
            if self.watch is not None:
                self.watch.close()

    def read_error(self, e: Optional[BaseException] = None) -> Optional[str]:
        """Why reading the body stopped: the watchdog's reason when it cut the connection, else a few words
        for ``e`` (None when there is neither)."""
        if self.watch is not None and self.watch.too_slow:
            return str(self.watch.reason)
        return _describe(e) if e is not None else None


class _BodyStream(io.RawIOBase):
    """A response body as a file-like object (``read(n)`` returns n bytes unless the body ends) that
    closes its connection; ``limit`` caps how much is read. ``status``, ``headers`` and ``final_url`` (after
    redirects) describe the answer."""

    def __init__(self, r: Response, limit: Optional[int]) -> None:
        self._r = r
        self._left = limit

    @property
    def status(self) -> int:
        return self._r.status

    @property
    def headers(self) -> Any:
        return self._r.resp.headers

    @property
    def final_url(self) -> str:
        return self._r.url

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        mv = memoryview(b).cast("B")
        if self._left is not None:
            mv = mv[: self._left]
        if not len(mv) or self._r.resp.isclosed():
            return 0
        try:
            n = self._r.resp.readinto(mv) or 0
        except (OSError, http.client.HTTPException) as e:
            raise SourceError(f"{redact(self._r.url)}: {self._r.read_error(e)}") from None
        if not n and self._r.watch is not None and self._r.watch.too_slow:
            raise SourceError(f"{redact(self._r.url)}: {self._r.read_error()}")
        if self._r.watch is not None:
            self._r.watch.add(n)
        if self._left is not None:
            self._left -= n
        return n

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self.readall()
        out = bytearray(n)
        got = 0
        while got < n:
            k = self.readinto(memoryview(out)[got:])
            if not k:
                break
            got += k
        del out[got:]
        return bytes(out)

    def close(self) -> None:
        if not self.closed:
            self._r.close()
        super().close()


def _describe(e: BaseException) -> str:
    if isinstance(e, http.client.IncompleteRead):
        return "connection closed mid-body"
    if isinstance(e, http.client.RemoteDisconnected):
        return "server closed the connection"
    if isinstance(e, socket.timeout):
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve host ({e.strerror})"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower()
    return type(e).__name__


def _int(v: Optional[str]) -> Optional[int]:
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def _start_from_content_range(v: Optional[str]) -> Optional[int]:
    m = re.match(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)", v or "")
    return int(m.group(1)) if m else None


def _total_from_content_range(v: Optional[str]) -> Optional[int]:
    m = re.match(r"\s*bytes\s+(?:\*|\d+-\d+)/(\d+)", v or "")
    return int(m.group(1)) if m else None


def _sha_from_etag(etag: str) -> Optional[str]:
    s = etag.strip().strip('"').lower()
    if s.startswith("w/"):
        return None
    return s if re.fullmatch(r"[0-9a-f]{64}", s) else None
