"""A burst of subscribers to one channel: one broker subscription, shared reads, every subscriber served.

Thousands of clients subscribing to a sitting at once must cost the broker one subscription per channel and one
read, and none of them may fail because the others arrived at the same time. Both brokers run the burst for
real; an instrumented broker (the real one underneath, its calls counted and, where a test asks, held or failed)
counts the calls and stages the races: a failure during the burst, a release while others join, a joiner that
gives up, a read that started before a subscriber joined. Waits are bounded by WAIT_S only so a broken build
fails instead of hanging; no test asserts on how long anything took.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from broadcast.broker import Broker, BrokerUnavailable, EventHandler
from broadcast.broker_memory import MemoryBroker
from broadcast.broker_redis import RedisBroker
from broadcast.envelope import Event, Position
from broadcast.hub import Hub, Subscribed, UnknownChannel
from broadcast.outbox import Frame, Outbox

WAIT_S = 15.0
CH = "sitting:s1"
BURST = 2_000
PAUSE_MS = 3000
CHANNELS = [f"sitting:s{i}" for i in range(4)]


class Instrumented:
    """A broker that counts the calls the hub makes and can hold them at a gate, or fail ``subscribe``."""

    def __init__(self, inner: Broker) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        # Calls of these methods wait for the event before reaching the broker (history: after reading it).
        self.gates: dict[str, asyncio.Event] = {}
        self.fail_subscribe = False

    async def _gate(self, name: str) -> None:
        gate = self.gates.get(name)
        if gate is not None:
            await gate.wait()

    async def start(self, handler: EventHandler) -> None:
        await self.inner.start(handler)

    async def close(self) -> None:
        await self.inner.close()

    async def publish(self, channel: str, type: str, data: dict[str, Any]) -> Event:
        return await self.inner.publish(channel, type, data)

    async def position(self, channel: str) -> Position:
        self.calls["position"] += 1
        return await self.inner.position(channel)

    async def history(self, channel: str, since: int, limit: int) -> tuple[list[Event], Position, int]:
        self.calls["history"] += 1
        result = await self.inner.history(channel, since, limit)
        await self._gate("history")
        return result

    async def subscribe(self, channel: str) -> None:
        self.calls["subscribe"] += 1
        await self._gate("subscribe")
        if self.fail_subscribe:
            raise BrokerUnavailable("test: the broker is down")
        await self.inner.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.calls["unsubscribe"] += 1
        await self._gate("unsubscribe")
        await self.inner.unsubscribe(channel)

    async def healthy(self) -> bool:
        return await self.inner.healthy()


MakeBus = Callable[..., Awaitable[tuple[Hub, Instrumented]]]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[MakeBus]:
    """Factory of a started hub on an instrumented broker of this test's kind; all are closed at the end."""
    hubs: list[Hub] = []

    async def make(url: str | None = None, **kwargs: Any) -> tuple[Hub, Instrumented]:
        inner: Broker
        if request.param == "memory":
            inner = MemoryBroker()
        else:
            url = url or request.getfixturevalue("redis_url")
            inner = RedisBroker(url, prefix=request.getfixturevalue("redis_prefix"), **kwargs)
        broker = Instrumented(inner)
        hub = Hub(broker)
        hubs.append(hub)
        await hub.start()
        return hub, broker

    yield make
    for hub in hubs:
        await hub.close()


def fast_bus() -> tuple[Hub, Instrumented]:
    broker = Instrumented(MemoryBroker())
    return Hub(broker), broker


async def received(outbox: Outbox, until_seq: int) -> list[Frame]:
    """Everything put in ``outbox`` up to the event ``until_seq``."""
    frames: list[Frame] = []
    async with asyncio.timeout(WAIT_S):
        while not any(isinstance(f, Event) and f.seq >= until_seq for f in frames):
            got = await outbox.take()
            assert got, "outbox overflowed or closed"
            frames.extend(got)
    return frames


def event_seqs(frames: list[Frame]) -> list[int]:
    return [f.seq for f in frames if isinstance(f, Event)]


async def publish_n(broker: Broker, n: int, channel: str = CH) -> list[Event]:
    return [await broker.publish(channel, "caption.final", {"i": i}) for i in range(n)]


# ---- the burst, on both brokers -------------------------------------------------------------------------------


