"""SQLite implementation of archive.store.Store.

One writer thread owns the only writing connection, so writes are serialised without locks
and each commit is fsynced (WAL + synchronous=FULL) before the caller's awaitable returns.
Reads run on a separate small pool, each thread with its own query-only connection; WAL
lets them proceed while the writer commits. No sqlite call ever runs on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from archive import bills_sqlite, documents_sqlite, search_sqlite
from archive.bills_rows import bill_from
from archive.documents import Candidate, Document, DocumentFilters, DocumentPage, Section, SectionView
from archive.models import (
    AgendaItem,
    Announcement,
    Bill,
    BillClockInputs,
    BillFilters,
    BillRecord,
    OutboxEntry,
    Segment,
    SegmentRevision,
    SessionPeriodRecord,
    Sitting,
    Speaker,
    StageChange,
    StoredAnswer,
    Vote,
    utc_now,
)
from archive.search import SearchFilters, SearchPage, parse_query
from archive.store import CHAMBERS, SITTING_STATUSES, VOTE_RESULTS, Announce, Conflict, NotFound, StoreUnavailable
from archive.store_rows import (
    agenda_item_from,
    optional_text,
    outbox_entry_from,
    segment_from,
    sitting_from,
    speaker_from,
    vote_from,
)
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
    # Outbox: events recorded with their rows and not yet published (archive/relay.py). AUTOINCREMENT so an id is
    # never reused after the newest entry is deleted: ids are the order entries were recorded in.
    # Answers: the first answer to each operator request made with an Idempotency-Key (archive/idempotency.py).
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL,
        channel TEXT NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        target_kind TEXT CHECK (target_kind IN ('segment', 'vote')),
        target_id INTEGER,
        created_at TEXT NOT NULL,
        created_s REAL NOT NULL
    );
    CREATE INDEX outbox_owner ON outbox (owner, id);

    CREATE TABLE answers (
        key TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        status INTEGER,
        body TEXT,
        created_s REAL NOT NULL
    );
    CREATE INDEX answers_created ON answers (created_s);
    """,
    # Corrections, review and bills in the record (archive/bill_mentions.py). segments.text stays the latest
    # revision, so every reader (exports, search, the viewer) uses it without a join; segment_revisions keeps every
    # text, and gets the machine draft (revision 1) on the first correction, not on every final. segment_bills holds
    # the bills a segment's text names.
    """
    ALTER TABLE sittings ADD COLUMN reviewed_at TEXT;

    CREATE TABLE segment_revisions (
        segment_id INTEGER NOT NULL REFERENCES segments (id),
        revision INTEGER NOT NULL,
        text TEXT NOT NULL,
        author TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (segment_id, revision)
    );

    CREATE TABLE segment_bills (
        segment_id INTEGER NOT NULL REFERENCES segments (id),
        bill_id TEXT NOT NULL,
        PRIMARY KEY (segment_id, bill_id)
    );
    CREATE INDEX segment_bills_bill ON segment_bills (bill_id, segment_id);
    CREATE INDEX agenda_items_bill ON agenda_items (bill_id);
    CREATE INDEX votes_bill ON votes (bill_id);
    """,
    # The documents collection: constitutions and Acts by section (archive/documents.py, documents_sqlite.py), with
    # its own term index so the transcript index is untouched.
    """
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('constitution', 'act')),
        year_be INTEGER NOT NULL,
        in_force INTEGER NOT NULL,
        complete INTEGER NOT NULL,
        source TEXT NOT NULL,
        licence TEXT NOT NULL,
        digest TEXT NOT NULL,
        loaded_at TEXT NOT NULL
    );
    CREATE TABLE document_sections (
        id INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES documents (id),
        ord INTEGER NOT NULL,
        key TEXT NOT NULL,
        label TEXT NOT NULL,
        chapter TEXT,
        part TEXT,
        transitory INTEGER NOT NULL,
        text TEXT NOT NULL,
        folded TEXT NOT NULL,
        subject_terms TEXT NOT NULL,
        rank_at INTEGER NOT NULL,
        UNIQUE (document_id, key)
    );
    CREATE INDEX document_sections_ord ON document_sections (document_id, ord);
    CREATE VIRTUAL TABLE document_terms USING fts5(terms, content='', detail=none, tokenize='ascii');
    """,
    # Bills with details, stages and the Senate clock (archive/bills_sqlite.py): topics, agencies and court pauses
    # are JSON lists in the bill's row (a handful each, read with it, filtered with json_each); the stage history
    # is its own table; bill_clock_events holds one row per clock event announced, so that however many processes
    # run the clock, each event is announced once.
    """
    ALTER TABLE bills ADD COLUMN short_name TEXT;
    ALTER TABLE bills ADD COLUMN type TEXT;
    ALTER TABLE bills ADD COLUMN proposer TEXT;
    ALTER TABLE bills ADD COLUMN stage TEXT;
    ALTER TABLE bills ADD COLUMN topics TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE bills ADD COLUMN agencies TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE bills ADD COLUMN extension_days INTEGER;
    ALTER TABLE bills ADD COLUMN extension_resolved_on TEXT;
    ALTER TABLE bills ADD COLUMN court_pauses TEXT NOT NULL DEFAULT '[]';
    CREATE INDEX bills_updated ON bills (updated_at, id);
    CREATE INDEX bills_stage ON bills (stage);

    CREATE TABLE bill_stages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        bill_id TEXT NOT NULL REFERENCES bills (id),
        from_stage TEXT,
        stage TEXT NOT NULL,
        on_date TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        sitting_id TEXT REFERENCES sittings (id),
        agenda_item_id INTEGER REFERENCES agenda_items (id),
        vote_id INTEGER REFERENCES votes (id),
        note TEXT
    );
    CREATE INDEX bill_stages_bill ON bill_stages (bill_id, id);

    CREATE TABLE session_periods (
        id INTEGER PRIMARY KEY,
        start_date TEXT NOT NULL UNIQUE,
        end_date TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('ordinary', 'extraordinary')),
        title TEXT,
        created_at TEXT NOT NULL
    );

    CREATE TABLE bill_clock_events (
        bill_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        due TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (bill_id, kind, due)
    );
    """,
    # 7. Search under the numbered migrations. archive/search_sqlite.py's tables (created by its ensure_schema until
    # now, which still runs after the migrations and rebuilds the FTS5 terms when their INDEX_VERSION changes);
    # PostgreSQL's entry 7 changes its search index (pg_trgm to keyed terms), so both backends number one schema.
    """
    CREATE TABLE IF NOT EXISTS search_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS search_docs (
        doc INTEGER PRIMARY KEY,
        sitting_id TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        at INTEGER NOT NULL,
        day TEXT NOT NULL,
        chamber TEXT,
        speaker TEXT,
        agenda_item_id INTEGER,
        bill_id TEXT,
        text TEXT NOT NULL,
        folded TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS search_docs_sitting ON search_docs (sitting_id, doc);
    CREATE INDEX IF NOT EXISTS search_docs_day ON search_docs (day, doc);
    CREATE INDEX IF NOT EXISTS search_docs_speaker ON search_docs (speaker, doc);
    CREATE INDEX IF NOT EXISTS search_docs_bill ON search_docs (bill_id, doc);
    CREATE INDEX IF NOT EXISTS search_docs_agenda ON search_docs (agenda_item_id, doc);
    CREATE INDEX IF NOT EXISTS search_docs_chamber ON search_docs (chamber, doc);
    CREATE VIRTUAL TABLE IF NOT EXISTS search_terms USING fts5(terms, content='', detail=none, tokenize='ascii');
    """,
)

