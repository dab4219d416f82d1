"""Fetching locked files into the store: the one path that ``install``, ``sync`` and ``run`` share once a set
is pinned (fetch -> store -> record).

- :func:`pin_file` turns a manifest's FileRef into a LockedFile (hf revision -> 40-hex commit; size and
  sha256 from the manifest, the Hub's LFS metadata, or, when only the bytes can tell, by fetching them
  into the store and hashing on the way).
- :func:`install_packages` fetches every file of a set of locked packages, one download per unique
  sha256 (an HF cache blob or a store blob is reused), every byte hash-checked, then records them as
  installed in one transaction. ``hubctl sync`` and ``hubctl run`` call it with the lock's packages.

Resolving ``hubctl install``'s requirements is :func:`hubctl.lock.workflow.install`; the housekeeping
commands (uninstall, verify, gc) are :mod:`hubctl.store.installed`.

Orchestration only: bytes are moved by sources, checked and kept by the store, decided by the resolver.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from hubctl.errors import BadInput, HubctlError, Refused, SourceError, redact
from hubctl.lock.lockfile import LockedFile, LockedPackage

if TYPE_CHECKING:
    from pathlib import Path

    from hubctl.registry.manifest import FileRef
    from hubctl.progress import ProgressSink
    from hubctl.store.blobs import FetchResult, Store

__all__ = [
    "pin_file",
    "install_packages",
    "InstallReport",
    "BlobOutcome",
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
    url, requested, sha, size, etag = ref.source, None, ref.sha256, ref.size, None
    if sref.scheme == "hf":
        st = src.stat()
        etag = st.etag
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
        res = _fetch_unknown(src, url, sha, size, progress, etag)
        if sha is not None and res.sha256 != sha:  # fetch() already refuses this; belt and braces
            raise Refused(f"{redact(url)}: sha256 {res.sha256} differs from the manifest's {sha}")
        sha, size = res.sha256, res.size
    return LockedFile(path=ref.path, url=url, size=int(size), sha256=sha, requested_revision=requested)


def _fetch_unknown(src: Any, url: str, sha: Optional[str], size: Optional[int],
                   progress: "bool | ProgressSink" = False, etag: Optional[str] = None) -> "FetchResult":
    """Fetch a file whose sha256 (or size) only its bytes can tell. A local copy the source vouches for (the
    HF cache's, when its bytes match the source's ``etag``) is taken instead of downloading."""
    from hubctl.progress import make_progress
    from hubctl.sources.base import url_key
    from hubctl.store.blobs import Store

    store = Store()
    cached = src.cached_blob(sha, etag) if sha is None else None
    if cached is not None:
        return store.import_file(cached, size=size, label=redact(url))
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
    from hubctl.store.blobs import HashMismatch

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
            res = store.import_file(cached, sha256=sha, size=size, label=label)
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


def install_packages(packages: list[LockedPackage], *, progress: "bool | ProgressSink" = True, workers: int = 4,
                     lock_path: "Path | None" = None) -> InstallReport:
    """Fetch every file of ``packages`` into the store (one download per unique sha256; size and sha256
    checked; HF cache and store blobs reused) and record them, in one transaction, only when every file
    arrived: in the install set, or, with ``lock_path`` (``sync``, ``run``), as that lock's root (the store's
    roots: hubctl.store.roots). Blobs that did arrive stay in the store, so a rerun fetches only the rest.
    Raises SourceError (exit 3) for a source that failed, naming the file."""
    from hubctl.store.installed import record_installed
    from hubctl.store.roots import INSTALL_ROOT, lock_root_key, register_lock_root, root_packages
    from hubctl.progress import make_progress
    from hubctl.store.blobs import Store

    blobs = _check_packages(packages)
    store = Store()
    report = InstallReport(packages=list(packages))
    before = {p.name: f"{p.version} {p.variant}" for p in root_packages(INSTALL_ROOT if lock_path is None else lock_root_key(lock_path))}
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
            from hubctl.store.partial import cancel_all

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
        if lock_path is None:
            record_installed(packages)
        else:
            register_lock_root(lock_path, list(packages))
    report.blobs = [outcomes[sha] for sha in blobs]
    return report
