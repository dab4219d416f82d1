"""The whole hubctl exception tree, and the one place that maps it to exit codes.

    HubctlError                 base; ``exit_code`` says how the CLI ends
    ├── Refused      (exit 1)   the answer is "no": incompatible, drift, stale lock, verification failed
    ├── BadInput     (exit 2)   bad input or usage: a manifest, lock, header or argument that does not parse
    │   ├── IncompleteFile      a truncated or corrupt artefact ("incomplete download: expected N bytes, found M")
    │   └── MissingExtra        a command needs an optional extra that is not installed (names the pip command)
    ├── SourceError  (exit 3)   a source or the network failed (after retries)
    └── SystemFailure (exit 3)  the machine failed under hubctl: disk full, file-size limit, read-only, busy

Every message is one line that names the file (or URL) and the problem. Messages never contain a
token or any other secret: callers pass URLs through :func:`redact` before they build a message.

Failures that are not hubctl's own exceptions are mapped here too, once, by :func:`from_exception`, which
the CLI's edge (hubctl.cli.app) applies to whatever a command raises. A traceback is never the answer to a
fault; only a bug (an exception this mapping does not know) keeps one. The mapping, and why:

- exit 2, the input cannot be used as it is (fix it and run again): TOML or JSON nested too deeply or with
  a number too long to read (RecursionError, Python's integer-digits limit); a path with a NUL byte or
  longer than the filesystem allows (ENAMETOOLONG); a state or index database that is not a valid SQLite
  file (corrupt or truncated: the line names the file and what to do with it).
- exit 3, the machine failed, like a source that failed (nothing was half-written; the same command works
  once the cause is gone): no space left (ENOSPC, EDQUOT, SQLite's "database or disk is full"), a file-size
  limit (EFBIG, ``ulimit -f``), a read-only or unwritable folder (EROFS, EACCES, EPERM), an I/O error, and
  the state database locked by another process for longer than ``HUBCTL_DB_TIMEOUT`` seconds (default 30).
- exit 130, Ctrl-C (the CLI's edge; nothing is half-written because every write is atomic).

Exit 1 stays "the answer is no": it is never used for a failure.
"""

from __future__ import annotations

import re

__all__ = [
    "HubctlError",
    "Refused",
    "BadInput",
    "IncompleteFile",
    "SourceError",
    "MissingExtra",
    "SystemFailure",
    "redact",
    "from_exception",
    "PARSE_ERRORS",
    "parse_failure",
]

# What tomllib and json raise on text they cannot read: TOMLDecodeError, JSONDecodeError and UnicodeDecodeError
# are ValueErrors, and so is a number past Python's integer-digits limit; nesting past the recursion limit
# is a RecursionError. Parse sites catch these around the parse call only, and word them with parse_failure.
PARSE_ERRORS = (ValueError, RecursionError)


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


class MissingExtra(BadInput, ImportError):
    """A command needs an optional extra that is not installed (exit 2): the line names what is missing and
    the exact pip command that installs it. Also an ImportError, so a script's ``except ImportError`` works."""


class SystemFailure(HubctlError):
    """The machine failed under hubctl (exit 3, like a failed source): no space left, a file-size limit, a
    read-only or unwritable folder, an I/O error, a database held locked by another process. Nothing was
    half-written."""

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


# ------------------------------------------------------------------------------------------ the edge mapping

_OS_WORDS = {
    "ENOSPC": "no space left on the device (free some space and run the command again)",
    "EDQUOT": "disk quota exceeded (free some space and run the command again)",
    "EFBIG": "file too large: a file-size limit (`ulimit -f`) stopped the write",
    "EROFS": "read-only file system (commands that only read still work)",
    "EACCES": "permission denied",
    "EPERM": "operation not permitted",
    "EIO": "input/output error (a failing disk?)",
    "EMFILE": "too many open files",
    "ENFILE": "too many open files in the system",
    "ENOMEM": "out of memory",
}
_INPUT_ERRNOS = {"ENAMETOOLONG", "EILSEQ"}


def _short(path: object) -> str:
    """A path for a one-line message: redacted, and cut in the middle when very long."""
    text = redact(str(path))
    return text if len(text) <= 160 else f"{text[:80]}…{text[-60:]}"


def _sqlite_error(e: BaseException) -> BaseException | None:
    """The sqlite3 exception behind ``e`` (SQLAlchemy wraps it as ``.orig``), or None."""
    import sqlite3

    seen = 0
    cur: BaseException | None = e
    while cur is not None and seen < 8:
        if isinstance(cur, sqlite3.Error):
            return cur
        orig = getattr(cur, "orig", None)
        cur = orig if isinstance(orig, BaseException) else (cur.__cause__ or cur.__context__)
        seen += 1
    return None


