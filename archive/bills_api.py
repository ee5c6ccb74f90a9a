"""Bills over HTTP: the public list and bill documents, and the operator's bill, stage, clock and session calls.

Every change is recorded with its event (``bill.status`` for details and stages, ``bill.clock`` for the clock's
inputs) in one transaction and published on ``bill:<id>`` through the outbox (archive/recorder.py ``record``).
Stage changes are checked by archive/bill_stages.py inside the store's write, so two operators racing cannot both
move a bill from the same stage: an impossible change is a 409 carrying the stages that may follow. The operator
handlers here are wrapped by ``ArchiveAPI.operator`` (authorisation, Idempotency-Key, audit, error mapping).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from archive import bill_clock, validate
from archive.api import ok
from archive.bill_stages import (
    BillType,
    Stage,
    StageTransitionError,
    check_transition,
    first_stages,
    label,
    next_stages,
    stages_of,
    type_label,
)
from archive.models import Bill, BillClockInputs, BillFilters, StageChange
from archive.recorder import Recorder
from archive.schemas import (
    BillPath,
    BillsQuery,
    ChangeStage,
    CreateBill,
    CreateSession,
    ListQuery,
    PatchBill,
    SetBillClock,
)
from archive.senate_clock import ClockError, ClockReading, thai_today
from archive.store import NotFound, Store, UnknownReference
from archive.validate import Invalid
from broadcast import envelope as ev
from broadcast.envelope import Event
from common.http import json_error

STAGE_LABELS = {str(s): label(s) for s in Stage}
TYPE_LABELS = {str(t): type_label(t) for t in BillType}


class Refused(Exception):
    """A request the bill's state does not allow: answered with ``status`` and the extra JSON in ``details``."""

    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.details = details

    def response(self) -> Response:
        return json_error(self.status, str(self), **self.details)


def bill_out(bill: Bill) -> dict[str, Any]:
    """A bill as the API shows it: its record, the Thai names of its stage and type, its channel and page."""
    return {
        **bill.to_dict(),
        "stage_label": STAGE_LABELS.get(bill.stage) if bill.stage else None,
        "type_label": TYPE_LABELS.get(bill.type) if bill.type else None,
        "channel": ev.bill_channel(bill.id),
        "url": f"/bills/{bill.id}",
    }


def change_links(change: StageChange) -> dict[str, str]:
    """Where the sitting, agenda item and vote behind a stage change can be watched."""
    if change.sitting_id is None:
        return {}
    watch = f"/watch/{change.sitting_id}"
    links = {"sitting": watch}
    if change.agenda_item_id is not None:
        links["agenda_item"] = f"{watch}#agenda-{change.agenda_item_id}"
    if change.vote_id is not None:
        links["vote"] = f"{watch}#vote-{change.vote_id}"
    return links


def change_out(change: StageChange) -> dict[str, Any]:
    return {**change.to_dict(), "stage_label": STAGE_LABELS[change.stage], "links": change_links(change)}


def status_data(bill: Bill, change: StageChange | None) -> dict[str, Any]:
    """The ``bill.status`` event: the bill, the stage it came from and the change (None for a details change)."""
    return {
        **bill_out(bill),
        "previous_stage": change.from_stage if change else None,
        "change": change_out(change) if change else None,
    }


def allowed_next(bill: Bill) -> tuple[Stage, ...]:
    """The stages the bill may go to now: its first stages while it has none; nothing without a type."""
    if bill.type is None:
        return ()
    if bill.stage is None:
        return first_stages(BillType(bill.type))
    return next_stages(Stage(bill.stage), BillType(bill.type))


def _event(event: Event | None) -> dict[str, Any] | None:
    return event.to_dict() if event is not None else None


