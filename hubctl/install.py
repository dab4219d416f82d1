"""The one path that ``install``, ``sync`` and ``run`` share: requirements -> resolve -> pin -> fetch ->
store -> record.

- :func:`pin_file` turns a manifest's FileRef into a LockedFile (hf revision -> 40-hex commit; size and
  sha256 from the manifest, the Hub's LFS metadata, or, when only the bytes can tell, by fetching them
  into the store and hashing on the way).
- :func:`install_packages` fetches every file of a set of locked packages, one download per unique
  sha256 (an HF cache blob or a store blob is reused), every byte hash-checked, then records them as
  installed in one transaction. ``hubctl sync`` and ``hubctl run`` call it with the lock's packages.
- :func:`install` resolves requirements against the index and what is installed, then does the above.
- :func:`uninstall`, :func:`verify_installed`, :func:`gc` for the housekeeping commands.

Orchestration only: bytes are moved by sources, checked and kept by the store, decided by the resolver.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterable, Optional

from hubctl.errors import BadInput, HubctlError, Refused, SourceError, redact
from hubctl.lock import LockedFile, LockedPackage

if TYPE_CHECKING:
    from hubctl.manifest import FileRef
    from hubctl.progress import ProgressSink
    from hubctl.store import FetchResult, GcReport, Store

__all__ = [
    "pin_file",
    "install_packages",
    "install",
    "uninstall",
    "verify_installed",
    "gc",
    "InstallReport",
    "BlobOutcome",
    "UninstallReport",
    "VerifyReport",
]

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


# --------------------------------------------------------------------------------------------- pinning


def pin_file(ref: "FileRef", *, progress: "bool | ProgressSink" = False) -> LockedFile:
    """Pin one manifest file: the source with its revision resolved to a 40-hex commit, its size and sha256.

    Nothing travels when the manifest already says everything and the source is pinned. Otherwise the
    Hub's metadata fills the commit, size and (LFS) sha256; a sha256 that only the bytes can tell is
    learnt by fetching them into the store (so the install that follows costs nothing). A sha256 or size
    that the Hub states differently from the manifest is refused.
    """
    from hubctl.sources import source_for

    sref = ref.source_ref
    if ref.sha256 and ref.size is not None and sref.pinned:
        return LockedFile(path=ref.path, url=ref.source, size=ref.size, sha256=ref.sha256,
                          requested_revision=None)
    src = source_for(ref.source)
    url, requested, sha, size = ref.source, None, ref.sha256, ref.size
    if sref.scheme == "hf":
        st = src.stat()
        commit = st.commit or (sref.revision if sref.pinned else None)
        if commit is None:
            raise SourceError(f"{redact(ref.source)}: could not resolve revision '{sref.revision or 'main'}' to a commit")
        if not sref.pinned:
            requested = sref.revision or "main"
        url = sref.with_revision(commit).url
        if sha and st.sha256 and sha != st.sha256:
            raise Refused(f"{redact(ref.source)}: the Hub says sha256 {st.sha256}, the manifest says {sha}")
        if size is not None and st.size is not None and size != st.size:
            raise Refused(f"{redact(ref.source)}: the Hub says {st.size} bytes, the manifest says {size}")
        sha = sha or st.sha256
        size = size if size is not None else st.size
        src = source_for(url)
    elif sref.scheme == "file":
        from pathlib import Path

        url = Path(sref.path or "").expanduser().resolve().as_uri()
        src = source_for(url)
    elif sha is not None and size is None:
        size = src.stat().size  # the sha256 is known: a HEAD for the size is enough
    if sha is None or size is None:
        res = _fetch_unknown(src, url, sha, size, progress)
        if sha is not None and res.sha256 != sha:  # fetch() already refuses this; belt and braces
            raise Refused(f"{redact(url)}: sha256 {res.sha256} differs from the manifest's {sha}")
        sha, size = res.sha256, res.size
    return LockedFile(path=ref.path, url=url, size=int(size), sha256=sha, requested_revision=requested)


def _fetch_unknown(src: Any, url: str, sha: Optional[str], size: Optional[int],
                   progress: "bool | ProgressSink" = False) -> "FetchResult":
    from hubctl.progress import make_progress
    from hubctl.sources.base import url_key
    from hubctl.store import Store

    store = Store()
    cached = src.cached_blob(sha)
    if cached is not None and sha is None:
        return store.import_file(cached, label=redact(url))
    with make_progress(progress) as prog, store.using():
        task = prog.task(f"pinning {redact(url).rsplit('/', 1)[-1]}", size)
        try:
            return store.fetch(
                sha256=sha,
                size=size,
                key=url_key(url),
                label=redact(url),
                download=lambda pf: src.download(pf, expected_size=size, progress=task.advance),
            )
        finally:
            task.done()


# --------------------------------------------------------------------------------------------- install


@dataclass
class BlobOutcome:
    """How one unique blob got into the store: ``how`` is "store" (already there), "hf-cache" (reused
    from the HF cache), "downloaded" or "resumed" (an interrupted download finished)."""

    sha256: str
    size: int
    how: str
    downloaded: int = 0
    paths: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "how": self.how, "downloaded": self.downloaded, "files": self.paths}


@dataclass
class InstallReport:
    """What an install did: packages recorded (with their previous version, if any) and each blob's outcome."""

    packages: list[LockedPackage] = field(default_factory=list)
    previous: dict[str, str] = field(default_factory=dict)
    blobs: list[BlobOutcome] = field(default_factory=list)

    @property
    def downloaded_bytes(self) -> int:
        return sum(b.downloaded for b in self.blobs)

    def count(self, how: str) -> int:
        return sum(1 for b in self.blobs if b.how == how)

    def status(self, p: LockedPackage) -> str:
        old = self.previous.get(p.name)
        if old is None:
            return "installed"
        if old == f"{p.version} {p.variant}":
            return "unchanged"
        return "replaced"

    def to_json(self) -> dict[str, Any]:
        return {
            "packages": [
                {
                    "name": p.name,
                    "version": p.version,
                    "variant": p.variant,
                    "kind": p.kind,
                    "family": p.family,
                    "status": self.status(p),
                    "previous": self.previous.get(p.name),
                    "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in p.files],
                    "size": sum(f.size for f in p.files),
                }
                for p in self.packages
            ],
            "blobs": [b.to_json() for b in self.blobs],
            "downloaded_bytes": self.downloaded_bytes,
            "reused": {"store": self.count("store"), "hf_cache": self.count("hf-cache")},
        }


