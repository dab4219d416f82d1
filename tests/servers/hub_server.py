"""A Hub-compatible HTTP server on 127.0.0.1 over real git repositories, for huggingface_hub's real client code.

Owns: the endpoints huggingface_hub 2.x calls (see HUB_PROTOCOL notes): resolve (HEAD/GET, Range), the repo
info / revision / tree / refs / paths-info APIs for models, datasets and spaces, X-Error-Code errors,
private repos behind a Bearer token, and large ("LFS") files answered with a 302 to a second server on another
port (the "CDN", a RangeServer) carrying X-Linked-Etag = sha256 and X-Linked-Size, as the real Hub does.
Must not: send X-Xet-Hash (the client would switch to the Xet protocol), bind anything but 127.0.0.1, or
hold large blobs in memory (blobs are written once from git into a cache folder and streamed from there).

Routes ({kind} is models | datasets | spaces; a dataset's resolve URL starts with /datasets, a space's with /spaces):
  HEAD/GET /{repo}/resolve/{rev}/{path}     X-Repo-Commit, ETag ("git blob sha"), body with Range; LFS: 302
  GET /api/{kind}/{repo}[/revision/{rev}]    repo info (siblings; with ?blobs=True size, blobId and lfs)
  GET /api/{kind}/{repo}/tree/{rev}[/{path}]?recursive=..&expand=..   paged by `tree_page_size`, Link rel="next"
  POST /api/{kind}/{repo}/paths-info/{rev}   form `paths=...` -> entries
  GET /api/{kind}/{repo}/refs                branches, tags, converts ([]), pullRequests when include_prs
  GET /api/whoami-v2                         the user of a known token, else 401
  anything else under /api (e.g. /api/agent-harnesses): 404
With `tls=True` the Hub's port also speaks https (`https_endpoint`); `cdn_base` (default: the CDN's own URL)
is where LFS redirects point, e.g. the Hub's own port over plain http (the Hub then serves the CDN's paths too).
Errors: unknown or private repo without its token -> 401 X-Error-Code RepoNotFound; a wrong token on a private repo
-> 401 "Invalid credentials in Authorization header"; a gated repo -> GatedRepo (401 no token, 403 other token);
unknown revision -> 404 RevisionNotFound; missing file ->
404 EntryNotFound (with X-Repo-Commit).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode

from tests.servers.gitrepo import GitRepo, TreeEntry
from tests.servers.http_base import BaseHandler, Entry, Faults, Served, Stats
from tests.servers.range_server import RangeServer

__all__ = ["HubServer", "BlobInfo", "hub_date"]

LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".gguf", ".onnx", ".msgpack", ".h5")
KINDS = {"models": "model", "datasets": "dataset", "spaces": "space"}
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def hub_date(when: datetime) -> str:
    """The Hub's date form: 2024-05-01T12:00:00.000Z (model_info rejects a +00:00 suffix)."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class BlobInfo:
    file: Path
    size: int
    sha256: str


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    git: GitRepo
    token: str | None = None
    gated: bool = False

    @property
    def private(self) -> bool:
        return self.token is not None


