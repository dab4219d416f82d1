"""Civitai as a source: its public REST API (``/api/v1/model-versions/{id}``, ``/api/v1/model-versions/by-hash/
{hash}``) read into typed values, AIR URNs (``urn:air:sdxl:lora:civitai:MODEL@VERSION``), and ``civitai:`` sources
(``civitai:VERSION_ID`` for a version's primary file, ``civitai:VERSION_ID/FILE_ID`` for one of its files) behind
the one Source protocol: the API names the file's download URL, size and hashes, and the bytes travel through
:class:`hubctl.sources.http.HttpSource` (redirects to the CDN, Range resume, the retry policy of
:mod:`hubctl.sources.retry`, which honours a 429's Retry-After), hash-checked by the store.

    HUBCTL_CIVITAI_URL   the API's base URL (default https://civitai.com; tests use a loopback server)
    CIVITAI_TOKEN        sent as ``Authorization: Bearer`` to the API's host (and civitai.com's) only; never to a
                         CDN a download redirects to, never after a change of scheme, host or port

Everything a server says is untrusted: bodies are read up to a limit, JSON is parsed with a depth limit and
checked field by field, numbers are bounded. A 404 is "no such version" (None from the lookups); 401/403 name
CIVITAI_TOKEN; the rest fail with exit 3 (SourceError). Knows nothing of registries, manifests or the store:
what a version means to hubctl (a package, its family) is :mod:`hubctl.adopt.civitai_registry`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Optional
from urllib.parse import quote, urlsplit

from hubctl.errors import BadInput, SourceError, redact
from hubctl.sources.base import Progress, RemoteStat, Sink

__all__ = ["CivitaiFile", "ModelVersion", "Air", "api_base", "parse_air", "get_version", "version_by_hash",
           "CivitaiSource", "parse_civitai_source", "KIND_BY_TYPE", "JSON_LIMIT", "loads_json", "parse_version"]

DEFAULT_BASE = "https://civitai.com"
JSON_LIMIT = 4 << 20  # an API answer larger than this is refused
_DEPTH = 32  # JSON nesting an answer may have
_ID_MAX = 10**12
_HEX = re.compile(r"^[0-9a-fA-F]{8,64}$")
_AIR = re.compile(r"^urn:air:([a-z0-9_.-]{1,32}):([a-z0-9_.-]{1,32}):([a-z0-9_.-]{1,32}):([0-9]{1,12})(?:@([0-9]{1,12}))?"
                  r"(?:\.([a-z0-9]{1,16}))?$")
_SOURCE = re.compile(r"^civitai:([1-9][0-9]{0,11})(?:/([1-9][0-9]{0,11}))?$")

# Civitai model types -> hubctl package kinds (types hubctl cannot package map to nothing)
KIND_BY_TYPE = {"checkpoint": "checkpoint", "lora": "lora", "locon": "lora", "dora": "lora", "lycoris": "lora",
                "textualinversion": "embedding", "controlnet": "controlnet", "vae": "vae"}


def api_base() -> str:
    """The API's base URL: ``$HUBCTL_CIVITAI_URL`` or https://civitai.com (no trailing slash)."""
    base = (os.environ.get("HUBCTL_CIVITAI_URL") or DEFAULT_BASE).strip().rstrip("/")
    split = urlsplit(base)
    if split.scheme not in ("http", "https") or not split.hostname:
        raise BadInput(f"HUBCTL_CIVITAI_URL: '{redact(base)}' is not an http(s) URL")
    if redact(base) != base:
        raise BadInput(f"HUBCTL_CIVITAI_URL: '{redact(base)}' must not carry credentials (set CIVITAI_TOKEN)")
    return base


def _token() -> Optional[str]:
    for name in ("CIVITAI_TOKEN", "CIVITAI_API_KEY"):
        v = (os.environ.get(name) or "").strip()
        if v:
            return v
    return None


