"""A plain HTTP file server with Range, on 127.0.0.1, for tests and benchmarks.

Owns: the plain `RangeServer` that serves files from a folder and/or from paths added at run time, and its
standalone entry point. The HTTP machinery (ranged bodies, `Faults`, `Stats`) is tests/servers/http_base.py,
re-exported here. Must not: bind anything but 127.0.0.1, read whole large files into memory, or know about the
Hub (tests/servers/hub_server.py).

Routes of `RangeServer`:
  GET/HEAD /<path>              a file added with `add_file` or found under `root`
  GET/HEAD /redirect/<rest>     302 to the absolute URL of /<rest> (chains: /redirect/redirect/x)
  GET/HEAD /auth/<rest>         /<rest>, but only with `Authorization: Bearer <server.token>`
                                (no header: 401 + WWW-Authenticate; another token: 403)
  anything added with `add_redirect(path, target)` answers 302 to target.
  `replace_after(path, content, after=k)`: the first k GETs of `path` get what is there now, every later GET (and what
  follows it) the new content (with a new ETag): a file replaced on the server in the middle of a (parallel) download.
With `tls=True` the same port also speaks https (`https_url`; clients trust tests/servers/tls.py's `ca_file()`).
Missing files answer 404. Ranges: `bytes=a-b`, `bytes=a-`, `bytes=-n` -> 206 + Content-Range;
out of bounds -> 416 with `Content-Range: bytes */size`; a multi-range or malformed header is ignored
(200, full body, as RFC 9110 allows). `If-Range` with the current strong ETag (or Last-Modified date)
honours the Range, anything else gets the full body with 200.

Standalone, for benchmarks: `python -m tests.servers.range_server DIR [--port N]` prints the base URL
and serves DIR until interrupted (bodies go out through sendfile, several GB/s on loopback).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

from tests.servers.http_base import (
    CHUNK,
    BaseHandler,
    Entry,
    Faults,
    RequestRecord,
    Served,
    Stats,
    parse_range,
)

__all__ = ["CHUNK", "Entry", "Faults", "RangeServer", "RequestRecord", "Stats", "parse_range", "main"]


# ---------------------------------------------------------------------------------------- RangeServer
class _RangeHandler(BaseHandler):
    owner: RangeServer

    def route(self, method: str, path: str, query: str) -> None:
        srv: RangeServer = self.owner
        if method not in ("GET", "HEAD"):
            self.send_small(405, b"", content_type="text/plain")
            return
        if method == "GET":
            srv.count_get(path)
        target = srv.redirects.get(path)
        if target is not None:
            self.send_redirect(target)
            return
        if path.startswith("/redirect/"):
            rest = self.raw_path[len("/redirect"):]
            self.send_redirect(srv.url + rest + (f"?{query}" if query else ""))
            return
        token: str | None = None
        if path.startswith("/auth/"):
            token = srv.token
            path = path[len("/auth"):]
        entry = srv.lookup(path)
        if entry is None:
            if self.check_bearer(token):
                self.send_small(404, b"not found\n", content_type="text/plain")
            return
        if not self.check_bearer(token) or not self.check_bearer(entry.token):
            return
        self.send_entry(entry)


class RangeServer(Served):
    """Serve files over HTTP/1.1 with Range on 127.0.0.1 (see the module docstring for routes).

    `add_file(path, bytes | file path, token=None)` returns the file's URL; `faults` and `stats` are live.
    Use as a context manager or call start()/stop().
    """

    handler = _RangeHandler

    def __init__(self, root: str | os.PathLike[str] | None = None, *, port: int = 0, name: str = "range",
                 token: str = "test-token", tls: bool = False) -> None:
        self.root = Path(root).resolve() if root is not None else None
        self.name = name
        self.token = token
        self.faults = Faults()
        self.stats = Stats()
        self.files: dict[str, Entry] = {}
        self.redirects: dict[str, str] = {}
        self._replacements: dict[str, list] = {}  # path -> [GETs still served the old content, new Entry]
        self._lock = threading.Lock()
        self._want_port = port
        self._tls = tls
        self.url = ""
        self.https_url = ""

    def start(self) -> RangeServer:
        self._start_http(self._want_port, tls=self._tls)
        return self

    def stop(self) -> None:
        self._stop_http()

    def __enter__(self) -> RangeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def _norm(path: str) -> str:
        return "/" + path.lstrip("/")

    def add_file(self, path: str, content: bytes | str | os.PathLike[str], *, token: str | None = None,
                 etag: str | None = None, content_type: str = "application/octet-stream") -> str:
        """Serve `content` (bytes, or a file read at request time) at `path`; replaces what was there."""
        p = self._norm(path)
        entry = Entry.of(content, etag=etag, token=token, content_type=content_type)
        with self._lock:
            self.files[p] = entry
        return self.url + p

    def replace_after(self, path: str, content: bytes | str | os.PathLike[str], *, after: int = 1,
                      etag: str | None = None) -> None:
        """The first `after` GETs of `path` (counted from now) get what is there now; every later request
        gets `content` (a new ETag unless `etag`), as when a file is replaced on the server mid-download."""
        p = self._norm(path)
        with self._lock:
            self._replacements[p] = [after, Entry.of(content, etag=etag)]

    def count_get(self, path: str) -> None:
        """Called by the handler for each GET before it looks `path` up: applies a due `replace_after`."""
        with self._lock:
            pending = self._replacements.get(path)
            if pending is None:
                return
            if pending[0] <= 0:
                self.files[path] = pending[1]
                del self._replacements[path]
            else:
                pending[0] -= 1

    def remove_file(self, path: str) -> None:
        with self._lock:
            self.files.pop(self._norm(path), None)

    def add_redirect(self, path: str, target: str) -> str:
        """`path` answers 302 with Location `target` (absolute URL, or a path on this server)."""
        p = self._norm(path)
        with self._lock:
            self.redirects[p] = target if "://" in target else self.url + self._norm(target)
        return self.url + p

    def url_for(self, path: str) -> str:
        return self.url + self._norm(path)

    def lookup(self, path: str) -> Entry | None:
        with self._lock:
            entry = self.files.get(path)
        if entry is not None or self.root is None:
            return entry
        candidate = (self.root / path.lstrip("/")).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return Entry.of(candidate)

    def reset(self) -> None:
        """Faults off, counters zeroed (files stay)."""
        self.faults.reset()
        self.stats.reset()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve DIR over HTTP with Range on 127.0.0.1.")
    parser.add_argument("dir", type=Path)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = RangeServer(args.dir, port=args.port, name="bench").start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
