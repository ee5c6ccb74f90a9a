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
from starlette.responses import PlainTextResponse, Response

from archive import exports
from archive.recorder import Recorder
from archive.store import CHAMBERS, SITTING_STATUSES, VOTE_RESULTS, Conflict, NotFound, Store
from archive.validate import Body, Invalid
from broadcast.envelope import sitting_channel
from broadcast.hub import Hub
from common.http import JSONUnicodeResponse, bearer_matches, json_error

MAX_BODY_BYTES = 64 * 1024
TITLE_MAX = 4000  # real Thai bill titles run to several hundred characters; leave room
NAME_MAX = 300

Handler = Callable[[Request], Awaitable[Response]]


def ok(payload: dict[str, Any], status: int = 200) -> Response:
    return JSONUnicodeResponse({"ok": True, **payload}, status_code=status)


async def _json_body(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Invalid("body", f"must be at most {MAX_BODY_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise Invalid("body", f"must be at most {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Invalid("body", "must be valid JSON") from None


def _new_sitting_id(chamber: str) -> str:
    return f"{chamber}-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"


class ArchiveAPI:
    def __init__(self, store: Store, recorder: Recorder, hub: Hub, operator_token: str) -> None:
        self.store = store
        self.recorder = recorder
        self.hub = hub
        self._token = operator_token.encode()

    # ---- reading -------------------------------------------------------------------------------------------

    async def list_sittings(self, request: Request) -> Response:
        try:
            limit = min(int(request.query_params.get("limit", "100")), 500)
            offset = max(int(request.query_params.get("offset", "0")), 0)
        except ValueError:
            return json_error(400, "limit and offset must be integers")
        sittings = await self.store.list_sittings(limit=max(limit, 1), offset=offset)
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
        state = await self.sitting_state(request.path_params["sitting_id"])
        if state is None:
            return json_error(404, "no such sitting")
        return ok(state)

    async def transcript(self, request: Request) -> Response:
        sitting = await self.store.get_sitting(request.path_params["sitting_id"])
        if sitting is None:
            return json_error(404, "no such sitting")
        fmt = request.query_params.get("format", "json")
        segments = await self.store.segments(sitting.id, limit=1_000_000)
        if fmt == "json":
            return ok(exports.to_json(sitting, segments))
        if fmt == "txt":
            return PlainTextResponse(exports.to_text(sitting, segments))
        if fmt == "vtt":
            return PlainTextResponse(exports.to_webvtt(sitting, segments), media_type="text/vtt")
        if fmt == "srt":
            return PlainTextResponse(exports.to_srt(sitting, segments), media_type="application/x-subrip")
        return json_error(400, "format must be one of json, txt, vtt, srt", field="format")

    # ---- operating -----------------------------------------------------------------------------------------

    def authorised(self, request: Request) -> bool:
        """Whether the request carries the operator token (constant-time comparison)."""
        return bearer_matches(request, self._token)

    def operator(self, handler: Callable[[Request], Awaitable[Response]]) -> Handler:
        """Wrap an operator handler: token first, then one mapping from domain errors to HTTP answers."""

        async def guarded(request: Request) -> Response:
            if not self.authorised(request):
                return json_error(401, "operator token required: Authorization: Bearer <OPERATOR_TOKEN>")
            try:
                return await handler(request)
            except Invalid as exc:
                return json_error(422, exc.message, field=exc.field)
            except NotFound as exc:
                return json_error(404, str(exc).strip("'\""))
            except Conflict as exc:
                return json_error(409, str(exc).strip("'\""))

        guarded.__name__ = handler.__name__
        guarded.__doc__ = handler.__doc__
        return guarded

    async def _sitting_id(self, request: Request) -> str:
        sitting_id = request.path_params["sitting_id"]
        if await self.store.get_sitting(sitting_id) is None:
            raise NotFound(f"no sitting {sitting_id}")
        return sitting_id

    async def create_sitting(self, request: Request) -> Response:
        body = Body(await _json_body(request), {"id", "title", "chamber", "scheduled_at"})
        title = body.required_text("title", max_len=TITLE_MAX)
        chamber = body.choice("chamber", CHAMBERS)
        scheduled_at = body.timestamp("scheduled_at")
        sitting_id = body.ident("id") or _new_sitting_id(chamber)
        try:
            sitting, event = await self.recorder.create_sitting(sitting_id, title, chamber, scheduled_at)
        except Conflict:
            raise Conflict(f"sitting {sitting_id} already exists") from None
        return ok({"sitting": sitting.to_dict(), "event": event.to_dict()}, status=201)

    async def set_status(self, request: Request) -> Response:
        sitting_id = await self._sitting_id(request)
        body = Body(await _json_body(request), {"status", "reason"})
        status = body.choice("status", SITTING_STATUSES)
        reason = body.text("reason", max_len=NAME_MAX, required=False)
        sitting, event = await self.recorder.set_status(sitting_id, status, reason)
        return ok({"sitting": sitting.to_dict(), "event": event.to_dict()})

    async def set_agenda(self, request: Request) -> Response:
        sitting_id = await self._sitting_id(request)
        body = Body(await _json_body(request), {"title", "bill_id", "order"})
        title = body.required_text("title", max_len=TITLE_MAX)
        bill_id = body.ident("bill_id")
        order = body.count("order", required=False, minimum=1)
        item, event = await self.recorder.set_agenda_item(sitting_id, title, bill_id, order)
        return ok({"agenda_item": item.to_dict(), "event": event.to_dict()}, status=201)

    async def record_vote(self, request: Request) -> Response:
        sitting_id = await self._sitting_id(request)
        body = Body(await _json_body(request), {"motion", "yes", "no", "abstain", "absent", "result", "bill_id"})
        motion = body.required_text("motion", max_len=TITLE_MAX)
        yes, no = body.required_count("yes"), body.required_count("no")
        abstain, absent = body.required_count("abstain"), body.required_count("absent")
        result = body.choice("result", VOTE_RESULTS)
        bill_id = body.ident("bill_id")
        vote, event = await self.recorder.record_vote(sitting_id, motion, yes, no, abstain, absent, result, bill_id)
        return ok({"vote": vote.to_dict(), "event": event.to_dict()}, status=201)

    async def set_speaker(self, request: Request) -> Response:
        sitting_id = await self._sitting_id(request)
        body = Body(await _json_body(request), {"name", "role"})
        name = body.required_text("name", max_len=NAME_MAX)
        role = body.text("role", max_len=NAME_MAX, required=False)
        speaker, event = await self.recorder.set_speaker(sitting_id, name, role)
        return ok({"speaker": speaker.to_dict(), "event": event.to_dict()}, status=201)

    async def set_bill(self, request: Request) -> Response:
        bill_id = request.path_params["bill_id"]
        body = Body(await _json_body(request), {"title", "status"})
        Body({"bill_id": bill_id}, {"bill_id"}).ident("bill_id", required=True)
        title = body.required_text("title", max_len=TITLE_MAX)
        status = body.text("status", max_len=NAME_MAX, required=False)
        event = await self.recorder.set_bill(bill_id, title, status)
        return ok({"bill": event.data, "event": event.to_dict()})

    async def get_bill(self, request: Request) -> Response:
        bill = await self.store.get_bill(request.path_params["bill_id"])
        if bill is None:
            return json_error(404, "no such bill")
        return ok({"bill": bill.to_dict(), "channel": f"bill:{bill.id}"})
