"""The store's roots: what keeps blobs alive, in the state database.

A root is either

- the install set (key ``installed``): what ``hubctl install`` / ``uninstall`` edit, one version per name;
- a lock file that was synced (``hubctl sync``, ``hubctl run``: project and script locks), keyed by its absolute
  path, with the sha256 of the lock file's bytes when it was synced and the packages it pins. It is live while
  the file exists with the same bytes; once gone or changed it is no longer honoured (``hubctl sync`` there
  registers it again).
- a file ``hubctl adopt`` took into the store (key ``adopt:<absolute path>``, kind ``adopt``), with the package it
  is (a registry's, or a local one adopt wrote): live while a file is at that path, so gc never removes a blob
  the user's folders hold or link to (a file adopt replaced by a link into the store, or a local package's
  source). Why a root per file rather than the install set: the install set holds one version per name and
  is edited by ``install``/``uninstall``, while an adopted file belongs to a place on disk and lives as long
  as that place does.

Three tables: ``store_roots`` (one row per root), ``root_packages`` (per root, the packages: the lock's value
type, tokens/trigger/requires as JSON arrays) and ``root_files`` (per root and package, each file: path ->
blob sha256). Every write is one transaction; reads are one SQL statement each (one snapshot), through the
sqlite3 read path. URLs are stored redacted, so no credential reaches the database. Must not touch blobs
(:mod:`hubctl.store.blobs`) and must not import manifests; uses the lock's value types.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from packaging.utils import canonicalize_name

from hubctl.errors import Refused, redact
from hubctl.lock.lockfile import LockedFile, LockedPackage

__all__ = [
    "INSTALL_ROOT",
    "Root",
    "root_packages",
    "packages_by_root",
    "all_roots",
    "set_packages",
    "remove_packages",
    "register_lock_root",
    "lock_root_key",
    "live_roots",
    "drop_roots",
    "pinned_blobs",
    "ADOPT_PREFIX",
    "register_adopted",
]

INSTALL_ROOT = "installed"
ADOPT_PREFIX = "adopt:"

_tables: dict[str, Any] = {}
_tables_lock = threading.Lock()


def _table_classes() -> tuple[Any, Any, Any]:
    """(RootRow, RootPackageRow, RootFileRow), defined on first use so that reads need no sqlmodel."""
    with _tables_lock:
        if not _tables:
            from sqlmodel import Field, SQLModel

            class RootRow(SQLModel, table=True):
                __tablename__ = "store_roots"

                root: str = Field(primary_key=True)  # "installed", or a lock file's absolute path
                kind: str  # "install" | "lock" | "adopt"
                lock_sha256: str = ""  # sha256 of the lock file's bytes when it was synced
                registered_at: float = 0.0

            class RootPackageRow(SQLModel, table=True):
                __tablename__ = "root_packages"

                root: str = Field(primary_key=True)
                name: str = Field(primary_key=True)
                version: str
                kind: str
                family: str
                variant: str
                prediction: Optional[str] = None
                layout: Optional[str] = None
                dtype: Optional[str] = None
                tokens: str = "[]"
                trigger: str = "[]"
                requires: str = "[]"
                installed_at: float = 0.0

            class RootFileRow(SQLModel, table=True):
                __tablename__ = "root_files"

                root: str = Field(primary_key=True)
                package: str = Field(primary_key=True)
                path: str = Field(primary_key=True)
                url: str
                size: int
                sha256: str = Field(index=True)
                requested_revision: Optional[str] = None

            _tables["root"], _tables["pkg"], _tables["file"] = RootRow, RootPackageRow, RootFileRow
        return _tables["root"], _tables["pkg"], _tables["file"]


def _engine():  # type: ignore[no-untyped-def]
    from hubctl.db import ensure_tables, state_engine

    eng = state_engine()
    ensure_tables(eng, list(_table_classes()))
    _migrate(eng)
    return eng


def _migrate(eng: Any) -> None:
    """Move an older database's install set (tables ``installed_packages`` / ``installed_files``, one global
    version per name) into the root tables as the ``installed`` root; once, in one transaction."""
    if eng.__dict__.get("_hubctl_roots_migrated"):
        return
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import DatabaseError

    if inspect(eng).has_table("installed_packages"):
        cols = "version, kind, family, variant, prediction, layout, dtype, tokens, trigger, requires, installed_at"
        ins = "INSERT OR IGNORE INTO" if eng.dialect.name == "sqlite" else "INSERT INTO"
        try:
            with eng.begin() as c:
                c.execute(text(f"{ins} store_roots (root, kind, lock_sha256, registered_at) VALUES ('installed', 'install', '', 0)"))
                c.execute(text(f"{ins} root_packages (root, name, {cols}) SELECT 'installed', name, {cols} FROM installed_packages"))
                c.execute(text(f"{ins} root_files (root, package, path, url, size, sha256, requested_revision) "
                               "SELECT 'installed', package, path, url, size, sha256, requested_revision FROM installed_files"))
                c.execute(text("DROP TABLE installed_files"))
                c.execute(text("DROP TABLE installed_packages"))
        except DatabaseError as e:  # another process moved it first
            if "no such table" not in str(e) and "does not exist" not in str(e):
                raise
    eng.__dict__["_hubctl_roots_migrated"] = True


def _legacy_state() -> bool:
    """Does the state database still hold an older install set, not yet moved into the root tables?"""
    from hubctl.store.state import read_state

    return bool(read_state("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'installed_packages'")) \
        if not os.environ.get("HUBCTL_DATABASE_URL") else False


# --------------------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Root:
    """One root: ``key`` ("installed" or a lock's absolute path), ``kind`` ("install" | "lock"), the sha256 of
    the lock's bytes when it was synced; ``live`` and ``why`` (when not live: "the file is gone", "changed
    since it was synced") as found when it was read with :func:`live_roots`."""

    key: str
    kind: str
    lock_sha256: str = ""
    registered_at: float = 0.0
    live: bool = True
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"root": self.key, "kind": self.kind}
        if not self.live:
            out["why"] = self.why
        return out


