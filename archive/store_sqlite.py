"""SQLite implementation of archive.store.Store.

One writer thread owns the only writing connection, so writes are serialised without locks
and each commit is fsynced (WAL + synchronous=FULL) before the caller's awaitable returns.
Reads run on a separate small pool, each thread with its own query-only connection; WAL
lets them proceed while the writer commits. No sqlite call ever runs on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from archive.models import AgendaItem, Bill, Segment, Sitting, Speaker, Vote, utc_now
from archive.store import CHAMBERS, SITTING_STATUSES, VOTE_RESULTS, Conflict, NotFound
from common.thai import normalize

T = TypeVar("T")

# Each entry migrates the schema from version i to i + 1; never edit a released entry, append.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sittings (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        chamber TEXT NOT NULL CHECK (chamber IN ('senate', 'joint', 'committee')),
        status TEXT NOT NULL CHECK (status IN ('scheduled', 'live', 'adjourned')),
        scheduled_at TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        ended_at TEXT
    );
    CREATE INDEX sittings_created ON sittings (created_at);

    CREATE TABLE bills (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        status TEXT,
        updated_at TEXT NOT NULL
    );

    -- bill_id is deliberately not a foreign key: the agenda often names a bill before
    -- its details have been loaded into bills.
    CREATE TABLE agenda_items (
        id INTEGER PRIMARY KEY,
        sitting_id TEXT NOT NULL REFERENCES sittings (id),
        ord INTEGER NOT NULL,
        title TEXT NOT NULL,
        bill_id TEXT,
        started_at TEXT NOT NULL,
        media_ms INTEGER
    );
    CREATE INDEX agenda_items_sitting ON agenda_items (sitting_id, ord, id);

    CREATE TABLE speakers (
        id INTEGER PRIMARY KEY,
        sitting_id TEXT NOT NULL REFERENCES sittings (id),
        name TEXT NOT NULL,
        role TEXT,
        started_at TEXT NOT NULL,
        media_ms INTEGER
    );
    CREATE INDEX speakers_sitting ON speakers (sitting_id, id);

    CREATE TABLE segments (
        id INTEGER PRIMARY KEY,
        sitting_id TEXT NOT NULL REFERENCES sittings (id),
        seq INTEGER,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        wall_time TEXT NOT NULL,
        text TEXT NOT NULL,
        agenda_item_id INTEGER REFERENCES agenda_items (id),
        speaker_id INTEGER REFERENCES speakers (id),
        revision INTEGER NOT NULL DEFAULT 1
    );
    CREATE INDEX segments_sitting_start ON segments (sitting_id, start_ms, id);

    CREATE TABLE votes (
        id INTEGER PRIMARY KEY,
        sitting_id TEXT NOT NULL REFERENCES sittings (id),
        motion TEXT NOT NULL,
        yes INTEGER NOT NULL CHECK (yes >= 0),
        no INTEGER NOT NULL CHECK (no >= 0),
        abstain INTEGER NOT NULL CHECK (abstain >= 0),
        absent INTEGER NOT NULL CHECK (absent >= 0),
        result TEXT NOT NULL CHECK (result IN ('passed', 'rejected')),
        bill_id TEXT,
        agenda_item_id INTEGER REFERENCES agenda_items (id),
        recorded_at TEXT NOT NULL,
        seq INTEGER
    );
    CREATE INDEX votes_sitting ON votes (sitting_id, id);
    """,
    # The live utterance a caption piece belongs to: finals of one utterance arrive as several pieces, and
    # readers (transcripts, the viewer) join them back into one.
    """
    ALTER TABLE segments ADD COLUMN utterance_id TEXT;
    """,
)