SCHEMA_VERSION = len(_MIGRATIONS)
_READ_THREADS = 2
# Longer than busy_timeout below, so a write waiting on another process's lock fails with SQLite's own error first.
DEFAULT_TIMEOUT_S = 15.0
_TARGETS = {"segment": "segments", "vote": "votes"}


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; writes use explicit BEGIN IMMEDIATE.
    # check_same_thread=False only so close() can run after the owning thread has exited;
    # while open, each connection is used by exactly one thread.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def _bill(row: sqlite3.Row) -> Bill:
    return bill_from(row)


def _require_sitting(conn: sqlite3.Connection, sitting_id: str) -> None:
    if conn.execute("SELECT 1 FROM sittings WHERE id = ?", (sitting_id,)).fetchone() is None:
        raise NotFound(f"sitting {sitting_id!r}")


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite rolls some failures back by itself (a full disk, an I/O error), and then ROLLBACK would raise
    # "no transaction is active" over the real error; others (a failed COMMIT, a busy lock) leave the transaction
    # open, and the single writer connection would be stuck inside it for every later write.
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``work`` in one IMMEDIATE transaction; on any failure, COMMIT's included, roll back and raise."""
    # IMMEDIATE takes the write lock up front, so a read-then-write never has to be retried.
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except sqlite3.IntegrityError as exc:
        _rollback(conn)
        if "FOREIGN KEY" in str(exc):
            raise NotFound("referenced agenda item or speaker does not exist") from exc
        raise ValueError(str(exc)) from exc
    except BaseException:
        _rollback(conn)
        raise
    return result


