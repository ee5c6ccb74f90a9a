"""The public's messages over a real server: the form's API, attachments, abuse limits, the sender's status,
export and erasure, the moderators' triage and its role checks, retention, and contact data sealed on disk."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import stat
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import argon2
import httpx
import pytest
from live_server import TOKEN, Running, serve, test_settings
from PIL import Image

from desk import accounts as acc
from desk.accounts import Passwords
from desk.accounts_sqlite import AccountStore
from desk.messages import SUBJECT_MAX, TEXT_MAX, SubmissionLimits
from desk.messages_api import FORM_LIMIT, JSON_LIMIT, RedactCodes, contact_keys
from desk.messages_sqlite import MessageStore
from desk.ratelimit import BucketPolicy
from desk.sealing import Keyring, new_setting_entry

KEYS = new_setting_entry("k1")
BOOT = acc.bootstrap_principal()
ADMIN = {"Authorization": f"Bearer {TOKEN}"}  # the bootstrap admin of a fresh install: every role
EMAIL = "somying.rakthai@example.co.th"
PHONE = "0812345678"
XSS = [
    "<script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "<svg/onload=alert(1)>",
    "javascript:alert(document.cookie)",
    "{{constructor.constructor('alert(1)')()}}",
]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Site:
    running: Running
    accounts: AccountStore
    clock: Clock
    tmp: Path

    @property
    def url(self) -> str:
        return self.running.url

    def limits(self, **policies: BucketPolicy) -> None:
        """Replace the server's limits: generous unless a test names one to exercise."""
        roomy = BucketPolicy(capacity=10_000, per_s=1.0)
        chosen = {"per_ip": roomy, "per_contact": roomy, "lookups": roomy, **policies}
        self.running.app.state.messages_api.limits = SubmissionLimits(clock=self.clock, **chosen)

    def token(self, name: str, *roles: str) -> dict[str, str]:
        account = self.accounts.create_account(BOOT, name, "correct horse battery", roles)
        token, _ = self.accounts.create_api_token(BOOT, account.id, "test")
        return {"Authorization": f"Bearer {token}"}

    @property
    def store(self) -> MessageStore:
        return self.running.app.state.messages_api.messages  # type: ignore[no-any-return]

    @property
    def attachments_dir(self) -> Path:
        return self.tmp / "attachments"


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[AccountStore]:
    cheap = Passwords(argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    store = AccountStore(tmp_path / "sapha.db", passwords=cheap)
    yield store
    store.close()


@pytest.fixture
async def site(tmp_path: Path, accounts: AccountStore) -> AsyncIterator[Site]:
    async with serve(test_settings(tmp_path, desk_contact_keys=KEYS), accounts=accounts) as running:
        s = Site(running, accounts, Clock(), tmp_path)
        s.limits()
        yield s


@pytest.fixture
async def client(site: Site) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=site.url, timeout=30) as c:
        yield c


def form(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": "complaint",
        "subject": "ถนนหน้าโรงเรียนชำรุด",
        "text": "ถนนหน้าโรงเรียนบ้านหนองบัวชำรุดมาหลายเดือน\nขอให้ตรวจสอบ",
        "email": EMAIL,
        "consent": True,
    }
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


