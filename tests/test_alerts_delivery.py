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
import sqlite3
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
from alerts.matcher import BillInfo, CaptionFinal, StageChanged, VoteResult, event_to_json
from alerts.messages import BillRef
from alerts.push import load_or_create_vapid, parse_subscription, topic_for
from alerts.schedule import DeliveryState, Outcome
from alerts.store_sqlite import AlertStore, Claimed, LeaseLost
from archive.bill_stages import Stage
from sapha.settings import Settings

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


async def test_a_newer_push_alert_replaces_older_pending_ones_of_its_subject_across_chunks(
    store: AlertStore, monkeypatch: pytest.MonkeyPatch
):
    """One push subscription follows the bill and its topic (two follows, one alert subject): of an event's two rows
    only the newer stays pending, also when a chunk boundary falls between them; the next event's row replaces it,
    but not a row already leased to a worker (it is being sent), and not other subscriptions' rows."""
    monkeypatch.setattr(delivery, "ENQUEUE_CHUNK", 1)
    monkeypatch.setattr(delivery, "FIRST_CHUNK", 1)
    browser = Browser()
    one = parse_subscription(browser.subscription("http://127.0.0.1:9/push/1"), allow_http=True)
    other = parse_subscription(Browser().subscription("http://127.0.0.1:9/push/2"), allow_http=True)
    await store.create_follow(FollowRequest(Target(TargetKind.BILL, "42"), PushChannel(one)), now=1.0)
    await store.create_follow(FollowRequest(Target(TargetKind.TOPIC, "tax"), PushChannel(one)), now=1.0)
    await store.create_follow(FollowRequest(Target(TargetKind.BILL, "42"), PushChannel(other)), now=1.0)
    clock = Clock(1000.0)
    assert await Alerting(store, clock=clock).publish(vote(1)) == 3
    states = [(r["endpoint_id"], r["state"]) for r in await store.deliveries()]
    (mine,) = {e for e, _ in states if sum(1 for x, _ in states if x == e) == 2}
    assert sorted(st for e, st in states if e == mine) == ["pending", "replaced"]
    assert [st for e, st in states if e != mine] == ["pending"]
    leased = await store.claim("w", now=clock.now, limit=10, per_endpoint=1, lease_s=60)
    assert len(leased) == 2
    assert await Alerting(store, clock=clock).publish(vote(2)) == 3
    by_event = {(r["endpoint_id"], r["event_id"], r["state"]) for r in await store.deliveries()}
    assert (mine, "vote:1", "pending") in by_event  # leased when vote 2 came: it is being sent, not replaced
    assert sorted(st for e, ev, st in by_event if e == mine and ev == "vote:2") == ["pending", "replaced"]


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


