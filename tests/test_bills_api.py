"""Bills end to end: created, described and moved through their stages by the operator API, each change archived
and announced on ``bill:<id>`` in order; impossible changes refused with the allowed stages; the public list
filtered and paged; an Idempotency-Key retry recording one change — on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import Running, serve, test_settings

from archive.bill_stages import Stage
from archive.idempotency import HEADER
from archive.models import Bill, BillClockInputs, BillFilters, StageChange
from archive.store import Conflict, Store, UnknownReference
from archive.store_postgres import PostgresStore
from archive.store_sqlite import SqliteStore

EXCISE = "ร่างพระราชบัญญัติภาษีสรรพสามิต (ฉบับที่ ..) พ.ศ. ...."
FOREST = "ร่างพระราชบัญญัติป่าไม้ (ฉบับที่ ..) พ.ศ. ...."
FINANCE, AGRICULTURE = "กระทรวงการคลัง", "กระทรวงเกษตรและสหกรณ์"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sapha.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    s: Store
    if database_url.startswith("sqlite:///"):
        s = SqliteStore(database_url.removeprefix("sqlite:///"))
    else:
        s = PostgresStore(database_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def running(tmp_path: Path, database_url: str) -> AsyncIterator[Running]:
    async with serve(test_settings(tmp_path, database_url=database_url)) as r:
        yield r


@pytest.fixture
async def client(running: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth) as c:
        yield c


async def bill_events(running: Running, bill_id: str) -> list[dict[str, Any]]:
    """Everything published on ``bill:<id>`` so far, oldest first, from the broker's history."""
    events, _, _ = await running.app.state.hub.broker.history(f"bill:{bill_id}", 0, 1000)
    return [e.to_dict() for e in events]


