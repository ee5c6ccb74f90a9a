"""News of the Senate's work, sans-I/O: Markdown to safe HTML, slugs for Thai titles, drafts and publishing.

Rendering is two locks: markdown-it-py renders CommonMark (plus tables and strikethrough) with raw HTML off, so
``<script>`` in the source comes out as text, and its link check drops ``javascript:``/``vbscript:``/``data:``
URLs; then nh3 (ammonia) cleans the result against an allow-list of tags and attributes, with only http, https
and mailto URLs (relative ones allowed: images an editor uploaded), every link marked
``rel="noopener noreferrer nofollow"``, and no comments. Whatever the first stage lets through, the second is
the one that decides. Headings move down a level (``#`` → ``<h2>``): the page's one ``<h1>`` is the title.

Titles are plain text (the page sets them with ``textContent`` / escapes them in templates); only the body is
Markdown.

Wiring (to do): a news store (``desk_news`` table: slug unique, title, body_md, html, status, published_at,
updated_at) keeps ``render_markdown(body)`` beside the source, so pages never render at request time; editors'
``POST /api/news`` and ``PATCH /api/news/{slug}`` (permissions ``news.write``, ``news.publish``) call
``validate_article`` and ``unique_slug``; ``publish`` also publishes on the ``news`` channel and feeds the Atom
feed (``plain_text`` for the summary); ``/news`` and ``/news/{slug}`` show published articles only, each page
with its JSON twin.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore

from common.thai import thai_digits_to_arabic, words
from desk.text import clean_text

TITLE_MAX = 200
BODY_MAX = 50_000
SLUG_MAX = 80
STATUSES = ("draft", "published")
ALLOWED_TAGS = frozenset(
    {
        "p", "br", "hr", "h2", "h3", "h4", "h5", "h6", "strong", "em", "s", "del", "code", "pre", "blockquote",
        "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Images come only from the site's own media route (what editors upload): the pages' CSP allows no other image
# source, and a third-party image would tell its host who reads the article.
IMAGE_PREFIX = "/media/news/"
LINK_REL = "noopener noreferrer nofollow"


def _demote_headings(state: StateCore) -> None:
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + 1, 6)}"


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.core.ruler.push("demote_headings", _demote_headings)
    return md


_MD = _markdown()


def sanitize(fragment: str) -> str:
    """The allow-list cleaner alone (exposed for tests and for HTML from anywhere else)."""
    return nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel=LINK_REL,
        strip_comments=True,
        attribute_filter=_own_images,
    )


def _own_images(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src" and not (value.startswith(IMAGE_PREFIX) and ".." not in value):
        return None
    return value


def render_markdown(source: str) -> str:
    """Safe HTML for an article body; raises ``ValueError`` over ``BODY_MAX`` characters."""
    if len(source) > BODY_MAX:
        raise ValueError(f"an article is at most {BODY_MAX} characters")
    return sanitize(_MD.render(source))


def plain_text(source: str, max_len: int = 280) -> str:
    """The body as plain text (for summaries and the Atom feed), cut at a word boundary to ``max_len``."""
    text = " ".join(html.unescape(nh3.clean(render_markdown(source), tags=set())).split())
    if len(text) <= max_len:
        return text
    cut = text[:max_len].rsplit(" ", 1)[0] if " " in text[:max_len] else text[:max_len]
    return cut.rstrip() + "…"


def _slug_char(ch: str) -> bool:
    if ch.isascii():
        return ch.isalnum()
    # Thai consonants, vowels, tone marks (category Mn: they belong to the letter before them) and letters.
    return "\u0e01" <= ch <= "\u0e5b" and unicodedata.category(ch)[0] in "LMN"


def slugify(title: str) -> str:
    """A URL slug that keeps Thai: words (Thai has no spaces; PyThaiNLP finds them) joined by ``-``, ASCII
    lowercased, Thai digits as 0-9, everything else dropped; at most ``SLUG_MAX`` characters, never cut inside
    a Thai cluster; ``news`` when nothing is left."""
    text = unicodedata.normalize("NFC", thai_digits_to_arabic(title)).lower()
    parts = ["".join(ch if _slug_char(ch) else " " for ch in word).split() for word in words(text)]
    slug = "-".join(piece for part in parts for piece in part)
    if len(slug) > SLUG_MAX:
        cut = SLUG_MAX
        # A tone mark or vowel sign belongs to the consonant before it: cut before the whole cluster.
        while cut > 0 and unicodedata.category(slug[cut]) == "Mn":
            cut -= 1
        slug = slug[:cut].rstrip("-")
    return slug or "news"


def unique_slug(base: str, taken: Callable[[str], bool], *, limit: int = 1000) -> str:
    """``base``, else ``base-2``, ``base-3``, … : the first that ``taken`` says is free."""
    if not taken(base):
        return base
    for n in range(2, limit + 1):
        candidate = f"{base[: SLUG_MAX - len(str(n)) - 1]}-{n}"
        if not taken(candidate):
            return candidate
    raise ValueError(f"no free slug for {base!r}")


@dataclass(frozen=True, slots=True)
class Article:
    slug: str
    title: str
    body_md: str
    html: str
    status: Literal["draft", "published"]
    published_at: str | None = None


def validate_article(title: str, body: str) -> tuple[str, str]:
    """``(title, body)`` cleaned, or ``ValueError`` naming the field: a one-line title, a non-empty body."""
    try:
        clean_title = clean_text(title, max_len=TITLE_MAX, multiline=False)
    except ValueError as exc:
        raise ValueError(f"title: {exc}") from exc
    try:
        clean_body = clean_text(body, max_len=BODY_MAX, multiline=True)
    except ValueError as exc:
        raise ValueError(f"body: {exc}") from exc
    return clean_title, clean_body


def draft(title: str, body: str, slug: str) -> Article:
    clean_title, clean_body = validate_article(title, body)
    return Article(slug=slug, title=clean_title, body_md=clean_body, html=render_markdown(clean_body), status="draft")


def edit(article: Article, *, title: str | None = None, body: str | None = None) -> Article:
    """New title/body, re-rendered; the slug stays (published URLs are stable)."""
    clean_title, clean_body = validate_article(
        article.title if title is None else title, article.body_md if body is None else body
    )
    return replace(article, title=clean_title, body_md=clean_body, html=render_markdown(clean_body))


def publish(article: Article, now_iso: str) -> Article:
    """Published, keeping the first publication time when republished."""
    return replace(article, status="published", published_at=article.published_at or now_iso)


def unpublish(article: Article) -> Article:
    return replace(article, status="draft")
