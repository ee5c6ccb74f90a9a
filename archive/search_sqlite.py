"""The transcript search index in SQLite: schema, indexing, and the search itself (see archive/search.py).

Tables (created idempotently by `ensure_schema`, in the archive's own database file):

* `search_docs`: one row per indexed segment (`doc` = the segment id): its latest text, the text's folded search
  form, and the fields filters use (sitting, the sitting's Bangkok date, chamber, speaker name, agenda item,
  bill), plus `at` (epoch ms of the moment spoken) for recency.
* `search_terms`: a contentless FTS5 table (`detail=none`, so it stores only which documents have a term: small)
  over each segment's `index_terms` (trigrams plus cluster-aligned 1–2 character pieces), written as
  space-separated tokens. The `ascii` tokenizer splits only on ASCII punctuation and spaces, so Thai terms pass
  through whole. Contentless rows are deleted by re-sending their terms, which `search_docs.folded` recomputes;
  changing `index_terms` therefore changes `INDEX_VERSION`, and `ensure_schema` rebuilds the index.

A search parses the query, picks candidates, verifies each in Python (`search.score`) and ranks them by relevance
then recency. Candidates come from one of two places:

* *filtered scan*: when the filters (and the pinned `top`) leave at most `window` documents, all of them are
  read and verified. Exact and complete: a sitting, a speaker or an agenda item is always this case.
* *index window*: otherwise the FTS5 lookup yields the newest `window` candidates (by document id, which grows
  as segments are recorded), filters applied in the same query. Ranking is exact within that window; the next
  window starts below it once its pages are read, and `SearchPage.exhaustive` is False while more windows
  remain. A term in a quarter of all segments (`ปี`) thus costs one window, not a quarter of the archive.

Wiring in archive/store_sqlite.py: every write runs on the writer thread, inside the transaction of the write it
follows, so a final is searchable as soon as the write that records it commits (before it is published):

* opening: `ensure_schema(conn)` after the archive's migrations, then `backfill(conn)` in batches until it
  returns 0 (archives recorded before search existed);
* `add_segment`: `index_archived(conn, segment_id)` (context read from the archive's tables);
* `revise_segment` (a correction): `reindex(conn, segment_id, new_text)`;
* `set_sitting_status(..., "live")`: `set_sitting_time(conn, sitting_id, started_at)`, so recency and the date
  filter follow the real start;
* `SqliteStore.search` runs `search` on a query-only reader connection.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from archive import search as core
from archive.search import Cursor, Query, QueryError, SearchFilters, SearchHit, SearchPage

# Re-exported: the filter and result types are the core's, shared by every store.
__all__ = ["SearchFilters", "SearchHit", "SearchPage", "SegmentDoc", "ensure_schema", "index_segments", "search"]

INDEX_VERSION = 1
# The window for small collections (archive/documents_sqlite.py and _postgres.py use it).
DEFAULT_WINDOW = 5000
# How many of the newest candidates one page of a segment search ranks (and the most a filtered scan reads). The
# cost of a common word, a short word or an exclusion is this window read and verified in Python, whatever the
# archive's size: 5,000 cost 65–90 ms at p95 on the benchmark machine, 1,000 a fifth of that. Further candidates
# are ranked in the next windows (next_cursor), so nothing is lost, only ranked window by window.
SEGMENT_WINDOW = 1000
# With filters, an index window walks at most this many windows' worth of candidates (newest first): the filter
# test costs ~0.4 µs a candidate, so the cap bounds a page at ~15 ms of it whatever the archive's size.
CANDIDATE_FACTOR = 32
MAX_LIMIT = 100
# Sittings are dated as Thai readers know them.
_BANGKOK = timedelta(hours=7)

_SCHEMA = """
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
"""


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the search tables if missing; rebuild the terms if they were written by another INDEX_VERSION."""
    conn.executescript(_SCHEMA)
    row = conn.execute("SELECT value FROM search_meta WHERE key = 'index_version'").fetchone()
    if row is not None and int(row[0]) == INDEX_VERSION:
        return
    conn.execute("INSERT INTO search_terms (search_terms) VALUES ('delete-all')")
    rows = conn.execute("SELECT doc, folded FROM search_docs").fetchall()
    conn.executemany("INSERT INTO search_terms (rowid, terms) VALUES (?, ?)", ((r[0], _terms(r[1])) for r in rows))
    conn.execute("INSERT OR REPLACE INTO search_meta (key, value) VALUES ('index_version', ?)", (str(INDEX_VERSION),))