async def create(client: httpx.AsyncClient, bill_id: str, **fields: Any) -> dict[str, Any]:
    body = {"id": bill_id, "title": EXCISE, "type": "ordinary", **fields}
    r = await client.post("/api/bills", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def move(client: httpx.AsyncClient, bill_id: str, stage: str, **fields: Any) -> httpx.Response:
    return await client.post(f"/api/bills/{bill_id}/stages", json={"stage": stage, **fields})


# ---- the store, on both backends -------------------------------------------------------------------------------


def _bill(bill_id: str, **fields: Any) -> Bill:
    return Bill(bill_id, fields.pop("title", EXCISE), None, "", type="ordinary", stage="public_hearing", **fields)


async def test_the_store_keeps_details_stages_and_filters(store: Store) -> None:
    """Bills are saved with topics and agencies, moved with a check run inside the write, listed by every filter."""
    await store.save_bill(
        _bill("b1", agencies=(FINANCE,), topics=("ภาษี",)), StageChange(0, "", None, "public_hearing", "2024-06-01", "")
    )
    await store.save_bill(_bill("b2", title=FOREST, agencies=(AGRICULTURE,), short_name="ป่าไม้"), None)
    with pytest.raises(Conflict):
        await store.save_bill(_bill("b1"), None)

    seen: list[str | None] = []
    bill, change = await store.change_stage(
        "b1", lambda b: seen.append(b.stage), StageChange(0, "", None, "house_first_reading", "2024-06-10", "")
    )
    assert seen == ["public_hearing"] and bill.stage == "house_first_reading"
    assert (change.from_stage, change.stage, change.on) == ("public_hearing", "house_first_reading", "2024-06-10")

    def refuse(b: Bill) -> None:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        await store.change_stage("b1", refuse, StageChange(0, "", None, "house_committee", "2024-06-11", ""))
    with pytest.raises(UnknownReference) as err:
        await store.change_stage(
            "b1", lambda b: None, StageChange(0, "", None, "house_committee", "2024-06-11", "", vote_id=99)
        )
    assert err.value.field == "vote_id"
    assert [c.stage for c in await store.bill_stages("b1")] == ["public_hearing", "house_first_reading"]

    async def ids(**filters: Any) -> tuple[list[str], int]:
        bills, total = await store.find_bills(BillFilters(**filters))
        return [b.id for b in bills], total

    assert await ids(agency=FINANCE) == (["b1"], 1)
    assert await ids(topic="ภาษี") == (["b1"], 1)
    assert await ids(stage="public_hearing") == (["b2"], 1)
    assert await ids(q="ป่าไม้") == (["b2"], 1)
    assert await ids(q="B1") == (["b1"], 1)  # case-insensitive, ids too
    assert await ids(q="%") == ([], 0)  # no wildcards
    assert (await store.find_bills(BillFilters(), limit=1, offset=1))[1] == 2

    inputs = BillClockInputs(10, "2024-07-01", (("2024-07-02", "2024-07-05"), ("2024-08-01", None)))
    assert await store.set_bill_clock_inputs("b1", inputs) == inputs == await store.bill_clock_inputs("b1")

    await store.add_session("2024-07-03", "2024-10-30", "ordinary", None)
    with pytest.raises(Conflict):
        await store.add_session("2024-10-30", "2024-11-10", "extraordinary", None)
    assert [s.start for s in await store.sessions()] == ["2024-07-03"]

    assert await store.claim_clock_event("b1", "seven_days_left", "2024-09-01") is True
    assert await store.claim_clock_event("b1", "seven_days_left", "2024-09-01") is False
    assert await store.claim_clock_event("b1", "seven_days_left", "2024-09-02") is True


# ---- the operator API and the public list ----------------------------------------------------------------------


async def test_a_bill_is_created_described_and_moved_with_every_change_announced_in_order(
    client: httpx.AsyncClient, running: Running
) -> None:
    """POST, PATCH and stage changes answer the bill; bill:<id> carries a bill.status for each, in order, with the
    stage, the previous stage and the links of the change; GET shows the history and the stages that may follow."""
    created = await create(client, "b-excise", short_name="ภาษีสรรพสามิต", agencies=[FINANCE], on="2024-05-01")
    assert created["bill"]["stage"] == "public_hearing" and created["bill"]["stage_label"] == "รับฟังความคิดเห็น"
    assert created["event"]["type"] == "bill.status" and created["event"]["channel"] == "bill:b-excise"

    r = await client.patch("/api/bills/b-excise", json={"proposer": "คณะรัฐมนตรี", "topics": ["ภาษี", "ภาษี"]})
    assert r.status_code == 200, r.text
    assert r.json()["bill"]["proposer"] == "คณะรัฐมนตรี" and r.json()["bill"]["topics"] == ["ภาษี"]

    await client.post("/api/sittings", json={"id": "s1", "title": "การประชุมสภา", "chamber": "joint"})
    item = (await client.post("/api/sittings/s1/agenda", json={"title": EXCISE, "bill_id": "b-excise"})).json()
    vote = (
        await client.post(
            "/api/sittings/s1/votes",
            json={"motion": "รับหลักการ", "yes": 300, "no": 10, "abstain": 5, "absent": 5, "result": "passed"},
        )
    ).json()
    r = await move(
        client,
        "b-excise",
        "house_first_reading",
        on="2024-06-10",
        agenda_item_id=item["agenda_item"]["id"],
        vote_id=vote["vote"]["id"],
        note="ที่ประชุมรับหลักการ",
    )
    assert r.status_code == 201, r.text
    change = r.json()["change"]
    assert change["sitting_id"] == "s1"  # taken from the agenda item
    assert change["links"] == {
        "sitting": "/watch/s1",
        "agenda_item": f"/watch/s1#agenda-{item['agenda_item']['id']}",
        "vote": f"/watch/s1#vote-{vote['vote']['id']}",
    }

    events = [e for e in await bill_events(running, "b-excise") if e["type"] == "bill.status"]
    assert [(e["data"]["stage"], e["data"]["previous_stage"]) for e in events] == [
        ("public_hearing", None),
        ("public_hearing", None),
        ("house_first_reading", "public_hearing"),
    ]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert events[-1]["data"]["change"]["links"]["vote"] == change["links"]["vote"]

    doc = (await client.get("/api/bills/b-excise")).json()
    assert [c["stage"] for c in doc["stages"]] == ["public_hearing", "house_first_reading"]
    assert [n["stage"] for n in doc["next_stages"]] == ["house_committee", "lapsed", "rejected", "merged"]
    assert doc["bill"]["agencies"] == [FINANCE] and doc["clock"] is None


async def test_an_impossible_stage_change_is_a_409_with_the_allowed_stages_and_changes_nothing(
    client: httpx.AsyncClient, running: Running
) -> None:
    """Skipping the Senate is refused with the allowed next stages; nothing is archived or announced."""
    await create(client, "b1", stage="house_first_reading")
    for stage in ["house_committee", "house_second_reading", "house_third_reading"]:
        assert (await move(client, "b1", stage)).status_code == 201
    before = await bill_events(running, "b1")
    r = await move(client, "b1", "sent_for_assent")
    assert r.status_code == 409
    body = r.json()
    assert body["ok"] is False and body["field"] == "stage" and body["from"] == "house_third_reading"
    assert body["allowed"] == ["senate_first_reading", "lapsed", "rejected"]
    assert "allowed next: senate_first_reading" in body["error"]
    assert await bill_events(running, "b1") == before
    assert (await client.get("/api/bills/b1")).json()["bill"]["stage"] == "house_third_reading"
    # A joint-sitting stage is refused for an ordinary bill too.
    assert (await move(client, "b1", "parliament_first_reading")).status_code == 409


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("POST", "/api/bills/b1/stages", {"stage": "senate_fifth_reading"}, 422, "stage"),
        ("POST", "/api/bills/b1/stages", {"stage": "house_committee", "on": "2024-02-30"}, 422, "on"),
        ("POST", "/api/bills/b1/stages", {"stage": "house_committee", "on": "2020-01-01"}, 409, "on"),
        ("POST", "/api/bills/b1/stages", {"stage": "house_committee", "vote_id": 4242}, 404, "vote_id"),
        ("POST", "/api/bills/b1/stages", {"stage": "house_committee", "sitting_id": "nope"}, 404, "sitting_id"),
        ("POST", "/api/bills/nope/stages", {"stage": "house_committee"}, 404, None),
        ("PATCH", "/api/bills/nope", {"title": "x"}, 404, None),
        ("PATCH", "/api/bills/b1", {}, 422, "body"),
        ("PATCH", "/api/bills/b1", {"title": None}, 422, "title"),
        ("PATCH", "/api/bills/b1", {"type": "organic"}, 409, "type"),
        ("PATCH", "/api/bills/b1", {"topics": ["x"] * 21}, 422, "topics"),
        ("POST", "/api/bills", {"title": "x", "type": "budget"}, 422, "type"),
        ("POST", "/api/bills", {"title": "x", "type": "ordinary", "stage": "senate_committee"}, 422, "stage"),
        ("POST", "/api/bills", {"title": "x", "type": "organic", "stage": "house_first_reading"}, 409, "stage"),
        ("POST", "/api/bills", {"id": "b1", "title": "x", "type": "ordinary"}, 409, None),
        ("PUT", "/api/bills/b1/clock", {"extension": {"days": 31, "resolved_on": "2024-07-01"}}, 422, "extension"),
        ("PUT", "/api/bills/b1/clock", {"pauses": [{"start": "2024-07-05", "end": "2024-07-01"}]}, 409, "pauses"),
        ("POST", "/api/sessions", {"start": "2024-07-05", "end": "2024-07-01"}, 409, "end"),
    ],
)
async def test_bad_input_is_a_clear_4xx_naming_the_field(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any], status: int, field: str | None
) -> None:
    """Malformed input is a 422 naming the field; well-formed input the bill's state or the rules refuse (a date
    before the last change, an organic type for a House stage, a pause ending before it starts) a 409 naming it;
    links to nothing and unknown bills a 404."""
    await create(client, "b1", stage="house_first_reading", on="2024-06-01")
    r = await client.request(method, path, json=body)
    assert r.status_code == status, r.text
    answer = r.json()
    assert answer["ok"] is False and answer["status"] == status
    if field is not None:
        assert answer["field"] == field


