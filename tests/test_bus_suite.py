"""One contract, two brokers: every test here runs against MemoryBroker and RedisBroker through the Broker API.

Redis-only tests at the end cover what only several processes or a network can break: concurrent publisher
processes, a killed or hung pub/sub connection, and lost history (a new epoch). The hub tests check the recovery
merge on top of each broker. Waits are bounded by WAIT_S only so a broken build fails instead of hanging; no
test asserts on how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from broadcast.broker import Broker, EventHandler
from broadcast.broker_memory import MemoryBroker
from broadcast.broker_redis import RedisBroker, redact
from broadcast.envelope import MAX_SEQ, NO_EPOCH, Event, Position, dumps
from broadcast.hub import Hub
from broadcast.outbox import Frame, Outbox

WAIT_S = 15.0
CH = "sitting:s1"
OTHER = "sitting:s2"
MARKER = "bill:marker"
PUBLISHER_SCRIPT = Path(__file__).with_name("redis_publisher_proc.py")


class Recorder:
    """An EventHandler that keeps what it was given and lets a test wait for a condition on it."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def on(self, channel: str) -> list[Event]:
        return [e for e in self.events if e.channel == channel]

    def seqs(self, channel: str) -> list[int]:
        return [e.seq for e in self.on(channel)]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT_S):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_count(self, channel: str, n: int) -> None:
        await self.wait_for(lambda: len(self.on(channel)) >= n)


class MakeBroker(Protocol):
    def __call__(
        self, handler: EventHandler | None = ..., *, history_size: int = ..., start: bool = ...
    ) -> Awaitable[Broker]: ...


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_broker(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[MakeBroker]:
    """Factory of brokers of this test's kind; all are closed at the end."""
    redis_url = prefix = ""
    if kind == "redis":
        redis_url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
    made: list[Broker] = []

    async def make(handler: EventHandler | None = None, *, history_size: int = 10_000, start: bool = True) -> Broker:
        broker: Broker
        if kind == "memory":
            broker = MemoryBroker(history_size=history_size)
        else:
            broker = RedisBroker(redis_url, prefix=prefix, history_size=history_size)
        made.append(broker)
        if start:
            await broker.start(handler if handler is not None else (lambda event: None))
        return broker

    yield make
    for broker in made:
        await broker.close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def broker(make_broker: MakeBroker, recorder: Recorder) -> Broker:
    return await make_broker(recorder)


async def publish_n(broker: Broker, n: int, channel: str = CH) -> list[Event]:
    return [await broker.publish(channel, "caption.final", {"i": i}) for i in range(n)]


# ---- the Broker contract, on both brokers ---------------------------------------------------------------------


async def test_seq_starts_at_one_and_rises_by_one(broker: Broker) -> None:
    """The first publication on a channel gets seq 1 and each next one exactly one more."""
    events = await publish_n(broker, 5)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.data for e in events] == [{"i": i} for i in range(5)]
    assert {(e.channel, e.type) for e in events} == {(CH, "caption.final")}


async def test_channels_are_numbered_independently(broker: Broker) -> None:
    """Each channel has its own seq counter."""
    a1 = await broker.publish(CH, "speaker", {})
    b1 = await broker.publish(OTHER, "speaker", {})
    a2 = await broker.publish(CH, "speaker", {})
    assert (a1.seq, b1.seq, a2.seq) == (1, 1, 2)


async def test_position_of_an_unused_channel_is_zero_without_an_epoch_until_the_first_publish(broker: Broker) -> None:
    """position() before any publication is (0, NO_EPOCH); the first publication starts a real epoch at seq 1."""
    before = await broker.position(CH)
    event = await broker.publish(CH, "speaker", {})
    assert before == Position(0, NO_EPOCH)
    assert event.seq == 1 and event.epoch != NO_EPOCH
    assert await broker.position(CH) == Position(1, event.epoch)


async def test_epoch_is_stable_across_publishes(broker: Broker) -> None:
    """Every event and the position share one epoch while history is intact."""
    events = await publish_n(broker, 20)
    position = await broker.position(CH)
    assert {e.epoch for e in events} == {position.epoch}
    assert position.seq == 20


