"""The desk stores' SQLite plumbing: one connection per store, WAL, explicit transactions, per-component migrations.

Each store (accounts, messages, news) owns one connection guarded by a lock, so its methods are plain blocking calls:
the server must run them off the event loop (``await asyncio.to_thread(store.method, ...)``), never directly in
a handler. The stores may share one database file with the archive; WAL lets their connections write in turn
(``busy_timeout`` waits for another writer's lock instead of failing at once).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from desk import audit

T = TypeVar("T")


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, synchronous=FULL, foreign keys on."""
    # check_same_thread=False: the store's lock, not the thread, makes the connection's use exclusive.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    # Erased contact data must not linger in free pages of the file.
    conn.execute("PRAGMA secure_delete = ON")
    return conn


def transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``work`` in one IMMEDIATE transaction; on any failure (COMMIT's included) roll back and raise."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        # SQLite rolls some failures back by itself; ROLLBACK then would raise over the real error.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def migrate(conn: sqlite3.Connection, component: str, migrations: Sequence[str]) -> None:
    """Bring ``component``'s tables to ``len(migrations)``; entry i migrates from version i to i + 1.

    Versions are kept per component in ``desk_meta``, so the stores evolve independently in one shared file.
    Never edit a released entry: append.
    """

    def work(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE IF NOT EXISTS desk_meta (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        row = c.execute("SELECT version FROM desk_meta WHERE component = ?", (component,)).fetchone()
        version = 0 if row is None else int(row[0])
        if version > len(migrations):
            raise RuntimeError(f"{component} schema {version} is newer than this code ({len(migrations)})")
        for script in migrations[version:]:
            for statement in _statements(script):
                c.execute(statement)
        c.execute(
            "INSERT INTO desk_meta (component, version) VALUES (?, ?)"
            " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            (component, len(migrations)),
        )

    transaction(conn, work)


def _statements(script: str) -> list[str]:
    # executescript would COMMIT the surrounding transaction; split on complete statements instead.
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


class Locked:
    """One connection used by one thread at a time: ``with self._db as conn: ...``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        return self._conn

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Take the connection and run ``work`` in one IMMEDIATE transaction (``transaction`` above)."""
        with self as conn:
            return transaction(conn, work)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_store(path: str | Path, component: str, migrations: Sequence[str]) -> Locked:
    """A store's connection to ``path`` (``connect``), its tables and the shared audit log's brought up to date."""
    conn = connect(path)
    # Every store writes its changes' audit entries in the same transaction, so every store needs desk_audit.
    migrate(conn, "audit", audit.MIGRATIONS)
    migrate(conn, component, migrations)
    return Locked(conn)