async def test_the_list_filters_by_stage_type_topic_agency_and_text_and_pages(client: httpx.AsyncClient) -> None:
    """GET /api/bills: each filter alone and together, a total, next-page links, Thai labels; bad filters 400."""
    await create(client, "b-excise", agencies=[FINANCE], topics=["ภาษี"])
    await create(
        client, "b-forest", title=FOREST, short_name="ป่าไม้", agencies=[AGRICULTURE], stage="house_first_reading"
    )
    await create(client, "b-budget", title="ร่างพระราชบัญญัติงบประมาณ", type="money", agencies=[FINANCE])

    async def ids(query: str) -> list[str]:
        r = await client.get(f"/api/bills?{query}")
        assert r.status_code == 200, r.text
        return sorted(b["id"] for b in r.json()["bills"])

    assert await ids(f"agency={FINANCE}") == ["b-budget", "b-excise"]
    assert await ids("type=money") == ["b-budget"]
    assert await ids("stage=house_first_reading") == ["b-forest"]
    assert await ids("topic=ภาษี") == ["b-excise"]
    assert await ids("q=ป่าไม้") == ["b-forest"]
    assert await ids(f"agency={FINANCE}&type=ordinary") == ["b-excise"]
    page = (await client.get("/api/bills?limit=2")).json()
    assert page["total"] == 3 and len(page["bills"]) == 2 and page["next"] == "/api/bills?limit=2&offset=2"
    rest = (await client.get(page["next"])).json()
    assert len(rest["bills"]) == 1 and rest["next"] is None
    assert page["labels"]["stages"]["senate_committee"] == "วุฒิสภา ชั้นกรรมาธิการ"
    for bad in ("stage=nope", "type=nope", "limit=0", "limit=x"):
        r = await client.get(f"/api/bills?{bad}")
        assert r.status_code == 400 and r.json()["field"] == bad.split("=")[0]


