"""HTTP machinery shared by the test servers (tests/servers/range_server.py and hub_server.py).

Owns: ranged file bodies (Range `bytes=a-b` / `a-` / `-n`, 206 + Content-Range, 416, ETag / Last-Modified /
If-Range, HEAD), fault injection through a thread-safe `Faults` object, request and byte accounting through
`Stats`, a threaded HTTP/1.1 server bound to 127.0.0.1 that can drop its open connections (and, with `tls=True`,
speaks https and plain http on the same port: tests/servers/tls.py), and start/stop plumbing. Must not: bind anything but 127.0.0.1, read whole large files into memory, or know any routes
(the servers built on it own those).
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import socket
import ssl
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

__all__ = [
    "BaseHandler",
    "Entry",
    "Faults",
    "LoopbackHTTPServer",
    "RequestRecord",
    "Served",
    "Stats",
    "parse_range",
]

CHUNK = 1 << 20
SMALL_PIECE = 16 << 10
HOST = "127.0.0.1"


# --------------------------------------------------------------------------------------------- faults
@dataclass
class Faults:
    """Fault knobs, settable from a test while the server runs (counters are taken under a lock).

    Body faults apply to file bodies (GET of a file); `fail_times` and `delay` apply to any request.
    `path`, when set, limits every fault to request paths that start with it.

      cut_at=N        close the connection once the body reaches absolute file offset N (for a full
                      GET: after N body bytes; a ranged GET starting at or past N is not cut).
      cut_times=k     how many responses get cut (default 1; None = every one).
      ignore_range    always answer 200 with the full body, no Accept-Ranges (sent in 16 KiB pieces through a
                      small socket buffer, so `bytes_sent` shows about what an early-closing client pulled).
      fail_times=k    answer `fail_status` (default 503) to the next k requests whose method is in
                      `fail_methods` (default GET only), then behave.
      wrong_length=d  Content-Length claims d bytes more (negative: fewer) than the body; the real body is
                      sent (cut to the claimed length when shorter) and the connection closed. True = +1.
      flip_byte=off   the byte at absolute file offset `off` is served XOR 0xFF (every response).
      delay=s         sleep s seconds before answering each request.
      rate=bps        send file bodies at about `rate` bytes per second (for kill-mid-download tests).
      hide_length=(m,...)  responses to these methods carry no Content-Length (a GET body then ends when the
                      server closes the connection, so a cut is indistinguishable from the end on the wire).
      redirect_to=P   answer 302 with Location P + the request's path and query (P: "http://127.0.0.1:1234",
                      "ftp://host:port", another scheme on the same port, ...), `redirect_times` times
                      (default 1; None = every request).
      drip_headers=s  send the status line and headers one byte every s seconds (a slow-drip server).
      vary_etag       every answer carries another ETag (as some CDNs do between HEAD and GET); If-Range with
                      any of them fails.
    """

    cut_at: int | None = None
    cut_times: int | None = 1
    ignore_range: bool = False
    fail_times: int = 0
    fail_status: int = 503
    fail_methods: tuple[str, ...] = ("GET",)
    wrong_length: int = 0
    flip_byte: int | None = None
    delay: float = 0.0
    rate: int | None = None
    hide_length: tuple[str, ...] = ()
    redirect_to: str | None = None
    redirect_times: int | None = 1
    drip_headers: float = 0.0
    vary_etag: bool = False
    path: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def set(self, **knobs: Any) -> Faults:
        """Set several knobs at once (unknown names raise); returns self."""
        with self._lock:
            for name, value in knobs.items():
                if name.startswith("_") or not hasattr(self, name):
                    raise AttributeError(f"unknown fault knob {name!r}")
                setattr(self, name, value)
        return self

    def reset(self) -> None:
        """Back to a well-behaved server."""
        fresh = Faults()
        with self._lock:
            for name in self.__dataclass_fields__:
                if not name.startswith("_"):
                    setattr(self, name, getattr(fresh, name))

    def applies(self, path: str) -> bool:
        return self.path is None or path.startswith(self.path)

    def take_failure(self, method: str, path: str) -> int | None:
        """The status to fail this request with, or None; consumes one of `fail_times`."""
        with self._lock:
            if self.fail_times > 0 and method in self.fail_methods and self.applies(path):
                self.fail_times -= 1
                return self.fail_status
        return None

    def take_redirect(self, path: str) -> str | None:
        """The prefix to redirect this request to, or None; consumes one of `redirect_times`."""
        with self._lock:
            if self.redirect_to is None or not self.applies(path):
                return None
            if self.redirect_times is not None:
                if self.redirect_times <= 0:
                    return None
                self.redirect_times -= 1
            return self.redirect_to

    def etag_for(self, etag: str, path: str) -> str:
        """The ETag to send for an entry whose own is `etag` (another one each time with `vary_etag`)."""
        with self._lock:
            if not (self.vary_etag and self.applies(path)):
                return etag
            self._etags = getattr(self, "_etags", 0) + 1
            return f'"{etag.strip(chr(34))}-{self._etags}"'

    def take_cut(self, path: str, start: int, stop: int) -> int | None:
        """For a body covering file offsets [start, stop): how many bytes to send before cutting, or None."""
        with self._lock:
            cut = self.cut_at
            if cut is None or not self.applies(path) or not (start < cut < stop or (start == 0 == cut < stop)):
                return None
            if self.cut_times is not None:
                if self.cut_times <= 0:
                    return None
                self.cut_times -= 1
            return cut - start


# ---------------------------------------------------------------------------------------------- stats
class RequestRecord(NamedTuple):
    """One answered request: what was asked and the status given."""

    method: str
    path: str
    range: str | None
    status: int
    server: str
    headers: dict[str, str]  # request headers, names lower-cased (e.g. "authorization")
    scheme: str = "http"  # "https" when the request came over TLS


class Stats:
    """Requests seen and body bytes sent, per path (query strings stripped). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[RequestRecord] = []
        self.bytes_sent: dict[str, int] = defaultdict(int)

    def record(self, rec: RequestRecord) -> None:
        with self._lock:
            self.requests.append(rec)

    def add_bytes(self, path: str, n: int) -> None:
        with self._lock:
            self.bytes_sent[path] += n

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.bytes_sent.clear()

    @property
    def calls(self) -> list[tuple[str, str, str | None]]:
        """(method, path, range header) of every request, in order."""
        with self._lock:
            return [(r.method, r.path, r.range) for r in self.requests]

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(self.bytes_sent.values())

    def count(self, method: str | None = None, path: str | None = None, server: str | None = None) -> int:
        """Requests matching method, path (exact, or a prefix when it ends with '/') and server name."""
        return len(self.matching(method, path, server))

    def matching(self, method: str | None = None, path: str | None = None,
                 server: str | None = None) -> list[RequestRecord]:
        with self._lock:
            reqs = list(self.requests)
        out = []
        for r in reqs:
            if method is not None and r.method != method:
                continue
            if server is not None and r.server != server:
                continue
            if path is not None and not (r.path == path or (path.endswith("/") and r.path.startswith(path))):
                continue
            out.append(r)
        return out