def lock_root_key(path: Path) -> str:
    """The key of a lock root: the lock file's absolute path, symlinks resolved."""
    return str(Path(path).expanduser().resolve())


_PKG_COLS = "p.root, p.name, p.version, p.kind, p.family, p.variant, p.prediction, p.layout, p.dtype, p.tokens, p.trigger, p.requires"
_FILE_COLS = "f.path, f.url, f.size, f.sha256, f.requested_revision"


def _rows_to_packages(rows: list[tuple[Any, ...]]) -> dict[str, list[LockedPackage]]:
    """root -> packages (by name) from rows of the package/file join."""
    pkgs: dict[tuple[str, str], tuple[tuple[Any, ...], list[LockedFile]]] = {}
    for r in rows:
        head, f = r[:12], r[12:]
        entry = pkgs.setdefault((head[0], head[1]), (head, []))
        if f[0] is not None:
            entry[1].append(LockedFile(path=f[0], url=f[1], size=int(f[2]), sha256=f[3], requested_revision=f[4]))
    out: dict[str, list[LockedPackage]] = {}
    for (root, _), (head, files) in sorted(pkgs.items()):
        _, name, version, kind, family, variant, prediction, layout, dtype, tokens, trigger, requires = head
        out.setdefault(root, []).append(LockedPackage(
            name=name, version=version, kind=kind, family=family, variant=variant,
            files=tuple(sorted(files, key=lambda f: f.path)), prediction=prediction, layout=layout, dtype=dtype,
            tokens=tuple(json.loads(tokens or "[]")), trigger=tuple(json.loads(trigger or "[]")),
            requires=tuple(json.loads(requires or "[]")),
        ))
    return out


