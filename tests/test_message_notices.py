"""Status notices to the public's senders, with real parts: the real server (its lifespan runs the notice worker),
a real SMTP server (aiosmtpd) and a loopback Web Push service whose bodies a "browser" key pair decrypts with
``http_ece``. A moderator changes a message's status; the sender's email gets a notice with the tracking code, the
new status and the link, their subscribed browser the status and the link, and nothing of what they wrote. Failures
are retried (a DNS failure too) and never block the moderator; a 410 removes the subscription; erasure and retention
remove it too, and after retention no new one is taken; bad input is refused naming the field, and an unknown code
stores nothing."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from alerts_receiver import Received, Receiver, receiver
from live_server import TOKEN, Running, serve, test_settings
from starlette.responses import Response
from test_alerts_push import Browser

from alerts.email import SmtpConfig
from alerts.message_notices import STATUS_TH, NoticeWorker, check_subscription, notice_email, notice_payload
from alerts.push import load_or_create_vapid
from alerts.schedule import MAX_ATTEMPTS
from desk import audit
from desk import sqlite as desk_sqlite
from desk.accounts import Principal
from desk.messages import InvalidMessage, SubmissionLimits, validate_submission
from desk.messages_sqlite import _MIGRATIONS, COMPONENT, MessageStore, Notice, PushTarget
from desk.ratelimit import BucketPolicy
from desk.sealing import Keyring, new_setting_entry

KEYS = new_setting_entry("k1")
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
EMAIL = "somying.rakthai@example.co.th"
SUBJECT = "ถนนหน้าโรงเรียนชำรุด"
TEXT = "ถนนหน้าโรงเรียนบ้านหนองบัวชำรุดมาหลายเดือน"
PUBLIC = "https://sapha.example"
ROOMY = BucketPolicy(capacity=10_000, per_s=1.0)


class Smtp:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.refuse = False
        self.unknown_user = False
        self.arrived = asyncio.Event()

    async def handle_RCPT(  # noqa: N802
        self, server: object, session: object, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.unknown_user:  # as Postfix says it: the address echoed back
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        if self.refuse:
            return "451 try again later"
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[attr-defined]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Smtp, str]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = Smtp()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, f"smtp+plain://127.0.0.1:{port}"
    controller.stop()


@pytest.fixture
async def push_service() -> AsyncIterator[Receiver]:
    async with receiver() as r:

        async def created(_: Received) -> Response:
            return Response(status_code=201)

        r.handler = created
        yield r


@pytest.fixture
async def running(tmp_path: Path, smtp: tuple[Smtp, str]) -> AsyncIterator[Running]:
    settings = test_settings(
        tmp_path,
        desk_contact_keys=KEYS,
        smtp_url=smtp[1],
        smtp_from="senate@sapha.example",
        public_url=PUBLIC,
        webhook_allow_private=True,  # the loopback push service
    )
    async with serve(settings) as r:
        r.app.state.messages_api.limits = SubmissionLimits(
            clock=time.monotonic, per_ip=ROOMY, per_contact=ROOMY, lookups=ROOMY
        )
        yield r


@pytest.fixture
async def client(running: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running.url, timeout=30) as c:
        yield c


def store(running: Running) -> MessageStore:
    messages: MessageStore = running.app.state.messages_api.messages
    return messages


async def submit(client: httpx.AsyncClient, **fields: Any) -> tuple[str, str]:
    body = {"kind": "complaint", "subject": SUBJECT, "text": TEXT, "consent": True, "email": EMAIL, **fields}
    body = {k: v for k, v in body.items() if v is not None}
    r = await client.post("/api/messages", json=body)
    assert r.status_code == 202, r.text
    listed = (await client.get("/api/staff/messages", headers=ADMIN)).json()["messages"]
    return r.json()["code"], listed[0]["id"]


async def set_status(client: httpx.AsyncClient, message_id: str, status: str, **extra: str) -> None:
    r = await client.post(f"/api/staff/messages/{message_id}/status", json={"status": status, **extra}, headers=ADMIN)
    assert r.status_code == 200, r.text


def notices(db: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM desk_message_notices ORDER BY id").fetchall()


async def until(predicate: Any, what: str, seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.05)


def body_of(msg: Message) -> str:
    part = msg.get_payload(decode=True)
    assert isinstance(part, bytes)
    return part.decode()


async def test_a_status_change_emails_the_sender_the_code_status_and_link(
    running: Running, client: httpx.AsyncClient, smtp: tuple[Smtp, str], tmp_path: Path
):
    """The SMTP server gets one Thai notice per change with the code, the status and the link; never the subject,
    the text or the answer; ``sent_at`` is set once it was accepted."""
    server, _ = smtp
    code, message_id = await submit(client)
    await set_status(client, message_id, "in_review")
    await until(lambda: len(server.messages) == 1, "the first notice")
    await set_status(client, message_id, "answered", answer="ส่งเรื่องให้กรมทางหลวงชนบทแล้ว")
    await until(lambda: len(server.messages) == 2, "the second notice")

    first, second = server.messages
    assert first["To"] == EMAIL and first["From"] == "senate@sapha.example"
    assert STATUS_TH["in_review"] in str(first["Subject"])
    text = body_of(second)
    assert code in text and f"{PUBLIC}/write/status/{code}" in text and STATUS_TH["answered"] in text
    for private in (SUBJECT, TEXT, "กรมทางหลวงชนบท"):
        assert private not in text and private not in str(second["Subject"])
    db = tmp_path / "sapha.db"
    await until(lambda: all(n["sent_at"] for n in notices(db)), "sent_at on both")
    assert [(n["channel"], n["status"], n["attempts"]) for n in notices(db)] == [
        ("email", "in_review", 1),
        ("email", "answered", 1),
    ]


async def test_an_smtp_failure_never_blocks_the_moderator_and_is_retried(
    running: Running, client: httpx.AsyncClient, smtp: tuple[Smtp, str], tmp_path: Path
):
    """The mail server answers 451: the moderator's change still succeeds, the notice is kept unsent with the next
    attempt scheduled; once the server accepts, the notice goes out and is marked sent."""
    server, _ = smtp
    server.refuse = True
    _, message_id = await submit(client)
    await set_status(client, message_id, "in_review")
    db = tmp_path / "sapha.db"
    await until(lambda: notices(db)[0]["last_error"] is not None, "the failed attempt recorded")
    [row] = notices(db)
    assert row["sent_at"] is None and row["failed_at"] is None and "451" in row["last_error"] and row["attempts"] == 1
    assert row["next_s"] > 0 and server.messages == []
    # Due now, and the server accepts: the worker (woken by the next change) sends both.
    server.refuse = False
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE desk_message_notices SET next_s = 0")
    await set_status(client, message_id, "closed")
    await until(lambda: len(server.messages) == 2, "both notices")
    await until(lambda: all(n["sent_at"] for n in notices(db)), "sent_at on both")


async def test_the_status_page_subscription_gets_a_push_notice_it_can_decrypt(
    running: Running, client: httpx.AsyncClient, push_service: Receiver, tmp_path: Path
):
    """A sender without an email subscribes a browser by tracking code; a status change reaches the loopback push
    service encrypted for that browser: the status and the link (the code only in the link), with VAPID, TTL and
    Topic."""
    code, message_id = await submit(client, kind="suggestion", email=None)
    browser = Browser()
    r = await client.post(
        f"/api/messages/{code}/push", json={"subscription": browser.subscription(f"{push_service.url}/p/1")}
    )
    assert r.status_code == 201 and r.json() == {"ok": True, "subscribed": True, "new": True}
    again = await client.post(
        f"/api/messages/{code}/push", json={"subscription": browser.subscription(f"{push_service.url}/p/1")}
    )
    assert again.status_code == 201 and again.json()["new"] is False
    assert store(running).push_count(code) == 1

    await set_status(client, message_id, "in_review")
    await until(lambda: len(push_service.received) == 1, "the push")
    got = push_service.received[0]
    assert got.path == "/p/1" and got.headers["content-encoding"] == "aes128gcm" and int(got.headers["ttl"]) > 0
    assert got.headers["authorization"].startswith("vapid t=")
    data = json.loads(browser.decrypt(got.body))
    assert data["url"] == f"/write/status/{code}" and STATUS_TH["in_review"] in data["body"]
    assert code not in data["title"] and code not in data["body"]
    assert SUBJECT not in json.dumps(data, ensure_ascii=False)
    db = tmp_path / "sapha.db"
    await until(lambda: notices(db)[0]["sent_at"] is not None, "sent_at")
    # The subscription is sealed at rest, like the contact data.
    raw = (tmp_path / "sapha.db").read_bytes()
    assert push_service.url.encode() not in raw and browser.p256dh.encode() not in raw
    export = (await client.get(f"/api/messages/{code}/export")).json()["message"]
    assert [p["endpoint"] for p in export["push_subscriptions"]] == [f"{push_service.url}/p/1"]


async def test_a_gone_subscription_is_removed_with_its_notices(
    running: Running, client: httpx.AsyncClient, push_service: Receiver, tmp_path: Path
):
    """The push service answers 410: the subscription and its pending notices are deleted; nothing is retried."""

    async def gone(_: Received) -> Response:
        return Response(status_code=410)

    push_service.handler = gone
    code, message_id = await submit(client, kind="suggestion", email=None)
    sub = Browser().subscription(f"{push_service.url}/p/gone")
    assert (await client.post(f"/api/messages/{code}/push", json={"subscription": sub})).status_code == 201
    await set_status(client, message_id, "in_review")
    await until(lambda: store(running).push_count(code) == 0, "the subscription removed")
    assert len(push_service.received) == 1 and notices(tmp_path / "sapha.db") == []


async def test_erasure_and_retention_remove_the_subscription_and_the_kept_code(
    running: Running, client: httpx.AsyncClient, push_service: Receiver, tmp_path: Path
):
    """The sender's erasure deletes the subscription; retention erases it (and the sealed code) with the contact,
    and pending notices of an erased contact are never sent."""
    db = tmp_path / "sapha.db"
    code, message_id = await submit(client)
    sub = Browser().subscription(f"{push_service.url}/p/erase")
    assert (await client.post(f"/api/messages/{code}/push", json={"subscription": sub})).status_code == 201
    assert (await client.delete(f"/api/messages/{code}")).status_code == 200
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM desk_message_push").fetchone()[0] == 0

    code, message_id = await submit(client, subject="ไฟถนนดับ", text="ไฟถนนดับทั้งซอย")
    assert (await client.post(f"/api/messages/{code}/push", json={"subscription": sub})).status_code == 201
    messages = store(running)
    messages.retention_days = 1
    old = messages._clock  # noqa: SLF001 - a day and more later
    messages._clock = lambda: old() + 2 * 86400  # noqa: SLF001
    try:
        assert messages.retention() == 1
    finally:
        messages._clock = old  # noqa: SLF001
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT contact_sealed, code_sealed FROM desk_messages WHERE id = ?", (message_id,)
        ).fetchone()
        assert row == (None, None)
        assert conn.execute("SELECT COUNT(*) FROM desk_message_push").fetchone()[0] == 0
    await set_status(client, message_id, "in_review")
    assert notices(db) == [] and push_service.received == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda s: s.pop("endpoint"), "subscription.endpoint"),
        (lambda s: s["keys"].update(p256dh="not base64!"), "subscription.keys.p256dh"),
        (lambda s: s["keys"].update(auth="AAAA"), "subscription.keys.auth"),
        (lambda s: s.update(endpoint="ftp://push.example/x"), "subscription.endpoint"),
        (lambda s: s.update(extra=1), "subscription.extra"),
    ],
)
async def test_a_malformed_subscription_is_refused_naming_the_field(
    running: Running, client: httpx.AsyncClient, change: Any, field: str
):
    code, _ = await submit(client)
    sub = Browser().subscription("https://push.example/p/1")
    change(sub)
    r = await client.post(f"/api/messages/{code}/push", json={"subscription": sub})
    assert r.status_code == 422 and r.json()["field"] == field and r.json()["ok"] is False
    assert store(running).push_count(code) == 0


async def test_bad_bodies_unknown_codes_and_world_refusals(running: Running, client: httpx.AsyncClient, tmp_path: Path):
    """Not JSON, no subscription, an oversized body: 4xx naming the field; an unknown or malformed code: 404 and
    nothing stored; a point off the curve or a private host where not allowed: 409 naming the field."""
    code, _ = await submit(client)
    url = f"/api/messages/{code}/push"
    r = await client.post(url, content=b"{", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["field"] == "body"
    r = await client.post(url, json={})
    assert r.status_code == 422 and r.json()["field"] == "subscription"
    r = await client.post(url, json={"subscription": {"endpoint": "https://x.example/" + "a" * 8000}})
    assert r.status_code == 413
    sub = Browser().subscription("https://push.example/p/1")
    for unknown in ("2222-2222-2222-2222", "nonsense"):
        r = await client.post(f"/api/messages/{unknown}/push", json={"subscription": sub})
        assert r.status_code == 404
    with sqlite3.connect(tmp_path / "sapha.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM desk_message_push").fetchone()[0] == 0
    off_curve = {**sub, "keys": {**sub["keys"], "p256dh": "B" + "A" * 86}}  # type: ignore[dict-item]
    r = await client.post(url, json={"subscription": off_curve})
    assert r.status_code == 409 and r.json()["field"] == "subscription.keys.p256dh"


async def test_check_subscription_refuses_private_hosts_unless_allowed():
    sub = Browser().subscription("http://127.0.0.1:9/p")
    with pytest.raises(InvalidMessage) as refused:
        await check_subscription(sub, allow_private=False)
    assert next(iter(refused.value.fields)) == "subscription.endpoint"
    target = await check_subscription(sub, allow_private=True)
    assert target.endpoint == "http://127.0.0.1:9/p"


@pytest.mark.fast
def test_the_push_payload_shows_only_the_status_and_keeps_the_code_in_the_link():
    """The title and body show on a lock screen: the status only. The code, which opens, exports and erases the
    message, is only in the link the click opens."""
    notice = Notice(1, "0123456789abcdef", "push", "forwarded", "2026-01-01T00:00:00Z", 0, "ABCD-EFGH-JKLM-NPQR")
    data = json.loads(notice_payload(notice))
    assert set(data) == {"title", "body", "url", "tag"}
    assert data["url"] == "/write/status/ABCD-EFGH-JKLM-NPQR" and STATUS_TH["forwarded"] in data["body"]
    for visible in (data["title"], data["body"]):
        assert "ABCD" not in visible and "NPQR" not in visible and "รหัสติดตาม" not in visible
    assert "0123456789abcdef" not in data["tag"]
    without = json.loads(notice_payload(Notice(1, "0123456789abcdef", "push", "closed", "x", 0, None)))
    assert without["url"] == "/write"


async def test_subscribing_spends_a_lookup_token(running: Running, client: httpx.AsyncClient):
    """Each subscription attempt spends one of the address's code lookups, known code or not: past them, 429."""
    code, _ = await submit(client)
    tight = BucketPolicy(capacity=2, per_s=0.001)
    running.app.state.messages_api.limits = SubmissionLimits(
        clock=time.monotonic, per_ip=ROOMY, per_contact=ROOMY, lookups=tight
    )
    sub = {"subscription": Browser().subscription("https://push.example/p/1")}
    assert (await client.post("/api/messages/2222-2222-2222-2222/push", json=sub)).status_code == 404
    assert (await client.post(f"/api/messages/{code}/push", json={})).status_code == 422
    r = await client.post(f"/api/messages/{code}/push", json=sub)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert store(running).push_count(code) == 0


