"""``hf://org/repo@revision/path`` sources: the Hugging Face Hub or any mirror of it.

Metadata goes through huggingface_hub's own code (``get_hf_file_metadata``: the HEAD of the resolve
URL that yields the commit, the size and, for LFS files, the sha256 as ``X-Linked-Etag``); the bytes are
then fetched from the place that HEAD pointed to (the Hub itself or its CDN) by the ranged, resumable
HTTP engine of ``sources/http.py``, which, unlike huggingface_hub 2.4, resumes across processes.

Conventions users already have, all read at call time (huggingface_hub reads its constants at import,
so the endpoint and token are passed explicitly):
    HF_ENDPOINT       a mirror (default https://huggingface.co)
    HF_TOKEN          or the standard login (``hf auth login``: $HF_TOKEN_PATH or $HF_HOME/token)
    HF_HUB_OFFLINE    no network: only the HF cache is used
    HF_HOME / HF_HUB_CACHE   where the HF cache is; an LFS blob already there (blobs/<sha256>) is reused
                             instead of downloaded again.
The token travels only in an Authorization header to the endpoint's own host; it never appears in a
URL, a message, the database or a lock.
"""

from __future__ import annotations

import os
import random
import re
import time
from pathlib import Path
from typing import Any, BinaryIO, Optional
from urllib.parse import urlsplit

from hubctl.errors import SourceError, redact
from hubctl.display import plural
from hubctl.registry.manifest import SourceRef
from hubctl.sources.base import Progress, RemoteStat, Sink

__all__ = ["HfSource", "hf_endpoint", "hf_token", "hf_offline", "hf_cache_dir"]

_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def hf_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _truthy(v: Optional[str]) -> bool:
    return (v or "").strip().upper() in ("1", "ON", "YES", "TRUE")


def hf_offline() -> bool:
    return _truthy(os.environ.get("HF_HUB_OFFLINE"))


def _hf_home() -> Path:
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface"


def hf_cache_dir() -> Path:
    c = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    return Path(c).expanduser() if c else _hf_home() / "hub"


