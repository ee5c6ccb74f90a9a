"""The REST and operator API over a real server: validation, auth, durability-then-publish, exports."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from live_server import Running, serve, test_settings

from broadcast.envelope import sitting_channel


@pytest.fixture
async def running(tmp_path: Path):
    async with serve(test_settings(tmp_path)) as r:
        yield r


@pytest.fixture
async def client(running: Running):
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth) as c:
        yield c


async def _sitting(client: httpx.AsyncClient, id: str = "senate-1") -> dict:
    r = await client.post("/api/sittings", json={"id": id, "title": "การประชุมวุฒิสภา ครั้งที่ 1", "chamber": "senate"})
    assert r.status_code == 201, r.text
    return r.json()["sitting"]


async def test_create_sitting_generates_an_id_and_publishes_its_status(client: httpx.AsyncClient, running: Running):
    """POST /api/sittings without an id answers 201 with a generated id, and the status event is on the channel."""
    r = await client.post("/api/sittings", json={"title": "ประชุมร่วมกันของรัฐสภา", "chamber": "joint"})
    assert r.status_code == 201
    body = r.json()
    sitting = body["sitting"]
    assert sitting["id"].startswith("joint-") and sitting["status"] == "scheduled"
    events, position, _ = await running.app.state.hub.broker.history(sitting_channel(sitting["id"]), 0, 10)
    assert [e.type for e in events] == ["sitting.status"]
    assert body["event"]["seq"] == position.seq == 1


async def test_duplicate_sitting_id_is_a_conflict(client: httpx.AsyncClient):
    """Creating a sitting whose id exists answers 409 in the error shape."""
    await _sitting(client)
    r = await client.post("/api/sittings", json={"id": "senate-1", "title": "x", "chamber": "senate"})
    assert r.status_code == 409
    assert r.json()["ok"] is False and r.json()["status"] == 409


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}])
async def test_operator_endpoints_need_the_token(running: Running, headers: dict[str, str]):
    """Missing or wrong operator tokens get 401 and nothing is written."""
    async with httpx.AsyncClient(base_url=running.url, headers=headers) as anon:
        r = await anon.post("/api/sittings", json={"title": "x", "chamber": "senate"})
        assert r.status_code == 401 and r.json()["error"].startswith("operator token required")
        assert (await anon.get("/api/sittings")).json()["sittings"] == []


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/sittings", {"chamber": "senate"}, "title"),
        ("/api/sittings", {"title": "x", "chamber": "house"}, "chamber"),
        ("/api/sittings", {"title": "x", "chamber": "senate", "id": "bad id!"}, "id"),
        ("/api/sittings", {"title": "x", "chamber": "senate", "scheduled_at": "tomorrow"}, "scheduled_at"),
        ("/api/sittings", {"title": "x", "chamber": "senate", "colour": "red"}, "colour"),
        ("/api/sittings", ["not", "an", "object"], "body"),
        ("/api/sittings/senate-1/status", {"status": "paused"}, "status"),
        ("/api/sittings/senate-1/agenda", {"title": "   "}, "title"),
        ("/api/sittings/senate-1/agenda", {"title": "x", "order": 0}, "order"),
        (
            "/api/sittings/senate-1/votes",
            {"motion": "m", "yes": -1, "no": 0, "abstain": 0, "absent": 0, "result": "passed"},
            "yes",
        ),
        (
            "/api/sittings/senate-1/votes",
            {"motion": "m", "yes": 1, "no": 0, "abstain": 0, "absent": 0, "result": "tied"},
            "result",
        ),
        (
            "/api/sittings/senate-1/votes",
            {"motion": "m", "yes": True, "no": 0, "abstain": 0, "absent": 0, "result": "passed"},
            "yes",
        ),
        ("/api/sittings/senate-1/speaker", {"role": "ประธาน"}, "name"),
    ],
)
async def test_invalid_bodies_get_422_naming_the_field(client: httpx.AsyncClient, path: str, body, field: str):
    """Each invalid body is refused with 422 and the offending field, and publishes nothing."""
    await _sitting(client)
    r = await client.post(path, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    state = (await client.get("/api/sittings/senate-1")).json()
    assert state["position"]["seq"] == 1  # only the creation event


async def test_malformed_json_is_refused(client: httpx.AsyncClient):
    """A body that is not JSON gets 422 naming the body."""
    await _sitting(client)
    r = await client.post("/api/sittings/senate-1/speaker", content=b"{name: ")
    assert r.status_code == 422 and r.json()["field"] == "body"


@pytest.mark.parametrize("suffix", ["status", "agenda", "votes", "speaker"])
async def test_unknown_sitting_is_404(client: httpx.AsyncClient, suffix: str):
    """Operator calls on a sitting that does not exist answer 404."""
    r = await client.post(f"/api/sittings/nope/{suffix}", json={})
    assert r.status_code == 404 and r.json()["ok"] is False
    assert (await client.get("/api/sittings/nope")).status_code == 404


async def test_operator_flow_is_durable_and_published_in_order(client: httpx.AsyncClient, running: Running):
    """Status, agenda, speaker and vote are each archived and published, in seq order, before the 2xx."""
    await _sitting(client)
    title = "ร่างพระราชบัญญัติงบประมาณรายจ่ายประจำปีงบประมาณ พ.ศ. ๒๕๗๐ " * 12  # a real bill title runs long
    steps = [
        ("status", {"status": "live"}, "sitting.status"),
        ("agenda", {"title": title, "bill_id": "budget-2570"}, "agenda.item"),
        ("speaker", {"name": "นายพรเพชร วิชิตชลชัย", "role": "ประธานวุฒิสภา"}, "speaker"),
        (
            "votes",
            {"motion": "รับหลักการ", "yes": 180, "no": 10, "abstain": 5, "absent": 5, "result": "passed"},
            "vote.result",
        ),
    ]
    for suffix, body, type in steps:
        r = await client.post(f"/api/sittings/senate-1/{suffix}", json=body)
        assert r.status_code in (200, 201), r.text
        assert r.json()["event"]["type"] == type
    state = (await client.get("/api/sittings/senate-1")).json()
    assert state["sitting"]["status"] == "live" and state["sitting"]["started_at"]
    assert state["current_agenda_item"]["title"] == title.strip()
    assert state["speaker"]["name"] == "นายพรเพชร วิชิตชลชัย"
    vote = state["votes"][0]
    assert (vote["yes"], vote["result"], vote["bill_id"], vote["seq"]) == (180, "passed", "budget-2570", 5)
    events, _, _ = await running.app.state.hub.broker.history("sitting:senate-1", 0, 100)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    bill_events, _, _ = await running.app.state.hub.broker.history("bill:budget-2570", 0, 100)
    assert [e.type for e in bill_events] == ["agenda.item", "vote.result"]
    # A new store on the same file sees it all: the writes were committed, not just cached.
    from archive.store_sqlite import SqliteStore

    async with SqliteStore(running.app.state.store.path) as other:
        assert [v.motion for v in await other.votes("senate-1")] == ["รับหลักการ"]


async def test_transcript_exports(client: httpx.AsyncClient, running: Running):
    """Final captions come back as JSON, text, WebVTT and SRT; an unknown format is a 400."""
    await _sitting(client)
    recorder = running.app.state.recorder
    await recorder.caption_final("senate-1", "a1", "สวัสดีครับ ท่านสมาชิกวุฒิสภา", 1.0, 2.5)
    await recorder.caption_final("senate-1", "a2", "เราจะออกนอกเมือง & <ไป> ด้วยกัน", 3.0, 5.25)
    body = (await client.get("/api/sittings/senate-1/transcript")).json()
    assert [s["text"] for s in body["segments"]][0] == "สวัสดีครับ ท่านสมาชิกวุฒิสภา"
    assert body["segments"][1]["seq"] == 3
    vtt = await client.get("/api/sittings/senate-1/transcript?format=vtt")
    assert vtt.headers["content-type"].startswith("text/vtt")
    assert vtt.text.startswith("WEBVTT\n") and "00:00:03.000 --> 00:00:05.250" in vtt.text and "&amp;" in vtt.text
    srt = (await client.get("/api/sittings/senate-1/transcript?format=srt")).text
    assert srt.startswith("1\n00:00:01,000 --> 00:00:02,500\n")
    txt = (await client.get("/api/sittings/senate-1/transcript?format=txt")).text
    assert txt.splitlines()[2].startswith("[00:00:03] เราจะออกนอกเมือง")  # after the machine-draft header line
    bad = await client.get("/api/sittings/senate-1/transcript?format=docx")
    assert bad.status_code == 400 and bad.json()["field"] == "format"


async def test_bill_status_is_published_on_the_bill_channel(client: httpx.AsyncClient, running: Running):
    """POST /api/bills/{id} stores the bill and announces bill.status on bill:<id>."""
    r = await client.post("/api/bills/b-77", json={"title": "ร่างพระราชบัญญัติการศึกษา", "status": "first reading"})
    assert r.status_code == 200 and r.json()["event"]["channel"] == "bill:b-77"
    got = (await client.get("/api/bills/b-77")).json()
    assert got["bill"]["status"] == "first reading"
    assert (await client.get("/api/bills/none")).status_code == 404


async def test_health_metrics_and_openapi(client: httpx.AsyncClient, running: Running):
    """/healthz is ok, /metrics counts published events, and /openapi.json documents every API route and method."""
    await _sitting(client)
    assert (await client.get("/healthz")).json()["ok"] is True
    metrics = (await client.get("/metrics")).text
    assert 'sapha_events_published_total{type="sitting.status"} 1.0' in metrics
    spec = (await client.get("/openapi.json")).json()
    for route in running.app.routes:
        path = getattr(route, "path", "").replace(":path}", "}")
        if path.startswith("/api/") or path in ("/healthz", "/metrics", "/openapi.json"):
            for method in route.methods - {"HEAD"}:
                assert method.lower() in spec["paths"].get(path, {}), f"{method} {path} missing from /openapi.json"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("offset=30353702628342366208&limit=10", "offset"),
        ("limit=-78983545175", "limit"),
        ("offset=-1", "offset"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=1.0", "limit"),
        ("limit=ten", "limit"),
    ],
)
async def test_list_parameters_out_of_their_documented_range_are_400(client: httpx.AsyncClient, query: str, field: str):
    """limit (1-500) and offset (0-1e9) outside their range, or not integers, get 400 naming the parameter."""
    r = await client.get(f"/api/sittings?{query}")
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field and r.json()["ok"] is False


async def test_ids_that_break_the_pattern_name_nothing(client: httpx.AsyncClient):
    """A malformed sitting or bill id in a path is a 404 (it names nothing); a bill upsert refuses it with 422."""
    await _sitting(client)
    for path in ("/api/sittings/-bad", "/api/sittings/" + "a" * 65, "/api/bills/.x", "/api/sittings/a%20b/transcript"):
        assert (await client.get(path)).status_code == 404, path
    assert (await client.post("/api/sittings/-bad/status", json={"status": "live"})).status_code == 404
    r = await client.post("/api/bills/-bad", json={"title": "x"})
    assert r.status_code == 422 and r.json()["field"] == "bill_id"


async def test_whole_floats_count_as_integers_and_blank_text_is_refused(client: httpx.AsyncClient):
    """As JSON Schema says, 180.0 is an integer; a title of only spaces or zero-width characters is refused."""
    await _sitting(client)
    vote = {"motion": "m", "yes": 180.0, "no": 0, "abstain": 0, "absent": 0, "result": "passed"}
    r = await client.post("/api/sittings/senate-1/votes", json=vote)
    assert r.status_code == 201 and r.json()["vote"]["yes"] == 180
    for title in ("", " \u200b\ufeff\u3000 "):
        r = await client.post("/api/sittings/senate-1/agenda", json={"title": title})
        assert r.status_code == 422 and r.json()["field"] == "title"


async def test_unknown_route_uses_the_error_shape(client: httpx.AsyncClient):
    """A 404 from routing is JSON in the one error shape."""
    r = await client.get("/api/nothing-here")
    assert r.status_code == 404 and r.json() == {"ok": False, "status": 404, "error": "Not Found"}
    assert (await client.get("/api/sittings/x/y/z")).status_code == 404


async def _account_token(client: httpx.AsyncClient, username: str, roles: list[str]) -> dict[str, str]:
    """A new staff account's API token (made with the bootstrap token), as request headers."""
    r = await client.post(
        "/api/staff/accounts", json={"username": username, "password": "a long enough secret 1", "roles": roles}
    )
    assert r.status_code == 201, r.text
    r = await client.post(f"/api/staff/accounts/{r.json()['account']['id']}/tokens", json={"label": "test"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def test_a_correction_is_attributed_to_the_signed_in_account(client: httpx.AsyncClient, running: Running):
    """A correction made with an account's token names that account; the bootstrap token's stays "operator"."""
    await _sitting(client)
    segment, _ = await running.app.state.recorder.caption_final("senate-1", "a1", "สวัสดีครับ", 1.0, 2.0)
    somchai = await _account_token(client, "somchai", ["operator"])
    r = await client.patch(f"/api/segments/{segment.id}", json={"text": "สวัสดีค่ะ"}, headers=somchai)
    assert r.status_code == 200, r.text
    assert (await client.patch(f"/api/segments/{segment.id}", json={"text": "สวัสดี"})).status_code == 200
    revisions = (await client.get(f"/api/segments/{segment.id}/revisions")).json()["revisions"]
    assert [r["text"] for r in revisions] == ["สวัสดีครับ", "สวัสดีค่ะ", "สวัสดี"]
    assert [r["author"] for r in revisions[1:]] == ["somchai", "operator"]


async def test_idempotency_keys_belong_to_the_account_that_sent_them(client: httpx.AsyncClient):
    """Two accounts sending the same Idempotency-Key both have their vote recorded; each one's retry replays its own."""
    await _sitting(client)
    vote = {"motion": "m", "yes": 1, "no": 0, "abstain": 0, "absent": 0, "result": "passed"}
    first = {**await _account_token(client, "operator-a", ["operator"]), "Idempotency-Key": "vote-1"}
    second = {**await _account_token(client, "operator-b", ["operator"]), "Idempotency-Key": "vote-1"}
    a = await client.post("/api/sittings/senate-1/votes", json=vote, headers=first)
    b = await client.post("/api/sittings/senate-1/votes", json=vote, headers=second)
    assert a.status_code == b.status_code == 201 and "Idempotent-Replayed" not in b.headers
    assert a.json()["vote"]["id"] != b.json()["vote"]["id"]
    again = await client.post("/api/sittings/senate-1/votes", json=vote, headers=second)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == b.json()
    assert len((await client.get("/api/sittings/senate-1")).json()["votes"]) == 2