async def test_a_refused_recipient_fails_the_notice_without_its_address_in_plain_text(
    running: Running, client: httpx.AsyncClient, smtp: tuple[Smtp, str], tmp_path: Path
):
    """The mail server refuses the recipient for good (550, echoing the address, as Postfix does): the notice is
    failed, not retried, and the address that is kept only sealed does not land in the row's ``last_error``."""
    server, _ = smtp
    server.unknown_user = True
    _, message_id = await submit(client)
    await set_status(client, message_id, "in_review")
    db = tmp_path / "sapha.db"
    await until(lambda: notices(db)[0]["failed_at"] is not None, "the notice failed")
    [row] = notices(db)
    assert row["sent_at"] is None and "550" in row["last_error"] and "<recipient>" in row["last_error"]
    raw = b"".join(f.read_bytes() for f in tmp_path.glob("sapha.db*"))
    assert EMAIL.encode() not in raw


async def test_an_attempt_that_hangs_is_cut_off_before_its_lease_ends(tmp_path: Path):
    """A resolver that never answers (getaddrinfo has no timeout): the attempt is cut off and recorded for a retry
    while the notice is still leased to this worker, so no other process claims and sends it meanwhile."""
    moderator = Principal(account_id=1, username="mod", roles=frozenset({"moderator"}), via="session")
    messages = MessageStore(tmp_path / "desk.db", keyring=Keyring.from_setting(KEYS))
    hung = asyncio.Event()

    async def never(host: str, port: int) -> list[str]:
        hung.set()
        await asyncio.Event().wait()
        return []

    receipt = messages.submit(
        validate_submission({"kind": "suggestion", "subject": SUBJECT, "text": TEXT, "consent": True})
    )
    keys: Any = Browser().subscription("https://push.example/p/1")["keys"]
    messages.subscribe_push(receipt.code, PushTarget("https://push.example/p/1", keys["p256dh"], keys["auth"]))
    messages.transition(moderator, receipt.message_id, "in_review")
    worker = NoticeWorker(
        messages,
        base_url=PUBLIC,
        smtp=None,
        vapid=load_or_create_vapid(tmp_path / "vapid.pem"),
        resolver=never,
        poll_s=3600,
    )
    worker.attempt_s = 0.2
    assert worker.attempt_s < worker.lease_s
    await worker.start()
    try:
        await until(lambda: notices(tmp_path / "desk.db")[0]["last_error"] is not None, "the cut-off attempt recorded")
    finally:
        await worker.stop()
        messages.close()
    [row] = notices(tmp_path / "desk.db")
    assert hung.is_set() and row["sent_at"] is None and row["failed_at"] is None
    assert row["leased_until_s"] == 0 and "no answer within" in row["last_error"]


