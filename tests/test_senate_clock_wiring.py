"""The Senate clock wired to the archive: the sec. 136 reading in the bill JSON (a money bill over a session break,
an extension, a Constitutional Court pause) against hand-worked dates, and the periodic task announcing "7 days
left" and "deadline passed" exactly once however often and by however many processes it runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import Running, serve, test_settings

from archive import bill_clock
from archive.models import Bill, StageChange
from archive.recorder import Recorder
from archive.senate_clock import THAI_TIME, ClockEvent, senate_clock
from archive.store_sqlite import SqliteStore
from broadcast.broker_memory import MemoryBroker
from broadcast.hub import Hub
from broadcast.metrics import Metrics

# Two sessions with a break between them (hand-worked below).
SESSIONS = [("2024-07-03", "2024-10-30"), ("2024-12-12", "2025-04-09")]
HOUSE = ["house_first_reading", "house_committee", "house_second_reading", "house_third_reading"]


def thai(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=THAI_TIME)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(test_settings(tmp_path)) as r:
        yield r


@pytest.fixture
async def client(running: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth) as c:
        for start, end in SESSIONS:
            assert (await c.post("/api/sessions", json={"start": start, "end": end})).status_code == 201
        yield c


async def at_senate(client: httpx.AsyncClient, bill_id: str, bill_type: str, arrived: str) -> None:
    """A bill through the House (in June) that reaches the Senate on ``arrived``."""
    r = await client.post(
        "/api/bills",
        json={
            "id": bill_id,
            "title": f"ร่างพระราชบัญญัติ {bill_id}",
            "type": bill_type,
            "stage": HOUSE[0],
            "on": "2024-06-01",
        },
    )
    assert r.status_code == 201, r.text
    for stage in HOUSE[1:]:
        assert (
            await client.post(f"/api/bills/{bill_id}/stages", json={"stage": stage, "on": "2024-06-02"})
        ).status_code == 201
    r = await client.post(f"/api/bills/{bill_id}/stages", json={"stage": "senate_first_reading", "on": arrived})
    assert r.status_code == 201, r.text


async def clock(client: httpx.AsyncClient, running: Running, bill_id: str, today: date) -> dict[str, Any]:
    running.app.state.bills.now = lambda: datetime(today.year, today.month, today.day, 12, tzinfo=THAI_TIME)
    r = await client.get(f"/api/bills/{bill_id}")
    assert r.status_code == 200, r.text
    return dict(r.json()["clock"])


async def test_a_money_bill_counts_30_days_in_session_across_the_break(client: httpx.AsyncClient, running: Running):
    """Arriving 20 Oct: 11 days to 30 Oct, the break does not count, day 12 is 12 Dec, day 30 is 30 Dec, deemed
    approved 31 Dec; on 20 Dec it is day 20 of 30 with 11 left; 7 left on 24 Dec."""
    await at_senate(client, "b-money", "money", "2024-10-20")
    c = await clock(client, running, "b-money", date(2024, 12, 20))
    assert (c["state"], c["day"], c["limit"], c["days_left"]) == ("running", 20, 30, 11)
    assert (c["arrived_on"], c["last_day"], c["deemed_approved_on"]) == ("2024-10-20", "2024-12-30", "2024-12-31")
    assert [e["at"] for e in c["events"]] == ["2024-12-24T00:00:00+07:00", "2024-12-31T00:00:00+07:00"]
    between = await clock(client, running, "b-money", date(2024, 11, 15))
    assert (between["state"], between["day"], between["days_left"]) == ("out_of_session", 11, 19)
    # Once it leaves the Senate, the bill has no clock.
    await client.post("/api/bills/b-money/stages", json={"stage": "senate_committee", "on": "2024-12-20"})
    assert (await clock(client, running, "b-money", date(2024, 12, 20)))["day"] == 20  # still at the Senate
    await client.post("/api/bills/b-money/stages", json={"stage": "sent_for_assent", "on": "2024-12-31"})
    running.app.state.bills.now = lambda: thai(2025, 1, 2, 12)
    assert (await client.get("/api/bills/b-money")).json()["clock"] is None


async def test_an_extension_moves_the_deadline_and_is_announced(client: httpx.AsyncClient, running: Running):
    """Arriving 10 Jul (60th day 7 Sep); 15 more days resolved on 1 Sep: the 75th day is 22 Sep, deemed approved
    23 Sep; the change is a bill.clock event; an extension resolved after 7 Sep is a 409."""
    await at_senate(client, "b-ext", "ordinary", "2024-07-10")
    assert (await clock(client, running, "b-ext", date(2024, 9, 1)))["last_day"] == "2024-09-07"
    r = await client.put("/api/bills/b-ext/clock", json={"extension": {"days": 15, "resolved_on": "2024-09-01"}})
    assert r.status_code == 200, r.text
    assert r.json()["event"]["type"] == "bill.clock" and r.json()["event"]["data"]["kind"] == "changed"
    c = await clock(client, running, "b-ext", date(2024, 9, 1))
    assert (c["limit"], c["extension_days"], c["last_day"], c["deemed_approved_on"]) == (
        75,
        15,
        "2024-09-22",
        "2024-09-23",
    )
    assert (c["day"], c["days_left"]) == (54, 22)
    late = await client.put("/api/bills/b-ext/clock", json={"extension": {"days": 15, "resolved_on": "2024-09-08"}})
    assert late.status_code == 409 and late.json()["field"] == "extension"


async def test_a_court_pause_stops_the_count(client: httpx.AsyncClient, running: Running):
    """Arriving 10 Jul, before the Court 1-10 Aug inclusive: 10 days do not count, the 60th day is 17 Sep; on 5 Aug
    the clock is paused at day 22; an undecided pause leaves the deadline unknown."""
    await at_senate(client, "b-court", "ordinary", "2024-07-10")
    r = await client.put("/api/bills/b-court/clock", json={"pauses": [{"start": "2024-08-01", "end": "2024-08-10"}]})
    assert r.status_code == 200, r.text
    c = await clock(client, running, "b-court", date(2024, 8, 5))
    assert (c["state"], c["day"], c["last_day"], c["deemed_approved_on"]) == ("paused", 22, "2024-09-17", "2024-09-18")
    await client.put("/api/bills/b-court/clock", json={"pauses": [{"start": "2024-08-01"}]})
    c = await clock(client, running, "b-court", date(2024, 8, 5))
    assert (c["state"], c["last_day"], c["deemed_approved_on"]) == ("paused", None, None)


async def test_a_joint_sitting_bill_has_no_clock(client: httpx.AsyncClient, running: Running):
    """An organic bill never has a Senate clock."""
    r = await client.post("/api/bills", json={"id": "b-org", "title": "ร่างพระราชบัญญัติประกอบรัฐธรรมนูญ", "type": "organic"})
    assert r.status_code == 201
    running.app.state.bills.now = lambda: thai(2024, 8, 1)
    assert (await client.get("/api/bills/b-org")).json()["clock"] is None


# ---- the periodic task -------------------------------------------------------------------------------------------


async def test_the_task_announces_each_clock_event_once_from_two_processes_run_twice(tmp_path: Path):
    """Two stores on one archive file (two processes) with their own recorders, each running the task twice at
    the same moments: "7 days left" (24 Dec) and "deadline passed" (31 Dec) each reach bill:<id> exactly once."""
    path = tmp_path / "sapha.db"
    broker = MemoryBroker()
    hub = Hub(broker)
    instances: list[tuple[SqliteStore, Recorder]] = []
    for _ in range(2):
        store = SqliteStore(path)
        await store.open()
        recorder = Recorder(store, hub, Metrics())
        await recorder.relay.start()
        instances.append((store, recorder))
    store = instances[0][0]
    try:
        for start, end in SESSIONS:
            await store.add_session(start, end, "ordinary", None)
        bill = Bill("b-money", "ร่างพระราชบัญญัติการเงิน", None, "", type="money", stage="house_third_reading")
        await store.save_bill(bill, StageChange(0, "", None, "house_third_reading", "2024-10-01", ""))
        await store.change_stage(
            "b-money", lambda b: None, StageChange(0, "", None, "senate_first_reading", "2024-10-20", "")
        )

        async def everyone_runs(now: datetime) -> None:
            for _ in range(2):
                await asyncio.gather(*(bill_clock.announce_due(s, r, now) for s, r in instances))

        async def announced() -> list[tuple[str, str]]:
            events, _, _ = await broker.history("bill:b-money", 0, 100)
            return [(e.data["kind"], e.data["due"]) for e in events if e.type == "bill.clock"]

        await everyone_runs(thai(2024, 12, 23, 23, 59))
        assert await announced() == []
        await everyone_runs(thai(2024, 12, 24, 0, 0))
        assert await announced() == [("seven_days_left", "2024-12-24T00:00:00+07:00")]
        await everyone_runs(thai(2024, 12, 31, 8, 0))
        assert await announced() == [
            ("seven_days_left", "2024-12-24T00:00:00+07:00"),
            ("deadline_passed", "2024-12-31T00:00:00+07:00"),
        ]
        events, _, _ = await broker.history("bill:b-money", 0, 100)
        assert events[-1].data["deemed_approved_on"] == "2024-12-31" and events[-1].data["url"] == "/bills/b-money"
    finally:
        for s, r in instances:
            await r.relay.stop()
            await s.close()
        await hub.close()


@pytest.mark.fast
def test_a_bill_found_past_its_deadline_gets_only_the_deadline_event():
    """When both are due at once, "7 days left" is stale and only "deadline passed" is announced."""
    from archive.bill_stages import BillType
    from archive.senate_clock import SessionPeriod

    reading = senate_clock(
        arrived_on=date(2024, 7, 10),
        bill_type=BillType.ORDINARY,
        sessions=[SessionPeriod(date(2024, 7, 3), date(2024, 10, 30))],
        today=date(2024, 10, 1),
    )
    assert [e.kind for e in bill_clock.due_events(reading, thai(2024, 10, 1))] == [ClockEvent.DEADLINE_PASSED]
    # Day 54 of 60 (7 left, counting it) is 1 Sep.
    assert [e.kind for e in bill_clock.due_events(reading, thai(2024, 9, 1))] == [ClockEvent.SEVEN_DAYS_LEFT]
    assert bill_clock.due_events(reading, thai(2024, 8, 31, 23, 59)) == []


@pytest.mark.fast
def test_arrival_is_the_last_entry_into_the_senate():
    """The day the bill last came to the Senate from outside it (a revival restarts the count)."""
    history = [
        StageChange(1, "b", "house_third_reading", "senate_first_reading", "2024-07-10", ""),
        StageChange(2, "b", "senate_first_reading", "senate_committee", "2024-07-20", ""),
        StageChange(3, "b", "senate_committee", "lapsed", "2024-08-01", ""),
        StageChange(4, "b", "lapsed", "senate_committee", "2024-12-15", ""),
    ]
    assert bill_clock.arrived_on(history) == date(2024, 12, 15)
    assert bill_clock.arrived_on(history[:2]) == date(2024, 7, 10)
