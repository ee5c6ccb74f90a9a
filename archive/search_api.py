"""``GET /api/search``: the transcript search over HTTP, and the JSON twin of the ``/search`` page.

The request is checked in three steps, each a 400 naming the parameter: no parameter outside ``SearchQuery`` (a
misspelt filter must not silently widen a journalist's search), then ``q`` by the parser (so the common mistakes
get their own words: unbalanced quote, only exclusions), then every parameter by ``SearchQuery``, whose schema is
what ``/openapi.json`` documents. Everything the schema accepts runs (archive/search.py's ``QUERY_REGEX`` and
``CURSOR_REGEX`` say why). Nothing here writes.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from archive import validate
from archive.api import media_seconds, ok
from archive.models import Sitting
from archive.schemas import SearchQuery
from archive.search import QueryError, SearchFilters, SearchHit, parse_query
from archive.store import Store
from archive.validate import Invalid
from common.http import json_error

_PARAMETERS = frozenset(info.alias or name for name, info in SearchQuery.model_fields.items())


def parse(params: dict[str, str]) -> SearchQuery:
    """The search's parameters, or Invalid/QueryError naming the first one at fault."""
    for name in params:
        if name not in _PARAMETERS:
            raise QueryError(name, f"unknown parameter {name!r}; known: {', '.join(sorted(_PARAMETERS))}")
    if "q" in params:
        parse_query(params["q"])
    return validate.query(params, SearchQuery)


def filters(query: SearchQuery) -> SearchFilters:
    return SearchFilters(
        sitting=query.sitting,
        date_from=query.from_,
        date_to=query.to,
        chamber=query.chamber,
        speaker=query.speaker,
        bill=query.bill,
        agenda_item=query.agenda_item,
    )


def result(hit: SearchHit, sitting: Sitting | None) -> dict[str, Any]:
    """One hit as the API shows it: where it was said, the snippet, and the permalink to that moment."""
    return {
        "segment_id": hit.segment_id,
        "sitting": {
            "id": hit.sitting_id,
            "title": sitting.title if sitting else "",
            "chamber": sitting.chamber if sitting else "",
            "date": hit.day,
        },
        "start_ms": hit.start_ms,
        "t": hit.start_ms / 1000,
        "speaker": hit.speaker,
        "agenda_item_id": hit.agenda_item_id,
        "bill_id": hit.bill_id,
        "score": hit.score,
        "snippet": [span.to_dict() for span in hit.snippet],
        "permalink": f"/watch/{hit.sitting_id}?t={media_seconds(hit.start_ms)}",
    }


class SearchAPI:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def search(self, request: Request) -> Response:
        """One page of transcript segments matching ``q``, best first, with snippets and permalinks."""
        params = dict(request.query_params)
        try:
            query = parse(params)
            page = await self.store.search(query.q, filters(query), query.cursor, query.limit)
        except Invalid as exc:
            return json_error(400, exc.message, field=exc.field)
        except QueryError as exc:
            return json_error(400, exc.message, field=exc.field)
        ids = list(dict.fromkeys(hit.sitting_id for hit in page.hits))
        sittings = dict(zip(ids, await asyncio.gather(*(self.store.get_sitting(i) for i in ids)), strict=True))
        next_url = None
        if page.next_cursor is not None:
            next_url = f"/api/search?{urlencode({**params, 'cursor': page.next_cursor})}"
        return ok(
            {
                "q": query.q,
                "results": [result(hit, sittings[hit.sitting_id]) for hit in page.hits],
                "next_cursor": page.next_cursor,
                "next": next_url,
                "exhaustive": page.exhaustive,
            }
        )