async def test_a_burst_of_subscribers_is_served_by_one_broker_subscription_and_no_read(make_bus: MakeBus) -> None:
    """2,000 concurrent subscribers without since, with events published during the burst: all are subscribed, the
    broker saw one subscribe and one position read, and each gets every event after its reported position once."""
    hub, broker = await make_bus()
    await publish_n(broker, 3)
    outboxes = [Outbox(limit=1_000) for _ in range(BURST)]

    async def publisher() -> None:
        for i in range(20):
            await broker.publish(CH, "caption.final", {"during": i})
            await asyncio.sleep(0)

    publishing = asyncio.ensure_future(publisher())
    replies = await asyncio.gather(*(hub.subscribe(o, CH) for o in outboxes))
    await publishing
    assert hub.subscription_count == BURST
    assert (broker.calls["subscribe"], broker.calls["position"], broker.calls["history"]) == (1, 1, 0)
    last = (await publish_n(broker, 3))[-1].seq
    for outbox, (_, reply) in zip(outboxes, replies, strict=True):
        frames = await received(outbox, last)
        assert frames[0] == reply.frame()
        assert event_seqs(frames) == list(range(reply.position.seq + 1, last + 1))


async def test_a_burst_of_resuming_subscribers_shares_one_history_read_per_channel(make_bus: MakeBus) -> None:
    """2,000 subscribers resuming from the same seq on 4 channels: one subscribe and one history read per channel,
    and every subscriber gets exactly what it missed, then live events."""
    hub, broker = await make_bus()
    for channel in CHANNELS:
        await publish_n(broker, 10, channel)
    outboxes = [Outbox(limit=100) for _ in range(BURST)]
    replies = await asyncio.gather(
        *(hub.subscribe(o, CHANNELS[i % len(CHANNELS)], since=4) for i, o in enumerate(outboxes))
    )
    assert all(reply.recovered for _, reply in replies)
    assert (broker.calls["subscribe"], broker.calls["history"]) == (len(CHANNELS), len(CHANNELS))
    for channel in CHANNELS:
        await broker.publish(channel, "speaker", {"live": True})
    for outbox in outboxes:
        assert event_seqs(await received(outbox, 11)) == [5, 6, 7, 8, 9, 10, 11]


async def test_a_broker_failure_during_the_burst_reaches_every_waiter_and_leaves_nothing(make_bus: MakeBus) -> None:
    """When the one subscription fails, each of 500 waiters gets BrokerUnavailable, no state is left in the hub or
    the broker, and a later subscribe works."""
    hub, broker = await make_bus()
    broker.gates["subscribe"] = gate = asyncio.Event()
    broker.fail_subscribe = True
    burst = [asyncio.ensure_future(hub.subscribe(Outbox(limit=100), CH)) for _ in range(500)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*burst, return_exceptions=True)
    assert [type(r) for r in results] == [BrokerUnavailable] * 500
    assert broker.calls["subscribe"] == 1
    assert hub.state_sizes() == (0, 0, 0)
    if isinstance(broker.inner, RedisBroker):
        assert broker.inner.subscription_count == 0

    broker.fail_subscribe = False
    outbox = Outbox(limit=100)
    await hub.subscribe(outbox, CH)
    event = await broker.publish(CH, "speaker", {})
    assert event_seqs(await received(outbox, event.seq)) == [event.seq]


# ---- against Redis itself -------------------------------------------------------------------------------------


