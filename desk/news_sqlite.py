"""News and publications in SQLite: articles with their rendered HTML, uploaded images, and the library of papers.

Tables (own connection, WAL; may share the archive's file, like the other desk stores):

* ``desk_news`` — one row per article: the slug (unique, never changed once made), the plain-text title, the
  Markdown source beside its rendered, sanitised HTML and plain-text summary (rendered when written, so pages
  never render at request time), topics (a JSON list), ``draft`` or ``published``, the first ``published_at``
  (kept when an article is unpublished and published again: its place in the feed does not move), the author.
* ``desk_news_images`` — images uploaded for an article (``desk.attachments`` checks, files in an
  ``AttachmentStore``); served publicly from ``/media/news/<name>``.
* ``desk_publications`` — papers and reports: metadata, topics, the PDF's name in the file store, and
  ``search_text``: title, authors, topics and abstract in the archive's search form (the caller folds it; desk may
  not import ``archive``), scanned and verified by the API's search.

Every staff change writes its audit entry (``desk/audit.py``) in the change's own transaction. Blocking calls: the
server runs them off the event loop. The HTML handed in must come from ``desk.news.render_markdown``; this
store keeps, not checks, it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from desk import audit, news, sqlite
from desk.accounts import Principal
from desk.accounts_sqlite import NotFound
from desk.attachments import TYPES, AttachmentMeta

COMPONENT = "news"
MAX_PAGE = 100
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE desk_news (
        id INTEGER PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        body_md TEXT NOT NULL,
        html TEXT NOT NULL,
        summary TEXT NOT NULL,
        topics TEXT NOT NULL DEFAULT '[]',
        status TEXT NOT NULL CHECK (status IN ('draft', 'published')),
        published_at TEXT,
        author TEXT NOT NULL,
        author_id INTEGER,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX desk_news_published ON desk_news (published_at, id) WHERE status = 'published';
    CREATE TABLE desk_news_images (
        name TEXT PRIMARY KEY,
        news_id INTEGER NOT NULL REFERENCES desk_news (id),
        content_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        width INTEGER,
        height INTEGER,
        sha256 TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX desk_news_images_news ON desk_news_images (news_id);
    CREATE TABLE desk_publications (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        authors TEXT NOT NULL,
        year INTEGER NOT NULL,
        abstract TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('paper', 'report', 'brief', 'other')),
        topics TEXT NOT NULL DEFAULT '[]',
        search_text TEXT NOT NULL,
        pdf_name TEXT,
        pdf_size INTEGER,
        pdf_sha256 TEXT,
        author TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
)


@dataclass(frozen=True, slots=True)
class Image:
    name: str
    news_id: int
    content_type: str
    size: int
    width: int | None
    height: int | None

    @property
    def url(self) -> str:
        return f"{news.IMAGE_PREFIX}{self.name}.{TYPES[self.content_type][1]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "content_type": self.content_type,
            "size": self.size,
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True, slots=True)
class NewsItem:
    id: int
    slug: str
    title: str
    body_md: str
    html: str
    summary: str
    topics: tuple[str, ...]
    status: str
    published_at: str | None
    created_at: str
    updated_at: str
    author: str
    images: tuple[Image, ...] = ()

    def to_json(self, *, staff: bool = False) -> dict[str, Any]:
        """The article as the API gives it; the author's username only to staff."""
        return {
            "id": self.id,
            "slug": self.slug,
            "title": self.title,
            "body_md": self.body_md,
            "html": self.html,
            "summary": self.summary,
            "topics": list(self.topics),
            "status": self.status,
            "published_at": self.published_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "author": self.author if staff else None,
            "url": f"/news/{self.slug}",
            "images": [i.to_json() for i in self.images],
        }

    def audit_view(self) -> dict[str, Any]:
        return {"slug": self.slug, "title": self.title, "status": self.status, "topics": list(self.topics)}


