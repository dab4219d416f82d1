"""SQLite engines for hubctl's two databases, through sqlmodel/SQLAlchemy.

- the index (``index.db``): a cache compiled from registries; rebuilt into a new file and renamed into
  place, so a failed rebuild leaves the old index untouched (tables in hubctl.registry.compile).
- the state (``state.db``): blobs and their stat cache, installed packages, run records; WAL mode so
  concurrent hubctl processes can read while one writes (tables in the modules that own them).

Table modules declare ``SQLModel`` classes with ``table=True``; callers get an engine here and call
:func:`ensure_tables` with their tables (the one way tables are made: ``CREATE ... IF NOT EXISTS``, so threads and
processes may race to make them; columns a newer hubctl added are added to an older database). Rows that may
be written by several processes at once go through :func:`upsert`. Any SQLAlchemy URL works through
``HUBCTL_DATABASE_URL`` for the state database. The SQLite files and their folder are never group- or
world-writable, whatever the umask.

A writer waits up to ``HUBCTL_DB_TIMEOUT`` seconds (default 30) for another process's lock, then fails
(the CLI says so in one line, exit 3). A database whose folder cannot be written (a read-only
``HUBCTL_HOME``) is opened read-only and immutable, so commands that only read still work there (SQLite
could not create the WAL's shared-memory file beside it); a write then fails with "readonly database".
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from hubctl.fsutil import make_dirs

if TYPE_CHECKING:
    import sqlite3

    from sqlalchemy.engine import Connection, Engine

__all__ = ["engine_for", "state_engine", "ensure_tables", "upsert", "dispose_all", "busy_timeout", "read_only_folder",
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
            try:
                make_dirs(Path(url).parent)
                if not os.path.lexists(url):  # 0644 at most (SQLite gives its -wal and -shm files the same mode)
                    os.close(os.open(url, os.O_RDWR | os.O_CREAT, 0o644))
            except OSError:
                pass  # a read-only home: SQLite says so when something is written
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


_made_lock = threading.Lock()


def ensure_tables(engine: "Engine", tables: Iterable[type]) -> None:
    """Make the given SQLModel table classes (and their indexes) where they do not exist yet, and add the
    columns an older database lacks; once per engine and table. Idempotent and safe to race: every statement
    is ``IF NOT EXISTS`` (another thread or process making the same table at the same moment is fine)."""
    from sqlalchemy import inspect
    from sqlalchemy.schema import CreateIndex, CreateTable

    with _made_lock:
        made: set[str] = engine.__dict__.setdefault("_hubctl_tables", set())
        todo = [t.__table__ for t in tables if t.__table__.name not in made]  # type: ignore[attr-defined]
        if not todo:
            return
        with engine.begin() as c:
            for table in todo:
                c.execute(CreateTable(table, if_not_exists=True))
                for ix in sorted(table.indexes, key=lambda i: i.name or ""):
                    c.execute(CreateIndex(ix, if_not_exists=True))
        insp = inspect(engine)
        for table in todo:
            have = {col["name"] for col in insp.get_columns(table.name)}
            for col in table.columns:
                if col.name not in have:
                    _add_column(engine, table.name, col)
            made.add(table.name)


def _add_column(engine: "Engine", table: str, col: Any) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for a column a newer hubctl defines (nullable, with its scalar default)."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError, ProgrammingError

    prep = engine.dialect.identifier_preparer
    ddl = f"ALTER TABLE {prep.quote(table)} ADD COLUMN {prep.quote(col.name)} {col.type.compile(dialect=engine.dialect)}"
    default = getattr(col.default, "arg", None)
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        ddl += f" DEFAULT {default!r}"
    elif isinstance(default, str):
        ddl += " DEFAULT '" + default.replace("'", "''") + "'"
    try:
        with engine.begin() as c:
            c.execute(text(ddl))
    except (OperationalError, ProgrammingError) as e:
        if "duplicate column" not in str(e).lower() and "already exists" not in str(e).lower():
            raise  # (another process added it first: fine)


def upsert(conn: "Connection", table: Any, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> None:
    """Insert ``rows`` into ``table`` (an SQLModel class or a Table), replacing the other columns of a row whose
    ``keys`` exist already: one statement per row, so two processes writing the same row never fail (no
    read-then-insert race)."""
    from sqlalchemy import and_, insert, update
    from sqlalchemy.exc import IntegrityError

    t = getattr(table, "__table__", table)
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        for row in rows:
            stmt = dialect_insert(t).values(**row)
            rest = {k: stmt.excluded[k] for k in row if k not in keys}
            conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=rest) if rest else stmt.on_conflict_do_nothing())
        return
    for row in rows:  # other databases: try the insert, update on a conflict (inside a savepoint)
        try:
            with conn.begin_nested():
                conn.execute(insert(t).values(**row))
        except IntegrityError:
            where = and_(*(t.c[k] == row[k] for k in keys))
            conn.execute(update(t).where(where).values(**{k: v for k, v in row.items() if k not in keys}))


def dispose_all() -> None:
    """Close every cached engine (tests switch HUBCTL_HOME between cases)."""
    with _lock:
        for eng in _engines.values():
            eng.dispose()
        _engines.clear()
