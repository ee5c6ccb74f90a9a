"""The archive's HTTP face: read endpoints for everyone, operator endpoints behind a bearer token.

Every answer is JSON of one shape (``{"ok": true, ...}`` or the error shape of :mod:`common.http`); the
HTML pages fetch these same documents, so each page has a JSON twin.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from archive import exports, validate
from archive.export_cache import Busy, TranscriptExports
from archive.idempotency import HEADER as IDEMPOTENCY_HEADER
from archive.idempotency import Idempotency
from archive.models import Segment
from archive.recorder import Recorder, Unpublished
from archive.schemas import (
    BillPath,
    CreateSitting,
    ListQuery,
    RecordVote,
    ReviseSegment,
    SegmentPath,
    SegmentQuery,
    SetAgenda,
    SetBill,
    SetReviewed,
    SetSpeaker,
    SetStatus,
    SittingPath,
)
from archive.store import Conflict, NotFound, Store, StoreUnavailable
from archive.validate import Invalid
from broadcast.envelope import sitting_channel
from broadcast.hub import Hub
from common.http import JSONUnicodeResponse, bearer_matches, json_error

Handler = Callable[[Request], Awaitable[Response]]
# (request, permission) → who is asking (opaque here: desk's Principal) or the error answer (401, 403).
Authorise = Callable[[Request, str], Awaitable[Any]]
# (principal, action, target, before, after): one entry in the staff audit log.
Audit = Callable[[Any, str, str | None, Any, Any], Awaitable[None]]


def ok(payload: dict[str, Any], status: int = 200) -> Response:
    return JSONUnicodeResponse({"ok": True, **payload}, status_code=status)


def _path_sitting(request: Request) -> str | None:
    """The path's sitting id, or None when it is malformed (and so names no sitting: a 404, like an unknown one)."""
    try:
        return validate.check(SittingPath, dict(request.path_params)).sitting_id
    except Invalid:
        return None


def _path_bill(request: Request) -> str | None:
    """The path's bill id, or None when it is malformed."""
    try:
        return validate.check(BillPath, dict(request.path_params)).bill_id
    except Invalid:
        return None


def _path_segment(request: Request) -> int | None:
    """The path's segment id, or None when it is not one (not digits, 0, or past 2**63-1): a 404 either way."""
    raw = request.path_params.get("segment_id", "")
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 19):
        return None
    try:
        return validate.check(SegmentPath, {"segment_id": int(raw)}).segment_id
    except Invalid:
        return None


def media_seconds(ms: int) -> str:
    """Media milliseconds as the seconds a ``?t=`` link carries: ``754.2``, ``6``."""
    whole, frac = divmod(max(ms, 0), 1000)
    return f"{whole}.{frac:03d}".rstrip("0").rstrip(".") if frac else str(whole)


def permalink(segment: Segment) -> str:
    """The watch page at the segment's moment: a link a journalist can quote (stable: the sitting and its media
    time never change, corrections included)."""
    return f"/watch/{segment.sitting_id}?t={media_seconds(segment.start_ms)}"


def _author(request: Request) -> str:
    """Who a correction is attributed to: the signed-in account's username (``authorise`` leaves its principal on
    ``request.state``); the bootstrap token and the bare operator token name nobody, and stay "operator"."""
    principal = getattr(request.state, "principal", None)
    if getattr(principal, "account_id", None) is None:
        return "operator"
    return str(principal.username)  # type: ignore[union-attr]


def _scope(principal: Any) -> str:
    """Whose Idempotency-Keys a request uses: its account's (whether by session or by API token), else the
    bootstrap or bare operator token's own."""
    account_id = getattr(principal, "account_id", None)
    return f"account:{account_id}" if account_id is not None else "operator"


def _new_sitting_id(chamber: str) -> str:
    return f"{chamber}-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"


