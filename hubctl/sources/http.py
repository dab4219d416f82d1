"""``https://`` (and ``http://``) sources: any static server, Civitai-style download URLs, Hub CDNs.

Built on ``http.client`` for speed (large ``readinto`` reads straight into one buffer, ``os.pwrite``
into the partial file, hashing in a separate thread by the store): redirects (http and https only;
credentials dropped when the scheme, host or port changes, as requests' ``should_strip_auth`` does),
Range resume, several ranged parts in parallel for large files, every ranged request carrying the first
response's ETag in If-Range (a file that changes on the server mid-download starts over as one download of
the new version, never a mix), a body shorter than its Content-Length retried from where it stopped, and
one-line errors for 401/403/404/5xx. Retries, backoff, the low-speed rule and the stall bound are the one
policy of :mod:`hubctl.sources.retry`.

Credentials come from the environment, per host, and only ever travel in a header:
    HUBCTL_AUTH_<HOST>          e.g. HUBCTL_AUTH_EXAMPLE_ORG=token  (host upper-cased, every
                                non-alphanumeric character as '_'; HUBCTL_AUTH_<HOST>_<PORT> wins when
                                set). A bare value is sent as ``Bearer <value>``; a value with a space
                                ("Basic dXNlcjpwYXNz") is sent as the whole Authorization header.
    CIVITAI_TOKEN               for civitai.com and its subdomains (CIVITAI_API_KEY also accepted).
Tunables (read at call time): HUBCTL_HTTP_PARALLEL_MIN (bytes from which a file is fetched in parts,
default 64 MiB), HUBCTL_HTTP_PARTS (default 4); retries and timeouts: see :mod:`hubctl.sources.retry`.

Reading a response (the Response wrapper, body stream, header parsing) lives in :mod:`hubctl.sources.http_response`.

Never: print, log or raise with a token in it (every URL in a message goes through ``redact``).
"""

from __future__ import annotations

import http.client
import os
import re
import ssl
import threading
import time
from typing import BinaryIO, Optional
from urllib.parse import urljoin, urlsplit

from hubctl.errors import BadInput, SourceError, redact
from hubctl.sources.base import Progress, RemoteStat, Sink
from hubctl.sources.retry import Budget, Watch, policy
from hubctl.sources.http_response import (
    Response,
    _BodyStream,
    _describe,
    _int,
    _sha_from_etag,
    _start_from_content_range,
    _total_from_content_range,
)

__all__ = ["HttpSource", "HttpStatusError", "auth_header_for", "credentials_may_follow", "fetch_bytes", "Response"]

BUF = 4 << 20
MAX_REDIRECTS = 10
USER_AGENT = "hubctl/0.1"
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_CHANGES = 3  # after this many restarts for a changed file, the last one goes without validator checks


_ssl_ctx: Optional[ssl.SSLContext] = None
_ssl_lock = threading.Lock()


