"""Server-Sent Events over a real server: id is the seq, Last-Event-ID and ?since= resume."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from live_server import Running, serve, test_settings

CHANNEL = "sitting:s1"


@pytest.fixture
async def running(tmp_path: Path):
    async with serve(test_settings(tmp_path)) as r:
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
