"""The HTML pages, as a table, and the server's own endpoints: health, metrics, the staff feed view, OpenAPI.

A page is a static file under ``static/``; some answer 404 (``static/404.html``) unless what they show exists,
so that a mistyped link is not a page that loads and then fails.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from archive.api import ok
from archive.openapi import openapi_document
from archive.store import Store
from broadcast.envelope import ID_PATTERN
from common.http import JSONUnicodeResponse
from sapha.services import Services
from sapha.settings import STATIC

# Whether the thing a page shows exists, from the store and the path's parameters.
Exists = Callable[[Store, Mapping[str, str]], Awaitable[bool]]


async def sitting_exists(store: Store, params: Mapping[str, str]) -> bool:
    return await store.get_sitting(params["sitting_id"]) is not None


async def bill_exists(store: Store, params: Mapping[str, str]) -> bool:
    bill_id = params["bill_id"]
    return bool(re.fullmatch(ID_PATTERN, bill_id)) and await store.get_bill(bill_id) is not None


async def document_exists(store: Store, params: Mapping[str, str]) -> bool:
    return await store.get_document(params["doc"]) is not None


async def section_exists(store: Store, params: Mapping[str, str]) -> bool:
    return await store.get_section(params["doc"], params["n"]) is not None


@dataclass(frozen=True)
class Page:
    path: str
    file: str
    exists: Exists | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    media_type: str | None = None


PAGES: tuple[Page, ...] = (
    Page("/", "index.html"),
    Page("/search", "search.html"),
    Page("/console", "console.html"),
    Page("/write", "write.html"),
    Page("/write/status/{code}", "write-status.html", headers={"Cache-Control": "no-store"}),
    Page("/privacy", "privacy.html"),
    Page("/watch/{sitting_id}", "watch.html", sitting_exists),
    # Framable like the player embed (SecurityHeaders' "/embed/" prefix): an agency's bills on its own site.
    # Before /embed/{sitting_id}, which would take it for a sitting.
    Page("/embed/bills", "embed-bills.html"),
    # No X-Frame-Options or frame-ancestors here: this page exists to be framed by other sites.
    Page("/embed/{sitting_id}", "embed.html", sitting_exists),
    Page("/bills", "bills.html"),
    Page("/bills/{bill_id}", "bill.html", bill_exists),
    # Served from the root so that its scope is the whole site (a worker under /static/ could only control
    # /static/ pages); no-cache, so that browsers look for a new worker on every visit.
    Page("/sw.js", "sw.js", headers={"Cache-Control": "no-cache"}, media_type="text/javascript"),
    Page("/documents", "documents.html"),
    Page("/documents/{doc}", "document.html", document_exists),
    Page("/documents/{doc}/sections/{n}", "document-section.html", section_exists),
)


def page_routes(store: Store, pages: tuple[Page, ...] = PAGES) -> list[Route]:
    """One GET route per page."""
    return [Route(page.path, _page_endpoint(store, page)) for page in pages]


def _page_endpoint(store: Store, page: Page) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if page.exists is not None and not await page.exists(store, request.path_params):
            return FileResponse(STATIC / "404.html", status_code=404)
        return FileResponse(STATIC / page.file, headers=dict(page.headers) or None, media_type=page.media_type)

    return endpoint


class ServerStatus:
    """``/healthz``, ``/metrics``, ``/openapi.json`` and the console's feed view."""

    def __init__(self, services: Services) -> None:
        self.hub = services.hub
        self.metrics = services.metrics
        self.feeds = services.feeds

    async def healthz(self, request: Request) -> Response:
        broker_ok = await self.hub.broker.healthy()
        body = {
            "broker": "ok" if broker_ok else "down",
            "subscriptions": self.hub.subscription_count,
            "feeds": self.feeds.health(),
        }
        if not broker_ok:
            return JSONUnicodeResponse({"ok": False, "status": 503, "error": "broker down", **body}, 503)
        return ok(body)

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(self, request: Request) -> Response:
        return JSONUnicodeResponse(openapi_document(request.app.routes))

    async def staff_feeds(self, request: Request, principal: object) -> Response:
        """Feed health for the console: /healthz's feeds with each one's lag, and the viewers by transport."""
        metrics = self.metrics
        lag = {s.labels["sitting"]: s.value for m in metrics.lag.collect() for s in m.samples}
        viewers = {s.labels["transport"]: int(s.value) for m in metrics.clients_connected.collect() for s in m.samples}
        return ok(
            {
                "broker": "ok" if await self.hub.broker.healthy() else "down",
                "subscriptions": self.hub.subscription_count,
                "viewers": viewers,
                "feeds": [{**feed.state.to_dict(), "lag_s": lag.get(feed.sitting_id)} for feed in self.feeds.running],
            }
        )