# -- writing -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentDoc:
    """What the index needs of a segment (latest revision) and its context."""

    segment_id: int
    sitting_id: str
    start_ms: int
    text: str
    sitting_at: str  # ISO-8601 UTC: when the sitting started (or was scheduled / created)
    chamber: str | None = None
    speaker: str | None = None
    agenda_item_id: int | None = None
    bill_id: str | None = None


def _terms(folded: str) -> str:
    return " ".join(core.index_terms(folded))


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


def _unindex_terms(conn: sqlite3.Connection, doc: int) -> bool:
    row = conn.execute("SELECT folded FROM search_docs WHERE doc = ?", (doc,)).fetchone()
    if row is None:
        return False
    conn.execute("INSERT INTO search_terms (search_terms, rowid, terms) VALUES ('delete', ?, ?)", (doc, _terms(row[0])))
    return True


def index_segments(conn: sqlite3.Connection, docs: Iterable[SegmentDoc]) -> int:
    """Index (or re-index) segments; the caller owns the transaction. Returns how many were written."""
    batch = list(docs)
    for i in range(0, len(batch), 500):
        # Contentless FTS5 forgets a row only when told its old terms; new segments (the bulk case) have none.
        ids = [d.segment_id for d in batch[i : i + 500]]
        old = conn.execute(f"SELECT doc, folded FROM search_docs WHERE doc IN ({','.join('?' * len(ids))})", ids)
        conn.executemany(
            "INSERT INTO search_terms (search_terms, rowid, terms) VALUES ('delete', ?, ?)",
            [(doc, _terms(folded)) for doc, folded in old.fetchall()],
        )
    rows = []
    terms = []
    for d in batch:
        folded = core.fold(d.text)
        at = _epoch_ms(d.sitting_at)
        rows.append(
            (d.segment_id, d.sitting_id, d.start_ms, at + d.start_ms, _day(d.sitting_at), d.chamber, d.speaker,
             d.agenda_item_id, d.bill_id, d.text, folded)
        )  # fmt: skip
        terms.append((d.segment_id, _terms(folded)))
    conn.executemany(
        "INSERT OR REPLACE INTO search_docs (doc, sitting_id, start_ms, at, day, chamber, speaker, agenda_item_id,"
        " bill_id, text, folded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.executemany("INSERT INTO search_terms (rowid, terms) VALUES (?, ?)", terms)
    return len(batch)


def index_segment(
    conn: sqlite3.Connection,
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
    index_segments(
        conn,
        [SegmentDoc(segment_id, sitting_id, start_ms, text, sitting_at, chamber, speaker, agenda_item_id, bill_id)],
    )


def reindex(conn: sqlite3.Connection, segment_id: int, text: str) -> bool:
    """Replace an indexed segment's text with a new revision, keeping its context; False if it is not indexed."""
    if not _unindex_terms(conn, segment_id):
        return False
    folded = core.fold(text)
    conn.execute("UPDATE search_docs SET text = ?, folded = ? WHERE doc = ?", (text, folded, segment_id))
    conn.execute("INSERT INTO search_terms (rowid, terms) VALUES (?, ?)", (segment_id, _terms(folded)))
    return True


def unindex(conn: sqlite3.Connection, segment_id: int) -> bool:
    """Remove a segment from the index; False if it was not indexed."""
    if not _unindex_terms(conn, segment_id):
        return False
    conn.execute("DELETE FROM search_docs WHERE doc = ?", (segment_id,))
    return True


# A segment of the archive (archive/store_sqlite.py's tables) with the context the index keeps; sitting_at is the
# same moment `set_sitting_time` later moves it to.
_ARCHIVED = """
SELECT s.id, s.sitting_id, s.start_ms, s.text, coalesce(t.started_at, t.scheduled_at, t.created_at), t.chamber,
       p.name, s.agenda_item_id, a.bill_id
FROM segments s
JOIN sittings t ON t.id = s.sitting_id
LEFT JOIN speakers p ON p.id = s.speaker_id
LEFT JOIN agenda_items a ON a.id = s.agenda_item_id
"""


def index_archived(conn: sqlite3.Connection, segment_id: int) -> bool:
    """Index (or re-index) one segment of the archive as stored now; False if there is no such segment."""
    rows = conn.execute(f"{_ARCHIVED} WHERE s.id = ?", (segment_id,)).fetchall()
    return index_segments(conn, (SegmentDoc(*row) for row in rows)) == 1


def backfill(conn: sqlite3.Connection, limit: int = 2000) -> int:
    """Index up to `limit` archived segments the index lacks, oldest first; returns how many (0: none left).

    For archives recorded before search existed; the caller commits each batch, so a large archive is indexed in
    bounded steps and an interrupted backfill resumes where it stopped.
    """
    # Every indexed document is an archived segment, so equal counts mean nothing is missing: the common case at
    # every open, answered without visiting each segment.
    (segments,) = conn.execute("SELECT count(*) FROM segments").fetchone()
    (docs,) = conn.execute("SELECT count(*) FROM search_docs").fetchone()
    if docs >= segments:
        return 0
    rows = conn.execute(
        f"{_ARCHIVED} WHERE NOT EXISTS (SELECT 1 FROM search_docs d WHERE d.doc = s.id) ORDER BY s.id LIMIT ?",
        (limit,),
    ).fetchall()
    return index_segments(conn, (SegmentDoc(*row) for row in rows))


def set_sitting_time(conn: sqlite3.Connection, sitting_id: str, sitting_at: str) -> None:
    """Move a sitting's segments to its real start time (recency and the date filter)."""
    conn.execute(
        "UPDATE search_docs SET at = ? + start_ms, day = ? WHERE sitting_id = ?",
        (_epoch_ms(sitting_at), _day(sitting_at), sitting_id),
    )


def optimize(conn: sqlite3.Connection) -> None:
    """Merge the FTS5 index into one b-tree after a bulk load (smaller and faster; slow on a big index)."""
    conn.execute("INSERT INTO search_terms (search_terms) VALUES ('optimize')")


# -- searching -----------------------------------------------------------------------------------------------------


def _where(filters: SearchFilters) -> tuple[str, list[Any]]:
    clauses, params = filters.conditions("?")
    return (" AND ".join(clauses) or "1"), params


def search(
    conn: sqlite3.Connection,
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
    if position is not None:
        top = position.top
    else:
        top = conn.execute("SELECT coalesce(max(doc), 0) FROM search_docs").fetchone()[0]

    in_scope = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM search_docs d WHERE d.doc <= ? AND {where} LIMIT ?)",
        [top, *params, window + 1],
    ).fetchone()[0]
    if in_scope <= window:
        rows = conn.execute(
            f"SELECT d.doc, d.at, d.folded FROM search_docs d WHERE d.doc <= ? AND {where}", [top, *params]
        ).fetchall()
        exhaustive = True
        lowest = None
    else:
        rows, exhaustive, lowest = _index_window(conn, query, filters, top, window)
    page, next_cursor = core.rank_window(
        query, rows, top=top, position=position, limit=limit, exhaustive=exhaustive, lowest=lowest
    )
    return SearchPage(_hits(conn, query, page), next_cursor, exhaustive)


# Equality filters, each tested with a probe of its (column, doc) index, which holds both: a few pages per probe
# instead of a read of the document's row (its text makes it wide), a third of the cost per candidate.
_PROBES = (
    ("sitting", "sitting_id", "search_docs_sitting"),
    ("speaker", "speaker", "search_docs_speaker"),
    ("bill", "bill_id", "search_docs_bill"),
    ("agenda_item", "agenda_item_id", "search_docs_agenda"),
    ("chamber", "chamber", "search_docs_chamber"),
)


def _probes(filters: SearchFilters) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for attr, column, index in _PROBES:
        value = getattr(filters, attr)
        if value is not None:
            clauses.append(
                f"EXISTS (SELECT 1 FROM search_docs x INDEXED BY {index} WHERE x.{column} = ? AND x.doc = f.rowid)"
            )
            params.append(value)
    if filters.date_from is not None or filters.date_to is not None:
        clauses.append("EXISTS (SELECT 1 FROM search_docs x WHERE x.doc = f.rowid AND x.day >= ? AND x.day <= ?)")
        params += [filters.date_from or "", filters.date_to or "9999"]
    return (" AND ".join(clauses) or "1"), params


def _index_window(
    conn: sqlite3.Connection, query: Query, filters: SearchFilters, top: int, window: int
) -> tuple[list[Any], bool, int | None]:
    """The newest `window` candidates at or below `top` holding every lookup term and passing the filters.

    Returns (rows, exhaustive, lowest): `lowest` is the lowest document id this window considered (the next
    window starts below it). FTS5 yields candidates newest first and stops once the window is full; with filters,
    at most CANDIDATE_CAP candidates are walked (a common term under a rare filter would otherwise walk its whole
    posting list), and a window cut short by the cap is not exhaustive.
    """
    match = " AND ".join(f'"{term}"' for term in query.lookup())
    probes, probe_params = _probes(filters)
    if not probe_params:
        rows = conn.execute(
            "SELECT d.doc, d.at, d.folded FROM search_terms f CROSS JOIN search_docs d ON d.doc = f.rowid"
            " WHERE search_terms MATCH ? AND f.rowid <= ? ORDER BY f.rowid DESC LIMIT ?",
            [match, top, window],
        ).fetchall()
        full = len(rows) == window
        return rows, not full, rows[-1][0] if full else None
    capped = "SELECT rowid FROM search_terms WHERE search_terms MATCH ? AND rowid <= ? ORDER BY rowid DESC LIMIT ?"
    cap = window * CANDIDATE_FACTOR
    # CROSS JOIN keeps the candidates' order and tests the probes before the row is read.
    rows = conn.execute(
        f"SELECT d.doc, d.at, d.folded FROM ({capped}) f CROSS JOIN search_docs d ON d.doc = f.rowid"
        f" WHERE {probes} LIMIT ?",
        [match, top, cap, *probe_params, window],
    ).fetchall()
    if len(rows) == window:
        return rows, False, rows[-1][0]
    walked, lowest = conn.execute(f"SELECT count(*), min(rowid) FROM ({capped})", [match, top, cap]).fetchone()
    if walked < cap:
        return rows, True, None
    return rows, False, lowest


def _hits(conn: sqlite3.Connection, query: Query, page: list[tuple[tuple[int, int, int], int]]) -> list[SearchHit]:
    if not page:
        return []
    docs = [-key[2] for key, _ in page]
    rows = {
        row[0]: row
        for row in conn.execute(
            "SELECT doc, sitting_id, start_ms, day, speaker, agenda_item_id, bill_id, text FROM search_docs"
            f" WHERE doc IN ({','.join('?' * len(docs))})",
            docs,
        )
    }
    hits = []
    for (key, s), doc in zip(page, docs, strict=True):
        row = rows[doc]
        hits.append(SearchHit(doc, row[1], row[2], row[3], row[4], row[5], row[6], s, core.snippet(query, row[7])))
    return hits