class ArchiveAPI:
    def __init__(
        self,
        store: Store,
        recorder: Recorder,
        hub: Hub,
        operator_token: str,
        *,
        transcripts: TranscriptExports | None = None,
        authorise: Authorise | None = None,
        audit: Audit | None = None,
    ) -> None:
        self.store = store
        self.recorder = recorder
        self.hub = hub
        self._token = operator_token.encode()
        self._authorise = authorise or self._token_only
        self._audit = audit
        self.transcripts = transcripts or TranscriptExports(store)
        self.idempotency = Idempotency(store, self._token, body_limit=validate.MAX_BODY_BYTES)

    # ---- reading -------------------------------------------------------------------------------------------

    async def list_sittings(self, request: Request) -> Response:
        try:
            query = validate.query(request.query_params, ListQuery)
        except Invalid as exc:
            return json_error(exc.status, exc.message, field=exc.field)
        sittings = await self.store.list_sittings(limit=query.limit, offset=query.offset)
        return ok({"sittings": [s.to_dict() for s in sittings]})

    async def sitting_state(self, sitting_id: str) -> dict[str, Any] | None:
        """Everything a viewer needs to draw the page, plus the channel position to subscribe from.

        The position is read first: events after it may already show in the state, and replaying them is
        harmless (each carries its id), whereas reading it last could skip an event.
        """
        channel = sitting_channel(sitting_id)
        position = await self.hub.broker.position(channel)
        sitting = await self.store.get_sitting(sitting_id)
        if sitting is None:
            return None
        agenda = await self.store.agenda(sitting_id)
        speaker = await self.store.current_speaker(sitting_id)
        votes = await self.store.votes(sitting_id)
        return {
            "sitting": sitting.to_dict(),
            "agenda": [a.to_dict() for a in agenda],
            "current_agenda_item": agenda[-1].to_dict() if agenda else None,
            "speaker": speaker.to_dict() if speaker else None,
            "votes": [v.to_dict() for v in votes],
            "channel": channel,
            "position": {"seq": position.seq, "epoch": position.epoch},
        }

    async def get_sitting(self, request: Request) -> Response:
        sitting_id = _path_sitting(request)
        state = None if sitting_id is None else await self.sitting_state(sitting_id)
        if state is None:
            return json_error(404, "no such sitting")
        return ok(state)

    async def transcript(self, request: Request) -> Response:
        """The sitting's transcript as json, txt, vtt or srt: rendered off the event loop and cached."""
        sitting_id = _path_sitting(request)
        sitting = None if sitting_id is None else await self.store.get_sitting(sitting_id)
        if sitting is None:
            return json_error(404, "no such sitting")
        fmt = request.query_params.get("format", "json")
        if fmt not in exports.FORMATS:
            return json_error(400, f"format must be one of {', '.join(exports.FORMATS)}", field="format")
        try:
            body = await self.transcripts.render(sitting, fmt)
        except Busy:
            busy = json_error(503, "too many transcript exports at once; try again shortly")
            busy.headers["Retry-After"] = "2"
            return busy
        # Every format says whether it is the machine draft; SRT can say it nowhere else.
        status = exports.transcript_status(sitting)
        return Response(body, media_type=exports.FORMATS[fmt][0], headers={"Transcript-Status": status})

    async def get_segment(self, request: Request) -> Response:
        """A segment's permalink document: the segment, its neighbours and everything it was said under."""
        try:
            query = validate.query(request.query_params, SegmentQuery)
        except Invalid as exc:
            return json_error(exc.status, exc.message, field=exc.field)
        segment_id = _path_segment(request)
        segment = None if segment_id is None else await self.store.get_segment(segment_id)
        sitting = None if segment is None else await self.store.get_sitting(segment.sitting_id)
        if segment is None or sitting is None:
            return json_error(404, "no such segment")
        before, after = await self.store.segment_neighbours(segment, query.context, query.context)
        speaker = agenda_item = bill = None
        if segment.speaker_id is not None:
            speaker = next((s for s in await self.store.speakers(sitting.id) if s.id == segment.speaker_id), None)
        if segment.agenda_item_id is not None:
            agenda_item = next((a for a in await self.store.agenda(sitting.id) if a.id == segment.agenda_item_id), None)
        if agenda_item is not None and agenda_item.bill_id is not None:
            bill = await self.store.get_bill(agenda_item.bill_id)
        mentions = [b for b in [await self.store.get_bill(i) for i in await self.store.segment_bills(segment.id)] if b]
        return ok(
            {
                "segment": segment.to_dict(),
                "sitting": sitting.to_dict(),
                "speaker": speaker.to_dict() if speaker else None,
                "agenda_item": agenda_item.to_dict() if agenda_item else None,
                "bill": bill.to_dict() if bill else None,
                "mentions": [b.to_dict() for b in mentions],
                "before": [s.to_dict() for s in before],
                "after": [s.to_dict() for s in after],
                "permalink": permalink(segment),
                "transcript_status": exports.transcript_status(sitting),
            }
        )

    async def segment_revisions(self, request: Request) -> Response:
        segment_id = _path_segment(request)
        revisions = [] if segment_id is None else await self.store.segment_revisions(segment_id)
        if segment_id is None or not revisions:
            return json_error(404, "no such segment")
        return ok({"segment_id": segment_id, "revisions": [r.to_dict() for r in revisions]})

    # ---- operating -----------------------------------------------------------------------------------------

    def authorised(self, request: Request) -> bool:
        """Whether the request carries ``OPERATOR_TOKEN`` itself (constant-time)."""
        return bearer_matches(request, self._token)

    async def may_publish(self, request: Request) -> Response | None:
        """WHIP's check: None when the caller may publish a sitting's media (``sitting.manage``, as starting a
        sitting needs: an operator's API token or session, or the bootstrap token while it is valid), else the
        401/403 answer."""
        principal = await self._authorise(request, "sitting.manage")
        return principal if isinstance(principal, Response) else None

    async def _token_only(self, request: Request, permission: str) -> Any:
        # Without staff accounts wired in (``authorise`` not given), the operator token may do everything.
        if self.authorised(request):
            return "operator"
        return json_error(401, "operator token required: Authorization: Bearer <OPERATOR_TOKEN>")

    async def _before(self, request: Request) -> Any:
        """What an operator call may change, read before it runs, for the audit log's ``before``."""
        params = request.path_params
        if "segment_id" in params:
            segment_id = _path_segment(request)
            segment = None if segment_id is None else await self.store.get_segment(segment_id)
            return segment.to_dict() if segment else None
        if "bill_id" in params:
            bill_id = _path_bill(request)
            bill = None if bill_id is None else await self.store.get_bill(bill_id)
            return bill.to_dict() if bill else None
        if "sitting_id" in params:
            sitting_id = _path_sitting(request)
            state = None if sitting_id is None else await self.sitting_state(sitting_id)
            if state is None:
                return None
            return {k: state[k] for k in ("sitting", "current_agenda_item", "speaker")} | {"votes": len(state["votes"])}
        return None

    def operator(self, handler: Callable[[Request], Awaitable[Response]], permission: str) -> Handler:
        """Wrap an operator handler: ``authorise(request, permission)`` first (401/403 answer as it says), then the
        Idempotency-Key (a retry gets the first answer), then one mapping from domain errors to HTTP answers, and
        an audit entry for each change made (action: the handler's name; target: the path; after: the answer).

        Recorded but not published (broker down) is a 202 with ``"published": false``: the write is durable and the
        outbox relay publishes it when the broker returns, so there is nothing for the caller to retry. The archive
        failing (timeout, disk full) is a 503: nothing was recorded, and a retry may succeed.
        """

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Invalid as exc:
                return json_error(exc.status, exc.message, field=exc.field)
            except NotFound as exc:
                return json_error(404, str(exc).strip("'\""))
            except Conflict as exc:
                return json_error(409, str(exc).strip("'\""))
            except Unpublished as exc:
                return ok({"recorded": True, "published": False, exc.kind: exc.record, "event": None}, status=202)
            except StoreUnavailable as exc:
                failed = json_error(503, f"the archive is unavailable: {exc}")
                failed.headers["Retry-After"] = "1"
                return failed

        async def guarded(request: Request) -> Response:
            principal = await self._authorise(request, permission)
            if isinstance(principal, Response):
                return principal
            before = await self._before(request) if self._audit is not None else None
            key = request.headers.get(IDEMPOTENCY_HEADER)
            scope = _scope(principal)
            response = await (answer(request) if key is None else self.idempotency.run(request, key, answer, scope))
            replayed = response.headers.get("Idempotent-Replayed") == "true"
            if self._audit is not None and response.status_code < 300 and not replayed:
                target = ",".join(f"{k}:{v}" for k, v in sorted(request.path_params.items())) or None
                await self._audit(principal, handler.__name__, target, before, json.loads(bytes(response.body)))
            return response

        guarded.__name__ = handler.__name__
        guarded.__doc__ = handler.__doc__
        return guarded

    async def _sitting_id(self, request: Request) -> str:
        """The path's sitting, which must exist (a malformed id names none): else NotFound, a 404."""
        sitting_id = _path_sitting(request)
        if sitting_id is None or await self.store.get_sitting(sitting_id) is None:
            raise NotFound(f"no sitting {request.path_params['sitting_id']}")
        return sitting_id

    async def revise_segment(self, request: Request) -> Response:
        """A correction: the text becomes the segment's next revision; the machine draft is kept."""
        segment_id = _path_segment(request)
        if segment_id is None or await self.store.get_segment(segment_id) is None:
            raise NotFound(f"no segment {request.path_params['segment_id']}")
        body = await validate.body(request, ReviseSegment)
        segment, event = await self.recorder.correct_segment(segment_id, body.text, _author(request))
        return ok({"segment": segment.to_dict(), "event": event.to_dict()})

    async def set_reviewed(self, request: Request) -> Response:
        sitting_id = await self._sitting_id(request)
        body = await validate.body(request, SetReviewed)
        sitting = await self.recorder.set_reviewed(sitting_id, body.reviewed)
        return ok({"sitting": sitting.to_dict(), "transcript_status": exports.transcript_status(sitting)})

    async def create_sitting(self, request: Request) -> Response:
        body = await validate.body(request, CreateSitting)
        sitting_id = body.id or _new_sitting_id(body.chamber)
        try:
            sitting, event = await self.recorder.create_sitting(sitting_id, body.title, body.chamber, body.scheduled_at)
        except Conflict:
            raise Conflict(f"sitting {sitting_id} already exists") from None
        return ok({"sitting": sitting.to_dict(), "event": event.to_dict()}, status=201)

    async def set_status(self, request: Request) -> Response:
        sitting_id = await self._sitting_id(request)
        body = await validate.body(request, SetStatus)
        sitting, event = await self.recorder.set_status(sitting_id, body.status, body.reason)
        return ok({"sitting": sitting.to_dict(), "event": event.to_dict()})

    async def set_agenda(self, request: Request) -> Response:
        sitting_id = await self._sitting_id(request)
        body = await validate.body(request, SetAgenda)
        item, event = await self.recorder.set_agenda_item(sitting_id, body.title, body.bill_id, body.order)
        return ok({"agenda_item": item.to_dict(), "event": event.to_dict()}, status=201)

    async def record_vote(self, request: Request) -> Response:
        sitting_id = await self._sitting_id(request)
        b = await validate.body(request, RecordVote)
        vote, event = await self.recorder.record_vote(
            sitting_id, b.motion, b.yes, b.no, b.abstain, b.absent, b.result, b.bill_id
        )
        return ok({"vote": vote.to_dict(), "event": event.to_dict()}, status=201)

    async def set_speaker(self, request: Request) -> Response:
        sitting_id = await self._sitting_id(request)
        body = await validate.body(request, SetSpeaker)
        speaker, event = await self.recorder.set_speaker(sitting_id, body.name, body.role)
        return ok({"speaker": speaker.to_dict(), "event": event.to_dict()}, status=201)

    async def set_bill(self, request: Request) -> Response:
        # The bill is created when missing, so a malformed id is a bad request (422), not a 404.
        bill_id = validate.check(BillPath, dict(request.path_params)).bill_id
        body = await validate.body(request, SetBill)
        event = await self.recorder.set_bill(bill_id, body.title, body.status)
        answer = ok({"bill": event.data, "event": event.to_dict()})
        # Deprecated (docs/api.md): POST /api/bills, PATCH /api/bills/{id} and /stages replace it.
        answer.headers["Deprecation"] = "true"
        answer.headers["Link"] = '</api/bills>; rel="successor-version"'
        return answer
