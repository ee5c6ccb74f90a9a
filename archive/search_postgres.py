"""The transcript search index in PostgreSQL: schema, indexing and the search itself, mirroring
archive/search_sqlite.py function for function (see archive/search.py for the query language and matching).

Table (created idempotently by `ensure_schema`, and by migration 7 of archive/store_postgres.py):

* `search_docs`: one row per indexed segment (`doc` = the segment id): its latest text, the text's folded search
  form, the fields filters use (sitting, the sitting's Bangkok date, chamber, speaker name, agenda item, bill),
  `at` (epoch ms of the moment spoken) for recency, and `terms`: the segment's index terms (`search.index_terms`,
  the same trigrams and 1–2 character pieces as SQLite's index) as 32-bit keys (CRC-32, `term_keys`), and
  `facets`: keys for the filter values and for the blocks of ids the document lies in (`facet_keys`), both
  under one GIN index, so that one index scan applies the terms, the filters and the span of ids together. GIN
  is an inverted index with compressed posting lists (about a byte a posting), which a postings table (term, doc)
  with a b-tree is not: ~125 postings a segment made that table ten times the size of the text.
  A key collision only adds candidates, which `search.score` rejects.

pg_trgm over the whole text (the first design) was slow for three reasons `EXPLAIN ANALYZE` showed at 100k: a
`LIKE` pattern reads the posting list of every trigram it holds (a phrase has dozens), every candidate's text is
rechecked, and one- and two-character terms have no trigram at all. Here a search sends only the rarest few keys
of its terms (`MAX_KEYS`, rarity from the column's most-common-elements statistics, `ANALYZE`d with a target of
1,000), and the containment test is exact on the keys.

Candidates come from a *filtered scan* (the filters leave at most `window` documents: all read and verified,
exhaustive) or an *index window* (the newest `window` documents holding every key, filters applied in the same
query; `SearchPage.exhaustive` is False while more windows remain), with search_sqlite's cursors. A GIN scan
yields its matches unordered, so the window is read in spans of document ids, newest first (see `search`).

Every function takes an open psycopg AsyncConnection and runs in the caller's transaction; the writes are meant to
run inside the write that records the segment (archive/store_postgres.py), so a final is searchable as soon as
that write commits.
"""

from __future__ import annotations

import functools
import time
import zlib
from array import array
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import TupleRow, tuple_row

from archive import search as core
from archive.search import Cursor, Query, QueryError, SearchFilters, SearchHit, SearchPage
from archive.search_sqlite import SEGMENT_WINDOW, SegmentDoc

__all__ = ["SearchFilters", "SearchHit", "SearchPage", "SegmentDoc", "ensure_schema", "index_segments", "search"]

# The first span of document ids searched for candidates, in windows, when the terms' frequencies are unknown.
SPAN_FACTOR = 8
# Most keys one search sends to the GIN index (the rarest): any subset narrows correctly, since every candidate is
# verified, but each candidate costs a heap fetch (~10 µs from the OS cache) while one more key costs a posting
# list the GIN scan mostly skips; at 1M, 4 keys let a phrase's rarest word alone pick (and fetch) thousands.
MAX_KEYS = 8
# How long a process trusts the statistics it read (they change only when the table is analysed).
STATS_TTL_S = 300.0
MAX_LIMIT = 100
# Sittings are dated as Thai readers know them.
_BANGKOK = timedelta(hours=7)

# The shape of migration 7 (archive/store_postgres.py), idempotent: the tests and the bench create the table
# without the store, and an index created before migration 7 (the pg_trgm one) is dropped.
_SCHEMA = """
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
    folded TEXT NOT NULL,
    terms INTEGER[],
    facets INTEGER[]
);
ALTER TABLE search_docs ADD COLUMN IF NOT EXISTS terms INTEGER[];
ALTER TABLE search_docs ADD COLUMN IF NOT EXISTS facets INTEGER[];
ALTER TABLE search_docs ALTER COLUMN terms SET STATISTICS 1000;
DROP INDEX IF EXISTS search_docs_folded_trgm;
CREATE INDEX IF NOT EXISTS search_docs_sitting ON search_docs (sitting_id, doc);
CREATE INDEX IF NOT EXISTS search_docs_day ON search_docs (day, doc);
CREATE INDEX IF NOT EXISTS search_docs_speaker ON search_docs (speaker, doc);
CREATE INDEX IF NOT EXISTS search_docs_bill ON search_docs (bill_id, doc);
CREATE INDEX IF NOT EXISTS search_docs_agenda ON search_docs (agenda_item_id, doc);
CREATE INDEX IF NOT EXISTS search_docs_chamber ON search_docs (chamber, doc);
CREATE INDEX IF NOT EXISTS search_docs_keys ON search_docs USING gin (terms, facets);
CREATE INDEX IF NOT EXISTS search_docs_unkeyed ON search_docs (doc) WHERE terms IS NULL;
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
    """Create the table and its indexes if missing (rows indexed before migration 7 get keys from `backfill`)."""
    await conn.execute(_SCHEMA)


assert array("I").itemsize == array("i").itemsize == 4


def keys(terms: Iterable[str]) -> list[int]:
    """Index terms as the `terms` column's keys: CRC-32 of the UTF-8, read as a signed 32-bit integer."""
    # map() over C functions and one reinterpreting copy: a segment has ~125 terms, indexed thousands a second.
    return array("i", array("I", map(zlib.crc32, map(str.encode, terms))).tobytes()).tolist()


