"""What the documents collection's two backends do alike (archive/documents_sqlite.py, documents_postgres.py).

Rows as records, the rows a document is written as, the conditions of a search's filters (given the dialect's
placeholder), and the ranking of a search's candidates into a page and its cursor. The backends keep only their
I/O and their index: SQLite's FTS5 terms, PostgreSQL's trigram LIKE.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from archive import search as core
from archive.documents import Document, DocumentFilters, DocumentHit, Section, SectionView, rank_at
from archive.search import Cursor, Query, QueryError
from archive.search_sqlite import MAX_LIMIT

DOC_COLUMNS = "d.slug, d.title, d.kind, d.year_be, d.in_force, d.complete, d.source, d.licence"
# Every document with its number of sections: constitutions first, newest first, then Acts newest first.
LIST_DOCUMENTS = (
    f"SELECT {DOC_COLUMNS}, (SELECT count(*) FROM document_sections s WHERE s.document_id = d.id)"
    " FROM documents d ORDER BY d.kind = 'act', d.year_be DESC, d.slug"
)
# A search hit's document and section, by section id (the caller adds the WHERE).
HIT_COLUMNS = (
    f"SELECT s.id, {DOC_COLUMNS}, s.key, s.label, s.text, s.chapter, s.part, s.transitory"
    " FROM document_sections s JOIN documents d ON d.id = s.document_id"
)
SEARCH_FROM = "FROM document_sections s JOIN documents d ON d.id = s.document_id"

# (rank key, score) of a section a search found; the key sorts best first and its last part is -section id.
Ranked = list[tuple[tuple[int, int, int], int]]


def document_from(row: Sequence[Any]) -> Document:
    return Document(row[0], row[1], row[2], int(row[3]), bool(row[4]), bool(row[5]), row[6], row[7])


def section_from(row: Sequence[Any]) -> Section:
    return Section(row[0], row[1], row[2], row[3], row[4], bool(row[5]))


def section_view(row: Sequence[Any], around: Mapping[int, str]) -> SectionView:
    """A section from ``DOC_COLUMNS``, key, label, text, chapter, part, transitory and ord, with the keys of the
    sections before and after it (``around``: ord → key)."""
    ord = row[14]
    return SectionView(document_from(row), section_from(row[8:14]), around.get(ord - 1), around.get(ord + 1))


def document_values(doc: Document, digest: str, now: str) -> tuple[object, ...]:
    """The ``documents`` row of ``doc``: slug, title, kind, year_be, in_force, complete, source, licence, digest,
    loaded_at."""
    return (doc.slug, doc.title, doc.kind, doc.year_be, doc.in_force, doc.complete, doc.source, doc.licence,
            digest, now)  # fmt: skip


def section_values(doc_id: int, doc: Document, terms: Sequence[str]) -> list[tuple[Any, ...]]:
    """The ``document_sections`` rows of ``doc``, in order: document_id, ord, key, label, chapter, part,
    transitory, text, folded, subject_terms, rank_at."""
    return [
        (doc_id, ord, s.key, s.label, s.chapter, s.part, s.transitory, s.text, core.fold(s.text), subject,
         rank_at(doc.year_be, ord))
        for ord, (s, subject) in enumerate(zip(doc.sections, terms, strict=True))
    ]  # fmt: skip


def conditions(filters: DocumentFilters, mark: str) -> tuple[list[str], list[Any]]:
    """The WHERE conditions of a search's filters, with ``mark`` as the dialect's placeholder, and their values."""
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
            clauses.append(f"{column} {op} {mark}")
            params.append(value)
    return clauses, params


def check_limit(limit: object) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise QueryError("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")


def rank_page(
    query: Query,
    rows: Iterable[tuple[int, int, str]],
    *,
    top: int,
    position: Cursor | None,
    limit: int,
    window: int,
    exhaustive: bool,
) -> tuple[Ranked, str | None, bool]:
    """The page of candidate ``rows`` (id, rank_at, folded) after ``position``, best first, its next cursor, and
    whether the candidates were every section in scope.

    ``exhaustive``: the rows are every section in scope; otherwise they are the newest ``window`` index candidates,
    and fewer than ``window`` of them means there were no more. The ranking and paging are the transcript search's
    (``search.rank_window``): each candidate verified by ``search.score``; without a whole page, the next cursor
    (if any) resumes the candidates below the lowest id seen.
    """
    # rank_window takes the window's lowest id and whether it was exhaustive up front, so the rows are read first:
    # at most ``window`` of them either way (the callers' LIMIT, or a scope counted to be no larger).
    candidates = list(rows)
    exhaustive = exhaustive or len(candidates) < window
    lowest = min((sid for sid, _, _ in candidates), default=None)
    page, next_cursor = core.rank_window(
        query, candidates, top=top, position=position, limit=limit, exhaustive=exhaustive, lowest=lowest
    )
    return page, next_cursor, exhaustive


def page_ids(page: Ranked) -> list[int]:
    return [-key[2] for key, _ in page]


def hits(query: Query, page: Ranked, rows: Iterable[Sequence[Any]]) -> list[DocumentHit]:
    """The page's hits, in its order, from ``HIT_COLUMNS`` rows of its sections (in any order)."""
    by_id = {r[0]: r for r in rows}
    found = []
    for (_, s), sid in zip(page, page_ids(page), strict=True):
        r = by_id[sid]
        found.append(DocumentHit(document_from(r[1:9]), section_from(r[9:15]), s, core.snippet(query, r[11])))
    return found
