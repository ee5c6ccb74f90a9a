"""News and publications over a real server: editors' role checks and audit, publishing on the `news` channel,
XSS that comes out inert, the Atom feed's stable ids, images and PDFs checked from their bytes, and the
publications search finding Thai words."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import argon2
import feedparser
import httpx
import pytest
from live_server import TOKEN, Running, serve, test_settings
from PIL import Image
from test_desk_news import assert_inert, elements

from archive import schemas as archive_schemas
from common import news_schemas
from desk import accounts as acc
from desk.accounts import Passwords
from desk.accounts_sqlite import AccountStore

BOOT = acc.bootstrap_principal()
ADMIN = {"Authorization": f"Bearer {TOKEN}"}  # the bootstrap admin of a fresh install: every role
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
XSS_MARKDOWN = (
    "ข่าว <script>window.__xss=1</script>\n\n<img src=x onerror=alert(1)>\n\n[คลิก](javascript:alert(1))\n\n"
    '![x](javascript:alert(1)) ![y](https://evil.example/pixel.png) <a href="javascript:alert(1)">a</a>\n\n'
    "<svg onload=alert(1)> <iframe src=https://evil.example></iframe>"
)
XSS_TEXT = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
XSS_TOPIC = '"><svg onload=alert(1)>'


def png(width: int = 8, height: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 200)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[AccountStore]:
    cheap = Passwords(argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    store = AccountStore(tmp_path / "sapha.db", passwords=cheap)
    yield store
    store.close()


@pytest.fixture
async def running(tmp_path: Path, accounts: AccountStore) -> AsyncIterator[Running]:
    async with serve(test_settings(tmp_path), accounts=accounts) as r:
        yield r


@pytest.fixture
async def client(running: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running.url, timeout=30) as c:
        yield c


def token(accounts: AccountStore, name: str, *roles: str) -> dict[str, str]:
    account = accounts.create_account(BOOT, name, "correct horse battery", roles)
    secret, _ = accounts.create_api_token(BOOT, account.id, "test")
    return {"Authorization": f"Bearer {secret}"}


async def draft(client: httpx.AsyncClient, headers: dict[str, str] = ADMIN, **fields: Any) -> dict[str, Any]:
    body = {"title": "วุฒิสภาเห็นชอบร่างงบประมาณ", "body": "ที่ประชุม**เห็นชอบ**", "topics": ["งบประมาณ"], **fields}
    r = await client.post("/api/news", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return dict(r.json()["item"])


async def published(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    item = await draft(client, **fields)
    r = await client.post(f"/api/news/{item['slug']}/publish", headers=ADMIN)
    assert r.status_code == 200, r.text
    return dict(r.json()["item"])


# ---- who may write ---------------------------------------------------------------------------------------------


async def test_editor_endpoints_refuse_the_anonymous_and_other_roles(client: httpx.AsyncClient, accounts: AccountStore):
    """Every editor endpoint answers 401 without credentials and 403 to an operator or a moderator; an editor's
    API token may write news but not publications' files without document.write (editors hold both)."""
    item = await draft(client)
    calls = [
        ("POST", "/api/news", {"json": {"title": "t", "body": "b"}}),
        ("PATCH", f"/api/news/{item['slug']}", {"json": {"title": "t"}}),
        ("POST", f"/api/news/{item['slug']}/publish", {}),
        ("POST", f"/api/news/{item['slug']}/unpublish", {}),
        ("POST", f"/api/news/{item['slug']}/images", {"content": png()}),
        ("GET", "/api/staff/news", {}),
        ("POST", "/api/publications", {"json": {}}),
        ("PUT", "/api/publications/1/file", {"content": PDF}),
    ]
    operator = token(accounts, "op-one", "operator")
    moderator = token(accounts, "mod-one", "moderator")
    for method, path, kwargs in calls:
        r = await client.request(method, path, **kwargs)
        assert r.status_code == 401, (method, path, r.text)
        assert r.json()["ok"] is False
        for headers in (operator, moderator):
            r = await client.request(method, path, headers=headers, **kwargs)
            assert r.status_code == 403, (method, path, r.text)
    editor = token(accounts, "ed-one", "editor")
    created = await draft(client, editor, title="ข่าวจากบรรณาธิการ")
    assert created["author"] == "ed-one" and created["status"] == "draft"