# -------------------------------------------------------------------------------------------- entries
@dataclass
class Entry:
    """A servable body: in-memory bytes or a file on disk, with its validators."""

    size: int
    etag: str  # quoted, strong
    last_modified: float
    data: bytes | None = None
    file: Path | None = None
    token: str | None = None
    content_type: str = "application/octet-stream"

    @classmethod
    def of(cls, content: bytes | str | os.PathLike[str], *, etag: str | None = None,
           token: str | None = None, content_type: str = "application/octet-stream") -> Entry:
        if isinstance(content, (bytes, bytearray, memoryview)):
            data = bytes(content)
            tag = etag or hashlib.sha256(data).hexdigest()[:40]
            return cls(len(data), _quote(tag), time.time(), data=data, token=token, content_type=content_type)
        path = Path(content)
        st = path.stat()
        tag = etag or f"{st.st_size:x}-{st.st_mtime_ns:x}"
        return cls(st.st_size, _quote(tag), st.st_mtime, file=path, token=token, content_type=content_type)


def _quote(tag: str) -> str:
    return tag if tag.startswith('"') else f'"{tag}"'


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """A single byte range -> (first, last) inclusive; 'unsatisfiable'; or None to ignore the header."""
    value = header.strip()
    if not value.lower().startswith("bytes="):
        return None
    spec = value[6:].strip()
    if "," in spec or "-" not in spec:
        return None
    first_s, last_s = (p.strip() for p in spec.split("-", 1))
    try:
        if first_s == "":
            n = int(last_s)
            if n < 0:
                return None
            if n == 0 or size == 0:
                return "unsatisfiable"
            return max(0, size - n), size - 1
        first = int(first_s)
        last = int(last_s) if last_s else size - 1
    except ValueError:
        return None
    if first < 0 or (last_s and last < first):
        return None
    if first >= size:
        return "unsatisfiable"
    return first, min(last, size - 1)


