"""Web Push encryption prepared ahead (alerts.push_keys): both paths decrypt with `http_ece` and the browser's keys,
a prepared record serves one message only (retries included), and the pool stays within its cap and forgets
subscriptions that are gone. Real SQLite store and a loopback push service where the store or the sending matters."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from alerts_receiver import Received, receiver
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from starlette.responses import Response
from test_alerts_push import Browser, b64url

from alerts import push
from alerts.delivery import Alerting, DeliveryWorkers
from alerts.follows import FollowRequest, PushChannel, Target, TargetKind, WebhookChannel
from alerts.matcher import BillInfo, VoteResult
from alerts.messages import BillRef
from alerts.push import PushSubscription, build_push, encrypt, parse_subscription, prepare, seal
from alerts.push_keys import PreparedPool
from alerts.store_sqlite import AlertStore

BASE = "https://app.senate.example"
SUBJECT = "mailto:webmaster@senate.example"
TAX = BillInfo(BillRef("42", "ร่าง พ.ร.บ. ภาษีสรรพสามิต"), topics=("tax",))
PAYLOAD = json.dumps({"title": "ผลการลงมติ: ร่าง พ.ร.บ. ภาษี", "url": "/watch/7?t=3723"}, ensure_ascii=False).encode()


def vote(n: int = 1) -> VoteResult:
    return VoteResult(f"vote:{n}", 1_725_159_600.0, TAX, "รับหลักการ", 150, 20, 5, 25, True, "s7", 3723.0)


def key_id(body: bytes) -> bytes:
    """The sender's ephemeral public key in an aes128gcm body (after salt, rs and idlen)."""
    assert body[20] == 65
    return body[21:86]


class Source:
    """A fixed list of subscriptions standing in for the store (pure logic tests); counts its reads."""

    def __init__(self, subs: Sequence[PushSubscription]) -> None:
        self.subs = list(subs)
        self.reads = 0

    async def push_subscriptions(self, *, limit: int) -> list[PushSubscription]:
        self.reads += 1
        return self.subs[:limit]


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def subscription(browser: Browser, endpoint: str = "https://push.example/abc") -> PushSubscription:
    return parse_subscription(browser.subscription(endpoint))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AlertStore]:
    s = AlertStore(tmp_path / "alerts.sqlite3")
    await s.open()
    yield s
    await s.close()


@pytest.mark.fast
def test_prepared_and_full_paths_make_the_same_bytes(monkeypatch: pytest.MonkeyPatch):
    """With the same ephemeral key and salt, ``encrypt``, ``seal(prepare(...))`` and ``build_push(prepared=...)``
    produce byte-identical bodies, and the browser decrypts them (http_ece)."""
    browser = Browser()
    vapid = Vapid02()
    vapid.generate_keys()
    fixed = ec.generate_private_key(ec.SECP256R1())
    monkeypatch.setattr(push.ec, "generate_private_key", lambda *args: fixed)  # the one ephemeral key for all three
    salt = os.urandom(16)
    sub = subscription(browser)
    full = encrypt(PAYLOAD, sub.p256dh, sub.auth, salt=salt)
    sealed = seal(PAYLOAD, prepare(sub.p256dh, sub.auth, salt=salt))
    built = build_push(
        sub, PAYLOAD, vapid=vapid, subject=SUBJECT, now=1e9, prepared=prepare(sub.p256dh, sub.auth, salt=salt)
    ).body
    assert full == sealed == built
    assert full[:16] == salt and int.from_bytes(full[16:20], "big") == push.RECORD_SIZE
    assert browser.decrypt(full) == PAYLOAD


@pytest.mark.fast
def test_both_paths_decrypt_with_the_browsers_keys():
    """Unpatched: a message built with a prepared record and one encrypted in full both decrypt with the browser's
    keys, have the same layout (86-byte header, 4096-byte records) and each its own key and salt."""
    browser = Browser()
    sub = subscription(browser)
    vapid = Vapid02()
    vapid.generate_keys()
    pooled = build_push(sub, PAYLOAD, vapid=vapid, subject=SUBJECT, now=1e9, prepared=prepare(sub.p256dh, sub.auth))
    full = build_push(sub, PAYLOAD, vapid=vapid, subject=SUBJECT, now=1e9)
    assert browser.decrypt(pooled.body) == browser.decrypt(full.body) == PAYLOAD
    assert len(pooled.body) == len(full.body) and pooled.body[16:21] == full.body[16:21]
    assert key_id(pooled.body) != key_id(full.body) and pooled.body[:16] != full.body[:16]
    assert pooled.headers == full.headers
    # The largest payload still fits one record either way.
    biggest = b"a" * push.MAX_PAYLOAD_BYTES
    assert browser.decrypt(seal(biggest, prepare(sub.p256dh, sub.auth))) == biggest


@pytest.mark.fast
def test_a_prepared_record_shows_no_key():
    """A record holds a content-encryption key: its repr (what a log or traceback would print) shows none of it."""
    record = prepare(Browser().p256dh, b64url(os.urandom(16)))
    text = repr(record) + str(record)
    for secret in (record.cek, record.nonce, record.header):
        assert secret.hex() not in text and repr(secret) not in text


