"""The archive survives faults: a Redis restart mid-sitting, operator retries, a failing or hung SQLite writer."""

from __future__ import annotations

import asyncio
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import redis_answers
from live_server import TOKEN

from archive.idempotency import HEADER
from archive.recorder import Recorder, Unpublished
from archive.relay import Relay
from archive.store import NotFound, StoreUnavailable
from archive.store_sqlite import SqliteStore
from broadcast.broker_memory import MemoryBroker
from broadcast.broker_redis import RedisBroker
from broadcast.envelope import Event, sitting_channel
from broadcast.hub import Hub
from broadcast.metrics import Metrics
from broadcast.outbox import Outbox
from server import create_app

from live_server import test_settings  # isort: skip

THAI = ["ท่านประธานที่เคารพ", "ขอเปิดการประชุม", "ระเบียบวาระที่ ๑", "เรื่องที่ประธานแจ้ง", "ขอบคุณครับ"]


# ---- a Redis this module may kill and restart -----------------------------------------------------------------


class RestartableRedis:
    """A private redis-server on a fixed port with an fsync-always AOF, so a restart keeps history and epoch."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not redis_answers("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not come up")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary (make system-deps installs it)")
    server = RestartableRedis(binary, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def _until(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _drain(outbox: Outbox) -> list[Event]:
    frames, outbox._items = outbox._items, []
    return [f for f in frames if isinstance(f, Event)]


@pytest.mark.redis
async def test_redis_restart_loses_no_final_and_resume_is_exact(restartable_redis: RestartableRedis, tmp_path: Path):
    """Finals and a vote recorded while Redis is down are published in recorded order when it returns: the archive
    and the channel's history hold each exactly once, a live subscriber and a resuming one see no gap or duplicate.
    """
    broker = RedisBroker(restartable_redis.url, prefix="rec", ping_interval=0.2, ping_timeout=0.5,
                         socket_timeout=0.5, connect_timeout=0.5)  # fmt: skip
    hub = Hub(broker)
    store = SqliteStore(tmp_path / "archive.db")
    await store.open()
    await hub.start()
    relay_options = dict(publish_timeout=1.0, backoff_base=0.05, backoff_cap=0.3, adopt_after_s=60.0)
    recorder = Recorder(store, hub, Metrics(), relay=None)
    recorder.relay = Relay(store, recorder._publish, **relay_options)  # type: ignore[arg-type]
    await recorder.relay.start()
    channel = sitting_channel("s1")
    live = Outbox(limit=1000)
    try:
        await recorder.create_sitting("s1", "การประชุมวุฒิสภา", "senate")
        await hub.subscribe(live, channel)
        for i in range(5):
            _, event = await recorder.caption_final("s1", f"a{i}", THAI[i], i, i + 1)
            assert event is not None
        seen_before = [e for e in _drain(live)]
        last_seen = seen_before[-1]

        restartable_redis.kill()
        for i in range(5):
            segment, event = await recorder.caption_final("s1", f"b{i}", THAI[i], 10 + i, 11 + i)
            assert event is None and segment.seq is None
        with pytest.raises(Unpublished) as unpublished:
            await recorder.record_vote("s1", "เห็นชอบ", 150, 10, 5, 35, "passed")
        assert unpublished.value.kind == "vote" and unpublished.value.record["seq"] is None
        assert len(await store.outbox_pending(recorder.relay.owner)) == 6

        restartable_redis.start()

        async def backlog_sent() -> bool:
            return not await store.outbox_pending(recorder.relay.owner)

        await _until(backlog_sent, "the relay to publish the backlog")
        for i in range(3):
            _, event = await recorder.caption_final("s1", f"c{i}", THAI[i], 20 + i, 21 + i)
            assert event is not None

        # The archive: every final and the vote has the seq of its event, and seqs follow the order recorded.
        segments = sorted(await store.segments("s1"), key=lambda s: s.id)
        votes = await store.votes("s1")
        assert len(segments) == 13 and len(votes) == 1
        recorded = [*segments[:10], votes[0], *segments[10:]]
        assert [r.seq for r in recorded] == list(range(2, 16))

        # The channel: each record once, in the order recorded.
        history, position, _ = await broker.history(channel, 0, 100)
        assert [e.seq for e in history] == list(range(1, 16)) and position.epoch == last_seen.epoch
        finals = [e.data["archive_id"] for e in history if e.type == "caption.final"]
        assert finals == [s.id for s in segments]
        assert [e.type for e in history].count("vote.result") == 1

        # The subscriber that stayed connected got everything once, in order, after the outage too.
        async def live_complete() -> bool:
            seen_before.extend(_drain(live))
            return len(seen_before) >= 14

        await _until(live_complete, "the live subscriber to catch up")
        assert [e.seq for e in seen_before] == list(range(2, 16))

        # A client that resumes from the last event it saw before the outage gets exactly what it missed.
        resumed = Outbox(limit=1000)
        sub, reply = await hub.subscribe(resumed, channel, since=last_seen.seq, epoch=last_seen.epoch)
        assert reply.recovered is True
        assert [e.seq for e in _drain(resumed)] == list(range(last_seen.seq + 1, 16))
        await hub.unsubscribe(sub)
    finally:
        await recorder.relay.stop()
        await hub.close()
        await store.close()


# ---- broker down and operator retries, through the app ---------------------------------------------------------


class SwitchableBroker(MemoryBroker):
    """The in-process broker with a switch that makes publishing fail like an unreachable Redis."""

    def __init__(self) -> None:
        super().__init__(history_size=1000)
        self.down = False

    async def publish(self, channel: str, type: str, data: dict[str, Any]) -> Event:
        if self.down:
            raise ConnectionError("broker unreachable")
        return await super().publish(channel, type, data)


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any, SwitchableBroker]]:
    broker = SwitchableBroker()
    app = create_app(test_settings(tmp_path), broker=broker)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:
            r = await client.post("/api/sittings", json={"id": "s1", "title": "การประชุม", "chamber": "senate"})
            assert r.status_code == 201
            yield client, app, broker


VOTE = {"motion": "เห็นชอบร่างพระราชบัญญัติ", "yes": 150, "no": 10, "abstain": 5, "absent": 35, "result": "passed"}


async def test_operator_retry_with_the_same_key_records_one_vote(app_client):
    """A vote POST retried with the same Idempotency-Key returns the first answer and records one vote; another
    key records another; the same key with a different body is a 422."""
    client, app, _ = app_client
    first = await client.post("/api/sittings/s1/votes", json=VOTE, headers={HEADER: "vote-7f3a"})
    again = await client.post("/api/sittings/s1/votes", json=VOTE, headers={HEADER: "vote-7f3a"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(await app.state.store.votes("s1")) == 1

    other = await client.post("/api/sittings/s1/votes", json={**VOTE, "no": 11}, headers={HEADER: "vote-7f3a"})
    assert other.status_code == 422 and other.json()["field"] == HEADER
    fresh = await client.post("/api/sittings/s1/votes", json=VOTE, headers={HEADER: "vote-8b1c"})
    assert fresh.status_code == 201 and fresh.json()["vote"]["id"] != first.json()["vote"]["id"]
    assert len(await app.state.store.votes("s1")) == 2


async def test_a_bad_idempotency_key_is_a_400(app_client):
    """A key with spaces or over 200 characters is refused with the error shape, and nothing is recorded."""
    client, app, _ = app_client
    for key in ["has space", "x" * 201]:
        r = await client.post("/api/sittings/s1/votes", json=VOTE, headers={HEADER: key})
        assert r.status_code == 400 and r.json()["ok"] is False and r.json()["field"] == HEADER
    assert await app.state.store.votes("s1") == []


async def test_broker_down_operator_post_is_recorded_and_published_later(app_client):
    """With the broker down a vote POST answers 202 recorded/unpublished; a retry with its key replays that answer;
    when the broker returns the relay publishes it and writes its seq back to the row."""
    client, app, broker = app_client
    broker.down = True
    r = await client.post("/api/sittings/s1/votes", json=VOTE, headers={HEADER: "k1"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["ok"] is True and body["recorded"] is True and body["published"] is False and body["event"] is None
    retry = await client.post("/api/sittings/s1/votes", json=VOTE, headers={HEADER: "k1"})
    assert retry.status_code == 202 and retry.json() == body
    assert len(await app.state.store.votes("s1")) == 1

    broker.down = False

    async def published() -> bool:
        return (await app.state.store.votes("s1"))[0].seq is not None

    await _until(published, "the relay to publish the vote")
    events, _, _ = await broker.history(sitting_channel("s1"), 0, 10)
    assert [e.type for e in events] == ["sitting.status", "vote.result"]
    assert events[1].data["id"] == body["vote"]["id"]


async def test_archive_failure_is_a_503_and_the_key_stays_usable(app_client, tmp_path: Path):
    """An operator POST whose write fails (a read-only database) answers 503 in the error shape; the key is released,
    so the same retry succeeds once the archive can write again."""
    client, app, _ = app_client
    store: SqliteStore = app.state.store
    await _read_only(store, True)
    r = await client.post("/api/sittings/s1/speaker", json={"name": "นายสมชาย"}, headers={HEADER: "sp-1"})
    assert r.status_code == 503 and r.json()["ok"] is False and "archive" in r.json()["error"]
    await _read_only(store, False)
    r = await client.post("/api/sittings/s1/speaker", json={"name": "นายสมชาย"}, headers={HEADER: "sp-1"})
    assert r.status_code == 201, r.text


# ---- SQLite failures -------------------------------------------------------------------------------------------


async def _fill_disk(store: SqliteStore) -> None:
    """Cap the file at its current size, as a full disk would."""

    def cap(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS ballast (b BLOB)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        # Fill the free space down to the last bytes, so the very next write needs a new page.
        for size in (2000, 200, 20, 1):
            try:
                while True:
                    conn.execute(f"INSERT INTO ballast VALUES (randomblob({size}))")
            except sqlite3.OperationalError:
                pass

    await store._write(cap, in_transaction=False)


async def _read_only(store: SqliteStore, on: bool) -> None:
    """Make every write of the writer connection fail, as a database file turned read-only would."""
    await store._write(lambda conn: conn.execute(f"PRAGMA query_only = {int(on)}"), in_transaction=False)


async def _free_disk(store: SqliteStore) -> None:
    await store._write(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823"), in_transaction=False)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "archive.db")
    await s.open()
    try:
        await s.create_sitting("s1", "การประชุม", "senate")
        yield s
    finally:
        await s.close()


@pytest.mark.fast
async def test_disk_full_rolls_back_and_the_writer_recovers(store: SqliteStore):
    """A write that fails for a full disk raises StoreUnavailable, leaves nothing behind, and the next write after
    space returns succeeds on the same writer connection."""
    await _fill_disk(store)
    with pytest.raises(StoreUnavailable, match="full"):
        await store.add_segment("s1", 0, 1000, "ข้อความยาว " * 200)
    await _free_disk(store)
    segment = await store.add_segment("s1", 0, 1000, "ขอเปิดการประชุม")
    assert [s.id for s in await store.segments("s1")] == [segment.id]


@pytest.mark.fast
async def test_failed_commit_rolls_back_and_the_writer_recovers(store: SqliteStore):
    """A COMMIT that fails (a deferred constraint, which SQLite leaves the transaction open for) is rolled back:
    the row is not kept and the single writer connection takes the next write."""

    def violating(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA defer_foreign_keys = ON")
        conn.execute(
            "INSERT INTO segments (sitting_id, start_ms, end_ms, wall_time, text, speaker_id)"
            " VALUES ('s1', 0, 1, '2026-01-01T00:00:00.000Z', 'x', 999)"
        )

    with pytest.raises(NotFound):
        await store._write(violating)
    assert store._write_conn is not None and not store._write_conn.in_transaction
    segment = await store.add_segment("s1", 0, 1000, "ขอเปิดการประชุม")
    assert [s.id for s in await store.segments("s1")] == [segment.id]


@pytest.mark.fast
async def test_a_hung_writer_times_out_instead_of_hanging(tmp_path: Path):
    """With the writer stuck on earlier work, a write raises StoreUnavailable after the store's timeout rather
    than waiting forever; the store works again once the writer is free."""
    store = SqliteStore(tmp_path / "archive.db", timeout=0.2)
    await store.open()
    try:
        release = threading.Event()
        blocker = asyncio.ensure_future(store._write(lambda conn: release.wait(), in_transaction=False))
        await asyncio.sleep(0)  # let the blocker reach the writer first
        try:
            with pytest.raises(StoreUnavailable, match="did not finish"):
                await store.create_sitting("s1", "การประชุม", "senate")
        finally:
            release.set()
        await asyncio.gather(blocker, return_exceptions=True)
        # The create had not started when it timed out, so it was cancelled, not left to run later.
        assert await store.get_sitting("s1") is None
        assert (await store.create_sitting("s2", "การประชุม", "senate")).id == "s2"
    finally:
        await store.close()


@pytest.mark.fast
async def test_relay_publishes_a_backlog_in_recorded_order(store: SqliteStore):
    """Entries recorded while publishing fails go out oldest first once it works, interleaved with nothing newer."""
    published: list[tuple[str, dict[str, Any]]] = []
    failing = True
    seq = 0

    async def publish(channel: str, type: str, data: dict[str, Any]) -> Event:
        nonlocal seq
        if failing:
            raise OSError("down")
        seq += 1
        published.append((type, data))
        return Event(channel, seq, "e1", type, "2026-01-01T00:00:00.000Z", data)

    hub = Hub(MemoryBroker())
    recorder = Recorder(store, hub, Metrics())
    recorder.relay = Relay(store, publish, backoff_base=0.01, backoff_cap=0.05)
    for i in range(3):
        assert (await recorder.caption_final("s1", f"u{i}", THAI[i], i, i + 1))[1] is None
    failing = False
    # Known down: a new final waits behind the backlog instead of jumping ahead of it.
    assert (await recorder.caption_final("s1", "u3", THAI[3], 3, 4))[1] is None
    assert published == []
    await recorder.relay.start()
    try:

        async def drained() -> bool:
            return not await store.outbox_pending(recorder.relay.owner)

        await _until(drained, "the backlog")
    finally:
        await recorder.relay.stop()
    assert [d["segment_id"] for _, d in published] == ["u0", "u1", "u2", "u3"]
    assert [s.seq for s in sorted(await store.segments("s1"), key=lambda s: s.id)] == [1, 2, 3, 4]
