"""The field rules every hubctl file format shares, written once: package names, family ids, variant names,
file paths inside a package, requirement strings, and keeping a message one line.

Manifests (:mod:`hubctl.registry.manifest`), family tables (:mod:`hubctl.registry.families`), lock files
(:mod:`hubctl.lock.lockfile`) and the resolver's requirement parser (:mod:`hubctl.resolve.requirements`) call
these functions, so a value one format refuses is refused by all of them in the same words. Each check
returns the value or raises ``ValueError`` with a plain reason (callers add the file and field). Pure: no I/O,
no pydantic.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Collection

from packaging.requirements import InvalidRequirement, Requirement

__all__ = [
    "NAME_RE",
    "MAX_PATH_BYTES",
    "MAX_SEGMENT_BYTES",
    "one_line",
    "check_package_name",
    "check_family_id",
    "check_variant_name",
    "check_file_path",
    "check_requirement",
    "check_text",
]

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$")
"""Package names, family ids and variant names: lower-case letters, digits, '.', '_', '-' (no '/', no '..' alone)."""

MAX_SEGMENT_BYTES = 255  # NAME_MAX on Linux, macOS and Windows (NTFS counts UTF-16 units; close enough)
MAX_PATH_BYTES = 1024

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """``text`` with control characters (newlines included) escaped, so an error stays one line."""
    return _CONTROL_RE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _shown(value: object) -> str:
    return one_line(f"'{value}'") if isinstance(value, str) else repr(value)


def check_text(value: str, what: str) -> str:
    """Free text that ends up in a file name, a header or a terminal line: no control characters."""
    if _CONTROL_RE.search(value):
        raise ValueError(f"{_shown(value)}: a {what} may not contain control characters (newline, NUL, ...)")
    return value


def check_package_name(value: object, *, normalised: bool = False) -> str:
    """A package name (``normalised``: exactly its PEP 503 form, as a lock writes it)."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ValueError(f"{_shown(value)} is not a valid package name (lower-case letters, digits, '.', '_', '-')")
    if normalised:
        from packaging.utils import canonicalize_name

        if canonicalize_name(value) != value:
            raise ValueError(f"{_shown(value)} is not a normalised package name (expected '{canonicalize_name(value)}')")
    return value


def check_family_id(value: object, known: Collection[str] | None = None) -> str:
    """A family id; with ``known``, also one of them (the families the configured registries declare)."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ValueError(f"{_shown(value)} is not a valid family id (lower-case letters, digits, '.', '_', '-')")
    if known is not None and value not in known:
        raise ValueError(f"unknown family '{value}' (known: {', '.join(sorted(known))})")
    return value


def check_variant_name(value: object) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ValueError(f"{_shown(value)} is not a valid variant name (lower-case letters, digits, '.', '_', '-')")
    return value


def check_file_path(value: object) -> str:
    """A path inside a package: relative POSIX, no '..', no '.' or empty segment, no drive or backslash, no
    control character, each segment and the whole within what every file system takes."""
    if not isinstance(value, str) or not value:
        raise ValueError("file path is empty")
    if _CONTROL_RE.search(value):
        raise ValueError(f"{_shown(value)} contains a control character (newline, NUL, ...); file paths may not")
    if "\\" in value:
        raise ValueError(f"{_shown(value)} uses backslashes; use '/'")
    p = PurePosixPath(value)
    if p.is_absolute() or re.match(r"^[A-Za-z]:", value):
        raise ValueError(f"{_shown(value)} is an absolute path; file paths must stay inside their package")
    if ".." in p.parts:
        raise ValueError(f"{_shown(value)} escapes its package with '..'")
    if any(part in ("", ".") for part in value.split("/")):
        raise ValueError(f"{_shown(value)} has an empty or '.' path segment")
    if len(value.encode("utf-8")) > MAX_PATH_BYTES or any(len(s.encode("utf-8")) > MAX_SEGMENT_BYTES for s in p.parts):
        raise ValueError(f"{_shown(value[:40] + '...')} is too long (at most {MAX_SEGMENT_BYTES} bytes a segment, {MAX_PATH_BYTES} in all)")
    return value


def check_requirement(text: object) -> Requirement:
    """A requirement as hubctl takes it: ``name[specifier]`` (PEP 508 name, PEP 440 specifiers); extras,
    direct URLs and environment markers are refused (no model package has them)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty requirement")
    try:
        req = Requirement(text.strip())
    except InvalidRequirement as e:
        raise ValueError(f"{_shown(text)} is not a requirement ({str(e).splitlines()[0]})") from None
    if req.extras:
        raise ValueError(f"{_shown(text)}: extras are not supported")
    if req.url:
        raise ValueError(f"{_shown(text)}: direct URLs are not supported; add a manifest to a registry")
    if req.marker is not None:
        raise ValueError(f"{_shown(text)}: environment markers are not supported")
    return req
