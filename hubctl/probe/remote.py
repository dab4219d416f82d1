"""Remote header reads: ``https://`` (or ``http://``) through HTTP Range and ``hf://org/repo[@rev]/path``
through huggingface_hub's URL and auth conventions (HF_ENDPOINT, HF_TOKEN / login, HF_HUB_OFFLINE).

At most two data requests (redirects aside) and at most header + 100 KB transferred, whatever the file
size: first ``Range: bytes=0-100000``; a second range only when the header is longer. A server that
ignores Range (200 instead of 206) is read only as far as the header and the connection is closed.
Requests go through hubctl's one HTTP engine (:mod:`hubctl.sources.http`): redirects, retries and the
low-speed rule as for downloads; a token never goes to another scheme, host or port than the one it was
given for, and is never printed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hubctl.errors import BadInput, IncompleteFile, SourceError, redact
from hubctl.probe.header import Header, header_length, parse_header_json, read_up_to

__all__ = ["FIRST_RANGE", "RemoteRead", "read_remote_header", "hf_resolve"]

FIRST_RANGE = 100_000  # bytes=0-100000, like huggingface_hub
_CR_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


@dataclass
class RemoteRead:
    header: Header
    size: int | None
    requests: int
    bytes_read: int


def _open(url: str, headers: dict[str, str], origin: str, first: str | None = None) -> Any:
    """GET ``url`` through hubctl's one HTTP engine (:meth:`hubctl.sources.http.HttpSource.get`): redirects
    (http(s) only; the Authorization header never follows a change of scheme, host or port from ``first``,
    default ``url``), retries and the low-speed rule. Returns the answer as a stream with ``status``,
    ``headers`` and ``final_url``."""
    from hubctl.sources.http import HttpSource, HttpStatusError

    creds = {k: v for k, v in headers.items() if k.lower() == "authorization"}
    extra = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    src = HttpSource(first or url, headers={"Authorization": v for v in creds.values()}, display=origin)
    try:
        resp = src.get(extra, url=url)
    except HttpStatusError as e:
        what = {401: "needs authentication (set HF_TOKEN for the Hub, CIVITAI_TOKEN for civitai.com, or HUBCTL_AUTH_<HOST>)",
                403: "access denied",
                404: "not found"}.get(e.status, f"server answered HTTP {e.status}")
        raise SourceError(what, context=origin) from None
    if resp.status == 416:
        resp.close()
        raise IncompleteFile("incomplete download: the server has no bytes in range 0-100000 (empty file)", context=origin)
    return resp


def _read(resp: Any, n: int) -> bytes:
    return read_up_to(resp, n, chunk=1 << 16)


def read_remote_header(url: str, headers: dict[str, str] | None = None, *, origin: str | None = None) -> RemoteRead:
    """Read and validate the safetensors header of a remote file with at most two ranged GETs."""
    import http.client

    origin = redact(origin or url)
    base = dict(headers or {})
    base.setdefault("User-Agent", "hubctl")
    base["Accept-Encoding"] = "identity"
    requests = 1
    resp = _open(url, {**base, "Range": f"bytes=0-{FIRST_RANGE}"}, origin)
    try:
        status = resp.status
        total: int | None = None
        if status == 206:
            m = _CR_RE.match(resp.headers.get("Content-Range", ""))
            if m and m.group(3) != "*":
                total = int(m.group(3))
            first = _read(resp, FIRST_RANGE + 1)
        elif status == 200:
            cl = resp.headers.get("Content-Length")
            total = int(cl) if cl and cl.isdigit() else None
            first = _read(resp, FIRST_RANGE + 1)  # the server ignored Range: read only what we need
        else:
            raise SourceError(f"server answered HTTP {status}", context=origin)
        linked = resp.headers.get("X-Linked-Size")
        if total is None and linked and linked.isdigit():
            total = int(linked)
        try:
            n = header_length(first, origin=origin, file_size=total)
        except IncompleteFile:
            raise
        need = 8 + n
        buf = first
        if len(buf) < need:
            if total is not None and total < need:
                raise IncompleteFile(f"incomplete download: expected at least {need} bytes, found {total}", context=origin)
            if status == 200:
                buf += _read(resp, need - len(buf))
            else:
                resp.close()
                requests += 1
                final = getattr(resp, "final_url", url)
                resp = _open(final, {**base, "Range": f"bytes={len(buf)}-{need - 1}"}, origin, first=url)
                if resp.status != 206:
                    buf = _read(resp, need)  # ignored this time: the stream starts at 0 again
                else:
                    buf += _read(resp, need - len(buf))
            if len(buf) < need:
                raise IncompleteFile(f"incomplete download: expected at least {need} bytes, found {len(buf)}", context=origin)
        read = len(buf)
    except (http.client.HTTPException, OSError) as e:
        raise SourceError(f"connection failed while reading the header ({e})", context=origin) from None
    finally:
        try:
            resp.close()
        except Exception:  # pragma: no cover - closing a broken socket
            pass
    header = parse_header_json(bytes(buf[8:need]), origin=origin, file_size=total)
    return RemoteRead(header=header, size=total, requests=requests, bytes_read=read)


def hf_resolve(url: str) -> tuple[str, dict[str, str], str]:
    """(resolve URL, auth headers, display name) for ``hf://org/repo[@rev]/path`` (huggingface_hub imported here)."""
    from hubctl.registry.manifest import parse_source

    try:
        ref = parse_source(url)
    except ValueError as e:
        raise BadInput(str(e)) from None
    import huggingface_hub
    from huggingface_hub import constants, hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    if constants.HF_HUB_OFFLINE:
        raise SourceError("HF_HUB_OFFLINE is set: cannot read a header from the Hub", context=url)
    resolve = hf_hub_url(ref.repo_id, ref.path, revision=ref.revision or "main",
                         repo_type=ref.repo_type, endpoint=constants.ENDPOINT)
    try:
        headers = build_hf_headers(library_name="hubctl", library_version=None)
    except Exception:  # a malformed token file must not break a public read
        headers = {}
    del huggingface_hub
    return resolve, dict(headers), url
