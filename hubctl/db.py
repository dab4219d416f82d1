"""SQLite engines for hubctl's two databases, through sqlmodel/SQLAlchemy.

- the index (``index.db``): a cache compiled from registries; rebuilt into a new file and renamed into
  place, so a failed rebuild leaves the old index untouched (tables in hubctl.registry.compile).
- the state (``state.db``): blobs and their stat cache, installed packages, run records; WAL mode so
  concurrent hubctl processes can read while one writes (tables in the modules that own them).

Table modules declare ``SQLModel`` classes with ``table=True``; callers get an engine here and call
:func:`ensure_tables` with their tables. Any SQLAlchemy URL works through ``HUBCTL_DATABASE_URL``
for the state database.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["engine_for", "state_engine", "ensure_tables", "dispose_all"]

_engines: dict[str, "Engine"] = {}
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def engine_for(url_or_path: str | Path) -> "Engine":
    """An engine (cached per URL) for a SQLite file path or any SQLAlchemy URL."""
    from sqlalchemy import event
    from sqlmodel import create_engine

    url = str(url_or_path)
    if "://" not in url:
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{url}"
    with _lock:
        eng = _engines.get(url)
        if eng is None:
            eng = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
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