def _ssl_context() -> ssl.SSLContext:
    """One default TLS context per process (loading the CA bundle costs milliseconds per connection)."""
    global _ssl_ctx
    with _ssl_lock:
        if _ssl_ctx is None:
            _ssl_ctx = ssl.create_default_context()
        return _ssl_ctx


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        return default


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, Optional[int]]:
    """(scheme, host, port) with the scheme's default port filled in."""
    split = urlsplit(url)
    scheme = split.scheme.lower()
    try:
        port = split.port
    except ValueError:
        port = None
    return scheme, (split.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def credentials_may_follow(first: str, url: str) -> bool:
    """Whether credentials meant for ``first`` may be sent to ``url`` (reached from it by redirects): only to
    the same scheme, host and port, or from http to https on the same host with the default ports (what
    requests' ``should_strip_auth`` allows). A token never goes out in clear text after an https page
    redirected to http, nor to another host or port."""
    a, b = _origin(first), _origin(url)
    if a == b:
        return True
    return a[1] == b[1] and (a[0], a[2], b[0], b[2]) == ("http", 80, "https", 443)


def _env_name(host: str) -> str:
    return "HUBCTL_AUTH_" + re.sub(r"[^A-Z0-9]", "_", host.upper())


def auth_header_for(host: str, port: Optional[int] = None) -> tuple[Optional[str], Optional[str]]:
    """(Authorization header value, the environment variable it came from) for ``host``, or (None, None)."""
    names = ([f"{_env_name(host)}_{port}"] if port else []) + [_env_name(host)]
    for name in names:
        v = os.environ.get(name)
        if v:
            return (v if " " in v.strip() else f"Bearer {v.strip()}"), name
    h = host.lower()
    if h == "civitai.com" or h.endswith(".civitai.com"):
        for name in ("CIVITAI_TOKEN", "CIVITAI_API_KEY"):
            v = os.environ.get(name)
            if v:
                return f"Bearer {v.strip()}", name
    return None, None


class _Transient(Exception):
    """A failure worth retrying (5xx, 429, a dropped connection, a body cut short, too slow); ``stalled`` is how
    many seconds the try went without keeping up the speed limit."""

    def __init__(self, what: str, status: Optional[int] = None, stalled: float = 0.0, wait: float = 0.0) -> None:
        super().__init__(what)
        self.what = what
        self.status = status
        self.stalled = stalled
        self.wait = wait  # seconds the server asked us to wait (Retry-After of a 429 or 503)


def _retry_after(value: Optional[str]) -> float:
    """Seconds of a Retry-After header given in seconds (an HTTP date or nonsense counts as none)."""
    try:
        v = float((value or "").strip())
    except ValueError:
        return 0.0
    return v if 0 < v < 1e6 else 0.0


class _RangeIgnored(Exception):
    """The server answered 200 (the whole file) to a ranged request."""


class _FileChanged(Exception):
    """The file on the server is not the one the download started with (another ETag or size)."""


class HttpStatusError(SourceError):
    """An HTTP error status that retrying will not fix (401, 403, 404, ...); ``status`` keeps the code."""

    def __init__(self, message: str, *, status: int = 0, context: Optional[str] = None) -> None:
        super().__init__(message, context=context)
        self.status = status

    def with_context(self, prefix: str) -> "HttpStatusError":
        ctx = f"{prefix}: {self.context}" if self.context else prefix
        return HttpStatusError(self.message, status=self.status, context=ctx)


class HttpSource:
    """A file behind an ``http(s)://`` URL. ``headers`` are extra request headers for the first host
    (e.g. the Hub token); they are dropped, like the per-host auth, when a redirect changes host."""

    def __init__(self, url: str, *, headers: Optional[dict[str, str]] = None, display: Optional[str] = None) -> None:
        split = urlsplit(url)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise BadInput(f"'{redact(url)}' is not an http(s) URL")
        self.url = url
        self.display = display or redact(url)
        self.extra_headers = dict(headers or {})
        self._final_url: Optional[str] = None

    # ------------------------------------------------------------------------------ requests
    def _headers_for(self, url: str, extra: dict[str, str]) -> tuple[dict[str, str], Optional[str]]:
        """Request headers for ``url``: credentials (the extra headers, HUBCTL_AUTH_<HOST>, CIVITAI_TOKEN) only
        while :func:`credentials_may_follow` the first URL to it."""
        split = urlsplit(url)
        h = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        source = None
        if credentials_may_follow(self.url, url):
            h.update(self.extra_headers)
            if "Authorization" in self.extra_headers:
                source = "the Hub token"
            if "Authorization" not in h:
                value, source = auth_header_for(split.hostname or "", split.port)
                if value:
                    h["Authorization"] = value
        h.update(extra)
        return h, source

    def _open(self, method: str, url: str, extra: Optional[dict[str, str]] = None) -> Response:
        """One request, following redirects. Raises _Transient for retryable trouble, SourceError otherwise."""
        extra = extra or {}
        pol = policy()
        for _ in range(MAX_REDIRECTS + 1):
            split = urlsplit(url)
            host = split.hostname or ""
            if split.scheme not in ("http", "https") or not host:
                raise SourceError(f"{self.display}: redirected to '{redact(url)}': only http:// and https:// "
                                  "redirects are followed")
            if split.scheme == "https":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    host, split.port, timeout=pol.timeout, context=_ssl_context()
                )
            else:
                conn = http.client.HTTPConnection(host, split.port, timeout=pol.timeout)
            path = split.path or "/"
            if split.query:
                path += "?" + split.query
            headers, auth_source = self._headers_for(url, extra)
            watch = Watch(pol)
            try:
                conn.connect()
                watch.attach(conn.sock)
                conn.request(method, path, headers=headers)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                watch.close()
                raise _Transient(watch.reason if watch.too_slow else _describe(e), stalled=watch.stalled()) from None
            if resp.status in _REDIRECTS:
                loc = resp.getheader("Location")
                resp.close()
                conn.close()
                watch.close()
                if not loc:
                    raise SourceError(f"{self.display}: redirect {resp.status} without a Location")
                url = urljoin(url, loc)
                continue
            r = Response(conn, resp, url, watch)
            if resp.status >= 400:
                self._fail(r, auth_source)
            return r
        raise SourceError(f"{self.display}: more than {MAX_REDIRECTS} redirects")

    def _fail(self, r: Response, auth_source: Optional[str]) -> None:
        status, reason = r.status, r.resp.reason
        stalled = r.watch.stalled() if r.watch is not None else 0.0
        r.close()
        if status >= 500 or status == 429:
            raise _Transient(f"server error {status} {reason}", status, stalled, _retry_after(r.header("Retry-After")))
        host = urlsplit(r.url).hostname or ""
        if status == 401:
            hint = (
                f"the credentials from {auth_source} were not accepted"
                if auth_source
                else f"the server wants credentials: set {_env_name(host)} (or CIVITAI_TOKEN for civitai.com, HF_TOKEN for the Hub)"
            )
            raise HttpStatusError(f"{self.display}: 401 Unauthorized: {hint}", status=401)
        if status == 403:
            hint = f"the credentials from {auth_source} do not grant access" if auth_source else "access denied"
            raise HttpStatusError(f"{self.display}: 403 Forbidden: {hint}", status=403)
        if status == 404:
            raise HttpStatusError(f"{self.display}: 404 Not Found", status=404)
        if status == 416:
            raise _RangeUnsatisfiable(r)
        raise HttpStatusError(f"{self.display}: HTTP {status} {reason}", status=status)

    def _retrying(self, what, fn):  # type: ignore[no-untyped-def]
        """Call ``fn`` again after transient failures, as the retry policy allows."""
        budget = Budget(self.display)
        while True:
            try:
                return fn()
            except _Transient as e:
                budget.retry_or_raise(e.what, stalled=e.stalled, wait=e.wait)

    # ------------------------------------------------------------------------------ protocol
    def stat(self) -> RemoteStat:
        """HEAD (following redirects): size, ETag, whether ranges work. The final URL is kept for the body."""

        def head() -> RemoteStat:
            r = self._open("HEAD", self.url)
            try:
                size = _int(r.header("Content-Length"))
                etag = r.header("ETag")
                ranges = (r.header("Accept-Ranges") or "").lower() == "bytes"
                self._final_url = r.url
                linked = r.header("X-Linked-Etag")
                sha = _sha_from_etag(linked) if linked else None
                return RemoteStat(self.display, size, etag=etag, sha256=sha, accept_ranges=ranges)
            finally:
                r.close()

        def probe() -> RemoteStat:
            # servers (and URLs pre-signed for GET only) that refuse HEAD: ask for the first byte instead
            r = self._open("GET", self.url, {"Range": "bytes=0-0"})
            try:
                self._final_url = r.url
                etag = r.header("ETag")
                if r.status == 206:
                    size = _total_from_content_range(r.header("Content-Range"))
                    return RemoteStat(self.display, size, etag=etag, accept_ranges=True)
                return RemoteStat(self.display, _int(r.header("Content-Length")), etag=etag, accept_ranges=False)
            finally:
                r.close()

        try:
            return self._retrying("HEAD", head)
        except HttpStatusError as e:
            if e.status not in (403, 405, 501):
                raise
            try:
                return self._retrying("GET", probe)
            except HttpStatusError:
                raise e from None

    def open_range(self, start: int = 0, end: Optional[int] = None) -> BinaryIO:
        """The bytes [start, end). A server that ignores Range gets its stream read from byte 0, the
        first ``start`` bytes skipped and the rest cut at ``end``: nothing beyond ``end`` is read."""
        rng = f"bytes={start}-" + ("" if end is None else str(max(start, end - 1)))

        def go() -> Response:
            return self._open("GET", self._final_url or self.url, {"Range": rng})

        try:
            r = self._retrying("GET", go)
        except _RangeUnsatisfiable as e:
            e.r.close()
            return _BodyStream(e.r, 0)
        limit = None if end is None else end - start
        if r.status == 200 and start > 0:
            skip = start
            while skip > 0:
                chunk = r.resp.read(min(skip, BUF))
                if not chunk:
                    break
                r.watch.add(len(chunk))
                skip -= len(chunk)
        return _BodyStream(r, limit)

    def get(self, extra: Optional[dict[str, str]] = None, *, url: Optional[str] = None) -> BinaryIO:
        """One GET of ``url`` (default: this source's URL; credentials as for a redirect from it), redirects
        followed and transient failures retried, its body as a stream with ``status``, ``headers`` and
        ``final_url``. A 416 answer comes back with no body; other 4xx raise HttpStatusError (exit 3)."""
        target = url or self.url
        try:
            r = self._retrying("GET", lambda: self._open("GET", target, dict(extra or {})))
        except _RangeUnsatisfiable as e:
            return _BodyStream(e.r, 0)  # type: ignore[return-value]
        return _BodyStream(r, None)  # type: ignore[return-value]

    def cached_blob(self, sha256: Optional[str], etag: Optional[str] = None) -> None:
        return None

    def download(self, sink: Sink, *, expected_size: Optional[int] = None, progress: Optional[Progress] = None,
                 etag: Optional[str] = None) -> None:
        """Fetch the file into ``sink``: in parallel ranged parts when it is large and the server takes
        Range, else one stream; every part resumes where an earlier attempt (or process) stopped.

        A file below the parallel threshold whose size is known and whose partial is keyed by its sha256
        goes straight to one GET (no HEAD): the hash check at the end vouches for resumed bytes. Otherwise
        the HEAD's strong ETag goes with every ranged request (If-Range) and is compared with every answer's:
        when the file changed on the server, the download starts over, once more asking its size and ETag, as
        one download of the new version."""
        min_parallel = _env_int("HUBCTL_HTTP_PARALLEL_MIN", 64 << 20)
        if expected_size is not None and expected_size < min_parallel and getattr(sink, "keyed_by_hash", False):
            parts = sink.plan(expected_size, None, 1)
            for p in parts:
                self._fetch_part(sink, p, self.url, None, progress)
            return
        st = self.stat()
        size = expected_size if expected_size is not None else st.size
        validator = etag or st.etag
        strong = validator if validator and not validator.startswith("W/") else None
        nparts = _env_int("HUBCTL_HTTP_PARTS", 4) if (size and size >= min_parallel and st.accept_ranges) else 1
        parts = sink.plan(size, strong, nparts)
        changes = 0
        while True:
            url = self._final_url or self.url
            try:
                if len(parts) <= 1:
                    for p in parts:
                        self._fetch_part(sink, p, url, strong, progress)
                else:
                    self._parallel(sink, parts, url, strong, progress)
                return
            except _RangeIgnored:
                part = sink.restart_single()
                self._fetch_part(sink, part, url, None, progress)
                return
            except _FileChanged:
                changes += 1
            st = self.stat()  # the new version: its size and ETag, then one download of it from byte 0
            size = expected_size if expected_size is not None else st.size
            strong = st.etag if st.etag and not st.etag.startswith("W/") else None
            if changes >= _MAX_CHANGES:
                strong = None  # a server whose answers never agree with its HEAD: one plain stream, unchecked
            sink.restart_single()
            parts = sink.plan(size, strong, 1)

    # ------------------------------------------------------------------------------ parts
    def _parallel(self, sink: Sink, parts: list, url: str, validator: Optional[str], progress: Optional[Progress]) -> None:  # type: ignore[type-arg]
        errors: list[BaseException] = []
        abort = threading.Event()

        def run(p) -> None:  # type: ignore[no-untyped-def]
            try:
                self._fetch_part(sink, p, url, validator, progress, abort)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
                abort.set()

        threads = [threading.Thread(target=run, args=(p,), daemon=True, name=f"part-{p.index}") for p in parts]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except KeyboardInterrupt:
            abort.set()  # the parts stop at their next read; what they wrote stays for a rerun
            for t in threads:
                t.join()
            raise
        if errors:
            # an OSError from writing (disk full) outranks the others: the store reports it; then a change of
            # the file on the server (which starts the download over)
            for kind in (OSError, _FileChanged):
                for e in errors:
                    if isinstance(e, kind):
                        raise e
            raise errors[0]

    def _fetch_part(self, sink: Sink, part, url: str, validator: Optional[str], progress: Optional[Progress],  # type: ignore[no-untyped-def]
                    abort: Optional[threading.Event] = None) -> None:
        """Fetch one part to its end, resuming after drops. A try that moved the part on at the speed limit or
        faster gives back the tries (the budget is per stall, not per file); slower ones do not."""
        budget = Budget(self.display)
        limit = budget.policy.speed_limit
        buf = bytearray(BUF)
        mv = memoryview(buf)
        while not part.complete:
            if abort is not None and abort.is_set():
                return
            before, began = part.done, time.monotonic()
            try:
                self._stream_once(sink, part, url, validator, progress, mv, abort)
                if part.end is None or part.complete or (abort is not None and abort.is_set()):
                    return  # (unknown size: the body ended where its Content-Length said, or cleanly)
                raise _Transient(f"connection closed after {part.done} of {part.end} bytes")
            except _Transient as e:
                moved = part.done - before
                progressed = moved > 0 and moved >= limit * (time.monotonic() - began)
                final = None
                if part.end is not None and 0 < part.done < part.end and e.status is None:
                    final = f"connection kept failing at byte {part.done} of {part.end} ({e.what})"
                budget.retry_or_raise(e.what, progressed=progressed, stalled=e.stalled, final=final, wait=e.wait)
            except _RangeUnsatisfiable as e:
                total = _total_from_content_range(e.r.header("Content-Range"))
                raise SourceError(
                    f"{self.display}: the server has {total if total is not None else 'fewer'} bytes, "
                    f"but {part.end if part.end is not None else 'more'} were expected"
                ) from None

    def _stream_once(self, sink: Sink, part, url: str, validator: Optional[str], progress: Optional[Progress],  # type: ignore[no-untyped-def]
                     mv: memoryview, abort: Optional[threading.Event]) -> None:
        extra: dict[str, str] = {}
        if part.done > 0 or part.end is not None:
            extra["Range"] = f"bytes={part.done}-" + ("" if part.end is None else str(part.end - 1))
            if validator:
                extra["If-Range"] = validator  # every ranged request: a changed file answers 200, never a mix
        r = self._open("GET", url, extra)
        watch = r.watch
        try:
            resp = r.resp
            length = resp.length if not resp.chunked else None
            if validator and r.status in (200, 206):
                got = r.header("ETag")
                total = _total_from_content_range(r.header("Content-Range")) if r.status == 206 else length
                planned = getattr(sink, "size", None)
                if (got is not None and got != validator) or (planned is not None and total is not None and total != planned):
                    raise _FileChanged()
            if r.status == 206:
                start = _start_from_content_range(r.header("Content-Range"))
                if start is not None and start != part.done:
                    raise SourceError(f"{self.display}: the server answered bytes from {start}, asked for {part.done}")
            elif r.status == 200:
                if part.done != 0 or part.start != 0:
                    if len(getattr(sink, "parts", ())) != 1:
                        raise _RangeIgnored()  # a multi-part plan cannot use a whole body: restart as one stream
                    sink.restart_single(part)  # the body starts at byte 0: keep reading it, from 0
            else:
                raise SourceError(f"{self.display}: unexpected HTTP {r.status}")
            # With a known Content-Length and no chunking, read what the socket has (readinto1: one recv
            # straight into our buffer), so progress is saved as bytes arrive, not per 4 MiB.
            left = length
            raw = resp.fp if left is not None else None
            while True:
                if abort is not None and abort.is_set():
                    return
                want = len(mv) if part.end is None else min(len(mv), part.end - part.done)
                if left is not None:
                    want = min(want, left)
                if want <= 0:
                    return
                try:
                    n = raw.readinto1(mv[:want]) if raw is not None else resp.readinto(mv[:want])
                except (OSError, http.client.HTTPException, ValueError) as e:
                    raise _Transient(r.read_error(e) or "read failed", stalled=watch.stalled()) from None
                if not n:
                    if watch.too_slow:
                        raise _Transient(r.read_error() or "too slow", stalled=watch.stalled())
                    if left:  # the body ended before its Content-Length: cut short, not complete
                        raise _Transient(f"connection closed {left} bytes before the end of the body",
                                         stalled=watch.stalled())
                    return
                watch.add(n)
                if left is not None:
                    left -= n
                sink.write(part, mv[:n])
                if progress is not None:
                    progress(n)
        finally:
            r.close()