def _databases() -> list[str]:
    """The SQLite files of this HUBCTL_HOME, as named in messages."""
    try:
        from hubctl.config import index_db_path, state_db_path

        return [str(state_db_path()), str(index_db_path())]
    except Exception:  # pragma: no cover - a HUBCTL_HOME that cannot even be named
        return []


def _corrupt_database() -> str | None:
    """The first database of this HUBCTL_HOME that SQLite cannot read whole, or None."""
    import sqlite3
    from pathlib import Path

    for name in _databases():
        path = Path(name)
        if not path.is_file():
            continue
        try:
            con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1)
            try:
                ok = con.execute("PRAGMA quick_check").fetchone()
            finally:
                con.close()
            if not ok or ok[0] != "ok":
                return name
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "unable to open" in str(e):
                continue
            return name
        except sqlite3.Error:
            return name
    return None


def _home() -> str:
    try:
        from hubctl.config import hubctl_home

        return str(hubctl_home())
    except Exception:  # pragma: no cover
        return "HUBCTL_HOME"


def _io_cause(folder: str) -> str:
    """Why a write under ``folder`` may have failed: a file-size limit or a full disk, when either is so."""
    import shutil

    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        if soft != resource.RLIM_INFINITY:
            return f"a file-size limit (`ulimit -f`) of {soft} bytes stops the write"
    except (ImportError, OSError, ValueError):  # pragma: no cover - platform without rlimits
        pass
    try:
        if shutil.disk_usage(folder).free < (1 << 20):
            return "no space left on the device (free some space and run the command again)"
    except OSError:
        pass
    return "a failing disk, a full disk or a file-size limit"


def _from_sqlite(e: BaseException) -> HubctlError | None:
    import os

    text = str(e)
    low = text.lower()
    home = _home()
    if "locked" in low or "busy" in low:
        wait = os.environ.get("HUBCTL_DB_TIMEOUT") or "30"
        return SystemFailure(f"the state database under {home} is locked by another process (waited {wait} s; "
                             "HUBCTL_DB_TIMEOUT sets how long); run the command again when it has finished")
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        bad = _corrupt_database()
        if bad is None:
            return BadInput(f"a database under {home} is damaged ({text}); move it aside and run the command again")
        if bad.endswith("index.db"):
            advice = "it is a cache of the registries: delete it and it is rebuilt"
        else:
            advice = ("move it aside (installed records and run history live in it; the store's blobs stay) and run "
                      "`hubctl sync` or `hubctl install` to record packages again")
        return BadInput(f"is not a valid SQLite database ({text}); {advice}", context=bad)
    if "full" in low:
        return SystemFailure(f"cannot write the database under {home}: no space left on the device "
                             "(free some space and run the command again)")
    if "readonly" in low or "read-only" in low or "unable to open" in low:
        return SystemFailure(f"cannot write the database under {home}: the folder is read-only or not writable "
                             "(commands that only read, such as list, verify, search, info and inspect, still work)")
    if "disk i/o" in low or "ioerr" in low:
        return SystemFailure(f"cannot write the database under {home}: disk I/O error ({_io_cause(home)})")
    return None


def parse_failure(e: BaseException) -> str:
    """A TOML or JSON parser's failure in words: its own message, or what a recursion or digits limit means."""
    if isinstance(e, RecursionError):
        return "nested too deeply to read"
    text = str(e)
    if "integer string conversion" in text:
        return "a number with more than 4300 digits"
    return text


def from_exception(e: BaseException) -> HubctlError | None:
    """The one-line error (and so the exit code) for any exception a command raised, or None when it is a
    bug that should keep its traceback. See the module docstring for the mapping."""
    import errno

    if isinstance(e, HubctlError):
        return e
    sq = _sqlite_error(e)
    if sq is not None:
        return _from_sqlite(sq)
    if isinstance(e, OSError) and e.errno is not None:
        name = errno.errorcode.get(e.errno, "")
        where = e.filename if e.filename is not None else None
        if name in _INPUT_ERRNOS:
            what = "file name too long for the filesystem" if name == "ENAMETOOLONG" else (e.strerror or str(e))
            return BadInput(what, context=_short(where) if where is not None else None)
        words = _OS_WORDS.get(name)
        if words is None:
            return None
        return SystemFailure(words, context=_short(where) if where is not None else None)
    if isinstance(e, RecursionError):
        return BadInput("input nested too deeply to read (TOML or JSON more than a few hundred levels deep)")
    if isinstance(e, ValueError):
        text = str(e)
        if "integer string conversion" in text:
            return BadInput("a TOML or JSON file holds a number with more than 4300 digits")
        if "null byte" in text or "null character" in text:
            return BadInput("a path contains a NUL byte")
    return None
