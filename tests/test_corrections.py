"""Corrections and review over a real server: revisions kept, the event published, exports marked and refreshed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from live_server import Running, serve, test_settings

from broadcast.envelope import sitting_channel

DRAFT = "ขอเสนอร่างพระราชบัญญัติภาษีสรรพสามิด"
FIXED = "ขอเสนอร่างพระราชบัญญัติภาษีสรรพสามิต พ.ศ. ...."


@pytest.fixture
async def running(tmp_path: Path):
    async with serve(test_settings(tmp_path)) as r:
        yield r


@pytest.fixture
async def client(running: Running):
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth) as c:
        yield c


async def _draft(client: httpx.AsyncClient, running: Running) -> int:
    r = await client.post("/api/sittings", json={"id": "senate-1", "title": "การประชุมวุฒิสภา", "chamber": "senate"})
    assert r.status_code == 201, r.text
    segment, _ = await running.app.state.recorder.caption_final("senate-1", "u-1", DRAFT, 12.5, 15.0)
    return segment.id


def _rows(running: Running, sql: str) -> list[tuple]:
    conn = sqlite3.connect(running.app.state.store.path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_a_correction_is_a_new_revision_and_the_draft_is_kept(client: httpx.AsyncClient, running: Running):
    """PATCH makes revision 2 by "operator"; GET /revisions lists the machine draft first; the permalink still works."""
    sid = await _draft(client, running)
    r = await client.patch(f"/api/segments/{sid}", json={"text": FIXED})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["segment"]["id"] == sid and body["segment"]["revision"] == 2 and body["segment"]["text"] == FIXED
    assert body["segment"]["start_ms"] == 12_500 and body["segment"]["seq"] is not None  # times and seq unchanged

    revisions = (await client.get(f"/api/segments/{sid}/revisions")).json()["revisions"]
    assert [(v["revision"], v["text"], v["author"]) for v in revisions] == [
        (1, DRAFT, "machine"),
        (2, FIXED, "operator"),
    ]
    page = (await client.get(f"/api/segments/{sid}")).json()
    assert page["segment"]["text"] == FIXED and page["permalink"] == "/watch/senate-1?t=12.5"


async def test_a_never_corrected_segment_lists_its_draft_as_revision_1(client: httpx.AsyncClient, running: Running):
    """The revisions of an uncorrected segment are just the machine draft."""
    sid = await _draft(client, running)
    revisions = (await client.get(f"/api/segments/{sid}/revisions")).json()["revisions"]
    assert [(v["revision"], v["text"], v["author"]) for v in revisions] == [(1, DRAFT, "machine")]


async def test_a_correction_is_published_as_caption_correction_on_the_sitting_channel(
    client: httpx.AsyncClient, running: Running
):
    """The sitting's channel gets caption.correction with the archive id, revision and the new text."""
    sid = await _draft(client, running)
    r = await client.patch(f"/api/segments/{sid}", json={"text": FIXED})
    events, _, _ = await running.app.state.hub.broker.history(sitting_channel("senate-1"), 0, 10)
    correction = events[-1]
    assert correction.type == "caption.correction" and r.json()["event"]["seq"] == correction.seq
    assert correction.data["archive_id"] == sid and correction.data["revision"] == 2
    assert correction.data["text"] == FIXED and correction.data["segment_id"] == "u-1"
    assert correction.data["start"] == 12.5 and correction.data["author"] == "operator"


async def test_a_correction_replayed_with_its_idempotency_key_makes_no_second_revision(
    client: httpx.AsyncClient, running: Running
):
    """The same PATCH sent twice with one Idempotency-Key answers the first answer and writes one revision."""
    sid = await _draft(client, running)
    headers = {"Idempotency-Key": "fix-1"}
    first = await client.patch(f"/api/segments/{sid}", json={"text": FIXED}, headers=headers)
    again = await client.patch(f"/api/segments/{sid}", json={"text": FIXED}, headers=headers)
    assert first.status_code == again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert len((await client.get(f"/api/segments/{sid}/revisions")).json()["revisions"]) == 2


@pytest.mark.parametrize("segment", ["999", "0", "x1", "-1", "9" * 25])
async def test_a_correction_to_an_unknown_segment_is_a_404_and_writes_nothing(
    client: httpx.AsyncClient, running: Running, segment: str
):
    """Unknown, zero, malformed or out-of-range segment ids: 404 in the error shape; no revision is stored."""
    await _draft(client, running)
    r = await client.patch(f"/api/segments/{segment}", json={"text": FIXED})
    assert r.status_code == 404 and r.json()["ok"] is False
    assert _rows(running, "SELECT COUNT(*) FROM segment_revisions") == [(0,)]