class _HubHandler(BaseHandler):
    owner: HubServer

    # --------------------------------------------------------------------------------- dispatch
    def route(self, method: str, path: str, query: str) -> None:
        segs = self.raw_path.strip("/").split("/")
        if segs and segs[0] == "api":
            self.api(method, segs[1:], query)
            return
        if self.owner.cdn_base is not None and self.raw_path.startswith("/repos/"):
            entry = self.owner.cdn.lookup(path)
            if entry is None:
                self.send_small(404, b"Not Found", content_type="text/plain")
            else:
                self.send_entry(entry)
            return
        repo_type = "model"
        if segs and segs[0] in ("datasets", "spaces"):
            repo_type, segs = KINDS[segs[0]], segs[1:]
        found = self.owner.split_repo(repo_type, segs)
        if found is None:
            if len(segs) >= 2 and "resolve" in segs[1:3]:
                self.error(401, "RepoNotFound", "Repository not found")
            else:
                self.send_small(404, b"Not Found", content_type="text/plain")
            return
        repo, rest = found
        if len(rest) >= 3 and rest[0] == "resolve" and method in ("GET", "HEAD"):
            if self.authorised(repo):
                self.resolve(repo, unquote(rest[1]), unquote("/".join(rest[2:])))
            return
        self.send_small(404, b"Not Found", content_type="text/plain")

    def error(self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None) -> None:
        h = dict(headers or {})
        if code:
            h["X-Error-Code"] = code
        h["X-Error-Message"] = message
        self.send_small(status, json.dumps({"error": message}).encode(), h)

    def authorised(self, repo: Repo) -> bool:
        if repo.token is None:
            return True
        auth = self.headers.get("Authorization")
        if auth == f"Bearer {repo.token}":
            return True
        if repo.gated:
            status = 403 if auth else 401
            self.error(status, "GatedRepo", "Access to model is restricted. You must have access to it.")
        elif auth:
            self.error(401, None, "Invalid credentials in Authorization header")
        else:
            self.error(401, "RepoNotFound", "Repository not found")
        return False

    def send_json(self, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.send_small(200, json.dumps(obj).encode(), headers)

    def commit_or_404(self, repo: Repo, rev: str) -> str | None:
        commit = repo.git.rev_parse(rev)
        if commit is None:
            self.error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return commit

    # ---------------------------------------------------------------------------------- resolve
    def resolve(self, repo: Repo, rev: str, path: str) -> None:
        srv = self.owner
        commit = self.commit_or_404(repo, rev)
        if commit is None:
            return
        entry = srv.files(repo, commit).get(path)
        if entry is None:
            self.error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": commit})
            return
        blob = srv.blob(repo, entry)
        headers = {"X-Repo-Commit": commit}
        if srv.is_lfs(entry.path, entry.size):
            location = srv.cdn_url(blob)
            headers.update({
                "ETag": f'"{blob.sha256}"',
                "X-Linked-Etag": f'"{blob.sha256}"',
                "X-Linked-Size": str(blob.size),
            })
            self.send_redirect(location, 302, headers)
            return
        served = Entry(blob.size, f'"{entry.blob}"', repo.git.commit_time(commit).timestamp(), file=blob.file)
        self.send_entry(served, headers)

    # -------------------------------------------------------------------------------------- api
    def api(self, method: str, segs: list[str], query: str) -> None:
        srv = self.owner
        params = parse_qs(query)
        if segs == ["whoami-v2"]:
            user = srv.users.get((self.headers.get("Authorization") or "").removeprefix("Bearer "))
            if user is None:
                self.error(401, None, "Invalid credentials in Authorization header")
            else:
                self.send_json({"type": "user", "name": user, "fullname": user, "orgs": [], "auth": {}})
            return
        if not segs or segs[0] not in KINDS:
            self.send_small(404, b'{"error":"Not Found"}')
            return
        repo_type = KINDS[segs[0]]
        found = srv.split_repo(repo_type, segs[1:])
        if found is None:
            self.error(401, "RepoNotFound", "Repository not found")
            return
        repo, rest = found
        if not self.authorised(repo):
            return
        if method == "POST" and len(rest) == 2 and rest[0] == "paths-info":
            self.paths_info(repo, unquote(rest[1]))
            return
        if method not in ("GET", "HEAD"):
            self.send_small(405, b"")
            return
        if not rest:
            self.info(repo, "HEAD", params)
        elif len(rest) == 2 and rest[0] == "revision":
            self.info(repo, unquote(rest[1]), params)
        elif len(rest) >= 2 and rest[0] == "tree":
            self.tree(repo, unquote(rest[1]), unquote("/".join(rest[2:])), params)
        elif rest == ["refs"]:
            self.refs(repo, params)
        else:
            self.send_small(404, b'{"error":"Not Found"}')

    def info(self, repo: Repo, rev: str, params: dict[str, list[str]]) -> None:
        srv = self.owner
        commit = self.commit_or_404(repo, rev)
        if commit is None:
            return
        blobs = _truthy(params.get("blobs"))
        siblings = []
        used = 0
        for e in srv.files(repo, commit).values():
            sib: dict[str, Any] = {"rfilename": e.path}
            used += e.size
            if blobs:
                sib.update(srv.file_meta(repo, e, key="sha256"))
            siblings.append(sib)
        author = repo.repo_id.split("/")[0] if "/" in repo.repo_id else None
        obj: dict[str, Any] = {
            "_id": hashlib.sha1(f"{repo.repo_type}/{repo.repo_id}".encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": author,
            "sha": commit,
            "lastModified": hub_date(repo.git.commit_time(commit)),
            "createdAt": hub_date(repo.git.first_commit_time(commit)),
            "private": repo.private,
            "gated": "auto" if repo.gated else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": used,
        }
        if repo.repo_type == "model":
            obj["modelId"] = repo.repo_id
        if repo.repo_type == "space":
            obj["sdk"] = "static"
            obj["runtime"] = {"stage": "RUNNING", "hardware": {"current": None, "requested": None}}
        self.send_json(obj)

    def tree(self, repo: Repo, rev: str, folder: str, params: dict[str, list[str]]) -> None:
        srv = self.owner
        commit = self.commit_or_404(repo, rev)
        if commit is None:
            return
        folder = folder.strip("/")
        everything = srv.entries(repo, commit)
        if folder and not any(e.path == folder and e.mode == "040000" for e in everything):
            self.error(404, "EntryNotFound", f"{folder} does not exist on \"{rev}\"", {"X-Repo-Commit": commit})
            return
        recursive = _truthy(params.get("recursive"))
        expand = _truthy(params.get("expand"))
        base = folder + "/" if folder else ""
        chosen = [e for e in everything if e.path.startswith(base)
                  and (recursive or "/" not in e.path[len(base):])]
        start = int((params.get("cursor") or ["0"])[0])
        page = chosen[start:start + srv.tree_page_size]
        headers = {}
        if start + srv.tree_page_size < len(chosen):
            nxt = dict((k, v[0]) for k, v in params.items())
            nxt["cursor"] = str(start + srv.tree_page_size)
            headers["Link"] = f'<{srv.url}{self.raw_path}?{urlencode(nxt)}>; rel="next"'
        self.send_json([srv.tree_item(repo, commit, e, expand) for e in page], headers)

    def paths_info(self, repo: Repo, rev: str) -> None:
        srv = self.owner
        commit = self.commit_or_404(repo, rev)
        if commit is None:
            return
        form = parse_qs(getattr(self, "request_body", b"").decode())
        if not form and self.headers.get("Content-Type", "").startswith("application/json"):
            form = {k: (v if isinstance(v, list) else [str(v)]) for k, v in json.loads(self.request_body).items()}
        wanted = {p.strip("/") for p in form.get("paths", [])}
        expand = _truthy(form.get("expand"))
        items = [srv.tree_item(repo, commit, e, expand) for e in srv.entries(repo, commit) if e.path in wanted]
        self.send_json(items)

    def refs(self, repo: Repo, params: dict[str, list[str]]) -> None:
        def items(prefix: str, refs: Mapping[str, str]) -> list[dict[str, str]]:
            return [{"name": n, "ref": f"{prefix}{n}", "targetCommit": s} for n, s in sorted(refs.items())]

        obj: dict[str, Any] = {
            "branches": items("refs/heads/", repo.git.branches()),
            "tags": items("refs/tags/", repo.git.tags()),
            "converts": [],
        }
        if _truthy(params.get("include_prs")):
            obj["pullRequests"] = []
        self.send_json(obj)


def _truthy(values: list[str] | None) -> bool:
    return bool(values) and values[-1].lower() in ("1", "true", "yes")  # type: ignore[index]


class HubServer(Served):
    """Serve real git repositories the way the Hugging Face Hub does (see the module docstring).

    Files whose name ends in one of `lfs_suffixes`, or whose size is >= `lfs_threshold`, are "LFS": resolve
    redirects them to `self.cdn`. `faults` and `stats` are shared by the Hub and its CDN.
    """

    handler = _HubHandler
    name = "hub"

    def __init__(self, workdir: str | os.PathLike[str], *, lfs_threshold: int = 1 << 20,
                 lfs_suffixes: Iterable[str] = LFS_SUFFIXES, tree_page_size: int = 1000, tls: bool = False) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.blob_dir = self.workdir / "blobs"
        self.blob_dir.mkdir(exist_ok=True)
        self.lfs_threshold = lfs_threshold
        self.lfs_suffixes = tuple(lfs_suffixes)
        self.tree_page_size = tree_page_size
        self.faults = Faults()
        self.stats = Stats()
        self.users: dict[str, str] = {}
        self.repos: dict[tuple[str, str], Repo] = {}
        self._blobs: dict[str, BlobInfo] = {}
        self._trees: dict[tuple[str, str], list[TreeEntry]] = {}
        self._lock = threading.RLock()
        self.cdn = RangeServer(name="cdn")
        self.cdn.faults = self.faults
        self.cdn.stats = self.stats
        self.cdn_base: str | None = None
        self._tls = tls
        self.url = ""
        self.https_url = ""

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> HubServer:
        self.cdn.start()
        self._start_http(tls=self._tls)
        return self

    def stop(self) -> None:
        self._stop_http()
        self.cdn.stop()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """The base URL (same as `url`), what HF_ENDPOINT must be set to."""
        return self.url

    @property
    def https_endpoint(self) -> str:
        """The same Hub over https (with `tls=True`)."""
        return self.https_url

    def reset(self) -> None:
        self.faults.reset()
        self.stats.reset()

    # --------------------------------------------------------------------------------- repos
    def create_repo(self, repo_id: str, files: Mapping[str, bytes | str | os.PathLike[str]] | None = None, *,
                    repo_type: str = "model", branch: str = "main", token: str | None = None,
                    gated: bool = False, message: str = "initial commit") -> str | None:
        """Create a repository and commit `files`; returns the commit sha (None when no files were given: the
        repository then has no commit yet). With `token` it is private (only that Bearer token gets in); with
        `gated=True` as well, refusals carry X-Error-Code GatedRepo (401 without a token, 403 with another one)."""
        key = (repo_type, repo_id)
        if repo_type not in PREFIX:
            raise ValueError(f"unknown repo_type {repo_type!r}")
        if key in self.repos:
            raise ValueError(f"{repo_type} {repo_id} exists")
        git = GitRepo.init(self.workdir / "repos" / repo_type / (repo_id.replace("/", "__") + ".git"), branch=branch)
        with self._lock:
            if gated and token is None:
                raise ValueError("a gated repo needs the token that has access")
            self.repos[key] = Repo(repo_id, repo_type, git, token, gated)
            if token is not None:
                self.users.setdefault(token, "test-user")
        if files is None:
            return None
        return git.commit(files, message=message, branch=branch)

    def repo(self, repo_id: str, repo_type: str = "model") -> GitRepo:
        return self.repos[(repo_type, repo_id)].git

    def commit(self, repo_id: str, files: Mapping[str, bytes | str | os.PathLike[str]], message: str = "update", *,
               repo_type: str = "model", branch: str = "main", delete: Iterable[str] = ()) -> str:
        """A new commit on `branch` with `files` added or replaced and `delete` removed; returns its sha."""
        return self.repo(repo_id, repo_type).commit(files, message=message, branch=branch, delete=delete)

    def branch(self, repo_id: str, name: str, rev: str = "main", repo_type: str = "model") -> str:
        return self.repo(repo_id, repo_type).branch(name, rev)

    def tag(self, repo_id: str, name: str, rev: str = "main", repo_type: str = "model") -> str:
        return self.repo(repo_id, repo_type).tag(name, rev)

    def resolve_url(self, repo_id: str, path: str, rev: str = "main", repo_type: str = "model") -> str:
        """The resolve URL huggingface_hub would build for this file."""
        return f"{self.url}/{PREFIX[repo_type]}{repo_id}/resolve/{quote(rev, safe='')}/{quote(path)}"

    def split_repo(self, repo_type: str, segs: list[str]) -> tuple[Repo, list[str]] | None:
        """Find the repo named by the first one or two path segments; returns it and the remaining segments."""
        with self._lock:
            if len(segs) >= 2:
                repo = self.repos.get((repo_type, unquote(segs[0]) + "/" + unquote(segs[1])))
                if repo is not None:
                    return repo, segs[2:]
            if segs:
                repo = self.repos.get((repo_type, unquote(segs[0])))
                if repo is not None:
                    return repo, segs[1:]
        return None

    # ------------------------------------------------------------------------- trees and blobs
    def entries(self, repo: Repo, commit: str) -> list[TreeEntry]:
        key = (str(repo.git.path), commit)
        with self._lock:
            cached = self._trees.get(key)
        if cached is None:
            cached = repo.git.ls_all(commit)
            with self._lock:
                self._trees[key] = cached
        return cached

    def files(self, repo: Repo, commit: str) -> dict[str, TreeEntry]:
        return {e.path: e for e in self.entries(repo, commit) if e.mode != "040000"}

    def is_lfs(self, path: str, size: int) -> bool:
        return size >= self.lfs_threshold or path.lower().endswith(self.lfs_suffixes)

    def blob(self, repo: Repo, entry: TreeEntry) -> BlobInfo:
        """The blob's bytes in the cache folder (written once from git) with its sha256."""
        with self._lock:
            info = self._blobs.get(entry.blob)
            if info is not None:
                return info
            dest = self.blob_dir / entry.blob
            if not dest.exists():
                repo.git.blob_to_file(entry.blob, dest)
            h = hashlib.sha256()
            with open(dest, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            info = BlobInfo(dest, dest.stat().st_size, h.hexdigest())
            self._blobs[entry.blob] = info
            return info

    def cdn_path(self, sha256: str) -> str:
        return f"/repos/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def cdn_url(self, blob: BlobInfo) -> str:
        path = self.cdn_path(blob.sha256)
        if self.cdn.lookup(path) is None:
            self.cdn.add_file(path, blob.file, etag=blob.sha256)
        return (self.cdn_base or self.cdn.url) + path + "?X-Amz-Expires=3600&X-Amz-Signature=test-signature"

    def file_meta(self, repo: Repo, e: TreeEntry, key: str) -> dict[str, Any]:
        """size / blobId / lfs for an entry; `key` is "sha256" (repo info) or "oid" (tree)."""
        if not self.is_lfs(e.path, e.size):
            return {"size": e.size, "blobId": e.blob}
        blob = self.blob(repo, e)
        pointer = lfs_pointer(blob.sha256, blob.size)
        pointer_oid = hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()
        return {"size": e.size, "blobId": pointer_oid,
                "lfs": {key: blob.sha256, "size": blob.size, "pointerSize": len(pointer)}}

    def tree_item(self, repo: Repo, commit: str, e: TreeEntry, expand: bool) -> dict[str, Any]:
        if e.mode == "040000":
            item: dict[str, Any] = {"type": "directory", "oid": e.blob, "size": 0, "path": e.path}
        else:
            meta = self.file_meta(repo, e, key="oid")
            item = {"type": "file", "oid": meta["blobId"], "size": e.size, "path": e.path}
            if "lfs" in meta:
                item["lfs"] = meta["lfs"]
        if expand:
            sha, title, when = repo.git.last_commit(commit, e.path)
            item["lastCommit"] = {"id": sha, "title": title, "date": hub_date(when)}
        return item
