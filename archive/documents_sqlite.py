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

from archive import search as core
from archive.documents import Candidate, Document, DocumentFilters, DocumentHit, DocumentPage, Section, SectionView
from archive.documents_rows import (
    DOC_COLUMNS,
    HIT_COLUMNS,
    LIST_DOCUMENTS,
    SEARCH_FROM,
    Ranked,
    check_limit,
    conditions,
    document_from,
    document_values,
    hits,
    page_ids,
    rank_page,
    section_from,
    section_values,
    section_view,
)
from archive.search import Cursor, Query
from archive.search_sqlite import DEFAULT_WINDOW


def _terms(folded: str) -> str:
    return " ".join(core.index_terms(folded))


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
        document_values(doc, digest, now),
    )
    assert cur.lastrowid is not None
    for values in section_values(cur.lastrowid, doc, terms):
        section = conn.execute(
            "INSERT INTO document_sections (document_id, ord, key, label, chapter, part, transitory, text, folded,"
            " subject_terms, rank_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )
        conn.execute("INSERT INTO document_terms (rowid, terms) VALUES (?, ?)", (section.lastrowid, _terms(values[8])))


def list_documents(conn: sqlite3.Connection) -> list[tuple[Document, int]]:
    """Every document with its number of sections: constitutions first, newest first, then Acts newest first."""
    return [(document_from(r), int(r[8])) for r in conn.execute(LIST_DOCUMENTS).fetchall()]


def get_document(conn: sqlite3.Connection, slug: str) -> tuple[Document, list[Section]] | None:
    """The document and its table of contents (sections without their text), in order."""
    row = conn.execute(f"SELECT {DOC_COLUMNS}, d.id FROM documents d WHERE d.slug = ?", (slug,)).fetchone()
    if row is None:
        return None
    toc = conn.execute(
        "SELECT key, label, '', chapter, part, transitory FROM document_sections WHERE document_id = ? ORDER BY ord",
        (row[8],),
    ).fetchall()
    return document_from(row), [section_from(r) for r in toc]


def get_section(conn: sqlite3.Connection, slug: str, key: str) -> SectionView | None:
    row = conn.execute(
        f"SELECT {DOC_COLUMNS}, s.key, s.label, s.text, s.chapter, s.part, s.transitory, s.ord, d.id"
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
    return section_view(row, around)


def candidates(conn: sqlite3.Connection, kind: str = "constitution") -> list[Candidate]:
    """Every section of the documents of `kind`, as `documents.compare` takes them."""
    rows = conn.execute(
        "SELECT d.slug, s.key, s.subject_terms, s.transitory FROM document_sections s"
        " JOIN documents d ON d.id = s.document_id WHERE d.kind = ? ORDER BY s.id",
        (kind,),
    ).fetchall()
    return [Candidate.from_terms(r[0], r[1], r[2], bool(r[3])) for r in rows]


# -- searching -----------------------------------------------------------------------------------------------------


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
    check_limit(limit)
    position = Cursor.decode(cursor) if cursor is not None else None
    clauses, params = conditions(filters or DocumentFilters(), "?")
    where = " AND ".join(clauses) or "1"
    top = position.top if position else conn.execute("SELECT coalesce(max(id), 0) FROM document_sections").fetchone()[0]
    (in_scope,) = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 {SEARCH_FROM} WHERE s.id <= ? AND {where} LIMIT ?)",
        [top, *params, window + 1],
    ).fetchone()
    if in_scope <= window:
        rows = conn.execute(
            f"SELECT s.id, s.rank_at, s.folded {SEARCH_FROM} WHERE s.id <= ? AND {where}", [top, *params]
        )
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
    page, next_cursor, exhaustive = rank_page(
        query, rows, top=top, position=position, limit=limit, window=window, exhaustive=exhaustive
    )
    return DocumentPage(_hits(conn, query, page), next_cursor, exhaustive)


def _hits(conn: sqlite3.Connection, query: Query, page: Ranked) -> list[DocumentHit]:
    if not page:
        return []
    ids = page_ids(page)
    return hits(query, page, conn.execute(f"{HIT_COLUMNS} WHERE s.id IN ({','.join('?' * len(ids))})", ids))
