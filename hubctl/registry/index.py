"""The index, read side: every configured registry compiled into one SQLite file
(``$HUBCTL_HOME/index.db``) for search and resolution.

:class:`Index` reads that file with plain ``sqlite3``, read-only, so that ``hubctl search`` does not
import SQLAlchemy; manifests are parsed (pydantic) only when asked for one, one stored JSON document at a
time (``Index.get`` is an indexed lookup).

Deciding when to compile and opening the index (:func:`hubctl.registry.manage.open_index`) is
:mod:`hubctl.registry.manage`; compiling is :mod:`hubctl.registry.compile`. This module never downloads,
never writes the index and never renders.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple

from hubctl.errors import BadInput, Refused

if TYPE_CHECKING:
    from hubctl.registry.families import FamilyTable
    from hubctl.registry.manifest import Manifest

__all__ = ["INDEX_FORMAT", "Index", "PackageRow", "canonical", "close_names", "no_such_package"]

INDEX_FORMAT = 1  # bump when the tables or the stored JSON change: forces a rebuild everywhere


def canonical(name: str) -> str:
    """PEP 503 normalised package name."""
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def close_names(name: str, names: "list[str] | Iterator[str]") -> list[str]:
    """Up to three package names close to ``name`` (a typo, another separator), best first."""
    import difflib

    return difflib.get_close_matches(canonical(name), list(names), n=3, cutoff=0.6)


def no_such_package(name: str, names: "list[str] | Iterator[str]") -> Refused:
    """The one answer to a package the index does not have (exit 1: `info`, `install`, `add`, `lock` alike),
    with the names a search would find when there are close ones."""
    close = close_names(name, names)
    hint = f" (did you mean: {', '.join(close)}?)" if close else " (see `hubctl search`)"
    return Refused(f"no package named '{name}' in the index{hint}")


class PackageRow(NamedTuple):
    """What search shows for one package, read without parsing its manifest."""

    name: str
    kind: str
    latest: str
    versions: list[str]
    families: list[str]
    summary: str
    registry: str

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


# --------------------------------------------------------------------------------------------- reading


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Index:
    """Read-only view of a compiled index database. Cheap to open; manifests parsed on demand and cached."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.warnings: list[str] = []
        try:
            self._con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            self._con.execute("SELECT 1 FROM index_package LIMIT 1")
        except sqlite3.Error as e:
            raise BadInput(f"not a hubctl index ({e}); delete it to rebuild", context=str(self.path)) from None
        self._cache: dict[str, Manifest] = {}
        self._families: FamilyTable | None = None

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- families
    @property
    def families(self) -> "FamilyTable":
        if self._families is None:
            from hubctl.registry.families import Family, FamilyTable

            rows = self._con.execute("SELECT data FROM index_family ORDER BY rowid").fetchall()
            self._families = FamilyTable(Family.model_validate_json(r[0]) for r in rows)
        return self._families

    # -- packages
    def get(self, name: str) -> "Manifest | None":
        """The manifest of a package by name (PEP 503 normalised), or None."""
        key = canonical(name)
        m = self._cache.get(key)
        if m is not None:
            return m
        row = self._con.execute("SELECT manifest FROM index_package WHERE name = ?", (key,)).fetchone()
        if row is None:
            return None
        from hubctl.registry.manifest import Manifest

        m = Manifest.model_validate_json(row[0])
        self._cache[key] = m
        return m

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return self._con.execute("SELECT 1 FROM index_package WHERE name = ?", (canonical(name),)).fetchone() is not None

    def __len__(self) -> int:
        return int(self._con.execute("SELECT count(*) FROM index_package").fetchone()[0])

    def names(self) -> list[str]:
        """Every package name (normalised), sorted."""
        return [r[0] for r in self._con.execute("SELECT name FROM index_package ORDER BY name")]

    def __iter__(self) -> Iterator["Manifest"]:
        for name in self.names():
            m = self.get(name)
            if m is not None:
                yield m

    def registry_of(self, name: str) -> str:
        """The name of the registry a package comes from; KeyError when the index has no such package."""
        row = self._con.execute("SELECT registry FROM index_package WHERE name = ?", (canonical(name),)).fetchone()
        if row is None:
            raise KeyError(name)
        return str(row[0])

    def row(self, name: str) -> PackageRow | None:
        rows = self._select("name = ?", [canonical(name)])
        return rows[0] if rows else None

    def _select(self, where: str, params: list[Any], order: str = "name") -> list[PackageRow]:
        sql = (
            "SELECT display_name, kind, latest, versions, families, summary, registry FROM index_package"
            f" WHERE {where} ORDER BY {order}"
        )
        return [
            PackageRow(r[0], r[1], r[2], json.loads(r[3]), r[4].split(), r[5], r[6])
            for r in self._con.execute(sql, params)
        ]

    def search_rows(self, text: str = "", kind: str | None = None, family: str | None = None) -> list[PackageRow]:
        """Packages whose name, summary, tags, triggers or tokens contain every word of ``text``
        (case-insensitive), optionally of one kind and family; exact name first, then name matches."""
        where, params = ["1"], []  # type: ignore[var-annotated]
        words = text.lower().split()
        for w in words:
            where.append("search_text LIKE ? ESCAPE '\\'")
            params.append(f"%{_like_escape(w)}%")
        if kind:
            where.append("kind = ?")
            params.append(kind)
        if family:
            where.append("families LIKE ? ESCAPE '\\'")
            params.append(f"% {_like_escape(family)} %")
        q = text.strip().lower()
        order = "name"
        if q:
            key = canonical(q) if q else ""
            order = (
                "CASE WHEN name = ? THEN 0 WHEN name LIKE ? ESCAPE '\\' THEN 1"
                " WHEN name LIKE ? ESCAPE '\\' THEN 2 ELSE 3 END, name"
            )
            params += [key, f"{_like_escape(key)}%", f"%{_like_escape(key)}%"]
        return self._select(" AND ".join(where), params, order)

    def search(self, text: str = "", kind: str | None = None, family: str | None = None) -> list["Manifest"]:
        """Like :meth:`search_rows`, returning the parsed manifests."""
        out = []
        for r in self.search_rows(text, kind=kind, family=family):
            m = self.get(r.name)
            if m is not None:
                out.append(m)
        return out

    def family_ids(self) -> list[str]:
        """Family ids known to the index (without parsing them)."""
        return [str(r[0]) for r in self._con.execute("SELECT id FROM index_family ORDER BY rowid")]

    def family_registry(self, fid: str) -> str | None:
        """The registry that declared a family (None when the index has no such family)."""
        row = self._con.execute("SELECT registry FROM index_family WHERE id = ?", (fid,)).fetchone()
        return None if row is None else str(row[0])

    def families_by_registry(self) -> dict[str, list[str]]:
        """Registry name -> the family ids it defines in this index (a redefined id counts for the later one)."""
        out: dict[str, list[str]] = {}
        for fid, reg in self._con.execute("SELECT id, registry FROM index_family ORDER BY rowid"):
            out.setdefault(str(reg), []).append(str(fid))
        return out

    def registries(self) -> list[dict[str, Any]]:
        """The registries this index was compiled from, in order, with their package counts."""
        rows = self._con.execute("SELECT name, location, kind, packages FROM index_registry ORDER BY position")
        return [{"name": r[0], "location": r[1], "kind": r[2], "packages": r[3]} for r in rows]

    def compile_warnings(self) -> list[str]:
        """What the last compile noticed without failing (e.g. a package shadowed by an earlier registry)."""
        raw = self.meta("warnings")
        return list(json.loads(raw)) if raw else []

    def meta(self, key: str) -> str | None:
        row = self._con.execute("SELECT value FROM index_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]