@pytest.mark.fast
async def test_a_record_is_handed_out_once():
    """``take`` gives each record once: the next take finds none until a refresh makes a new one, with its own key
    and salt; several records per subscription are all different."""
    browser = Browser()
    sub = subscription(browser)
    pool = PreparedPool(Source([sub]), quiet_s=0)
    assert await pool.refresh() == 1 and len(pool) == 1 and pool.records == 1
    first = pool.take(sub)
    assert first is not None and pool.take(sub) is None
    assert (pool.taken, pool.missed, len(pool)) == (1, 1, 0)
    assert await pool.refresh() == 1
    second = pool.take(sub)
    assert second is not None and second is not first
    assert second.header != first.header and second.cek != first.cek  # new key pair and salt
    assert browser.decrypt(seal(PAYLOAD, first)) == browser.decrypt(seal(PAYLOAD, second)) == PAYLOAD

    several = PreparedPool(Source([sub]), per_subscription=3, quiet_s=0)
    assert await several.refresh() == 3
    got = [several.take(sub) for _ in range(4)]
    assert got[3] is None
    headers = {r.header for r in got if r is not None}
    assert len(headers) == 3
    assert await several.refresh() == 3  # topped up again, not beyond per_subscription
    assert await several.refresh() == 0 and several.records == 3


@pytest.mark.fast
async def test_other_keys_on_the_same_endpoint_get_no_record():
    """A record is for the keys it was made with: the same endpoint with new keys (a re-subscription) gets none, and
    the old keys' record is dropped once the source lists only the new ones."""
    old, new = Browser(), Browser()
    source = Source([subscription(old)])
    pool = PreparedPool(source, quiet_s=0)
    await pool.refresh()
    assert pool.take(subscription(new)) is None
    source.subs = [subscription(new)]
    await pool.refresh()
    assert len(pool) == 1 and pool.take(subscription(old)) is None
    record = pool.take(subscription(new))
    assert record is not None and new.decrypt(seal(PAYLOAD, record)) == PAYLOAD


@pytest.mark.fast
async def test_pool_keeps_within_its_cap_and_skips_bad_keys():
    """Never more than ``cap`` subscriptions, even when the source returns more; keys that are not a P-256 point
    are skipped (the full path refuses them the same way); ``stop`` forgets every record."""
    subs = [subscription(Browser(), f"https://push.example/{i}") for i in range(7)]
    bad = PushSubscription("https://push.example/bad", b64url(b"\x04" + bytes(64)), b64url(os.urandom(16)))
    pool = PreparedPool(Source([bad, *subs]), cap=5, quiet_s=0)
    assert await pool.refresh() == 4
    assert len(pool) == 4 and pool.take(bad) is None
    assert all(pool.take(s) is not None for s in subs[:4]) and pool.take(subs[4]) is None
    await pool.refresh()
    assert len(pool) == 4
    await pool.start()
    await pool.stop()
    assert len(pool) == 0 and pool.records == 0


@pytest.mark.fast
async def test_filling_waits_until_sending_has_been_quiet():
    """No store read and no preparing while takes are recent (a burst is being sent); then the pool refills."""
    sub = subscription(Browser())
    clock = Clock()
    source = Source([sub])
    pool = PreparedPool(source, quiet_s=0.01, clock=clock)
    assert pool.take(sub) is None  # a send just now
    task = asyncio.create_task(pool.refresh())
    for _ in range(5):
        await asyncio.sleep(0.01)
    assert not task.done() and source.reads == 0 and len(pool) == 0
    clock.now += 0.01
    assert await task == 1 and source.reads == 1 and len(pool) == 1


@pytest.mark.fast
async def test_filling_waits_while_the_owner_is_sending():
    """Long after the last take, the pool still neither reads nor prepares while ``busy()`` says sends are in
    flight (a burst's webhooks, or push rows another process took); it refills once they end."""
    sub = subscription(Browser())
    source = Source([sub])
    sending = [True]
    pool = PreparedPool(source, quiet_s=0, busy=lambda: sending[0])
    task = asyncio.create_task(pool.refresh())
    for _ in range(5):
        await asyncio.sleep(0.01)
    assert not task.done() and source.reads == 0 and len(pool) == 0
    sending[0] = False
    assert await task == 1 and source.reads == 1 and len(pool) == 1


async def test_store_lists_enabled_push_subscriptions_with_active_follows(store: AlertStore):
    """``push_subscriptions``: push endpoints only (not webhooks), with an active follow, keys present, oldest first,
    at most ``limit``."""
    bill = Target(TargetKind.BILL, "42")
    subs = [subscription(Browser(), f"https://push.example/{i}") for i in range(4)]
    created = [await store.create_follow(FollowRequest(bill, PushChannel(s)), now=1.0) for s in subs]
    await store.create_follow(FollowRequest(bill, WebhookChannel("https://hooks.example/1")), now=1.0)
    assert await store.push_subscriptions(limit=10) == subs
    assert await store.push_subscriptions(limit=2) == subs[:2]
    assert await store.unsubscribe(created[1].token) == created[1].id
    assert await store.push_subscriptions(limit=10) == [subs[0], subs[2], subs[3]]


