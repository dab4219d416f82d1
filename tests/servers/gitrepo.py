"""Real git repositories for tests, made and read through the `git` CLI.

Owns: creating bare repositories, committing a set of files to a branch (git plumbing: hash-object,
update-index on a private index, write-tree, commit-tree, update-ref; no worktree), branches and tags,
and reading refs, trees and blobs back. Commits are real 40-hex git commits.
Must not: talk HTTP (tests/servers/hub_server.py serves these repos) or hold blob contents in memory
beyond the one being written.

    repo = GitRepo.init(tmp_path / "r.git")
    sha = repo.commit({"model.safetensors": b"...", "big.bin": Path("/some/file")}, message="add", branch="main")
    repo.tag("v1.0", sha); repo.branch("dev", "main")
    repo.rev_parse("v1.0") == sha;  repo.ls_tree(sha) -> [TreeEntry(path, blob, size, mode)]
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

__all__ = ["GitRepo", "TreeEntry", "GitError"]

HEX40 = re.compile(r"^[0-9a-f]{40}$")
_ENV = {
    "GIT_AUTHOR_NAME": "hubctl tests",
    "GIT_AUTHOR_EMAIL": "tests@hubctl.invalid",
    "GIT_COMMITTER_NAME": "hubctl tests",
    "GIT_COMMITTER_EMAIL": "tests@hubctl.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


class GitError(RuntimeError):
    """A git command failed."""


class TreeEntry(NamedTuple):
    path: str
    blob: str  # git blob sha (40-hex)
    size: int
    mode: str


class GitRepo:
    """A bare git repository on disk."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    # ------------------------------------------------------------------------------------ plumbing
    def _git(self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None) -> bytes:
        full_env = {**os.environ, **_ENV, "HOME": str(self.path), **(env or {})}
        full_env.pop("GIT_DIR", None)
        proc = subprocess.run(
            ["git", "-c", "core.compression=0", "-c", "core.looseCompression=0", f"--git-dir={self.path}", *args],
            input=input, capture_output=True, env=full_env, check=False,
        )
        if proc.returncode != 0:
            raise GitError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout

    @classmethod
    def init(cls, path: str | os.PathLike[str], branch: str = "main") -> GitRepo:
        repo = cls(path)
        repo.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", "-b", branch, str(repo.path)], check=True,
                       env={**os.environ, **_ENV, "HOME": str(repo.path)}, capture_output=True)
        return repo

    # --------------------------------------------------------------------------------------- write
    def commit(self, files: Mapping[str, bytes | str | os.PathLike[str]], message: str = "update",
               branch: str = "main", delete: Iterable[str] = (), parent: str | None = None) -> str:
        """Commit `files` (repo path -> bytes or a file to copy) on top of `branch` (or `parent`); returns the sha.

        Files not named keep their content from the parent commit; `delete` removes paths. A branch that does not
        exist yet starts from HEAD (the default branch), as `git switch -c` would; an empty repo gets a root commit.
        """
        parent = parent or self.rev_parse(f"refs/heads/{branch}") or self.rev_parse("HEAD")
        with tempfile.TemporaryDirectory(prefix="gitrepo-") as tmp:
            index = os.path.join(tmp, "index")
            env = {"GIT_INDEX_FILE": index}
            if parent:
                self._git("read-tree", parent, env=env)
            sources: list[str] = []
            names = list(files)
            for i, name in enumerate(names):
                content = files[name]
                if isinstance(content, (bytes, bytearray, memoryview)):
                    staged = os.path.join(tmp, f"blob{i}")
                    with open(staged, "wb") as fh:
                        fh.write(content)
                    sources.append(staged)
                else:
                    sources.append(os.fspath(content))
            lines: list[str] = []
            if sources:
                shas = self._git("hash-object", "-w", "--no-filters", "--stdin-paths",
                                 input="\n".join(sources).encode() + b"\n").decode().split()
                lines += [f"100644 {sha}\t{_clean(name)}" for sha, name in zip(shas, names)]
            lines += [f"0 {'0' * 40}\t{_clean(name)}" for name in delete]
            if lines:
                self._git("update-index", "--index-info", input="\n".join(lines).encode() + b"\n", env=env)
            tree = self._git("write-tree", env=env).decode().strip()
        args = ["commit-tree", tree, "-m", message]
        if parent:
            args += ["-p", parent]
        sha = self._git(*args).decode().strip()
        self._git("update-ref", f"refs/heads/{branch}", sha)
        return sha

    def branch(self, name: str, rev: str = "main") -> str:
        sha = self._need(rev)
        self._git("update-ref", f"refs/heads/{name}", sha)
        return sha

    def tag(self, name: str, rev: str = "main") -> str:
        sha = self._need(rev)
        self._git("update-ref", f"refs/tags/{name}", sha)
        return sha

    def delete_ref(self, ref: str) -> None:
        self._git("update-ref", "-d", ref)

    # ---------------------------------------------------------------------------------------- read
    def rev_parse(self, rev: str) -> str | None:
        """The commit sha that `rev` (40-hex, branch, tag or full ref) names, or None."""
        if not rev or rev.startswith("-") or any(c in rev for c in " \t\n~^:?*[\\") or ".." in rev:
            return None
        try:
            out = self._git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        except GitError:
            return None
        sha = out.decode().strip()
        return sha if HEX40.match(sha) else None

    def _need(self, rev: str) -> str:
        sha = self.rev_parse(rev)
        if sha is None:
            raise GitError(f"unknown revision {rev!r}")
        return sha

    def refs(self) -> dict[str, str]:
        """Full ref name -> commit sha, for branches and tags."""
        out = self._git("for-each-ref", "--format=%(refname) %(objectname) %(*objectname)", "refs/heads", "refs/tags")
        refs: dict[str, str] = {}
        for line in out.decode().splitlines():
            parts = line.split()
            refs[parts[0]] = parts[2] if len(parts) > 2 else parts[1]
        return refs

    def branches(self) -> dict[str, str]:
        return {r[len("refs/heads/"):]: s for r, s in self.refs().items() if r.startswith("refs/heads/")}

    def tags(self) -> dict[str, str]:
        return {r[len("refs/tags/"):]: s for r, s in self.refs().items() if r.startswith("refs/tags/")}

    def ls_tree(self, commit: str) -> list[TreeEntry]:
        """Every file of `commit`, recursively, sorted by path."""
        return [e for e in self.ls_all(commit) if e.mode != "040000"]

    def ls_all(self, commit: str) -> list[TreeEntry]:
        """Files and folders (mode 040000, size 0) of `commit`, recursively, sorted by path."""
        out = self._git("ls-tree", "-r", "-t", "-l", "-z", commit)
        entries = []
        for rec in out.split(b"\0"):
            if not rec:
                continue
            meta, path = rec.split(b"\t", 1)
            mode, kind, sha, size = meta.decode().split()
            if kind in ("blob", "tree"):
                entries.append(TreeEntry(path.decode(), sha, int(size) if kind == "blob" else 0,
                                         "040000" if kind == "tree" else mode))
        return sorted(entries, key=lambda e: e.path)

    def tree_id(self, commit: str) -> str:
        """The root tree sha of `commit`."""
        return self._git("rev-parse", f"{commit}^{{tree}}").decode().strip()

    def last_commit(self, commit: str, path: str) -> tuple[str, str, datetime]:
        """(sha, title, date) of the last commit up to `commit` that touched `path`."""
        out = self._git("log", "-1", "--format=%H%x00%s%x00%ct", commit, "--", path).decode().strip()
        sha, title, ts = out.split("\0")
        return sha, title, datetime.fromtimestamp(int(ts), tz=timezone.utc)

    def commit_time(self, commit: str) -> datetime:
        ts = int(self._git("log", "-1", "--format=%ct", commit).decode().strip())
        return datetime.fromtimestamp(ts, tz=timezone.utc)

    def commit_title(self, commit: str) -> str:
        return self._git("log", "-1", "--format=%s", commit).decode().strip()

    def first_commit_time(self, commit: str) -> datetime:
        out = self._git("log", "--reverse", "--format=%ct", commit).decode().split()
        return datetime.fromtimestamp(int(out[0]), tz=timezone.utc)

    def blob_bytes(self, blob: str) -> bytes:
        return self._git("cat-file", "blob", blob)

    def blob_to_file(self, blob: str, dest: str | os.PathLike[str]) -> None:
        """Write a blob to `dest` (atomically), streaming from git."""
        dest = Path(dest)
        fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", dir=dest.parent)
        with os.fdopen(fd, "wb") as fh:
            proc = subprocess.run(["git", f"--git-dir={self.path}", "cat-file", "blob", blob], stdout=fh,
                                  stderr=subprocess.PIPE, env={**os.environ, **_ENV}, check=False)
        if proc.returncode != 0:
            os.unlink(tmp)
            raise GitError(f"git cat-file blob {blob}: {proc.stderr.decode(errors='replace').strip()}")
        os.replace(tmp, dest)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _clean(name: str) -> str:
    path = name.strip("/")
    if not path or any(part in ("", ".", "..") for part in path.split("/")) or "\n" in path or "\t" in path:
        raise ValueError(f"bad repository path {name!r}")
    return path
