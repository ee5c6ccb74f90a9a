"""``/api/documents…``: the constitutions and Acts over HTTP, the JSON twins of the ``/documents`` pages.

Search checks its request as ``/api/search`` does (archive/search_api.py): an unknown parameter, then ``q`` by the
parser, then every parameter by ``DocumentSearchQuery``, each a 400 naming the parameter. A malformed slug or
section key names nothing, so it is a 404 like an unknown one. Nothing here writes; the comparison is computed per
request from the constitutions' stored subject terms (about 1,300 sections: a few milliseconds).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from archive import validate
from archive.api import ok
from archive.documents import (
    BE_OFFSET,
    KEY_REGEX,
    Candidate,
    DocumentFilters,
    Section,
    compare,
    idf,
    section_url,
)
from archive.schemas import SLUG_REGEX, DocumentSearchQuery
from archive.search import QueryError, parse_query
from archive.store import Store
from archive.validate import Invalid
from common.http import json_error

_PARAMETERS = frozenset(info.alias or name for name, info in DocumentSearchQuery.model_fields.items())
_SLUG = re.compile(SLUG_REGEX.removeprefix("^").removesuffix("$"))
_KEY = re.compile(KEY_REGEX)
METHOD = (
    "Each constitution's section with the highest cosine similarity of words (PyThaiNLP newmm, stop words dropped,"
    " synonyms folded), each word weighing its rarity over the constitutions' sections (idf), twice that in a first"
    " line; transitory provisions with transitory provisions; shown when the similarity is at least 0.2."
)


def head(slug: str, section: Section) -> dict[str, Any]:
    return {**{k: v for k, v in section.to_dict().items() if k != "text"}, "url": section_url(slug, section.key)}


def full(slug: str, section: Section) -> dict[str, Any]:
    return {**head(slug, section), "text": section.text}


def be_year(year: int | None) -> int | None:
    """A year as B.E.: from 2400 on it already is, below it is C.E."""
    return None if year is None else year if year >= 2400 else year + BE_OFFSET


def parse(params: dict[str, str]) -> DocumentSearchQuery:
    for name in params:
        if name not in _PARAMETERS:
            raise QueryError(name, f"unknown parameter {name!r}; known: {', '.join(sorted(_PARAMETERS))}")
    if "q" in params:
        parse_query(params["q"])
    return validate.query(params, DocumentSearchQuery)


class DocumentsAPI:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def listing(self, request: Request) -> Response:
        """Every document of the collection."""
        listed = await self.store.list_documents()
        return ok({"documents": [{**doc.meta(), "sections": count} for doc, count in listed]})

    async def search(self, request: Request) -> Response:
        """One page of sections matching ``q``, best first, with snippets and section URLs."""
        params = dict(request.query_params)
        try:
            query = parse(params)
            filters = DocumentFilters(
                document=query.document,
                kind=query.kind,
                year_from=be_year(query.year_from),
                year_to=be_year(query.year_to),
                in_force=None if query.in_force is None else query.in_force == "true",
            )
            page = await self.store.search_documents(query.q, filters, query.cursor, query.limit)
        except (Invalid, QueryError) as exc:
            return json_error(400, exc.message, field=exc.field)
        next_url = None
        if page.next_cursor is not None:
            next_url = f"/api/documents/search?{urlencode({**params, 'cursor': page.next_cursor})}"
        results = [{**hit.to_dict(), "section": head(hit.document.slug, hit.section)} for hit in page.hits]
        return ok(
            {
                "q": query.q,
                "results": results,
                "next_cursor": page.next_cursor,
                "next": next_url,
                "exhaustive": page.exhaustive,
            }
        )

    async def document(self, request: Request) -> Response:
        """A document and its table of contents."""
        slug = request.path_params["doc"]
        found = await self.store.get_document(slug) if _SLUG.fullmatch(slug) else None
        if found is None:
            return json_error(404, "no such document", field="doc")
        doc, toc = found
        return ok({"document": doc.meta(), "sections": [head(slug, s) for s in toc]})

    async def _section(self, request: Request) -> tuple[Any, Response | None]:
        slug, key = request.path_params["doc"], request.path_params["n"]
        if not _SLUG.fullmatch(slug):
            return None, json_error(404, "no such document", field="doc")
        view = await self.store.get_section(slug, key) if _KEY.fullmatch(key) else None
        if view is None:
            if await self.store.get_document(slug) is None:
                return None, json_error(404, "no such document", field="doc")
            return None, json_error(404, "no such section in this document", field="n")
        return view, None

    async def section(self, request: Request) -> Response:
        """One section, its place in the document and its neighbours."""
        view, error = await self._section(request)
        if error is not None:
            return error
        slug = view.document.slug
        return ok(
            {
                "document": view.document.meta(),
                "section": full(slug, view.section),
                "prev": section_url(slug, view.prev) if view.prev else None,
                "next": section_url(slug, view.next) if view.next else None,
                "compare": f"/api/documents/{slug}/sections/{view.section.key}/compare",
            }
        )

    async def compare(self, request: Request) -> Response:
        """The same subject across the constitutions (archive/documents.py `compare`)."""
        view, error = await self._section(request)
        if error is not None:
            return error
        slug, key = view.document.slug, view.section.key
        matches: list[dict[str, Any]] = []
        if view.document.kind == "constitution":
            candidates = await self.store.section_candidates("constitution")
            target = next((c for c in candidates if c.slug == slug and c.key == key), None)
            if target is not None:
                matches = await self._matches(target, candidates)
        return ok({"document": view.document.meta(), "section": head(slug, view.section), "matches": matches,
                   "method": METHOD})  # fmt: skip

    async def _matches(self, target: Candidate, candidates: list[Candidate]) -> list[dict[str, Any]]:
        out = []
        for match in compare(target, candidates, idf(candidates)):
            view = await self.store.get_section(match.slug, match.key)
            if view is None:  # reloaded in between
                continue
            out.append(
                {
                    "document": view.document.meta(),
                    "section": full(match.slug, view.section),
                    "similarity": round(match.similarity, 3),
                    "shared": list(match.shared),
                }
            )
        # Oldest constitution first, so a reader follows the subject through history.
        return sorted(out, key=lambda m: (m["document"]["year_be"], m["document"]["slug"]))