def hf_token() -> Optional[str]:
    """HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN), else the standard login's token file, else
    whatever huggingface_hub itself finds. Never printed or stored."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        v = os.environ.get(name)
        if v and v.strip():
            return v.strip()
    path = os.environ.get("HF_TOKEN_PATH")
    token_file = Path(path).expanduser() if path else _hf_home() / "token"
    try:
        v = token_file.read_text().strip()
        if v:
            return v
    except OSError:
        pass
    if _truthy(os.environ.get("HUBCTL_HF_NO_LOGIN_LOOKUP")):
        return None
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:  # noqa: BLE001 - a broken login must not break a public download
        return None


def _retries() -> tuple[int, float]:
    try:
        tries = max(1, int(os.environ.get("HUBCTL_HTTP_RETRIES") or 5))
    except ValueError:
        tries = 5
    try:
        delay = float(os.environ.get("HUBCTL_HTTP_BACKOFF") or 0.5)
    except ValueError:
        delay = 0.5
    return tries, delay


class HfSource:
    """One file of a Hub repository at a revision (a branch, a tag or a 40-hex commit)."""

    def __init__(self, ref: SourceRef) -> None:
        self.ref = ref
        self.url = ref.url
        self.display = redact(ref.url)
        self.repo_id = ref.repo_id or ""
        self.repo_type = ref.repo_type
        self.revision = ref.revision or "main"
        self.path = ref.path or ""
        self._md: Any = None

    # ------------------------------------------------------------------------------ the HF cache
    def repo_cache(self) -> Path:
        return hf_cache_dir() / f"{self.repo_type}s--{self.repo_id.replace('/', '--')}"

    def _cached_commit(self) -> Optional[str]:
        if _HEX40.match(self.revision):
            return self.revision
        try:
            commit = (self.repo_cache() / "refs" / self.revision).read_text().strip()
        except OSError:
            return None
        return commit if _HEX40.match(commit) else None

    def _cached_snapshot_file(self) -> Optional[Path]:
        commit = self._cached_commit()
        if commit is None:
            return None
        p = self.repo_cache() / "snapshots" / commit / self.path
        return p if p.is_file() else None

    def cached_blob(self, sha256: Optional[str]) -> Optional[Path]:
        """A file in the HF cache that should hold these bytes: the LFS blob named by ``sha256`` (in this
        repository's cache, else any repository's), or this revision's snapshot file. The caller checks
        the hash before trusting it."""
        cache = hf_cache_dir()
        if sha256 and _HEX64.match(sha256):
            own = self.repo_cache() / "blobs" / sha256
            if own.is_file():
                return own
            if cache.is_dir():
                for p in cache.glob(f"*--*/blobs/{sha256}"):
                    if p.is_file():
                        return p
        if _HEX40.match(self.revision) or hf_offline():
            return self._cached_snapshot_file()
        return None

    # ------------------------------------------------------------------------------ the Hub
    def _resolve_url(self, revision: Optional[str] = None) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(
            self.repo_id,
            self.path,
            repo_type=None if self.repo_type == "model" else self.repo_type,
            revision=revision or self.revision,
            endpoint=hf_endpoint(),
        )

    def metadata(self) -> Any:
        """huggingface_hub's HfFileMetadata for this file (commit, etag, location, size); cached."""
        if self._md is not None:
            return self._md
        if hf_offline():
            raise SourceError(f"{self.display}: HF_HUB_OFFLINE is set and this file is not in the HF cache ({hf_cache_dir()})")
        from huggingface_hub import get_hf_file_metadata

        endpoint = hf_endpoint()
        token = hf_token()
        tries, delay = _retries()
        for attempt in range(1, tries + 1):
            try:
                md = get_hf_file_metadata(
                    self._resolve_url(), token=token or False, endpoint=endpoint, retry_on_errors=False
                )
                break
            except Exception as e:  # noqa: BLE001 - mapped to one line below
                transient, message = self._explain(e, bool(token))
                if not transient or attempt == tries:
                    suffix = f" (gave up after {plural(tries, 'try', 'tries')})" if transient else ""
                    raise SourceError(f"{self.display}: {message}{suffix}") from None
                time.sleep(min(8.0, delay * 2 ** (attempt - 1)) * (0.75 + random.random() / 2))
        if md.xet_file_data is not None and not md.location:
            raise SourceError(f"{self.display}: the endpoint serves this file only through Xet storage")
        if not md.commit_hash:
            raise SourceError(f"{self.display}: {endpoint} did not say which commit it served (no X-Repo-Commit)")
        self._md = md
        return md

    def _explain(self, e: BaseException, had_token: bool) -> tuple[bool, str]:
        """(worth retrying, one plain line) for an exception out of huggingface_hub."""
        from huggingface_hub import errors as hfe

        name = type(e).__name__
        if isinstance(e, hfe.GatedRepoError):
            return False, f"'{self.repo_id}' is gated: accept its conditions on the Hub and log in (HF_TOKEN)"
        if isinstance(e, hfe.RepositoryNotFoundError):
            hint = "the token does not grant access" if had_token else "set HF_TOKEN or run `hf auth login` if it is private"
            return False, f"repository '{self.repo_id}' not found ({hint})"
        if isinstance(e, hfe.RevisionNotFoundError):
            return False, f"revision '{self.revision}' not found in '{self.repo_id}'"
        if isinstance(e, (hfe.RemoteEntryNotFoundError, hfe.EntryNotFoundError)):
            return False, f"no file '{self.path}' in '{self.repo_id}' at revision '{self.revision}'"
        if isinstance(e, hfe.HfHubHTTPError):
            status = getattr(getattr(e, "response", None), "status_code", None)
            if status is not None and (status >= 500 or status == 429):
                return True, f"the Hub answered {status}"
            if status == 401:
                return False, "401 Unauthorized (set HF_TOKEN or run `hf auth login`)"
            if status == 403:
                return False, "403 Forbidden: " + ("the token does not grant access" if had_token else "access denied")
            return False, f"the Hub answered {status}"
        if isinstance(e, hfe.FileMetadataError):
            return False, f"{hf_endpoint()} sent incomplete file metadata"
        if name == "OfflineModeIsEnabled":
            return False, "huggingface_hub is in offline mode"
        if isinstance(e, OSError) or name in ("ConnectError", "ReadTimeout", "ConnectTimeout", "RemoteProtocolError",
                                              "ReadError", "TimeoutException", "NetworkError", "ProtocolError"):
            return True, f"cannot reach {hf_endpoint()} ({redact(str(e)).splitlines()[0] if str(e) else name})"
        return False, redact(f"{name}: {e}".splitlines()[0])

    # ------------------------------------------------------------------------------ protocol
    def stat(self) -> RemoteStat:
        """Commit, size and (for LFS files) sha256 from the Hub; offline, from the HF cache."""
        if hf_offline():
            f = self._cached_snapshot_file()
            if f is None:
                raise SourceError(f"{self.display}: HF_HUB_OFFLINE is set and this file is not in the HF cache ({hf_cache_dir()})")
            return RemoteStat(self.display, f.stat().st_size, etag=f.resolve().name, commit=self._cached_commit())
        md = self.metadata()
        etag = (md.etag or "").strip('"')
        sha = etag.lower() if _HEX64.match(etag.lower()) else None
        return RemoteStat(self.display, md.size, etag=md.etag, sha256=sha, commit=md.commit_hash, accept_ranges=True)

    def _http(self) -> Any:
        from hubctl.sources.http import HttpSource

        md = self.metadata()
        location = md.location
        headers: dict[str, str] = {}
        token = hf_token()
        ep = urlsplit(hf_endpoint())
        loc = urlsplit(location)
        if token and (loc.hostname, loc.port) == (ep.hostname, ep.port):
            headers["Authorization"] = f"Bearer {token}"
        return HttpSource(location, headers=headers, display=self.display)

    def open_range(self, start: int = 0, end: Optional[int] = None) -> BinaryIO:
        if hf_offline():
            from hubctl.sources.local import LocalSource

            f = self._cached_snapshot_file()
            if f is None:
                raise SourceError(f"{self.display}: HF_HUB_OFFLINE is set and this file is not in the HF cache")
            return LocalSource(f.as_uri(), f).open_range(start, end)
        return self._http().open_range(start, end)

    def download(self, sink: Sink, *, expected_size: Optional[int] = None, progress: Optional[Progress] = None) -> None:
        if hf_offline():
            f = self._cached_snapshot_file()
            if f is None:
                raise SourceError(f"{self.display}: HF_HUB_OFFLINE is set and this file is not in the HF cache ({hf_cache_dir()})")
            from hubctl.sources.local import LocalSource

            LocalSource(f.as_uri(), f).download(sink, expected_size=expected_size, progress=progress)
            return
        md = self.metadata()
        size = expected_size if expected_size is not None else md.size
        if expected_size is not None and md.size is not None and md.size != expected_size:
            raise SourceError(f"{self.display}: the Hub says {md.size} bytes, the lock pins {expected_size}")
        self._http().download(sink, expected_size=size, progress=progress)