def png(width: int = 8, height: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def multipart_fields(fields: dict[str, Any]) -> dict[str, str]:
    return {k: ("true" if v is True else str(v)) for k, v in fields.items()}


async def submit(client: httpx.AsyncClient, **overrides: Any) -> httpx.Response:
    return await client.post("/api/messages", json=form(**overrides))


async def messages(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await client.get("/api/staff/messages", headers=ADMIN)
    assert r.status_code == 200, r.text
    return list(r.json()["messages"])


# ---- submitting ----------------------------------------------------------------------------------------------------


async def test_a_message_gets_a_tracking_code_once_and_its_status_never_shows_the_contact(
    site: Site, client: httpx.AsyncClient
):
    """A valid JSON message answers 202 with a 16-letter code in groups and its status page's URLs; the status
    (received, one history entry) carries the text but no contact data."""
    r = await submit(client, phone="081-234-5678")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["ok"] is True and body["status"] == "received"
    assert len(body["code"]) == 19 and body["code"].count("-") == 3
    assert body["status_url"] == f"/write/status/{body['code']}"
    assert r.headers["cache-control"] == "no-store"
    status = await client.get(body["api_url"])
    assert status.status_code == 200
    message = status.json()["message"]
    assert message["status"] == "received" and [h["status"] for h in message["history"]] == ["received"]
    assert message["subject"] == "ถนนหน้าโรงเรียนชำรุด"
    assert EMAIL not in status.text and "0812345678" not in status.text
    # Any spelling of the code works: lower case, no dashes.
    assert (await client.get(f"/api/messages/{body['code'].replace('-', '').lower()}")).status_code == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", ""),
        ("subject", "   \t "),
        ("subject", "ก" * (SUBJECT_MAX + 1)),
        ("text", ""),
        ("text", "x" * (TEXT_MAX + 1)),
        ("kind", ""),
        ("kind", "praise"),
        ("email", "not-an-address"),
        ("email", "a" * 300 + "@example.com"),
        ("phone", "12"),
        ("phone", "0" * 2000),
        ("consent", False),
        ("subject", ["a list"]),
        ("text", {"an": "object"}),
    ],
)
async def test_every_field_empty_over_long_or_wrong_is_a_400_naming_it_and_nothing_is_stored(
    site: Site, client: httpx.AsyncClient, field: str, value: Any
):
    """Each bad field answers 400 with ``fields`` naming it (and ``field``, the first); nothing is stored."""
    r = await submit(client, **{field: value})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["ok"] is False and field in body["fields"] and body["field"] in body["fields"]
    assert await messages(client) == []


async def test_a_complaint_needs_a_contact_but_a_suggestion_does_not(site: Site, client: httpx.AsyncClient):
    """Without email or phone a complaint is refused on ``email``; a suggestion goes in."""
    r = await submit(client, email=None)
    assert r.status_code == 400 and "email" in r.json()["fields"]
    assert (await submit(client, email=None, kind="suggestion")).status_code == 202


@pytest.mark.parametrize(
    ("headers", "content", "status"),
    [
        ({"Content-Type": "text/plain"}, b"hello", 415),
        ({"Content-Type": "application/json"}, b"[1, 2]", 400),
        ({"Content-Type": "application/json"}, b"{not json", 400),
        ({"Content-Type": "application/json"}, b'{"subject": "\xff\xfe"}', 400),
        ({"Content-Type": "multipart/form-data; boundary=xyz"}, b"--xyz\r\ngarbage", 400),
        ({"Content-Type": "application/json"}, b"{" + b" " * JSON_LIMIT + b"}", 413),
    ],
)
async def test_bodies_that_are_not_a_form_are_refused_with_the_json_error_shape(
    site: Site, client: httpx.AsyncClient, headers: dict[str, str], content: bytes, status: int
):
    """Wrong media types (415), non-objects and broken JSON or multipart (400), over-long bodies (413)."""
    r = await client.post("/api/messages", content=content, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["ok"] is False and r.json()["status"] == status


async def test_html_and_script_in_every_field_come_back_as_the_same_plain_text(site: Site, client: httpx.AsyncClient):
    """Markup typed into subject, text and (for staff) committee and answer is stored and returned exactly as
    typed, as JSON strings; the status page itself is a static file that carries none of it."""
    for i, payload in enumerate(XSS):
        r = await submit(client, subject=f"{payload} {i}", text=f"{payload}\n{payload}")
        assert r.status_code == 202, r.text
        code = r.json()["code"]
        message = (await client.get(f"/api/messages/{code}")).json()["message"]
        assert message["subject"] == f"{payload} {i}" and message["text"] == f"{payload}\n{payload}"
        staff_view = await messages(client)
        assert staff_view[0]["subject"] == f"{payload} {i}"
        mid = staff_view[0]["id"]
        base = f"/api/staff/messages/{mid}/status"
        assert (await client.post(base, json={"status": "in_review"}, headers=ADMIN)).status_code == 200
        r = await client.post(base, json={"status": "forwarded", "committee": payload}, headers=ADMIN)
        assert r.status_code == 200, r.text
        r = await client.post(base, json={"status": "answered", "answer": payload}, headers=ADMIN)
        status = await client.get(f"/api/messages/{code}")
        assert status.headers["content-type"].startswith("application/json")
        assert status.json()["message"]["answer"] == payload and status.json()["message"]["committee"] == payload
        page = await client.get(f"/write/status/{code}")
        assert page.status_code == 200 and payload not in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]