def _auth_for(url: str) -> dict[str, str]:
    """The token header for ``url`` when it is the API's own origin (for civitai.com and its subdomains the
    HTTP engine adds CIVITAI_TOKEN by itself)."""
    from hubctl.sources.http import _origin

    tok = _token()
    host = (urlsplit(url).hostname or "").lower()
    if tok is None or host == "civitai.com" or host.endswith(".civitai.com"):
        return {}
    return {"Authorization": f"Bearer {tok}"} if _origin(url) == _origin(api_base()) else {}


# --------------------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class CivitaiFile:
    """One file of a model version, as the API lists it (hashes keyed lower-case: sha256, autov1, autov2,
    autov3, blake3, crc32; values lower-case hex)."""

    id: int
    name: str
    type: str
    size_kb: float
    download_url: str
    primary: bool = False
    hashes: dict[str, str] = field(default_factory=dict)
    format: str = ""
    fp: str = ""

    @property
    def sha256(self) -> Optional[str]:
        s = self.hashes.get("sha256")
        return s if s and len(s) == 64 else None


@dataclass(frozen=True)
class ModelVersion:
    """A Civitai model version: its id, model, base model (Civitai's name for the family) and files."""

    id: int
    model_id: int
    name: str
    model_name: str
    model_type: str
    base_model: str
    files: tuple[CivitaiFile, ...]
    trained_words: tuple[str, ...] = ()
    air: str = ""

    def file(self, file_id: Optional[int] = None) -> Optional[CivitaiFile]:
        """The file with ``file_id``, or (None) the primary model file (the first model file when none is marked)."""
        if file_id is not None:
            return next((f for f in self.files if f.id == file_id), None)
        models = [f for f in self.files if f.type.lower() == "model"] or list(self.files)
        return next((f for f in models if f.primary), models[0] if models else None)

    def file_by_hash(self, value: str) -> Optional[CivitaiFile]:
        """The file one of whose hashes is ``value`` (full or a prefix of 8+ hex digits)."""
        v = value.lower()
        for f in self.files:
            if any(h == v or (len(v) >= 8 and len(h) == 64 and h.startswith(v)) for h in f.hashes.values()):
                return f
        return None


@dataclass(frozen=True)
class Air:
    """An AIR URN: ``urn:air:{ecosystem}:{type}:{source}:{model}[@{version}][.{format}]``."""

    ecosystem: str
    type: str
    source: str
    model_id: int
    version_id: Optional[int]
    text: str


def parse_air(text: str) -> Air:
    """Parse an AIR URN; BadInput (one line) when it is not one."""
    t = text.strip()
    m = _AIR.match(t)
    if not m:
        raise BadInput(f"'{t[:120]}' is not an AIR (urn:air:ECOSYSTEM:TYPE:SOURCE:MODEL@VERSION)")
    eco, typ, src, model, version, _fmt = m.groups()
    return Air(eco, typ, src, int(model), int(version) if version else None, t)


def parse_civitai_source(url: str) -> tuple[int, Optional[int]]:
    """``civitai:VERSION[/FILE]`` -> (version id, file id or None)."""
    m = _SOURCE.match(url.strip())
    if not m:
        raise BadInput(f"'{url[:120]}' is not civitai:VERSION_ID or civitai:VERSION_ID/FILE_ID")
    return int(m.group(1)), int(m.group(2)) if m.group(2) else None


# --------------------------------------------------------------------------------------------- parsing


def loads_json(data: bytes, where: str, *, depth_limit: int = _DEPTH, error: type = SourceError) -> Any:
    """JSON from untrusted bytes (a server's answer, a PNG's text, a user's workflow): nesting deeper than
    ``depth_limit`` is refused (``error``, one line naming ``where``) before the parser recurses, then parsed."""
    from hubctl.errors import PARSE_ERRORS

    depth = best = 0
    in_str = esc = False
    for b in data:
        if in_str:
            if esc:
                esc = False
            elif b == 0x5C:
                esc = True
            elif b == 0x22:
                in_str = False
        elif b == 0x22:
            in_str = True
        elif b in (0x5B, 0x7B):
            depth += 1
            best = max(best, depth)
            if best > depth_limit:
                raise error(f"{where}: JSON nested deeper than {depth_limit} levels; refused")
        elif b in (0x5D, 0x7D):
            depth -= 1
    try:
        return json.loads(data)
    except PARSE_ERRORS:
        raise error(f"{where}: not valid JSON") from None


