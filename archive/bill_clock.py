"""The Senate clock, wired: each bill's sec. 136 reading from what the archive holds, and the periodic task that
announces ``bill.clock`` when 7 days in session are left and when the deadline has passed.

The reading is archive/senate_clock.py's; this module only gathers its inputs (the session calendar, the day the
bill reached the Senate from its stage history, the extension and court pauses the operator recorded) and decides
which events are due (:func:`due_events`, sans-I/O). The driver (:func:`announce_due`, :func:`run`) claims each due
event in the archive — a unique (bill, kind, due date) row written in the same transaction as the event's outbox
entry — before it is published, so however many server processes run the task, and however often, each event is
announced exactly once. A deadline that moves (a new pause, an extension) has a new due date and so a new key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from archive.bill_stages import SENATE_STAGES, BillType, Stage
from archive.models import Bill, BillClockInputs, BillFilters, SessionPeriodRecord, StageChange
from archive.recorder import Recorder, Unpublished
from archive.senate_clock import (
    ClockError,
    ClockEvent,
    ClockReading,
    CourtPause,
    DueEvent,
    Extension,
    SessionPeriod,
    senate_clock,
    thai_today,
)
from archive.store import Store
from broadcast import envelope as ev
from broadcast.envelope import Event

log = logging.getLogger(__name__)

CLOCK_TYPES = frozenset({BillType.ORDINARY, BillType.MONEY})
DEFAULT_EVERY_S = 60.0
_PAGE = 200


def arrived_on(history: Sequence[StageChange]) -> date | None:
    """The day the bill last reached the Senate: the latest change into a Senate reading from outside them (a
    revived bill that resumes at the Senate starts a new count)."""
    found: date | None = None
    for change in history:
        entering = change.stage in SENATE_STAGES and (
            change.from_stage is None or change.from_stage not in SENATE_STAGES
        )
        if entering:
            found = date.fromisoformat(change.on)
    return found


def reading(
    bill: Bill,
    history: Sequence[StageChange],
    inputs: BillClockInputs,
    sessions: Sequence[SessionPeriodRecord],
    today: date,
) -> ClockReading | None:
    """The bill's sec. 136 clock on ``today``, or None when it has none (not at the Senate, a joint-sitting type).
    Raises ClockError when the recorded inputs do not fit together (an extension past the original last day)."""
    if bill.stage not in SENATE_STAGES or bill.type not in CLOCK_TYPES:
        return None
    arrived = arrived_on(history)
    if arrived is None:
        return None
    extension = None
    if inputs.extension_days is not None and inputs.extension_resolved_on is not None:
        extension = Extension(inputs.extension_days, date.fromisoformat(inputs.extension_resolved_on))
    pauses = [CourtPause(date.fromisoformat(s), date.fromisoformat(e) if e else None) for s, e in inputs.pauses]
    return senate_clock(
        arrived_on=arrived,
        bill_type=BillType(bill.type),
        sessions=[SessionPeriod(date.fromisoformat(s.start), date.fromisoformat(s.end)) for s in sessions],
        today=today,
        extension=extension,
        pauses=pauses,
    )


def due_events(clock: ClockReading, now: datetime) -> list[DueEvent]:
    """The events due at ``now``. Once the deadline has passed, "7 days left" is stale and not announced (a bill
    entered after the fact gets one event, not two)."""
    due = [e for e in clock.events() if e.at <= now]
    if any(e.kind is ClockEvent.DEADLINE_PASSED for e in due):
        due = [e for e in due if e.kind is ClockEvent.DEADLINE_PASSED]
    return due


def event_data(bill: Bill, clock: ClockReading, due: DueEvent) -> dict[str, Any]:
    """The ``bill.clock`` event's data for a due event."""
    return {
        "bill_id": bill.id,
        "kind": str(due.kind),
        "due": due.at.isoformat(),
        "stage": bill.stage,
        "limit": clock.limit,
        "last_day": clock.last_day.isoformat() if clock.last_day else None,
        "deemed_approved_on": clock.deemed_approved_on.isoformat() if clock.deemed_approved_on else None,
        "url": f"/bills/{bill.id}",
    }


async def bills_at_senate(store: Store) -> list[Bill]:
    """Every bill in a Senate reading."""
    found: list[Bill] = []
    for stage in sorted(SENATE_STAGES):
        offset = 0
        while True:
            page, total = await store.find_bills(BillFilters(stage=Stage(stage)), _PAGE, offset)
            found.extend(page)
            offset += len(page)
            if not page or offset >= total:
                break
    return found


async def announce_due(store: Store, recorder: Recorder, now: datetime) -> list[Event]:
    """Announce every clock event due at ``now`` not announced before; returns the events published here (an event
    recorded while the broker is down is published later by the relay, and not returned)."""
    sessions = await store.sessions()
    today = thai_today(now)
    published: list[Event] = []
    for bill in await bills_at_senate(store):
        try:
            clock = reading(
                bill, await store.bill_stages(bill.id), await store.bill_clock_inputs(bill.id), sessions, today
            )
        except ClockError as exc:
            log.warning("bill %s: no Senate clock: %s", bill.id, exc)
            continue
        if clock is None:
            continue
        for due in due_events(clock, now):
            data = event_data(bill, clock, due)

            def claim(announce: Any, bill_id: str = bill.id, due: DueEvent = due) -> Any:
                return store.claim_clock_event(bill_id, str(due.kind), due.at.date().isoformat(), announce=announce)

            def events(claimed: bool, data: dict[str, Any] = data, bill_id: str = bill.id) -> list[Any]:
                return [(ev.bill_channel(bill_id), ev.BILL_CLOCK, data)] if claimed else []

            try:
                _, event = await recorder.record("bill_clock", claim, events, lambda claimed: {"claimed": claimed})
            except Unpublished:
                log.warning("bill %s: %s recorded; the relay publishes it when the broker returns", bill.id, due.kind)
                continue
            if event is not None:
                published.append(event)
    return published


def utc_clock() -> datetime:
    return datetime.now(UTC)


async def run(
    store: Store, recorder: Recorder, *, now: Callable[[], datetime] = utc_clock, every_s: float = DEFAULT_EVERY_S
) -> None:
    """Check every ``every_s`` seconds, for ever; a failed round (the archive down) is logged and the next one tries
    again, since the claims make a late announcement safe."""
    while True:
        try:
            await announce_due(store, recorder, now())
        except Exception as exc:
            log.warning("the Senate clock round failed: %r", exc)
        await asyncio.sleep(every_s)
