"""The bearer-token check of ``hubctl serve``: a FastAPI dependency for every route that reads or makes runs.

Owns comparing ``Authorization: Bearer ...`` with the configured token in constant time (hmac.compare_digest
over bytes) and the 401 answer (``WWW-Authenticate: Bearer``). With no token configured (loopback only, see
hubctl.serve.config) every request passes. Never logs, echoes or stores the token or what a client sent.
"""

# No `from __future__ import annotations`: FastAPI reads the dependency's annotations at run time.

import hmac
from typing import Any, Callable

__all__ = ["token_matches", "bearer_dependency"]


def token_matches(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries exactly ``token`` as a Bearer token (constant time)."""
    scheme, _, given = (header or "").partition(" ")
    ok_scheme = scheme.lower() == "bearer"
    # hmac.compare_digest: the time taken does not depend on where the bytes differ
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), token.encode("utf-8")) and ok_scheme


def bearer_dependency(token: str | None) -> Callable[..., Any]:
    """A FastAPI dependency raising 401 unless the request carries the token (a no-op without one)."""
    from fastapi import HTTPException, Request

    async def require_token(request: Request) -> None:
        if token is None:
            return
        if not token_matches(request.headers.get("authorization"), token):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    return require_token
