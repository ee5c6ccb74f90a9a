"""The event bus against anonymous abuse and faults, over the real server, Redis and sockets.

Reads and subscriptions of channels that do not exist create nothing; every malformed frame is answered and the
connection stays usable; connections per address are capped; a hung Redis fails calls fast with BrokerUnavailable.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import websockets
from live_server import Running, serve, test_settings

from broadcast import closecodes
from broadcast.broker import BrokerUnavailable
from broadcast.broker_memory import MemoryBroker
from broadcast.broker_redis import RedisBroker
from broadcast.envelope import MAX_SEQ, NO_EPOCH, Position
from broadcast.hub import Hub, UnknownChannel
from broadcast.limits import ConnectionLimiter
from broadcast.outbox import Outbox

CHANNEL = "sitting:s1"
RANDOM_SUBSCRIPTIONS = 10_000
WAIT_S = 15.0


async def _recv(ws: websockets.ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))


def _random_channel() -> str:
    return f"{secrets.choice(['sitting', 'bill'])}:{secrets.token_hex(8)}"


async def _count_keys(client: aioredis.Redis, prefix: str) -> int:
    return len([key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)])


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def problems(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    """The real server with sitting s1 in its archive, on the in-process bus and behind a real Redis."""
    overrides: dict[str, object] = {"ws_outbox": 64}
    if request.param == "redis":
        overrides["redis_url"] = request.getfixturevalue("redis_url")
        overrides["redis_prefix"] = request.getfixturevalue("redis_prefix")
    async with serve(test_settings(tmp_path, **overrides)) as r:
        await r.app.state.store.create_sitting("s1", "การประชุม", "senate")
        yield r


@contextlib.contextmanager
def _watch_log() -> Iterator[_Records]:
    """Everything the server logs, uvicorn's own loggers included (they do not propagate to pytest's caplog).
    Enter it after the server started: uvicorn's logging set-up drops the handlers its loggers had before."""
    handler = _Records()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


@pytest.fixture
def server_log(running: Running) -> Iterator[_Records]:
    with _watch_log() as handler:
        yield handler


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def _assert_no_channel_state(running: Running) -> None:
    hub = running.app.state.hub
    assert hub.state_sizes() == (0, 0, 0)
    broker = hub.broker
    if isinstance(broker, MemoryBroker):
        assert broker.channel_count == 0
        return
    assert isinstance(broker, RedisBroker)
    assert broker.subscription_count == 0
    settings = running.app.state.settings
    client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        assert await _count_keys(client, settings.redis_prefix) == 0
        assert await client.pubsub_channels(f"{settings.redis_prefix}:*") == []
    finally:
        await client.aclose()


# ---- only publishing creates channel state -------------------------------------------------------------------


async def test_random_subscriptions_over_the_websocket_create_nothing(running: Running, server_log: _Records) -> None:
    """10,000 subscriptions to random channels get unknown_channel errors; no key, channel or entry is created."""
    async with websockets.connect(running.ws_url) as ws:
        sent = 0
        while sent < RANDOM_SUBSCRIPTIONS:
            # A ping after every 19 errors keeps the connection under the consecutive-error limit.
            batch = [_random_channel() for _ in range(min(19, RANDOM_SUBSCRIPTIONS - sent))]
            for channel in batch:
                await ws.send(json.dumps({"op": "subscribe", "channel": channel, "since": 0}))
            await ws.send('{"op":"ping"}')
            replies = [await _recv(ws) for _ in range(len(batch) + 1)]
            assert [(r.get("code"), r.get("channel")) for r in replies[:-1]] == [("unknown_channel", c) for c in batch]
            assert replies[-1] == {"op": "pong"}
            sent += len(batch)
        # Reads through the other doors: the sitting state and SSE answer 404.
        async with httpx.AsyncClient(base_url=running.url, timeout=WAIT_S) as client:
            for _ in range(50):
                assert (await client.get(f"/api/sittings/{secrets.token_hex(8)}")).status_code == 404
                r = await client.get(f"/api/channels/{_random_channel()}/events")
                assert r.status_code == 404 and r.json()["ok"] is False
        await ws.send(json.dumps({"op": "subscribe", "channel": CHANNEL}))
        assert (await _recv(ws))["op"] == "subscribed"
        await ws.send(json.dumps({"op": "unsubscribe", "channel": CHANNEL}))
        assert (await _recv(ws))["op"] == "unsubscribed"
    async with asyncio.timeout(WAIT_S):
        while running.app.state.hub.subscription_count:
            await asyncio.sleep(0.01)
    await _assert_no_channel_state(running)
    assert server_log.problems() == []


