"""The documents collection in PostgreSQL, mirroring archive/documents_sqlite.py function for function.

Tables: archive/store_postgres.py's migration 5 (``documents``, ``document_sections``). Where SQLite keeps a term
index, PostgreSQL has a ``pg_trgm`` GIN index on ``document_sections.folded``, kept in step by every write, exactly
as archive/search_postgres.py does for segments: candidates by substring, verified by `search.score`. Every
function takes an open psycopg AsyncConnection and runs in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import TupleRow, tuple_row

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
from archive.search_postgres import _contains
from archive.search_sqlite import DEFAULT_WINDOW

Conn = AsyncConnection[Any]


async def _rows(conn: Conn, query: str, params: Sequence[Any] = ()) -> list[TupleRow]:
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def digests(conn: Conn) -> dict[str, str]:
    return {slug: digest for slug, digest in await _rows(conn, "SELECT slug, digest FROM documents")}


async def put_document(conn: Conn, doc: Document, digest: str, terms: Sequence[str], now: str) -> None:
    """Replace the document `doc.slug` (its row and sections) with `doc`."""
    await conn.execute(
        "DELETE FROM document_sections WHERE document_id IN (SELECT id FROM documents WHERE slug = %s)", (doc.slug,)
    )
    await conn.execute("DELETE FROM documents WHERE slug = %s", (doc.slug,))
    ((doc_id,),) = await _rows(
        conn,
        "INSERT INTO documents (slug, title, kind, year_be, in_force, complete, source, licence, digest, loaded_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        document_values(doc, digest, now),
    )
    rows = section_values(doc_id, doc, terms)
    if rows:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO document_sections (document_id, ord, key, label, chapter, part, transitory, text, folded,"
                " subject_terms, rank_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )


async def list_documents(conn: Conn) -> list[tuple[Document, int]]:
    return [(document_from(r), int(r[8])) for r in await _rows(conn, LIST_DOCUMENTS)]


async def get_document(conn: Conn, slug: str) -> tuple[Document, list[Section]] | None:
    found = await _rows(conn, f"SELECT {DOC_COLUMNS}, d.id FROM documents d WHERE d.slug = %s", (slug,))
    if not found:
        return None
    toc = await _rows(
        conn,
        "SELECT key, label, '', chapter, part, transitory FROM document_sections WHERE document_id = %s ORDER BY ord",
        (found[0][8],),
    )
    return document_from(found[0]), [section_from(r) for r in toc]


async def get_section(conn: Conn, slug: str, key: str) -> SectionView | None:
    found = await _rows(
        conn,
        f"SELECT {DOC_COLUMNS}, s.key, s.label, s.text, s.chapter, s.part, s.transitory, s.ord, d.id"
        " FROM document_sections s JOIN documents d ON d.id = s.document_id WHERE d.slug = %s AND s.key = %s",
        (slug, key),
    )
    if not found:
        return None
    row = found[0]
    ord, doc_id = row[14], row[15]
    around: dict[int, str] = dict(
        await _rows(
            conn,
            "SELECT ord, key FROM document_sections WHERE document_id = %s AND ord IN (%s, %s)",
            (doc_id, ord - 1, ord + 1),
        )
    )
    return section_view(row, around)


async def candidates(conn: Conn, kind: str = "constitution") -> list[Candidate]:
    rows = await _rows(
        conn,
        "SELECT d.slug, s.key, s.subject_terms, s.transitory FROM document_sections s"
        " JOIN documents d ON d.id = s.document_id WHERE d.kind = %s ORDER BY s.id",
        (kind,),
    )
    return [Candidate.from_terms(r[0], r[1], r[2], bool(r[3])) for r in rows]


async def search(
    conn: Conn,
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
    clauses, params = conditions(filters or DocumentFilters(), "%s")
    where = " AND ".join(clauses) or "TRUE"
    if position is not None:
        top = position.top
    else:
        ((top,),) = await _rows(conn, "SELECT coalesce(max(id), 0) FROM document_sections")
    ((in_scope,),) = await _rows(
        conn, f"SELECT count(*) FROM (SELECT 1 {SEARCH_FROM} WHERE s.id <= %s AND {where} LIMIT %s) AS scope",
        [top, *params, window + 1],
    )  # fmt: skip
    if in_scope <= window:
        rows = await _rows(
            conn, f"SELECT s.id, s.rank_at, s.folded {SEARCH_FROM} WHERE s.id <= %s AND {where}", [top, *params]
        )
        exhaustive = True
    else:
        patterns = [_contains(t.folded) for t in query.include]
        likes = " AND ".join(["s.folded LIKE %s"] * len(patterns))
        rows = await _rows(
            conn,
            f"SELECT s.id, s.rank_at, s.folded {SEARCH_FROM} WHERE {likes} AND s.id <= %s AND {where}"
            " ORDER BY s.id DESC LIMIT %s",
            [*patterns, top, *params, window],
        )
        exhaustive = False
    page, next_cursor, exhaustive = rank_page(
        query, rows, top=top, position=position, limit=limit, window=window, exhaustive=exhaustive
    )
    return DocumentPage(await _hits(conn, query, page), next_cursor, exhaustive)


async def _hits(conn: Conn, query: Query, page: Ranked) -> list[DocumentHit]:
    if not page:
        return []
    return hits(query, page, await _rows(conn, f"{HIT_COLUMNS} WHERE s.id = ANY(%s)", (page_ids(page),)))