async def test_a_session_without_its_csrf_token_cannot_write(client: httpx.AsyncClient, accounts: AccountStore):
    """An editor signed in by cookie is refused (403) without X-CSRF-Token, and accepted with it."""
    accounts.create_account(BOOT, "ed-session", "correct horse battery", ["editor"])
    r = await client.post("/api/staff/login", json={"username": "ed-session", "password": "correct horse battery"})
    assert r.status_code == 200, r.text
    csrf = r.json()["csrf"]
    # The __Host- cookie is Secure, which httpx keeps off plain http: send it as a browser on loopback does.
    match = re.match(rf"{re.escape(acc.SESSION_COOKIE)}=([^;]+);", r.headers["set-cookie"])
    assert match is not None
    cookie = {"Cookie": f"{acc.SESSION_COOKIE}={match.group(1)}"}
    body = {"title": "ข่าวจากเซสชัน", "body": "เนื้อหา"}
    assert (await client.post("/api/news", json=body, headers=cookie)).status_code == 403
    r = await client.post("/api/news", json=body, headers={**cookie, "X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text


# ---- drafts, publishing, the bus and the audit log -------------------------------------------------------------


async def test_publishing_shows_the_article_announces_it_on_the_news_channel_and_is_audited(
    client: httpx.AsyncClient, running: Running
):
    """A draft is invisible to the public; publishing lists it, puts one news.published event on `news` (none when
    published again), unpublishing hides it again, and each change is in the audit log."""
    item = await draft(client)
    slug = item["slug"]
    assert slug == "วุฒิสภา-เห็นชอบ-ร่าง-งบประมาณ"
    assert (await client.get(f"/api/news/{slug}")).status_code == 404
    assert (await client.get("/api/news")).json()["news"] == []
    assert (await client.get(f"/news/{slug}")).status_code == 404

    r = await client.post(f"/api/news/{slug}/publish", headers=ADMIN)
    assert r.status_code == 200, r.text
    event = r.json()["event"]
    assert event["channel"] == "news" and event["type"] == "news.published"
    assert event["data"]["slug"] == slug and event["data"]["url"] == f"/news/{slug}"
    again = await client.post(f"/api/news/{slug}/publish", headers=ADMIN)
    assert again.json()["event"] is None
    history, _, _ = await running.app.state.hub.broker.history("news", 0, 10)
    assert [(e.type, e.data["slug"]) for e in history] == [("news.published", slug)]
    assert await running.app.state.hub.exists("news")

    listed = (await client.get("/api/news")).json()
    assert [n["slug"] for n in listed["news"]] == [slug] and listed["total"] == 1
    public = (await client.get(f"/api/news/{slug}")).json()["item"]
    assert public["html"] == "<p>ที่ประชุม<strong>เห็นชอบ</strong></p>\n"
    assert public["author"] is None  # staff usernames are not public
    assert (await client.get("/api/news", params={"topic": "งบประมาณ"})).json()["total"] == 1
    assert (await client.get("/api/news", params={"topic": "อื่น"})).json()["total"] == 0
    page = await client.get(f"/news/{slug}")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]

    await client.post(f"/api/news/{slug}/unpublish", headers=ADMIN)
    assert (await client.get(f"/api/news/{slug}")).status_code == 404
    audit = (await client.get("/api/staff/audit", headers=ADMIN)).json()["entries"]
    actions = [e["action"] for e in audit if e["target"] == f"news:{item['id']}"]
    assert actions == ["news.unpublish", "news.publish", "news.create"]


async def test_editing_keeps_the_slug_and_rerenders(client: httpx.AsyncClient):
    """A new title and body re-render the article under the same slug; a taken slug gets -2."""
    first = await draft(client)
    second = await draft(client)
    assert second["slug"] == f"{first['slug']}-2"
    r = await client.patch(f"/api/news/{first['slug']}", json={"title": "ชื่อใหม่", "body": "# หัวข้อ"}, headers=ADMIN)
    assert r.status_code == 200, r.text
    edited = r.json()["item"]
    assert (edited["slug"], edited["title"], edited["html"]) == (first["slug"], "ชื่อใหม่", "<h2>หัวข้อ</h2>\n")


async def test_editors_get_a_drafts_rendered_preview_and_no_one_else_gets_the_draft(
    client: httpx.AsyncClient, accounts: AccountStore
):
    """The console's preview is a draft's `html`, rendered and sanitised by the server: an editor gets it in the
    staff list and from /api/news/{slug}; without credentials, with a made-up token or a moderator's, the draft is
    a 404 as if absent, and neither the public list nor the feed shows it."""
    item = await draft(client, title="ร่างข่าวตัวอย่าง", body="# หัวข้อจาก Markdown\n\n<script>window.__xss=1</script>")
    expected = "<h2>หัวข้อจาก Markdown</h2>\n<p>&lt;script&gt;window.__xss=1&lt;/script&gt;</p>\n"
    assert item["html"] == expected and item["status"] == "draft"
    editor = token(accounts, "ed-preview", "editor")
    listed = await client.get("/api/staff/news", params={"status": "draft"}, headers=editor)
    assert listed.status_code == 200, listed.text
    assert [(n["slug"], n["html"]) for n in listed.json()["news"]] == [(item["slug"], expected)]
    mine = await client.get(f"/api/news/{item['slug']}", headers=editor)
    assert mine.status_code == 200, mine.text
    assert mine.json()["item"]["html"] == expected and mine.json()["item"]["status"] == "draft"

    moderator = token(accounts, "mod-preview", "moderator")
    for headers in ({}, {"Authorization": "Bearer made-up"}, moderator):
        r = await client.get(f"/api/news/{item['slug']}", headers=headers)
        assert r.status_code == 404, (headers, r.text)
        assert "หัวข้อจาก Markdown" not in r.text
    assert (await client.get("/api/staff/news")).status_code == 401
    assert (await client.get("/api/news")).json()["news"] == []
    assert "ร่างข่าวตัวอย่าง" not in (await client.get("/news.atom")).text
    assert (await client.get(f"/news/{item['slug']}")).status_code == 404


# ---- XSS -------------------------------------------------------------------------------------------------------


async def test_xss_in_markdown_title_and_topics_comes_out_inert(client: httpx.AsyncClient):
    """Script, event handlers, javascript: URLs and foreign images in the Markdown are gone from the HTML; a
    title or topic of markup is kept as the characters (plain text), and the feed escapes it."""
    item = await published(client, title=XSS_TEXT, body=XSS_MARKDOWN, topics=[XSS_TOPIC])
    html = item["html"]
    assert_inert(html)  # only allowed elements and attributes, no script URLs (tests/test_desk_news.py)
    assert [a.get("src") for tag, a in elements(html) if tag == "img"] == [None]  # the foreign image lost its src
    assert "&lt;script&gt;" in html  # shown as text
    assert item["title"] == XSS_TEXT and item["topics"] == [XSS_TOPIC]
    feed = await client.get("/news.atom")
    assert "<script" not in feed.text and "&lt;script&gt;" in feed.text


# ---- the Atom feed ---------------------------------------------------------------------------------------------


async def test_the_atom_feed_lists_published_news_with_ids_that_survive_edits(client: httpx.AsyncClient):
    """/news.atom parses as Atom, newest first, published only; an entry keeps its id when its title changes."""
    old = await published(client, title="ข่าวแรก", topics=["สภา"])
    new = await published(client, title="ข่าวที่สอง")
    await draft(client, title="ร่างที่ยังไม่เผยแพร่")
    r = await client.get("/news.atom")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(r.content)
    assert not feed.bozo, feed.bozo_exception
    assert [e.title for e in feed.entries] == ["ข่าวที่สอง", "ข่าวแรก"]
    ids = [e.id for e in feed.entries]
    assert ids == [f"tag:sapha,2026:news/{new['id']}", f"tag:sapha,2026:news/{old['id']}"]
    assert feed.entries[1].link.endswith(f"/news/{old['slug']}")
    assert [t.term for t in feed.entries[1].tags] == ["สภา"]
    await client.patch(f"/api/news/{old['slug']}", json={"title": "ข่าวแรก (แก้ไข)"}, headers=ADMIN)
    again = feedparser.parse((await client.get("/news.atom")).content)
    assert {e.id: e.title for e in again.entries}[ids[1]] == "ข่าวแรก (แก้ไข)"


# ---- images ----------------------------------------------------------------------------------------------------


async def test_images_are_checked_from_their_bytes_and_served_inert(client: httpx.AsyncClient):
    """A PNG is stored and served from /media/news with nosniff and a sandbox CSP, and renders in the body; a PDF,
    HTML or an oversized file sent as an image is refused (415/413) and nothing is stored."""
    item = await draft(client)
    url = f"/api/news/{item['slug']}/images"
    r = await client.post(url, content=png(), headers={**ADMIN, "Content-Type": "image/png"})
    assert r.status_code == 201, r.text
    image = r.json()["image"]
    assert re.fullmatch(r"/media/news/[0-9a-f]{32}\.png", image["url"]) and (image["width"], image["height"]) == (8, 8)
    served = await client.get(image["url"])
    assert served.status_code == 200 and served.content == png()
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in served.headers["content-security-policy"]
    r = await client.patch(f"/api/news/{item['slug']}", json={"body": r.json()["markdown"]}, headers=ADMIN)
    assert f'<img src="{image["url"]}" alt="">' in r.json()["item"]["html"]

    for body, status in [
        (PDF, 415),
        (b"<html><script>alert(1)</script></html>", 415),
        (b"GIF89a" + b"\0" * 20, 415),
        (png()[:40], 415),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * (5 * 1024 * 1024), 413),
    ]:
        r = await client.post(url, content=body, headers={**ADMIN, "Content-Type": "image/png"})
        assert r.status_code == status, r.text
        assert r.json()["ok"] is False
    staff = (await client.get("/api/staff/news", headers=ADMIN)).json()["news"]
    assert [len(n["images"]) for n in staff] == [1]
    assert (await client.get(image["url"].replace(".png", ".jpg"))).status_code == 404
    assert (await client.get("/media/news/..%2F..%2Fsapha.db")).status_code == 404