def _str(d: dict[str, Any], key: str, where: str, *, required: bool = True, limit: int = 512) -> str:
    v = d.get(key)
    if v is None and not required:
        return ""
    if not isinstance(v, str) or len(v) > limit:
        raise SourceError(f"{where}: '{key}' is not a string of at most {limit} characters")
    return v


def _int(d: dict[str, Any], key: str, where: str) -> int:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < _ID_MAX:
        raise SourceError(f"{where}: '{key}' is not an id")
    return v


def _file(d: Any, where: str) -> CivitaiFile:
    if not isinstance(d, dict):
        raise SourceError(f"{where}: a file entry is not an object")
    hashes: dict[str, str] = {}
    raw = d.get("hashes") or {}
    if not isinstance(raw, dict):
        raise SourceError(f"{where}: 'hashes' is not an object")
    for k, v in list(raw.items())[:16]:
        if isinstance(k, str) and isinstance(v, str) and _HEX.match(v):
            hashes[k.lower()] = v.lower()
    size = d.get("sizeKB", 0)
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not 0 <= size < 1e12:
        raise SourceError(f"{where}: 'sizeKB' is not a size")
    meta = d.get("metadata") if isinstance(d.get("metadata"), dict) else {}
    url = _str(d, "downloadUrl", where, limit=2048)
    if urlsplit(url).scheme not in ("http", "https"):
        raise SourceError(f"{where}: 'downloadUrl' is not an http(s) URL")
    return CivitaiFile(
        id=_int(d, "id", where), name=_str(d, "name", where), type=_str(d, "type", where, required=False, limit=64),
        size_kb=float(size), download_url=url, primary=d.get("primary") is True, hashes=hashes,
        format=str(meta.get("format") or "")[:32], fp=str(meta.get("fp") or "")[:16],
    )


def parse_version(doc: Any, where: str) -> ModelVersion:
    """A model-version answer -> ModelVersion (SourceError, exit 3, naming what is wrong with it)."""
    if not isinstance(doc, dict):
        raise SourceError(f"{where}: the answer is not a JSON object")
    model = doc.get("model") if isinstance(doc.get("model"), dict) else {}
    files = doc.get("files") or []
    if not isinstance(files, list) or len(files) > 256:
        raise SourceError(f"{where}: 'files' is not a list of at most 256 entries")
    words = doc.get("trainedWords") or []
    if not isinstance(words, list):
        words = []
    return ModelVersion(
        id=_int(doc, "id", where), model_id=_int(doc, "modelId", where), name=_str(doc, "name", where, limit=256),
        model_name=_str(model, "name", where, required=False, limit=256) or f"model-{doc.get('modelId')}",
        model_type=_str(model, "type", where, required=False, limit=64),
        base_model=_str(doc, "baseModel", where, required=False, limit=64),
        files=tuple(_file(f, where) for f in files),
        trained_words=tuple(w[:128] for w in words[:32] if isinstance(w, str)),
        air=_str(doc, "air", where, required=False, limit=256),
    )


# --------------------------------------------------------------------------------------------- the API