# Besides its terms, a document is keyed by its filter values and by the blocks of document ids it lies in (1,024
# and 32,768 ids), so that one GIN scan can apply the filters and restrict a search to a span of ids (`_span_keys`);
# a control character starts each, which keeps them apart from every term (folding removes controls).
_BLOCK_BITS = (10, 15)
# A date range is a set of month keys (and the exact test on `day`); a longer range is tested on `day` alone.
MAX_MONTHS = 60


def _block_key(level: int, block: int) -> str:
    return f"\x01{level}:{block}"


def term_keys(folded: str) -> list[int]:
    """The `terms` keys a segment with this folded text is indexed under."""
    return keys(core.index_terms(folded))


def facet_keys(
    doc: int, sitting_id: str, day: str, chamber: str | None, speaker: str | None, agenda: int | None, bill: str | None
) -> list[int]:
    """The `facets` keys of document `doc`: its id blocks and its filter values."""
    names = [_block_key(level, doc >> bits) for level, bits in enumerate(_BLOCK_BITS)]
    names += [f"\x02sitting:{sitting_id}", f"\x02month:{day[:7]}"]
    for name, value in (("chamber", chamber), ("speaker", speaker), ("agenda", agenda), ("bill", bill)):
        if value is not None:
            names.append(f"\x02{name}:{value}")
    return keys(names)