class _BytesSink:
    """A :class:`~hubctl.sources.base.Sink` in memory, for small files (a registry index): one part, at most
    ``limit`` bytes."""

    keyed_by_hash = False

    def __init__(self, display: str, limit: int) -> None:
        self.display = display
        self.limit = limit
        self.size: Optional[int] = None
        self.parts: list = []  # type: ignore[type-arg]
        self.data = bytearray()

    def plan(self, size: Optional[int], validator: Optional[str], nparts: int = 1) -> list:  # type: ignore[type-arg]
        from hubctl.store.partial import Part

        if size is not None and size > self.limit:
            raise SourceError(f"{self.display}: is {size} bytes, more than the {self.limit} allowed")
        self.size = size
        self.data.clear()
        self.parts = [Part(0, 0, size, 0)]
        return list(self.parts)

    def write(self, part, data) -> None:  # type: ignore[no-untyped-def]
        if part.done + len(data) > self.limit:
            raise SourceError(f"{self.display}: is more than the {self.limit} bytes allowed")
        del self.data[part.done:]
        self.data += data
        part.done += len(data)

    def restart_single(self, part=None):  # type: ignore[no-untyped-def]
        if part is not None and self.parts == [part]:
            part.done = part.start = 0
            self.data.clear()
            return part
        return self.plan(self.size, None, 1)[0]


def fetch_bytes(url: str, *, limit: int, display: Optional[str] = None) -> bytes:
    """A small file (a registry index) into memory, through the same engine as downloads: redirects (http(s)
    only, credentials never to another scheme, host or port), per-host credentials, resume after a drop, the
    retry policy and the low-speed rule. More than ``limit`` bytes is a SourceError (exit 3)."""
    src = HttpSource(url, display=display)
    sink = _BytesSink(src.display, limit)
    src.download(sink)
    return bytes(sink.data)


class _RangeUnsatisfiable(Exception):
    def __init__(self, r: Response) -> None:
        super().__init__("416")
        self.r = r