SCHEMA_VERSION = len(_MIGRATIONS)
_READ_THREADS = 2


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; writes use explicit BEGIN IMMEDIATE.
    # check_same_thread=False only so close() can run after the owning thread has exited;
    # while open, each connection is used by exactly one thread.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def _sitting(row: sqlite3.Row) -> Sitting:
    return Sitting(
        id=row["id"],
        title=row["title"],
        chamber=row["chamber"],
        status=row["status"],
        scheduled_at=row["scheduled_at"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
    )


def _agenda_item(row: sqlite3.Row) -> AgendaItem:
    return AgendaItem(
        id=row["id"],
        sitting_id=row["sitting_id"],
        order=row["ord"],
        title=row["title"],
        bill_id=row["bill_id"],
        started_at=row["started_at"],
        media_ms=row["media_ms"],
    )


def _speaker(row: sqlite3.Row) -> Speaker:
    return Speaker(
        id=row["id"],
        sitting_id=row["sitting_id"],
        name=row["name"],
        role=row["role"],
        started_at=row["started_at"],
        media_ms=row["media_ms"],
    )


def _segment(row: sqlite3.Row) -> Segment:
    return Segment(
        id=row["id"],
        sitting_id=row["sitting_id"],
        seq=row["seq"],
        start_ms=row["start_ms"],
        end_ms=row["end_ms"],
        wall_time=row["wall_time"],
        text=row["text"],
        agenda_item_id=row["agenda_item_id"],
        speaker_id=row["speaker_id"],
        revision=row["revision"],
        utterance_id=row["utterance_id"],
    )


def _vote(row: sqlite3.Row) -> Vote:
    return Vote(
        id=row["id"],
        sitting_id=row["sitting_id"],
        motion=row["motion"],
        yes=row["yes"],
        no=row["no"],
        abstain=row["abstain"],
        absent=row["absent"],
        result=row["result"],
        bill_id=row["bill_id"],
        agenda_item_id=row["agenda_item_id"],
        recorded_at=row["recorded_at"],
        seq=row["seq"],
    )


def _bill(row: sqlite3.Row) -> Bill:
    return Bill(id=row["id"], title=row["title"], status=row["status"], updated_at=row["updated_at"])


def _optional(text: str | None) -> str | None:
    return None if text is None else normalize(text)


def _require_sitting(conn: sqlite3.Connection, sitting_id: str) -> None:
    if conn.execute("SELECT 1 FROM sittings WHERE id = ?", (sitting_id,)).fetchone() is None:
        raise NotFound(f"sitting {sitting_id!r}")


def _transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    # IMMEDIATE takes the write lock up front, so a read-then-write never has to be retried.
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
    except sqlite3.IntegrityError as exc:
        conn.execute("ROLLBACK")
        if "FOREIGN KEY" in str(exc):
            raise NotFound("referenced agenda item or speaker does not exist") from exc
        raise ValueError(str(exc)) from exc
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


class SqliteStore:
    """archive.store.Store on one SQLite file (WAL, synchronous=FULL, foreign keys on)."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._write_conn: sqlite3.Connection | None = None
        self._read_conns: list[sqlite3.Connection] = []
        self._read_conns_lock = threading.Lock()
        self._local = threading.local()

    @property
    def path(self) -> Path:
        return self._path

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sapha-db-write")
        self._readers = ThreadPoolExecutor(
            max_workers=_READ_THREADS, thread_name_prefix="sapha-db-read", initializer=self._open_reader
        )
        try:
            await self._write(lambda conn: None, in_transaction=False, opening=True)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        writer, readers = self._writer, self._readers
        self._writer = self._readers = None
        loop = asyncio.get_running_loop()
        # shutdown(wait=True) blocks until queued work finishes, so keep it off the loop too.
        for executor in (writer, readers):
            if executor is not None:
                await loop.run_in_executor(None, functools.partial(executor.shutdown, wait=True))
        if self._write_conn is not None:
            self._write_conn.close()
            self._write_conn = None
        with self._read_conns_lock:
            conns, self._read_conns = self._read_conns, []
        for conn in conns:
            conn.close()

    def _open_writer(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self._path)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            conn.close()
            raise RuntimeError(f"could not enable WAL on {self._path} (journal_mode={mode})")
        # FULL fsyncs the WAL on every commit: a caption a viewer saw as final survives power loss.
        conn.execute("PRAGMA synchronous = FULL")
        try:
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"database schema {version} is newer than this code ({SCHEMA_VERSION})")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            # executescript would commit on its own; wrapping the script keeps each step atomic,
            # user_version included.
            conn.executescript(f"BEGIN IMMEDIATE;\n{_MIGRATIONS[target - 1]}\nPRAGMA user_version = {target};\nCOMMIT;")

    def _open_reader(self) -> None:
        conn = _connect(self._path)
        conn.execute("PRAGMA query_only = ON")
        self._local.conn = conn
        with self._read_conns_lock:
            self._read_conns.append(conn)

    # -- plumbing ----------------------------------------------------------------------------

    async def _write(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        in_transaction: bool = True,
        opening: bool = False,
    ) -> T:
        if self._writer is None:
            raise RuntimeError("store is not open")

        def run() -> T:
            if self._write_conn is None:
                if not opening:
                    raise RuntimeError("store is not open")
                self._write_conn = self._open_writer()
            if in_transaction:
                return _transaction(self._write_conn, work)
            return work(self._write_conn)

        return await asyncio.get_running_loop().run_in_executor(self._writer, run)

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._readers is None:
            raise RuntimeError("store is not open")

        def run() -> T:
            return work(self._local.conn)

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    async def _read_rows(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        return await self._read(lambda conn: conn.execute(sql, params).fetchall())

    # -- sittings ----------------------------------------------------------------------------

    async def create_sitting(self, id: str, title: str, chamber: str, scheduled_at: str | None = None) -> Sitting:
        if chamber not in CHAMBERS:
            raise ValueError(f"chamber must be one of {sorted(CHAMBERS)}, not {chamber!r}")
        title = normalize(title)

        def work(conn: sqlite3.Connection) -> Sitting:
            if conn.execute("SELECT 1 FROM sittings WHERE id = ?", (id,)).fetchone() is not None:
                raise Conflict(f"sitting {id!r} already exists")
            row = conn.execute(
                "INSERT INTO sittings (id, title, chamber, status, scheduled_at, created_at)"
                " VALUES (?, ?, ?, 'scheduled', ?, ?) RETURNING *",
                (id, title, chamber, scheduled_at, utc_now()),
            ).fetchone()
            return _sitting(row)

        return await self._write(work)

    async def get_sitting(self, id: str) -> Sitting | None:
        rows = await self._read_rows("SELECT * FROM sittings WHERE id = ?", (id,))
        return _sitting(rows[0]) if rows else None

    async def list_sittings(self, limit: int = 100, offset: int = 0) -> list[Sitting]:
        rows = await self._read_rows(
            "SELECT * FROM sittings ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?", (limit, offset)
        )
        return [_sitting(row) for row in rows]

    async def set_sitting_status(self, id: str, status: str) -> Sitting:
        if status not in SITTING_STATUSES:
            raise ValueError(f"status must be one of {sorted(SITTING_STATUSES)}, not {status!r}")
        now = utc_now()

        def work(conn: sqlite3.Connection) -> Sitting:
            # started_at records the first time it went live; resuming after an adjournment
            # keeps it but clears ended_at, since the sitting is no longer over.
            row = conn.execute(
                """
                UPDATE sittings SET
                    status = :status,
                    started_at = CASE WHEN :status = 'live' THEN COALESCE(started_at, :now)
                                      ELSE started_at END,
                    ended_at = CASE WHEN :status = 'adjourned' THEN :now
                                    WHEN :status = 'live' THEN NULL
                                    ELSE ended_at END
                WHERE id = :id RETURNING *
                """,
                {"status": status, "now": now, "id": id},
            ).fetchone()
            if row is None:
                raise NotFound(f"sitting {id!r}")
            return _sitting(row)

        return await self._write(work)

    # -- agenda and speakers -------------------------------------------------------------------

    async def add_agenda_item(
        self,
        sitting_id: str,
        title: str,
        bill_id: str | None = None,
        order: int | None = None,
        media_ms: int | None = None,
    ) -> AgendaItem:
        title = normalize(title)

        def work(conn: sqlite3.Connection) -> AgendaItem:
            _require_sitting(conn, sitting_id)
            ord_ = order
            if ord_ is None:
                ord_ = conn.execute(
                    "SELECT COALESCE(MAX(ord), 0) + 1 FROM agenda_items WHERE sitting_id = ?", (sitting_id,)
                ).fetchone()[0]
            row = conn.execute(
                "INSERT INTO agenda_items (sitting_id, ord, title, bill_id, started_at, media_ms)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
                (sitting_id, ord_, title, bill_id, utc_now(), media_ms),
            ).fetchone()
            return _agenda_item(row)

        return await self._write(work)

    async def agenda(self, sitting_id: str) -> list[AgendaItem]:
        rows = await self._read_rows("SELECT * FROM agenda_items WHERE sitting_id = ? ORDER BY ord, id", (sitting_id,))
        return [_agenda_item(row) for row in rows]

    async def current_agenda_item(self, sitting_id: str) -> AgendaItem | None:
        rows = await self._read_rows(
            "SELECT * FROM agenda_items WHERE sitting_id = ? ORDER BY id DESC LIMIT 1", (sitting_id,)
        )
        return _agenda_item(rows[0]) if rows else None

    async def add_speaker(
        self, sitting_id: str, name: str, role: str | None = None, media_ms: int | None = None
    ) -> Speaker:
        name, role = normalize(name), _optional(role)

        def work(conn: sqlite3.Connection) -> Speaker:
            _require_sitting(conn, sitting_id)
            row = conn.execute(
                "INSERT INTO speakers (sitting_id, name, role, started_at, media_ms)"
                " VALUES (?, ?, ?, ?, ?) RETURNING *",
                (sitting_id, name, role, utc_now(), media_ms),
            ).fetchone()
            return _speaker(row)

        return await self._write(work)

    async def current_speaker(self, sitting_id: str) -> Speaker | None:
        rows = await self._read_rows(
            "SELECT * FROM speakers WHERE sitting_id = ? ORDER BY id DESC LIMIT 1", (sitting_id,)
        )
        return _speaker(rows[0]) if rows else None

    # -- caption segments ------------------------------------------------------------------------

    async def add_segment(
        self,
        sitting_id: str,
        start_ms: int,
        end_ms: int,
        text: str,
        agenda_item_id: int | None = None,
        speaker_id: int | None = None,
        utterance_id: str | None = None,
    ) -> Segment:
        text = normalize(text)

        def work(conn: sqlite3.Connection) -> Segment:
            _require_sitting(conn, sitting_id)
            row = conn.execute(
                "INSERT INTO segments (sitting_id, start_ms, end_ms, wall_time, text, agenda_item_id, speaker_id,"
                " revision, utterance_id) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?) RETURNING *",
                (sitting_id, int(start_ms), int(end_ms), utc_now(), text, agenda_item_id, speaker_id, utterance_id),
            ).fetchone()
            return _segment(row)

        return await self._write(work)

    async def set_segment_seq(self, segment_id: int, seq: int) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if conn.execute("UPDATE segments SET seq = ? WHERE id = ?", (seq, segment_id)).rowcount == 0:
                raise NotFound(f"segment {segment_id}")

        await self._write(work)

    async def segments(self, sitting_id: str, after_id: int = 0, limit: int = 10000) -> list[Segment]:
        rows = await self._read_rows(
            "SELECT * FROM segments WHERE sitting_id = ? AND id > ? ORDER BY start_ms, id LIMIT ?",
            (sitting_id, after_id, limit),
        )
        return [_segment(row) for row in rows]

    # -- votes and bills -----------------------------------------------------------------------

    async def add_vote(
        self,
        sitting_id: str,
        motion: str,
        yes: int,
        no: int,
        abstain: int,
        absent: int,
        result: str,
        bill_id: str | None = None,
        agenda_item_id: int | None = None,
    ) -> Vote:
        if result not in VOTE_RESULTS:
            raise ValueError(f"result must be one of {sorted(VOTE_RESULTS)}, not {result!r}")
        if min(yes, no, abstain, absent) < 0:
            raise ValueError("vote counts cannot be negative")
        motion = normalize(motion)

        def work(conn: sqlite3.Connection) -> Vote:
            _require_sitting(conn, sitting_id)
            row = conn.execute(
                "INSERT INTO votes (sitting_id, motion, yes, no, abstain, absent, result, bill_id,"
                " agenda_item_id, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (sitting_id, motion, yes, no, abstain, absent, result, bill_id, agenda_item_id, utc_now()),
            ).fetchone()
            return _vote(row)

        return await self._write(work)

    async def set_vote_seq(self, vote_id: int, seq: int) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if conn.execute("UPDATE votes SET seq = ? WHERE id = ?", (seq, vote_id)).rowcount == 0:
                raise NotFound(f"vote {vote_id}")

        await self._write(work)

    async def votes(self, sitting_id: str) -> list[Vote]:
        rows = await self._read_rows("SELECT * FROM votes WHERE sitting_id = ? ORDER BY id", (sitting_id,))
        return [_vote(row) for row in rows]

    async def upsert_bill(self, id: str, title: str, status: str | None = None) -> Bill:
        title, status = normalize(title), _optional(status)

        def work(conn: sqlite3.Connection) -> Bill:
            row = conn.execute(
                "INSERT INTO bills (id, title, status, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET"
                " title = excluded.title, status = excluded.status, updated_at = excluded.updated_at"
                " RETURNING *",
                (id, title, status, utc_now()),
            ).fetchone()
            return _bill(row)

        return await self._write(work)

    async def get_bill(self, id: str) -> Bill | None:
        rows = await self._read_rows("SELECT * FROM bills WHERE id = ?", (id,))
        return _bill(rows[0]) if rows else None
