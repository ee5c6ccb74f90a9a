"""The news and publications API's shapes, defined once: ``desk/news_api.py`` validates with them,
``archive/schemas.py`` documents them (both read them, neither may import the other, so they live in ``common``).

Strict pydantic models, as in ``archive/schemas.py``: what ``/openapi.json`` calls valid is what the server
accepts. One-line text (titles, topics, author names) must hold a character ``common.thai.normalize`` keeps and
is stored normalised; Markdown bodies and abstracts keep their lines (``clean_multiline``) and must hold a visible
character, so a body the document calls valid never comes out empty. Each ``description`` completes the sentence
"``<field>`` must be …".

The publications search's ``q`` follows the archive's search grammar (``archive.search.QUERY_REGEX``), which
``common`` cannot import: ``publication_query(query_regex)`` builds the query model around it, and both sides
call it with the same regex.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from common.thai import normalize

# The same set as archive.schemas.BLANK_CHARS (tests/test_news_api.py checks): what normalize() strips away.
BLANK_CHARS = "\\x00-\\x20\\x7f\\x85\\xa0\\u1680\\u2000-\\u200d\\u2028\\u2029\\u202f\\u205f\\u2060\\u3000\\ufeff"
NOT_BLANK = f"[^{BLANK_CHARS}]"
# A multi-line text keeps C1 controls out as well: clean_multiline drops them, and one must remain.
VISIBLE = f"[^{BLANK_CHARS}\\x80-\\x9f]"
TITLE_MAX = 200
TOPIC_MAX = 50
TOPICS_MAX = 10
BODY_MAX = 20_000
ABSTRACT_MAX = 5_000
AUTHOR_MAX = 120
AUTHORS_MAX = 20
PAGE_MAX = 50
OFFSET_MAX = 10_000
SEQ_MAX = 2**63 - 1
YEAR_MIN, YEAR_MAX = 1900, 2100
KINDS = ("paper", "report", "brief", "other")
Kind = Literal["paper", "report", "brief", "other"]
# A slug as desk.news.slugify makes it: ASCII lower-case letters and digits, Thai letters and marks, hyphens.
SLUG_REGEX = "^[0-9a-z\\u0e01-\\u0e5b]([0-9a-z\\u0e01-\\u0e5b-]{0,79})$"

_STRICT = ConfigDict(strict=True, extra="forbid", regex_engine="python-re")
_QUERY = ConfigDict(strict=True, regex_engine="python-re")


def clean_multiline(value: str) -> str:
    """A Markdown body or abstract as the editor meant it: NFC, ``\\n`` line ends, control characters other than
    newline and tab dropped, ends trimmed. Never empty for a value that matched ``VISIBLE``."""
    text = unicodedata.normalize("NFC", value.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs")).strip()


def _line(max_len: int) -> Any:
    return Field(max_length=max_len, pattern=NOT_BLANK, description=f"text of at most {max_len} characters, not blank")


def _whole(value: object) -> object:
    # JSON Schema counts 2025.0 as an integer, so the server does too; 2025.5 and true stay wrong (strict models).
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


Title = Annotated[str, _line(TITLE_MAX), AfterValidator(normalize)]
Topic = Annotated[str, _line(TOPIC_MAX), AfterValidator(normalize)]
Author = Annotated[str, _line(AUTHOR_MAX), AfterValidator(normalize)]
Topics = Annotated[
    list[Topic],
    Field(max_length=TOPICS_MAX, description=f"a list of at most {TOPICS_MAX} topics, each a short text"),
    AfterValidator(_dedupe),
]
Markdown = Annotated[
    str,
    Field(
        max_length=BODY_MAX,
        pattern=VISIBLE,
        description=f"Markdown of at most {BODY_MAX} characters, not blank (raw HTML is shown as text)",
    ),
    AfterValidator(clean_multiline),
]
Abstract = Annotated[
    str,
    Field(max_length=ABSTRACT_MAX, pattern=VISIBLE, description=f"text of at most {ABSTRACT_MAX} characters"),
    AfterValidator(clean_multiline),
]


# ---- requests ------------------------------------------------------------------------------------------------


class NewsCreate(BaseModel):
    model_config = _STRICT
    title: Title
    body: Markdown
    topics: Topics = []


class NewsPatch(BaseModel):
    """Any of a new title, body or topics; the slug stays (a published URL never changes)."""

    model_config = _STRICT
    title: Title | None = None
    body: Markdown | None = None
    topics: Topics | None = None


class PublicationCreate(BaseModel):
    model_config = _STRICT
    title: Title
    authors: list[Author] = Field(
        min_length=1, max_length=AUTHORS_MAX, description=f"a list of 1 to {AUTHORS_MAX} author names"
    )
    year: Annotated[
        int,
        Field(ge=YEAR_MIN, le=YEAR_MAX, description=f"a year (CE) from {YEAR_MIN} to {YEAR_MAX}"),
        BeforeValidator(_whole),
    ]
    abstract: Abstract
    kind: Kind = Field(description="one of paper, report, brief, other")
    topics: Topics = []


class NewsPath(BaseModel):
    model_config = _QUERY
    slug: str = Field(pattern=SLUG_REGEX, description="a news item's slug")


class PublicationPath(BaseModel):
    model_config = _QUERY
    publication_id: int = Field(ge=1, le=SEQ_MAX, description=f"a publication id, 1 to {SEQ_MAX}")


class NewsQuery(BaseModel):
    model_config = _QUERY
    topic: Topic | None = None
    limit: int = Field(10, ge=1, le=PAGE_MAX, description=f"an integer from 1 to {PAGE_MAX}")
    offset: int = Field(0, ge=0, le=OFFSET_MAX, description=f"an integer from 0 to {OFFSET_MAX}")


class StaffNewsQuery(NewsQuery):
    status: Literal["draft", "published"] | None = Field(None, description="one of draft, published")


@cache
def publication_query(query_regex: str, max_query_chars: int) -> type[BaseModel]:
    """The ``GET /api/publications`` query model, ``q`` written in the archive's search grammar."""
    description = (
        f'1 to {max_query_chars} characters: words and "quoted phrases" separated by spaces, each with a Thai'
        ' character, a Latin letter or a digit; -word or -"phrase" excludes'
    )
    return create_model(
        "PublicationQuery",
        __config__=_QUERY,
        q=(
            str | None,
            Field(None, min_length=1, max_length=max_query_chars, pattern=query_regex, description=description),
        ),
        topic=(Topic | None, None),
        kind=(Kind | None, Field(None, description="one of " + ", ".join(KINDS))),
        limit=(int, Field(20, ge=1, le=PAGE_MAX, description=f"an integer from 1 to {PAGE_MAX}")),
        offset=(int, Field(0, ge=0, le=OFFSET_MAX, description=f"an integer from 0 to {OFFSET_MAX}")),
    )


