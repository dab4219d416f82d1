"""A raw HTTP client for tests that must see what a server really sent (http.client, one connection a request).

Owns: `fetch(url, method, headers) -> Reply` that reports a body cut short (`incomplete`) instead of raising, so
a test can assert on cuts, lying Content-Lengths and ignored Ranges. Must not: retry, follow redirects or resume.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Reply", "fetch"]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    incomplete: bool  # the connection closed before Content-Length bytes arrived


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> Reply:
    """One request on a fresh connection, reading the body to the end or to the cut."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request(method, u.path + (f"?{u.query}" if u.query else ""), headers=headers or {})
        resp = conn.getresponse()
        incomplete = False
        try:
            body = resp.read()
        except http.client.IncompleteRead as e:
            body, incomplete = e.partial, True
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body, incomplete)
    finally:
        conn.close()
