"""The index, compile side: read every configured registry (folders of manifests or built index files),
check every manifest against the merged families, and write the SQLite index that :mod:`hubctl.registry.index`
reads; also ``hubctl registry build``'s static index file.

- Compiling goes through sqlmodel: the tables below, declared on first use and filled in one transaction.
  The new database is written beside the old one and ``os.replace``d into place, so a registry that fails
  to validate leaves the previous index answering.
- :func:`registry_fingerprint` is the cheap digest (registry list, file names, each small file's sha256 and
  each large file's size, mtime and ctime) stored with the index and compared by
  :func:`hubctl.registry.manage.open_index` to decide whether to compile.

A registry is a folder laid out like ``registry/`` (``families.toml`` optional, then
``manifests/<kind>/<name>.toml``) or a single index file written by :func:`build_index_file`
(``hubctl registry build``): ``{"hubctl-index": 1, "families": [...], "manifests": [...]}``. Families of
all registries merge into one table (a later registry may redefine an id only when added with
``--override-families``) and every manifest is checked against the merged family ids; what a registry may say
(no credentials in sources, only remote sources from a URL registry) is :mod:`hubctl.registry.trust`.
When two registries define the same package, the first one wins (the bundled default is first) and the
compile reports a warning.

This module never downloads (URL registries are fetched by hubctl.registry.configured), never answers queries
(that is :class:`hubctl.registry.index.Index`) and never renders. sqlmodel/SQLAlchemy are imported only inside
the functions that write.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from hubctl.errors import BadInput, PARSE_ERRORS, parse_failure
from hubctl.registry.index import INDEX_FORMAT, Index

if TYPE_CHECKING:
    from hubctl.registry.families import Family, FamilyTable
    from hubctl.registry.manifest import Manifest
    from hubctl.registry.configured import RegistryEntry

__all__ = [
    "rebuild_index",
    "registry_fingerprint",
    "load_registry",
    "write_index_db",
    "build_index_file",
    "failed_marker",
]

INDEX_FILE_KEY = "hubctl-index"  # the marker key of a built index file (``hubctl registry build``)


def failed_marker(db: Path) -> Path:
    """Where a failed compile is remembered beside the index (its fingerprint and one-line reason)."""
    return db.with_name(db.name + ".failed.json")


# --------------------------------------------------------------------------------------------- loading


def _registry_files(root: Path, kind: str) -> list[tuple[str, Path]]:
    """(name relative to the registry, path) of every file a registry's content depends on, sorted."""
    if kind in ("file", "url"):
        return [("", root)]
    out: list[tuple[str, Path]] = []
    fam = root / "families.toml"
    if fam.is_file():
        out.append(("families.toml", fam))
    manifests = root / "manifests"
    if manifests.is_dir():
        for kind_dir in sorted(manifests.iterdir(), key=lambda p: p.name):
            if kind_dir.name.startswith("."):
                continue
            if not kind_dir.is_dir():
                out.append((f"manifests/{kind_dir.name}", kind_dir))
                continue
            with os.scandir(kind_dir) as it:
                names = sorted(e.name for e in it if not e.name.startswith("."))
            for n in names:
                out.append((f"manifests/{kind_dir.name}/{n}", kind_dir / n))
    return out


HASH_LIMIT = 1 << 20
"""Registry files up to this size (every manifest, families.toml, most index files) enter the fingerprint by
content; larger ones by size, mtime, ctime and inode (ctime: userland cannot set it back)."""


def _file_key(p: Path) -> str:
    """What the fingerprint knows of one file: its sha256 when small (so an edit that keeps size and mtime,
    as `cp --preserve` or `rsync -t` leave it, is still seen), else its stat including ctime."""
    import stat as stat_mod

    st = p.stat()
    if stat_mod.S_ISREG(st.st_mode) and st.st_size <= HASH_LIMIT:
        with open(p, "rb") as f:
            data = f.read(HASH_LIMIT + 1)
        return f"{len(data)}\0sha256:{hashlib.sha256(data).hexdigest()}"
    return f"{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}"