@pytest.mark.redis
async def test_random_subscriptions_through_the_hub_create_no_redis_keys(
    redis_url: str, redis_prefix: str, admin: aioredis.Redis
) -> None:
    """Through the hub on RedisBroker, 10,000 random channels subscribed, read and left create no key or entry."""
    broker = RedisBroker(redis_url, prefix=redis_prefix)
    hub = Hub(broker)  # every name "exists" here: what is tested is that the broker's read paths write nothing
    await hub.start()
    try:
        outbox = Outbox(limit=2 * RANDOM_SUBSCRIPTIONS)

        async def one(i: int) -> None:
            channel = _random_channel()
            sub, reply = await hub.subscribe(outbox, channel, since=i % 3 or None, epoch=None)
            assert reply.position == Position(0, NO_EPOCH)
            assert await broker.history(channel, 0, 10) == ([], Position(0, NO_EPOCH), 1)
            await hub.unsubscribe(sub)

        for start in range(0, RANDOM_SUBSCRIPTIONS, 500):
            await asyncio.gather(*(one(i) for i in range(start, start + 500)))
        assert hub.state_sizes() == (0, 0, 0)
        assert broker.subscription_count == 0
        assert await _count_keys(admin, redis_prefix) == 0
        async with asyncio.timeout(WAIT_S):  # UNSUBSCRIBE is not awaited; Redis may apply the last ones later
            while await admin.pubsub_channels(f"{redis_prefix}:*"):
                await asyncio.sleep(0.01)

        refusing = Hub(broker, channel_exists=lambda channel: _false())
        for _ in range(100):
            with pytest.raises(UnknownChannel):
                await refusing.subscribe(outbox, _random_channel())
        assert refusing.state_sizes() == (0, 0, 0)
        assert await _count_keys(admin, redis_prefix) == 0
    finally:
        await hub.close()


async def _false() -> bool:
    return False


# ---- malformed frames ---------------------------------------------------------------------------------------

SUB = '{"op":"subscribe","channel":"sitting:s1","since":'
MALFORMED: dict[str, tuple[str | bytes, str]] = {
    "not JSON": ("{not json", "bad_json"),
    "an empty frame": ("", "bad_json"),
    "since 1e400 (infinity)": (SUB + "1e400}", "bad_request"),
    "since 10**30": (SUB + str(10**30) + "}", "bad_request"),
    "since 2**63": (SUB + str(2**63) + "}", "bad_request"),
    "since -1": (SUB + "-1}", "bad_request"),
    "since NaN": (SUB + "NaN}", "bad_request"),
    "since true": (SUB + "true}", "bad_request"),
    "since a float": (SUB + "5.0}", "bad_request"),
    "since a string": (SUB + '"5"}', "bad_request"),
    "an integer of 5000 digits": (SUB + "9" * 5000 + "}", "bad_json"),
    "arrays nested 65,000 deep": ("[" * 65_000, "bad_json"),
    "objects nested 13,000 deep": ('{"a":' * 13_000, "bad_json"),
    "a JSON array": ("[1, 2]", "bad_request"),
    "a JSON string": ('"subscribe"', "bad_request"),
    "a JSON number": ("42", "bad_request"),
    "JSON null": ("null", "bad_request"),
    "no op": ('{"channel":"sitting:s1"}', "unknown_op"),
    "op of the wrong type": ('{"op":["subscribe"]}', "unknown_op"),
    "a 60 KB op": ('{"op":"' + "x" * 60_000 + '"}', "unknown_op"),
    "channel of the wrong type": ('{"op":"subscribe","channel":42}', "bad_channel"),
    "channel an object": ('{"op":"subscribe","channel":{"a":1}}', "bad_channel"),
    "a 60 KB channel name": ('{"op":"subscribe","channel":"sitting:' + "a" * 60_000 + '"}', "bad_channel"),
    "a path in the channel": ('{"op":"subscribe","channel":"sitting:../etc"}', "bad_channel"),
    "an unknown channel": ('{"op":"subscribe","channel":"sitting:nope"}', "unknown_channel"),
    "epoch of the wrong type": ('{"op":"subscribe","channel":"sitting:s1","since":1,"epoch":5}', "bad_request"),
    "a 65-character epoch": ('{"op":"subscribe","channel":"sitting:s1","epoch":"' + "e" * 65 + '"}', "bad_request"),
    "a binary frame of invalid UTF-8": (b'{"op":"\xff\xfe"}', "bad_json"),
    "unsubscribe without a subscription": ('{"op":"unsubscribe","channel":"sitting:s1"}', "not_subscribed"),
}


