"""Durable delivery with real parts: webhooks verified by `standardwebhooks`, Web Push decrypted with `http_ece`,
email through a real `aiosmtpd` server, crashes between enqueue and delivery, hanging receivers, 410/404, Retry-After.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import re
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import date
from email.message import Message
from pathlib import Path

import psutil
import pytest
from aiosmtpd.controller import Controller
from alerts_receiver import Received, receiver
from standardwebhooks.webhooks import Webhook
from starlette.responses import Response
from test_alerts_push import Browser

from alerts import delivery
from alerts.delivery import Alerting, DeliveryWorkers, SenderProcess
from alerts.email import SmtpConfig
from alerts.follows import (
    Digest,
    EmailChannel,
    FollowRequest,
    PushChannel,
    Target,
    TargetKind,
    WebhookChannel,
    parse_follow_request,
)
from alerts.matcher import BillInfo, StageChanged, VoteResult
from alerts.messages import BillRef
from alerts.push import load_or_create_vapid, parse_subscription, topic_for
from alerts.schedule import DeliveryState, Outcome
from alerts.store_sqlite import AlertStore
from archive.bill_stages import Stage

BASE = "https://app.senate.example"
TAX = BillInfo(BillRef("42", "ร่าง พ.ร.บ. ภาษีสรรพสามิต"), topics=("tax",))


def vote(n: int = 1) -> VoteResult:
    return VoteResult(f"vote:{n}", 1_725_159_600.0, TAX, "รับหลักการ", 150, 20, 5, 25, True, "s7", 3723.0)


class Clock:
    def __init__(self, now: float = 1_725_159_600.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AlertStore]:
    s = AlertStore(tmp_path / "alerts.sqlite3")
    await s.open()
    yield s
    await s.close()


async def webhook_follow(store: AlertStore, url: str, bill: str = "42") -> str:
    created = await store.create_follow(
        FollowRequest(Target(TargetKind.BILL, bill), WebhookChannel(url)), now=1_725_159_600.0
    )
    assert created.secret is not None
    return created.secret


def workers(store: AlertStore, **kw: object) -> DeliveryWorkers:
    return DeliveryWorkers(store, base_url=BASE, allow_private=True, **kw)  # type: ignore[arg-type]


async def until(predicate: object) -> None:
    while not predicate():  # type: ignore[operator]
        await asyncio.sleep(0.01)


async def test_webhook_alert_verifies_with_standardwebhooks(store: AlertStore):
    """A vote on a followed bill reaches the webhook once, signed so that `standardwebhooks` verifies it, with the
    counts and the link to the moment; the outbox row is delivered."""
    async with receiver() as rx:
        secret = await webhook_follow(store, rx.url + "/hook")
        ws = workers(store)
        await ws.start()
        try:
            assert await Alerting(store, ws).publish(vote()) == 1
            await until(lambda: rx.received)
        finally:
            await ws.stop()
        (got,) = rx.received
        payload = Webhook(secret).verify(got.body, got.headers)
        assert payload["type"] == "bill.vote"
        assert payload["data"]["url"] == f"{BASE}/watch/s7?t=3723" and "150" in payload["data"]["body_en"]
        (row,) = await store.deliveries(event_id="vote:1")
        assert (row["state"], row["attempts"], row["msg_id"]) == ("delivered", 1, got.headers["webhook-id"])
        assert await Alerting(store, ws).publish(vote()) == 0  # the same event again adds nothing


async def test_push_alert_decrypts_with_ttl_and_topic(store: AlertStore, tmp_path: Path):
    """A push follow's alert reaches the loopback push service encrypted for the subscription, with TTL and the
    bill's Topic; a newer alert on the bill replaces one not yet sent."""
    browser = Browser()
    vapid = load_or_create_vapid(tmp_path / "var" / "vapid_private.pem")
    async with receiver() as svc:

        async def created(_: Received) -> Response:
            return Response(status_code=201)

        svc.handler = created
        sub = parse_subscription(browser.subscription(svc.url + "/push/1"), allow_http=True)
        await store.create_follow(FollowRequest(Target(TargetKind.BILL, "42"), PushChannel(sub)), now=1.0)
        alerting = Alerting(store)
        stage = StageChanged("st:1", 1.0, TAX, Stage.HOUSE_THIRD_READING, Stage.SENATE_FIRST_READING, date(2024, 7, 10))
        await alerting.publish(stage)
        await alerting.publish(vote())
        assert [r["state"] for r in await store.deliveries(channel="push")] == ["replaced", "pending"]
        ws = workers(store, vapid=vapid)
        assert await ws.run_once() == 1
        await ws.stop()
        (got,) = svc.received
        data = json.loads(browser.decrypt(got.body))
        assert data["url"] == f"{BASE}/watch/s7?t=3723" and data["tag"] == "bill:42"
        assert got.headers["topic"] == topic_for("bill:42") and int(got.headers["ttl"]) > 0