def _filter_keys(filters: SearchFilters) -> tuple[list[int], list[int] | None]:
    """Facet keys every match holds (equality filters), and keys of which it holds one (the date range's months;
    None: no such test)."""
    names = [
        f"\x02{name}:{value}"
        for name, value in (
            ("sitting", filters.sitting),
            ("chamber", filters.chamber),
            ("speaker", filters.speaker),
            ("agenda", filters.agenda_item),
            ("bill", filters.bill),
        )
        if value is not None
    ]
    months = None
    if filters.date_from is not None and filters.date_to is not None:
        y, m = int(filters.date_from[:4]), int(filters.date_from[5:7])
        end = (int(filters.date_to[:4]), int(filters.date_to[5:7]))
        found: list[str] = []
        while (y, m) <= end and len(found) <= MAX_MONTHS:
            found.append(f"\x02month:{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        if len(found) <= MAX_MONTHS:
            months = keys(found)
    return keys(names), months


def _span_keys(lo: int, hi: int) -> list[int]:
    """Block keys whose union holds every id in (lo, hi], and few others: whole large blocks inside the span,
    small blocks at its ends."""
    small, large = (1 << bits for bits in _BLOCK_BITS)
    first, last = lo + 1, hi  # inclusive
    out: list[str] = []
    b = first >> _BLOCK_BITS[0]
    while b << _BLOCK_BITS[0] <= last:
        start = b << _BLOCK_BITS[0]
        if start % large == 0 and start + large - 1 <= last:
            out.append(_block_key(1, start >> _BLOCK_BITS[1]))
            b += large // small
        else:
            out.append(_block_key(0, b))
            b += 1
    return keys(out)


# -- writing -------------------------------------------------------------------------------------------------------


# Cached: a bulk load parses the same few sitting times once per segment otherwise.
@functools.lru_cache(maxsize=4096)
def _epoch_ms(iso: str) -> int:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@functools.lru_cache(maxsize=4096)
def _day(iso: str) -> str:
    return (datetime.fromtimestamp(_epoch_ms(iso) / 1000, UTC) + _BANGKOK).date().isoformat()


def _row(d: SegmentDoc) -> tuple[Any, ...]:
    folded = core.fold(d.text)
    day = _day(d.sitting_at)
    facets = facet_keys(d.segment_id, d.sitting_id, day, d.chamber, d.speaker, d.agenda_item_id, d.bill_id)
    return (d.segment_id, d.sitting_id, d.start_ms, _epoch_ms(d.sitting_at) + d.start_ms, day, d.chamber,
            d.speaker, d.agenda_item_id, d.bill_id, d.text, folded, term_keys(folded), facets)  # fmt: skip


async def index_segments(conn: Conn, docs: Iterable[SegmentDoc]) -> int:
    """Index (or re-index) segments; the caller owns the transaction. Returns how many were written."""
    rows = [_row(d) for d in docs]
    if rows:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO search_docs (doc, sitting_id, start_ms, at, day, chamber, speaker, agenda_item_id,"
                " bill_id, text, folded, terms, facets)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::int4[], %s::int4[])"
                " ON CONFLICT (doc) DO UPDATE SET sitting_id = excluded.sitting_id, start_ms = excluded.start_ms,"
                " at = excluded.at, day = excluded.day, chamber = excluded.chamber, speaker = excluded.speaker,"
                " agenda_item_id = excluded.agenda_item_id, bill_id = excluded.bill_id, text = excluded.text,"
                " folded = excluded.folded, terms = excluded.terms, facets = excluded.facets",
                rows,
            )
    return len(rows)


_COPY_TYPES = [
    "int8",
    "text",
    "int8",
    "int8",
    "text",
    "text",
    "text",
    "int8",
    "text",
    "text",
    "text",
    "int4[]",
    "int4[]",
]


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
            " folded, terms, facets) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            # Binary: twice the text format's rate, most of it the key arrays' formatting.
            copy.set_types(_COPY_TYPES)
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
    folded = core.fold(text)
    changed = await _rowcount(
        conn,
        "UPDATE search_docs SET text = %s, folded = %s, terms = %s::int4[] WHERE doc = %s",
        (text, folded, term_keys(folded), segment_id),
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
    """Index up to `limit` archived segments the index lacks, oldest first; returns how many (0: none left).

    Rows indexed before migration 7 (no keys yet) are keyed first, in the same batches.
    """
    unkeyed = await _rows(
        conn,
        "SELECT doc, folded, sitting_id, day, chamber, speaker, agenda_item_id, bill_id FROM search_docs"
        " WHERE terms IS NULL ORDER BY doc LIMIT %s",
        (limit,),
    )
    if unkeyed:
        async with conn.cursor() as cur:
            await cur.executemany(
                "UPDATE search_docs SET terms = %s::int4[], facets = %s::int4[] WHERE doc = %s",
                [(term_keys(row[1]), facet_keys(row[0], *row[2:]), row[0]) for row in unkeyed],
            )
        return len(unkeyed)
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
    """Move a sitting's segments to its real start time (recency and the date filter, its month key included)."""
    day = _day(sitting_at)
    rows = await _rows(
        conn,
        "SELECT doc, chamber, speaker, agenda_item_id, bill_id FROM search_docs WHERE sitting_id = %s",
        (sitting_id,),
    )
    if not rows:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "UPDATE search_docs SET at = %s + start_ms, day = %s, facets = %s::int4[] WHERE doc = %s",
            [(_epoch_ms(sitting_at), day, facet_keys(r[0], sitting_id, day, *r[1:]), r[0]) for r in rows],
        )


# -- searching -----------------------------------------------------------------------------------------------------


def _where(filters: SearchFilters) -> tuple[str, list[Any]]:
    clauses, params = filters.conditions("%s")
    return (" AND ".join(clauses) or "TRUE"), params


def _contains(term: str) -> str:
    """A LIKE pattern matching text that holds `term` anywhere (LIKE's own characters escaped)."""
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# (host, port, database) → (read at, key → fraction of rows holding it, the least fraction listed)
_STATS: dict[tuple[str, int, str], tuple[float, dict[int, float], float]] = {}


async def _frequencies(conn: Conn) -> tuple[dict[int, float], float]:
    """The `terms` column's most common keys with the fraction of rows holding each (ANALYZE's sample); ({}, 0.0)
    before the table is analysed. Cached per database for STATS_TTL_S: they change only with an ANALYZE."""
    where = (conn.info.host, conn.info.port, conn.info.dbname)
    cached = _STATS.get(where)
    if cached is not None and time.monotonic() - cached[0] < STATS_TTL_S:
        return cached[1], cached[2]
    found = await _rows(
        conn,
        "SELECT most_common_elems::text::int4[], most_common_elem_freqs FROM pg_stats"
        " WHERE schemaname = current_schema() AND tablename = 'search_docs' AND attname = 'terms'",
    )
    freqs: dict[int, float] = {}
    least = 0.0
    if found and found[0][0]:
        elems, fractions = found[0]
        # most_common_elem_freqs ends with three summary values (min, max, null fraction) after one per element.
        freqs = dict(zip(elems, fractions, strict=False))
        least = min(fractions[: len(elems)])
    _STATS[where] = (time.monotonic(), freqs, least)
    return freqs, least


async def _rarest(conn: Conn, wanted: list[int]) -> tuple[list[int], float]:
    """The MAX_KEYS rarest of `wanted` and the estimated fraction of rows holding the rarest (0.0: unknown).

    A key the statistics do not list is rarer than every listed one; without statistics the query's own order
    (a term's keys spread along it) is kept.
    """
    freqs, least = await _frequencies(conn)
    if not freqs:
        return wanted[:MAX_KEYS], 0.0
    ranked = sorted(wanted, key=lambda k: freqs.get(k, 0.0))
    return ranked[:MAX_KEYS], freqs.get(ranked[0], least / 2)


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
        lookup, frequency = await _rarest(conn, keys(query.lookup()))
        # The filters as facet keys, tested in the same GIN scan (the exact tests in `where` stay).
        must, months = _filter_keys(filters)
        facets, facet_params = "", []
        if must:
            facets, facet_params = " AND d.facets @> %s::int4[]", [must]
        if months is not None:
            facets, facet_params = facets + " AND d.facets && %s::int4[]", [*facet_params, months]
        # The newest `window` candidates, read in spans of document ids, newest first: asked over the whole
        # archive at once, PostgreSQL would fetch every match of a common term before it could pick the newest,
        # while in a span it intersects the GIN keys with the id range. The first span is sized to hold a window
        # of matches at the rarest key's frequency (the whole archive for a rare one), each next one four times
        # larger. The spans are branches of one UNION ALL under the LIMIT, which PostgreSQL runs in order and
        # stops reading as soon as the window is full, so a common term costs one span and a rare one one GIN scan.
        span = max(window, int(window * 1.25 / frequency)) if frequency else window * SPAN_FACTOR
        branches: list[str] = []
        span_params: list[Any] = []
        hi = top
        while hi > 0:
            # Span ends on multiples of the small block, so its block keys hold few ids outside it.
            lo = max(0, (hi - span) >> _BLOCK_BITS[0] << _BLOCK_BITS[0])
            if lo == 0 and hi == top:
                # The whole archive: no span keys needed.
                blocks, block_params = "", []
            else:
                blocks, block_params = " AND d.facets && %s::int4[]", [_span_keys(lo, hi)]
            branches.append(
                f"(SELECT d.doc, d.at, d.folded FROM search_docs d WHERE d.terms @> %s::int4[]{facets}{blocks}"
                f" AND d.doc <= %s AND d.doc > %s AND {where} ORDER BY d.doc DESC LIMIT %s)"
            )
            span_params += [lookup, *facet_params, *block_params, hi, lo, *params, window]
            hi, span = lo, span * 4
        union = " UNION ALL ".join(branches)
        # (in_scope > window here, so top > 0 and there is at least one span)
        async with conn.transaction():
            # The early stop relies on the branches running in order, newest span first; a Parallel Append may
            # run them in any order, so it is ruled out for this statement.
            # The keys' frequencies multiply in the planner's estimate though a word's trigrams go together, and
            # from estimates that low it would read the id index backward, fetching every row of the span; the
            # GIN scan (its keys restrict the span) fetches only candidates. One statement: a round trip each.
            # (Inside a caller's transaction they last until it ends: the page's hits, read by id, are unaffected.)
            await conn.execute(
                "SELECT set_config('enable_parallel_append', 'off', true), set_config('enable_indexscan', 'off', true),"
                " set_config('enable_seqscan', 'off', true)"
            )
            rows = await _rows(conn, f"SELECT * FROM ({union}) AS spans LIMIT %s", [*span_params, window])
        exhaustive = len(rows) < window
    lowest = min((doc for doc, _, _ in rows), default=None)
    page, next_cursor = core.rank_window(
        query, rows, top=top, position=position, limit=limit, exhaustive=exhaustive, lowest=lowest
    )
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
