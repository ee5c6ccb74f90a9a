"""The documents collection in SQLite: constitutions and Acts by section, and their search (archive/documents.py).

Tables (archive/store_sqlite.py's migration 5): ``documents`` (one row per document, ``digest`` of what was
loaded so a reload skips an unchanged one), ``document_sections`` (one row per section: text, folded search form,
`subject_terms`, and ``rank_at`` for ranking ties) and ``document_terms``, a contentless FTS5 table of each
section's `search.index_terms`, exactly as archive/search_sqlite.py indexes segments (same folding, same terms,
same query language): the transcript index is not touched.

A search is search_sqlite's: a *filtered scan* when the filters leave at most ``window`` sections (always, at the
collection's size today), else the newest ``window`` index candidates; every candidate verified by `search.score`,
ranked by relevance, then newer document, then document order. Every function takes the caller's connection; the
writes run in the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from archive import search as core
from archive.documents import (
    Candidate,
    Document,
    DocumentFilters,
    DocumentHit,
    DocumentPage,
    Section,
    SectionView,
    rank_at,
)
from archive.search import Cursor, Query, QueryError
from archive.search_sqlite import DEFAULT_WINDOW, MAX_LIMIT

_DOC_COLUMNS = "d.slug, d.title, d.kind, d.year_be, d.in_force, d.complete, d.source, d.licence"


def _terms(folded: str) -> str:
    return " ".join(core.index_terms(folded))


def _document(row: Sequence[Any]) -> Document:
    return Document(row[0], row[1], row[2], int(row[3]), bool(row[4]), bool(row[5]), row[6], row[7])


def _section(row: Sequence[Any]) -> Section:
    return Section(row[0], row[1], row[2], row[3], row[4], bool(row[5]))


def digests(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT slug, digest FROM documents").fetchall())


def put_document(conn: sqlite3.Connection, doc: Document, digest: str, terms: Sequence[str], now: str) -> None:
    """Replace the document `doc.slug` (its row, sections and index terms) with `doc`."""
    row = conn.execute("SELECT id FROM documents WHERE slug = ?", (doc.slug,)).fetchone()
    if row is not None:
        old = conn.execute("SELECT id, folded FROM document_sections WHERE document_id = ?", (row[0],)).fetchall()
        # Contentless FTS5 forgets a row only when told its old terms.
        conn.executemany(
            "INSERT INTO document_terms (document_terms, rowid, terms) VALUES ('delete', ?, ?)",
            [(sid, _terms(folded)) for sid, folded in old],
        )
        conn.execute("DELETE FROM document_sections WHERE document_id = ?", (row[0],))
        conn.execute("DELETE FROM documents WHERE id = ?", (row[0],))
    cur = conn.execute(
        "INSERT INTO documents (slug, title, kind, year_be, in_force, complete, source, licence, digest, loaded_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (doc.slug, doc.title, doc.kind, doc.year_be, int(doc.in_force), int(doc.complete), doc.source, doc.licence,
         digest, now),
    )  # fmt: skip
    doc_id = cur.lastrowid
    for ord, (section, subject) in enumerate(zip(doc.sections, terms, strict=True)):
        folded = core.fold(section.text)
        cur = conn.execute(
            "INSERT INTO document_sections (document_id, ord, key, label, chapter, part, transitory, text, folded,"
            " subject_terms, rank_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (doc_id, ord, section.key, section.label, section.chapter, section.part, int(section.transitory),
             section.text, folded, subject, rank_at(doc.year_be, ord)),
        )  # fmt: skip
        conn.execute("INSERT INTO document_terms (rowid, terms) VALUES (?, ?)", (cur.lastrowid, _terms(folded)))


def list_documents(conn: sqlite3.Connection) -> list[tuple[Document, int]]:
    """Every document with its number of sections: constitutions first, newest first, then Acts newest first."""
    rows = conn.execute(
        f"SELECT {_DOC_COLUMNS}, (SELECT count(*) FROM document_sections s WHERE s.document_id = d.id)"
        " FROM documents d ORDER BY d.kind = 'act', d.year_be DESC, d.slug"
    ).fetchall()
    return [(_document(r), int(r[8])) for r in rows]


def get_document(conn: sqlite3.Connection, slug: str) -> tuple[Document, list[Section]] | None:
    """The document and its table of contents (sections without their text), in order."""
    row = conn.execute(f"SELECT {_DOC_COLUMNS}, d.id FROM documents d WHERE d.slug = ?", (slug,)).fetchone()
    if row is None:
        return None
    toc = conn.execute(
        "SELECT key, label, '', chapter, part, transitory FROM document_sections WHERE document_id = ? ORDER BY ord",
        (row[8],),
    ).fetchall()
    return _document(row), [_section(r) for r in toc]


def get_section(conn: sqlite3.Connection, slug: str, key: str) -> SectionView | None:
    row = conn.execute(
        f"SELECT {_DOC_COLUMNS}, s.key, s.label, s.text, s.chapter, s.part, s.transitory, s.ord, d.id"
        " FROM document_sections s JOIN documents d ON d.id = s.document_id WHERE d.slug = ? AND s.key = ?",
        (slug, key),
    ).fetchone()
    if row is None:
        return None
    ord, doc_id = row[14], row[15]
    around = dict(
        conn.execute(
            "SELECT ord, key FROM document_sections WHERE document_id = ? AND ord IN (?, ?)", (doc_id, ord - 1, ord + 1)
        ).fetchall()
    )
    return SectionView(_document(row), _section(row[8:14]), around.get(ord - 1), around.get(ord + 1))


def candidates(conn: sqlite3.Connection, kind: str = "constitution") -> list[Candidate]:
    """Every section of the documents of `kind`, as `documents.compare` takes them."""
    rows = conn.execute(
        "SELECT d.slug, s.key, s.subject_terms, s.transitory FROM document_sections s"
        " JOIN documents d ON d.id = s.document_id WHERE d.kind = ? ORDER BY s.id",
        (kind,),
    ).fetchall()
    return [Candidate.from_terms(r[0], r[1], r[2], bool(r[3])) for r in rows]


# -- searching -----------------------------------------------------------------------------------------------------


def _where(filters: DocumentFilters) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value, op in (
        ("d.slug", filters.document, "="),
        ("d.kind", filters.kind, "="),
        ("d.year_be", filters.year_from, ">="),
        ("d.year_be", filters.year_to, "<="),
        ("d.in_force", None if filters.in_force is None else int(filters.in_force), "="),
    ):
        if value is not None:
            clauses.append(f"{column} {op} ?")
            params.append(value)
    return (" AND ".join(clauses) or "1"), params


def search(
    conn: sqlite3.Connection,
    q: str | Query,
    filters: DocumentFilters | None = None,
    cursor: str | None = None,
    limit: int = 20,
    *,
    window: int = DEFAULT_WINDOW,
) -> DocumentPage:
    """One page of sections matching `q`, best first; only reads. QueryError (naming the field) for bad input."""
    query = q if isinstance(q, Query) else core.parse_query(q)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise QueryError("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    position = Cursor.decode(cursor) if cursor is not None else None
    where, params = _where(filters or DocumentFilters())
    base = "FROM document_sections s JOIN documents d ON d.id = s.document_id"
    top = position.top if position else conn.execute("SELECT coalesce(max(id), 0) FROM document_sections").fetchone()[0]
    (in_scope,) = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 {base} WHERE s.id <= ? AND {where} LIMIT ?)", [top, *params, window + 1]
    ).fetchone()
    if in_scope <= window:
        rows = conn.execute(f"SELECT s.id, s.rank_at, s.folded {base} WHERE s.id <= ? AND {where}", [top, *params])
        exhaustive = True
    else:
        match = " AND ".join(f'"{term}"' for term in query.lookup())
        rows = conn.execute(
            "SELECT s.id, s.rank_at, s.folded FROM document_terms f CROSS JOIN document_sections s ON s.id = f.rowid"
            " JOIN documents d ON d.id = s.document_id"
            f" WHERE document_terms MATCH ? AND f.rowid <= ? AND {where} ORDER BY f.rowid DESC LIMIT ?",
            [match, top, *params, window],
        )
        exhaustive = False
    ranked: list[tuple[tuple[int, int, int], int]] = []
    lowest = None
    scanned = 0
    for sid, at, folded in rows:
        scanned += 1
        lowest = sid if lowest is None else min(lowest, sid)
        s = core.score(query, folded)
        if s is not None:
            ranked.append((core.rank_key(s, at, sid), s))
    if not exhaustive and scanned < window:
        exhaustive = True
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
    return DocumentPage(_hits(conn, query, page), next_cursor, exhaustive)


def _hits(conn: sqlite3.Connection, query: Query, page: list[tuple[tuple[int, int, int], int]]) -> list[DocumentHit]:
    if not page:
        return []
    ids = [-key[2] for key, _ in page]
    rows = {
        r[0]: r
        for r in conn.execute(
            f"SELECT s.id, {_DOC_COLUMNS}, s.key, s.label, s.text, s.chapter, s.part, s.transitory"
            " FROM document_sections s JOIN documents d ON d.id = s.document_id"
            f" WHERE s.id IN ({','.join('?' * len(ids))})",
            ids,
        )
    }
    hits = []
    for (_, s), sid in zip(page, ids, strict=True):
        r = rows[sid]
        hits.append(DocumentHit(_document(r[1:9]), _section(r[9:15]), s, core.snippet(query, r[11])))
    return hits
