"""The lockfile: its value types, TOML read/write (sorted, byte-stable) and the inputs digest.

Vocabulary follows PEP 751 (pylock.toml) where it fits::

    lock-version = "1.0"
    created-by = "hubctl"
    inputs-digest = "sha256:..."          # normalised requirements + settings
    requires = ["demo-sd<2", "demo-style"]

    [settings]                            # only the settings that are set
    dtype = "fp16"

    [[packages]]
    name = "demo-sd"
    version = "1.4"
    kind = "checkpoint"
    family = "demo-sd1"
    variant = "fp16"

    [[packages.files]]
    path = "unet/diffusion_pytorch_model.safetensors"
    url = "hf://org/repo@<40-hex>/unet/diffusion_pytorch_model.safetensors"
    requested-revision = "main"
    commit-id = "<40-hex>"
    size = 1234
    hashes = {sha256 = "..."}

This module reads and writes lock files and decides; it never fetches, never resolves and never
touches the store. Turning a resolution into locked packages (pinning) is :mod:`hubctl.lock.pin`;
comparing two locks is :mod:`hubctl.lock.diff`; the lock's JSON Schema is :mod:`hubctl.lock.schema`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping

from hubctl.errors import BadInput, PARSE_ERRORS, parse_failure

from hubctl.tomlcompat import tomllib

__all__ = [
    "LOCK_VERSION",
    "LockedFile",
    "LockedPackage",
    "Lock",
    "inputs_digest",
    "dumps_lock",
    "loads_lock",
    "read_lock",
    "write_lock",
]

LOCK_VERSION = "1.0"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class LockedFile:
    """One pinned file: where it sits in the package, where it comes from (hf:// pinned to a 40-hex
    commit), its size and sha256. ``requested_revision`` is the branch/tag the manifest asked for."""

    path: str
    url: str
    size: int
    sha256: str
    requested_revision: str | None = None

    @property
    def commit_id(self) -> str | None:
        """The 40-hex commit of an hf:// source, else None."""
        if not self.url.startswith("hf://"):
            return None
        from hubctl.registry.manifest import parse_source

        rev = parse_source(self.url).revision
        return rev if rev and _COMMIT_RE.match(rev) else None


@dataclass(frozen=True)
class LockedPackage:
    """One resolved package: exact version and variant, with everything needed to fetch and check it."""

    name: str
    version: str
    kind: str
    family: str
    variant: str
    files: tuple[LockedFile, ...]
    prediction: str | None = None
    layout: str | None = None
    dtype: str | None = None
    tokens: tuple[str, ...] = ()
    trigger: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()

    def label(self) -> str:
        return f"{self.name} {self.version} ({self.family})"


@dataclass
class Lock:
    """The resolved, exact set. ``inputs_digest`` is the sha256 of the normalised requirements and
    settings it was made from (so ``lock --check`` can tell when it is stale)."""

    packages: list[LockedPackage] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)
    inputs_digest: str = ""
    lock_version: str = "1.0"
    created_by: str = "hubctl"
    pre: bool = False
    dtype: str | None = None
    vram: str | None = None

    def get(self, name: str) -> LockedPackage | None:
        from packaging.utils import canonicalize_name

        n = canonicalize_name(name)
        return next((p for p in self.packages if p.name == n), None)

    def pins(self) -> dict[str, str]:
        return {p.name: p.version for p in self.packages}

    def variant_pins(self) -> dict[str, str]:
        return {p.name: p.variant for p in self.packages}

    def shas(self) -> list[str]:
        return [f.sha256 for p in self.packages for f in p.files]


# --------------------------------------------------------------------------------------------- digest