@pytest.mark.parametrize("name", list(MALFORMED), ids=list(MALFORMED))
async def test_a_malformed_frame_gets_an_error_frame_and_the_connection_stays_usable(
    running: Running, server_log: _Records, name: str
) -> None:
    """The frame is answered with a short error frame of the expected code; subscribe and ping then work."""
    frame, code = MALFORMED[name]
    async with websockets.connect(running.ws_url) as ws:
        await ws.send(frame)
        reply = await _recv(ws)
        assert reply["op"] == "error" and reply["code"] == code and reply["error"], reply
        assert len(json.dumps(reply)) < 500  # the frame is never echoed back whole
        await ws.send(json.dumps({"op": "subscribe", "channel": CHANNEL}))
        assert (await _recv(ws))["op"] == "subscribed"
        await ws.send('{"op":"ping"}')
        assert await _recv(ws) == {"op": "pong"}
    assert server_log.problems() == []


async def test_since_at_the_largest_seq_is_a_valid_position_ahead_of_the_channel(running: Running) -> None:
    """since = 2^63-1 is accepted and answered with recovered: false (it is ahead of the channel)."""
    await running.app.state.hub.publish(CHANNEL, "speaker", {})
    async with websockets.connect(running.ws_url) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channel": CHANNEL, "since": MAX_SEQ}))
        reply = await _recv(ws)
        assert (reply["op"], reply["recovered"], reply["seq"]) == ("subscribed", False, 1)


async def test_json_in_a_binary_frame_is_served_like_text(running: Running) -> None:
    """A binary frame holding UTF-8 JSON is an ordinary op."""
    async with websockets.connect(running.ws_url) as ws:
        await ws.send(b'{"op":"ping"}')
        assert await _recv(ws) == {"op": "pong"}