def registry_fingerprint(entries: Sequence["RegistryEntry"], overrides: dict[str, Path] | None = None) -> str:
    """A cheap digest of what the index would be compiled from: registry list, file names, and each file's
    content (small files) or stat with ctime (large ones)."""
    h = hashlib.sha256(f"hubctl-index/{INDEX_FORMAT}\n".encode())
    for e in entries:
        root = (overrides or {}).get(e.name) or e.path
        flag = "\0override-families" if e.override_families else ""
        h.update(f"R\0{e.name}\0{e.location}\0{e.kind}{flag}\n".encode())
        try:
            files = _registry_files(root, e.kind)
        except OSError:
            h.update(b"missing\n")
            continue
        for rel, p in files:
            try:
                h.update(f"F\0{rel}\0{_file_key(p)}\n".encode())
            except OSError:
                h.update(f"F\0{rel}\0missing\n".encode())
    return h.hexdigest()


def _load_index_file(path: Path, origin: str) -> tuple[list["Family"], list[tuple[str, dict[str, Any]]]]:
    """Families and (origin, raw manifest) pairs from a built index file."""
    from pydantic import ValidationError

    from hubctl.registry.families import Family
    from hubctl.registry.manifest import format_validation_error

    try:
        raw = path.read_bytes()
    except OSError as e:
        hint = "; run `hubctl registry update`" if "://" in origin else ""
        raise BadInput(f"cannot read registry index ({e.strerror or e}){hint}", context=origin) from None
    try:
        data = json.loads(raw)
    except PARSE_ERRORS as e:
        raise BadInput(f"invalid JSON: {parse_failure(e)}", context=origin) from None
    if not isinstance(data, dict) or data.get(INDEX_FILE_KEY) != 1:
        raise BadInput(f"not a hubctl registry index (expected a JSON object with \"{INDEX_FILE_KEY}\": 1)", context=origin)
    fams_raw = data.get("families", [])
    mans_raw = data.get("manifests", [])
    if not isinstance(fams_raw, list):
        raise BadInput("families: must be a list", context=origin)
    if not isinstance(mans_raw, list):
        raise BadInput("manifests: must be a list", context=origin)
    families = []
    for i, f in enumerate(fams_raw):
        try:
            families.append(Family.model_validate(f))
        except ValidationError as e:
            raise BadInput(f"families[{i}].{format_validation_error(e)}", context=origin) from None
    mans = []
    for i, m in enumerate(mans_raw):
        label = m.get("name") if isinstance(m, dict) else None
        mans.append((f"{origin}: manifests[{i}]" + (f" ({label})" if isinstance(label, str) else ""), m))
    return families, mans


def load_registry(root: Path, kind: str = "folder", *, origin: str | None = None) -> tuple[list["Family"], list[tuple[str, Any]]]:
    """Read one registry's families (validated) and its manifests, not yet checked against families.

    Returns ``(families, [(origin, path-or-raw-dict), ...])``; folder manifests are returned as paths and
    parsed by :func:`_parse_all` once all families are known."""
    from hubctl.registry.families import load_families

    origin = origin or str(root)
    if kind in ("file", "url"):
        return _load_index_file(root, origin)
    if not root.is_dir():
        raise BadInput("registry folder does not exist (remove it with `hubctl registry remove`)", context=origin)
    families: list[Family] = []
    fam = root / "families.toml"
    if fam.is_file():
        families = list(load_families(fam))
    from hubctl.registry.manifest import KINDS

    items: list[tuple[str, Any]] = []
    for rel, p in _registry_files(root, "folder"):
        if not rel.startswith("manifests/"):
            continue
        parts = rel.split("/")
        if len(parts) == 2:
            if p.name.endswith(".toml"):
                raise BadInput("manifests must sit in manifests/<kind>/<name>.toml", context=str(p))
            continue  # a README beside the kind folders
        if parts[1] not in KINDS:
            raise BadInput(f"kind folder '{parts[1]}' is not one of: {', '.join(KINDS)}", context=str(p))
        if not p.name.endswith(".toml"):
            continue  # READMEs and the like
        if p.is_dir():
            raise BadInput("is a folder; expected a manifest file <name>.toml", context=str(p))
        items.append((str(p), p))
    return families, items