def inputs_digest(requires: Iterable[str], *, pre: bool = False, dtype: str | None = None, vram: int | str | None = None) -> str:
    """``sha256:<hex>`` of the normalised requirements and settings: the same inputs, however written
    (order, spaces, ``Demo_SD`` vs ``demo-sd``, ``10GiB`` vs ``10 GiB``), give the same digest."""
    from hubctl.resolve import normalise_requirements, parse_vram

    doc = {
        "requires": normalise_requirements(list(requires)),
        "pre": bool(pre),
        "dtype": dtype.lower() if dtype else None,
        "vram": parse_vram(vram),
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------------------------- write


def _s(value: str) -> str:
    """A TOML basic string: JSON's escapes are valid TOML; TOML also forbids a raw DEL (U+007F)."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _arr(values: Iterable[str]) -> str:
    return "[" + ", ".join(_s(v) for v in values) + "]"


def dumps_lock(lock: Lock) -> str:
    """The lock as TOML text: packages sorted by name, files by path, no timestamps; byte-stable."""
    lines = [
        f"lock-version = {_s(lock.lock_version)}",
        f"created-by = {_s(lock.created_by)}",
        f"inputs-digest = {_s(lock.inputs_digest)}",
        f"requires = {_arr(lock.requires)}",
    ]
    if not lock.packages:
        lines.append("packages = []")
    settings = [(k, v) for k, v in (("pre", lock.pre or None), ("dtype", lock.dtype), ("vram", lock.vram)) if v]
    if settings:
        lines += ["", "[settings]"]
        for k, v in settings:
            lines.append(f"{k} = {'true' if v is True else _s(str(v))}")
    for p in sorted(lock.packages, key=lambda p: p.name):
        lines += ["", "[[packages]]"]
        lines += [f"name = {_s(p.name)}", f"version = {_s(p.version)}", f"kind = {_s(p.kind)}", f"family = {_s(p.family)}", f"variant = {_s(p.variant)}"]
        for key, val in (("prediction", p.prediction), ("layout", p.layout), ("dtype", p.dtype)):
            if val:
                lines.append(f"{key} = {_s(val)}")
        for key, vals in (("requires", p.requires), ("tokens", p.tokens), ("trigger", p.trigger)):
            if vals:
                lines.append(f"{key} = {_arr(vals)}")
        for f in sorted(p.files, key=lambda f: f.path):
            lines += ["", "[[packages.files]]", f"path = {_s(f.path)}", f"url = {_s(f.url)}"]
            if f.requested_revision:
                lines.append(f"requested-revision = {_s(f.requested_revision)}")
            if f.commit_id:
                lines.append(f"commit-id = {_s(f.commit_id)}")
            lines.append(f"size = {int(f.size)}")
            lines.append(f"hashes = {{sha256 = {_s(f.sha256)}}}")
    return "\n".join(lines) + "\n"


def write_lock(path: Path, lock: Lock) -> bool:
    """Write the lock atomically; return False (and leave the file alone) when the file already holds this
    lock (the same bytes, or the same lock with other line endings or spacing: the comparison freshness
    makes too)."""
    from hubctl.fsutil import atomic_write_text

    text = dumps_lock(lock)
    path = Path(path)
    try:
        old = path.read_text("utf-8")
        if old == text or dumps_lock(loads_lock(old, origin=str(path))) == text:
            return False
    except (OSError, UnicodeDecodeError, BadInput):
        pass
    atomic_write_text(path, text)
    return True


# --------------------------------------------------------------------------------------------- read


class _Ctx:
    """Reads typed values out of a TOML mapping, raising BadInput with the context path."""

    def __init__(self, origin: str, known_families: Collection[str] | None = None) -> None:
        self.origin = origin
        self.known_families = known_families

    def fail(self, where: str, msg: str) -> BadInput:
        from hubctl.registry.fields import one_line

        return BadInput(one_line(f"{where}: {msg}" if where else msg), context=self.origin)

    def get(self, d: Mapping[str, Any], key: str, typ: type | tuple[type, ...], where: str, *, required: bool = True, default: Any = None) -> Any:
        path = f"{where}.{key}" if where else key
        if key not in d:
            if required:
                raise self.fail(path, "required field is missing")
            return default
        v = d[key]
        if typ is int and isinstance(v, bool) or not isinstance(v, typ):
            words = {"str": "string", "int": "integer", "bool": "boolean", "list": "list", "dict": "table"}
            types = (typ,) if isinstance(typ, type) else typ
            raise self.fail(path, f"{v!r} is not a {' or '.join(words.get(t.__name__, t.__name__) for t in types)}")
        return v

    def checked(self, d: Mapping[str, Any], key: str, where: str, check: Callable[[str], str], *, required: bool = True) -> Any:
        """A string field passed through one of the shared field rules (:mod:`hubctl.registry.fields`)."""
        v = self.get(d, key, str, where, required=required)
        if v is None:
            return None
        try:
            return check(v)
        except ValueError as e:
            raise self.fail(f"{where}.{key}" if where else key, str(e)) from None

    def strings(self, d: Mapping[str, Any], key: str, where: str, check: Callable[[str], Any] | None = None) -> tuple[str, ...]:
        vals = self.get(d, key, list, where, required=False, default=[])
        for i, v in enumerate(vals):
            at = f"{where}.{key}[{i}]" if where else f"{key}[{i}]"
            if not isinstance(v, str):
                raise self.fail(at, f"{v!r} is not a string")
            if check is not None:
                try:
                    check(v)
                except ValueError as e:
                    raise self.fail(at, str(e)) from None
        return tuple(vals)

    def unknown(self, d: Mapping[str, Any], allowed: set[str], where: str) -> None:
        for k in d:
            if k not in allowed:
                raise self.fail(f"{where}.{k}" if where else k, "unknown field")


_TOP = {"lock-version", "created-by", "inputs-digest", "requires", "settings", "packages", "tool"}
_PKG = {"name", "version", "kind", "family", "variant", "prediction", "layout", "dtype", "tokens", "trigger", "requires", "files"}
_FILE = {"path", "url", "requested-revision", "commit-id", "size", "hashes"}


def _file(c: _Ctx, d: Any, where: str) -> LockedFile:
    from hubctl.registry.fields import check_file_path, check_text
    from hubctl.registry.manifest import parse_source

    if not isinstance(d, dict):
        raise c.fail(where, "must be a table")
    c.unknown(d, _FILE, where)
    path = c.checked(d, "path", where, check_file_path)
    url = c.checked(d, "url", where, lambda v: check_text(v, "url"))
    try:
        src = parse_source(url)  # the same source rules as manifests
    except ValueError as e:
        raise c.fail(f"{where}.url", str(e)) from None
    if src.scheme == "hf" and not src.pinned:
        raise c.fail(f"{where}.url", f"'{url}' is not pinned to a 40-hex commit")
    if src.scheme == "file" and not url.startswith("file:") and not Path(url).expanduser().is_absolute():
        raise c.fail(f"{where}.url", f"'{url}' is a relative path; a lock names local files by absolute path or file:// URL")
    commit = c.get(d, "commit-id", str, where, required=False)
    if commit is not None and (src.scheme != "hf" or src.revision != commit):
        raise c.fail(f"{where}.commit-id", f"'{commit}' does not match the revision in url")
    size = c.get(d, "size", int, where)
    if size < 0:
        raise c.fail(f"{where}.size", f"{size} is negative")
    hashes = c.get(d, "hashes", dict, where)
    sha = hashes.get("sha256")
    if not isinstance(sha, str) or not _SHA256_RE.match(sha):
        got = f"{len(sha)} characters" if isinstance(sha, str) else repr(sha)
        raise c.fail(f"{where}.hashes.sha256", f"is not a sha256 (64 lower-case hex digits, got {got})")
    rr = c.checked(d, "requested-revision", where, lambda v: check_text(v, "revision"), required=False)
    return LockedFile(path=path, url=url, size=size, sha256=sha, requested_revision=rr)


def _one_of(values: Iterable[str]) -> Callable[[str], str]:
    allowed = tuple(values)

    def check(v: str) -> str:
        if v not in allowed:
            raise ValueError(f"'{v}' is not one of: {', '.join(allowed)}")
        return v

    return check


def _package(c: _Ctx, d: Any, where: str) -> LockedPackage:
    """One package, every field under the same rules as a manifest's (:mod:`hubctl.registry.fields`)."""
    from typing import get_args

    from packaging.version import InvalidVersion, Version

    from hubctl.registry.fields import check_family_id, check_package_name, check_requirement, check_variant_name
    from hubctl.registry.manifest import KINDS, Layout, Prediction

    if not isinstance(d, dict):
        raise c.fail(where, "must be a table")
    c.unknown(d, _PKG, where)
    name = c.checked(d, "name", where, lambda v: check_package_name(v, normalised=True))
    version = c.get(d, "version", str, where)
    try:
        Version(version)
    except InvalidVersion:
        raise c.fail(f"{where}.version", f"'{version}' is not a PEP 440 version") from None
    kind = c.checked(d, "kind", where, _one_of(KINDS))
    family = c.checked(d, "family", where, lambda v: check_family_id(v, c.known_families))
    variant = c.checked(d, "variant", where, check_variant_name)
    files_raw = c.get(d, "files", list, where)
    if not files_raw:
        raise c.fail(f"{where}.files", "a package needs at least one file")
    files = tuple(_file(c, f, f"{where}.files[{i}]") for i, f in enumerate(files_raw))
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths):
        raise c.fail(f"{where}.files", "a path appears twice")
    return LockedPackage(
        name=name,
        version=version,
        kind=kind,
        family=family,
        variant=variant,
        files=files,
        prediction=c.checked(d, "prediction", where, _one_of(get_args(Prediction)), required=False),
        layout=c.checked(d, "layout", where, _one_of(get_args(Layout)), required=False),
        dtype=c.get(d, "dtype", str, where, required=False),
        tokens=c.strings(d, "tokens", where),
        trigger=c.strings(d, "trigger", where),
        requires=c.strings(d, "requires", where, check_requirement),
    )


