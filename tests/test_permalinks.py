"""Segment permalinks over a real server: GET /api/segments/{id} with its neighbours and context, and the link."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from live_server import Running, serve, test_settings

from archive.api import media_seconds


@pytest.fixture
async def running(tmp_path: Path):
    async with serve(test_settings(tmp_path)) as r:
        yield r


@pytest.fixture
async def client(running: Running):
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth) as c:
        yield c


async def _sitting_with_lines(client: httpx.AsyncClient, running: Running, n: int = 8) -> list[int]:
    r = await client.post("/api/sittings", json={"id": "senate-1", "title": "การประชุมวุฒิสภา", "chamber": "senate"})
    assert r.status_code == 201
    await client.post("/api/bills/b-budget", json={"title": "ร่างพระราชบัญญัติงบประมาณรายจ่ายประจำปีงบประมาณ พ.ศ. ๒๕๖๙"})
    await client.post("/api/sittings/senate-1/agenda", json={"title": "ร่าง พ.ร.บ. งบประมาณ", "bill_id": "b-budget"})
    await client.post("/api/sittings/senate-1/speaker", json={"name": "นายสมชาย ใจดี", "role": "สมาชิกวุฒิสภา"})
    recorder = running.app.state.recorder
    ids = []
    for i in range(n):
        segment, _ = await recorder.caption_final("senate-1", f"u-{i}", f"ข้อความที่ {i}", 10.0 * i + 0.25, 10.0 * i + 5)
        ids.append(segment.id)
    return ids


async def test_a_segment_comes_with_its_neighbours_speaker_agenda_item_bill_and_permalink(
    client: httpx.AsyncClient, running: Running
):
    """GET /api/segments/{id}: the segment, 3 before and 3 after in media order, who spoke, under which item and
    bill, and its /watch link at its start time."""
    ids = await _sitting_with_lines(client, running)
    r = await client.get(f"/api/segments/{ids[4]}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["segment"]["id"] == ids[4] and body["segment"]["text"] == "ข้อความที่ 4"
    assert [s["id"] for s in body["before"]] == ids[1:4]
    assert [s["id"] for s in body["after"]] == ids[5:8]
    assert body["speaker"]["name"] == "นายสมชาย ใจดี" and body["speaker"]["role"] == "สมาชิกวุฒิสภา"
    assert body["agenda_item"]["bill_id"] == "b-budget" and body["bill"]["id"] == "b-budget"
    assert body["sitting"]["id"] == "senate-1" and body["transcript_status"] == "machine-draft"
    assert body["permalink"] == "/watch/senate-1?t=40.25"
    assert (await client.get(body["permalink"])).status_code == 200  # the watch page the link opens


async def test_neighbours_stop_at_the_ends_of_the_sitting_and_follow_context(
    client: httpx.AsyncClient, running: Running
):
    """The first segment has nothing before it; ?context=1 gives one on each side; ?context=0 none."""
    ids = await _sitting_with_lines(client, running, n=4)
    first = (await client.get(f"/api/segments/{ids[0]}")).json()
    assert first["before"] == [] and [s["id"] for s in first["after"]] == ids[1:4]
    one = (await client.get(f"/api/segments/{ids[2]}?context=1")).json()
    assert [s["id"] for s in one["before"]] == [ids[1]] and [s["id"] for s in one["after"]] == [ids[3]]
    none = (await client.get(f"/api/segments/{ids[2]}?context=0")).json()
    assert none["before"] == none["after"] == []


@pytest.mark.parametrize("query", ["context=21", "context=-1", "context=x"])
async def test_a_bad_context_is_a_400_naming_it(client: httpx.AsyncClient, running: Running, query: str):
    """context outside 0-20 or not an integer: 400 with field "context"."""
    ids = await _sitting_with_lines(client, running, n=1)
    r = await client.get(f"/api/segments/{ids[0]}?{query}")
    assert r.status_code == 400 and r.json()["field"] == "context"


@pytest.mark.parametrize("segment", ["12345", "0", "abc", "1.5", "9" * 25])
async def test_an_unknown_segment_is_a_404(client: httpx.AsyncClient, segment: str):
    """Unknown or malformed segment ids answer 404 in the error shape, the revisions too."""
    for path in (f"/api/segments/{segment}", f"/api/segments/{segment}/revisions"):
        r = await client.get(path)
        assert r.status_code == 404 and r.json()["ok"] is False, path


async def test_a_permalink_stays_valid_after_a_correction(client: httpx.AsyncClient, running: Running):
    """The id and the link are the same after the text is corrected; the document shows the new text."""
    ids = await _sitting_with_lines(client, running, n=2)
    before = (await client.get(f"/api/segments/{ids[1]}")).json()
    await client.patch(f"/api/segments/{ids[1]}", json={"text": "ข้อความที่แก้แล้ว"})
    after = (await client.get(f"/api/segments/{ids[1]}")).json()
    assert after["permalink"] == before["permalink"] and after["segment"]["text"] == "ข้อความที่แก้แล้ว"
    assert after["segment"]["revision"] == 2


@pytest.mark.fast
@pytest.mark.parametrize(("ms", "text"), [(0, "0"), (6000, "6"), (754_200, "754.2"), (12_345, "12.345"), (-5, "0")])
def test_media_seconds_are_written_short_and_exact(ms: int, text: str) -> None:
    """?t= carries seconds without trailing zeros, to the millisecond."""
    assert media_seconds(ms) == text
