"""The whole hubctl exception tree, and the one place that maps it to exit codes.

    HubctlError                 base; ``exit_code`` says how the CLI ends
    ├── Refused      (exit 1)   the answer is "no": incompatible, drift, stale lock, verification failed
    ├── BadInput     (exit 2)   bad input or usage: a manifest, lock, header or argument that does not parse
    │   └── IncompleteFile      a truncated or corrupt artefact ("incomplete download: expected N bytes, found M")
    └── SourceError  (exit 3)   a source or the network failed (after retries)

Every message is one line that names the file (or URL) and the problem. Messages never contain a
token or any other secret: callers pass URLs through :func:`redact` before they build a message.
"""

from __future__ import annotations

import re

__all__ = [
    "HubctlError",
    "Refused",
    "BadInput",
    "IncompleteFile",
    "SourceError",
    "redact",
]


class HubctlError(Exception):
    """Base of every error hubctl raises on purpose. ``str(err)`` is the one line a user sees."""

    exit_code = 1

    def __init__(self, message: str, *, context: str | None = None) -> None:
        self.message = message
        self.context = context
        super().__init__(self.render())

    def render(self) -> str:
        return f"{self.context}: {self.message}" if self.context else self.message

    def with_context(self, prefix: str) -> "HubctlError":
        """Return the same error with ``prefix`` put before its context (outer paths first)."""
        ctx = f"{prefix}: {self.context}" if self.context else prefix
        return type(self)(self.message, context=ctx)


class Refused(HubctlError):
    """The answer is "no" (exit 1): incompatible set, hash drift, stale lock, failed verification."""

    exit_code = 1


class BadInput(HubctlError):
    """Bad input or usage (exit 2): one clear line naming the file and the problem."""

    exit_code = 2


class IncompleteFile(BadInput):
    """A truncated or corrupt artefact (exit 2)."""


class SourceError(HubctlError):
    """A source or the network failed (exit 3)."""

    exit_code = 3


_SECRET_PATTERNS = [
    # key=value pairs in query strings that carry credentials
    re.compile(r"(?i)([?&](?:token|access_token|api_key|apikey|key|auth|signature|sig)=)[^&#\s]+"),
    # userinfo in URLs: scheme://user:pass@host
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"),
    # bearer tokens and HF tokens wherever they appear
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\bhf_[A-Za-z0-9]{8,}\b"),
]


def redact(text: str) -> str:
    """Remove anything that looks like a credential from ``text`` (URLs, headers, messages)."""
    out = text
    out = _SECRET_PATTERNS[0].sub(r"\1***", out)
    out = _SECRET_PATTERNS[1].sub(r"\1***@", out)
    out = _SECRET_PATTERNS[2].sub(r"\1***", out)
    out = _SECRET_PATTERNS[3].sub("hf_***", out)
    return out
