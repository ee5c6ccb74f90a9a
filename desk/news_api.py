"""News and publications over HTTP: the editors' API, the public's JSON, the Atom feed, media and the pages.

``NewsAPI(authorise, search=archive.search, publish=hub.publish, pages=STATIC)`` serves ``routes()``; the server's
lifespan ``open``s it with a ``NewsStore`` and an ``AttachmentStore`` for its files (images and PDFs, outside the
web root). Desk imports neither ``archive`` nor ``broadcast``, so both come in as arguments:

* ``search`` — the archive's search core (``archive.search``: ``fold``, ``parse_query``, ``score``, ``snippet``,
  ``QUERY_REGEX``), so that a publication is found exactly as a transcript is (Thai without word breaks, Thai
  digits, ``"phrases"``, ``-excluded``). Each publication's title, authors, topics and abstract are folded once,
  when written (``desk_publications.search_text``); a query scans those texts and verifies each with ``score``.
  A linear scan, in SQLite then Python: right for a library of thousands, which is what a Senate publishes; a
  trigram index (``archive.search_sqlite``'s approach) is the step beyond that.
* ``publish(channel, type, data)`` — the event bus. Publishing an article puts ``news.published`` on the ``news``
  channel (after the store has committed it); WebSocket and SSE clients follow it like any other channel.
* ``notify_followers(item)`` — optional: the hook for topic alerts (``alerts`` follows of ``topic:<name>``). The
  server leaves it unset until alerts are wired into it (``alerts/delivery.py``'s ``Alerting``); a failure there
  is logged, never undoes the publication.

Editors (``authorise(request, permission)``: a staff session with ``X-CSRF-Token``, or an API token; permissions
``news.write``, ``news.publish`` and ``document.write`` of ``desk/accounts.py``): create and edit drafts, upload
images (the raw bytes as the body; PNG, JPEG or WebP checked from the bytes by ``desk.attachments``, 5 MB), publish
and unpublish, add publications and their PDF (``PUT /api/publications/{id}/file``, the raw bytes, checked the same way,
``PDF_MAX_BYTES``). Each
change is an audit entry written with it.

The public: ``GET /api/news`` (published only, newest first, ``topic``, ``limit``/``offset``), ``/api/news/{slug}``
(a draft there only for an editor's credentials: the preview),
``/news.atom``, ``/api/publications`` (``q`` searches, ``topic``, ``kind``), ``/api/publications/{id}`` and its
PDF. Titles, topics, authors and abstracts are plain text everywhere (pages set ``textContent``, the feed says
``type="text"``); only an article's body is HTML, rendered from Markdown and sanitised by ``desk.news`` when it
is written. Uploaded files are served with ``nosniff`` and ``Content-Security-Policy: default-src 'none';
sandbox``: an image is shown inline (it decoded as one when uploaded); a PDF is always a download
(``Content-Disposition: attachment``), since Chromium's viewer will not run under a sandboxing policy and a PDF
rendered by the site's origin is a risk the download avoids.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

from feedgen.feed import FeedGenerator
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from common.http import JSONUnicodeResponse, json_error, read_body_capped
from common.news_schemas import (
    NewsCreate,
    NewsPatch,
    NewsQuery,
    PublicationCreate,
    StaffNewsQuery,
    publication_query,
)
from desk.accounts import SESSION_COOKIE, Principal
from desk.accounts_sqlite import NotFound
from desk.attachments import MAX_BYTES, TYPES, AttachmentMeta, AttachmentStore, Refused, check
from desk.news_sqlite import NewsItem, NewsStore, Publication

M = TypeVar("M", bound=BaseModel)
Authorise = Callable[[Request, str | None], Awaitable["Principal | Response"]]
Publish = Callable[[str, str, dict[str, Any]], Awaitable[Any]]
NotifyFollowers = Callable[[dict[str, Any]], Awaitable[None]]
StaffHandler = Callable[[Request, Principal], Awaitable[Response]]

NEWS_CHANNEL = "news"
NEWS_PUBLISHED = "news.published"  # broadcast.envelope.NEWS_PUBLISHED: the same name
JSON_LIMIT = 128 * 1024
PDF_MAX_BYTES = 20 * 1024 * 1024
FEED_ENTRIES = 50
SLUG = re.compile(r"[0-9a-z\u0e01-\u0e5b][0-9a-z\u0e01-\u0e5b-]{0,79}")
_MEDIA = re.compile(r"([0-9a-f]{32})\.(png|jpg|webp)")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_DIGITS = 19
_ID_MAX = 2**63 - 1
FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"}

log = logging.getLogger("sapha.news")


class TextSearch(Protocol):
    """The archive's search core as publications use it (``archive.search`` is one, as a module).

    ``parse_query`` raises a ``ValueError`` with a ``field`` attribute for a query it cannot run; ``score`` is None
    when ``folded`` does not match; ``snippet`` gives spans with ``to_dict()``.
    """

    QUERY_REGEX: str
    MAX_QUERY_CHARS: int

    def fold(self, text: str) -> str: ...

    def parse_query(self, raw: str) -> Any: ...

    def score(self, query: Any, folded: str) -> int | None: ...

    def snippet(self, query: Any, text: str, context: int = ...) -> Sequence[Any]: ...


class _Invalid(Exception):
    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def _ok(payload: Mapping[str, Any], status: int = 200) -> JSONResponse:
    return JSONUnicodeResponse({"ok": True, **payload}, status_code=status)


def _field_error(model: type[BaseModel], exc: ValidationError, status: int) -> _Invalid:
    error = exc.errors()[0]
    if error["type"] == "json_invalid":
        return _Invalid(status, "body", "must be valid JSON")
    if not error["loc"]:
        return _Invalid(status, "body", "must be a JSON object")
    field = str(error["loc"][0])[:40]
    if error["type"] == "missing":
        return _Invalid(status, field, "is required")
    if error["type"] == "extra_forbidden":
        return _Invalid(status, field, f"unknown field; allowed: {', '.join(model.model_fields)}")
    info = model.model_fields.get(field)
    described = info.description if info is not None else None
    return _Invalid(status, field, f"must be {described}" if described else str(error["msg"]))


async def _body(request: Request, model: type[M]) -> M:
    raw = await read_body_capped(request, JSON_LIMIT)  # BodyTooLarge: the app's handler answers 413
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _field_error(model, exc, 422) from None


def _query(request: Request, model: type[M]) -> M:
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        raw = request.query_params.get(name)
        if raw is None:
            continue
        if info.annotation is int:
            if not (raw.isascii() and raw.isdigit() and len(raw) <= _DIGITS):
                raise _Invalid(400, name, f"must be {info.description}")
            data[name] = int(raw)
        else:
            data[name] = raw
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _field_error(model, exc, 400) from None


def _slug(request: Request) -> str:
    slug = request.path_params.get("slug", "")
    if not (isinstance(slug, str) and SLUG.fullmatch(slug)):
        raise NotFound("no such news item")
    return slug


def _publication_id(request: Request) -> int:
    raw = request.path_params.get("publication_id", "")
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= _DIGITS) or not (
        1 <= int(raw) <= _ID_MAX
    ):
        raise NotFound("no such publication")
    return int(raw)


def _next(request: Request, total: int, offset: int, limit: int) -> str | None:
    if offset + limit >= total:
        return None
    params = {**request.query_params, "offset": str(offset + limit), "limit": str(limit)}
    return f"{request.url.path}?{urlencode(params)}"


def _xml(text: str) -> str:
    return _NOT_XML.sub("", text)


def _when(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


class NewsAPI:
    """The routes over one ``NewsStore`` and its file store, given by ``open`` (the server's lifespan)."""

    def __init__(
        self,
        authorise: Authorise,
        *,
        search: TextSearch,
        publish: Publish | None = None,
        notify_followers: NotifyFollowers | None = None,
        pages: Path | None = None,
        feed_authority: str = "sapha",
        feed_year: int = 2026,
    ) -> None:
        self._authorise = authorise
        self._search = search
        self._publish = publish
        self._notify = notify_followers
        self._pages = pages
        self._feed_authority, self._feed_year = feed_authority, feed_year
        self._publication_query = publication_query(search.QUERY_REGEX, search.MAX_QUERY_CHARS)
        self._store: NewsStore | None = None
        self._files: AttachmentStore | None = None

    def open(self, store: NewsStore, files: AttachmentStore) -> None:
        self._store, self._files = store, files

    @property
    def store(self) -> NewsStore:
        if self._store is None:
            raise RuntimeError("the news store is not open (the app's lifespan opens it)")
        return self._store

    @property
    def files(self) -> AttachmentStore:
        if self._files is None:
            raise RuntimeError("the news file store is not open (the app's lifespan opens it)")
        return self._files

    # ---- plumbing ----------------------------------------------------------------------------------------------

    def guarded(self, permission: str, handler: StaffHandler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            principal = await self._authorise(request, permission)
            if isinstance(principal, Response):
                return principal
            return await self._answer(handler(request, principal))

        endpoint.__name__ = handler.__name__
        return endpoint

    def public(self, handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._answer(handler(request))

        endpoint.__name__ = handler.__name__
        return endpoint

    @staticmethod
    async def _answer(work: Awaitable[Response]) -> Response:
        try:
            return await work
        except _Invalid as exc:
            return json_error(exc.status, exc.message, field=exc.field)
        except NotFound as exc:
            return json_error(404, str(exc).strip("'\""))
        except Refused as exc:
            return json_error(exc.status, str(exc), field="body")

    async def _save(self, data: bytes, *, max_bytes: int, accept: Sequence[str]) -> AttachmentMeta:
        """Check ``data`` from its bytes (one of ``accept``) and store it; 413/415 through ``Refused``."""
        checked = await asyncio.to_thread(check, data, max_bytes=max_bytes)
        if checked.content_type not in accept:
            raise Refused(415, f"this upload must be one of: {', '.join(accept)}")
        return await asyncio.to_thread(self.files.save, checked)

    # ---- editors -----------------------------------------------------------------------------------------------

    async def create_news(self, request: Request, principal: Principal) -> Response:
        body = await _body(request, NewsCreate)
        item = await self._render_guard(
            asyncio.to_thread(
                self.store.create_news, principal, title=body.title, body_md=body.body, topics=body.topics
            )
        )
        return _ok({"item": item.to_json(staff=True)}, 201)

    async def update_news(self, request: Request, principal: Principal) -> Response:
        slug = _slug(request)
        body = await _body(request, NewsPatch)
        item = await self._render_guard(
            asyncio.to_thread(
                self.store.update_news, principal, slug, title=body.title, body_md=body.body, topics=body.topics
            )
        )
        return _ok({"item": item.to_json(staff=True)})

    @staticmethod
    async def _render_guard(work: Awaitable[NewsItem]) -> NewsItem:
        try:
            return await work
        except ValueError as exc:  # desk.news refuses a body past its limit once normalised
            raise _Invalid(422, "body", str(exc)) from None

    async def publish_news(self, request: Request, principal: Principal) -> Response:
        item, changed = await asyncio.to_thread(self.store.set_published, principal, _slug(request), True)
        event = await self._announce(item) if changed else None
        return _ok({"item": item.to_json(staff=True), "event": event})

    async def unpublish_news(self, request: Request, principal: Principal) -> Response:
        item, _ = await asyncio.to_thread(self.store.set_published, principal, _slug(request), False)
        return _ok({"item": item.to_json(staff=True)})

    async def _announce(self, item: NewsItem) -> dict[str, Any] | None:
        """``news.published`` on the bus, then the followers' hook; the article stays published if either fails."""
        data = {
            "id": item.id,
            "slug": item.slug,
            "title": item.title,
            "summary": item.summary,
            "topics": list(item.topics),
            "published_at": item.published_at,
            "url": f"/news/{item.slug}",
        }
        event = None
        if self._publish is not None:
            try:
                published = await self._publish(NEWS_CHANNEL, NEWS_PUBLISHED, data)
                event = published.to_dict() if hasattr(published, "to_dict") else dict(published)
            except Exception:
                log.exception("news %s is published but its event could not be sent", item.slug)
        if self._notify is not None:
            try:
                await self._notify(item.to_json())
            except Exception:
                log.exception("news %s is published but its topic followers could not be notified", item.slug)
        return event

    async def staff_news(self, request: Request, principal: Principal) -> Response:
        query = _query(request, StaffNewsQuery)
        page = await asyncio.to_thread(
            self.store.list_news, topic=query.topic, status=query.status, limit=query.limit, offset=query.offset
        )
        return _ok(
            {
                "news": [i.to_json(staff=True) for i in page.items],
                "total": page.total,
                "next": _next(request, page.total, query.offset, query.limit),
                "feed": "/news.atom",
            }
        )

    async def upload_image(self, request: Request, principal: Principal) -> Response:
        slug = _slug(request)
        if await asyncio.to_thread(self.store.get_news, slug, drafts=True) is None:
            raise NotFound("no such news item")
        data = await read_body_capped(request, MAX_BYTES)
        meta = await self._save(data, max_bytes=MAX_BYTES, accept=("image/png", "image/jpeg", "image/webp"))
        try:
            image = await asyncio.to_thread(self.store.add_image, principal, slug, meta)
        except BaseException:
            await asyncio.to_thread(self.files.delete, meta.name)
            raise
        return _ok({"image": image.to_json(), "markdown": f"![]({image.url})"}, 201)

    async def create_publication(self, request: Request, principal: Principal) -> Response:
        body = await _body(request, PublicationCreate)
        search_text = self._search.fold("\n".join([body.title, *body.authors, *body.topics, body.abstract]))
        created = await asyncio.to_thread(
            self.store.create_publication,
            principal,
            title=body.title,
            authors=body.authors,
            year=body.year,
            abstract=body.abstract,
            kind=body.kind,
            topics=body.topics,
            search_text=search_text,
        )
        return _ok({"publication": created.to_json()}, 201)

    async def upload_pdf(self, request: Request, principal: Principal) -> Response:
        publication_id = _publication_id(request)
        if await asyncio.to_thread(self.store.publication, publication_id) is None:
            raise NotFound("no such publication")
        data = await read_body_capped(request, PDF_MAX_BYTES)
        meta = await self._save(data, max_bytes=PDF_MAX_BYTES, accept=("application/pdf",))
        try:
            updated, replaced = await asyncio.to_thread(self.store.set_pdf, principal, publication_id, meta)
        except BaseException:
            await asyncio.to_thread(self.files.delete, meta.name)
            raise
        if replaced is not None:
            await asyncio.to_thread(self.files.delete, replaced)
        return _ok({"publication": updated.to_json()})

    # ---- the public --------------------------------------------------------------------------------------------

    async def list_news(self, request: Request) -> Response:
        query = _query(request, NewsQuery)
        page = await asyncio.to_thread(self.store.list_news, topic=query.topic, limit=query.limit, offset=query.offset)
        return _ok(
            {
                "news": [i.to_json() for i in page.items],
                "total": page.total,
                "next": _next(request, page.total, query.offset, query.limit),
                "feed": "/news.atom",
            }
        )

    async def get_news(self, request: Request) -> Response:
        """A published article; a draft only to an editor who sends credentials (a preview), else 404 as if none."""
        slug = _slug(request)
        item = await asyncio.to_thread(self.store.get_news, slug, drafts=True)
        if item is None:
            raise NotFound("no such news item")
        if item.status == "published":
            return _ok({"item": item.to_json()})
        has_credentials = "authorization" in request.headers or SESSION_COOKIE in request.cookies
        if has_credentials and isinstance(await self._authorise(request, "news.write"), Principal):
            return _ok({"item": item.to_json(staff=True)})
        raise NotFound("no such news item")

    async def media(self, request: Request) -> Response:
        match = _MEDIA.fullmatch(request.path_params.get("file", ""))
        image = await asyncio.to_thread(self.store.image, match.group(1)) if match else None
        if match is None or image is None or TYPES[image.content_type][1] != match.group(2):
            return json_error(404, "no such image")
        headers = {**FILE_HEADERS, "Cache-Control": "public, max-age=31536000, immutable"}
        return FileResponse(self.files.path(image.name), media_type=image.content_type, headers=headers)

    async def atom(self, request: Request) -> Response:
        page = await asyncio.to_thread(self.store.list_news, limit=FEED_ENTRIES)
        return Response(self.render_feed(page.items, str(request.base_url)), media_type="application/atom+xml")

    def render_feed(self, items: Sequence[NewsItem], base_url: str) -> bytes:
        """The Atom feed of ``items`` (published, newest first). Entry ids are tag URIs of each article's id, so
        an edited (or re-slugged) article stays the same entry for a feed reader."""
        base = base_url.rstrip("/")
        fg = FeedGenerator()
        fg.id(f"tag:{self._feed_authority},{self._feed_year}:news")
        fg.title("ข่าววุฒิสภา")
        fg.link(href=f"{base}/news.atom", rel="self", type="application/atom+xml")
        fg.link(href=f"{base}/news", rel="alternate", type="text/html")
        fg.language("th")
        fg.author({"name": "วุฒิสภา"})
        fg.updated(_when(max((i.updated_at for i in items), default="2026-01-01T00:00:00.000Z")))
        # feedgen prepends each entry: adding the oldest first leaves the newest at the top.
        for item in reversed(items):
            entry = fg.add_entry()
            entry.id(f"tag:{self._feed_authority},{self._feed_year}:news/{item.id}")
            entry.title(_xml(item.title))
            entry.summary(_xml(item.summary), type="text")
            entry.link(href=f"{base}/news/{item.slug}", rel="alternate", type="text/html")
            entry.published(_when(item.published_at or item.created_at))
            entry.updated(_when(item.updated_at))
            for topic in item.topics:
                entry.category(term=_xml(topic))
        return bytes(fg.atom_str(pretty=False))

    async def list_publications(self, request: Request) -> Response:
        query: Any = _query(request, self._publication_query)
        if query.q is None:
            page = await asyncio.to_thread(
                self.store.list_publications, topic=query.topic, kind=query.kind, limit=query.limit, offset=query.offset
            )
            hits = [{**p.to_json(), "score": None, "snippet": None} for p in page.items]
            total = page.total
        else:
            hits, total = await self._search_publications(query)
        return _ok(
            {
                "q": query.q,
                "publications": hits,
                "total": total,
                "next": _next(request, total, query.offset, query.limit),
            }
        )

    async def _search_publications(self, query: Any) -> tuple[list[dict[str, Any]], int]:
        try:
            parsed = self._search.parse_query(query.q)
        except ValueError as exc:
            raise _Invalid(400, getattr(exc, "field", "q"), str(exc)) from None
        texts = await asyncio.to_thread(self.store.search_texts, topic=query.topic, kind=query.kind)
        scored = [(s, year, pid) for pid, year, text in texts if (s := self._search.score(parsed, text)) is not None]
        scored.sort(key=lambda hit: (-hit[0], -hit[1], -hit[2]))
        window = scored[query.offset : query.offset + query.limit]
        found: dict[int, Publication] = await asyncio.to_thread(self.store.publications, [pid for _, _, pid in window])
        hits = []
        for score, _, pid in window:
            if pid in found:
                publication = found[pid]
                spans = [s.to_dict() for s in self._search.snippet(parsed, publication.abstract)]
                hits.append({**publication.to_json(), "score": score, "snippet": spans})
        return hits, len(scored)

    async def get_publication(self, request: Request) -> Response:
        found = await asyncio.to_thread(self.store.publication, _publication_id(request))
        if found is None:
            raise NotFound("no such publication")
        return _ok({"publication": found.to_json()})

    async def pdf(self, request: Request) -> Response:
        found = await asyncio.to_thread(self.store.publication, _publication_id(request))
        if found is None:
            raise NotFound("no such publication")
        if found.pdf_name is None:
            return json_error(409, "this publication has no PDF yet")
        headers = {
            **FILE_HEADERS,
            "Content-Disposition": f'attachment; filename="publication-{found.id}.pdf"',
            "Cache-Control": "public, max-age=300",
        }
        return FileResponse(self.files.path(found.pdf_name), media_type="application/pdf", headers=headers)

    # ---- pages -------------------------------------------------------------------------------------------------

    def _page(self, name: str, status: int = 200) -> Response:
        assert self._pages is not None
        return FileResponse(self._pages / name, status_code=status)

    async def news_page(self, request: Request) -> Response:
        return self._page("news.html")

    async def article_page(self, request: Request) -> Response:
        slug = request.path_params.get("slug", "")
        if not SLUG.fullmatch(slug) or await asyncio.to_thread(self.store.get_news, slug) is None:
            return self._page("404.html", 404)
        return self._page("news-article.html")

    async def publications_page(self, request: Request) -> Response:
        return self._page("publications.html")

    async def publication_page(self, request: Request) -> Response:
        try:
            publication_id = _publication_id(request)
        except NotFound:
            return self._page("404.html", 404)
        if await asyncio.to_thread(self.store.publication, publication_id) is None:
            return self._page("404.html", 404)
        return self._page("publication.html")

    def routes(self) -> list[Route]:
        g, p = self.guarded, self.public
        pages = [
            Route("/news", self.news_page, methods=["GET"]),
            Route("/news/{slug}", self.article_page, methods=["GET"]),
            Route("/publications", self.publications_page, methods=["GET"]),
            Route("/publications/{publication_id}", self.publication_page, methods=["GET"]),
        ]
        return [
            *(pages if self._pages is not None else []),
            Route("/news.atom", self.atom, methods=["GET"]),
            Route("/media/news/{file}", self.media, methods=["GET"]),
            Route("/api/news", p(self.list_news), methods=["GET"]),
            Route("/api/news", g("news.write", self.create_news), methods=["POST"]),
            Route("/api/news/{slug}", p(self.get_news), methods=["GET"]),
            Route("/api/news/{slug}", g("news.write", self.update_news), methods=["PATCH"]),
            Route("/api/news/{slug}/publish", g("news.publish", self.publish_news), methods=["POST"]),
            Route("/api/news/{slug}/unpublish", g("news.publish", self.unpublish_news), methods=["POST"]),
            Route("/api/news/{slug}/images", g("news.write", self.upload_image), methods=["POST"]),
            Route("/api/staff/news", g("news.write", self.staff_news), methods=["GET"]),
            Route("/api/publications", p(self.list_publications), methods=["GET"]),
            Route("/api/publications", g("document.write", self.create_publication), methods=["POST"]),
            Route("/api/publications/{publication_id}", p(self.get_publication), methods=["GET"]),
            Route("/api/publications/{publication_id}/pdf", p(self.pdf), methods=["GET"]),
            # Not PUT …/pdf: that path is documented for GET, and the upload's raw body is no JSON the document has.
            Route("/api/publications/{publication_id}/file", g("document.write", self.upload_pdf), methods=["PUT"]),
        ]
