"""A Civitai-compatible REST API on 127.0.0.1, following the shapes Civitai publishes (developer.civitai.com, "Model
versions"), with a separate CDN server (another port) that the download route redirects to.

Routes of `CivitaiServer`:
  GET /api/v1/model-versions/{id}             the version as JSON (id, modelId, name, baseModel, air, model{name,type},
                                              trainedWords, files[{id, name, type, sizeKB, metadata, hashes{AutoV1,
                                              AutoV2, SHA256, CRC32, BLAKE3, AutoV3}, downloadUrl, primary}],
                                              downloadUrl); 404 {"error": ...} when unknown
  GET /api/v1/model-versions/by-hash/{hash}   the version owning a file with that hash (any form, any case); 404
  GET|HEAD /api/download/models/{id}[?fileId=N]   307 to the file on the CDN; a gated version answers 401 (JSON)
                                              unless `Authorization: Bearer <token>` is sent
Knobs: `rate_limit(k, retry_after=1)`: the next k API requests answer 429 with Retry-After; `answers[path] =
bytes` replaces the body of one API path (hostile answers); `faults`/`stats` as every test server (the CDN has its
own: `cdn.stats`). Must not: bind anything but 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers.http_base import BaseHandler, Faults, Served, Stats
from tests.servers.range_server import RangeServer

__all__ = ["CivitaiServer", "civitai_hashes"]


def civitai_hashes(data: bytes) -> dict[str, str]:
    """The hash forms Civitai lists for a file, upper-case as it writes them."""
    import blake3

    sha = hashlib.sha256(data).hexdigest()
    out = {"SHA256": sha.upper(), "AutoV2": sha[:10].upper(), "CRC32": f"{zlib.crc32(data):08X}",
           "BLAKE3": blake3.blake3(data).hexdigest().upper(),
           "AutoV1": hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8].upper()}
    if len(data) >= 8:
        n = struct.unpack("<Q", data[:8])[0]
        if 8 + n <= len(data):
            out["AutoV3"] = hashlib.sha256(data[8 + n:]).hexdigest()[:12].upper()
    return out


@dataclass
class _Version:
    id: int
    model_id: int
    name: str
    model_name: str
    model_type: str
    base_model: str
    files: list[dict[str, Any]]
    gated: bool = False
    trained_words: list[str] = field(default_factory=list)


class _Handler(BaseHandler):
    owner: "CivitaiServer"

    def route(self, method: str, path: str, query: str) -> None:
        srv = self.owner
        if path.startswith("/api/v1/"):
            wait = srv.take_rate_limit()
            if wait is not None:
                self.send_small(429, b'{"error":"Too Many Requests"}', {"Retry-After": str(wait)})
                return
            if path in srv.answers:
                self.send_small(200, srv.answers[path])
                return
        m = re.match(r"^/api/v1/model-versions/by-hash/([0-9A-Za-z]+)$", path)
        if m and method == "GET":
            v = srv.by_hash(m.group(1))
            self._json(v)
            return
        m = re.match(r"^/api/v1/model-versions/([0-9]+)$", path)
        if m and method == "GET":
            self._json(srv.versions.get(int(m.group(1))))
            return
        m = re.match(r"^/api/download/models/([0-9]+)$", path)
        if m:
            v = srv.versions.get(int(m.group(1)))
            if v is None:
                self.send_small(404, b'{"error":"Model not found"}')
                return
            if v.gated and self.headers.get("Authorization") != f"Bearer {srv.token}":
                self.send_small(401, json.dumps({"error": "Unauthorized", "message": "The creator of this asset "
                                                 "requires you to be logged in to download it"}).encode())
                return
            fid = re.search(r"fileId=([0-9]+)", query or "")
            f = next((x for x in v.files if fid is None or x["id"] == int(fid.group(1))), None)
            if f is None:
                self.send_small(404, b'{"error":"File not found"}')
                return
            self.send_redirect(srv.cdn.url_for(f"/files/{f['id']}/{f['name']}") + "?X-Amz-Signature=abc", status=307)
            return
        self.send_small(404, b'{"error":"Not found"}')

    def _json(self, v: "_Version | None") -> None:
        if v is None:
            self.send_small(404, b'{"error":"Model version not found"}')
            return
        self.send_small(200, json.dumps(self.owner.doc(v)).encode())


class CivitaiServer(Served):
    """The API (``url``) and its CDN (``cdn``), both on 127.0.0.1. ``token`` opens gated versions."""

    handler = _Handler

    def __init__(self, root: Path, *, token: str = "civitai-test-token") -> None:
        self.root = Path(root)
        self.name = "civitai"
        self.token = token
        self.faults = Faults()
        self.stats = Stats()
        self.versions: dict[int, _Version] = {}
        self.answers: dict[str, bytes] = {}
        self.cdn = RangeServer(self.root, name="cdn")
        self._limit = [0, 1]
        self._lock = threading.Lock()
        self.url = ""

    def start(self) -> "CivitaiServer":
        self.cdn.start()
        self._start_http(0)
        return self

    def stop(self) -> None:
        self._stop_http()
        self.cdn.stop()

    def __enter__(self) -> "CivitaiServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_version(self, version_id: int, *, model_id: int, model_name: str, model_type: str, base_model: str,
                    files: list[tuple[int, str, bytes]], gated: bool = False, name: str = "v1.0",
                    trained_words: list[str] | None = None, fp: str = "fp16") -> None:
        """A model version with ``files`` [(file id, name, bytes)]; the first is the primary model file."""
        entries = []
        for i, (fid, fname, data) in enumerate(files):
            self.cdn.add_file(f"/files/{fid}/{fname}", data)
            entries.append({"id": fid, "name": fname, "type": "Model", "sizeKB": round(len(data) / 1024, 2),
                            "metadata": {"format": "SafeTensor", "size": "pruned", "fp": fp},
                            "pickleScanResult": "Success", "virusScanResult": "Success",
                            "hashes": civitai_hashes(data), "primary": i == 0,
                            "downloadUrl": f"{self.url}/api/download/models/{version_id}" + (f"?fileId={fid}" if i else "")})
        self.versions[version_id] = _Version(version_id, model_id, name, model_name, model_type, base_model, entries,
                                             gated, trained_words or [])

    def doc(self, v: _Version) -> dict[str, Any]:
        eco = {"demo-sd-1": "sd1", "SD 1.5": "sd1", "SDXL 1.0": "sdxl"}.get(v.base_model, "other")
        typ = v.model_type.lower()
        return {"id": v.id, "modelId": v.model_id, "name": v.name, "description": None, "baseModel": v.base_model,
                "baseModelType": "Standard", "air": f"urn:air:{eco}:{typ}:civitai:{v.model_id}@{v.id}",
                "status": "Published", "availability": "Public", "trainedWords": v.trained_words,
                "stats": {"downloadCount": 1, "thumbsUpCount": 0},
                "model": {"name": v.model_name, "type": v.model_type, "nsfw": False, "poi": False},
                "files": v.files, "images": [], "downloadUrl": f"{self.url}/api/download/models/{v.id}"}

    def by_hash(self, value: str) -> "_Version | None":
        want = value.upper()
        for v in self.versions.values():
            for f in v.files:
                if want in f["hashes"].values():
                    return v
        return None

    def rate_limit(self, times: int, retry_after: int = 1) -> None:
        with self._lock:
            self._limit = [times, retry_after]

    def take_rate_limit(self) -> int | None:
        with self._lock:
            if self._limit[0] > 0:
                self._limit[0] -= 1
                return self._limit[1]
        return None