@dataclass(frozen=True, slots=True)
class Publication:
    id: int
    title: str
    authors: tuple[str, ...]
    year: int
    abstract: str
    kind: str
    topics: tuple[str, ...]
    pdf_name: str | None
    pdf_size: int | None
    pdf_sha256: str | None
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        pdf = None
        if self.pdf_name is not None:
            pdf = {"url": f"/api/publications/{self.id}/pdf", "size": self.pdf_size, "sha256": self.pdf_sha256}
        return {
            "id": self.id,
            "title": self.title,
            "authors": list(self.authors),
            "year": self.year,
            "abstract": self.abstract,
            "kind": self.kind,
            "topics": list(self.topics),
            "pdf": pdf,
            "url": f"/publications/{self.id}",
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def audit_view(self) -> dict[str, Any]:
        return {"title": self.title, "year": self.year, "kind": self.kind, "pdf_sha256": self.pdf_sha256}


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list, and how many there are in all."""

    items: list[Any]
    total: int


def _image(row: sqlite3.Row) -> Image:
    return Image(row["name"], row["news_id"], row["content_type"], row["size"], row["width"], row["height"])


def _item(conn: sqlite3.Connection, row: sqlite3.Row) -> NewsItem:
    images = conn.execute("SELECT * FROM desk_news_images WHERE news_id = ? ORDER BY rowid", (row["id"],))
    return NewsItem(
        id=row["id"],
        slug=row["slug"],
        title=row["title"],
        body_md=row["body_md"],
        html=row["html"],
        summary=row["summary"],
        topics=tuple(json.loads(row["topics"])),
        status=row["status"],
        published_at=row["published_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        author=row["author"],
        images=tuple(_image(r) for r in images),
    )


def _publication(row: sqlite3.Row) -> Publication:
    return Publication(
        id=row["id"],
        title=row["title"],
        authors=tuple(json.loads(row["authors"])),
        year=row["year"],
        abstract=row["abstract"],
        kind=row["kind"],
        topics=tuple(json.loads(row["topics"])),
        pdf_name=row["pdf_name"],
        pdf_size=row["pdf_size"],
        pdf_sha256=row["pdf_sha256"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _news_row(conn: sqlite3.Connection, slug: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM desk_news WHERE slug = ?", (slug,)).fetchone()
    if row is None:
        raise NotFound("no such news item")
    return row


def _dump(values: Sequence[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False)


class NewsStore:
    """Articles, their images and publications on one SQLite file (see the module docstring). Blocking calls."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._db = sqlite.open_store(path, COMPONENT, _MIGRATIONS)

    def close(self) -> None:
        self._db.close()

    # -- articles -----------------------------------------------------------------------------------------------

    def create_news(self, actor: Principal, *, title: str, body_md: str, topics: Sequence[str]) -> NewsItem:
        """A new draft under a free slug made from the title (``-2``, ``-3``, … when taken)."""
        html, summary = news.render_markdown(body_md), news.plain_text(body_md)
        base = news.slugify(title)
        now = self._clock()

        def work(conn: sqlite3.Connection) -> NewsItem:
            taken = lambda s: conn.execute("SELECT 1 FROM desk_news WHERE slug = ?", (s,)).fetchone() is not None  # noqa: E731
            slug = news.unique_slug(base, taken)
            cur = conn.execute(
                "INSERT INTO desk_news (slug, title, body_md, html, summary, topics, status, author, author_id,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'draft', ?, ?, ?, ?)",
                (slug, title, body_md, html, summary, _dump(topics), actor.username, actor.account_id,
                 audit.iso(now), audit.iso(now)),
            )  # fmt: skip
            item = _item(conn, _news_row(conn, slug))
            audit.append(
                conn, at_s=now, actor=actor.username, action="news.create", target=f"news:{cur.lastrowid}",
                after=item.audit_view(),
            )  # fmt: skip
            return item

        return self._db.transaction(work)

    def update_news(
        self,
        actor: Principal,
        slug: str,
        *,
        title: str | None = None,
        body_md: str | None = None,
        topics: Sequence[str] | None = None,
    ) -> NewsItem:
        """New title, body (re-rendered) or topics; the slug stays."""
        html = summary = None
        if body_md is not None:
            html, summary = news.render_markdown(body_md), news.plain_text(body_md)
        now = self._clock()

        def work(conn: sqlite3.Connection) -> NewsItem:
            before = _item(conn, _news_row(conn, slug))
            after = replace(
                before,
                title=before.title if title is None else title,
                body_md=before.body_md if body_md is None else body_md,
                html=before.html if html is None else html,
                summary=before.summary if summary is None else summary,
                topics=before.topics if topics is None else tuple(topics),
            )
            conn.execute(
                "UPDATE desk_news SET title = ?, body_md = ?, html = ?, summary = ?, topics = ?, updated_at = ?"
                " WHERE id = ?",
                (after.title, after.body_md, after.html, after.summary, _dump(after.topics), audit.iso(now), before.id),
            )
            audit.append(
                conn, at_s=now, actor=actor.username, action="news.update", target=f"news:{before.id}",
                before=before.audit_view(), after=after.audit_view(),
            )  # fmt: skip
            return _item(conn, _news_row(conn, slug))

        return self._db.transaction(work)

    def set_published(self, actor: Principal, slug: str, published: bool) -> tuple[NewsItem, bool]:
        """Publish or unpublish; returns the article and whether its status changed (no change, no audit entry).

        The first publication time is kept across unpublishing, so a correction does not move it up the feed."""
        now = self._clock()

        def work(conn: sqlite3.Connection) -> tuple[NewsItem, bool]:
            before = _item(conn, _news_row(conn, slug))
            status = "published" if published else "draft"
            if before.status == status:
                return before, False
            conn.execute(
                "UPDATE desk_news SET status = ?, published_at = COALESCE(published_at, ?), updated_at = ?"
                " WHERE id = ?",
                (status, audit.iso(now), audit.iso(now), before.id),
            )
            after = _item(conn, _news_row(conn, slug))
            action = "news.publish" if published else "news.unpublish"
            audit.append(
                conn, at_s=now, actor=actor.username, action=action, target=f"news:{before.id}",
                before=before.audit_view(), after=after.audit_view(),
            )  # fmt: skip
            return after, True

        return self._db.transaction(work)

    def get_news(self, slug: str, *, drafts: bool = False) -> NewsItem | None:
        """The article, or None when there is none (or it is a draft and ``drafts`` is False)."""
        with self._db as conn:
            row = conn.execute("SELECT * FROM desk_news WHERE slug = ?", (slug,)).fetchone()
            if row is None or (row["status"] != "published" and not drafts):
                return None
            return _item(conn, row)

    def list_news(
        self, *, topic: str | None = None, status: str | None = "published", limit: int = 10, offset: int = 0
    ) -> Page:
        """Published first by publication time, newest first (drafts, for staff, by last change)."""
        limit = max(1, min(limit, MAX_PAGE))
        where = (
            "(? IS NULL OR status = ?)"
            " AND (? IS NULL OR EXISTS (SELECT 1 FROM json_each(desk_news.topics) WHERE json_each.value = ?))"
        )
        args = (status, status, topic, topic)
        with self._db as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM desk_news WHERE {where}", args).fetchone()[0]
            rows = conn.execute(
                f"SELECT * FROM desk_news WHERE {where}"
                " ORDER BY COALESCE(published_at, updated_at) DESC, id DESC LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
            return Page([_item(conn, r) for r in rows], int(total))

    def add_image(self, actor: Principal, slug: str, meta: AttachmentMeta) -> Image:
        """Record an uploaded image (already checked and stored) as one of the article's."""
        now = self._clock()

        def work(conn: sqlite3.Connection) -> Image:
            item = _news_row(conn, slug)
            conn.execute(
                "INSERT INTO desk_news_images (name, news_id, content_type, size, width, height, sha256, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (meta.name, item["id"], meta.content_type, meta.size, meta.width, meta.height, meta.sha256,
                 audit.iso(now)),
            )  # fmt: skip
            image = Image(meta.name, item["id"], meta.content_type, meta.size, meta.width, meta.height)
            audit.append(
                conn, at_s=now, actor=actor.username, action="news.image", target=f"news:{item['id']}",
                after={"url": image.url, "sha256": meta.sha256, "size": meta.size},
            )  # fmt: skip
            return image

        return self._db.transaction(work)

    def image(self, name: str) -> Image | None:
        with self._db as conn:
            row = conn.execute("SELECT * FROM desk_news_images WHERE name = ?", (name,)).fetchone()
            return None if row is None else _image(row)

    # -- publications -------------------------------------------------------------------------------------------

    def create_publication(
        self,
        actor: Principal,
        *,
        title: str,
        authors: Sequence[str],
        year: int,
        abstract: str,
        kind: str,
        topics: Sequence[str],
        search_text: str,
    ) -> Publication:
        now = self._clock()

        def work(conn: sqlite3.Connection) -> Publication:
            cur = conn.execute(
                "INSERT INTO desk_publications (title, authors, year, abstract, kind, topics, search_text, author,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (title, _dump(authors), year, abstract, kind, _dump(topics), search_text, actor.username,
                 audit.iso(now), audit.iso(now)),
            )  # fmt: skip
            row = conn.execute("SELECT * FROM desk_publications WHERE id = ?", (cur.lastrowid,)).fetchone()
            created = _publication(row)
            audit.append(
                conn, at_s=now, actor=actor.username, action="publication.create",
                target=f"publication:{created.id}", after=created.audit_view(),
            )  # fmt: skip
            return created

        return self._db.transaction(work)

    def set_pdf(self, actor: Principal, publication_id: int, meta: AttachmentMeta) -> tuple[Publication, str | None]:
        """Attach ``meta`` (a checked, stored PDF) as the publication's file; returns the publication and the name
        of the file it replaced (for the caller to delete), if any."""
        now = self._clock()

        def work(conn: sqlite3.Connection) -> tuple[Publication, str | None]:
            row = conn.execute("SELECT * FROM desk_publications WHERE id = ?", (publication_id,)).fetchone()
            if row is None:
                raise NotFound("no such publication")
            before = _publication(row)
            conn.execute(
                "UPDATE desk_publications SET pdf_name = ?, pdf_size = ?, pdf_sha256 = ?, updated_at = ? WHERE id = ?",
                (meta.name, meta.size, meta.sha256, audit.iso(now), publication_id),
            )
            after = _publication(
                conn.execute("SELECT * FROM desk_publications WHERE id = ?", (publication_id,)).fetchone()
            )
            audit.append(
                conn, at_s=now, actor=actor.username, action="publication.pdf", target=f"publication:{publication_id}",
                before=before.audit_view(), after=after.audit_view(),
            )  # fmt: skip
            return after, before.pdf_name

        return self._db.transaction(work)

    def publication(self, publication_id: int) -> Publication | None:
        with self._db as conn:
            row = conn.execute("SELECT * FROM desk_publications WHERE id = ?", (publication_id,)).fetchone()
            return None if row is None else _publication(row)

    def publications(self, ids: Sequence[int]) -> dict[int, Publication]:
        with self._db as conn:
            marks = ",".join("?" * len(ids))
            rows = conn.execute(f"SELECT * FROM desk_publications WHERE id IN ({marks})", tuple(ids)).fetchall()
            return {r["id"]: _publication(r) for r in rows}

    _FILTER = (
        "(? IS NULL OR kind = ?)"
        " AND (? IS NULL OR EXISTS (SELECT 1 FROM json_each(desk_publications.topics) WHERE json_each.value = ?))"
    )

    def list_publications(
        self, *, topic: str | None = None, kind: str | None = None, limit: int = 20, offset: int = 0
    ) -> Page:
        """Newest year first, then newest added."""
        limit = max(1, min(limit, MAX_PAGE))
        args = (kind, kind, topic, topic)
        with self._db as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM desk_publications WHERE {self._FILTER}", args).fetchone()[0]
            rows = conn.execute(
                f"SELECT * FROM desk_publications WHERE {self._FILTER} ORDER BY year DESC, id DESC LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
            return Page([_publication(r) for r in rows], int(total))

    def search_texts(self, *, topic: str | None = None, kind: str | None = None) -> list[tuple[int, int, str]]:
        """(id, year, search_text) of every publication the filters allow, for the API's search to verify."""
        with self._db as conn:
            rows = conn.execute(
                f"SELECT id, year, search_text FROM desk_publications WHERE {self._FILTER}", (kind, kind, topic, topic)
            ).fetchall()
            return [(r["id"], r["year"], r["search_text"]) for r in rows]
