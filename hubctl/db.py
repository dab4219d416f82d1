"""SQLite engines for hubctl's two databases, through sqlmodel/SQLAlchemy.

- the index (``index.db``): a cache compiled from registries; rebuilt into a new file and renamed into
  place, so a failed rebuild leaves the old index untouched (tables in hubctl.registry.compile).
- the state (``state.db``): blobs and their stat cache, installed packages, run records; WAL mode so
  concurrent hubctl processes can read while one writes (tables in the modules that own them).

Table modules declare ``SQLModel`` classes with ``table=True``; callers get an engine here and call
:func:`ensure_tables` with their tables. Any SQLAlchemy URL works through ``HUBCTL_DATABASE_URL``
for the state database.

A writer waits up to ``HUBCTL_DB_TIMEOUT`` seconds (default 30) for another process's lock, then fails
(the CLI says so in one line, exit 3). A database whose folder cannot be written (a read-only
``HUBCTL_HOME``) is opened read-only and immutable, so commands that only read still work there (SQLite
could not create the WAL's shared-memory file beside it); a write then fails with "readonly database".
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    import sqlite3

    from sqlalchemy.engine import Engine

__all__ = ["engine_for", "state_engine", "ensure_tables", "dispose_all", "busy_timeout", "read_only_folder",
           "connect_sqlite", "state_read_only"]

_engines: dict[str, "Engine"] = {}
_lock = threading.Lock()


def busy_timeout() -> float:
    """Seconds a database call waits for another process's lock: ``$HUBCTL_DB_TIMEOUT`` or 30."""
    try:
        value = float(os.environ.get("HUBCTL_DB_TIMEOUT") or 30)
    except ValueError:
        return 30.0
    return value if 0 <= value < 1e6 else 30.0


def read_only_folder(db_file: str | Path) -> bool:
    """True when the folder of a SQLite file exists and cannot be written (read-only mount or permissions)."""
    folder = Path(db_file).parent
    return folder.is_dir() and not os.access(folder, os.W_OK)


def connect_sqlite(path: str | Path) -> "sqlite3.Connection":
    """A sqlite3 connection for reading a hubctl database file: the usual read-write one (so readers work beside
    a writer in WAL mode), or read-only and immutable when its folder cannot be written."""
    import sqlite3

    if read_only_folder(path):
        return sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro&immutable=1", uri=True, timeout=busy_timeout())
    return sqlite3.connect(str(path), timeout=busy_timeout())


def state_read_only() -> bool:
    """True when the default state database sits in a folder that cannot be written (its caches are then not
    refreshed; commands that only read still work)."""
    from hubctl.config import state_db_path

    return not os.environ.get("HUBCTL_DATABASE_URL") and read_only_folder(state_db_path())


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout() * 1000)}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def engine_for(url_or_path: str | Path) -> "Engine":
    """An engine (cached per URL) for a SQLite file path or any SQLAlchemy URL."""
    from sqlalchemy import event
    from sqlmodel import create_engine

    url = str(url_or_path)
    if "://" not in url:
        if read_only_folder(url):
            url = f"sqlite:///file:{Path(url).resolve()}?mode=ro&immutable=1&uri=true"
        else:
            Path(url).parent.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{url}"
    with _lock:
        eng = _engines.get(url)
        if eng is None:
            eng = create_engine(url, connect_args={"timeout": busy_timeout()} if url.startswith("sqlite") else {})
            if url.startswith("sqlite"):
                event.listen(eng, "connect", _sqlite_pragmas)
            _engines[url] = eng
        return eng


def state_engine() -> "Engine":
    """The state database: ``$HUBCTL_DATABASE_URL`` or ``$HUBCTL_HOME/state.db``."""
    from hubctl.config import state_db_path

    return engine_for(os.environ.get("HUBCTL_DATABASE_URL") or state_db_path())


def ensure_tables(engine: "Engine", tables: Iterable[type]) -> None:
    """Create the given SQLModel table classes if they do not exist yet (idempotent)."""
    from sqlmodel import SQLModel

    SQLModel.metadata.create_all(engine, tables=[t.__table__ for t in tables])  # type: ignore[attr-defined]


def dispose_all() -> None:
    """Close every cached engine (tests switch HUBCTL_HOME between cases)."""
    with _lock:
        for eng in _engines.values():
            eng.dispose()
        _engines.clear()