def test_a_database_from_before_push_notices_upgrades_and_keeps_its_pending_notice(tmp_path: Path):
    """A staff database at the previous messages schema, with an email notice not yet sent: opening the store
    migrates it (the new columns, the push table, the new index) and the notice is claimed as an email notice."""
    db = tmp_path / "old.db"
    keyring = Keyring.from_setting(KEYS)
    conn = desk_sqlite.connect(db)
    desk_sqlite.migrate(conn, "audit", audit.MIGRATIONS)
    desk_sqlite.migrate(conn, COMPONENT, _MIGRATIONS[:-1])
    sealed = keyring.seal(json.dumps({"email": EMAIL, "phone": None}), b"m1")
    conn.execute(
        "INSERT INTO desk_messages (id, code_hash, kind, subject, text, status, contact_sealed, fingerprint,"
        " created_at, created_s, updated_at) VALUES ('m1', 'h', 'complaint', ?, ?, 'in_review', ?, 'f',"
        " '2026-01-01T00:00:00Z', 0, '2026-01-01T00:00:00Z')",
        (SUBJECT, TEXT, sealed),
    )
    conn.execute("INSERT INTO desk_message_notices (message_id, status, at) VALUES ('m1', 'in_review', 'x')")
    conn.close()

    messages = MessageStore(db, keyring=keyring)
    try:
        [notice] = messages.claim_notices(lease_s=60)
        assert (notice.channel, notice.email, notice.code, notice.attempts) == ("email", EMAIL, None, 0)
        with sqlite3.connect(db) as raw:
            version = raw.execute("SELECT version FROM desk_meta WHERE component = ?", (COMPONENT,)).fetchone()[0]
        assert version == len(_MIGRATIONS)
    finally:
        messages.close()


