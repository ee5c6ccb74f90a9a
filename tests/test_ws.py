"""The WebSocket transport over a real socket: subscribe, resume, errors, slow consumers."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
import websockets
from live_server import Running, serve, test_settings

from broadcast import closecodes

CHANNEL = "sitting:s1"


async def _recv(ws: websockets.ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def _publish(running: Running, n: int, text: str = "ข้อความ", channel: str = CHANNEL) -> list[int]:
    seqs = []
    for i in range(n):
        event = await running.app.state.hub.publish(channel, "caption.partial", {"text": f"{text} {i}"})
        seqs.append(event.seq)
    return seqs


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def running(request: pytest.FixtureRequest, tmp_path: Path):
    """The real server, on the in-process bus and behind a real Redis."""
    overrides: dict[str, object] = {"ws_outbox": 64}
    if request.param == "redis":
        overrides["redis_url"] = request.getfixturevalue("redis_url")
        overrides["redis_prefix"] = request.getfixturevalue("redis_prefix")
    async with serve(test_settings(tmp_path, **overrides)) as r:
        # Only channels of sittings and bills in the archive can be subscribed to.
        await r.app.state.store.create_sitting("s1", "การประชุม", "senate")
        await r.app.state.store.upsert_bill("b1", "ร่างพระราชบัญญัติ")
        yield r


async def test_subscribe_then_live_events(running: Running):
    """A subscriber without since is told the latest seq and then gets only newer events, in order."""
    await _publish(running, 3)
    async with websockets.connect(running.ws_url) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channel": CHANNEL}))
        reply = await _recv(ws)
        assert reply["op"] == "subscribed" and reply["recovered"] is True and reply["seq"] == 3
        await _publish(running, 2)
        assert [(await _recv(ws))["seq"] for _ in range(2)] == [4, 5]


async def test_resume_with_since_has_no_gap_and_no_duplicate(running: Running):
    """Resuming from seq 2 replays 3..N exactly once, then continues live without a gap."""
    await _publish(running, 5)
    async with websockets.connect(running.ws_url) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channel": CHANNEL, "since": 2}))
        reply = await _recv(ws)
        assert reply["recovered"] is True and reply["seq"] == 5
        # Publish while the replay is being delivered: these must follow it without duplicates.
        await _publish(running, 3)
        got = [(await _recv(ws))["seq"] for _ in range(6)]
        assert got == [3, 4, 5, 6, 7, 8]
        await ws.send(json.dumps({"op": "ping"}))
        assert await _recv(ws) == {"op": "pong"}


async def test_a_replay_longer_than_the_outbox_is_paced_not_cut(running: Running):
    """Resuming 300 events behind with a 64-event outbox delivers all of them, paced to the reader."""
    await _publish(running, 300)
    async with websockets.connect(running.ws_url) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channel": CHANNEL, "since": 0}))
        assert (await _recv(ws))["recovered"] is True
        assert [(await _recv(ws))["seq"] for _ in range(300)] == list(range(1, 301))


async def test_resume_from_another_epoch_is_not_recovered(running: Running):
    """A position from a lost history (other epoch) is answered with recovered: false and no replay."""
    await _publish(running, 2)
    async with websockets.connect(running.ws_url) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channel": CHANNEL, "since": 1, "epoch": "gone"}))
        reply = await _recv(ws)
        assert reply["recovered"] is False and reply["seq"] == 2
        await _publish(running, 1)
        assert (await _recv(ws))["seq"] == 3


async def test_unsubscribe_stops_delivery(running: Running):
    """After unsubscribe the client gets no more events of that channel but keeps its other subscriptions."""
    async with websockets.connect(running.ws_url) as ws:
        for channel in (CHANNEL, "bill:b1"):
            await ws.send(json.dumps({"op": "subscribe", "channel": channel}))
            assert (await _recv(ws))["op"] == "subscribed"
        await ws.send(json.dumps({"op": "unsubscribe", "channel": CHANNEL}))
        assert await _recv(ws) == {"op": "unsubscribed", "channel": CHANNEL}
        await _publish(running, 1)
        await _publish(running, 1, channel="bill:b1")
        event = await _recv(ws)
        assert event["channel"] == "bill:b1"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_request"),
        ('{"op": "publish", "channel": "sitting:s1"}', "unknown_op"),
        ('{"op": "subscribe", "channel": "sitting:../etc"}', "bad_channel"),
        ('{"op": "subscribe", "channel": "sitting:s1", "since": -1}', "bad_request"),
        ('{"op": "subscribe", "channel": "sitting:s1", "since": "5"}', "bad_request"),
        ('{"op": "unsubscribe", "channel": "sitting:s1"}', "not_subscribed"),
    ],
)
async def test_bad_frames_get_error_frames_and_the_connection_survives(running: Running, frame: str, code: str):
    """Each invalid frame is answered with an error frame; the same connection then works normally."""
    async with websockets.connect(running.ws_url) as ws:
        await ws.send(frame)
        reply = await _recv(ws)
        assert reply["op"] == "error" and reply["code"] == code and reply["error"]
        await ws.send(json.dumps({"op": "subscribe", "channel": CHANNEL}))
        assert (await _recv(ws))["op"] == "subscribed"


async def test_double_subscribe_is_an_error(running: Running):
    """Subscribing twice to one channel is refused so a client cannot receive each event twice."""
    async with websockets.connect(running.ws_url) as ws:
        for _ in range(2):
            await ws.send(json.dumps({"op": "subscribe", "channel": CHANNEL}))
        assert (await _recv(ws))["op"] == "subscribed"
        assert (await _recv(ws))["code"] == "already_subscribed"


async def test_a_flood_of_bad_frames_closes_the_connection(running: Running):
    """A client that only sends garbage is closed with the too-many-errors code."""
    async with websockets.connect(running.ws_url) as ws:
        for _ in range(25):
            await ws.send("garbage")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await _recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == closecodes.TOO_MANY_ERRORS


def _stalled_client(port: int) -> socket.socket:
    """A WebSocket client that subscribes and then never reads, with a tiny receive window."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101")
    payload = json.dumps({"op": "subscribe", "channel": CHANNEL}).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked)
    return sock