async def test_an_idempotency_key_retry_records_one_stage_change(client: httpx.AsyncClient, running: Running) -> None:
    """The same stage change sent twice with one Idempotency-Key is recorded and announced once; the retry gets
    the first answer, where running it again would have been a 409."""
    await create(client, "b1", stage="house_first_reading")
    headers = {HEADER: "stage-change-1"}
    first = await client.post("/api/bills/b1/stages", json={"stage": "house_committee"}, headers=headers)
    again = await client.post("/api/bills/b1/stages", json={"stage": "house_committee"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == first.json()
    doc = (await client.get("/api/bills/b1")).json()
    assert [c["stage"] for c in doc["stages"]] == ["house_first_reading", "house_committee"]
    stages = [e["data"]["stage"] for e in await bill_events(running, "b1") if e["type"] == "bill.status"]
    assert stages == ["house_first_reading", "house_committee"]


async def test_sessions_are_listed_and_the_legacy_bill_post_still_works_and_says_it_is_deprecated(
    client: httpx.AsyncClient,
) -> None:
    """POST/GET /api/sessions; an overlap is a 409; POST /api/bills/{id} answers with a Deprecation header."""
    r = await client.post("/api/sessions", json={"start": "2024-07-03", "end": "2024-10-30", "title": "สมัยสามัญ"})
    assert r.status_code == 201 and r.json()["session"]["kind"] == "ordinary"
    assert (await client.post("/api/sessions", json={"start": "2024-10-01", "end": "2024-11-01"})).status_code == 409
    assert [s["start"] for s in (await client.get("/api/sessions")).json()["sessions"]] == ["2024-07-03"]
    legacy = await client.post("/api/bills/b-old", json={"title": FOREST, "status": "รอพิจารณา"})
    assert legacy.status_code == 200 and legacy.headers["Deprecation"] == "true"
    # A bill only named so far gets its details from POST /api/bills, and stages from then on.
    assert (await create(client, "b-old", title=FOREST))["bill"]["stage"] == "public_hearing"


async def test_operator_calls_need_the_token(running: Running) -> None:
    """Without the operator token every bill and session write is a 401; reads are public."""
    async with httpx.AsyncClient(base_url=running.url) as anonymous:
        for method, path in [
            ("POST", "/api/bills"),
            ("PATCH", "/api/bills/b1"),
            ("POST", "/api/bills/b1/stages"),
            ("PUT", "/api/bills/b1/clock"),
            ("POST", "/api/sessions"),
        ]:
            assert (await anonymous.request(method, path, json={})).status_code == 401
        assert (await anonymous.get("/api/bills")).status_code == 200
        assert (await anonymous.get("/api/sessions")).status_code == 200


@pytest.mark.fast
def test_stage_slugs_match_the_schema() -> None:
    """Every stage is accepted by the request schema (the pattern is built from the enum)."""
    from archive.schemas import ChangeStage

    for stage in Stage:
        assert ChangeStage.model_validate({"stage": str(stage)}).stage == stage