# ---- attachments ---------------------------------------------------------------------------------------------------


async def test_a_form_with_an_image_is_stored_outside_the_web_root_and_moderators_download_it(
    site: Site, client: httpx.AsyncClient
):
    """Multipart with a PNG: 202; the file lies in ATTACHMENTS_DIR (mode 0600, random name) and comes back to a
    moderator byte for byte as an attachment, never inline, never sniffed."""
    image = png()
    r = await client.post(
        "/api/messages",
        data=multipart_fields(form()),
        files=[("attachments", ("ภาพถนน.png", image, "image/png"))],
    )
    assert r.status_code == 202, r.text
    [stored] = list(site.attachments_dir.iterdir())
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600 and stored.read_bytes() == image
    [message] = await messages(client)
    [meta] = message["attachments"]
    url = f"/api/staff/messages/{message['id']}/attachments/{meta['name']}"
    download = await client.get(url, headers=ADMIN)
    assert download.status_code == 200 and download.content == image
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in download.headers["content-security-policy"]
    assert (await client.get(url)).status_code == 401
    # A name that is not this message's, or no name at all, finds nothing.
    assert (await client.get(url.replace(meta["name"], "0" * 32), headers=ADMIN)).status_code == 404
    assert (await client.get(url.replace(meta["name"], "..%2F..%2Fsapha.db"), headers=ADMIN)).status_code == 404


def zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb.txt", b"\0" * (50 * 1024 * 1024))
    return out.getvalue()


def png_pixel_bomb() -> bytes:
    """A tiny PNG whose header claims 50000 × 50000 pixels (2.5 gigapixels when decoded)."""
    out = io.BytesIO()
    Image.new("1", (50_000, 50_000)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "declared", "status"),
    [
        ("photo.png", b"<html><script>alert(1)</script></html>", "image/png", 415),
        ("logo.png", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "image/svg+xml", 415),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"<script>alert(1)</script>" * 10, "image/png", 415),
        ("report.pdf", b"%PDF-1.7\n1 0 obj << /S /JavaScript /JS (app.alert(1)) >>\n%%EOF", "application/pdf", 415),
        ("doc.docx", zip_bomb(), "application/pdf", 415),
        ("bomb.png", png_pixel_bomb(), "image/png", 413),
        ("big.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (5 * 1024 * 1024), "image/png", 413),
        ("empty.pdf", b"", "application/pdf", 400),
    ],
)
async def test_attachments_that_lie_about_their_type_or_size_are_refused_and_nothing_is_kept(
    site: Site, client: httpx.AsyncClient, name: str, data: bytes, declared: str, status: int
):
    """Types come from the bytes, not the name or the declared type: HTML, SVG, a PNG header on script, a PDF
    with JavaScript and a zip bomb are 415; a pixel bomb and a file over 5 MB are 413; an empty file 400. No
    message is stored and no file is left behind."""
    r = await client.post(
        "/api/messages", data=multipart_fields(form()), files=[("attachments", (name, data, declared))]
    )
    assert r.status_code == status, r.text
    assert r.json()["field"] == "attachments"
    assert await messages(client) == []
    assert list(site.attachments_dir.iterdir()) == []