def _check_packages(packages: list[LockedPackage]) -> dict[str, list[tuple[LockedPackage, LockedFile]]]:
    blobs: dict[str, list[tuple[LockedPackage, LockedFile]]] = {}
    for p in packages:
        for f in p.files:
            if not _SHA_RE.match(f.sha256 or ""):
                raise BadInput(f"{p.name} {p.version}: {f.path}: '{f.sha256}' is not a sha256")
            if f.size is None or f.size < 0:
                raise BadInput(f"{p.name} {p.version}: {f.path}: no size")
            entries = blobs.setdefault(f.sha256, [])
            if entries and entries[0][1].size != f.size:
                q, g = entries[0]
                raise BadInput(
                    f"{p.name} {f.path} and {q.name} {g.path} have the same sha256 but sizes {f.size} and {g.size}"
                )
            entries.append((p, f))
    return blobs


def _fetch_blob(store: "Store", sha: str, entries: list[tuple[LockedPackage, LockedFile]], prog: "ProgressSink") -> BlobOutcome:
    from hubctl.sources import source_for
    from hubctl.store import HashMismatch

    p0, f0 = entries[0]
    size = f0.size
    paths = [f"{p.name}/{f.path}" for p, f in entries]
    label = f"{p0.name} {p0.version}: {f0.path}"
    if store.has_blob(sha):
        check = store.verify([sha])[0]
        if check.ok:
            return BlobOutcome(sha, size, "store", paths=paths)
        prog.note(f"{label}: the stored copy is damaged ({check.problem}); fetching it again")
        store.remove_blob(sha)
    urls = list(dict.fromkeys(f.url for _, f in entries))
    sources = [source_for(u) for u in urls]
    for src in sources:
        cached = src.cached_blob(sha)
        if cached is None:
            continue
        try:
            res = store.import_file(cached, sha256=sha, size=size, link=True, label=label)
            return BlobOutcome(sha, size, "store" if res.reused else "hf-cache", paths=paths)
        except (HashMismatch, OSError):
            continue  # a damaged cache file: download instead
    errors: list[HubctlError] = []
    for url, src in zip(urls, sources):
        task = prog.task(f"{p0.name} {f0.path}", size)
        try:
            res = store.fetch(
                sha256=sha,
                size=size,
                label=label,
                download=lambda pf, src=src, task=task: src.download(pf, expected_size=size, progress=task.advance),
                on_wait=lambda: prog.note(f"{label}: another hubctl process is fetching it; waiting"),
            )
        except SourceError as e:
            errors.append(e if redact(url) in str(e) or isinstance(e, HashMismatch) else e.with_context(label))
            continue
        finally:
            task.done()
        if res.reused:
            return BlobOutcome(sha, size, "store", paths=paths)
        return BlobOutcome(sha, size, "resumed" if res.resumed else "downloaded", downloaded=res.downloaded, paths=paths)
    raise errors[0]