async def test_a_batch_of_mixed_results_is_recorded_as_one_at_a_time_would_be(store: AlertStore):
    """``finish_many`` writes deliveries to healthy endpoints together and everything else one by one: in one
    batch, a delivery ends an endpoint's failure streak, a 410 disables its endpoint and cancels its other pending
    row, two results of one endpoint are applied in order, and a row leased to another worker is refused."""
    for i in range(6):
        await webhook_follow(store, f"http://127.0.0.1:9/hook/{i}")
    now = 1_725_159_600.0
    await Alerting(store, clock=Clock(now)).publish(vote(1))
    await Alerting(store, clock=Clock(now + 1)).publish(vote(2))
    rows = await store.claim("w_a", now=now + 2, limit=12, per_endpoint=2, lease_s=60)
    assert len(rows) == 12
    by_endpoint: dict[str, list[Claimed]] = {}
    for r in rows:
        by_endpoint.setdefault(r.endpoint_id, []).append(r)
    a, b, c, d, e, f = sorted(by_endpoint)
    with sqlite3.connect(store.path) as db:  # endpoint a had been failing; f's second row goes to another worker
        db.execute("UPDATE endpoints SET failures = 3, failing_since = ? WHERE id = ?", (now - 60, a))
        db.execute("UPDATE outbox SET lease_owner = 'w_b' WHERE id = ?", (by_endpoint[f][1].id,))
    delivered, gone = DeliveryState(1, None, "delivered"), DeliveryState(1, None, "gone")
    retry = DeliveryState(1, now + 10, None)
    results = [
        ([by_endpoint[a][0]], delivered, Outcome.DELIVERED, 204, None),
        ([by_endpoint[b][0]], delivered, Outcome.DELIVERED, 204, None),
        ([by_endpoint[c][0]], gone, Outcome.GONE, 410, None),
        ([by_endpoint[d][0]], retry, Outcome.RETRY, 500, "HTTP 500"),
        ([by_endpoint[d][1]], delivered, Outcome.DELIVERED, 204, None),
        ([by_endpoint[e][0]], delivered, Outcome.DELIVERED, 201, None),
        ([by_endpoint[f][1]], delivered, Outcome.DELIVERED, 204, None),
    ]
    assert await store.finish_many(results, "w_a", now=now + 3) == [True, True, True, True, True, True, False]
    state = {r["id"]: r for r in await store.deliveries()}
    assert state[by_endpoint[a][0].id]["state"] == "delivered" and state[by_endpoint[a][0].id]["lease_owner"] is None
    assert [state[r.id]["state"] for r in by_endpoint[c]] == ["gone", "cancelled"]
    assert (state[by_endpoint[d][0].id]["state"], state[by_endpoint[d][0].id]["next_at"]) == ("pending", now + 10)
    assert state[by_endpoint[d][1].id]["state"] == "delivered" and state[by_endpoint[e][0].id]["last_status"] == 201
    assert (state[by_endpoint[f][1].id]["state"], state[by_endpoint[f][1].id]["lease_owner"]) == ("pending", "w_b")
    health = {}
    for x in (a, c, d):
        endpoint = await store.endpoint(x)
        assert endpoint is not None
        health[x] = endpoint
    assert (health[a]["failures"], health[a]["failing_since"]) == (0, None)
    assert health[c]["disabled"] == "gone"
    assert (health[d]["failures"], health[d]["disabled"]) == (0, None)  # a 500, then a delivery


async def test_a_bursts_results_are_written_in_few_transactions(store: AlertStore, monkeypatch: pytest.MonkeyPatch):
    """The workers record a burst's answers in batches (a quarter of the slots, or what finished within
    ``RECORD_WAIT_S``), not each as it comes: 60 answers that come one at a time, a couple of milliseconds apart,
    are written in a few transactions, and each alert arrives once."""
    calls: list[int] = []
    finish_many = AlertStore.finish_many

    async def counted(self: AlertStore, results: list, owner: str, *, now: float) -> list[bool]:
        calls.append(len(results))
        return await finish_many(self, results, owner, now=now)

    monkeypatch.setattr(AlertStore, "finish_many", counted)
    async with receiver() as rx:

        async def staggered(got: Received) -> Response:
            await asyncio.sleep(0.002 * int(got.path.rsplit("/", 1)[1]))
            return Response(status_code=204)

        rx.handler = staggered
        for i in range(60):
            await webhook_follow(store, f"{rx.url}/hook/{i}")
        ws = workers(store, concurrency=20)
        await ws.start()
        try:
            await Alerting(store, ws).publish(vote())
            await until(lambda: sum(calls) == 60)
        finally:
            await ws.stop()
        assert sorted(r.path for r in rx.received) == sorted(f"/hook/{i}" for i in range(60))
    assert len(calls) < 30 and max(calls) > 1
    assert await store.count(state="delivered") == 60


async def test_the_outbox_keeps_one_index_of_pending_rows_per_endpoint(tmp_path: Path):
    """A database made before the two per-endpoint indexes were merged gets the merged one and loses the old ones
    when it is opened; its rows stay and are claimed as before."""
    path = tmp_path / "old.sqlite3"
    old = AlertStore(path)
    await old.open()
    await webhook_follow(old, "http://127.0.0.1:9/hook")
    await Alerting(old, clock=Clock()).publish(vote())
    await old.close()
    with sqlite3.connect(path) as db:
        db.execute("DROP INDEX outbox_pending")
        db.execute("CREATE INDEX outbox_leased ON outbox (endpoint_id, lease_until) WHERE state = 'pending'")
        db.execute("CREATE INDEX outbox_topic ON outbox (endpoint_id, topic) WHERE state = 'pending'")
    reopened = AlertStore(path)
    await reopened.open()
    try:
        with sqlite3.connect(path) as db:
            names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "outbox_pending" in names and not names & {"outbox_leased", "outbox_topic"}
        (row,) = await reopened.claim("w", now=Clock()() + 1, limit=5, per_endpoint=1, lease_s=60)
        assert row.event_id == "vote:1"
    finally:
        await reopened.close()


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
            assert os.sched_getscheduler(sp.pid) == os.SCHED_OTHER  # SCHED_IDLE only with ALERT_SENDER_IDLE
            assert Webhook(secret).verify(rx.received[0].body, rx.received[0].headers)["type"] == "bill.vote"
            # Killed only once the answer is recorded: answers are written in batches, and a child killed between
            # the send and its record leaves the row leased for lease_s, to be sent again after (at least once) —
            # a different case, not this test's.
            await until_async(lambda: store.count(state="pending"), 0)
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


