"""Alerts wired end to end: events recorded through the operator API reach followers by webhook, Web Push and
email, through the real server, the archive's relay, the alerts outbox and its workers.

Real parts only: the app under uvicorn, a webhook receiver on loopback verifying signatures with
``standardwebhooks``, a Web Push service on loopback decrypting with ``http_ece``, ``aiosmtpd`` for email, SQLite
files. Waiting is for an arrival (bounded by a deadline), never a timing threshold.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
import os
import re
import socket
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import feedparser
import http_ece
import httpx
import pytest
from aiosmtpd.controller import Controller
from alerts_receiver import Received, receiver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from live_server import Running, serve, test_settings
from standardwebhooks.webhooks import Webhook
from starlette.responses import Response

DEADLINE_S = 30.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Browser:
    """A push subscription's keys, as a browser holds them."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.p256dh = b64url(public)

    def subscription(self, endpoint: str) -> dict[str, object]:
        return {
            "endpoint": endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth)},
        }

    def decrypt(self, body: bytes) -> dict[str, Any]:
        plain = http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth, version="aes128gcm")
        return dict(json.loads(plain))


class Smtp:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
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


def text_of(msg: Message) -> str:
    part = msg.get_payload(decode=True)
    assert isinstance(part, bytes)
    return part.decode()


async def until(check: Callable[[], bool], what: str) -> None:
    """Wait for ``check()`` to hold (an arrival), failing after DEADLINE_S."""
    async with asyncio.timeout(DEADLINE_S):
        while not check():
            await asyncio.sleep(0.05)
    assert check(), what