@pytest.mark.parametrize("body", [{"text": ""}, {"text": " \u200b "}, {}, {"text": 5}, {"text": "x", "who": "y"}])
async def test_a_correction_with_no_text_is_a_422_naming_the_field(
    client: httpx.AsyncClient, running: Running, body: dict
):
    """Empty, blank, missing or mistyped text (or an unknown field) is a 422 naming the field; nothing changes."""
    sid = await _draft(client, running)
    r = await client.patch(f"/api/segments/{sid}", json=body)
    assert r.status_code == 422
    assert r.json()["field"] == ("who" if "who" in body else "text")
    assert _rows(running, f"SELECT text, revision FROM segments WHERE id = {sid}") == [(DRAFT, 1)]
    assert _rows(running, "SELECT COUNT(*) FROM segment_revisions") == [(0,)]


async def test_a_correction_needs_the_operator_token(running: Running, client: httpx.AsyncClient):
    """Without the token a PATCH is a 401 and the text stays."""
    sid = await _draft(client, running)
    async with httpx.AsyncClient(base_url=running.url) as anon:
        assert (await anon.patch(f"/api/segments/{sid}", json={"text": FIXED})).status_code == 401
    assert (await client.get(f"/api/segments/{sid}")).json()["segment"]["text"] == DRAFT


async def test_exports_use_the_latest_revision_and_say_draft_until_reviewed(
    client: httpx.AsyncClient, running: Running
):
    """Every format is marked machine-draft, then reviewed once an operator says so; a correction shows at once."""
    sid = await _draft(client, running)
    base = "/api/sittings/senate-1/transcript?format="
    txt = await client.get(base + "txt")
    assert txt.headers["Transcript-Status"] == "machine-draft"
    assert txt.text.splitlines()[0].startswith("# ร่างจากการถอดเสียงอัตโนมัติ") and DRAFT in txt.text
    vtt = (await client.get(base + "vtt")).text
    assert vtt.startswith("WEBVTT\n\nNOTE transcript_status: machine-draft\n")
    assert (await client.get(base + "json")).json()["transcript_status"] == "machine-draft"
    assert (await client.get(base + "srt")).headers["Transcript-Status"] == "machine-draft"
    assert b'status="machine-draft"' in (await client.get(base + "akn")).content

    await client.patch(f"/api/segments/{sid}", json={"text": FIXED})
    r = await client.post("/api/sittings/senate-1/reviewed", json={"reviewed": True})
    assert r.status_code == 200 and r.json()["transcript_status"] == "reviewed"
    assert r.json()["sitting"]["reviewed_at"].endswith("Z")

    for fmt in ("txt", "vtt", "srt", "json", "akn"):
        answer = await client.get(base + fmt)
        assert answer.headers["Transcript-Status"] == "reviewed", fmt
        # (cues may wrap the line, so look for the corrected word)
        assert "สรรพสามิต" in answer.content.decode() and "สรรพสามิด" not in answer.content.decode(), fmt
    assert "NOTE transcript_status: reviewed" in (await client.get(base + "vtt")).text
    assert (await client.get(base + "txt")).text.startswith("# บันทึกที่ผ่านการตรวจทานแล้ว")

    back = await client.post("/api/sittings/senate-1/reviewed", json={"reviewed": False})
    assert back.json()["sitting"]["reviewed_at"] is None
    assert (await client.get(base + "json")).json()["transcript_status"] == "machine-draft"


async def test_marking_an_unknown_sitting_reviewed_is_a_404(client: httpx.AsyncClient):
    """POST /reviewed for a sitting that does not exist is a 404; a body that is not a boolean is a 422."""
    r = await client.post("/api/sittings/nope/reviewed", json={"reviewed": True})
    assert r.status_code == 404
    await client.post("/api/sittings", json={"id": "s2", "title": "การประชุม", "chamber": "senate"})
    bad = await client.post("/api/sittings/s2/reviewed", json={"reviewed": "yes"})
    assert bad.status_code == 422 and bad.json()["field"] == "reviewed"


async def test_a_correction_relinks_the_bills_its_text_names(client: httpx.AsyncClient, running: Running):
    """A correction that names a known bill links the segment to it (and one that no longer names it unlinks)."""
    await client.post("/api/bills/b-excise", json={"title": "ร่างพระราชบัญญัติภาษีสรรพสามิต พ.ศ. ...."})
    sid = await _draft(client, running)
    assert _rows(running, "SELECT bill_id FROM segment_bills") == []  # the draft misspelt it
    await client.patch(f"/api/segments/{sid}", json={"text": FIXED})
    assert _rows(running, "SELECT segment_id, bill_id FROM segment_bills") == [(sid, "b-excise")]
    await client.patch(f"/api/segments/{sid}", json={"text": "ขอเสนอญัตติ"})
    assert _rows(running, "SELECT bill_id FROM segment_bills") == []