def _read_packages(where: str = "", params: Optional[dict[str, Any]] = None) -> dict[str, list[LockedPackage]]:
    """One statement (one snapshot of both tables): a concurrent sync never mixes two versions' files."""
    from hubctl.store.state import read_state

    sql = (f"SELECT {_PKG_COLS}, {_FILE_COLS} FROM root_packages p LEFT JOIN root_files f "
           f"ON f.root = p.root AND f.package = p.name {where} ORDER BY p.root, p.name, f.path")
    rows = read_state(sql, params)
    if not rows and _legacy_state():
        _engine()  # moves the older install set over, then read again
        rows = read_state(sql, params)
    return _rows_to_packages(rows)


def root_packages(root: str = INSTALL_ROOT) -> list[LockedPackage]:
    """The packages of one root (by name), files pinned by sha256."""
    return _read_packages("WHERE p.root = :r", {"r": root}).get(root, [])


def packages_by_root() -> dict[str, list[LockedPackage]]:
    """Every root's packages (one snapshot)."""
    return _read_packages()


def all_roots() -> list[Root]:
    """Every registered root (the install set first, then locks by path); liveness not checked."""
    from hubctl.store.state import read_state

    rows = read_state("SELECT root, kind, lock_sha256, registered_at FROM store_roots")
    roots = [Root(r[0], r[1], r[2] or "", float(r[3] or 0)) for r in rows]
    return sorted(roots, key=lambda r: (r.kind != "install", r.key))


def _lock_state(root: Root) -> Root:
    """``root`` with ``live`` and ``why`` filled in: a lock root is live while its file has the same bytes; an
    adopted file's while something is at its path."""
    if root.kind == "adopt":
        if os.path.lexists(root.key[len(ADOPT_PREFIX):]):
            return root
        return Root(root.key, root.kind, root.lock_sha256, root.registered_at, False, "the file is gone")
    if root.kind != "lock":
        return root
    try:
        data = Path(root.key).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return Root(root.key, root.kind, root.lock_sha256, root.registered_at, False, "the file is gone")
    except OSError as e:  # unreadable now (permissions): kept, rather than lose what it pins
        return Root(root.key, root.kind, root.lock_sha256, root.registered_at, True, f"unreadable ({e.strerror}); kept")
    if hashlib.sha256(data).hexdigest() != root.lock_sha256:
        return Root(root.key, root.kind, root.lock_sha256, root.registered_at, False, "changed since it was synced")
    return root


def live_roots() -> list[Root]:
    """Every registered root with its liveness checked (a lock root: its file read and hashed)."""
    return [_lock_state(r) for r in all_roots()]


def pinned_blobs(roots: Iterable[str]) -> set[str]:
    """Every sha256 the given roots pin (one query)."""
    from hubctl.store.state import read_state

    want = set(roots)
    if not want:
        return set()
    if _legacy_state():
        _engine()
    return {r[1] for r in read_state("SELECT DISTINCT root, sha256 FROM root_files") if r[0] in want}


# --------------------------------------------------------------------------------------------- writes