async def test_history_since_returns_exactly_the_later_events(broker: Broker) -> None:
    """history(since=S) returns exactly the events with seq > S, oldest first, with the position and first seq."""
    published = await publish_n(broker, 6)
    for since in range(-1, 8):
        events, position, first = await broker.history(CH, since, 100)
        assert [e.seq for e in events] == list(range(max(since, 0) + 1, 7)), since
        assert position == Position(6, published[0].epoch)
        assert first == 1
    events, _, _ = await broker.history(CH, 0, 100)
    assert [e.to_dict() for e in events] == [e.to_dict() for e in published]


async def test_history_respects_the_limit(broker: Broker) -> None:
    """history returns at most ``limit`` events, the oldest ones after ``since``."""
    await publish_n(broker, 10)
    events, position, first = await broker.history(CH, 2, 3)
    assert [e.seq for e in events] == [3, 4, 5]
    assert (position.seq, first) == (10, 1)
    events, _, _ = await broker.history(CH, 2, 0)
    assert events == []


async def test_history_of_an_empty_channel(broker: Broker) -> None:
    """An unused channel has no events, position (0, NO_EPOCH) and first seq 1 (position + 1)."""
    events, position, first = await broker.history(CH, 0, 10)
    assert (events, position, first) == ([], Position(0, NO_EPOCH), 1)
    assert position == await broker.position(CH)


async def test_history_with_an_absurd_since_is_empty_not_an_error(broker: Broker) -> None:
    """since up to MAX_SEQ (and beyond, as the hub never passes) reads nothing instead of failing in the backend."""
    await publish_n(broker, 3)
    for since in (2**31, MAX_SEQ - 1, MAX_SEQ, 10**30):
        events, position, first = await broker.history(CH, since, 10)
        assert (events, position.seq, first) == ([], 3, 1)


async def test_a_channel_subscribed_before_its_first_publication_gets_it_live(
    broker: Broker, recorder: Recorder
) -> None:
    """Subscribing to a channel without history delivers its first events live, from seq 1, once each."""
    await broker.subscribe(CH)
    published = await publish_n(broker, 3)
    await recorder.wait_count(CH, 3)
    assert [(e.seq, e.epoch) for e in recorder.on(CH)] == [(e.seq, e.epoch) for e in published]


async def test_trimming_raises_the_first_seq_still_held(make_broker: MakeBroker, kind: str) -> None:
    """With a small history_size old events are trimmed: first seq rises, what is held is contiguous to the top."""
    broker = await make_broker(history_size=20)
    await publish_n(broker, 250)
    events, position, first = await broker.history(CH, 0, 1000)
    assert position.seq == 250
    assert first > 1
    assert [e.seq for e in events] == list(range(first, 251))
    assert len(events) >= 20
    if kind == "memory":
        assert first == 231  # Redis trims approximately (MAXLEN ~), memory exactly.
    older, _, first_again = await broker.history(CH, first - 5, 3)
    assert [e.seq for e in older] == [first, first + 1, first + 2]
    assert first_again == first


async def test_event_json_is_compact_and_keeps_thai(broker: Broker) -> None:
    """The envelope JSON is the compact encoding of the event with Thai unescaped, in history too."""
    data = {"text": "ประธานสภาผู้แทนราษฎร", "n": 1.5, "empty": {}, "list": [1, "สอง"]}
    event = await broker.publish(CH, "caption.final", data)
    assert event.data == data
    assert event.json == dumps(event.to_dict())
    assert "ประธานสภาผู้แทนราษฎร" in event.json
    [held], _, _ = await broker.history(CH, 0, 10)
    assert held.json == event.json


async def test_live_delivery_in_order_after_subscribe(broker: Broker, recorder: Recorder) -> None:
    """After subscribe returns, every event published to the channel reaches the handler once, in seq order."""
    await broker.subscribe(CH)
    published = await publish_n(broker, 30)
    await recorder.wait_count(CH, 30)
    assert recorder.seqs(CH) == list(range(1, 31))
    assert [e.to_dict() for e in recorder.on(CH)] == [e.to_dict() for e in published]


async def test_events_before_subscribe_are_left_to_history(broker: Broker, recorder: Recorder) -> None:
    """Events published before subscribe are not delivered live; delivery starts after the position."""
    await publish_n(broker, 3)
    await broker.subscribe(CH)
    await publish_n(broker, 2)
    await recorder.wait_count(CH, 2)
    assert recorder.seqs(CH) == [4, 5]