MODERATOR = Principal(account_id=1, username="mod", roles=frozenset({"moderator"}), via="session")


def changed_message(messages: MessageStore, *, email: str | None = None, push: str | None = None) -> str:
    """A message (with an email, or a browser subscribed to ``push``) whose status a moderator just changed."""
    fields: dict[str, Any] = {"kind": "suggestion", "subject": SUBJECT, "text": TEXT, "consent": True}
    if email:
        fields["email"] = email
    receipt = messages.submit(validate_submission(fields))
    if push:
        keys: Any = Browser().subscription(push)["keys"]
        messages.subscribe_push(receipt.code, PushTarget(push, keys["p256dh"], keys["auth"]))
    messages.transition(MODERATOR, receipt.message_id, "in_review")
    return receipt.code


async def test_a_dns_failure_keeps_the_subscription_and_only_a_refused_address_removes_it(tmp_path: Path):
    """The push service's host does not resolve at send time (EAI_AGAIN: the resolver is down): the notice is
    retried later and the subscription kept. Once the host resolves to a private address, the URL policy refuses it
    and the subscription goes, with its notice."""
    db = tmp_path / "desk.db"
    messages = MessageStore(db, keyring=Keyring.from_setting(KEYS))
    answers: list[Any] = [socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")]

    async def resolver(host: str, port: int) -> list[str]:
        if isinstance(answers[0], Exception):
            raise answers[0]
        return list(answers[0])

    code = changed_message(messages, push="https://push.example/p/1")
    worker = NoticeWorker(
        messages, base_url=PUBLIC, smtp=None, vapid=load_or_create_vapid(tmp_path / "vapid.pem"), resolver=resolver
    )
    worker.poll_s = 3600
    await worker.start()
    try:
        await until(lambda: notices(db)[0]["last_error"] is not None, "the retry recorded")
        [row] = notices(db)
        assert row["failed_at"] is None and row["next_s"] > time.time() and "does not resolve" in row["last_error"]
        assert messages.push_count(code) == 1
        answers[0] = ["10.20.30.40"]
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE desk_message_notices SET next_s = 0")
        worker.wake()
        await until(lambda: messages.push_count(code) == 0, "the subscription removed")
        assert notices(db) == []
    finally:
        await worker.stop()
        messages.close()


async def test_a_notice_whose_results_are_never_recorded_still_ends_failed(tmp_path: Path):
    """Recording each result fails (the database is locked), so every lease just runs out: each claim still counts
    an attempt, and after the schedule's last one the notice is marked failed instead of being claimed forever."""
    db = tmp_path / "desk.db"
    messages = MessageStore(db, keyring=Keyring.from_setting(KEYS))
    changed_message(messages, email=EMAIL)

    def locked(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    messages.notice_retry = locked  # type: ignore[method-assign]
    messages.notice_failed = locked  # type: ignore[method-assign]
    worker = NoticeWorker(messages, base_url=PUBLIC, smtp=None, vapid=None)
    worker.lease_s = 0  # the lease runs out at once, as it does after a failed recording
    try:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            with pytest.raises(sqlite3.OperationalError):
                await worker.run_once()
            assert notices(db)[0]["attempts"] == attempt
        assert await worker.run_once() == 0
        [row] = notices(db)
        assert row["failed_at"] is not None and row["sent_at"] is None and row["attempts"] == MAX_ATTEMPTS
    finally:
        messages.close()


def test_a_code_that_no_longer_opens_still_sends_the_email_pointing_to_the_form(tmp_path: Path):
    """The kept code no longer opens (sealed under a key since lost): the email notice, which needs only the address,
    is still claimed; it names no code and points to /write, where the sender enters theirs."""
    db = tmp_path / "desk.db"
    messages = MessageStore(db, keyring=Keyring.from_setting(KEYS))
    try:
        code = changed_message(messages, email=EMAIL)
        lost = Keyring.from_setting(new_setting_entry("k1"))  # the same key id, another key
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE desk_messages SET code_sealed = ?", (lost.seal(code, b"x"),))
        [notice] = messages.claim_notices(lease_s=60)
        assert (notice.channel, notice.email, notice.code) == ("email", EMAIL, None)
        assert notices(db)[0]["failed_at"] is None
        config = SmtpConfig(host="127.0.0.1", port=25, sender="senate@sapha.example")
        text = notice_email(config, notice, base_url=PUBLIC).get_content()
        assert f"{PUBLIC}/write\n" in text and "/write/status" not in text and code not in text
        assert STATUS_TH["in_review"] in text and "รหัสติดตามของคุณ" in text
    finally:
        messages.close()


async def test_a_sender_whose_contact_retention_erased_cannot_subscribe(
    running: Running, client: httpx.AsyncClient, tmp_path: Path
):
    """Retention erased the message's contact data: a push subscription, which would be new contact data, is refused
    with 409 naming ``subscription`` and a Thai and English reason, and nothing is stored."""
    code, message_id = await submit(client)
    messages = store(running)
    messages.retention_days = 1
    old = messages._clock  # noqa: SLF001 - a day and more later
    messages._clock = lambda: old() + 2 * 86400  # noqa: SLF001
    try:
        assert messages.retention() == 1
    finally:
        messages._clock = old  # noqa: SLF001
    sub = Browser().subscription("https://push.example/p/late")
    r = await client.post(f"/api/messages/{code}/push", json={"subscription": sub})
    assert r.status_code == 409 and r.json()["ok"] is False and r.json()["field"] == "subscription"
    assert "ระยะเวลาการเก็บรักษา" in r.json()["error"] and "retention" in r.json()["error"]
    assert store(running).push_count(code) == 0
    with sqlite3.connect(tmp_path / "sapha.db") as conn:
        row = conn.execute("SELECT code_sealed FROM desk_messages WHERE id = ?", (message_id,)).fetchone()
    assert row == (None,)
