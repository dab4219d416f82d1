"""The store's table in the state database and the read path to it: the ``store_blobs`` table (one row
per blob with the stat it had when last hashed: the verification cache), defined on first use; and read-only
queries on the state database (:func:`read_state`).

Owns only the table definition and how it is reached (tables are made by :func:`hubctl.db.ensure_tables`, the
one way). Must not touch blob files, partials or locks (that is :mod:`hubctl.store.blobs`), and must not import
sqlmodel/SQLAlchemy at module top or on the SQLite read path: ``hubctl verify`` and ``hubctl list`` read the
state through ``sqlite3`` alone.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Optional

__all__ = ["read_state"]

_tables: dict[str, Any] = {}
_tables_lock = threading.Lock()


def _blob_table() -> Any:
    """The ``store_blobs`` table: one row per blob with the stat it had when last hashed (the verification
    cache: device, inode, size, mtime and ctime; ctime because userland cannot set it, so an edit whose size
    and mtime were put back still shows). Defined on first use, so that reading it never imports sqlmodel."""
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
                ctime_ns: int = -1

            _tables["blobs"] = BlobRecord
        return _tables["blobs"]


def _engine():  # type: ignore[no-untyped-def]
    from hubctl.db import ensure_tables, state_engine

    eng = state_engine()
    ensure_tables(eng, [_blob_table()])
    return eng


def read_state(sql: str, params: Optional[dict[str, Any]] = None) -> list[tuple[Any, ...]]:
    """Rows of one read-only query on the state database (one statement: one consistent snapshot). For the
    default SQLite file this goes through the sqlite3 module (no SQLAlchemy import: ``hubctl verify`` stays
    fast); a missing database, table or column (an older database not written to since) reads as no rows.
    With ``HUBCTL_DATABASE_URL`` it goes through SQLAlchemy."""
    params = params or {}
    if os.environ.get("HUBCTL_DATABASE_URL"):
        from sqlalchemy import text
        from sqlalchemy.exc import OperationalError, ProgrammingError

        from hubctl.db import state_engine

        try:
            with state_engine().connect() as c:
                return [tuple(r) for r in c.execute(text(sql), params).fetchall()]
        except (OperationalError, ProgrammingError) as e:
            if _absent(str(e)):
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
        if _absent(str(e)):
            return []
        raise
    finally:
        con.close()


def _absent(message: str) -> bool:
    return any(w in message for w in ("no such table", "no such column", "does not exist"))