def _parse_all(items: list[tuple[str, Any]], known_families: Iterable[str], base: Path | None = None) -> list["Manifest"]:
    """Parse and check every manifest; with ``base``, a relative local ``source`` is made absolute against it
    (the registry's folder), so the index, and every lock made from it, names the file wherever it is used."""
    from hubctl.registry.manifest import load_manifest, parse_manifest, with_local_sources_under

    known = frozenset(known_families)
    out = []
    for origin, item in items:
        if isinstance(item, Path):
            m = load_manifest(item, known_families=known)
        elif isinstance(item, dict):
            m = parse_manifest(item, origin=origin, known_families=known)
        else:
            raise BadInput("must be a table (a manifest object)", context=origin)
        out.append(with_local_sources_under(m, base) if base is not None else m)
    return out


def _source_base(root: Path, kind: str) -> Path | None:
    """The folder relative ``source`` paths of a registry are read from: a folder registry's own folder, a
    built index file's folder; None for a URL registry (its relative paths mean nothing here)."""
    if kind == "folder":
        return Path(root).resolve()
    if kind == "file":
        return Path(root).resolve().parent
    return None


def _collect(
    entries: Sequence["RegistryEntry"], overrides: dict[str, Path] | None
) -> tuple["FamilyTable", dict[str, str], list[tuple[str, "Manifest"]], list[str]]:
    """Load every registry; return the merged families, the registry each family comes from,
    (registry, manifest) pairs and warnings."""
    from hubctl.registry.families import FamilyTable
    from hubctl.registry.trust import check_families, check_manifest_sources

    families = FamilyTable()
    family_origin: dict[str, str] = {}
    pending: list[tuple[str, list[tuple[str, Any]], Path | None]] = []
    remote: dict[str, bool] = {}
    for e in entries:
        root = (overrides or {}).get(e.name) or e.path
        origin = e.location if e.kind == "url" else str(root)
        fams, items = load_registry(root, e.kind, origin=origin)
        check_families(e, fams, family_origin, {f.id: f for f in families}, origin=origin)
        families = families.merged(FamilyTable(fams))
        family_origin.update({f.id: e.name for f in fams})
        pending.append((e.name, items, _source_base(e.path, e.kind)))
        remote[e.name] = e.kind == "url"
    seen: dict[str, str] = {}
    result: list[tuple[str, Manifest]] = []
    warnings: list[str] = []
    for reg, items, base in pending:
        for (where, _), m in zip(items, _parse_all(items, families.ids(), base)):
            check_manifest_sources(where, m, registry=reg, remote=remote[reg])
            key = m.canonical_name
            if key in seen:
                if seen[key] == reg:
                    raise BadInput(f"package '{m.name}' is defined twice in registry '{reg}'")
                warnings.append(f"package '{m.name}' of registry '{reg}' is shadowed by registry '{seen[key]}'")
                continue
            seen[key] = reg
            result.append((reg, m))
    return families, family_origin, result, warnings

# --------------------------------------------------------------------------------------------- writing


_TABLES: tuple[type, ...] | None = None


