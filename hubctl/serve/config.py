"""What ``hubctl serve`` is allowed to do: its limits, the bind rule and the token.

Owns the :class:`Limits` (steps, size, images per request, batch, queue, prompt and body sizes), the
loopback test, reading the bearer token from ``HUBCTL_SERVE_TOKEN`` and refusing a bind that would expose
the server without one. Pure values and checks: no sockets, no FastAPI. The token is never printed,
logged or recorded: only its presence and length are looked at here.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from hubctl.errors import BadInput

__all__ = ["TOKEN_ENV", "MIN_TOKEN_CHARS", "Limits", "is_loopback", "token_from_env", "check_bind"]

TOKEN_ENV = "HUBCTL_SERVE_TOKEN"
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask and on the work waiting (every one configurable on the CLI)."""

    max_steps: int = 50
    max_size: int = 1024  # pixels, each side
    max_images: int = 4  # per request
    max_batch: int = 8  # images per pipeline call
    max_queue: int = 32  # requests waiting (not counting the batch running)
    batch_window: float = 0.02  # seconds an idle worker waits for compatible requests to join
    max_prompt: int = 2000  # characters, prompt and negative prompt each
    max_body: int = 65536  # bytes of a request body

    def check(self) -> "Limits":
        for name in ("max_steps", "max_size", "max_images", "max_batch", "max_queue", "max_prompt", "max_body"):
            if getattr(self, name) < 1:
                raise BadInput(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_size % 8:
            raise BadInput(f"--max-size {self.max_size}: must be a multiple of 8")
        if self.max_images > self.max_batch:
            raise BadInput(f"--max-images {self.max_images} is more than --max-batch {self.max_batch}: a request's images run in one batch")
        if not 0 <= self.batch_window <= 10:
            raise BadInput(f"--batch-window-ms {self.batch_window * 1000:g}: expected 0 to 10000")
        return self


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1); anything else (0.0.0.0, ::, a name) is public."""
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def token_from_env(environ: "os._Environ[str] | dict[str, str] | None" = None) -> str | None:
    """The bearer token from ``HUBCTL_SERVE_TOKEN`` (None when unset or empty); BadInput when too short to
    be a secret (the message gives its length, never the token)."""
    env = os.environ if environ is None else environ
    token = (env.get(TOKEN_ENV) or "").strip()
    if not token:
        return None
    if len(token) < MIN_TOKEN_CHARS:
        raise BadInput(f"{TOKEN_ENV} is {len(token)} characters long: use at least {MIN_TOKEN_CHARS} "
                       "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe())')")
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in token):
        raise BadInput(f"{TOKEN_ENV} must be printable ASCII without spaces")
    return token


def check_bind(host: str, token: str | None) -> None:
    """Refuse (BadInput) to serve on a non-loopback address without a token."""
    if not is_loopback(host) and not token:
        raise BadInput(f"--host {host} is not a loopback address: set {TOKEN_ENV} to a secret token "
                       "(clients then send 'Authorization: Bearer TOKEN'), or serve on 127.0.0.1")