async def test_uploads_over_the_cap_are_413_before_they_are_parsed(site: Site, client: httpx.AsyncClient):
    """Files whose total passes the body cap are refused as a whole (413); so are six files of a five-file
    message; a file in a text field is a 400."""
    part = b"\x89PNG\r\n\x1a\n" + b"\0" * (FORM_LIMIT // 3)
    files = [("attachments", (f"{i}.png", part, "image/png")) for i in range(4)]
    r = await client.post("/api/messages", data=multipart_fields(form()), files=files)
    assert r.status_code == 413 and r.json()["ok"] is False
    six = [("attachments", (f"{i}.png", png(), "image/png")) for i in range(6)]
    r = await client.post("/api/messages", data=multipart_fields(form()), files=six)
    assert r.status_code == 413 and r.json()["field"] == "attachments"
    fields = multipart_fields(form())
    del fields["subject"]
    r = await client.post("/api/messages", data=fields, files=[("subject", ("s.png", png(), "image/png"))])
    assert r.status_code == 400 and r.json()["field"] == "subject"
    assert await messages(client) == []
    assert list(site.attachments_dir.iterdir()) == []


# ---- abuse ---------------------------------------------------------------------------------------------------------


async def test_the_honeypot_answers_like_a_success_and_stores_nothing(site: Site, client: httpx.AsyncClient):
    """A filled ``website`` field gets a 202 with a code like any other, which then names no message."""
    r = await submit(client, website="http://spam.example")
    assert r.status_code == 202 and r.json()["status"] == "received"
    assert (await client.get(r.json()["api_url"])).status_code == 404
    assert await messages(client) == []


async def test_a_duplicate_is_409_and_stored_once(site: Site, client: httpx.AsyncClient):
    """The same subject and text again (up to case and spacing) within a day is a 409 naming it a duplicate."""
    assert (await submit(client)).status_code == 202
    r = await submit(client, subject="  ถนนหน้าโรงเรียนชำรุด ", email="other@example.com")
    assert r.status_code == 409 and r.json()["duplicate"] is True
    assert len(await messages(client)) == 1


async def test_an_address_and_a_contact_are_each_rate_limited_with_retry_after(site: Site, client: httpx.AsyncClient):
    """Past the per-address bucket a sender gets 429 with Retry-After; so does one contact writing too often."""
    site.limits(per_ip=BucketPolicy(capacity=2, per_s=1 / 300))
    for i in range(2):
        assert (await submit(client, subject=f"เรื่องที่ {i}")).status_code == 202
    r = await submit(client, subject="เรื่องที่ 3")
    assert r.status_code == 429 and r.headers["Retry-After"] == "300" and r.json()["retry_after"] == 300
    site.limits(per_contact=BucketPolicy(capacity=1, per_s=1 / 3600))
    assert (await submit(client, subject="เรื่องใหม่")).status_code == 202
    r = await submit(client, subject="เรื่องใหม่อีก", email=EMAIL.upper())
    assert r.status_code == 429 and r.headers["Retry-After"] == "3600"
    assert (await submit(client, subject="อีกคน", email="someone.else@example.com")).status_code == 202


@pytest.mark.parametrize("method", ["GET status", "GET export", "DELETE"])
async def test_guessing_tracking_codes_is_rate_limited(site: Site, client: httpx.AsyncClient, method: str):
    """Lookups by code (status, export, erase), malformed or unknown, spend one address's tokens: after the
    default 20 the next is 429 with Retry-After, even for a real code."""
    site.limits(lookups=BucketPolicy(capacity=20, per_s=1 / 30))  # the default
    code = (await submit(client)).json()["code"]
    guesses = [f"AAAA-BBBB-CCCC-{i:04d}".replace("0", "2").replace("1", "3") for i in range(19)] + ["x" * 64]
    verb, _, what = method.partition(" ")
    suffix = "/export" if what == "export" else ""
    for guess in guesses:
        r = await client.request(verb, f"/api/messages/{guess}{suffix}")
        assert r.status_code == 404, r.text
    r = await client.request(verb, f"/api/messages/{code}{suffix}")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    site.clock.now += 30
    assert (await client.request(verb, f"/api/messages/{code}{suffix}")).status_code == 200


# ---- the sender's rights -------------------------------------------------------------------------------------------


async def test_export_gives_everything_and_erasure_removes_it_all(site: Site, client: httpx.AsyncClient):
    """Export (by code) has the text, contact and history as a JSON download; erasure deletes the message and its
    files, the code then names nothing, and the audit log says what happened without personal data."""
    r = await client.post(
        "/api/messages",
        data=multipart_fields(form(phone=PHONE)),
        files=[("attachments", ("a.png", png(), "image/png"))],
    )
    code = r.json()["code"]
    export = await client.get(f"/api/messages/{code}/export")
    assert export.status_code == 200 and export.headers["content-disposition"].startswith("attachment;")
    exported = export.json()["message"]
    assert exported["contact"] == {"email": EMAIL, "phone": PHONE}
    assert exported["history"][0]["status"] == "received" and len(exported["attachments"]) == 1
    assert len(list(site.attachments_dir.iterdir())) == 1
    erased = await client.delete(f"/api/messages/{code}")
    assert erased.status_code == 200 and erased.json()["erased"] is True
    assert (await client.get(f"/api/messages/{code}")).status_code == 404
    assert (await client.delete(f"/api/messages/{code}")).status_code == 404
    assert list(site.attachments_dir.iterdir()) == []
    assert await messages(client) == []
    audit = (await client.get("/api/staff/audit", headers=ADMIN)).json()["entries"]
    assert [e["action"] for e in audit[:2]] == ["message.erase", "message.export"]
    assert EMAIL not in json.dumps(audit)


# ---- moderators ----------------------------------------------------------------------------------------------------

MODERATOR_ROUTES = [
    ("GET", "/api/staff/messages"),
    ("GET", "/api/staff/messages/{id}"),
    ("GET", "/api/staff/messages/{id}/contact"),
    ("POST", "/api/staff/messages/{id}/status"),
    ("POST", "/api/staff/messages/{id}/assign"),
    ("POST", "/api/staff/messages/{id}/publish"),
    ("GET", "/api/staff/messages/{id}/attachments/{name}"),
]


async def test_moderator_routes_give_nothing_to_the_anonymous_or_other_roles(site: Site, client: httpx.AsyncClient):
    """Every moderator route answers 401 to no credentials or a made-up token, 403 to an operator or an editor,
    and serves a moderator."""
    r = await client.post(
        "/api/messages", data=multipart_fields(form()), files=[("attachments", ("a.png", png(), "image/png"))]
    )
    assert r.status_code == 202
    [message] = await messages(client)
    operator = site.token("operator1", "operator")
    editor = site.token("editor1", "editor")
    moderator = site.token("moderator1", "moderator")
    bodies = {
        "status": {"status": "in_review"},
        "assign": {"assigned_to": "moderator1"},
        "publish": {"published": False},
    }
    for method, template in MODERATOR_ROUTES:
        path = template.format(id=message["id"], name=message["attachments"][0]["name"])
        body = bodies.get(path.rsplit("/", 1)[-1])
        for headers, status in [({}, 401), ({"Authorization": "Bearer nope"}, 401), (operator, 403), (editor, 403)]:
            r = await client.request(method, path, json=body, headers=headers)
            assert r.status_code == status, (method, path, r.text)
            assert EMAIL not in r.text and message["subject"] not in r.text
        r = await client.request(method, path, json=body, headers=moderator)
        assert r.status_code == 200, (method, path, r.text)


async def test_triage_moves_the_status_notifies_an_email_sender_and_publishes_an_opted_in_suggestion(
    site: Site, client: httpx.AsyncClient
):
    """Assign, review, forward, answer: the sender's page shows each step and the answer; each step is queued as
    a notice to their email; only an answered suggestion whose sender opted in can be published, and the public
    list shows it with nothing of the sender. Moderators read the contact (audited); spam is one more status."""
    r = await submit(client, kind="suggestion", subject="ขยายเวลาถ่ายทอดสด", text="ควรมีคำบรรยาย", publish_ok=True)
    code = r.json()["code"]
    [message] = await messages(client)
    base = f"/api/staff/messages/{message['id']}"
    assert (await client.post(f"{base}/assign", json={"assigned_to": "moderator1"}, headers=ADMIN)).status_code == 200
    r = await client.post(f"{base}/status", json={"status": "answered", "answer": "x"}, headers=ADMIN)
    assert r.status_code == 409 and r.json()["field"] == "status"
    r = await client.post(f"{base}/publish", json={"published": True}, headers=ADMIN)
    assert r.status_code == 409
    for step in [
        {"status": "in_review"},
        {"status": "forwarded", "committee": "คณะกรรมาธิการการสื่อสาร"},
        {"status": "answered", "answer": "รับไปพิจารณาแล้ว"},
    ]:
        r = await client.post(f"{base}/status", json=step, headers=ADMIN)
        assert r.status_code == 200, r.text
    r = await client.post(f"{base}/status", json={"status": "forwarded"}, headers=ADMIN)
    assert r.status_code == 422 and r.json()["field"] == "committee"
    mine = (await client.get(f"/api/messages/{code}")).json()["message"]
    assert [h["status"] for h in mine["history"]] == ["received", "in_review", "forwarded", "answered"]
    assert mine["answer"] == "รับไปพิจารณาแล้ว" and mine["committee"] == "คณะกรรมาธิการการสื่อสาร"
    notices = site.store.pending_notices()
    assert [(n[1], n[3].email) for n in notices] == [(s, EMAIL) for s in ("in_review", "forwarded", "answered")]

    assert (await client.get("/api/suggestions")).json()["suggestions"] == []
    r = await client.post(f"{base}/publish", json={"published": True}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["message"]["published_at"]
    public = await client.get("/api/suggestions")
    [shown] = public.json()["suggestions"]
    assert shown["subject"] == "ขยายเวลาถ่ายทอดสด" and shown["answer"] == "รับไปพิจารณาแล้ว"
    assert EMAIL not in public.text and code not in public.text
    assert (await client.get("/api/suggestions?limit=0")).status_code == 400

    contact = await client.get(f"{base}/contact", headers=ADMIN)
    assert contact.json()["contact"] == {"email": EMAIL, "phone": None}
    audit = (await client.get("/api/staff/audit?action=message.contact.read", headers=ADMIN)).json()["entries"]
    assert audit[0]["target"] == f"message:{message['id']}" and audit[0]["actor"] == "bootstrap"

    other = await submit(client, subject="โฆษณา", text="ซื้อเลย")
    spam_id = (await messages(client))[0]["id"]
    assert other.status_code == 202
    r = await client.post(f"/api/staff/messages/{spam_id}/status", json={"status": "spam"}, headers=ADMIN)
    assert r.status_code == 200
    assert [
        m["id"] for m in (await client.get("/api/staff/messages?status=spam", headers=ADMIN)).json()["messages"]
    ] == [spam_id]


async def test_moderators_list_by_kind_with_status_and_paging_and_an_unknown_kind_is_a_400(
    site: Site, client: httpx.AsyncClient
):
    """``?kind=`` lists only that kind, newest first, together with ``status`` and across pages; an unknown or
    empty kind is a 400 naming ``kind``."""
    sent = [
        ("suggestion", "ขอให้มีล่ามภาษามือ"),
        ("complaint", "เว็บไซต์โหลดช้า"),
        ("suggestion", "ขอที่จอดจักรยาน"),
        ("question", "ประชุมกี่โมง"),
        ("suggestion", "ขอคำบรรยายภาษาอังกฤษ"),
    ]
    for kind, subject in sent:
        assert (await submit(client, kind=kind, subject=subject, text=f"รายละเอียด {subject}")).status_code == 202

    async def listed(query: str) -> tuple[list[tuple[str, str]], str | None]:
        r = await client.get(f"/api/staff/messages?{query}", headers=ADMIN)
        assert r.status_code == 200, r.text
        return [(m["kind"], m["subject"]) for m in r.json()["messages"]], r.json()["next_before"]

    newest_first = sent[::-1]
    for kind in ("complaint", "suggestion", "question"):
        assert (await listed(f"kind={kind}"))[0] == [m for m in newest_first if m[0] == kind]
    # Paging keeps the kind: two suggestions, then the third, never another kind in between.
    first, cursor = await listed("kind=suggestion&limit=2")
    assert [s for _, s in first] == ["ขอคำบรรยายภาษาอังกฤษ", "ขอที่จอดจักรยาน"] and cursor is not None
    rest, end = await listed(f"kind=suggestion&limit=2&before={cursor}")
    assert rest == [("suggestion", "ขอให้มีล่ามภาษามือ")] and end is None

    [spam_id] = [m["id"] for m in await messages(client) if m["subject"] == "ขอที่จอดจักรยาน"]
    r = await client.post(f"/api/staff/messages/{spam_id}/status", json={"status": "spam"}, headers=ADMIN)
    assert r.status_code == 200
    assert (await listed("kind=suggestion&status=spam"))[0] == [("suggestion", "ขอที่จอดจักรยาน")]
    assert (await listed("kind=complaint&status=spam"))[0] == []
    assert [s for _, s in (await listed("kind=suggestion&status=received"))[0]] == [
        "ขอคำบรรยายภาษาอังกฤษ",
        "ขอให้มีล่ามภาษามือ",
    ]

    for bad in ("nope", "", "Suggestion", "suggestion%00"):
        r = await client.get(f"/api/staff/messages?kind={bad}", headers=ADMIN)
        assert r.status_code == 400, (bad, r.text)
        assert r.json() == {
            "ok": False,
            "status": 400,
            "error": "must be one of complaint, suggestion, question",
            "field": "kind",
        }


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("status", {"status": "nonsense"}, 409),
        ("status", {}, 422),
        ("status", {"status": 5}, 422),
        ("status", {"status": "in_review", "extra": 1}, 422),
        ("status", [1], 422),
        ("assign", {"assigned_to": "x" * 40}, 422),
        ("publish", {"published": "yes"}, 422),
    ],
)
async def test_bad_moderator_bodies_are_refused(
    site: Site, client: httpx.AsyncClient, path: str, body: Any, status: int
):
    """Unknown statuses (409), missing, mistyped or unknown fields (422) name their field."""
    await submit(client)
    [message] = await messages(client)
    r = await client.post(f"/api/staff/messages/{message['id']}/{path}", json=body, headers=ADMIN)
    assert r.status_code == status, r.text
    assert r.json()["ok"] is False
    assert (await client.get("/api/staff/messages/zzzz", headers=ADMIN)).status_code == 404
    assert (await client.get("/api/staff/messages?limit=1000", headers=ADMIN)).status_code == 400
    assert (await client.get("/api/staff/messages?status=nope", headers=ADMIN)).status_code == 400