async def test_unsubscribed_channels_are_not_delivered(broker: Broker, recorder: Recorder) -> None:
    """Only subscribed channels reach the handler."""
    await broker.subscribe(MARKER)
    await broker.publish(CH, "speaker", {})
    await broker.publish(MARKER, "speaker", {})
    # One connection delivers in publication order, so the marker arriving means CH would have arrived first.
    await recorder.wait_count(MARKER, 1)
    assert recorder.on(CH) == []


async def test_unsubscribe_stops_delivery(broker: Broker, recorder: Recorder) -> None:
    """After unsubscribe the channel's events no longer reach the handler; other channels still do."""
    await broker.subscribe(CH)
    await broker.subscribe(MARKER)
    await broker.publish(CH, "speaker", {})
    await recorder.wait_count(CH, 1)
    await broker.unsubscribe(CH)
    await broker.publish(CH, "speaker", {})
    await broker.publish(MARKER, "speaker", {})
    await recorder.wait_count(MARKER, 1)
    assert recorder.seqs(CH) == [1]


async def test_subscribe_is_idempotent(broker: Broker, recorder: Recorder) -> None:
    """Subscribing twice delivers each event once."""
    await broker.subscribe(CH)
    await broker.subscribe(CH)
    await broker.subscribe(MARKER)
    await publish_n(broker, 3)
    await broker.publish(MARKER, "speaker", {})
    await recorder.wait_count(MARKER, 1)
    assert recorder.seqs(CH) == [1, 2, 3]


async def test_resubscribe_after_unsubscribe_delivers_from_the_new_position(broker: Broker, recorder: Recorder) -> None:
    """Unsubscribe then subscribe again: delivery resumes with events published after the second subscribe."""
    await broker.subscribe(CH)
    await publish_n(broker, 2)
    await recorder.wait_count(CH, 2)
    await broker.unsubscribe(CH)
    await publish_n(broker, 2)
    await broker.subscribe(CH)
    await publish_n(broker, 2)
    await recorder.wait_count(CH, 4)
    assert recorder.seqs(CH) == [1, 2, 5, 6]


async def test_healthy(broker: Broker) -> None:
    """A started broker with its backend up reports healthy."""
    assert await broker.healthy() is True


# ---- Redis only -----------------------------------------------------------------------------------------------


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_brokers(redis_url: str, redis_prefix: str) -> AsyncIterator[Callable[..., RedisBroker]]:
    """Factory of RedisBrokers on this test's prefix (not started); all are closed at the end."""
    made: list[RedisBroker] = []

    def make(url: str | None = None, **kwargs: Any) -> RedisBroker:
        broker = RedisBroker(url or redis_url, prefix=redis_prefix, **kwargs)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.close()


async def pubsub_client_ids(admin: aioredis.Redis, prefix: str) -> list[int]:
    return [int(c["id"]) for c in await admin.client_list() if c.get("name") == f"{prefix}:pubsub"]


@pytest.mark.redis
async def test_publisher_processes_share_one_gapless_order(
    redis_url: str, redis_prefix: str, redis_brokers: Callable[..., RedisBroker], admin: aioredis.Redis
) -> None:
    """Publishers in separate processes get seqs 1..total with no gap or duplicate, live and in the stream."""
    procs_n, per_proc = 3, 150
    total = procs_n * per_proc
    recorder = Recorder()
    subscriber = redis_brokers()
    await subscriber.start(recorder)
    await subscriber.subscribe(CH)

    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(PUBLISHER_SCRIPT),
            redis_url,
            redis_prefix,
            CH,
            f"p{i}",
            str(per_proc),
            stderr=asyncio.subprocess.PIPE,
        )
        for i in range(procs_n)
    ]
    try:
        async with asyncio.timeout(60):
            while int(await admin.get(f"{redis_prefix}:test:ready") or 0) < procs_n:
                await asyncio.sleep(0.02)
            await admin.rpush(f"{redis_prefix}:test:go", *["go"] * procs_n)
            for proc in procs:
                _, err = await proc.communicate()
                assert proc.returncode == 0, err.decode()
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    await recorder.wait_count(CH, total)
    assert recorder.seqs(CH) == list(range(1, total + 1))
    held, position, first = await subscriber.history(CH, 0, total + 10)
    assert [e.seq for e in held] == list(range(1, total + 1))
    assert (position.seq, first) == (total, 1)
    # Each process published one after another, so its own events keep their order within the global one.
    for i in range(procs_n):
        mine = [e.data["i"] for e in held if e.data["proc"] == f"p{i}"]
        assert mine == list(range(per_proc))