def install_packages(packages: list[LockedPackage], *, progress: "bool | ProgressSink" = True, workers: int = 4) -> InstallReport:
    """Fetch every file of ``packages`` into the store (one download per unique sha256; size and sha256
    checked; HF cache and store blobs reused) and record the packages as installed, in one transaction,
    only when every file arrived. Blobs that did arrive stay in the store, so a rerun fetches only the rest.
    Raises SourceError (exit 3) for a source that failed, naming the file."""
    from hubctl.installed import installed_packages, record_installed
    from hubctl.progress import make_progress
    from hubctl.store import Store

    blobs = _check_packages(packages)
    store = Store()
    report = InstallReport(packages=list(packages))
    before = {p.name: f"{p.version} {p.variant}" for p in installed_packages()}
    from packaging.utils import canonicalize_name

    report.previous = {canonicalize_name(p.name): before[canonicalize_name(p.name)] for p in packages if canonicalize_name(p.name) in before}
    prog = make_progress(progress)
    outcomes: dict[str, BlobOutcome] = {}
    errors: list[BaseException] = []
    with prog, store.using():
        items = sorted(blobs.items(), key=lambda kv: -kv[1][0][1].size)  # big ones first: best overlap
        if len(items) <= 1 or workers <= 1:
            for sha, entries in items:
                try:
                    outcomes[sha] = _fetch_blob(store, sha, entries, prog)
                except HubctlError as e:
                    errors.append(e)
        else:
            from hubctl.partial import cancel_all

            with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="fetch") as ex:
                futs = {sha: ex.submit(_fetch_blob, store, sha, entries, prog) for sha, entries in items}
                try:
                    for sha, fut in futs.items():
                        try:
                            outcomes[sha] = fut.result()
                        except HubctlError as e:
                            errors.append(e)
                except KeyboardInterrupt:
                    cancel_all()  # the fetch threads stop at their next write; partial files stay for a rerun
                    for fut in futs.values():
                        fut.cancel()
                    ex.shutdown(wait=True)
                    cancel_all(False)
                    raise
        if errors:
            raise errors[0]
        record_installed(packages)
    report.blobs = [outcomes[sha] for sha in blobs]
    return report


def _family_exclusions(requirements: list[str], index: Any, family: str) -> list[str]:
    """``name!=v`` for every version of each named package that is not of ``family`` (PEP 440 has no
    'or', but exclusions let the resolver pick the newest version of the wanted family)."""
    from hubctl.resolve import parse_requirement

    out = []
    for r in requirements:
        name = parse_requirement(r).name
        m = index.get(name)
        if m is None:
            continue
        other = [v.version for v in m.versions if v.family != family]
        if len(other) == len(m.versions):
            fams = ", ".join(sorted({v.family for v in m.versions}))
            raise Refused(f"{name} has no version of family {family} (its families: {fams})")
        if other:
            out.append(f"{name}" + ",".join(f"!={v}" for v in other))
    return out


