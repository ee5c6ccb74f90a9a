"""News: Markdown renders to HTML that can run nothing, links are marked, Thai titles make readable slugs."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from desk import news

pytestmark = pytest.mark.fast

XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](java\tscript:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![x](javascript:alert(1))",
    '![x](https://example.org/a.png "x\\" onerror=\\"alert(1)")',
    '[x](https://example.org/" onmouseover="alert(1))',
    "<iframe src=https://evil.example></iframe>",
    "<svg onload=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "<style>body{display:none}</style>",
    "<!-- <script>alert(1)</script> -->",
    "<form action=https://evil.example><input name=pw></form>",
    "<object data=evil.swf></object><embed src=evil.swf>",
    "<base href=https://evil.example/>",
    "<meta http-equiv=refresh content=0;url=https://evil.example>",
    "```html\n<script>alert(1)</script>\n```",
    "`<script>alert(1)</script>`",
    "> <img src=x onerror=alert(1)>",
    "| a |\n|---|\n| <script>alert(1)</script> |",
    "<scr<script>ipt>alert(1)</script>",
    "[a]: javascript:alert(1)\n\n[link][a]",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
]


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_comment(self, data: str) -> None:
        self.tags.append(("!--", {}))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Collect()
    parser.feed(html)
    parser.close()
    return parser.tags


def assert_inert(html: str) -> None:
    for tag, attrs in elements(html):
        assert tag in news.ALLOWED_TAGS, (tag, html)
        for name, value in attrs.items():
            assert name in news.ALLOWED_ATTRIBUTES.get(tag, set()) | {"rel"}, (tag, name, html)
            if name in ("href", "src"):
                scheme = urlsplit((value or "").strip()).scheme.lower()
                assert scheme in ("", "http", "https", "mailto"), (value, html)
        if tag == "a":
            assert attrs.get("rel") == "noopener noreferrer nofollow"


@pytest.mark.parametrize("payload", XSS)
def test_xss_payloads_in_markdown_come_out_inert(payload: str) -> None:
    """Every element is on the allow-list, every attribute allowed for its tag, every URL http(s), mailto or
    relative: nothing can run, load a frame, submit a form or restyle the page."""
    assert_inert(news.render_markdown(payload))


@pytest.mark.parametrize("payload", XSS)
def test_the_sanitiser_alone_holds_for_raw_html(payload: str) -> None:
    """The second lock by itself: nh3 applied to the payload as raw HTML leaves only allowed markup."""
    assert_inert(news.sanitize(payload))


def test_markup_typed_in_markdown_is_shown_as_text() -> None:
    """Raw HTML is off: ``<b>`` in the source is shown as the characters, not made bold."""
    assert news.render_markdown("a <b>bold</b> claim") == "<p>a &lt;b&gt;bold&lt;/b&gt; claim</p>\n"


def test_markdown_features_editors_need_survive() -> None:
    """Emphasis, lists, quotes, code, tables, images and links render; headings move below the page's h1."""
    html = news.render_markdown(
        "# หัวข้อ\n\n**ตัวหนา** _เอียง_ ~~ลบ~~\n\n- หนึ่ง\n- สอง\n\n> อ้าง\n\n`code`\n\n"
        "| ก | ข |\n|---|---|\n| 1 | 2 |\n\n![รูป](/media/news/1.webp) [สภา](https://www.senate.go.th)"
    )
    tags = [t for t, _ in elements(html)]
    for tag in ("h2", "strong", "em", "s", "ul", "li", "blockquote", "code", "table", "td", "img", "a"):
        assert tag in tags, tag
    assert "h1" not in tags
    assert '<img src="/media/news/1.webp" alt="รูป">' in html
    assert '<a href="https://www.senate.go.th" rel="noopener noreferrer nofollow">สภา</a>' in html


def test_over_long_bodies_are_refused() -> None:
    """A body over BODY_MAX characters is refused before rendering."""
    with pytest.raises(ValueError):
        news.render_markdown("x" * (news.BODY_MAX + 1))


def test_plain_text_summary_has_no_markup_and_is_cut_at_a_word() -> None:
    """The Atom/list summary is the text only, entities decoded, cut at a word boundary with an ellipsis."""
    assert news.plain_text("**ข่าว** <b>x</b> & [ลิงก์](https://a.example)") == "ข่าว <b>x</b> & ลิงก์"
    assert news.plain_text("word " * 100, max_len=12) == "word word…"


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("ประชุมวุฒิสภา ครั้งที่ ๑๒", "ประชุม-วุฒิสภา-ครั้ง-ที่-12"),
        ("Senate Passes Budget Bill!", "senate-passes-budget-bill"),
        ("<script>alert(1)</script>", "script-alert-1-script"),
        ("!!!", "news"),
        ("", "news"),
    ],
)
def test_slugs_keep_thai_words_and_drop_everything_else(title: str, slug: str) -> None:
    """Thai words split by the tokenizer and joined with '-', ASCII lowercased, Thai digits as 0-9, punctuation
    gone; an empty result falls back to ``news``."""
    assert news.slugify(title) == slug


def test_long_slugs_are_cut_before_a_thai_cluster_not_inside_it() -> None:
    """A slug is at most SLUG_MAX characters and never ends in a dangling vowel sign or tone mark."""
    slug = news.slugify("พระราชบัญญัติงบประมาณรายจ่ายประจำปีงบประมาณ " * 5)
    assert 0 < len(slug) <= news.SLUG_MAX
    assert not slug.endswith("-")
    assert news.slugify(slug) == slug


def test_unique_slug_numbers_collisions() -> None:
    """A taken slug gets -2, -3, … ; the first free one wins."""
    taken = {"ข่าว", "ข่าว-2"}
    assert news.unique_slug("ข่าว", taken.__contains__) == "ข่าว-3"
    assert news.unique_slug("อื่น", taken.__contains__) == "อื่น"


def test_drafts_publish_once_and_keep_their_slug_when_edited() -> None:
    """A draft is rendered on save; publishing stamps the first time only; editing re-renders, slug unchanged."""
    article = news.draft("  ข่าว  ใหม่ ", "**เนื้อหา**", "khao")
    assert article.status == "draft" and article.title == "ข่าว ใหม่" and "<strong>" in article.html
    first = news.publish(article, "2025-01-01T00:00:00.000Z")
    again = news.publish(news.unpublish(first), "2025-02-01T00:00:00.000Z")
    assert again.status == "published" and again.published_at == "2025-01-01T00:00:00.000Z"
    edited = news.edit(again, body="<script>x</script>")
    assert edited.slug == "khao" and "<script>" not in edited.html
    for title, body in (("", "x"), ("x" * (news.TITLE_MAX + 1), "x"), ("ok", "   ")):
        with pytest.raises(ValueError):
            news.draft(title, body, "s")
