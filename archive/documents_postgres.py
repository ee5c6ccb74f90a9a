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
from archive.search_postgres import _contains
from archive.search_sqlite import DEFAULT_WINDOW, MAX_LIMIT

Conn = AsyncConnection[Any]
_DOC_COLUMNS = "d.slug, d.title, d.kind, d.year_be, d.in_force, d.complete, d.source, d.licence"


async def _rows(conn: Conn, query: str, params: Sequence[Any] = ()) -> list[TupleRow]:
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


def _document(row: Sequence[Any]) -> Document:
    return Document(row[0], row[1], row[2], int(row[3]), bool(row[4]), bool(row[5]), row[6], row[7])


def _section(row: Sequence[Any]) -> Section:
    return Section(row[0], row[1], row[2], row[3], row[4], bool(row[5]))


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
        (doc.slug, doc.title, doc.kind, doc.year_be, doc.in_force, doc.complete, doc.source, doc.licence, digest,
         now),
    )  # fmt: skip
    rows = [
        (doc_id, ord, s.key, s.label, s.chapter, s.part, s.transitory, s.text, core.fold(s.text), subject,
         rank_at(doc.year_be, ord))
        for ord, (s, subject) in enumerate(zip(doc.sections, terms, strict=True))
    ]  # fmt: skip
    if rows:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO document_sections (document_id, ord, key, label, chapter, part, transitory, text, folded,"
                " subject_terms, rank_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )


async def list_documents(conn: Conn) -> list[tuple[Document, int]]:
    rows = await _rows(
        conn,
        f"SELECT {_DOC_COLUMNS}, (SELECT count(*) FROM document_sections s WHERE s.document_id = d.id)"
        " FROM documents d ORDER BY d.kind = 'act', d.year_be DESC, d.slug",
    )
    return [(_document(r), int(r[8])) for r in rows]


async def get_document(conn: Conn, slug: str) -> tuple[Document, list[Section]] | None:
    found = await _rows(conn, f"SELECT {_DOC_COLUMNS}, d.id FROM documents d WHERE d.slug = %s", (slug,))
    if not found:
        return None
    toc = await _rows(
        conn,
        "SELECT key, label, '', chapter, part, transitory FROM document_sections WHERE document_id = %s ORDER BY ord",
        (found[0][8],),
    )
    return _document(found[0]), [_section(r) for r in toc]


async def get_section(conn: Conn, slug: str, key: str) -> SectionView | None:
    found = await _rows(
        conn,
        f"SELECT {_DOC_COLUMNS}, s.key, s.label, s.text, s.chapter, s.part, s.transitory, s.ord, d.id"
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
    return SectionView(_document(row), _section(row[8:14]), around.get(ord - 1), around.get(ord + 1))


async def candidates(conn: Conn, kind: str = "constitution") -> list[Candidate]:
    rows = await _rows(
        conn,
        "SELECT d.slug, s.key, s.subject_terms, s.transitory FROM document_sections s"
        " JOIN documents d ON d.id = s.document_id WHERE d.kind = %s ORDER BY s.id",
        (kind,),
    )
    return [Candidate.from_terms(r[0], r[1], r[2], bool(r[3])) for r in rows]


def _where(filters: DocumentFilters) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value, op in (
        ("d.slug", filters.document, "="),
        ("d.kind", filters.kind, "="),
        ("d.year_be", filters.year_from, ">="),
        ("d.year_be", filters.year_to, "<="),
        ("d.in_force", filters.in_force, "="),
    ):
        if value is not None:
            clauses.append(f"{column} {op} %s")
            params.append(value)
    return (" AND ".join(clauses) or "TRUE"), params


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
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise QueryError("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    position = Cursor.decode(cursor) if cursor is not None else None
    where, params = _where(filters or DocumentFilters())
    base = "FROM document_sections s JOIN documents d ON d.id = s.document_id"
    if position is not None:
        top = position.top
    else:
        ((top,),) = await _rows(conn, "SELECT coalesce(max(id), 0) FROM document_sections")
    ((in_scope,),) = await _rows(
        conn, f"SELECT count(*) FROM (SELECT 1 {base} WHERE s.id <= %s AND {where} LIMIT %s) AS scope",
        [top, *params, window + 1],
    )  # fmt: skip
    if in_scope <= window:
        rows = await _rows(
            conn, f"SELECT s.id, s.rank_at, s.folded {base} WHERE s.id <= %s AND {where}", [top, *params]
        )
        exhaustive = True
    else:
        patterns = [_contains(t.folded) for t in query.include]
        likes = " AND ".join(["s.folded LIKE %s"] * len(patterns))
        rows = await _rows(
            conn,
            f"SELECT s.id, s.rank_at, s.folded {base} WHERE {likes} AND s.id <= %s AND {where}"
            " ORDER BY s.id DESC LIMIT %s",
            [*patterns, top, *params, window],
        )
        exhaustive = len(rows) < window
    ranked: list[tuple[tuple[int, int, int], int]] = []
    lowest = None
    for sid, at, folded in rows:
        lowest = sid if lowest is None else min(lowest, sid)
        s = core.score(query, folded)
        if s is not None:
            ranked.append((core.rank_key(s, at, sid), s))
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
    return DocumentPage(await _hits(conn, query, page), next_cursor, exhaustive)


async def _hits(conn: Conn, query: Query, page: list[tuple[tuple[int, int, int], int]]) -> list[DocumentHit]:
    if not page:
        return []
    ids = [-key[2] for key, _ in page]
    found = await _rows(
        conn,
        f"SELECT s.id, {_DOC_COLUMNS}, s.key, s.label, s.text, s.chapter, s.part, s.transitory"
        " FROM document_sections s JOIN documents d ON d.id = s.document_id WHERE s.id = ANY(%s)",
        (ids,),
    )
    rows = {r[0]: r for r in found}
    hits = []
    for (_, s), sid in zip(page, ids, strict=True):
        r = rows[sid]
        hits.append(DocumentHit(_document(r[1:9]), _section(r[9:15]), s, core.snippet(query, r[11])))
    return hits