def loads_lock(text: str, *, origin: str = "hubctl.lock", known_families: Collection[str] | None = None) -> Lock:
    """Parse and validate lock text; raise BadInput with one line naming ``origin`` and the field. Names,
    families, variants, paths and requirements follow the manifest's rules (:mod:`hubctl.registry.fields`);
    with ``known_families`` every family must also be one of them."""
    c = _Ctx(origin, known_families)
    try:
        data = tomllib.loads(text)
    except PARSE_ERRORS as e:
        raise c.fail("", f"invalid TOML: {parse_failure(e)}") from None
    c.unknown(data, _TOP, "")
    lv = c.get(data, "lock-version", str, "")
    if lv.split(".")[0] != LOCK_VERSION.split(".")[0]:
        raise c.fail("lock-version", f"'{lv}' is not supported (this hubctl reads {LOCK_VERSION})")
    digest = c.get(data, "inputs-digest", str, "")
    if not re.match(r"^sha256:[0-9a-f]{64}$", digest):
        raise c.fail("inputs-digest", f"'{digest}' is not 'sha256:' and 64 hex digits")
    requires = list(c.strings(data, "requires", ""))
    from hubctl.resolve import parse_requirement

    for i, r in enumerate(requires):
        try:
            parse_requirement(r)
        except BadInput as e:
            raise c.fail(f"requires[{i}]", e.message) from None
    settings = c.get(data, "settings", dict, "", required=False, default={})
    c.unknown(settings, {"pre", "dtype", "vram"}, "settings")
    pre = c.get(settings, "pre", bool, "settings", required=False, default=False)
    dtype = c.get(settings, "dtype", str, "settings", required=False)
    vram = c.get(settings, "vram", (str, int), "settings", required=False)
    packages_raw = c.get(data, "packages", list, "", required=False, default=[])
    packages = [_package(c, p, f"packages[{i}]") for i, p in enumerate(packages_raw)]
    names = [p.name for p in packages]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise c.fail("packages", f"'{dup}' appears twice")
    return Lock(
        packages=packages,
        requires=requires,
        inputs_digest=digest,
        lock_version=lv,
        created_by=c.get(data, "created-by", str, "", required=False, default="hubctl"),
        pre=pre,
        dtype=dtype,
        vram=str(vram) if vram is not None else None,
    )


def read_lock(path: Path, *, known_families: Collection[str] | None = None) -> Lock:
    """Read and validate a lock file (BadInput naming the file on any problem)."""
    from hubctl.fsutil import read_text_input

    path = Path(path)
    text = read_text_input(path, missing="no such lock file; run `hubctl lock` first", cannot="cannot read lock file")
    return loads_lock(text, origin=str(path), known_families=known_families)