# ---- responses -----------------------------------------------------------------------------------------------


class _Ok(BaseModel):
    ok: Literal[True]


class ImageOut(BaseModel):
    name: str
    url: str = Field(description="the image's public address, /media/news/<name>")
    content_type: str
    size: int
    width: int | None
    height: int | None


class NewsItemOut(BaseModel):
    id: int
    slug: str
    title: str = Field(description="plain text: show it as text, never as HTML")
    body_md: str = Field(description="the Markdown source")
    html: str = Field(description="the body rendered and sanitised server-side: safe to insert as HTML")
    summary: str = Field(description="the body as plain text, cut at a word (for lists and feeds)")
    topics: list[str]
    status: Literal["draft", "published"]
    published_at: str | None
    created_at: str
    updated_at: str
    author: str | None = Field(description="the editor's username: for staff only, null in public answers")
    url: str = Field(description="the article's page, /news/<slug>")
    images: list[ImageOut]


class NewsList(_Ok):
    news: list[NewsItemOut]
    total: int
    next: str | None = Field(description="the URL of the next page, or null on the last")
    feed: str = Field(description="the Atom feed of published news")


class NewsOne(_Ok):
    item: NewsItemOut


class NewsPublished(_Ok):
    item: NewsItemOut
    event: dict[str, Any] | None = Field(description="the news.published event, or null when already published")


class ImageCreated(_Ok):
    image: ImageOut
    markdown: str = Field(description="Markdown that shows the image, to paste into the body")


class PdfOut(BaseModel):
    url: str
    size: int
    sha256: str


class SpanOut(BaseModel):
    text: str
    hit: bool


class PublicationOut(BaseModel):
    id: int
    title: str
    authors: list[str]
    year: int
    abstract: str = Field(description="plain text")
    kind: Kind
    topics: list[str]
    pdf: PdfOut | None
    url: str = Field(description="the publication's stable page, /publications/<id>")
    created_at: str
    updated_at: str


class PublicationHit(PublicationOut):
    score: int | None = Field(description="relevance to q (null without q)")
    snippet: list[SpanOut] | None = Field(description="the abstract around the first hit (null without q)")


class PublicationList(_Ok):
    q: str | None
    publications: list[PublicationHit]
    total: int
    next: str | None = Field(description="the URL of the next page, or null on the last")


class PublicationOne(_Ok):
    publication: PublicationOut