def _announce(conn: sqlite3.Connection, row: T, announce: Announce[T] | None) -> T:
    """Store the announcements of ``row`` in the transaction that wrote it; returns ``row``."""
    if announce is not None:
        _insert_announcements(conn, announce(row))
    return row


def _insert_announcements(conn: sqlite3.Connection, announcements: Sequence[Announcement]) -> None:
    now_iso, now_s = utc_now(), time.time()
    for a in announcements:
        kind, target_id = a.target if a.target is not None else (None, None)
        conn.execute(
            "INSERT INTO outbox (key, owner, channel, type, data, target_kind, target_id, created_at, created_s)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                a.key,
                a.owner,
                a.channel,
                a.type,
                json.dumps(a.data, ensure_ascii=False),
                kind,
                target_id,
                now_iso,
                now_s,
            ),
        )


class SqliteStore:
    """archive.store.Store on one SQLite file (WAL, synchronous=FULL, foreign keys on)."""

    def __init__(self, path: str | Path, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._path = Path(path)
        self._timeout = timeout
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
            # Segments recorded before search existed: indexed in committed batches, each within the timeout.
            while await self._write(search_sqlite.backfill):
                pass
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
            search_sqlite.ensure_schema(conn)
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

        return await self._bounded(asyncio.get_running_loop().run_in_executor(self._writer, run), "write")

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._readers is None:
            raise RuntimeError("store is not open")

        def run() -> T:
            return work(self._local.conn)

        return await self._bounded(asyncio.get_running_loop().run_in_executor(self._readers, run), "read")

    async def _bounded(self, work: asyncio.Future[T], what: str) -> T:
        """Await database work for at most the store's timeout; database failures become StoreUnavailable."""
        try:
            return await asyncio.wait_for(work, self._timeout)
        except TimeoutError:
            # The thread cannot be interrupted: the work may still finish (and a write commit) after this.
            raise StoreUnavailable(f"database {what} did not finish within {self._timeout:g} s") from None
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:  # OperationalError included: disk full, I/O error, read-only, locked
            raise StoreUnavailable(f"database {what} failed: {exc}") from exc

    async def _read_rows(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        return await self._read(lambda conn: conn.execute(sql, params).fetchall())

    # -- sittings ----------------------------------------------------------------------------

    async def create_sitting(
        self,
        id: str,
        title: str,
        chamber: str,
        scheduled_at: str | None = None,
        *,
        announce: Announce[Sitting] | None = None,
    ) -> Sitting:
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
            return _announce(conn, sitting_from(row), announce)

        return await self._write(work)

    async def get_sitting(self, id: str) -> Sitting | None:
        rows = await self._read_rows("SELECT * FROM sittings WHERE id = ?", (id,))
        return sitting_from(rows[0]) if rows else None

    async def list_sittings(self, limit: int = 100, offset: int = 0) -> list[Sitting]:
        rows = await self._read_rows(
            "SELECT * FROM sittings ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?", (limit, offset)
        )
        return [sitting_from(row) for row in rows]

    async def set_sitting_status(self, id: str, status: str, *, announce: Announce[Sitting] | None = None) -> Sitting:
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
            if status == "live":
                search_sqlite.set_sitting_time(conn, id, row["started_at"])
            return _announce(conn, sitting_from(row), announce)

        return await self._write(work)

    # -- agenda and speakers -------------------------------------------------------------------

    async def add_agenda_item(
        self,
        sitting_id: str,
        title: str,
        bill_id: str | None = None,
        order: int | None = None,
        media_ms: int | None = None,
        *,
        announce: Announce[AgendaItem] | None = None,
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
            return _announce(conn, agenda_item_from(row), announce)

        return await self._write(work)

    async def agenda(self, sitting_id: str) -> list[AgendaItem]:
        rows = await self._read_rows("SELECT * FROM agenda_items WHERE sitting_id = ? ORDER BY ord, id", (sitting_id,))
        return [agenda_item_from(row) for row in rows]

    async def current_agenda_item(self, sitting_id: str) -> AgendaItem | None:
        rows = await self._read_rows(
            "SELECT * FROM agenda_items WHERE sitting_id = ? ORDER BY id DESC LIMIT 1", (sitting_id,)
        )
        return agenda_item_from(rows[0]) if rows else None

    async def add_speaker(
        self,
        sitting_id: str,
        name: str,
        role: str | None = None,
        media_ms: int | None = None,
        *,
        announce: Announce[Speaker] | None = None,
    ) -> Speaker:
        name, role = normalize(name), optional_text(role)

        def work(conn: sqlite3.Connection) -> Speaker:
            _require_sitting(conn, sitting_id)
            row = conn.execute(
                "INSERT INTO speakers (sitting_id, name, role, started_at, media_ms)"
                " VALUES (?, ?, ?, ?, ?) RETURNING *",
                (sitting_id, name, role, utc_now(), media_ms),
            ).fetchone()
            return _announce(conn, speaker_from(row), announce)

        return await self._write(work)

    async def current_speaker(self, sitting_id: str) -> Speaker | None:
        rows = await self._read_rows(
            "SELECT * FROM speakers WHERE sitting_id = ? ORDER BY id DESC LIMIT 1", (sitting_id,)
        )
        return speaker_from(rows[0]) if rows else None

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
        *,
        announce: Announce[Segment] | None = None,
    ) -> Segment:
        text = normalize(text)

        def work(conn: sqlite3.Connection) -> Segment:
            _require_sitting(conn, sitting_id)
            row = conn.execute(
                "INSERT INTO segments (sitting_id, start_ms, end_ms, wall_time, text, agenda_item_id, speaker_id,"
                " revision, utterance_id) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?) RETURNING *",
                (sitting_id, int(start_ms), int(end_ms), utc_now(), text, agenda_item_id, speaker_id, utterance_id),
            ).fetchone()
            # Same transaction: searchable the moment it is recorded, before its event is published.
            search_sqlite.index_archived(conn, row["id"])
            return _announce(conn, segment_from(row), announce)

        return await self._write(work)

    async def set_segment_seq(self, segment_id: int, seq: int) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if conn.execute("UPDATE segments SET seq = ? WHERE id = ?", (seq, segment_id)).rowcount == 0:
                raise NotFound(f"segment {segment_id}")

        await self._write(work)

    async def segments(
        self, sitting_id: str, after: tuple[int, int] | None = None, limit: int = 10000
    ) -> list[Segment]:
        # A row-value comparison walks the (sitting_id, start_ms, id) index from the page's start.
        where, args = ("", ()) if after is None else (" AND (start_ms, id) > (?, ?)", after)
        rows = await self._read_rows(
            f"SELECT * FROM segments WHERE sitting_id = ?{where} ORDER BY start_ms, id LIMIT ?",
            (sitting_id, *args, limit),
        )
        return [segment_from(row) for row in rows]

    async def segments_version(self, sitting_id: str) -> tuple[int, ...]:
        rows = await self._read_rows(
            "SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(SUM(revision), 0), COUNT(seq)"
            " FROM segments WHERE sitting_id = ?",
            (sitting_id,),
        )
        return tuple(int(v) for v in rows[0])

    async def search(
        self, q: str, filters: SearchFilters | None = None, cursor: str | None = None, limit: int = 20
    ) -> SearchPage:
        query = parse_query(q)  # bad input fails here, before any database work
        return await self._read(lambda conn: search_sqlite.search(conn, query, filters, cursor, limit))

    # -- documents: constitutions and Acts by section (archive/documents.py) ------------------------------------

    async def document_digests(self) -> dict[str, str]:
        return await self._read(documents_sqlite.digests)

    async def put_document(self, doc: Document, digest: str, terms: Sequence[str]) -> None:
        await self._write(lambda conn: documents_sqlite.put_document(conn, doc, digest, terms, utc_now()))

    async def list_documents(self) -> list[tuple[Document, int]]:
        return await self._read(documents_sqlite.list_documents)

    async def get_document(self, slug: str) -> tuple[Document, list[Section]] | None:
        return await self._read(lambda conn: documents_sqlite.get_document(conn, slug))

    async def get_section(self, slug: str, key: str) -> SectionView | None:
        return await self._read(lambda conn: documents_sqlite.get_section(conn, slug, key))

    async def section_candidates(self, kind: str = "constitution") -> list[Candidate]:
        return await self._read(lambda conn: documents_sqlite.candidates(conn, kind))

    async def search_documents(
        self, q: str, filters: DocumentFilters | None = None, cursor: str | None = None, limit: int = 20
    ) -> DocumentPage:
        query = parse_query(q)
        return await self._read(lambda conn: documents_sqlite.search(conn, query, filters, cursor, limit))

    async def get_segment(self, segment_id: int) -> Segment | None:
        rows = await self._read_rows("SELECT * FROM segments WHERE id = ?", (segment_id,))
        return segment_from(rows[0]) if rows else None

    async def segment_neighbours(
        self, segment: Segment, before: int, after: int
    ) -> tuple[list[Segment], list[Segment]]:
        def work(conn: sqlite3.Connection) -> tuple[list[Segment], list[Segment]]:
            at = {"sitting": segment.sitting_id, "start": segment.start_ms, "id": segment.id}
            earlier = conn.execute(
                "SELECT * FROM segments WHERE sitting_id = :sitting"
                " AND (start_ms < :start OR (start_ms = :start AND id < :id))"
                " ORDER BY start_ms DESC, id DESC LIMIT :n",
                {**at, "n": before},
            ).fetchall()
            later = conn.execute(
                "SELECT * FROM segments WHERE sitting_id = :sitting"
                " AND (start_ms > :start OR (start_ms = :start AND id > :id))"
                " ORDER BY start_ms, id LIMIT :n",
                {**at, "n": after},
            ).fetchall()
            return [segment_from(r) for r in reversed(earlier)], [segment_from(r) for r in later]

        return await self._read(work)

    async def revise_segment(
        self, segment_id: int, text: str, author: str, *, announce: Announce[Segment] | None = None
    ) -> Segment:
        text, author = normalize(text), normalize(author)
        if not text:
            raise ValueError("text must not be blank")

        def work(conn: sqlite3.Connection) -> Segment:
            current = conn.execute("SELECT * FROM segments WHERE id = ?", (segment_id,)).fetchone()
            if current is None:
                raise NotFound(f"segment {segment_id}")
            # The draft (and any revision before the table existed) is copied on the first correction.
            conn.execute(
                "INSERT OR IGNORE INTO segment_revisions (segment_id, revision, text, author, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (segment_id, current["revision"], current["text"], "machine", current["wall_time"]),
            )
            revision = current["revision"] + 1
            conn.execute(
                "INSERT INTO segment_revisions (segment_id, revision, text, author, created_at) VALUES (?, ?, ?, ?, ?)",
                (segment_id, revision, text, author, utc_now()),
            )
            row = conn.execute(
                "UPDATE segments SET text = ?, revision = ? WHERE id = ? RETURNING *", (text, revision, segment_id)
            ).fetchone()
            search_sqlite.reindex(conn, segment_id, text)
            return _announce(conn, segment_from(row), announce)

        return await self._write(work)

    async def segment_revisions(self, segment_id: int) -> list[SegmentRevision]:
        def work(conn: sqlite3.Connection) -> list[SegmentRevision]:
            rows = conn.execute(
                "SELECT * FROM segment_revisions WHERE segment_id = ? ORDER BY revision", (segment_id,)
            ).fetchall()
            if rows:
                return [
                    SegmentRevision(r["segment_id"], r["revision"], r["text"], r["author"], r["created_at"])
                    for r in rows
                ]
            draft = conn.execute("SELECT * FROM segments WHERE id = ?", (segment_id,)).fetchone()
            if draft is None:
                return []
            return [SegmentRevision(segment_id, draft["revision"], draft["text"], "machine", draft["wall_time"])]

        return await self._read(work)

    async def set_sitting_reviewed(self, id: str, reviewed: bool) -> Sitting:
        def work(conn: sqlite3.Connection) -> Sitting:
            row = conn.execute(
                "UPDATE sittings SET reviewed_at = ? WHERE id = ? RETURNING *", (utc_now() if reviewed else None, id)
            ).fetchone()
            if row is None:
                raise NotFound(f"sitting {id!r}")
            return sitting_from(row)

        return await self._write(work)

    async def speakers(self, sitting_id: str) -> list[Speaker]:
        rows = await self._read_rows("SELECT * FROM speakers WHERE sitting_id = ? ORDER BY id", (sitting_id,))
        return [speaker_from(row) for row in rows]

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
        *,
        announce: Announce[Vote] | None = None,
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
            return _announce(conn, vote_from(row), announce)

        return await self._write(work)

    async def set_vote_seq(self, vote_id: int, seq: int) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if conn.execute("UPDATE votes SET seq = ? WHERE id = ?", (seq, vote_id)).rowcount == 0:
                raise NotFound(f"vote {vote_id}")

        await self._write(work)

    async def votes(self, sitting_id: str) -> list[Vote]:
        rows = await self._read_rows("SELECT * FROM votes WHERE sitting_id = ? ORDER BY id", (sitting_id,))
        return [vote_from(row) for row in rows]

    async def upsert_bill(
        self, id: str, title: str, status: str | None = None, *, announce: Announce[Bill] | None = None
    ) -> Bill:
        title, status = normalize(title), optional_text(status)

        def work(conn: sqlite3.Connection) -> Bill:
            row = conn.execute(
                "INSERT INTO bills (id, title, status, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET"
                " title = excluded.title, status = excluded.status, updated_at = excluded.updated_at"
                " RETURNING *",
                (id, title, status, utc_now()),
            ).fetchone()
            return _announce(conn, _bill(row), announce)

        return await self._write(work)

    async def get_bill(self, id: str) -> Bill | None:
        rows = await self._read_rows("SELECT * FROM bills WHERE id = ?", (id,))
        return _bill(rows[0]) if rows else None

    async def list_bills(self, limit: int = 10000) -> list[Bill]:
        rows = await self._read_rows("SELECT * FROM bills ORDER BY id LIMIT ?", (limit,))
        return [_bill(row) for row in rows]

    async def link_bills(self, segment_id: int, bill_ids: Sequence[str]) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM segments WHERE id = ?", (segment_id,)).fetchone() is None:
                raise NotFound(f"segment {segment_id}")
            conn.execute("DELETE FROM segment_bills WHERE segment_id = ?", (segment_id,))
            conn.executemany(
                "INSERT OR IGNORE INTO segment_bills (segment_id, bill_id) VALUES (?, ?)",
                [(segment_id, bill_id) for bill_id in bill_ids],
            )

        await self._write(work)

    async def segment_bills(self, segment_id: int) -> list[str]:
        rows = await self._read_rows(
            "SELECT bill_id FROM segment_bills WHERE segment_id = ? ORDER BY bill_id", (segment_id,)
        )
        return [row["bill_id"] for row in rows]

    async def bill_record(self, bill_id: str, limit: int = 100, offset: int = 0) -> BillRecord | None:
        def work(conn: sqlite3.Connection) -> BillRecord | None:
            # One read transaction, so the lists agree with each other.
            conn.execute("BEGIN")
            try:
                bill = conn.execute("SELECT * FROM bills WHERE id = ?", (bill_id,)).fetchone()
                if bill is None:
                    return None
                sittings = conn.execute(
                    "SELECT * FROM sittings WHERE id IN ("
                    " SELECT sitting_id FROM agenda_items WHERE bill_id = :b"
                    " UNION SELECT sitting_id FROM votes WHERE bill_id = :b"
                    " UNION SELECT s.sitting_id FROM segment_bills l JOIN segments s ON s.id = l.segment_id"
                    "  WHERE l.bill_id = :b)"
                    " ORDER BY COALESCE(started_at, scheduled_at, created_at) DESC, id DESC",
                    {"b": bill_id},
                ).fetchall()
                agenda = conn.execute(
                    "SELECT * FROM agenda_items WHERE bill_id = ? ORDER BY started_at DESC, id DESC", (bill_id,)
                ).fetchall()
                votes = conn.execute(
                    "SELECT * FROM votes WHERE bill_id = ? ORDER BY recorded_at DESC, id DESC", (bill_id,)
                ).fetchall()
                segments = conn.execute(
                    "SELECT s.* FROM segment_bills l JOIN segments s ON s.id = l.segment_id WHERE l.bill_id = ?"
                    " ORDER BY s.wall_time DESC, s.id DESC LIMIT ? OFFSET ?",
                    (bill_id, limit, offset),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
            return BillRecord(
                _bill(bill),
                [sitting_from(r) for r in sittings],
                [agenda_item_from(r) for r in agenda],
                [vote_from(r) for r in votes],
                [segment_from(r) for r in segments],
            )

        return await self._read(work)

    # -- bills: details, stages, the Senate clock (archive/bills_sqlite.py) ---------------------------------------

    async def save_bill(self, bill: Bill, first: StageChange | None, *, announce: Announce[Bill] | None = None) -> Bill:
        return await self._write(lambda conn: _announce(conn, bills_sqlite.save_bill(conn, bill, first), announce))

    async def update_bill(
        self, bill_id: str, changes: dict[str, object], *, announce: Announce[Bill] | None = None
    ) -> Bill:
        return await self._write(
            lambda conn: _announce(conn, bills_sqlite.update_bill(conn, bill_id, changes), announce)
        )

    async def change_stage(
        self,
        bill_id: str,
        check: Callable[[Bill], None],
        change: StageChange,
        *,
        announce: Announce[tuple[Bill, StageChange]] | None = None,
    ) -> tuple[Bill, StageChange]:
        return await self._write(
            lambda conn: _announce(conn, bills_sqlite.change_stage(conn, bill_id, check, change), announce)
        )

    async def bill_stages(self, bill_id: str) -> list[StageChange]:
        return await self._read(lambda conn: bills_sqlite.bill_stages(conn, bill_id))

    async def find_bills(self, filters: BillFilters, limit: int = 50, offset: int = 0) -> tuple[list[Bill], int]:
        return await self._read(lambda conn: bills_sqlite.find_bills(conn, filters, limit, offset))

    async def bill_clock_inputs(self, bill_id: str) -> BillClockInputs:
        return await self._read(lambda conn: bills_sqlite.clock_inputs(conn, bill_id))

    async def set_bill_clock_inputs(
        self, bill_id: str, inputs: BillClockInputs, *, announce: Announce[BillClockInputs] | None = None
    ) -> BillClockInputs:
        return await self._write(
            lambda conn: _announce(conn, bills_sqlite.set_clock_inputs(conn, bill_id, inputs), announce)
        )

    async def add_session(self, start: str, end: str, kind: str, title: str | None) -> SessionPeriodRecord:
        return await self._write(lambda conn: bills_sqlite.add_session(conn, start, end, kind, title))

    async def sessions(self) -> list[SessionPeriodRecord]:
        return await self._read(bills_sqlite.sessions)

    async def claim_clock_event(
        self, bill_id: str, kind: str, due: str, *, announce: Announce[bool] | None = None
    ) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            claimed = bills_sqlite.claim_clock_event(conn, bill_id, kind, due)
            return _announce(conn, claimed, announce) if claimed else False

        return await self._write(work)

    # -- outbox ----------------------------------------------------------------------------------------------------

    async def outbox_pending(self, owner: str, limit: int = 100) -> list[OutboxEntry]:
        # Read on the writer: a reader's snapshot could miss an entry the writer has just committed, and the relay
        # must see every entry written before it asks.
        def work(conn: sqlite3.Connection) -> list[OutboxEntry]:
            rows = conn.execute("SELECT * FROM outbox WHERE owner = ? ORDER BY id LIMIT ?", (owner, limit)).fetchall()
            return [outbox_entry_from(row, json.loads(row["data"])) for row in rows]

        return await self._write(work, in_transaction=False)

    async def outbox_sent(self, entry_id: int, seq: int) -> None:
        def work(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "DELETE FROM outbox WHERE id = ? RETURNING target_kind, target_id", (entry_id,)
            ).fetchone()
            if row is not None and row["target_kind"] in _TARGETS:
                table = _TARGETS[row["target_kind"]]
                conn.execute(f"UPDATE {table} SET seq = ? WHERE id = ?", (seq, row["target_id"]))

        await self._write(work)

    async def outbox_adopt(self, owner: str, older_than_s: float) -> int:
        cutoff = time.time() - older_than_s

        def work(conn: sqlite3.Connection) -> int:
            cur = conn.execute("UPDATE outbox SET owner = ? WHERE owner != ? AND created_s < ?", (owner, owner, cutoff))
            return cur.rowcount

        return await self._write(work)

    # -- idempotency -----------------------------------------------------------------------------------------------

    async def answer_claim(self, key: str, fingerprint: str, ttl: float, claim_ttl: float) -> StoredAnswer | None:
        now = time.time()

        def work(conn: sqlite3.Connection) -> StoredAnswer | None:
            conn.execute(
                "DELETE FROM answers WHERE created_s < ? OR (status IS NULL AND created_s < ?)",
                (now - ttl, now - claim_ttl),
            )
            row = conn.execute("SELECT * FROM answers WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return StoredAnswer(row["key"], row["fingerprint"], row["status"], row["body"], row["created_s"])
            conn.execute("INSERT INTO answers (key, fingerprint, created_s) VALUES (?, ?, ?)", (key, fingerprint, now))
            return None

        return await self._write(work)

    async def answer_store(self, key: str, status: int, body: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE answers SET status = ?, body = ? WHERE key = ?", (status, body, key))

        await self._write(work)

    async def answer_release(self, key: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM answers WHERE key = ? AND status IS NULL", (key,))

        await self._write(work)