# -------------------------------------------------------------------------------------- the machinery
class LoopbackHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer on 127.0.0.1 that knows its owner and can drop every open connection."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    max_threads = 64  # at most this many requests handled at once; more wait in the accept backlog

    def __init__(self, handler: type[BaseHTTPRequestHandler], owner: Any, port: int = 0,
                 tls: ssl.SSLContext | None = None) -> None:
        super().__init__((HOST, port), handler)
        self.owner = owner
        self.tls = tls
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_threads)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(request)
            self._slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """With `tls`, a connection whose first byte opens a TLS handshake is served over TLS, any other as
        plain HTTP: one port answers both https:// and http:// (so a redirect can change only the scheme)."""
        if self.tls is not None:
            try:
                request.settimeout(BaseHandler.timeout)
                first = request.recv(1, socket.MSG_PEEK)
            except OSError:
                return
            if first == b"\x16":
                with self._conns_lock:
                    self._conns.discard(request)
                try:
                    request = self.tls.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError):
                    return
                with self._conns_lock:
                    self._conns.add(request)
                try:
                    self.RequestHandlerClass(request, client_address, self)
                finally:
                    with self._conns_lock:
                        self._conns.discard(request)
                    request.close()
                return
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-reply (what the fault tests provoke) is expected: keep it out of stderr,
        where it would land in the output of the in-process CLI under test. It is counted in the owner's
        stats when those have an error list."""
        errors = getattr(getattr(self.owner, "stats", None), "errors", None)
        if isinstance(errors, list):
            import sys

            errors.append(repr(sys.exc_info()[1]))

    def drop_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class BaseHandler(BaseHTTPRequestHandler):
    """Shared request handling: faults, stats, small replies and ranged file bodies.

    Subclasses implement `route(method, path, query)`; `path` is percent-decoded, `self.raw_path` is not.
    """

    protocol_version = "HTTP/1.1"
    timeout = 30
    server: LoopbackHTTPServer
    server_version = "hubctl-test"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
        return

    # The owner (RangeServer or HubServer) carries .faults, .stats and .name.
    @property
    def owner(self) -> Any:
        return self.server.owner

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        self.request_body = self.rfile.read(length) if length else b""
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        self.raw_path = split.path
        self.query = split.query
        self.req_path = unquote(split.path)
        self.method = method
        faults: Faults = self.owner.faults
        try:
            if faults.delay and faults.applies(self.req_path):
                time.sleep(faults.delay)
            status = faults.take_failure(method, self.req_path)
            if status is not None:
                self.send_small(status, f"injected failure {status}\n".encode(), content_type="text/plain")
                return
            prefix = faults.take_redirect(self.req_path)
            if prefix is not None:
                self.send_redirect(prefix.rstrip("/") + self.raw_path + (f"?{self.query}" if self.query else ""))
                return
            self.route(method, self.req_path, self.query)
        except (BrokenPipeError, ConnectionResetError, socket.timeout, ssl.SSLError):
            self.close_connection = True

    @property
    def scheme(self) -> str:
        return "https" if isinstance(self.connection, ssl.SSLSocket) else "http"

    def route(self, method: str, path: str, query: str) -> None:
        raise NotImplementedError

    def send_response(self, code: int, message: str | None = None) -> None:
        method = getattr(self, "method", None) or self.command or "?"
        path = getattr(self, "req_path", None) or self.path or "?"
        msg = getattr(self, "headers", None)
        headers = {k.lower(): v for k, v in msg.items()} if msg is not None else {}
        rng = msg.get("Range") if msg is not None else None
        self.owner.stats.record(RequestRecord(method, path, rng, code, self.owner.name, headers, self.scheme))
        super().send_response(code, message)

    def flush_headers(self) -> None:
        """With `drip_headers`, the status line and headers go out one byte at a time (a slow-drip server)."""
        faults: Faults = self.owner.faults
        drip = faults.drip_headers if faults.applies(getattr(self, "req_path", "") or "") else 0.0
        if not drip or not getattr(self, "_headers_buffer", None):
            super().flush_headers()
            return
        data = b"".join(self._headers_buffer)
        self._headers_buffer = []
        for i in range(len(data)):
            self.wfile.write(data[i:i + 1])
            self.wfile.flush()
            time.sleep(drip)

    # ---- small replies
    def send_small(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                   content_type: str = "application/json") -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.method != "HEAD" and body:
            self.wfile.write(body)

    def send_redirect(self, location: str, status: int = 302, headers: dict[str, str] | None = None) -> None:
        self.send_small(status, b"", {"Location": location, **(headers or {})}, content_type="text/plain")

    def check_bearer(self, token: str | None) -> bool:
        """True when `token` is None or the request carries it; otherwise answers 401/403 and returns False."""
        if token is None:
            return True
        auth = self.headers.get("Authorization")
        if not auth:
            self.send_small(401, b"authentication required\n", {"WWW-Authenticate": 'Bearer realm="test"'},
                            content_type="text/plain")
            return False
        if auth != f"Bearer {token}":
            self.send_small(403, b"forbidden\n", content_type="text/plain")
            return False
        return True

    # ---- file bodies
    def if_range_ok(self, entry: Entry) -> bool:
        value = self.headers.get("If-Range")
        if value is None:
            return True
        value = value.strip()
        if value.startswith(('"', "W/")):
            return value == entry.etag
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return False
        return int(when) == int(entry.last_modified)

    def send_entry(self, entry: Entry, headers: dict[str, str] | None = None) -> None:
        """Answer with `entry`'s body (or its headers for HEAD), honouring Range and the fault knobs."""
        faults: Faults = self.owner.faults
        path = self.req_path
        hurt = faults.applies(path)
        size = entry.size
        first, last, status = 0, size - 1, 200
        ignore_range = hurt and faults.ignore_range
        rng = self.headers.get("Range")
        if rng is not None and not ignore_range and self.if_range_ok(entry) and not (hurt and faults.vary_etag
                                                                                  and "If-Range" in self.headers):
            parsed = parse_range(rng, size)
            if parsed == "unsatisfiable":
                self.send_small(416, b"", {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
                                content_type="text/plain")
                return
            if isinstance(parsed, tuple):
                first, last = parsed
                status = 206
        length = max(0, last - first + 1)
        claimed = length + (int(faults.wrong_length) if hurt else 0)
        claimed = max(0, claimed)
        no_length = hurt and self.method in faults.hide_length

        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", entry.content_type)
        if not no_length:
            self.send_header("Content-Length", str(claimed))
        elif self.method != "HEAD":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.send_header("ETag", faults.etag_for(entry.etag, path))
        self.send_header("Last-Modified", email.utils.formatdate(entry.last_modified, usegmt=True))
        if not ignore_range:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if self.method == "HEAD":
            return

        to_send = min(length, claimed)
        cut = faults.take_cut(path, first, first + to_send) if hurt else None
        if cut is not None:
            to_send = cut
        flip = faults.flip_byte if hurt else None
        rate = faults.rate if hurt else None
        if ignore_range:
            # Small socket buffer and pieces: what `stats.bytes_sent` shows then stays close to what a client that
            # reads the first bytes and closes really pulled (its receive buffer, ~100 KB, is the slack).
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_PIECE)
        try:
            self._stream(entry, first, to_send, flip, rate, SMALL_PIECE if ignore_range else CHUNK)
        finally:
            if cut is not None or claimed != length or no_length:
                self.close_connection = True
                try:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _stream(self, entry: Entry, start: int, count: int, flip: int | None, rate: int | None,
                piece: int = CHUNK) -> None:
        """Send file bytes [start, start+count) in pieces, counting each piece as it goes out.

        Plain file bodies go through sendfile; a flipped byte or a rate limit goes through a copy loop.
        """
        stats: Stats = self.owner.stats
        path = self.req_path
        if count <= 0:
            return
        copy = (flip is not None and start <= flip < start + count) or bool(rate)
        if rate:
            piece = max(1, min(piece, rate // 20))
        source = open(entry.file, "rb") if entry.file is not None else None  # noqa: SIM115 - closed below
        pos, end = start, start + count
        began = time.monotonic()
        try:
            while pos < end:
                n = min(piece, end - pos)
                # Counted before the bytes go out: a client that has them must already see them counted
                # (counting after the write races with a fast client). A hang-up mid-piece overcounts <= 1 piece.
                if source is not None and not copy:
                    stats.add_bytes(path, n)
                    sent = self.connection.sendfile(source, pos, n)
                    if sent != n:
                        stats.add_bytes(path, sent - n)
                else:
                    if source is None:
                        buf = entry.data[pos:pos + n]  # type: ignore[index]
                    else:
                        buf = os.pread(source.fileno(), n, pos)
                    if flip is not None and pos <= flip < pos + len(buf):
                        mutable = bytearray(buf)
                        mutable[flip - pos] ^= 0xFF
                        buf = bytes(mutable)
                    stats.add_bytes(path, len(buf))
                    self.wfile.write(buf)
                    sent = len(buf)
                if sent <= 0:
                    break
                pos += sent
                if rate:
                    ahead = (pos - start) / rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
        finally:
            if source is not None:
                source.close()


class Served:
    """Start/stop plumbing shared by RangeServer and HubServer."""

    name = "server"
    handler: type[BaseHandler]

    def _start_http(self, port: int = 0, tls: bool = False) -> None:
        context = None
        if tls:
            from tests.servers.tls import server_context

            context = server_context()
        self.httpd = LoopbackHTTPServer(self.handler, self, port, tls=context)
        self.port = self.httpd.server_address[1]
        self.url = f"http://{HOST}:{self.port}"
        self.https_url = f"https://{HOST}:{self.port}" if tls else ""
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, name=f"{self.name}-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def _stop_http(self) -> None:
        httpd = getattr(self, "httpd", None)
        if httpd is None:
            return
        httpd.drop_connections()  # frees handler slots, so the serve loop is never stuck waiting for one
        httpd.shutdown()
        httpd.drop_connections()
        httpd.server_close()
        self._thread.join(timeout=5)
        self.httpd = None  # type: ignore[assignment]