async def test_an_event_that_fails_to_expand_does_not_hold_back_the_next_and_is_given_up_in_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The oldest waiting event cannot be written (a trigger in the real database refuses its rows): the next one is
    expanded all the same, the failing one stays waiting for the next pass, and after ``MAX_EXPAND_ATTEMPTS`` it is
    marked failed with the reason."""
    monkeypatch.setattr(delivery, "MAX_EXPAND_ATTEMPTS", 2)
    path = tmp_path / "alerts.sqlite3"
    store = AlertStore(path)
    await store.open()
    for i in range(3):
        await webhook_follow(store, f"http://127.0.0.1:9/hook/{i}")
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON outbox WHEN NEW.event_id = 'vote:1' "
            "BEGIN SELECT RAISE(ABORT, 'test: refused'); END"
        )
    alerting = Alerting(store, clock=Clock(), defer=True)
    await alerting.publish(vote(1))
    await alerting.publish(vote(2))
    assert await alerting.expand_waiting("x_1") == 1
    states = {e["id"]: e["state"] for e in await store.events()}
    assert states == {"vote:1": "pending", "vote:2": "expanded"} and await store.count(event_id="vote:2") == 3
    assert await alerting.expand_waiting("x_1") == 0
    (failed,) = await store.events(state="failed")
    assert failed["id"] == "vote:1" and "refused" in failed["last_error"] and await store.count(event_id="vote:1") == 0
    await store.close()


def sender(path: Path, tmp_path: Path, **kw: object) -> SenderProcess:
    return SenderProcess(path, base_url=BASE, vapid_path=tmp_path / "vapid.pem", allow_private=True, poll_s=0.2, **kw)  # type: ignore[arg-type]


def arrivals_by_path(rx: object) -> dict[str, int]:
    out: dict[str, int] = {}
    for got in rx.received:  # type: ignore[attr-defined]
        out[got.path] = out.get(got.path, 0) + 1
    return out


async def test_an_event_recorded_before_a_crash_is_expanded_and_delivered_once_by_the_next_sender(tmp_path: Path):
    """Deferred expansion (a SenderProcess): ``publish`` makes one durable write, the event, and no outbox row. The
    server dies before any child expands it; the next server's sender child expands and sends it, each follow
    exactly once, and publishing the event again (the relay's replay) adds nothing."""
    path = tmp_path / "alerts.sqlite3"
    async with receiver() as rx:
        first = AlertStore(path)
        await first.open()
        for i in range(150):  # more than one chunk
            await webhook_follow(first, f"{rx.url}/hook/{i}")
        never_started = sender(path, tmp_path)
        alerting = Alerting(first, never_started)
        assert alerting.defer and await alerting.publish(vote()) == 0
        assert await first.count() == 0 and [e["state"] for e in await first.events()] == ["pending"]
        await first.close()  # ... the server dies here

        second = AlertStore(path)
        await second.open()
        sp = sender(path, tmp_path)
        await sp.start()
        try:
            await until_async(lambda: second.count(state="delivered"), 150)
            assert await Alerting(second, sp).publish(vote()) == 0
            await asyncio.sleep(0.5)  # a wrongly re-expanded event would add rows in this time
        finally:
            await sp.stop()
        assert arrivals_by_path(rx) == {f"/hook/{i}": 1 for i in range(150)}
        assert await second.count(event_id="vote:1") == 150
        (event,) = await second.events()
        assert (event["state"], event["added"], event["lease_owner"]) == ("expanded", 150, None)
        await second.close()


async def test_a_sender_killed_mid_expansion_is_replaced_and_every_follow_gets_one_delivery(tmp_path: Path):
    """The child expanding a 300-follow vote is SIGKILLed after its first chunk is written and sent, before the rest
    (a trigger in the real database makes the second chunk fail until then). Its replacement takes the event over at
    once (the same slot's lease) and writes only what is missing: every follow gets exactly one delivery, and the
    outbox holds one row per follow."""
    path = tmp_path / "alerts.sqlite3"
    store = AlertStore(path)
    await store.open()
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TRIGGER stall BEFORE INSERT ON outbox WHEN (SELECT COUNT(*) FROM outbox WHERE "
            "event_id = NEW.event_id) >= 150 BEGIN SELECT RAISE(ABORT, 'test: the expander stalls here'); END"
        )
    async with receiver() as rx:
        for i in range(300):
            await webhook_follow(store, f"{rx.url}/hook/{i}")
        sp = sender(path, tmp_path)
        await sp.start()
        try:
            await Alerting(store, sp).publish(vote())
            await until_async(lambda: store.count(state="delivered"), delivery.FIRST_CHUNK)
            (event,) = await store.events()
            assert event["state"] == "pending" and event["lease_owner"] is not None  # mid-expansion, leased
            assert await store.count(event_id="vote:1") == delivery.FIRST_CHUNK
            killed = sp.pid
            assert killed is not None
            os.kill(killed, signal.SIGKILL)
            with sqlite3.connect(path) as db:
                db.execute("DROP TRIGGER stall")
            await until(lambda: sp.pid != killed)
            await until_async(lambda: store.count(state="delivered"), 300)
        finally:
            await sp.stop()
    assert arrivals_by_path(rx) == {f"/hook/{i}": 1 for i in range(300)}
    assert len({r.headers["webhook-id"] for r in rx.received}) == 300
    assert await store.count(event_id="vote:1") == 300
    (event,) = await store.events()
    assert (event["state"], event["lease_owner"]) == ("expanded", None)
    await store.close()


async def test_two_sender_processes_deliver_each_row_once(tmp_path: Path):
    """ALERT_SENDER_PROCS=2 with ALERT_SENDER_IDLE: two children in the SCHED_IDLE class share the outbox through
    its leases; every follow of a 400-follow vote gets exactly one delivery, and ``stop`` ends both."""
    path = tmp_path / "alerts.sqlite3"
    store = AlertStore(path)
    await store.open()
    async with receiver() as rx:
        for i in range(400):
            await webhook_follow(store, f"{rx.url}/hook/{i}")
        sp = sender(path, tmp_path, procs=2, idle=True)
        await sp.start()
        try:
            pids = sp.pids
            assert len(set(pids)) == 2 and os.getpid() not in pids
            await Alerting(store, sp).publish(vote())
            await until_async(lambda: store.count(state="delivered"), 400)
            # Every thread of each child (the loop's, the store's, the executor's): the class is per thread.
            threads = [t.id for p in pids for t in psutil.Process(p).threads()]
            assert len(threads) > 2 and {os.sched_getscheduler(t) for t in threads} == {os.SCHED_IDLE}
        finally:
            await sp.stop()
        assert not any(psutil.pid_exists(p) for p in pids)
    assert arrivals_by_path(rx) == {f"/hook/{i}": 1 for i in range(400)}
    assert len({r.headers["webhook-id"] for r in rx.received}) == 400
    await store.close()


@pytest.mark.fast
def test_sender_switches_come_from_the_environment():
    """ALERT_WORKERS is on unless turned off, ALERT_SENDER_IDLE off unless turned on; other values keep the
    default."""
    assert Settings.from_env({}).alert_workers and not Settings.from_env({}).alert_sender_idle
    for off in ("0", "false", " No ", "OFF"):
        assert not Settings.from_env({"ALERT_WORKERS": off}).alert_workers
    for on in ("1", "true", "Yes", " on"):
        assert Settings.from_env({"ALERT_SENDER_IDLE": on}).alert_sender_idle
    assert Settings.from_env({"ALERT_WORKERS": "maybe", "ALERT_SENDER_IDLE": "maybe"}).alert_workers
    assert not Settings.from_env({"ALERT_SENDER_IDLE": "maybe"}).alert_sender_idle


@pytest.mark.fast
def test_sender_procs_come_from_the_environment():
    assert delivery.sender_procs_from_env({}) == 1
    assert delivery.sender_procs_from_env({"ALERT_SENDER_PROCS": "2"}) == 2
    for bad in ("0", "-1", "two", "99"):
        with pytest.raises(ValueError, match="ALERT_SENDER_PROCS"):
            delivery.sender_procs_from_env({"ALERT_SENDER_PROCS": bad})


async def test_one_expander_per_event_across_processes_and_a_lost_lease_writes_nothing(tmp_path: Path):
    """Two server processes (two connections to one file) record the same event once; while one expander holds it
    the other gets nothing; once the lease has ended another takes it over, and the first one's next chunk is
    refused (LeaseLost, nothing written). A stored event that is no event is marked failed, not retried."""
    path = tmp_path / "alerts.sqlite3"
    a, b = AlertStore(path), AlertStore(path)
    await a.open()
    await b.open()
    for i in range(5):
        await webhook_follow(a, f"http://127.0.0.1:9/hook/{i}")
    now = 1_725_159_600.0
    assert await a.add_event("vote:1", event_to_json(vote()), now=now)
    assert not await b.add_event("vote:1", event_to_json(vote()), now=now)  # the same event from the other process
    held = await a.claim_event("x_a", now=now, lease_s=30)
    assert held is not None and held.id == "vote:1"
    assert await b.claim_event("x_b", now=now + 29, lease_s=30) is None
    taken = await b.claim_event("x_b", now=now + 31, lease_s=30)
    assert taken is not None and taken.attempts == 2
    with pytest.raises(LeaseLost):
        await Alerting(a, clock=Clock(now + 32)).expand(vote(), owner="x_a")
    assert await a.count() == 0
    assert await Alerting(b, clock=Clock(now + 32)).expand(vote(), owner="x_b") == 5
    (event,) = await a.events()
    assert (event["state"], event["added"]) == ("expanded", 5)
    assert await a.claim_event("x_a", now=now + 100, lease_s=30) is None

    assert await a.add_event("bad:1", '{"kind": "Nonsense"}', now=now)
    assert await Alerting(a, clock=Clock(now)).expand_waiting("x_a") == 0
    assert [(e["id"], e["state"]) for e in await a.events(state="failed")] == [("bad:1", "failed")]
    await a.close()
    await b.close()


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


async def test_deferred_publish_records_only_events_someone_follows(store: AlertStore):
    """With the senders in child processes, ``publish`` runs on the captions' path: an event that concerns no
    follow (a final naming no followed bill, speaker or keyword) is not written to the alerts database at all, so it
    never waits for the senders' write lock; one that a bill, a speaker or a saved search follows is recorded."""
    alerting = Alerting(store, clock=Clock(), defer=True)
    await webhook_follow(store, "http://127.0.0.1:9/hook/bill")  # follows bill 42
    await store.create_follow(
        FollowRequest(Target(TargetKind.KEYWORD, "งบประมาณ"), WebhookChannel("http://127.0.0.1:9/hook/kw")), now=1.0
    )
    quiet = CaptionFinal("cap:1", 1.0, "s7", "ขอบคุณท่านประธาน", 5.0, speaker_id="sp9", speaker="นาง ข")
    keyword = CaptionFinal("cap:2", 1.0, "s7", "เรื่องงบประมาณปี 2568", 61.0)
    bill = CaptionFinal("cap:3", 1.0, "s7", "ร่าง พ.ร.บ. ภาษีสรรพสามิต", 70.0, bills=(TAX,))
    for event in (quiet, keyword, bill, vote(1)):
        await alerting.publish(event)
    assert sorted(e["id"] for e in await store.events()) == ["cap:2", "cap:3", "vote:1"]
    assert await store.interest(["bill:42"], keywords=True) == (True, [])
    assert await store.interest(["speaker:sp9", "bill:7"], keywords=False) == (False, [])
    assert await store.interest(["speaker:sp9", "bill:7"], keywords=True) == (False, ["งบประมาณ"])