async def call(app: Running, method: str, path: str, body: object = None, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
        return await http.request(method, path, json=body, **kw)


async def op(app: Running, path: str, body: object) -> dict[str, Any]:
    response = await call(app, "POST", path, body, headers=app.auth)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def follow(app: Running, target: dict[str, str], channel: dict[str, object]) -> dict[str, Any]:
    response = await call(app, "POST", "/api/follows", {"target": target, "channel": channel})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def sitting_with_bill(app: Running, sitting: str = "s1", bill: str = "b42") -> None:
    """A scheduled sitting whose agenda names the bill (which creates it): nothing is live yet."""
    await op(app, "/api/sittings", {"id": sitting, "title": "ประชุมวุฒิสภา", "chamber": "senate"})
    await op(app, f"/api/sittings/{sitting}/agenda", {"title": "ร่าง พ.ร.บ. ภาษีสรรพสามิต", "bill_id": bill})


def verified(secret: str, got: Received) -> dict[str, Any]:
    return dict(Webhook(secret).verify(got.body, got.headers))


def settings(tmp_path: Path, **overrides: object) -> Any:
    return test_settings(tmp_path, webhook_allow_private=True, public_url="https://app.senate.example", **overrides)


@pytest.mark.parametrize(
    ("sender_nice", "sender_idle"), [(0, False), (5, False), (0, True)], ids=["in-process", "niced", "sched-idle"]
)
async def test_a_vote_reaches_the_webhook_and_push_followers_with_its_counts(
    tmp_path: Path, sender_nice: int, sender_idle: bool
):
    """A vote recorded through the operator API reaches the bill's webhook follower (signed, with the counts) and
    its push follower (a message its keys decrypt); going live on the bill's agenda item says "being debated now"
    with the watch link at that moment. With ALERT_SENDER_NICE or ALERT_SENDER_IDLE the events are expanded in the
    sender process, from the one row each that the serving process wrote."""
    browser = Browser()
    config = settings(tmp_path, alert_sender_nice=sender_nice, alert_sender_idle=sender_idle)
    async with receiver() as hook, receiver() as push, serve(config) as app:
        await sitting_with_bill(app)
        made = await follow(app, {"kind": "bill", "value": "b42"}, {"type": "webhook", "url": f"{hook.url}/in"})
        await follow(
            app,
            {"kind": "bill", "value": "b42"},
            {"type": "push", "subscription": browser.subscription(f"{push.url}/p/1")},
        )
        await op(app, "/api/sittings/s1/status", {"status": "live"})
        await op(app, "/api/sittings/s1/agenda", {"title": "ร่าง พ.ร.บ. ภาษีสรรพสามิต (วาระที่หนึ่ง)", "bill_id": "b42"})
        await until(lambda: len(hook.received) == 1, "the debating alert")
        debating = verified(made["secret"], hook.received[0])
        assert debating["type"] == "bill.debating"
        assert re.fullmatch(r"https://app\.senate\.example/watch/s1\?t=\d+", debating["data"]["url"])

        await op(
            app,
            "/api/sittings/s1/votes",
            {
                "motion": "รับหลักการ",
                "yes": 150,
                "no": 20,
                "abstain": 5,
                "absent": 3,
                "result": "passed",
                "bill_id": "b42",
            },
        )
        await until(lambda: len(hook.received) == 2 and len(push.received) == 2, "the vote alerts")
        vote = verified(made["secret"], hook.received[1])
        assert vote["type"] == "bill.vote" and vote["data"]["subject"] == "bill:b42"
        for count in ("150", "20", "5", "3"):
            assert count in vote["data"]["body"]
        pushed = [browser.decrypt(got.body) for got in push.received]
        assert {p["tag"] for p in pushed} == {"bill:b42"}
        assert any("150" in p["body"] for p in pushed) and int(push.received[1].headers["ttl"]) > 0
        events = await app.app.state.services.alert_store.events()
        if sender_nice or sender_idle:
            # The agenda item and the vote, both expanded (the sitting going live concerns no follow, so it was not
            # written: alerts.delivery.Alerting._may_alert).
            assert len(events) == 2 and {e["state"] for e in events} == {"expanded"}
            assert sum(e["added"] for e in events) == 4
        else:
            assert events == []


async def test_a_keyword_follow_matches_a_caption_final(tmp_path: Path):
    """A keyword follow gets the caption final that its search finds, quoted, linked to the moment."""
    async with receiver() as hook, serve(settings(tmp_path)) as app:
        await op(app, "/api/sittings", {"id": "s2", "title": "ประชุม", "chamber": "senate"})
        made = await follow(app, {"kind": "keyword", "value": "สรรพสามิต"}, {"type": "webhook", "url": hook.url})
        recorder = app.app.state.recorder
        await recorder.caption_final("s2", "u1", "วันนี้จะพูดเรื่องงบประมาณ", 10.0, 12.0)
        await recorder.caption_final("s2", "u2", "ภาษีสรรพสามิตของเครื่องดื่ม", 61.5, 64.0)
        await until(lambda: len(hook.received) == 1, "the caption alert")
        got = verified(made["secret"], hook.received[0])
        assert got["type"] == "caption.mention" and "สรรพสามิต" in got["data"]["body"]
        assert got["data"]["url"].endswith("/watch/s2?t=61")


async def test_email_double_opt_in_then_an_alert_and_unsubscribe(tmp_path: Path, smtp: tuple[Smtp, str]):
    """An email follow is sent only its confirmation until the link comes back; then the vote arrives with an
    unsubscribe link whose GET only shows a button and whose POST ends the follow."""
    mailbox, url = smtp
    async with serve(settings(tmp_path, smtp_url=url)) as app:
        await sitting_with_bill(app)
        made = await follow(app, {"kind": "bill", "value": "b42"}, {"type": "email", "email": "reader@example.org"})
        assert made["follow"]["state"] == "pending"
        await until(lambda: len(mailbox.messages) == 1, "the confirmation message")
        link = re.search(
            r"https://app\.senate\.example(/api/follows/confirm\?token=[\w-]+)", text_of(mailbox.messages[0])
        )
        assert link is not None
        await op(
            app,
            "/api/sittings/s1/votes",
            {"motion": "รับหลักการ", "yes": 1, "no": 0, "abstain": 0, "absent": 0, "result": "passed", "bill_id": "b42"},
        )
        pending = await app.app.state.services.alert_store.deliveries(follow_id=made["follow"]["id"], kind="alert")
        assert pending == []  # unconfirmed: nothing but the confirmation

        page = await call(app, "GET", link.group(1))
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        await op(
            app,
            "/api/sittings/s1/votes",
            {
                "motion": "ลงมติวาระสาม",
                "yes": 170,
                "no": 2,
                "abstain": 1,
                "absent": 0,
                "result": "passed",
                "bill_id": "b42",
            },
        )
        await until(lambda: len(mailbox.messages) == 2, "the alert")
        alert = mailbox.messages[1]
        assert "170" in text_of(alert)
        unsubscribe = re.search(
            r"<https://app\.senate\.example(/api/follows/unsubscribe\?token=[^>]+)>", alert["List-Unsubscribe"]
        )
        assert unsubscribe is not None
        shown = await call(app, "GET", unsubscribe.group(1), headers={"Accept": "text/html"})
        assert shown.status_code == 200 and 'method="post"' in shown.text
        assert await app.app.state.services.alert_store.follow_state(made["follow"]["id"]) == "active"
        done = await call(app, "POST", unsubscribe.group(1), headers={"Accept": "application/json"})
        assert done.status_code == 200 and done.json()["state"] == "unsubscribed"
        assert await app.app.state.services.alert_store.follow_state(made["follow"]["id"]) == "unsubscribed"


async def test_an_alert_enqueued_before_a_stop_is_delivered_once_after_the_restart(tmp_path: Path):
    """The server stops after the vote is recorded and its alert enqueued but before any worker sends it; the next
    server on the same files sends it, exactly once."""
    async with receiver() as hook:
        async with serve(settings(tmp_path, alert_workers=False)) as first:
            await sitting_with_bill(first)
            made = await follow(first, {"kind": "bill", "value": "b42"}, {"type": "webhook", "url": hook.url})
            await op(
                first,
                "/api/sittings/s1/votes",
                {
                    "motion": "รับหลักการ",
                    "yes": 99,
                    "no": 1,
                    "abstain": 0,
                    "absent": 0,
                    "result": "passed",
                    "bill_id": "b42",
                },
            )
            queued = await first.app.state.services.alert_store.deliveries(state="pending")
            assert len(queued) == 1 and hook.received == []
        async with serve(settings(tmp_path)) as second:
            store = second.app.state.services.alert_store
            await until(lambda: len(hook.received) == 1, "the alert after the restart")
            rows: list[dict[str, Any]] = []
            async with asyncio.timeout(DEADLINE_S):
                while not rows or rows[0]["state"] != "delivered":
                    rows = await store.deliveries(follow_id=made["follow"]["id"])
                    await asyncio.sleep(0.05)
            # Replaying the same archived entry (as the relay does after a crash before marking it sent) adds nothing.
            assert await second.app.state.services.alerting.publish(await _replayed(second, queued[0]["event_id"])) == 0
        assert len(hook.received) == 1
        assert "99" in verified(made["secret"], hook.received[0])["data"]["body"]


async def _replayed(app: Running, event_id: str) -> Any:
    """The matcher event of the archived outbox entry ``event_id``, as the relay would hand it on again."""
    from archive.models import OutboxEntry

    entry = OutboxEntry(0, event_id, "x", "bill:b42", "vote.result", await _vote_data(app), None, "")
    return await app.app.state.recorder.relay.on_published.translate(entry)


async def _vote_data(app: Running) -> dict[str, Any]:
    votes = await app.app.state.store.votes("s1")
    return {k: v for k, v in votes[0].to_dict().items() if k != "seq"}


async def test_a_hanging_receiver_does_not_delay_another(tmp_path: Path):
    """While one follower's receiver hangs on its alert, another follower of the same bill gets its own."""
    release = asyncio.Event()

    async def hang(_: Received) -> Response:
        await release.wait()
        return Response(status_code=204)

    async with receiver() as slow, receiver() as fast, serve(settings(tmp_path)) as app:
        slow.handler = hang
        await sitting_with_bill(app)
        await follow(app, {"kind": "bill", "value": "b42"}, {"type": "webhook", "url": slow.url})
        made = await follow(app, {"kind": "bill", "value": "b42"}, {"type": "webhook", "url": fast.url})
        await op(
            app,
            "/api/sittings/s1/votes",
            {"motion": "รับหลักการ", "yes": 1, "no": 0, "abstain": 0, "absent": 0, "result": "passed", "bill_id": "b42"},
        )
        await until(lambda: len(slow.received) == 1 and len(fast.received) == 1, "both requests")
        assert not release.is_set()  # the slow one is still hanging
        assert verified(made["secret"], fast.received[0])["type"] == "bill.vote"
        release.set()


async def test_bad_follow_requests_name_the_field(tmp_path: Path):
    """Unknown bills, malformed push subscriptions, refused webhook URLs, email without SMTP and over-long keywords
    are 4xx with the JSON error shape naming the field (422 only for what breaks the documented schema: a private
    host and a server without SMTP are 409); nothing is kept."""
    browser = Browser()
    bad_keys = {
        **browser.subscription("https://push.example/x"),
        "keys": {"p256dh": "AAAA", "auth": b64url(browser.auth)},
    }
    cases: list[tuple[dict[str, object], int, str]] = [
        (
            {
                "target": {"kind": "bill", "value": "nope"},
                "channel": {"type": "webhook", "url": "https://example.org/h"},
            },
            404,
            "target.value",
        ),
        (
            {"target": {"kind": "bill", "value": "b42"}, "channel": {"type": "push", "subscription": bad_keys}},
            422,
            "channel.subscription.keys.p256dh",
        ),
        (
            {"target": {"kind": "bill", "value": "b42"}, "channel": {"type": "webhook", "url": "ftp://example.org/h"}},
            422,
            "channel.url",
        ),
        (
            {"target": {"kind": "bill", "value": "b42"}, "channel": {"type": "webhook", "url": "http://127.0.0.1:9/h"}},
            409,
            "channel.url",
        ),
        (
            {"target": {"kind": "bill", "value": "b42"}, "channel": {"type": "email", "email": "a@example.org"}},
            409,
            "channel.type",
        ),
        (
            {
                "target": {"kind": "keyword", "value": "ก" * 101},
                "channel": {"type": "webhook", "url": "https://example.org/h"},
            },
            422,
            "target.value",
        ),
        (
            {
                "target": {"kind": "planet", "value": "x"},
                "channel": {"type": "webhook", "url": "https://example.org/h"},
            },
            422,
            "target.kind",
        ),
    ]
    async with serve(test_settings(tmp_path)) as app:
        await sitting_with_bill(app)
        for body, status, field in cases:
            response = await call(app, "POST", "/api/follows", body)
            assert (response.status_code, response.json().get("field")) == (status, field), response.text
            assert response.json()["ok"] is False
        for path in ("/api/follows/confirm?token=ct_nope", "/api/follows/mt_nope"):
            response = await call(app, "GET", path, headers={"Accept": "application/json"})
            assert response.status_code == 404 and response.json()["field"] == "token"
        response = await call(
            app, "POST", "/api/follows/unsubscribe?token=mt_nope", headers={"Accept": "application/json"}
        )
        assert response.status_code == 404
        assert await app.app.state.services.alert_store.follows_for(["bill:b42"], keywords=True) == []


async def test_management_token_and_vapid_key(tmp_path: Path):
    """The management token shows and ends its follow; the VAPID key is generated once into its file and kept."""
    async with receiver() as hook, serve(settings(tmp_path)) as app:
        await sitting_with_bill(app)
        made = await follow(app, {"kind": "bill", "value": "b42"}, {"type": "webhook", "url": hook.url})
        shown = (await call(app, "GET", f"/api/follows/{made['token']}")).json()
        assert shown["follow"]["state"] == "active" and "secret" not in shown
        assert (await call(app, "DELETE", f"/api/follows/{made['token']}")).json()["state"] == "unsubscribed"
        key = (await call(app, "GET", "/api/push/vapid")).json()["key"]
        worker = await call(app, "GET", "/sw.js")
        assert worker.status_code == 200 and "javascript" in worker.headers["content-type"]
    async with serve(settings(tmp_path)) as again:
        assert (await call(again, "GET", "/api/push/vapid")).json()["key"] == key
    assert (tmp_path / "vapid_private.pem").stat().st_mode & 0o777 == 0o600


async def test_atom_feeds_have_stable_entries(tmp_path: Path):
    """The bill's feed, all bills' and a search feed parse as Atom, carry the vote, and keep their entry ids."""
    async with serve(settings(tmp_path)) as app:
        await sitting_with_bill(app)
        await op(
            app,
            "/api/sittings/s1/votes",
            {
                "motion": "รับหลักการ",
                "yes": 150,
                "no": 20,
                "abstain": 5,
                "absent": 3,
                "result": "passed",
                "bill_id": "b42",
            },
        )
        await app.app.state.recorder.caption_final("s1", "u1", "ภาษีสรรพสามิตของเครื่องดื่ม", 5.0, 7.0)
        for path in ("/feeds/bills/b42.atom", "/feeds/bills.atom"):
            first, second = [feedparser.parse((await call(app, "GET", path)).content) for _ in range(2)]
            assert not first.bozo and first.version == "atom10", path
            assert any("150" in e.summary for e in first.entries)
            assert [e.id for e in first.entries] == [e.id for e in second.entries]
            assert all(e.id.startswith("tag:app.senate.example,2025:") for e in first.entries)
        found = feedparser.parse((await call(app, "GET", "/feeds/search.atom", params={"q": "สรรพสามิต"})).content)
        assert len(found.entries) == 1 and found.entries[0].link.endswith("/watch/s1?t=5")
        assert (await call(app, "GET", "/feeds/bills/nope.atom")).status_code == 404
        assert (await call(app, "GET", "/feeds/search.atom", params={"q": "ก" * 101})).json()["field"] == "q"