class Smtp:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[attr-defined]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Smtp, SmtpConfig]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = Smtp()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, SmtpConfig.from_url(f"smtp+plain://127.0.0.1:{port}", sender="alerts@senate.example")
    controller.stop()


def text_of(msg: Message) -> str:
    part = msg.get_payload(decode=True)
    assert isinstance(part, bytes)
    return part.decode()


async def test_email_double_opt_in(store: AlertStore, smtp: tuple[Smtp, SmtpConfig]):
    """An email follow gets only the confirmation until it is confirmed; then alerts arrive with an unsubscribe
    link (and List-Unsubscribe) that ends the follow."""
    server, config = smtp
    req = await parse_follow_request(
        {"target": {"kind": "bill", "value": "42"}, "channel": {"type": "email", "email": "reader@example.org"}}
    )
    created = await store.create_follow(req, now=1_725_159_600.0)
    assert created.state == "pending"
    ws = workers(store, smtp=config)
    alerting = Alerting(store, ws)
    assert await alerting.publish(vote(1)) == 0  # unconfirmed: nothing planned
    await ws.run_once()
    (confirm,) = server.messages
    token = re.search(r"/api/follows/confirm\?token=([\w-]+)", text_of(confirm))
    assert token is not None and confirm["To"] == "reader@example.org"
    assert (await store.deliveries(kind="confirm"))[0]["payload"] == "{}"  # the token is not kept once sent
    assert await store.confirm_email(token.group(1), now=1_725_159_601.0) == created.id
    assert await alerting.publish(vote(2)) == 1
    await ws.run_once()
    await ws.stop()
    alert = server.messages[1]
    assert "150" in text_of(alert)
    assert alert["List-Unsubscribe"].startswith(f"<{BASE}/api/follows/unsubscribe?token=u1.")
    unsub = re.search(r"token=([\w.=-]+)", alert["List-Unsubscribe"])
    assert unsub is not None and await store.unsubscribe(unsub.group(1)) == created.id
    assert await alerting.publish(vote(3)) == 0


async def test_daily_digest_gathers_a_days_alerts(store: AlertStore, smtp: tuple[Smtp, SmtpConfig]):
    """A daily-digest follow's alerts wait until 07:00 Thai time and go out together in one message."""
    server, config = smtp
    clock = Clock()
    created = await store.create_follow(
        FollowRequest(Target(TargetKind.BILL, "42"), EmailChannel("d@example.org", Digest.DAILY)),
        now=clock.now,
    )
    ws = workers(store, smtp=config, clock=clock)
    await ws.run_once()  # the confirmation
    (confirm,) = server.messages
    token = re.search(r"/api/follows/confirm\?token=([\w-]+)", text_of(confirm))
    assert token is not None and await store.confirm_email(token.group(1), now=clock.now) == created.id
    alerting = Alerting(store, ws, clock=clock)
    await alerting.publish(vote(1))
    await alerting.publish(vote(2))
    assert await ws.run_once() == 0  # not yet 07:00
    clock.now += 24 * 3600
    await ws.run_once()
    await ws.stop()
    assert len(server.messages) == 2 and "2 alerts" in server.messages[1]["Subject"]
    assert {r["state"] for r in await store.deliveries(follow_id=created.id, kind="alert")} == {"delivered"}