def install(
    requirements: list[str],
    *,
    pre: bool = False,
    dtype: Optional[str] = None,
    vram: Optional[str] = None,
    family: Optional[str] = None,
    progress: "bool | ProgressSink" = True,
    index: Any = None,
) -> InstallReport:
    """``hubctl install NAME[SPEC]...``: the newest versions and variants that fit what is installed
    (installed packages not named are kept at their versions) and ``family`` when given; pinned; fetched;
    recorded. A package named again may change version (its dependants must still fit)."""
    from packaging.utils import canonicalize_name

    from hubctl.installed import installed_packages
    from hubctl.lock import Lock, pin
    from hubctl.resolve import parse_requirement, resolve

    if not requirements:
        raise BadInput("nothing to install: name at least one package")
    if index is None:
        from hubctl.index import open_index

        index = open_index()
    current = installed_packages()
    named = {parse_requirement(r).name for r in requirements}
    reqs = list(requirements)
    if family:
        reqs += _family_exclusions(requirements, index, family)
    keep = [p for p in current if canonicalize_name(p.name) not in named and index.get(p.name) is not None]
    reqs += [f"{p.name}=={p.version}" for p in keep]
    try:
        res = resolve(
            reqs,
            index,
            pre=pre,
            dtype=dtype,
            vram=vram,
            installed={p.name: p.version for p in current},
            locked_variants={p.name: p.variant for p in current},
        )
    except Refused as e:
        if not keep:
            raise
        kept = ", ".join(f"{p.name} {p.version}" for p in keep)
        raise Refused(f"{e.render()} (installed packages are kept as they are: {kept}; "
                      "name one to change it, or `hubctl uninstall` it)") from None
    picks = [pk for pk in res.picks if pk.name in named or not any(canonicalize_name(k.name) == pk.name for k in keep)]
    res = replace(res, picks=picks)
    packages = pin(res, previous=Lock(packages=list(current)), pin_file=lambda ref: pin_file(ref, progress=progress))
    return install_packages(packages, progress=progress)


# --------------------------------------------------------------------------------------------- housekeeping


@dataclass
class UninstallReport:
    removed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"removed": self.removed, "not_installed": self.missing}


def uninstall(names: Iterable[str]) -> UninstallReport:
    """Forget installed packages (``hubctl uninstall``; ``hubctl remove`` without a project file). Their
    blobs stay in the store until ``hubctl gc``."""
    from packaging.utils import canonicalize_name

    from hubctl.installed import remove_installed

    names = [canonicalize_name(n) for n in names]
    removed = remove_installed(names)
    return UninstallReport(removed=removed, missing=[n for n in names if n not in removed])


@dataclass
class VerifyReport:
    """Each checked file, and the problems (one line each) of those that drifted."""

    checked: int = 0
    hashed: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)
    bad: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "rehashed": self.hashed, "bytes": self.bytes, "problems": self.bad}


def verify_installed(*, full: bool = False, packages: Optional[list[LockedPackage]] = None,
                     progress: "bool | ProgressSink" = False) -> VerifyReport:
    """Re-check installed files (or ``packages``, e.g. a lock's) against their sha256: an unchanged stat
    costs a stat; a changed stat, or ``full``, means a rehash."""
    from hubctl.installed import installed_packages
    from hubctl.progress import make_progress
    from hubctl.store import Store

    pkgs = installed_packages() if packages is None else packages
    store = Store()
    where: dict[str, list[tuple[LockedPackage, LockedFile]]] = {}
    for p in pkgs:
        for f in p.files:
            where.setdefault(f.sha256, []).append((p, f))
    rep = VerifyReport(checked=sum(len(v) for v in where.values()))
    prog = make_progress(progress)
    with prog:
        task = prog.task("verify", sum(v[0][1].size for v in where.values()) if full else None)
        checks = store.verify(list(where), full=full, progress=task.advance)
    for c in checks:
        if c.how == "hash":
            rep.hashed += 1
        for p, f in where[c.sha256]:
            rep.bytes += f.size
            if not c.ok:
                rep.problems.append(f"{p.name} {p.version}: {f.path}: {c.problem}")
                rep.bad.append({"package": p.name, "version": p.version, "path": f.path, "sha256": f.sha256, "problem": c.problem or ""})
    return rep


def gc(*, dry_run: bool = False, on_wait: Optional[Any] = None) -> "GcReport":
    """Remove blobs no installed package references (and abandoned partial downloads). Waits for running
    installs (``on_wait`` is called once if it must), then reads the references under the store lock."""
    from hubctl.installed import referenced_blobs
    from hubctl.store import Store

    return Store().gc(referenced_blobs, dry_run=dry_run, on_wait=on_wait)
