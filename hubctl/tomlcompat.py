"""TOML reading on every supported Python: the standard library's ``tomllib`` (3.11+) or its backport
``tomli`` (3.10). Modules import ``tomllib`` from here instead of repeating the version switch."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["tomllib"]
