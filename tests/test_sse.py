"""Server-Sent Events over a real server: id is the seq, Last-Event-ID and ?since= resume."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from live_server import Running, serve, test_settings

CHANNEL = "sitting:s1"


@pytest.fixture
async def running(tmp_path: Path):
    async with serve(test_settings(tmp_path)) as r:
        await r.app.state.store.create_sitting("s1", "การประชุม", "senate")
        yield r


async def _read_events(lines: AsyncIterator[str], n: int) -> list[dict]:
    """Parse SSE blocks until n events (blocks with an id) have arrived; returns them with their fields."""
    events: list[dict] = []
    block: dict[str, str] = {}
    async for line in lines:
        if line == "":
            if "id" in block:
                events.append(block)
                if len(events) == n:
                    return events
            block = {}
            continue
        field, _, value = line.partition(": ")
        block[field] = value
    return events


@pytest.mark.parametrize("how", ["query", "header"])
async def test_sse_resumes_from_since_or_last_event_id(running: Running, how: str):
    """Events after the given seq arrive with id = seq and event = type, then live ones follow."""
    hub = running.app.state.hub
    for i in range(4):
        await hub.publish(CHANNEL, "caption.final", {"text": f"ประโยค {i}"})
    params = {"since": "2"} if how == "query" else {}
    headers = {"Last-Event-ID": "2"} if how == "header" else {}
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
        async with client.stream("GET", f"/api/channels/{CHANNEL}/events", params=params, headers=headers) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            lines = r.aiter_lines()
            first = await _read_events(lines, 2)
            await hub.publish(CHANNEL, "vote.result", {"result": "passed"})
            live = await _read_events(lines, 1)
    got = first + live
    assert [e["id"] for e in got] == ["3", "4", "5"]
    assert [e["event"] for e in got] == ["caption.final", "caption.final", "vote.result"]
    assert json.loads(got[0]["data"])["data"]["text"] == "ประโยค 2"


async def test_last_event_id_wins_over_a_stale_since(running: Running):
    """EventSource reconnects to its first URL; its Last-Event-ID, not the URL's since, sets the position."""
    hub = running.app.state.hub
    for i in range(5):
        await hub.publish(CHANNEL, "caption.final", {"text": f"ประโยค {i}"})
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
        async with client.stream(
            "GET", f"/api/channels/{CHANNEL}/events", params={"since": "1"}, headers={"Last-Event-ID": "4"}
        ) as r:
            got = await _read_events(r.aiter_lines(), 1)
    assert got[0]["id"] == "5"


@pytest.mark.parametrize(
    ("path", "params"),
    [("/api/channels/nonsense/events", {}), (f"/api/channels/{CHANNEL}/events", {"since": "abc"})],
)
async def test_sse_rejects_bad_channels_and_positions(running: Running, path: str, params: dict):
    """A malformed channel or since is a 400 in the JSON error shape, not a stream."""
    async with httpx.AsyncClient(base_url=running.url) as client:
        r = await client.get(path, params=params)
    assert r.status_code == 400 and r.json()["ok"] is False


async def test_sse_to_an_unknown_sitting_is_a_404_and_subscribes_nothing(running: Running):
    """A well-formed channel whose sitting does not exist is a 404 in the JSON error shape; nothing is set up."""
    async with httpx.AsyncClient(base_url=running.url) as client:
        r = await client.get("/api/channels/sitting:nope/events")
    assert r.status_code == 404 and r.json()["ok"] is False and "nope" in r.json()["error"]
    assert running.app.state.hub.state_sizes() == (0, 0, 0)
    assert running.app.state.hub.broker.channel_count == 0


def _stalled_sse_client(port: int) -> socket.socket:
    """An SSE client that sends its request and then never reads, with a tiny receive window."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /api/channels/{CHANNEL}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


async def test_a_stalled_sse_client_is_cut_and_everything_it_held_is_released(tmp_path: Path):
    """A client that stops reading overflows its bounded outbox and is disconnected; its subscription, outbox,
    connection count and gauge are all released, and the socket ends."""
    async with serve(test_settings(tmp_path, ws_outbox=64)) as running:
        await running.app.state.store.create_sitting("s1", "การประชุม", "senate")
        hub = running.app.state.hub
        port = int(running.url.rsplit(":", 1)[1])
        stalled = await asyncio.to_thread(_stalled_sse_client, port)
        try:
            async with asyncio.timeout(10):
                while hub.subscription_count < 1:
                    await asyncio.sleep(0.01)
            big = "ก" * 4000  # ~12 KB of UTF-8 per event fills the socket buffers quickly
            published = 0
            while hub.subscription_count:
                for _ in range(10):
                    await hub.publish(CHANNEL, "caption.partial", {"text": big})
                published += 10
                assert published < 5000, "the stalled SSE client was never cut off"
                await asyncio.sleep(0)
            # The channel's broker subscription is released by a task of its own once its last subscriber leaves.
            async with asyncio.timeout(10):
                while hub.state_sizes() != (0, 0, 0):
                    await asyncio.sleep(0.01)
            async with asyncio.timeout(10):  # the handler returns just after it unsubscribed
                while len(running.app.state.socket.limiter):
                    await asyncio.sleep(0.01)
            metrics = running.app.state.metrics.render().decode()
            assert "sapha_slow_consumers_total 1.0" in metrics
            assert 'sapha_clients_connected{transport="sse"} 0.0' in metrics
            # The server let go of the connection: reading what it had sent ends in EOF or a reset.
            data = await asyncio.to_thread(_read_until_closed, stalled)
            assert data.startswith(b"HTTP/1.1 200")
        finally:
            stalled.close()
