"""The transcript search index in PostgreSQL: schema, indexing and the search itself, mirroring
archive/search_sqlite.py function for function (see archive/search.py for the query language and matching).

Table (created idempotently by `ensure_schema`, in the archive's own database):

* `search_docs`: one row per indexed segment (`doc` = the segment id): its latest text, the text's folded search
  form, the fields filters use (sitting, the sitting's Bangkok date, chamber, speaker name, agenda item, bill) and
  `at` (epoch ms of the moment spoken) for recency. A `pg_trgm` GIN index on `folded` serves `LIKE '%…%'`.

Where SQLite needs its own term index (trigrams plus 1–2 character pieces, rebuilt when `INDEX_VERSION` changes),
PostgreSQL keeps the trigram index itself, in step with `folded` on every write: a substring test on the folded
text is the candidate lookup, and `search.score` verifies each candidate, exactly as in search_sqlite. A term of
one or two characters (`สว`, `ปี`) has no trigram of its own, so its lookup reads the whole window; the filtered
scan and the windows below bound that as they do in SQLite.

Candidates come from a *filtered scan* (the filters leave at most `window` documents: all read and verified,
exhaustive) or an *index window* (the newest `window` documents holding every included term, filters applied in
the same query; `SearchPage.exhaustive` is False while more windows remain), with search_sqlite's cursors.

Every function takes an open psycopg AsyncConnection and runs in the caller's transaction; the writes are meant to
run inside the write that records the segment (archive/store_postgres.py), so a final is searchable as soon as
that write commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import TupleRow, tuple_row

from archive import search as core
from archive.search import Cursor, Query, QueryError, SearchFilters, SearchHit, SearchPage
from archive.search_sqlite import SEGMENT_WINDOW, SegmentDoc

__all__ = ["SearchFilters", "SearchHit", "SearchPage", "SegmentDoc", "ensure_schema", "index_segments", "search"]

# The first span of document ids searched for candidates, in windows (see search()).
SPAN_FACTOR = 8
MAX_LIMIT = 100
# Sittings are dated as Thai readers know them.
_BANGKOK = timedelta(hours=7)

# pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it. Two processes racing through
# CREATE … IF NOT EXISTS can still collide, so a caller that may race holds a lock (store_postgres's MIGRATE_LOCK).
_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE TABLE IF NOT EXISTS search_docs (
    doc BIGINT PRIMARY KEY,
    sitting_id TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    at BIGINT NOT NULL,
    day TEXT NOT NULL,
    chamber TEXT,
    speaker TEXT,
    agenda_item_id BIGINT,
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
CREATE INDEX IF NOT EXISTS search_docs_folded_trgm ON search_docs USING gin (folded gin_trgm_ops);
"""

_INDEXES = [line.split()[5] for line in _SCHEMA.splitlines() if line.startswith("CREATE INDEX")]

Conn = AsyncConnection[Any]


async def _rows(conn: Conn, query: str, params: Sequence[Any] = ()) -> list[TupleRow]:
    # Tuples whatever the connection's own row factory (the store's are dicts).
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def _rowcount(conn: Conn, query: str, params: Sequence[Any]) -> int:
    async with conn.cursor() as cur:
        await cur.execute(query, params)
        return cur.rowcount


async def ensure_schema(conn: Conn) -> None:
    """Create the extension, the table and its indexes if missing."""
    await conn.execute(_SCHEMA)


# -- writing -------------------------------------------------------------------------------------------------------


def _epoch_ms(iso: str) -> int:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _day(iso: str) -> str:
    return (datetime.fromtimestamp(_epoch_ms(iso) / 1000, UTC) + _BANGKOK).date().isoformat()


def _row(d: SegmentDoc) -> tuple[Any, ...]:
    return (d.segment_id, d.sitting_id, d.start_ms, _epoch_ms(d.sitting_at) + d.start_ms, _day(d.sitting_at),
            d.chamber, d.speaker, d.agenda_item_id, d.bill_id, d.text, core.fold(d.text))  # fmt: skip


async def index_segments(conn: Conn, docs: Iterable[SegmentDoc]) -> int:
    """Index (or re-index) segments; the caller owns the transaction. Returns how many were written."""
    rows = [_row(d) for d in docs]
    if rows:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO search_docs (doc, sitting_id, start_ms, at, day, chamber, speaker, agenda_item_id,"
                " bill_id, text, folded) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (doc) DO UPDATE SET sitting_id = excluded.sitting_id, start_ms = excluded.start_ms,"
                " at = excluded.at, day = excluded.day, chamber = excluded.chamber, speaker = excluded.speaker,"
                " agenda_item_id = excluded.agenda_item_id, bill_id = excluded.bill_id, text = excluded.text,"
                " folded = excluded.folded",
                rows,
            )
    return len(rows)