# ---- PDPA: retention and encryption at rest -----------------------------------------------------------------------


async def test_the_retention_job_erases_contact_data_and_the_audit_log_shows_it(site: Site, client: httpx.AsyncClient):
    """Past MESSAGES_RETENTION_DAYS the job erases the contact but keeps the message; moderators then see no
    contact, the sender's export has none, and the audit log has one ``message.contact.erase`` by ``system``."""
    code = (await submit(client, phone=PHONE)).json()["code"]
    [message] = await messages(client)
    assert message["has_contact"] is True
    later = Clock()
    later.now = 4_000_000_000.0
    job = MessageStore(site.tmp / "sapha.db", keyring=Keyring.from_setting(KEYS), clock=later, retention_days=365)
    try:
        assert job.retention() == 1
    finally:
        job.close()
    [after] = await messages(client)
    assert after["has_contact"] is False and after["contact_erased_at"] and after["subject"] == message["subject"]
    contact = await client.get(f"/api/staff/messages/{message['id']}/contact", headers=ADMIN)
    assert contact.json()["contact"] is None
    assert (await client.get(f"/api/messages/{code}/export")).json()["message"]["contact"] is None
    audit = (await client.get("/api/staff/audit?action=message.contact.erase", headers=ADMIN)).json()["entries"]
    assert [(e["actor"], e["target"]) for e in audit] == [("system", f"message:{message['id']}")]
    assert audit[0]["after"]["reason"] == "retention"