async def test_abandoned_claim_is_delivered_once_by_a_new_worker_set(tmp_path: Path):
    """Kill between enqueue and delivery: a worker set claims and dies; a new process's set on the same file,
    after the lease, delivers the alert exactly once."""
    path = tmp_path / "alerts.sqlite3"
    clock = Clock()
    async with receiver() as rx:
        first = AlertStore(path)
        await first.open()
        await webhook_follow(first, rx.url + "/hook")
        assert await Alerting(first, clock=clock).publish(vote()) == 1
        dead = workers(first, clock=clock)
        claimed = await first.claim(dead.owner, now=clock.now, limit=10, per_endpoint=1, lease_s=dead.lease_s)
        assert len(claimed) == 1  # ... and the process dies here, before sending
        await first.close()

        second = AlertStore(path)
        await second.open()
        ws = workers(second, clock=clock)
        assert await ws.run_once() == 0  # still leased to the dead set
        clock.now += dead.lease_s + 1
        assert await ws.run_once() == 1
        clock.now += 3600
        assert await ws.run_once() == 0
        await ws.stop()
        assert len(rx.received) == 1
        assert [r["state"] for r in await second.deliveries()] == ["delivered"]
        await second.close()


async def test_two_worker_sets_on_one_file_never_send_a_delivery_twice(tmp_path: Path):
    """Two stores (two connections, as two processes) with running worker sets share the outbox: every alert is
    sent exactly once."""
    path = tmp_path / "alerts.sqlite3"
    async with receiver() as rx:
        a, b = AlertStore(path), AlertStore(path)
        await a.open()
        await b.open()
        for i in range(40):
            await webhook_follow(a, f"{rx.url}/hook/{i}")
        wa, wb = workers(a, concurrency=8), workers(b, concurrency=8)
        await wa.start()
        await wb.start()
        await Alerting(a, wa).publish(vote())
        wb.wake()
        await until(lambda: len(rx.received) >= 40)
        await until(lambda: wa._tasks == set() and wb._tasks == set())
        await wa.stop()
        await wb.stop()
        ids = [r.headers["webhook-id"] for r in rx.received]
        assert len(ids) == len(set(ids)) == 40
        await a.close()
        await b.close()


async def test_a_hanging_receiver_does_not_delay_another_endpoint(store: AlertStore):
    """While one receiver hangs on its request, another endpoint's alert of the same event is delivered."""
    release = asyncio.Event()
    async with receiver() as slow, receiver() as fast:

        async def hang(_: Received) -> Response:
            await release.wait()
            return Response(status_code=204)

        slow.handler = hang
        await webhook_follow(store, slow.url + "/slow")
        await webhook_follow(store, fast.url + "/fast")
        ws = workers(store, timeout_s=120)
        await ws.start()
        try:
            await Alerting(store, ws).publish(vote())
            while not any(r["state"] == "delivered" for r in await store.deliveries()):
                await asyncio.sleep(0.01)
            states = sorted(r["state"] for r in await store.deliveries())
            hanging = bool(slow.received) and not release.is_set()
        finally:
            release.set()
            await ws.stop()
        # The fast endpoint's row finished while the slow one's request was still open.
        assert states == ["delivered", "pending"] and hanging
        assert sorted(r["state"] for r in await store.deliveries()) == ["delivered", "delivered"]


async def test_410_disables_the_endpoint(store: AlertStore):
    """A webhook answering 410 is disabled at once: its follow gets nothing more."""
    async with receiver() as rx:

        async def gone(_: Received) -> Response:
            return Response(status_code=410)

        rx.handler = gone
        await webhook_follow(store, rx.url + "/gone")
        ws = workers(store)
        alerting = Alerting(store, ws)
        await alerting.publish(vote(1))
        await ws.run_once()
        (row,) = await store.deliveries()
        endpoint = await store.endpoint(row["endpoint_id"])
        assert row["state"] == "gone" and endpoint is not None and endpoint["disabled"] == "gone"
        assert await alerting.publish(vote(2)) == 0
        assert await ws.run_once() == 0
        await ws.stop()
        assert len(rx.received) == 1


