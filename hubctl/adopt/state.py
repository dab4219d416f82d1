"""What adopt did, per file, in the state database (table ``adopted_files``): the path as found, the stat it had
when hashed (device, inode, size, mtime_ns, ctime_ns), its hashes (every form :func:`hubctl.store.hashes.
file_hashes` gives, as JSON), what it is (kind, family) and the package it became. A file whose stat is unchanged
is not read again: that is what makes a second ``hubctl adopt`` a no-op; and ``hubctl import`` matches the short
hash forms users see (AutoV3, the A1111 LoRA hash) against these rows. One upsert per file (atomic); reads are
one statement through the sqlite3 read path. Must not touch files or blobs.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AdoptedFile", "stat_key", "read_adopted", "record_adopted", "refresh_stats"]

_tables: dict[str, Any] = {}
_lock = threading.Lock()


def _table() -> Any:
    with _lock:
        if "t" not in _tables:
            from sqlmodel import Field, SQLModel

            class AdoptedFileRow(SQLModel, table=True):
                __tablename__ = "adopted_files"

                path: str = Field(primary_key=True)
                sha256: str = Field(index=True)
                size: int = 0
                device: int = 0
                inode: int = 0
                mtime_ns: int = 0
                ctime_ns: int = 0
                kind: str = ""
                family: str = ""
                package: str = ""
                version: str = ""
                hashes: str = "{}"
                how: str = ""
                adopted_at: float = 0.0

            _tables["t"] = AdoptedFileRow
        return _tables["t"]


def _engine() -> Any:
    from hubctl.db import ensure_tables, state_engine

    eng = state_engine()
    ensure_tables(eng, [_table()])
    return eng


def stat_key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """(device, inode, size, mtime_ns, ctime_ns): what a file must keep to count as unchanged."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass
class AdoptedFile:
    """One adopted file as recorded."""

    path: str
    sha256: str
    size: int
    stat: tuple[int, int, int, int, int]
    kind: str = ""
    family: str = ""
    package: str = ""
    version: str = ""
    hashes: dict[str, str] = field(default_factory=dict)
    how: str = ""  # "<known as>|<variant>": where the package came from ("local", "registry NAME", ...) and its variant

    @property
    def known_as(self) -> str:
        return self.how.split("|")[0]

    @property
    def variant(self) -> str:
        parts = self.how.split("|")
        return parts[1] if len(parts) > 1 and parts[1] else "default"


def read_adopted() -> dict[str, AdoptedFile]:
    """Every recorded file by path (empty when adopt never ran)."""
    from hubctl.store.state import read_state

    rows = read_state("SELECT path, sha256, size, device, inode, mtime_ns, ctime_ns, kind, family, package, version, "
                      "hashes, how FROM adopted_files")  # (no rows before adopt ever ran)
    out = {}
    for r in rows:
        try:
            hashes = json.loads(r[11] or "{}")
        except ValueError:
            hashes = {}
        out[r[0]] = AdoptedFile(r[0], r[1], int(r[2]), (int(r[3]), int(r[4]), int(r[2]), int(r[5]), int(r[6])),
                                r[7], r[8], r[9], r[10], {k: str(v) for k, v in hashes.items()} if isinstance(hashes, dict) else {}, r[12])
    return out


def record_adopted(f: AdoptedFile) -> None:
    """Remember one adopted file (replacing what was recorded for its path)."""
    from hubctl.db import upsert

    dev, ino, size, mtime, ctime = f.stat
    row = dict(path=f.path, sha256=f.sha256, size=size, device=dev, inode=ino, mtime_ns=mtime, ctime_ns=ctime,
               kind=f.kind, family=f.family, package=f.package, version=f.version,
               hashes=json.dumps(f.hashes, sort_keys=True), how=f.how, adopted_at=time.time())
    with _engine().begin() as c:
        upsert(c, _table(), [row], ["path"])


def refresh_stats(stats: dict[str, tuple[int, int, int, int, int]]) -> None:
    """Set the recorded stat of files whose links changed (their ctime moves when a link is added), in one
    transaction."""
    if not stats:
        return
    from sqlalchemy import update

    T = _table()
    with _engine().begin() as c:
        for path, (dev, ino, size, mtime, ctime) in stats.items():
            c.execute(update(T).where(T.path == path).values(device=dev, inode=ino, size=size, mtime_ns=mtime, ctime_ns=ctime))