async def copy_segments(conn: Conn, docs: Iterable[SegmentDoc]) -> int:
    """Bulk-index segments not indexed yet with COPY (an import, a first backfill); the caller owns the transaction.

    Several times faster than index_segments, but an id already indexed fails the whole COPY (unique key). For a
    large load into an empty index, `drop_indexes` first and `ensure_schema` after: building the trigram index
    once over the loaded rows is faster than updating it row by row.
    """
    n = 0
    async with conn.cursor() as cur:
        async with cur.copy(
            "COPY search_docs (doc, sitting_id, start_ms, at, day, chamber, speaker, agenda_item_id, bill_id, text,"
            " folded) FROM STDIN"
        ) as copy:
            for d in docs:
                await copy.write_row(_row(d))
                n += 1
    return n


async def drop_indexes(conn: Conn) -> None:
    """Drop the secondary indexes (before a bulk `copy_segments`); `ensure_schema` builds them again."""
    for name in _INDEXES:
        await conn.execute(f"DROP INDEX IF EXISTS {name}")


async def index_segment(
    conn: Conn,
    segment_id: int,
    sitting_id: str,
    start_ms: int,
    text: str,
    *,
    sitting_at: str,
    chamber: str | None = None,
    speaker: str | None = None,
    agenda_item_id: int | None = None,
    bill_id: str | None = None,
) -> None:
    """Index one segment (replacing what was indexed under its id); searchable when the caller commits."""
    await index_segments(
        conn,
        [SegmentDoc(segment_id, sitting_id, start_ms, text, sitting_at, chamber, speaker, agenda_item_id, bill_id)],
    )


async def reindex(conn: Conn, segment_id: int, text: str) -> bool:
    """Replace an indexed segment's text with a new revision, keeping its context; False if it is not indexed."""
    changed = await _rowcount(
        conn, "UPDATE search_docs SET text = %s, folded = %s WHERE doc = %s", (text, core.fold(text), segment_id)
    )
    return changed > 0


async def unindex(conn: Conn, segment_id: int) -> bool:
    """Remove a segment from the index; False if it was not indexed."""
    return await _rowcount(conn, "DELETE FROM search_docs WHERE doc = %s", (segment_id,)) > 0


# A segment of the archive (archive/store_postgres.py's tables) with the context the index keeps.
_ARCHIVED = """
SELECT s.id, s.sitting_id, s.start_ms, s.text, coalesce(t.started_at, t.scheduled_at, t.created_at), t.chamber,
       p.name, s.agenda_item_id, a.bill_id
FROM segments s
JOIN sittings t ON t.id = s.sitting_id
LEFT JOIN speakers p ON p.id = s.speaker_id
LEFT JOIN agenda_items a ON a.id = s.agenda_item_id
"""


async def index_archived(conn: Conn, segment_id: int) -> bool:
    """Index (or re-index) one segment of the archive as stored now; False if there is no such segment."""
    rows = await _rows(conn, f"{_ARCHIVED} WHERE s.id = %s", (segment_id,))
    return await index_segments(conn, (SegmentDoc(*row) for row in rows)) == 1


async def backfill(conn: Conn, limit: int = 2000) -> int:
    """Index up to `limit` archived segments the index lacks, oldest first; returns how many (0: none left)."""
    ((segments,),) = await _rows(conn, "SELECT count(*) FROM segments")
    ((docs,),) = await _rows(conn, "SELECT count(*) FROM search_docs")
    if docs >= segments:
        return 0
    rows = await _rows(
        conn,
        f"{_ARCHIVED} WHERE NOT EXISTS (SELECT 1 FROM search_docs d WHERE d.doc = s.id) ORDER BY s.id LIMIT %s",
        (limit,),
    )
    return await index_segments(conn, (SegmentDoc(*row) for row in rows))


async def set_sitting_time(conn: Conn, sitting_id: str, sitting_at: str) -> None:
    """Move a sitting's segments to its real start time (recency and the date filter)."""
    await conn.execute(
        "UPDATE search_docs SET at = %s + start_ms, day = %s WHERE sitting_id = %s",
        (_epoch_ms(sitting_at), _day(sitting_at), sitting_id),
    )


# -- searching -----------------------------------------------------------------------------------------------------


def _where(filters: SearchFilters) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value, op in (
        ("d.sitting_id", filters.sitting, "="),
        ("d.day", filters.date_from, ">="),
        ("d.day", filters.date_to, "<="),
        ("d.chamber", filters.chamber, "="),
        ("d.speaker", filters.speaker, "="),
        ("d.bill_id", filters.bill, "="),
        ("d.agenda_item_id", filters.agenda_item, "="),
    ):
        if value is not None:
            clauses.append(f"{column} {op} %s")
            params.append(value)
    return (" AND ".join(clauses) or "TRUE"), params