@pytest.fixture
async def private_admin(private_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An admin client of this session's private Redis, whose command counts no other test disturbs meanwhile."""
    client = aioredis.Redis.from_url(private_redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def command_calls(admin: aioredis.Redis, *names: str) -> int:
    """How many times Redis ran these commands (successfully) since the last CONFIG RESETSTAT."""
    stats = await admin.info("commandstats")
    total = 0
    for name in names:
        stat = stats.get(f"cmdstat_{name}", {})
        total += int(stat.get("calls", 0)) - int(stat.get("failed_calls", 0)) - int(stat.get("rejected_calls", 0))
    return total


@pytest.mark.redis
async def test_redis_receives_one_subscribe_per_channel_for_a_burst(
    private_redis_url: str, private_admin: aioredis.Redis
) -> None:
    """Redis itself runs one SUBSCRIBE per channel for 2,000 subscribers on 4 channels (half of them resuming), holds
    one subscriber per channel, and at most three reads per channel (its reader's, the hub's position, one history)."""
    broker = RedisBroker(private_redis_url, prefix=f"test-{secrets.token_hex(6)}")
    hub = Hub(broker)
    await hub.start()
    try:
        for channel in CHANNELS:
            await publish_n(broker, 5, channel)
        await private_admin.config_resetstat()
        outboxes = [Outbox(limit=100) for _ in range(BURST)]
        await asyncio.gather(
            *(hub.subscribe(o, CHANNELS[i % len(CHANNELS)], since=i % 2 or None) for i, o in enumerate(outboxes))
        )
        assert hub.subscription_count == BURST
        assert await command_calls(private_admin, "subscribe") == len(CHANNELS)
        numsub = await private_admin.pubsub_numsub(*(broker._pub(c) for c in CHANNELS))
        assert [n for _, n in numsub] == [1] * len(CHANNELS)
        assert await command_calls(private_admin, "evalsha", "eval") <= 3 * len(CHANNELS)
    finally:
        await hub.close()


@pytest.mark.redis
async def test_a_burst_while_redis_hangs_fails_every_waiter_then_a_later_subscribe_works(
    private_redis_url: str, private_admin: aioredis.Redis
) -> None:
    """300 subscribers while Redis answers nothing all get BrokerUnavailable from the one timed-out subscription,
    nothing is left in the hub or broker, and once Redis answers a subscribe goes through and gets events."""
    broker = RedisBroker(
        private_redis_url, prefix=f"test-{secrets.token_hex(6)}", socket_timeout=0.5, connect_timeout=0.5
    )
    hub = Hub(broker)
    await hub.start()
    try:
        # Longer than a subscribe may wait (0.5 + 0.5 s); CLIENT UNPAUSE would wait behind the pause itself.
        await private_admin.execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL")
        results = await asyncio.gather(
            *(hub.subscribe(Outbox(limit=100), CH) for _ in range(300)), return_exceptions=True
        )
        assert [type(r) for r in results] == [BrokerUnavailable] * 300
        assert hub.state_sizes() == (0, 0, 0)
        assert broker.subscription_count == 0

        outbox = Outbox(limit=100)
        async with asyncio.timeout(WAIT_S + PAUSE_MS / 1000):
            while True:  # the pub/sub connection may still be catching up on what the pause held back
                try:
                    await hub.subscribe(outbox, CH)
                    break
                except BrokerUnavailable:
                    await asyncio.sleep(0.1)
        event = await broker.publish(CH, "speaker", {})
        assert event_seqs(await received(outbox, event.seq)) == [event.seq]
    finally:
        await hub.close()


# ---- races, staged on the memory broker -----------------------------------------------------------------------


@pytest.mark.fast
async def test_a_joiner_that_gives_up_does_not_cancel_the_subscription_of_the_others() -> None:
    """Cancelling one of ten subscribers waiting on the channel's subscription leaves the other nine subscribed."""
    hub, broker = fast_bus()
    await hub.start()
    broker.gates["subscribe"] = gate = asyncio.Event()
    waiting = [asyncio.ensure_future(hub.subscribe(Outbox(limit=100), CH)) for _ in range(10)]
    await asyncio.sleep(0)
    waiting[0].cancel()
    gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(r, tuple) for r in results[1:])
    assert hub.subscription_count == 9
    assert broker.calls["subscribe"] == 1


@pytest.mark.fast
async def test_a_subscriber_joining_while_the_last_one_leaves_waits_for_the_release_then_subscribes() -> None:
    """A subscribe during the release of the channel's subscription is neither lost to it nor torn down by it: it
    subscribes afresh once the release is done, and gets live events."""
    hub, broker = fast_bus()
    await hub.start()
    first, _ = await hub.subscribe(Outbox(limit=100), CH)
    broker.gates["unsubscribe"] = gate = asyncio.Event()
    leaving = asyncio.ensure_future(hub.unsubscribe(first))
    await asyncio.sleep(0)
    outbox = Outbox(limit=100)
    joining = asyncio.ensure_future(hub.subscribe(outbox, CH))
    await asyncio.sleep(0)
    assert not joining.done()
    gate.set()
    await leaving
    await joining
    assert (broker.calls["subscribe"], broker.calls["unsubscribe"]) == (2, 1)
    event = await broker.publish(CH, "speaker", {})
    assert event_seqs(await received(outbox, event.seq)) == [event.seq]
    await hub.unsubscribe(joining.result()[0])
    assert hub.state_sizes() == (0, 0, 0)


@pytest.mark.fast
async def test_a_burst_asks_the_archive_once_whether_the_channel_exists_and_never_keeps_a_no() -> None:
    """500 subscribers arriving while the archive is asked: one question answers all of them, and the "yes" serves
    the next subscriber too; an unknown channel is asked about every time (a "no" is never kept), and a failing
    check reaches every waiter as BrokerUnavailable without being kept either."""
    asked: Counter[str] = Counter()
    gate = asyncio.Event()
    answers = {CH: True, "sitting:nope": False}

    async def exists(channel: str) -> bool:
        asked[channel] += 1
        await gate.wait()
        if channel not in answers:
            raise OSError("archive down")
        return answers[channel]

    hub = Hub(MemoryBroker(), channel_exists=exists)
    await hub.start()
    waiting = [asyncio.ensure_future(hub.subscribe(Outbox(limit=100), CH)) for _ in range(500)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*waiting)
    await hub.subscribe(Outbox(limit=100), CH)
    assert asked[CH] == 1 and hub.subscription_count == 501
    for _ in range(3):
        with pytest.raises(UnknownChannel):
            await hub.subscribe(Outbox(limit=100), "sitting:nope")
    assert asked["sitting:nope"] == 3
    failing = await asyncio.gather(
        *(hub.subscribe(Outbox(limit=100), "sitting:down") for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, BrokerUnavailable) for r in failing) and asked["sitting:down"] == 1
    with pytest.raises(BrokerUnavailable):
        await hub.subscribe(Outbox(limit=100), "sitting:down")
    assert asked["sitting:down"] == 2
    await hub.close()


@pytest.mark.fast
async def test_a_subscriber_does_not_share_a_history_read_that_started_before_it_joined() -> None:
    """A read made before an event reached the hub is not shared with a subscriber that joined after that event:
    it reads again and gets the event, so sharing never leaves a gap."""
    hub, broker = fast_bus()
    await hub.start()
    await publish_n(broker, 3)
    broker.gates["history"] = gate = asyncio.Event()
    early_outbox, late_outbox = Outbox(limit=100), Outbox(limit=100)
    early = asyncio.ensure_future(hub.subscribe(early_outbox, CH, since=0))
    async with asyncio.timeout(WAIT_S):
        while broker.calls["history"] < 1:
            await asyncio.sleep(0)
    fourth = await broker.publish(CH, "speaker", {})  # after the early read, before the late subscriber joins
    late = asyncio.ensure_future(hub.subscribe(late_outbox, CH, since=0))
    async with asyncio.timeout(WAIT_S):
        while broker.calls["history"] < 2:
            await asyncio.sleep(0)
    gate.set()
    replies: list[tuple[Any, Subscribed]] = list(await asyncio.gather(early, late))
    assert [reply.position.seq for _, reply in replies] == [3, 4]
    fifth = await broker.publish(CH, "speaker", {})
    for outbox in (early_outbox, late_outbox):
        assert event_seqs(await received(outbox, fifth.seq)) == [1, 2, 3, fourth.seq, fifth.seq]


@pytest.mark.redis
async def test_a_thousand_concurrent_commands_queue_for_a_connection_instead_of_failing(
    redis_url: str, redis_prefix: str
) -> None:
    """1,000 reads at once through a pool of 8 connections all succeed: the excess waits its turn."""
    broker = RedisBroker(redis_url, prefix=redis_prefix, max_connections=8)
    await broker.start(lambda event: None)
    try:
        await broker.publish(CH, "speaker", {})
        positions = await asyncio.gather(*(broker.position(CH) for _ in range(1_000)))
        assert {p.seq for p in positions} == {1}
    finally:
        await broker.close()


@pytest.mark.redis
async def test_subscribing_and_live_delivery_do_not_wait_for_a_busy_command_pool(
    redis_url: str, redis_prefix: str
) -> None:
    """With every command connection taken, a subscribe is still confirmed and its events delivered: the pub/sub
    reader reads positions and back-fills on a connection of its own."""
    got: list[Event] = []
    broker = RedisBroker(redis_url, prefix=redis_prefix, max_connections=1)
    publisher = RedisBroker(redis_url, prefix=redis_prefix)
    await broker.start(got.append)
    await publisher.start(lambda event: None)
    pool = broker._redis.connection_pool
    taken = await pool.get_connection()
    try:
        await broker.subscribe(CH)
        event = await publisher.publish(CH, "speaker", {})
        async with asyncio.timeout(WAIT_S):
            while not got:
                await asyncio.sleep(0.01)
        assert got == [event]
    finally:
        await pool.release(taken)
        await publisher.close()
        await broker.close()