def _raw_ws_text_frame(port: int, payload: bytes) -> bytes:
    """Open /ws by hand, send one masked text frame with ``payload`` as is, and return all the server sends back."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(1)
        assert response.startswith(b"HTTP/1.1 101")
        mask = os.urandom(4)
        sock.sendall(
            struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


async def test_a_text_frame_that_is_not_utf8_closes_with_1007_and_no_traceback(
    running: Running, server_log: _Records
) -> None:
    """RFC 6455 requires failing such a connection: it is closed with 1007, and the server logs no error."""
    port = int(running.url.rsplit(":", 1)[1])
    data = await asyncio.to_thread(_raw_ws_text_frame, port, b'{"op":"\xff\xfe"}')
    # The close frame: opcode 8, 2-byte payload, the code.
    assert data[:2] == b"\x88\x02" and struct.unpack("!H", data[2:4])[0] == 1007
    assert server_log.problems() == []


# ---- connections per address --------------------------------------------------------------------------------


async def test_connections_per_address_are_capped_for_websocket_and_sse_together(tmp_path: Path) -> None:
    """Past MAX_CONNECTIONS_PER_IP a WebSocket is closed with 4029 and SSE gets 429; closing one frees a place."""
    async with serve(test_settings(tmp_path, max_connections_per_ip=3)) as running:
        await running.app.state.store.create_sitting("s1", "การประชุม", "senate")
        url = f"/api/channels/{CHANNEL}/events"
        async with (
            httpx.AsyncClient(base_url=running.url, timeout=WAIT_S) as client,
            websockets.connect(running.ws_url) as first,
            websockets.connect(running.ws_url),
            client.stream("GET", url) as sse,
        ):
            assert sse.status_code == 200
            async with websockets.connect(running.ws_url) as refused:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await _recv(refused)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == closecodes.TOO_MANY_CONNECTIONS
            r = await client.get(url)
            assert r.status_code == 429 and r.json()["ok"] is False
            await first.close()
            async with asyncio.timeout(WAIT_S):
                while running.app.state.socket.limiter.count("127.0.0.1") > 2:
                    await asyncio.sleep(0.01)
            async with websockets.connect(running.ws_url) as again:
                await again.send('{"op":"ping"}')
                assert await _recv(again) == {"op": "pong"}
        metrics = running.app.state.metrics.render().decode()
        assert 'sapha_connections_refused_total{transport="ws"} 1.0' in metrics
        assert 'sapha_connections_refused_total{transport="sse"} 1.0' in metrics
        async with asyncio.timeout(WAIT_S):
            while len(running.app.state.socket.limiter):
                await asyncio.sleep(0.01)


# ---- a hung Redis -------------------------------------------------------------------------------------------
# CLIENT PAUSE ALL holds every command, CLIENT UNPAUSE included, until the pause ends; the timeouts under test are a
# tenth of it. A call that waited for Redis would succeed once the pause ends, so a BrokerUnavailable proves that it
# gave up on its own, with no clock in the test.

PAUSE_MS = 5000


@pytest.fixture
async def redis_admin(private_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An admin client of this session's private Redis (the one the tests pause)."""
    client = aioredis.Redis.from_url(private_redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def _until_healthy(broker: RedisBroker) -> None:
    async with asyncio.timeout(WAIT_S + PAUSE_MS / 1000):
        while not await broker.healthy():
            await asyncio.sleep(0.1)


@pytest.mark.redis
async def test_a_hung_redis_fails_broker_calls_fast_with_broker_unavailable(
    private_redis_url: str, redis_admin: aioredis.Redis
) -> None:
    """While Redis answers nothing, publish, position, history and subscribe raise BrokerUnavailable rather than
    wait for it; once it answers again the broker works as before."""
    broker = RedisBroker(
        private_redis_url, prefix=f"test-{secrets.token_hex(6)}", socket_timeout=0.5, connect_timeout=0.5
    )
    await broker.start(lambda event: None)
    try:
        await broker.publish(CHANNEL, "speaker", {})
        await redis_admin.execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL")
        results = await asyncio.gather(
            broker.publish(CHANNEL, "speaker", {}),
            broker.position(CHANNEL),
            broker.history(CHANNEL, 0, 10),
            broker.subscribe("sitting:other"),
            return_exceptions=True,
        )
        assert [type(r) for r in results] == [BrokerUnavailable] * 4, results
        assert all("127.0.0.1" in str(r) for r in results)
        await broker.unsubscribe("sitting:other")
        await _until_healthy(broker)
        assert (await broker.position(CHANNEL)).seq >= 1
        await broker.publish(CHANNEL, "speaker", {})
        assert broker.subscription_count == 0
    finally:
        await broker.close()


@pytest.mark.redis
async def test_a_websocket_subscribe_while_redis_hangs_gets_an_unavailable_error_frame(
    tmp_path: Path, private_redis_url: str, redis_admin: aioredis.Redis
) -> None:
    """Subscribing while Redis hangs is answered with an `unavailable` error frame, the connection stays usable, and
    the same subscribe succeeds once Redis answers again; nothing is logged as an error."""
    settings = test_settings(
        tmp_path,
        redis_url=private_redis_url,
        redis_prefix=f"test-{secrets.token_hex(6)}",
        redis_socket_timeout=0.5,
        redis_connect_timeout=0.5,
    )
    async with serve(settings) as running:
        with _watch_log() as server_log:
            await running.app.state.store.create_sitting("s1", "การประชุม", "senate")
            async with websockets.connect(running.ws_url) as ws:
                await redis_admin.execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL")
                await ws.send(json.dumps({"op": "subscribe", "channel": CHANNEL}))
                reply = await _recv(ws)
                assert (reply["op"], reply["code"], reply["channel"]) == ("error", "unavailable", CHANNEL)
                await ws.send('{"op":"ping"}')
                assert await _recv(ws) == {"op": "pong"}
                # A client retries, as the error says; once Redis is back the subscribe goes through.
                async with asyncio.timeout(WAIT_S + PAUSE_MS / 1000):
                    while True:
                        await ws.send(json.dumps({"op": "subscribe", "channel": CHANNEL}))
                        reply = await _recv(ws)
                        if reply["op"] == "subscribed":
                            break
                        assert reply["code"] == "unavailable"
                        await asyncio.sleep(0.2)
            assert server_log.problems() == []


# ---- in-process bookkeeping (fast) --------------------------------------------------------------------------


@pytest.mark.fast
def test_the_connection_limiter_counts_per_address_and_forgets_idle_ones() -> None:
    """acquire refuses past the limit per address, release frees a place, and idle addresses leave no entry."""
    limiter = ConnectionLimiter(2)
    assert limiter.acquire("a") and limiter.acquire("a") and not limiter.acquire("a")
    assert limiter.acquire("b")
    limiter.release("a")
    assert limiter.acquire("a")
    for address in ("a", "a", "b"):
        limiter.release(address)
    assert len(limiter) == 0
    unlimited = ConnectionLimiter(0)
    assert all(unlimited.acquire("a") for _ in range(1000))


@pytest.mark.fast
async def test_the_hub_keeps_nothing_of_channels_whose_subscribers_left() -> None:
    """500 channels, each subscribed and left by two subscribers at once, leave no hub entry, lock or channel."""
    broker = MemoryBroker()
    hub = Hub(broker)
    await hub.start()
    outbox = Outbox(limit=10_000)
    channels = [_random_channel() for _ in range(500)]

    async def one(channel: str) -> None:
        sub, _ = await hub.subscribe(outbox, channel, since=0)
        await asyncio.sleep(0)
        await hub.unsubscribe(sub)

    await asyncio.gather(*(one(c) for c in channels + channels))
    assert hub.state_sizes() == (0, 0, 0)
    assert broker.channel_count == 0
    refusing = Hub(broker, channel_exists=lambda channel: _false())
    with pytest.raises(UnknownChannel):
        await refusing.subscribe(outbox, CHANNEL)
    assert refusing.state_sizes() == (0, 0, 0)


@pytest.mark.fast
async def test_a_failing_channel_check_is_broker_unavailable_and_sets_nothing_up() -> None:
    """When the archive cannot say whether a channel exists (down, timing out), subscribe raises BrokerUnavailable
    (an "unavailable" error frame or a 503, never a crashed handler) and nothing is left behind."""

    async def archive_down(channel: str) -> bool:
        raise TimeoutError("the archive did not answer")

    broker = MemoryBroker()
    hub = Hub(broker, channel_exists=archive_down)
    await hub.start()
    with pytest.raises(BrokerUnavailable):
        await hub.subscribe(Outbox(limit=10), CHANNEL)
    assert hub.state_sizes() == (0, 0, 0) and broker.channel_count == 0
