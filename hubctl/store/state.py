"""The store's table in the state database and the read path to it: the ``store_blobs`` table (one row
per blob with the stat it had when last hashed: the verification cache), defined on first use; creating
state tables once per engine; and read-only queries on the state database (:func:`read_state`).

Owns only the table definition and how it is reached. Must not touch blob files, partials or locks
(that is :mod:`hubctl.store.blobs`), and must not import sqlmodel/SQLAlchemy at module top or on the
SQLite read path: ``hubctl verify`` and ``hubctl list`` read the cache through ``sqlite3`` alone.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Optional

__all__ = ["read_state", "ensure_state_tables"]

_tables: dict[str, Any] = {}
_tables_lock = threading.Lock()


def _blob_table() -> Any:
    """The ``store_blobs`` table: one row per blob with the stat it had when last hashed (the verification
    cache). Defined on first use, so that reading the cache never imports sqlmodel/SQLAlchemy."""
    with _tables_lock:
        if "blobs" not in _tables:
            from sqlmodel import Field, SQLModel

            class BlobRecord(SQLModel, table=True):
                __tablename__ = "store_blobs"

                sha256: str = Field(primary_key=True)
                size: int
                device: int
                inode: int
                mtime_ns: int
                verified_at: float = 0.0

            _tables["blobs"] = BlobRecord
        return _tables["blobs"]


_ready_lock = threading.Lock()


def ensure_state_tables(engine: Any, tables: list[Any]) -> None:
    """Create ``tables`` once per engine; threads and processes may race to create them, and the loser's
    "already exists" is fine."""
    from sqlalchemy.exc import OperationalError

    from hubctl.db import ensure_tables

    key = (engine, tuple(t.__tablename__ for t in tables))
    with _ready_lock:
        done = getattr(engine, "_hubctl_tables", set())
        if key[1] in done:
            return
        for attempt in range(5):
            try:
                ensure_tables(engine, tables)
                break
            except OperationalError as e:
                if "already exists" not in str(e) or attempt == 4:
                    raise
        done.add(key[1])
        engine._hubctl_tables = done


def _engine():  # type: ignore[no-untyped-def]
    from hubctl.db import state_engine

    eng = state_engine()
    ensure_state_tables(eng, [_blob_table()])
    return eng


def read_state(sql: str, params: Optional[dict[str, Any]] = None) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on the state database. For the default SQLite file this goes through
    the sqlite3 module (no SQLAlchemy import: ``hubctl verify`` stays fast); a missing database or table
    reads as no rows. With ``HUBCTL_DATABASE_URL`` it goes through SQLAlchemy."""
    params = params or {}
    if os.environ.get("HUBCTL_DATABASE_URL"):
        from sqlalchemy import text
        from sqlalchemy.exc import OperationalError, ProgrammingError

        from hubctl.db import state_engine

        try:
            with state_engine().connect() as c:
                return [tuple(r) for r in c.execute(text(sql), params).fetchall()]
        except (OperationalError, ProgrammingError) as e:
            if "no such table" in str(e) or "does not exist" in str(e):
                return []
            raise
    import sqlite3

    from hubctl.config import state_db_path

    path = state_db_path()
    if not path.exists():
        return []
    from hubctl.db import connect_sqlite

    con = connect_sqlite(path)  # read-only and immutable in a read-only HUBCTL_HOME
    try:
        return con.execute(sql, params).fetchall()
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return []
        raise
    finally:
        con.close()