def _drain_until_closed(sock: socket.socket) -> bool:
    sock.settimeout(10)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


async def test_a_stalled_client_does_not_delay_others_and_is_cut_off(running: Running):
    """A client that never reads is disconnected as a slow consumer while a healthy client gets every event."""
    port = int(running.url.rsplit(":", 1)[1])
    hub = running.app.state.hub
    async with websockets.connect(running.ws_url, max_size=None) as healthy:
        await healthy.send(json.dumps({"op": "subscribe", "channel": CHANNEL}))
        assert (await _recv(healthy))["op"] == "subscribed"
        stalled = await asyncio.to_thread(_stalled_client, port)
        try:
            while hub.subscription_count < 2:
                await asyncio.sleep(0.01)
            big = "ก" * 4000  # ~12 KB of UTF-8 per event fills the stalled socket's buffers quickly
            received: list[int] = []
            total = 0
            while hub.subscription_count > 1:
                seqs = await _publish(running, 10, big)
                total = seqs[-1]
                for _ in seqs:
                    received.append((await _recv(healthy))["seq"])
                assert total < 5000, "the stalled client was never cut off"
            assert received == list(range(1, total + 1))
            metrics = running.app.state.metrics.render().decode()
            assert "sapha_slow_consumers_total 1.0" in metrics
            # The healthy client carries on as before.
            await _publish(running, 1)
            assert (await _recv(healthy))["seq"] == total + 1
            # And the server really let go of the stalled connection: reading it ends in EOF or a reset.
            assert await asyncio.to_thread(_drain_until_closed, stalled)
        finally:
            stalled.close()