async def test_contact_data_is_unreadable_in_the_raw_database_files(site: Site, client: httpx.AsyncClient):
    """The email and phone appear nowhere in the SQLite file or its WAL, in any encoding; the subject does."""
    assert (await submit(client, phone=PHONE, subject="หัวข้อที่ค้นหาได้")).status_code == 202
    raw = b"".join(p.read_bytes() for p in site.tmp.glob("sapha.db*"))
    assert "หัวข้อที่ค้นหาได้".encode() in raw
    for secret in (EMAIL, PHONE, "rakthai", "example.co.th"):
        assert secret.encode() not in raw and secret.encode("utf-16-le") not in raw


async def test_a_contact_key_is_generated_on_first_start_into_a_private_file(tmp_path: Path):
    """With DESK_CONTACT_KEYS unset, the first start writes a key beside the database (mode 0600), and the next
    start reads the same one back, so sealed contacts still open."""
    settings = test_settings(tmp_path)
    async with serve(settings) as running:
        async with httpx.AsyncClient(base_url=running.url) as c:
            code = (await c.post("/api/messages", json=form())).json()["code"]
    keyfile = settings.contact_keys_path()
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    first = keyfile.read_text()
    async with serve(settings) as running:
        async with httpx.AsyncClient(base_url=running.url) as c:
            assert (await c.get(f"/api/messages/{code}/export")).json()["message"]["contact"]["email"] == EMAIL
    assert keyfile.read_text() == first
    assert contact_keys("", keyfile).current == "k1"


# ---- pages ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/write", "/privacy", "/write/status/ABCD-EFGH-JKLM-NPQR"])
async def test_the_pages_are_served_under_the_strict_csp(site: Site, client: httpx.AsyncClient, path: str):
    """/write, /privacy and a status page are HTML in Thai under a CSP with no inline script or style."""
    r = await client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<html lang="th">' in r.text and "<style" not in r.text and "<script>" not in r.text
    assert "style=" not in r.text
    assert "'unsafe-inline'" not in r.headers["content-security-policy"]


@pytest.mark.fast
def test_the_access_log_never_shows_a_tracking_code():
    """uvicorn's access line for a status, export or page URL keeps the route but not the code."""
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', ("1.2.3.4:5", "GET", "/x", "1.1", 200), None
    )
    for path in ("/api/messages/ABCD-EFGH-JKLM-NPQR/export", "/write/status/ABCDEFGHJKLMNPQR?x=1"):
        record.args = ("1.2.3.4:5", "GET", path, "1.1", 200)
        assert RedactCodes().filter(record)
        assert "ABCD" not in record.getMessage()