# ---- publications ----------------------------------------------------------------------------------------------


async def create_publication(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {
        "title": "การวิเคราะห์ร่างพระราชบัญญัติงบประมาณรายจ่ายประจำปี",
        "authors": ["สำนักงบประมาณของรัฐสภา"],
        "year": 2025,
        "abstract": "รายงานนี้วิเคราะห์ปีงบประมาณ ๒๕๖๘ และผลต่อการศึกษาของเยาวชน",
        "kind": "report",
        "topics": ["งบประมาณ"],
        **fields,
    }
    r = await client.post("/api/publications", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return dict(r.json()["publication"])


async def test_a_publication_pdf_is_checked_from_its_bytes_and_downloaded_inert(client: httpx.AsyncClient):
    """Only a real PDF without scripts is accepted as a publication's file; it is served as an attachment with
    nosniff and a sandbox CSP, at a stable address."""
    created = await create_publication(client)
    assert created["url"] == f"/publications/{created['id']}" and created["pdf"] is None
    url = f"/api/publications/{created['id']}/file"
    assert (await client.get(f"/api/publications/{created['id']}/pdf")).status_code == 409
    for body in [
        b"<html><script>alert(1)</script></html>",
        png(),
        b"%PDF-1.7\n1 0 obj << /S /JavaScript /JS (app.alert(1)) >>\n%%EOF",
        b"PK\x03\x04" + b"\0" * 100,
    ]:
        r = await client.put(url, content=body, headers={**ADMIN, "Content-Type": "application/pdf"})
        assert r.status_code == 415, r.text
    r = await client.put(url, content=PDF, headers={**ADMIN, "Content-Type": "application/pdf"})
    assert r.status_code == 200, r.text
    assert r.json()["publication"]["pdf"]["size"] == len(PDF)
    served = await client.get(f"/api/publications/{created['id']}/pdf")
    assert served.status_code == 200 and served.content == PDF
    assert served.headers["content-disposition"].startswith("attachment;")
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in served.headers["content-security-policy"]
    assert (await client.get(f"/publications/{created['id']}")).status_code == 200
    assert (await client.get("/publications/999")).status_code == 404
    assert (await client.put("/api/publications/999/file", content=PDF, headers=ADMIN)).status_code == 404


async def test_publication_search_finds_thai_words_as_the_archive_search_does(client: httpx.AsyncClient):
    """q finds a Thai word inside a compound (งบประมาณ in ปีงบประมาณ), Thai digits as Arabic, an author; excluded
    terms and filters narrow; an unrunnable query is a 400 naming q."""
    budget = await create_publication(client)
    other = await create_publication(
        client, title="สิทธิมนุษยชนกับกฎหมายไทย", authors=["ดร.สมชาย ใจดี"], abstract="บทความทางวิชาการ", kind="paper",
        topics=["สิทธิ"],
    )  # fmt: skip

    async def ids(**params: Any) -> list[int]:
        r = await client.get("/api/publications", params=params)
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()["publications"]]

    assert await ids(q="งบประมาณ") == [budget["id"]]
    assert await ids(q="2568") == [budget["id"]]
    assert await ids(q="สมชาย") == [other["id"]]
    assert await ids(q="งบประมาณ -เยาวชน") == []
    assert await ids(q="กฎหมาย", kind="report") == []
    assert await ids(topic="สิทธิ") == [other["id"]]
    assert sorted(await ids()) == sorted([budget["id"], other["id"]])
    hit = (await client.get("/api/publications", params={"q": "การศึกษา"})).json()["publications"][0]
    assert [s["text"] for s in hit["snippet"] if s["hit"]] == ["การศึกษา"]
    r = await client.get("/api/publications", params={"q": '"unbalanced'})
    assert r.status_code == 400 and r.json()["field"] == "q"


# ---- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x" * 201, "body": "b"}, "title"),
        ({"title": " \u200b ", "body": "b"}, "title"),
        ({"title": "t", "body": "\n\t \x85"}, "body"),
        ({"title": "t", "body": "b" * 20_001}, "body"),
        ({"title": "t", "body": "b", "topics": ["x"] * 11}, "topics"),
        ({"title": "t", "body": "b", "topics": ["x" * 51]}, "topics"),
        ({"title": "t", "body": "b", "html": "<script>"}, "html"),
        ({"title": 5, "body": "b"}, "title"),
        ([], "body"),
    ],
)
async def test_bad_news_fields_are_422_naming_the_field(client: httpx.AsyncClient, body: Any, field: str):
    """Over-long, blank, wrongly typed or unknown fields are refused with 422 and the field's name; nothing stored."""
    r = await client.post("/api/news", json=body, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert (await client.get("/api/staff/news", headers=ADMIN)).json()["total"] == 0


async def test_other_bad_requests_get_clear_4xx(client: httpx.AsyncClient):
    """Not JSON is 422, a body past the cap 413, a bad page size 400, unknown or malformed slugs and ids 404."""
    r = await client.post("/api/news", content=b"{not json", headers=ADMIN)
    assert (r.status_code, r.json()["field"]) == (422, "body")
    r = await client.post("/api/news", content=b"x" * (200 * 1024), headers=ADMIN)
    assert r.status_code == 413
    for params in ({"limit": "0"}, {"limit": "abc"}, {"offset": "-1"}, {"limit": "51"}):
        assert (await client.get("/api/news", params=params)).status_code == 400, params
    missing = ["/api/news/NOPE", "/api/news/x" + "y" * 100, "/api/news/ไม่มี", "/api/publications/0"]
    missing += ["/api/publications/abc", "/api/publications/99999999999999999999", "/news/NOPE", "/publications/x"]
    for path in missing:
        r = await client.get(path)
        assert r.status_code == 404, path
    r = await client.post("/api/publications", json={"title": "t", "authors": [], "year": 2025, "abstract": "a",
                                                      "kind": "report"}, headers=ADMIN)  # fmt: skip
    assert (r.status_code, r.json()["field"]) == (422, "authors")


@pytest.mark.fast
def test_the_blank_characters_are_the_archives():
    """A news title is blank exactly when an archive title is: the two documents use one set."""
    assert news_schemas.BLANK_CHARS == archive_schemas.BLANK_CHARS