def _tables() -> tuple[type, ...]:
    """The index's SQLModel tables, declared on first use so the read path never imports sqlmodel.

    (Built with ``types.new_class`` because this module uses postponed annotations, which SQLModel cannot
    resolve for classes declared inside a function.)

    - ``index_package``: one row per package: normalised name (primary key), kind, registry, summary,
      latest version, versions (JSON, newest first), families (" sd1 sd2 "), search text, manifest (JSON);
    - ``index_family``: one row per family id (JSON of the Family model);
    - ``index_registry``: the registries compiled, in order, with their package counts;
    - ``index_meta``: fingerprint, format, build time.
    """
    global _TABLES
    if _TABLES is None:
        import types
        from typing import Optional

        from sqlmodel import Field, SQLModel

        def table(name: str, tablename: str, fields: dict[str, tuple[Any, Any]]) -> type:
            def body(ns: dict[str, Any]) -> None:
                ns["__tablename__"] = tablename
                ns["__annotations__"] = {k: t for k, (t, _) in fields.items()}
                ns.update({k: d for k, (_, d) in fields.items()})

            return types.new_class(name, (SQLModel,), {"table": True}, body)

        IndexPackage = table("IndexPackage", "index_package", {
            "name": (str, Field(primary_key=True)),
            "display_name": (str, Field()),
            "kind": (str, Field(index=True)),
            "registry_name": (str, Field(index=True, sa_column_kwargs={"name": "registry"})),
            "summary": (str, Field(default="")),
            "latest": (str, Field(default="")),
            "versions": (str, Field(default="[]")),
            "families": (str, Field(default="")),
            "search_text": (str, Field(default="")),
            "manifest": (str, Field()),
        })
        IndexFamily = table("IndexFamily", "index_family", {
            "id": (str, Field(primary_key=True)),
            "registry_name": (str, Field(default="", sa_column_kwargs={"name": "registry"})),
            "data": (str, Field()),
        })
        IndexRegistry = table("IndexRegistry", "index_registry", {
            "name": (str, Field(primary_key=True)),
            "position": (int, Field()),
            "location": (str, Field()),
            "kind": (str, Field()),
            "packages": (int, Field(default=0)),
        })
        IndexMeta = table("IndexMeta", "index_meta", {
            "key": (str, Field(primary_key=True)),
            "value": (Optional[str], Field(default=None)),
        })
        _TABLES = (IndexPackage, IndexFamily, IndexRegistry, IndexMeta)
    return _TABLES


def _ordered_versions(m: "Manifest") -> tuple[list[str], str]:
    """(versions newest first, latest final non-yanked version or else the newest)."""
    keyed = sorted(((v.parsed, v) for v in m.versions), key=lambda pv: pv[0], reverse=True)
    ordered = [v.version for _, v in keyed]
    final = next((v.version for pv, v in keyed if not pv.is_prerelease and not v.yanked), ordered[0])
    return ordered, final


def _search_text(m: "Manifest") -> str:
    parts = [m.name, m.summary, m.description or "", " ".join(m.tags), " ".join(m.authors)]
    for v in m.versions:
        parts += [*v.trigger, *v.tokens, v.task, v.family]
    return " ".join(p for p in parts if p).lower()


def _package_row(registry: str, m: "Manifest") -> dict[str, Any]:
    fams = sorted({v.family for v in m.versions})
    ordered, latest = _ordered_versions(m)
    return {
        "name": m.canonical_name,
        "display_name": m.name,
        "kind": m.kind,
        "registry_name": registry,
        "summary": m.summary,
        "latest": latest,
        "versions": json.dumps(ordered),
        "families": " " + " ".join(fams) + " ",
        "search_text": _search_text(m),
        "manifest": m.model_dump_json(exclude_defaults=True),
    }