async def test_pool_drops_records_of_deleted_subscriptions(store: AlertStore):
    """With the real store: the pool holds the oldest ``cap`` subscriptions; an unsubscribed one loses its record
    at the next refresh and the next in line gets one; a re-subscription with new keys replaces the old keys'."""
    bill = Target(TargetKind.BILL, "42")
    browsers = [Browser() for _ in range(5)]
    subs = [subscription(b, f"https://push.example/{i}") for i, b in enumerate(browsers)]
    created = [await store.create_follow(FollowRequest(bill, PushChannel(s)), now=1.0) for s in subs]
    pool = PreparedPool(store, cap=3, quiet_s=0)
    assert await pool.refresh() == 3 and len(pool) == 3
    await store.unsubscribe(created[0].token)
    assert await pool.refresh() == 1 and len(pool) == 3
    assert pool.take(subs[0]) is None
    record = pool.take(subs[3])
    assert record is not None and browsers[3].decrypt(seal(PAYLOAD, record)) == PAYLOAD

    again = Browser()  # the browser behind endpoint 1 subscribed afresh: same endpoint, new keys
    renewed = subscription(again, "https://push.example/1")
    await store.create_follow(FollowRequest(Target(TargetKind.BILL, "43"), PushChannel(renewed)), now=2.0)
    await pool.refresh()
    assert len(pool) == 3 and pool.take(subs[1]) is None
    record = pool.take(renewed)
    assert record is not None and again.decrypt(seal(PAYLOAD, record)) == PAYLOAD


async def test_a_retry_never_reuses_the_record_of_a_failed_send(store: AlertStore, tmp_path: Path):
    """Delivery through the pool: a push answered 500 is retried with a new record (after a refresh) or, with none
    left, encrypted in full; every attempt has its own key and salt and decrypts."""
    browser = Browser()
    clock = Clock(1_725_159_600.0)
    answers = [500, 500, 201]
    async with receiver() as svc:

        async def answer(_: Received) -> Response:
            return Response(status_code=answers.pop(0))

        svc.handler = answer
        sub = parse_subscription(browser.subscription(svc.url + "/push/1"), allow_http=True)
        await store.create_follow(FollowRequest(Target(TargetKind.BILL, "42"), PushChannel(sub)), now=1.0)
        vapid = push.load_or_create_vapid(tmp_path / "vapid.pem")
        ws = DeliveryWorkers(store, base_url=BASE, vapid=vapid, allow_private=True, clock=clock)
        pool = ws.push_pool
        assert pool is not None
        pool.quiet_s = 0
        await Alerting(store, ws, clock=clock).publish(vote())
        await pool.refresh()
        for _ in range(3):
            assert await ws.run_once() == 1
            (row,) = await store.deliveries()
            clock.now = row["next_at"]
            if len(svc.received) == 1:
                await pool.refresh()  # a new record for the second attempt; none for the third
        await ws.stop()
    assert row["state"] == "delivered" and row["attempts"] == 3
    bodies = [r.body for r in svc.received]
    decrypted = [browser.decrypt(b) for b in bodies]
    assert decrypted[0] == decrypted[1] == decrypted[2] and json.loads(decrypted[0])["tag"] == "bill:42"
    assert len({key_id(b) for b in bodies}) == 3 and len({b[:16] for b in bodies}) == 3
    assert (pool.taken, pool.missed) == (2, 1)


async def test_started_workers_fill_the_pool_and_send_from_it(store: AlertStore, tmp_path: Path):
    """``DeliveryWorkers.start`` starts the pool: it prepares for the stored subscription by itself, the alert is
    sent with that record and decrypts; ``push_pool_cap=0`` turns the pool off."""
    browser = Browser()
    async with receiver() as svc:

        async def created(_: Received) -> Response:
            return Response(status_code=201)

        svc.handler = created
        sub = parse_subscription(browser.subscription(svc.url + "/push/1"), allow_http=True)
        await store.create_follow(FollowRequest(Target(TargetKind.BILL, "42"), PushChannel(sub)), now=1.0)
        vapid = push.load_or_create_vapid(tmp_path / "vapid.pem")
        assert DeliveryWorkers(store, base_url=BASE, vapid=vapid, push_pool_cap=0).push_pool is None
        ws = DeliveryWorkers(store, base_url=BASE, vapid=vapid, allow_private=True)
        pool = ws.push_pool
        assert pool is not None
        await ws.start()
        try:
            while len(pool) < 1:
                await asyncio.sleep(0.01)
            await Alerting(store, ws).publish(vote())
            while not svc.received:
                await asyncio.sleep(0.01)
        finally:
            await ws.stop()
    (got,) = svc.received
    data = json.loads(browser.decrypt(got.body))
    assert data["tag"] == "bill:42"
    assert (pool.taken, pool.missed) == (1, 0)
    assert len(pool) == 0  # stop dropped whatever was left