@pytest.mark.redis
async def test_killed_pubsub_connection_is_back_filled(
    redis_prefix: str,
    redis_brokers: Callable[..., RedisBroker],
    admin: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """CLIENT KILL on the pub/sub connection: the broker reconnects and the handler still gets every seq once."""
    recorder = Recorder()
    subscriber = redis_brokers()
    publisher = redis_brokers()
    await subscriber.start(recorder)
    await subscriber.subscribe(CH)
    published = len(await publish_n(publisher, 5))
    await recorder.wait_count(CH, 5)

    [old_id] = await pubsub_client_ids(admin, redis_prefix)
    caplog.set_level(logging.DEBUG, logger="broadcast.broker_redis")
    assert await admin.client_kill_filter(_id=old_id) == 1
    # Keep publishing through the outage until the broker's new connection shows up, then stop: what was
    # published meanwhile can only reach the handler through the back-fill.
    async with asyncio.timeout(WAIT_S):
        while True:
            await publisher.publish(CH, "caption.final", {"i": published})
            published += 1
            ids = await pubsub_client_ids(admin, redis_prefix)
            if ids and ids != [old_id]:
                break

    await recorder.wait_count(CH, published)
    assert recorder.seqs(CH) == list(range(1, published + 1))
    assert subscriber.reconnects == 1
    assert any("reconnected" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    # Live delivery goes on on the new connection.
    await publisher.publish(CH, "caption.final", {})
    await recorder.wait_count(CH, published + 1)
    assert recorder.seqs(CH) == list(range(1, published + 2))


class FreezingProxy:
    """A TCP proxy to Redis that can make the pub/sub connection go silent without closing it (a hung peer).

    It recognises the pub/sub connection by the CLIENT SETNAME ``...:pubsub`` in its handshake.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._server: asyncio.Server | None = None
        self._pipes: list[dict[str, bool]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def freeze_pubsub(self) -> None:
        """From now on drop every byte of the current pub/sub connection(s), both ways."""
        for pipe in self._pipes:
            if pipe["pubsub"]:
                pipe["frozen"] = True

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.close()
            self._tasks.discard(task)
            return
        self._writers += [client_w, upstream_w]
        pipe = {"pubsub": False, "frozen": False}
        self._pipes.append(pipe)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, from_client: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    if from_client and b":pubsub" in data:
                        pipe["pubsub"] = True
                    if not pipe["frozen"]:
                        dst.write(data)
                        await dst.drain()
            dst.close()

        try:
            await asyncio.gather(pump(client_r, upstream_w, True), pump(upstream_r, client_w, False))
        finally:
            self._tasks.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        # Closing every socket ends every pump with EOF; the handler tasks then finish on their own (cancelling
        # them instead makes asyncio's stream callback log the CancelledError).
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if self._server is not None:
            await self._server.wait_closed()


@pytest.mark.redis
async def test_silent_pubsub_connection_is_detected_by_ping_and_back_filled(
    redis_url: str,
    redis_brokers: Callable[..., RedisBroker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A pub/sub connection that stops answering PING is dropped, re-established and back-filled."""
    host_port = redis_url.removeprefix("redis://").split("/")[0].rsplit(":", 1)
    proxy = FreezingProxy((host_port[0], int(host_port[1])))
    port = await proxy.start()
    try:
        recorder = Recorder()
        subscriber = redis_brokers(f"redis://127.0.0.1:{port}/0", ping_interval=0.05, ping_timeout=0.2)
        publisher = redis_brokers()
        await subscriber.start(recorder)
        await subscriber.subscribe(CH)
        await publish_n(publisher, 2)
        await recorder.wait_count(CH, 2)

        caplog.set_level(logging.DEBUG, logger="broadcast.broker_redis")
        proxy.freeze_pubsub()
        await publish_n(publisher, 3)
        await recorder.wait_count(CH, 5)
        assert recorder.seqs(CH) == [1, 2, 3, 4, 5]
        assert subscriber.reconnects >= 1
        assert any("no PONG" in r.getMessage() for r in caplog.records)
        await subscriber.close()
    finally:
        await proxy.close()


@pytest.mark.redis
async def test_deleted_history_starts_a_new_epoch(
    redis_prefix: str, redis_brokers: Callable[..., RedisBroker], admin: aioredis.Redis
) -> None:
    """Deleting a channel's keys (history lost) gives a new epoch from seq 1, and live delivery follows it."""
    recorder = Recorder()
    broker = redis_brokers()
    await broker.start(recorder)
    await broker.subscribe(CH)
    old = await publish_n(broker, 3)
    await recorder.wait_count(CH, 3)

    await admin.delete(f"{redis_prefix}:meta:{CH}", f"{redis_prefix}:stream:{CH}")
    assert await broker.position(CH) == Position(0, NO_EPOCH)
    event = await broker.publish(CH, "sitting.status", {"status": "resumed"})
    assert event.seq == 1 and event.epoch not in (old[0].epoch, NO_EPOCH)
    await recorder.wait_count(CH, 4)
    old_epoch, new_epoch = old[0].epoch, event.epoch
    assert [(e.seq, e.epoch) for e in recorder.on(CH)] == [
        (1, old_epoch),
        (2, old_epoch),
        (3, old_epoch),
        (1, new_epoch),
    ]


@pytest.mark.redis
async def test_lost_meta_discards_the_orphaned_stream(
    redis_prefix: str, redis_brokers: Callable[..., RedisBroker], admin: aioredis.Redis
) -> None:
    """When only the meta hash is lost, the new epoch starts with an empty stream rather than stale events."""
    broker = redis_brokers()
    old = await publish_n(broker, 3)
    await admin.delete(f"{redis_prefix}:meta:{CH}")
    event = await broker.publish(CH, "speaker", {})
    events, position, first = await broker.history(CH, 0, 10)
    assert event.seq == 1 and event.epoch != old[0].epoch
    assert [e.seq for e in events] == [1]
    assert (position, first) == (Position(1, event.epoch), 1)


@pytest.mark.redis
async def test_unreachable_redis_is_unhealthy_and_start_fails(redis_brokers: Callable[..., RedisBroker]) -> None:
    """With nothing listening, healthy() is False and start() raises instead of pretending."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        broker = redis_brokers(f"redis://127.0.0.1:{port}/0", ping_timeout=0.5)
        assert await broker.healthy() is False
        with pytest.raises(redis.exceptions.ConnectionError):
            await broker.start(lambda event: None)


def test_redact_hides_the_password() -> None:
    """URLs are logged with the password replaced."""
    assert redact("redis://:s3cret@cache:6380/0") == "redis://:***@cache:6380/0"
    assert redact("redis://user:s3cret@cache/0") == "redis://user:***@cache/0"
    assert redact("redis://cache:6379/0") == "redis://cache:6379/0"


# ---- Hub recovery, on both brokers ----------------------------------------------------------------------------


def event_seqs(frames: list[Frame]) -> list[int]:
    return [f.seq for f in frames if isinstance(f, Event)]


async def take_until(outbox: Outbox, frames: list[Frame], done: Callable[[list[Frame]], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not done(frames):
            got = await outbox.take()
            assert got, "outbox overflowed or closed"
            frames.extend(got)


@pytest.fixture
async def hub_for(make_broker: MakeBroker) -> Callable[..., Awaitable[tuple[Hub, Broker]]]:
    async def make(history_size: int = 10_000, wrap: Callable[[Broker], Broker] | None = None) -> tuple[Hub, Broker]:
        broker = await make_broker(history_size=history_size, start=False)
        hub = Hub(wrap(broker) if wrap else broker, history_page=7)
        await hub.start()
        return hub, broker

    return make


RECOVERY_CASES = {
    # name: (history_size, published, since, epoch sent, recovered, replayed)
    # epoch sent: "same" | "other" | "none" (NO_EPOCH, read before the first event) | None;
    # replayed: "missed" (since+1..top), "held" (first held..top), "none"
    "resume from a position": (10_000, 10, 4, "same", True, "missed"),
    "resume without an epoch": (10_000, 10, 4, None, True, "missed"),
    "resume at the top": (10_000, 10, 10, "same", True, "none"),
    "resume from zero": (10_000, 10, 0, "same", True, "missed"),
    "since older than the trimmed history": (20, 250, 1, "same", False, "held"),
    "since beyond the top": (10_000, 10, 99, "same", False, "none"),
    "epoch changed": (10_000, 10, 4, "other", False, "none"),
    "position read before the first event": (10_000, 10, 0, "none", True, "missed"),
    "a seq in no epoch": (10_000, 10, 3, "none", False, "none"),
}


@pytest.mark.parametrize("case", list(RECOVERY_CASES), ids=list(RECOVERY_CASES))
async def test_hub_recovery_cases(hub_for: Callable[..., Awaitable[tuple[Hub, Broker]]], case: str) -> None:
    """subscribe(since, epoch) answers recovered as the table says, replays the right events, then goes live."""
    history_size, published, since, epoch_kind, recovered, replay = RECOVERY_CASES[case]
    hub, broker = await hub_for(history_size=history_size)
    events = await publish_n(broker, published)
    epoch = {"same": events[0].epoch, "other": "00000000", "none": NO_EPOCH, None: None}[epoch_kind]
    _, _, first_held = await broker.history(CH, 0, 1)

    outbox = Outbox(limit=10_000)
    _, reply = await hub.subscribe(outbox, CH, since=since, epoch=epoch)
    assert reply.recovered is recovered
    assert reply.position == Position(published, events[0].epoch)
    live = await broker.publish(CH, "speaker", {"live": True})

    frames: list[Frame] = []
    await take_until(outbox, frames, lambda fs: live.seq in event_seqs(fs))
    assert frames[0] == reply.frame()
    expected = {
        "missed": list(range(since + 1, published + 1)),
        "held": list(range(first_held, published + 1)),
        "none": [],
    }[replay]
    assert event_seqs(frames) == expected + [live.seq]


async def test_hub_subscribe_without_since_is_live_only(hub_for: Callable[..., Awaitable[tuple[Hub, Broker]]]) -> None:
    """subscribe without since replays nothing, reports the current position, and delivers what follows."""
    hub, broker = await hub_for()
    await publish_n(broker, 3)
    outbox = Outbox(limit=100)
    _, reply = await hub.subscribe(outbox, CH)
    assert (reply.recovered, reply.position.seq) == (True, 3)
    live = await broker.publish(CH, "speaker", {})
    frames: list[Frame] = []
    await take_until(outbox, frames, lambda fs: live.seq in event_seqs(fs))
    assert event_seqs(frames) == [4]


class RacingHistory:
    """A broker that publishes one event right before and one right after every history read, through itself."""

    def __init__(self, inner: Broker) -> None:
        self.inner = inner
        self.published = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def history(self, channel: str, since: int, limit: int) -> tuple[list[Event], Position, int]:
        await self.inner.publish(channel, "caption.partial", {"race": "before"})
        result = await self.inner.history(channel, since, limit)
        await self.inner.publish(channel, "caption.partial", {"race": "after"})
        self.published += 2
        return result


async def test_hub_live_events_racing_the_history_read_arrive_exactly_once(
    hub_for: Callable[..., Awaitable[tuple[Hub, Broker]]],
) -> None:
    """Events published while history is being read (in it or not) reach the subscriber once, in seq order."""
    racing: list[RacingHistory] = []

    def wrap(broker: Broker) -> Broker:
        racing.append(RacingHistory(broker))
        return racing[0]  # type: ignore[return-value]

    hub, broker = await hub_for(wrap=wrap)
    await publish_n(broker, 12)
    outbox = Outbox(limit=10_000)
    _, reply = await hub.subscribe(outbox, CH, since=0, epoch=None)
    assert reply.recovered is True
    top = 12 + racing[0].published
    assert racing[0].published >= 4  # the replay took several pages, each raced twice

    frames: list[Frame] = []
    await take_until(outbox, frames, lambda fs: top in event_seqs(fs))
    assert event_seqs(frames) == list(range(1, top + 1))