def write_index_db(
    path: Path,
    families: "FamilyTable",
    packages: Iterable[tuple[str, "Manifest"]],
    *,
    registries: Sequence["RegistryEntry"] = (),
    fingerprint: str = "",
    family_registry: dict[str, str] | None = None,
    warnings: Sequence[str] = (),
    batch: int = 5000,
) -> Path:
    """Write a complete index database to ``path`` atomically (new file, one transaction, os.replace).

    ``packages`` are (registry name, manifest) pairs; the first of two with the same normalised name wins.
    Usable directly by benchmarks that generate manifests in memory."""
    from sqlalchemy import insert
    from sqlmodel import Session, create_engine

    from hubctl.db import ensure_tables
    from hubctl.fsutil import make_dirs

    IndexPackage, IndexFamily, IndexRegistry, IndexMeta = _tables()
    path = Path(path)
    make_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    engine = create_engine(f"sqlite:///{tmp}")
    try:
        ensure_tables(engine, _tables())
        counts: dict[str, int] = {}
        with Session(engine) as s:
            fam_rows = [
                {"id": f.id, "registry_name": (family_registry or {}).get(f.id, ""), "data": f.model_dump_json()}
                for f in families
            ]
            if fam_rows:
                s.exec(insert(IndexFamily), params=fam_rows)  # type: ignore[call-overload]
            seen: set[str] = set()
            rows: list[dict[str, Any]] = []
            for reg, m in packages:
                row = _package_row(reg, m)
                if row["name"] in seen:
                    continue
                seen.add(row["name"])
                counts[reg] = counts.get(reg, 0) + 1
                rows.append(row)
                if len(rows) >= batch:
                    s.exec(insert(IndexPackage), params=rows)  # type: ignore[call-overload]
                    rows = []
            if rows:
                s.exec(insert(IndexPackage), params=rows)  # type: ignore[call-overload]
            for pos, e in enumerate(registries):
                s.add(IndexRegistry(name=e.name, position=pos, location=e.location, kind=e.kind, packages=counts.get(e.name, 0)))
            s.add(IndexMeta(key="fingerprint", value=fingerprint))
            s.add(IndexMeta(key="format", value=str(INDEX_FORMAT)))
            s.add(IndexMeta(key="warnings", value=json.dumps(list(warnings))))
            s.add(IndexMeta(key="built", value=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
            s.commit()
        engine.dispose()
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        engine.dispose()
        tmp.unlink(missing_ok=True)
        raise
    from hubctl.fsutil import fsync_dir

    fsync_dir(path.parent)
    return path

def rebuild_index(
    entries: Sequence["RegistryEntry"] | None = None,
    *,
    overrides: dict[str, Path] | None = None,
    db_path: Path | None = None,
) -> "Index":
    """Compile the registries into the index now (strict): raise BadInput on the first bad manifest or
    family, leaving the previous index file untouched. ``overrides`` maps a registry name to the content to
    read instead of its own path (a freshly fetched URL index not yet moved into place)."""
    from hubctl.config import index_db_path
    from hubctl.registry.configured import list_registries

    entries = list(entries) if entries is not None else list_registries()
    db = Path(db_path) if db_path is not None else index_db_path()
    fp = registry_fingerprint(entries, overrides)
    families, family_origin, packages, warnings = _collect(entries, overrides)
    write_index_db(db, families, packages, registries=entries, fingerprint=fp, family_registry=family_origin, warnings=warnings)
    failed_marker(db).unlink(missing_ok=True)
    idx = Index(db)
    idx.warnings.extend(warnings)
    return idx

# --------------------------------------------------------------------------------------------- building


def build_index_file(folder: Path, out: Path) -> tuple[int, int]:
    """Validate a registry folder and write it as one static index file (JSON) that ``registry add``
    accepts by path or URL. Families the folder uses may come from the bundled default. Returns
    (families, manifests) written."""
    from hubctl.registry.families import FamilyTable, default_families
    from hubctl.fsutil import atomic_write_text

    folder = Path(folder)
    fams, items = load_registry(folder, "folder")
    table = default_families().merged(FamilyTable(fams))
    manifests = _parse_all(items, table.ids())
    from hubctl.registry.trust import check_manifest_sources

    seen: set[str] = set()
    for (where, _), m in zip(items, manifests):
        check_manifest_sources(where, m, registry=str(folder), remote=False)
        if m.canonical_name in seen:
            raise BadInput(f"package '{m.name}' is defined twice", context=str(folder))
        seen.add(m.canonical_name)
    doc = {
        INDEX_FILE_KEY: 1,
        "families": [f.model_dump(mode="json", exclude_defaults=True) for f in fams],
        "manifests": [m.model_dump(mode="json", exclude_defaults=True) for m in sorted(manifests, key=lambda m: m.canonical_name)],
    }
    atomic_write_text(Path(out), json.dumps(doc, indent=1, sort_keys=False, ensure_ascii=False) + "\n")
    return len(fams), len(manifests)