def _contains(term: str) -> str:
    """A LIKE pattern matching text that holds `term` anywhere (LIKE's own characters escaped)."""
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def search(
    conn: Conn,
    q: str | Query,
    filters: SearchFilters | None = None,
    cursor: str | None = None,
    limit: int = 20,
    *,
    window: int = SEGMENT_WINDOW,
) -> SearchPage:
    """One page of segments matching `q`, best first; only reads. QueryError (naming the field) for bad input."""
    query = q if isinstance(q, Query) else core.parse_query(q)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise QueryError("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    position = Cursor.decode(cursor) if cursor is not None else None
    filters = filters or SearchFilters()
    where, params = _where(filters)
    # One statement where there could be several: a round trip costs more than the work on a busy server.
    ((top, in_scope),) = await _rows(
        conn,
        "WITH t AS (SELECT coalesce(%s, (SELECT max(doc) FROM search_docs), 0) AS top)"
        f" SELECT top, (SELECT count(*) FROM (SELECT 1 FROM search_docs d WHERE d.doc <= top AND {where} LIMIT %s)"
        " AS scope) FROM t",
        [position.top if position is not None else None, *params, window + 1],
    )
    rows: list[TupleRow]
    if in_scope <= window:
        rows = await _rows(
            conn, f"SELECT d.doc, d.at, d.folded FROM search_docs d WHERE d.doc <= %s AND {where}", [top, *params]
        )
        exhaustive = True
    else:
        # Every match holds each included term's folded form as a substring (score checks the boundaries), so
        # these patterns are exact lookups, and the trigram index narrows them.
        # One LIKE per term rather than LIKE ALL(array): GIN cannot serve an array comparison.
        patterns = [_contains(t.folded) for t in query.include]
        likes = " AND ".join(["d.folded LIKE %s"] * len(patterns))
        # The newest `window` candidates, read in spans of document ids that grow fourfold, newest first: asked
        # over the whole archive at once, PostgreSQL gathers (and rechecks) every match of a common term before it
        # can pick the newest, while in a span it intersects the trigram index with the id range (BitmapAnd). The
        # spans are branches of one UNION ALL under the LIMIT, which PostgreSQL runs in order and stops reading
        # as soon as the window is full, so a common term costs the first span or two and a rare one every span.
        branches: list[str] = []
        span_params: list[Any] = []
        hi, span = top, window * SPAN_FACTOR
        while hi > 0:
            lo = max(0, hi - span)
            branches.append(
                f"(SELECT d.doc, d.at, d.folded FROM search_docs d WHERE {likes} AND d.doc <= %s AND d.doc > %s"
                f" AND {where} ORDER BY d.doc DESC LIMIT %s)"
            )
            span_params += [*patterns, hi, lo, *params, window]
            hi, span = lo, span * 4
        union = " UNION ALL ".join(branches)
        # (in_scope > window here, so top > 0 and there is at least one span)
        async with conn.transaction():
            # The early stop relies on the branches running in order, newest span first; a Parallel Append may
            # run them in any order, so it is ruled out for this statement.
            await conn.execute("SET LOCAL enable_parallel_append = off")
            rows = await _rows(conn, f"SELECT * FROM ({union}) AS spans LIMIT %s", [*span_params, window])
        exhaustive = len(rows) < window
    ranked: list[tuple[tuple[int, int, int], int]] = []
    lowest = None
    for doc, at, folded in rows:
        lowest = doc if lowest is None else min(lowest, doc)
        s = core.score(query, folded)
        if s is not None:
            ranked.append((core.rank_key(s, at, doc), s))
    ranked.sort()
    if position is not None and position.after is not None:
        after = core.rank_key(*position.after)
        ranked = [r for r in ranked if r[0] > after]
    page = ranked[:limit]
    if len(ranked) > limit:
        key = page[-1][0]
        next_cursor: str | None = Cursor(top, (-key[0], -key[1], -key[2])).encode()
    elif not exhaustive and lowest is not None and lowest > 1:
        next_cursor = Cursor(lowest - 1, None).encode()
    else:
        next_cursor = None
    return SearchPage(await _hits(conn, query, page), next_cursor, exhaustive)


async def _hits(conn: Conn, query: Query, page: list[tuple[tuple[int, int, int], int]]) -> list[SearchHit]:
    if not page:
        return []
    docs = [-key[2] for key, _ in page]
    found = await _rows(
        conn,
        "SELECT doc, sitting_id, start_ms, day, speaker, agenda_item_id, bill_id, text FROM search_docs"
        " WHERE doc = ANY(%s)",
        (docs,),
    )
    rows = {row[0]: row for row in found}
    hits = []
    for (_, s), doc in zip(page, docs, strict=True):
        row = rows[doc]
        hits.append(SearchHit(doc, row[1], row[2], row[3], row[4], row[5], row[6], s, core.snippet(query, row[7])))
    return hits