async def test_push_404_removes_the_subscription(store: AlertStore, tmp_path: Path):
    """A push service answering 404 ends the subscription: its follows are removed and its keys erased."""
    browser = Browser()
    async with receiver() as svc:

        async def not_found(_: Received) -> Response:
            return Response(status_code=404)

        svc.handler = not_found
        sub = parse_subscription(browser.subscription(svc.url + "/push/1"), allow_http=True)
        created = await store.create_follow(FollowRequest(Target(TargetKind.BILL, "42"), PushChannel(sub)), now=1.0)
        ws = workers(store, vapid=load_or_create_vapid(tmp_path / "vapid.pem"))
        await Alerting(store, ws).publish(vote())
        await ws.run_once()
        await ws.stop()
        assert await store.follow_state(created.id) == "removed"
        (row,) = await store.deliveries()
        endpoint = await store.endpoint(row["endpoint_id"])
        assert endpoint is not None and endpoint["p256dh"] is None and endpoint["disabled"] == "gone"


async def test_retry_after_sets_the_next_attempt(store: AlertStore):
    """A 503 with Retry-After: 120 schedules the next attempt exactly 120 s after the attempt (the schedule's
    jittered 5 s is shorter), on the injected clock; the next attempt then delivers."""
    clock = Clock(1000.0)
    async with receiver() as rx:

        async def busy(_: Received) -> Response:
            return Response(status_code=503, headers={"retry-after": "120"})

        rx.handler = busy
        await webhook_follow(store, rx.url + "/busy")
        ws = workers(store, clock=clock)
        await Alerting(store, ws, clock=clock).publish(vote())
        await ws.run_once()
        (row,) = await store.deliveries()
        assert (row["state"], row["attempts"], row["next_at"], row["last_status"]) == ("pending", 1, 1120.0, 503)
        clock.now = 1119.0
        assert await ws.run_once() == 0
        rx.handler = lambda _: asyncio.sleep(0, Response(status_code=204))
        clock.now = 1120.0
        assert await ws.run_once() == 1
        await ws.stop()
        (row,) = await store.deliveries()
        assert (row["state"], row["attempts"]) == ("delivered", 2)
        assert len({r.headers["webhook-id"] for r in rx.received}) == 1  # the same message id on the retry


async def test_one_endpoints_backlog_does_not_hold_back_others(store: AlertStore):
    """A receiver with many due rows at the head of the queue does not keep another endpoint's row from being
    claimed in the same round."""
    async with receiver() as rx:
        await webhook_follow(store, rx.url + "/busy")
        for i in range(30):  # thirty events for the busy endpoint's follow come first
            await Alerting(store, clock=lambda: 1000.0 + i).publish(vote(i))
        await webhook_follow(store, rx.url + "/other")
        await Alerting(store, clock=lambda: 2000.0).publish(vote(99))
        claimed = await store.claim("w", now=3000.0, limit=2, per_endpoint=1, lease_s=60)
        assert sorted(c.event_id for c in claimed) == ["vote:0", "vote:99"]


async def test_a_large_event_is_enqueued_in_chunks_waking_the_workers_after_each(
    store: AlertStore, monkeypatch: pytest.MonkeyPatch
):
    """Chunked enqueue: the workers are woken as soon as the first chunk is written, every row is added once, and
    publishing the event again (as the relay does after a crash midway) adds nothing."""
    monkeypatch.setattr(delivery, "ENQUEUE_CHUNK", 2)
    for i in range(5):
        await webhook_follow(store, f"http://127.0.0.1:9/hook/{i}")

    class Waker:
        def __init__(self) -> None:
            self.wakes: list[int] = []

        def wake(self) -> None:
            self.wakes.append(len(self.wakes))

    waker = Waker()
    assert await Alerting(store, waker).publish(vote()) == 5
    assert len(waker.wakes) == 3 and len(await store.deliveries(event_id="vote:1")) == 5
    assert await Alerting(store, waker).publish(vote()) == 0 and len(waker.wakes) == 3