def _new_bill_id(now: datetime) -> str:
    return f"bill-{thai_today(now):%Y%m%d}-{secrets.token_hex(3)}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BillsAPI:
    """``now`` is the wall clock (aware); tests pass a fixed one to read the Senate clock on a chosen day."""

    def __init__(self, store: Store, recorder: Recorder, *, now: Callable[[], datetime] = _utc_now) -> None:
        self.store = store
        self.recorder = recorder
        self.now = now

    # ---- helpers -----------------------------------------------------------------------------------------------

    async def _bill(self, request: Request) -> Bill:
        """The path's bill, which must exist (a malformed id names none): else NotFound, a 404."""
        try:
            bill_id = validate.check(BillPath, dict(request.path_params)).bill_id
        except Invalid:
            bill_id = None
        bill = None if bill_id is None else await self.store.get_bill(bill_id)
        if bill is None:
            raise NotFound(f"no bill {request.path_params.get('bill_id', '')}")
        return bill

    async def clock_of(self, bill: Bill, inputs: BillClockInputs | None = None) -> ClockReading | None:
        """The bill's Senate clock today (with ``inputs`` instead of the recorded ones when given)."""
        history = await self.store.bill_stages(bill.id)
        inputs = inputs if inputs is not None else await self.store.bill_clock_inputs(bill.id)
        return bill_clock.reading(bill, history, inputs, await self.store.sessions(), thai_today(self.now()))

    # ---- reading -----------------------------------------------------------------------------------------------

    async def list_bills(self, request: Request) -> Response:
        try:
            query = validate.query(request.query_params, BillsQuery)
        except Invalid as exc:
            return json_error(exc.status, exc.message, field=exc.field)
        filters = BillFilters(query.stage, query.type, query.topic, query.agency, query.q)
        bills, total = await self.store.find_bills(filters, query.limit, query.offset)
        following = query.offset + len(bills)
        nxt = None
        if following < total:
            params = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit")}
            nxt = "/api/bills?" + urlencode({**params, "limit": query.limit, "offset": following})
        return ok(
            {
                "bills": [bill_out(b) for b in bills],
                "total": total,
                "limit": query.limit,
                "offset": query.offset,
                "next": nxt,
                "labels": {"stages": STAGE_LABELS, "types": TYPE_LABELS},
            }
        )

    async def get_bill(self, request: Request) -> Response:
        """The bill, its stage history, the stages it may go to, its Senate clock, and the record about it:
        sittings, agenda items, votes and the segments that name it (``limit``/``offset`` page the segments)."""
        try:
            query = validate.query(request.query_params, ListQuery)
        except Invalid as exc:
            return json_error(exc.status, exc.message, field=exc.field)
        try:
            bill = await self._bill(request)
        except NotFound:
            return json_error(404, "no such bill")
        record = await self.store.bill_record(bill.id, query.limit, query.offset)
        if record is None:
            return json_error(404, "no such bill")
        bill = record.bill
        history = await self.store.bill_stages(bill.id)
        inputs = await self.store.bill_clock_inputs(bill.id)
        clock: dict[str, Any] | None = None
        clock_error = None
        try:
            reading = bill_clock.reading(bill, history, inputs, await self.store.sessions(), thai_today(self.now()))
            clock = reading.as_dict() if reading is not None else None
        except ClockError as exc:
            clock_error = str(exc)
        return ok(
            {
                "bill": bill_out(bill),
                "channel": ev.bill_channel(bill.id),
                "stages": [change_out(c) for c in history],
                "next_stages": [{"stage": str(s), "label": STAGE_LABELS[s]} for s in allowed_next(bill)],
                "clock": clock,
                "clock_error": clock_error,
                "clock_inputs": inputs.to_dict(),
                "sittings": [s.to_dict() for s in record.sittings],
                "agenda_items": [a.to_dict() for a in record.agenda_items],
                "votes": [v.to_dict() for v in record.votes],
                "segments": [s.to_dict() for s in record.segments],
            }
        )

    async def list_sessions(self, request: Request) -> Response:
        return ok({"sessions": [s.to_dict() for s in await self.store.sessions()]})

    # ---- operating (wrapped by ArchiveAPI.operator) ------------------------------------------------------------

    async def create_bill(self, request: Request) -> Response:
        """A new bill with its details, entered at its hearing or first reading (the default: the hearing)."""
        body = await validate.body(request, CreateBill)
        bill_type = BillType(body.type)
        starts = first_stages(bill_type)
        stage = Stage(body.stage) if body.stage is not None else starts[0]
        if stage not in starts:
            return json_error(
                409,
                f"stage: a {bill_type} bill starts at {' or '.join(starts)}; record later stages as stage changes",
                field="stage",
                allowed=[str(s) for s in starts],
            )
        now = self.now()
        on = body.on or thai_today(now).isoformat()
        bill = Bill(
            id=body.id or _new_bill_id(now),
            title=body.title,
            status=None,
            updated_at="",
            short_name=body.short_name,
            type=str(bill_type),
            proposer=body.proposer,
            stage=str(stage),
            topics=tuple(dict.fromkeys(body.topics)),
            agencies=tuple(dict.fromkeys(body.agencies)),
        )
        first = StageChange(0, bill.id, None, str(stage), on, "")
        # The first entry is read back with the bill's stages; the event names it as the change.
        saved, event = await self.recorder.record(
            "bill",
            lambda announce: self.store.save_bill(bill, first, announce=announce),
            lambda b: [(ev.bill_channel(b.id), ev.BILL_STATUS, status_data(b, None))],
            bill_out,
        )
        return ok({"bill": bill_out(saved), "event": _event(event)}, status=201)

    async def patch_bill(self, request: Request) -> Response:
        """Change the given details; a type the bill's current stage does not belong to is a 409."""
        bill = await self._bill(request)
        body = await validate.body(request, PatchBill)
        given = body.model_fields_set
        if not given:
            raise Invalid("body", "must change at least one of: " + ", ".join(PatchBill.model_fields))
        for required in ("title", "type", "topics", "agencies"):
            if required in given and getattr(body, required) is None:
                raise Invalid(required, "must not be null")
        changes: dict[str, object] = {f: getattr(body, f) for f in given}
        if body.type is not None and bill.stage is not None and Stage(bill.stage) not in stages_of(BillType(body.type)):
            return json_error(409, f"type: a {body.type} bill is never at {bill.stage}", field="type", stage=bill.stage)
        for tags in ("topics", "agencies"):
            if tags in changes:
                changes[tags] = list(dict.fromkeys(getattr(body, tags)))
        saved, event = await self.recorder.record(
            "bill",
            lambda announce: self.store.update_bill(bill.id, changes, announce=announce),
            lambda b: [(ev.bill_channel(b.id), ev.BILL_STATUS, status_data(b, None))],
            bill_out,
        )
        return ok({"bill": bill_out(saved), "event": _event(event)})

    async def change_stage(self, request: Request) -> Response:
        """Move the bill to another stage: 409 with the allowed ones when the constitution does not allow it."""
        bill = await self._bill(request)
        body = await validate.body(request, ChangeStage)
        stage = Stage(body.stage)
        on = body.on or thai_today(self.now()).isoformat()
        history = await self.store.bill_stages(bill.id)
        if history and on < history[-1].on:
            return json_error(409, f"on: the previous stage change was on {history[-1].on}", field="on")

        def check(current: Bill) -> None:
            # Runs inside the store's write, on the row as it is now: a concurrent change is seen.
            if current.type is None:
                raise Refused(409, "type: the bill has no type yet; PATCH it first", field="type")
            if current.stage is None:
                allowed = first_stages(BillType(current.type))
                if stage not in allowed:
                    raise Refused(
                        409,
                        f"a bill without a stage starts at {' or '.join(allowed)}",
                        field="stage",
                        to=str(stage),
                        allowed=[str(s) for s in allowed],
                    )
                return
            try:
                check_transition(Stage(current.stage), stage, BillType(current.type))
            except StageTransitionError as err:
                raise Refused(409, str(err), **err.details()) from None

        change = StageChange(
            0, bill.id, None, str(stage), on, "", body.sitting_id, body.agenda_item_id, body.vote_id, body.note
        )
        try:
            (saved, stored), event = await self.recorder.record(
                "bill",
                lambda announce: self.store.change_stage(bill.id, check, change, announce=announce),
                lambda row: [(ev.bill_channel(row[0].id), ev.BILL_STATUS, status_data(row[0], row[1]))],
                lambda row: bill_out(row[0]),
            )
        except Refused as refused:
            return refused.response()
        except UnknownReference as exc:
            return json_error(404, str(exc), field=exc.field)
        return ok({"bill": bill_out(saved), "change": change_out(stored), "event": _event(event)}, status=201)

    async def set_clock(self, request: Request) -> Response:
        """Replace the bill's extension and court pauses; inputs the clock cannot use are a 422 naming the field."""
        bill = await self._bill(request)
        body = await validate.body(request, SetBillClock)
        pauses = tuple((p.start, p.end) for p in body.pauses)
        for i, (start, end) in enumerate(pauses):
            if end is not None and end < start:
                return json_error(409, f"pauses: pause {i + 1} ends ({end}) before it starts ({start})", field="pauses")
        ext = body.extension
        inputs = BillClockInputs(ext.days if ext else None, ext.resolved_on if ext else None, pauses)
        try:
            clock = await self.clock_of(bill, inputs)
        except ClockError as exc:
            # Well-formed, but the clock's rules refuse it (an extension after the last day): a conflict.
            return json_error(409, str(exc), field=exc.field)
        clock_dict = clock.as_dict() if clock is not None else None

        def data(saved: BillClockInputs) -> dict[str, Any]:
            return {
                "bill_id": bill.id,
                "kind": "changed",
                "clock_inputs": saved.to_dict(),
                "clock": clock_dict,
                "url": f"/bills/{bill.id}",
            }

        saved, event = await self.recorder.record(
            "clock",
            lambda announce: self.store.set_bill_clock_inputs(bill.id, inputs, announce=announce),
            lambda s: [(ev.bill_channel(bill.id), ev.BILL_CLOCK, data(s))],
            lambda s: {"bill_id": bill.id, "clock_inputs": s.to_dict()},
        )
        return ok({"bill_id": bill.id, "clock_inputs": saved.to_dict(), "clock": clock_dict, "event": _event(event)})

    async def create_session(self, request: Request) -> Response:
        """A session period; one that overlaps another is a 409 (Conflict, mapped by the operator wrapper)."""
        body = await validate.body(request, CreateSession)
        if date.fromisoformat(body.end) < date.fromisoformat(body.start):
            return json_error(409, f"end: the session ends before it starts ({body.start})", field="end")
        session = await self.store.add_session(body.start, body.end, body.kind, body.title)
        return ok({"session": session.to_dict()}, status=201)
