"""``server.py --workers 2`` on Redis and PostgreSQL: the feed's process is killed, another takes the feed over.

Real processes, the real model, a looping Thai source. A WebSocket viewer follows the sitting throughout,
reconnecting with its (epoch, seq) whenever its connection drops (it may be on the killed process).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.test_feed_e2e import DEMO, server_process

pytestmark = [pytest.mark.model, pytest.mark.redis]

SITTING = "failover"
CHANNEL = f"sitting:{SITTING}"


async def _until(check: Callable[[], Awaitable[bool]], what: str, limit_s: float = 240.0) -> None:
    """Poll ``check`` until true; the limit only stops a broken run from hanging, it measures nothing."""
    for _ in range(int(limit_s / 0.25)):
        if await check():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


class Viewer:
    """A WebSocket client that resumes from its last (epoch, seq) after every drop, and checks what it gets.

    Every event must follow the last one (seq + 1 in the same epoch), and every resume must say recovered.
    """

    def __init__(self, ws_url: str) -> None:
        self.ws_url = ws_url
        self.epoch: str | None = None
        self.seq = 0
        self.events: list[dict[str, Any]] = []
        self.reconnects = 0
        self.problems: list[str] = []

    async def run(self) -> None:
        while True:
            with contextlib.suppress(OSError, websockets.ConnectionClosed):
                async with websockets.connect(self.ws_url) as ws:
                    subscribe: dict[str, Any] = {"op": "subscribe", "channel": CHANNEL, "since": self.seq}
                    subscribe["epoch"] = self.epoch if self.epoch is not None else ""
                    await ws.send(json.dumps(subscribe))
                    async for raw in ws:
                        self._take(json.loads(raw))
            self.reconnects += 1
            await asyncio.sleep(0.2)

    def _take(self, frame: dict[str, Any]) -> None:
        if frame.get("op") == "subscribed":
            if not frame["recovered"]:
                self.problems.append(f"not recovered at {self.epoch}/{self.seq}: {frame}")
            return
        if frame.get("op"):
            return
        if self.epoch is not None and (frame["epoch"], frame["seq"]) != (self.epoch, self.seq + 1):
            self.problems.append(f"after {self.epoch}/{self.seq} came {frame['epoch']}/{frame['seq']}")
        self.epoch, self.seq = frame["epoch"], frame["seq"]
        self.events.append(frame)

    def finals(self) -> list[dict[str, Any]]:
        return [e["data"] for e in self.events if e["type"] == "caption.final"]


def _media_playlist(master: Path) -> str:
    """The media playlist (and so the run) the sitting's master playlist names."""
    return next(line for line in master.read_text().splitlines() if line.startswith("media-"))


async def test_killing_the_feeds_process_moves_the_feed_without_a_gap_or_a_double(
    tmp_path: Path, redis_url: str, redis_prefix: str, postgres_url: str
) -> None:
    """kill -9 of the feed's worker: another owns it, archives new finals, nothing twice, the viewer resumes exactly."""
    # With the archive on PostgreSQL, the staff desk and alerts files would default to the repository's var/.
    env = {
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "DATABASE_URL": postgres_url,
        "STAFF_DB": str(tmp_path / "staff.db"),
    }
    args = ("--workers", "2", "--source", str(DEMO), "--sitting", SITTING, "--loop")
    master = tmp_path / "hls" / SITTING / "index.m3u8"
    async with server_process(tmp_path, *args, env=env, name="workers") as url:
        async with httpx.AsyncClient(base_url=url) as http:

            async def get(path: str) -> httpx.Response | None:
                # A kept-alive connection to the killed worker fails once; the next request goes to a live one.
                try:
                    return await http.get(path)
                except httpx.TransportError:
                    return None

            async def feed() -> dict[str, Any] | None:
                # Any worker answers: the owner shows the running feed, a standby who owns it.
                response = await get("/healthz")
                if response is None:
                    return None
                body = response.json()
                return next((f for f in body["feeds"] if f["sitting_id"] == SITTING), None)

            async def segments() -> list[dict[str, Any]]:
                response = await get(f"/api/sittings/{SITTING}/transcript")
                return response.json()["segments"] if response is not None and response.status_code == 200 else []

            async def captioning() -> bool:
                return bool(await segments())

            await _until(captioning, "the first archived final")
            viewer = Viewer(url.replace("http://", "ws://") + "/ws")
            watching = asyncio.create_task(viewer.run())
            try:

                async def owned() -> bool:
                    shown = await feed()
                    return shown is not None and shown["owner"] is not None

                await _until(owned, "the feed's owner to be shown")
                shown = await feed()
                assert shown is not None
                first_owner = shown["owner"]

                async def viewer_has_a_final() -> bool:
                    return bool(viewer.finals())

                await _until(viewer_has_a_final, "the viewer's first final")
                before = await segments()
                first_run = _media_playlist(master)
                os.kill(first_owner, signal.SIGKILL)

                async def taken_over() -> bool:
                    shown = await feed()
                    return shown is not None and shown["owner"] not in (None, first_owner)

                await _until(taken_over, "another worker to take the feed over")
                seen = max(s["id"] for s in before)

                async def new_finals() -> bool:
                    return any(s["id"] > seen for s in await segments())

                await _until(new_finals, "a final archived by the new owner")
                # HLS goes on in the same folder: the master playlist now names the new owner's run.
                second_run = _media_playlist(master)
                assert second_run != first_run and (master.parent / second_run).exists()
                after = await segments()
                new_ids = {s["id"] for s in after if s["id"] > seen}

                async def viewer_caught_up() -> bool:
                    return any(f["archive_id"] in new_ids for f in viewer.finals())

                await _until(viewer_caught_up, "the viewer to get the new owner's finals")
            finally:
                watching.cancel()
                await asyncio.gather(watching, return_exceptions=True)

    # Nothing archived twice: no repeated segment, and the new owner's segments all come after the old one's.
    keys = [(s["start_ms"], s["text"]) for s in after]
    assert len(keys) == len(set(keys)), keys
    old = [s for s in after if s["id"] <= seen]
    new = [s for s in after if s["id"] > seen]
    assert min(s["start_ms"] for s in new) >= max(s["end_ms"] for s in old), (old, new)
    # The viewer saw every event once, in order, across whatever reconnects the kill caused.
    assert viewer.problems == []
    assert len({e["seq"] for e in viewer.events}) == len(viewer.events)