def _get_json(path: str) -> Optional[Any]:
    """GET an API path as JSON; None on 404. 401/403 name CIVITAI_TOKEN; other failures are SourceError."""
    from hubctl.sources.http import HttpSource, HttpStatusError

    url = api_base() + path
    display = f"civitai {path}"
    src = HttpSource(url, headers=_auth_for(url), display=display)
    try:
        body = src.get({"Accept": "application/json"})
    except HttpStatusError as e:
        if e.status == 404:
            return None
        raise _auth_error(display, e) from None
    chunks: list[bytes] = []
    got = 0
    try:
        while got <= JSON_LIMIT:
            piece = body.read(min(1 << 20, JSON_LIMIT + 1 - got))
            if not piece:
                break
            chunks.append(piece)
            got += len(piece)
        data = b"".join(chunks)
    except OSError as e:
        raise SourceError(f"{display}: the answer was cut short ({e})") from None
    finally:
        body.close()
    if len(data) > JSON_LIMIT:
        raise SourceError(f"{display}: the answer is larger than {JSON_LIMIT} bytes; refused")
    return loads_json(data, display)


def _auth_error(display: str, e: Any) -> SourceError:
    from hubctl.sources.http import HttpStatusError

    if isinstance(e, HttpStatusError) and e.status in (401, 403):
        if _token():
            return SourceError(f"{display}: {e.status}: CIVITAI_TOKEN was not accepted for this file")
        return SourceError(f"{display}: {e.status}: this file needs a Civitai login: set CIVITAI_TOKEN")
    return e if isinstance(e, SourceError) else SourceError(f"{display}: {e}")


def get_version(version_id: int) -> Optional[ModelVersion]:
    """``/api/v1/model-versions/{id}``; None when Civitai has no such (published) version."""
    doc = _get_json(f"/api/v1/model-versions/{int(version_id)}")
    return None if doc is None else parse_version(doc, f"civitai model version {version_id}")


def version_by_hash(value: str) -> Optional[ModelVersion]:
    """``/api/v1/model-versions/by-hash/{hash}`` (SHA256, AutoV1, AutoV2, AutoV3, BLAKE3, CRC32); None when unknown."""
    if not _HEX.match(value or ""):
        raise BadInput(f"'{str(value)[:80]}' is not a hash (8 to 64 hex digits)")
    doc = _get_json(f"/api/v1/model-versions/by-hash/{quote(value.lower())}")
    return None if doc is None else parse_version(doc, f"civitai hash {value}")


# --------------------------------------------------------------------------------------------- the source


class CivitaiSource:
    """``civitai:VERSION[/FILE]``: the API names the download URL (and the file's sha256 and size); the bytes come
    through HttpSource, with the token only where :func:`_auth_for` and the HTTP engine allow."""

    def __init__(self, url: str) -> None:
        self.url = url.strip()
        self.version_id, self.file_id = parse_civitai_source(self.url)
        self._file: Optional[CivitaiFile] = None
        self._http: Any = None

    def _resolve(self) -> Any:
        if self._http is None:
            from hubctl.sources.http import HttpSource

            v = get_version(self.version_id)
            if v is None:
                raise SourceError(f"{self.url}: Civitai has no model version {self.version_id} (404)")
            f = v.file(self.file_id)
            if f is None:
                raise SourceError(f"{self.url}: model version {self.version_id} has no file {self.file_id or '(primary)'}")
            self._file = f
            self._http = HttpSource(f.download_url, headers=_auth_for(f.download_url), display=self.url)
        return self._http

    def _call(self, fn: Any) -> Any:
        from hubctl.sources.http import HttpStatusError

        try:
            return fn()
        except HttpStatusError as e:
            raise _auth_error(self.url, e) from None

    def stat(self) -> RemoteStat:
        http = self._resolve()
        st = self._call(http.stat)
        assert self._file is not None
        return RemoteStat(self.url, st.size, etag=st.etag, sha256=self._file.sha256, accept_ranges=st.accept_ranges)

    def open_range(self, start: int = 0, end: Optional[int] = None) -> BinaryIO:
        http = self._resolve()
        return self._call(lambda: http.open_range(start, end))  # type: ignore[no-any-return]

    def download(self, sink: Sink, *, expected_size: Optional[int] = None, progress: Optional[Progress] = None) -> None:
        http = self._resolve()
        self._call(lambda: http.download(sink, expected_size=expected_size, progress=progress))

    def cached_blob(self, sha256: Optional[str], etag: Optional[str] = None) -> None:
        return None
