"""Two server processes on one Redis and one SQLite file: an operator call on one reaches the other's feed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_feed_e2e import DEMO, server_process

pytestmark = [pytest.mark.model, pytest.mark.redis]

AUTH = {"Authorization": "Bearer t"}
SPEAKER = "นายสมชาย ใจดี"
AGENDA = "ร่างพระราชบัญญัติการศึกษาแห่งชาติ (ฉบับที่ ..) พ.ศ. ...."


async def _until(check: Callable[[], Awaitable[bool]], what: str, limit_s: float = 180.0) -> None:
    """Poll ``check`` until true; the limit only stops a broken run from hanging, it measures nothing."""
    for _ in range(int(limit_s / 0.25)):
        if await check():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


async def test_an_operator_call_on_one_process_reaches_the_feed_on_the_other(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """Speaker and agenda set on process B: the vocabulary of the feed on A follows, and its next final is filed so."""
    env = {"REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix}
    async with server_process(tmp_path, "--source", str(DEMO), "--sitting", "two", "--loop", env=env, name="a") as a:
        async with server_process(tmp_path, env=env, name="b") as b:
            async with httpx.AsyncClient(base_url=a) as on_a, httpx.AsyncClient(base_url=b, headers=AUTH) as on_b:

                async def segments() -> list[dict[str, Any]]:
                    return (await on_a.get("/api/sittings/two/transcript")).json()["segments"]

                async def feed() -> dict[str, Any]:
                    return (await on_a.get("/healthz")).json()["feeds"][0]

                async def captioning() -> bool:
                    return bool(await segments())

                await _until(captioning, "A's first archived final")
                assert (await feed())["vocabulary"] == []

                speaker = await on_b.post("/api/sittings/two/speaker", json={"name": SPEAKER, "role": "สมาชิกวุฒิสภา"})
                agenda = await on_b.post("/api/sittings/two/agenda", json={"title": AGENDA, "bill_id": "edu-2568"})
                assert speaker.status_code == 201 and agenda.status_code == 201, (speaker.text, agenda.text)
                speaker_id, agenda_id = speaker.json()["speaker"]["id"], agenda.json()["agenda_item"]["id"]

                async def vocabulary_followed() -> bool:
                    return (await feed())["vocabulary"] == [SPEAKER, AGENDA, "edu-2568"]

                await _until(vocabulary_followed, "A's engine vocabulary to follow B's operator calls")
                seen = max(s["id"] for s in await segments())

                async def next_final() -> bool:
                    return any(s["id"] > seen for s in await segments())

                await _until(next_final, "A's next archived final")
                later = [s for s in await segments() if s["id"] > seen]
                assert all(s["speaker_id"] == speaker_id and s["agenda_item_id"] == agenda_id for s in later), later