async def test_results_are_recorded_together_but_only_by_the_leases_owner(store: AlertStore):
    """``finish_many`` writes a batch of results in one call; a row whose lease another worker holds is refused
    (False) and keeps that worker's lease, while the others are recorded."""
    for i in range(3):
        await webhook_follow(store, f"http://127.0.0.1:9/hook/{i}")
    now = 1_725_159_600.0
    await Alerting(store, clock=Clock(now)).publish(vote())
    mine = await store.claim("w_a", now=now, limit=2, per_endpoint=1, lease_s=60)
    theirs = await store.claim("w_b", now=now, limit=5, per_endpoint=1, lease_s=60)
    assert len(mine) == 2 and len(theirs) == 1
    done = DeliveryState(1, None, "delivered")
    answers = await store.finish_many(
        [([r], done, Outcome.DELIVERED, 204, None) for r in [*mine, *theirs]], "w_a", now=now + 1
    )
    assert answers == [True, True, False]
    rows = {r["id"]: r for r in await store.deliveries(event_id="vote:1")}
    assert [rows[r.id]["state"] for r in mine] == ["delivered", "delivered"]
    assert (rows[theirs[0].id]["state"], rows[theirs[0].id]["lease_owner"]) == ("pending", "w_b")


async def test_sender_process_delivers_from_a_niced_child_and_is_restarted_if_it_dies(tmp_path: Path):
    """ALERT_SENDER_NICE: the workers run in a child at a lower priority, woken by ``publish``; the alert arrives
    signed as usual. Killed, the child is replaced and the next alert arrives too; ``stop`` ends it."""
    path = tmp_path / "alerts.sqlite3"
    store = AlertStore(path)
    await store.open()
    async with receiver() as rx:
        secret = await webhook_follow(store, rx.url + "/hook")
        sp = SenderProcess(
            path, base_url=BASE, vapid_path=tmp_path / "vapid.pem", allow_private=True, nice=5, poll_s=0.2
        )
        await sp.start()
        try:
            await Alerting(store, sp).publish(vote(1))
            await until(lambda: len(rx.received) == 1)
            assert sp.pid is not None and sp.pid != os.getpid()
            assert psutil.Process(sp.pid).nice() == min(19, psutil.Process().nice() + 5)
            assert Webhook(secret).verify(rx.received[0].body, rx.received[0].headers)["type"] == "bill.vote"
            first = sp.pid
            os.kill(first, signal.SIGKILL)
            await until(lambda: sp.pid != first)
            await Alerting(store, sp).publish(vote(2))
            await until(lambda: len(rx.received) == 2)
            await until_async(lambda: store.count(state="pending"), 0)
        finally:
            last = sp.pid
            await sp.stop()
        assert last is not None and not psutil.pid_exists(last)
    assert [r["state"] for r in await store.deliveries()] == ["delivered", "delivered"]
    await store.close()


async def until_async(read: object, want: object) -> None:
    while await read() != want:  # type: ignore[operator]
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("channel", ["webhook", "push"])
async def test_a_dns_failure_is_retried_and_only_a_refused_address_ends_the_endpoint(
    store: AlertStore, tmp_path: Path, channel: str
):
    """The receiver's host does not resolve at send time (EAI_AGAIN: the resolver is down): the delivery is retried
    on the schedule and the endpoint stays enabled. Once the host resolves to a private address, the URL policy
    refuses it and the endpoint is disabled (a push subscription's keys erased)."""
    clock = Clock(1000.0)
    answers: list[object] = [socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")]

    async def resolver(host: str, port: int) -> list[str]:
        answer = answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    url = "https://receiver.example/hook/1"
    if channel == "webhook":
        await webhook_follow(store, url)
    else:
        sub = parse_subscription(Browser().subscription(url))
        await store.create_follow(FollowRequest(Target(TargetKind.BILL, "42"), PushChannel(sub)), now=1.0)
    ws = DeliveryWorkers(
        store,
        base_url=BASE,
        vapid=load_or_create_vapid(tmp_path / "vapid.pem"),
        allow_private=False,
        resolver=resolver,
        clock=clock,
    )
    await Alerting(store, ws, clock=clock).publish(vote())
    assert await ws.run_once() == 1
    (row,) = await store.deliveries()
    endpoint = await store.endpoint(row["endpoint_id"])
    assert (row["state"], row["attempts"]) == ("pending", 1) and row["next_at"] > clock.now
    assert endpoint is not None and endpoint["disabled"] is None and "does not resolve" in row["last_error"]

    answers[0] = ["10.20.30.40"]
    clock.now = row["next_at"]
    assert await ws.run_once() == 1
    await ws.stop()
    (row,) = await store.deliveries()
    endpoint = await store.endpoint(row["endpoint_id"])
    assert row["state"] == "gone" and endpoint is not None and endpoint["disabled"] == "gone"