def _package_rows(root: str, packages: Iterable[LockedPackage], now: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    pkgs, files = [], []
    for p in packages:
        name = canonicalize_name(p.name)
        pkgs.append(dict(root=root, name=name, version=p.version, kind=p.kind, family=p.family, variant=p.variant,
                         prediction=p.prediction, layout=p.layout, dtype=p.dtype, tokens=json.dumps(list(p.tokens)),
                         trigger=json.dumps(list(p.trigger)), requires=json.dumps(list(p.requires)), installed_at=now))
        files += [dict(root=root, package=name, path=f.path, url=redact(f.url), size=f.size, sha256=f.sha256,
                       requested_revision=f.requested_revision) for f in p.files]
    return pkgs, files


def _write(root: str, kind: str, packages: list[LockedPackage], *, replace_all: bool, lock_sha256: str = "") -> None:
    """One transaction: the root's row, and ``packages`` replacing those of the same names (or, with
    ``replace_all``, every package the root had)."""
    from sqlalchemy import delete, insert

    from hubctl.db import upsert

    Root_, Pkg, File = _table_classes()
    now = time.time()
    pkg_rows, file_rows = _package_rows(root, packages, now)
    with _engine().begin() as c:
        upsert(c, Root_, [dict(root=root, kind=kind, lock_sha256=lock_sha256, registered_at=now)], ["root"])
        if replace_all:
            c.execute(delete(File).where(File.root == root))
            c.execute(delete(Pkg).where(Pkg.root == root))
        else:
            names = [r["name"] for r in pkg_rows]
            c.execute(delete(File).where(File.root == root, File.package.in_(names)))  # type: ignore[attr-defined]
            c.execute(delete(Pkg).where(Pkg.root == root, Pkg.name.in_(names)))  # type: ignore[attr-defined]
        if pkg_rows:
            c.execute(insert(Pkg), pkg_rows)
        if file_rows:
            c.execute(insert(File), file_rows)


def set_packages(packages: Iterable[LockedPackage], root: str = INSTALL_ROOT) -> None:
    """Put ``packages`` into the install set, replacing any version of the same names (atomically)."""
    _write(root, "install", list(packages), replace_all=False)


def remove_packages(names: Iterable[str], root: str = INSTALL_ROOT) -> list[str]:
    """Take packages out of the install set (their blobs stay until gc); returns the names that were there."""
    from sqlalchemy import delete, select

    _, Pkg, File = _table_classes()
    want = [canonicalize_name(n) for n in names]
    with _engine().begin() as c:
        have = {r[0] for r in c.execute(select(Pkg.name).where(Pkg.root == root, Pkg.name.in_(want)))}  # type: ignore[attr-defined]
        gone = [n for n in dict.fromkeys(want) if n in have]
        c.execute(delete(File).where(File.root == root, File.package.in_(gone)))  # type: ignore[attr-defined]
        c.execute(delete(Pkg).where(Pkg.root == root, Pkg.name.in_(gone)))  # type: ignore[attr-defined]
    return gone


def register_lock_root(path: Path, packages: list[LockedPackage]) -> str:
    """Register the lock file at ``path`` as a root pinning ``packages`` (what was just synced from it), with
    the sha256 of its bytes; replaces what that root pinned before. Refused when the file no longer holds
    those packages (it changed while it was synced): nothing is registered then. Returns the root's key."""
    from hubctl.lock.lockfile import loads_lock

    key = lock_root_key(path)
    try:
        data = Path(key).read_bytes()
    except OSError as e:
        raise Refused(f"{path}: cannot be read to register it ({e.strerror}); run `hubctl sync` again") from None
    on_disk = loads_lock(data.decode("utf-8", errors="replace"), origin=str(path)).packages
    pins = lambda pkgs: sorted((canonicalize_name(p.name), p.version, p.variant, tuple(sorted(f.sha256 for f in p.files))) for p in pkgs)  # noqa: E731
    if pins(on_disk) != pins(packages):
        raise Refused(f"{path}: changed while it was being synced; run `hubctl sync` again")
    _write(key, "lock", list(packages), replace_all=True, lock_sha256=hashlib.sha256(data).hexdigest())
    return key


def register_adopted(path: Path, package: LockedPackage) -> str:
    """Make the adopted file at ``path`` (absolute, as found) a root pinning ``package`` (replacing what that
    root pinned before), in one transaction. Returns the root's key."""
    key = ADOPT_PREFIX + os.path.abspath(path)
    _write(key, "adopt", [package], replace_all=True)
    return key


def drop_roots(keys: Iterable[str]) -> None:
    """Forget lock roots (one transaction); their blobs go at the next gc unless another root pins them."""
    from sqlalchemy import delete

    Root_, Pkg, File = _table_classes()
    keys = [k for k in keys if k != INSTALL_ROOT]
    if not keys:
        return
    with _engine().begin() as c:
        c.execute(delete(File).where(File.root.in_(keys)))  # type: ignore[attr-defined]
        c.execute(delete(Pkg).where(Pkg.root.in_(keys)))  # type: ignore[attr-defined]
        c.execute(delete(Root_).where(Root_.root.in_(keys)))  # type: ignore[attr-defined]
