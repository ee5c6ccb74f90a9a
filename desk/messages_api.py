"""The public's messages over HTTP: the sender's form, status page, export and erasure; the moderators' triage.

``MessagesAPI(authorise)`` serves the routes in ``routes()``; the server's lifespan ``open``s it with a
``MessageStore`` and an ``AttachmentStore`` (``contact_keys`` gives the store its keyring, generating one on first
start), runs ``run_retention`` daily, and installs ``RedactCodes`` on the access log.

The sender (no account; the tracking code is the credential):

* ``POST /api/messages`` — JSON, or ``multipart/form-data`` with up to ``MAX_FILES`` ``attachments``; the body is
  capped before it is parsed (413), then ``desk.messages``'s order: fields (400 naming each), the honeypot (a
  202 exactly like success, nothing stored), per-address and per-contact buckets (429 + ``Retry-After``), the
  files checked from their bytes (413/415), the store (a duplicate within a day is 409: the sender learns that
  their first message went in, and a script resending one text gets nothing new). 202 gives the code once.
* ``GET /api/messages/{code}``, ``GET /api/messages/{code}/export``, ``DELETE /api/messages/{code}`` — status,
  PDPA export (contact data included: the code holder gave it) and erasure. Each first spends a per-address
  lookup token (429), malformed or unknown codes alike, so 80-bit codes cannot be walked.
* ``GET /api/suggestions`` — answered suggestions a moderator published, anonymised.

Moderators (``authorise(request, permission)``: the staff session or an API token, ``desk/api.py``) under
``/api/staff/messages``: list, read, open the contact data (audited), move the status (assign, forward,
answer, spam, close), publish, and download attachments (``Content-Disposition: attachment``, nosniff, a
sandboxing CSP). Everything a sender wrote goes out as JSON strings, never as markup.

Notices: each status change of a message whose sender gave an email, or subscribed a browser on the status page
(``POST /api/messages/{code}/push``: a lookup token spent, the body capped at ``PUSH_JSON_LIMIT``, the shape
checked as ``/openapi.json`` says (422 naming the field), the code (404, nothing stored), then the curve and the
URL policy (``check_push``, given at wiring: 409 naming the field); a message whose contact data retention erased
takes none (409 naming ``subscription``, nothing stored); stored sealed like the contact) is written to
the store's outbox (``desk_message_notices``) in the change's own transaction, and ``on_notice`` wakes the sender
(``alerts/message_notices.py``, wired by sapha/services.py): the moderator's request never waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message as AsgiMessage

from common.alert_schemas import PushSubscriptionIn
from common.desk_schemas import MessageMultipart
from common.http import JSONUnicodeResponse, json_error, read_body_capped
from desk.accounts import Principal
from desk.accounts_sqlite import Forbidden, NotFound
from desk.attachments import MAX_FILES, MAX_TOTAL_BYTES, AttachmentStore, Refused, check_all, download_headers
from desk.messages import (
    KINDS,
    STATUSES,
    InvalidMessage,
    InvalidTransition,
    SubmissionLimits,
    canonical_code,
    new_tracking_code,
    validate_submission,
)
from desk.messages_sqlite import ContactErased, Duplicate, MessageStore, PushTarget
from desk.ratelimit import retry_after_header
from desk.sealing import Keyring, new_setting_entry

Authorise = Callable[[Request, str | None], Awaitable["Principal | Response"]]
StaffHandler = Callable[[Request, Principal], Awaitable[Response]]
CheckPush = Callable[[object], Awaitable[PushTarget]]

JSON_LIMIT = 64 * 1024
STAFF_JSON_LIMIT = 32 * 1024
# A browser's subscription is an endpoint URL (at most 2 KiB here) and two short keys.
PUSH_JSON_LIMIT = 4 * 1024
# The files' own caps plus room for the text fields and multipart framing.
FORM_LIMIT = MAX_TOTAL_BYTES + 256 * 1024
FIELD_PART_LIMIT = 128 * 1024
MAX_FIELDS = 20
DAY_S = 86_400.0
_MESSAGE_ID = re.compile(r"[0-9a-f]{16}")
_CODE_IN_PATH = re.compile(r"(/api/messages/|/write/status/)[^/?\s]+")
NO_STORE = {"Cache-Control": "no-store"}
# Retention erased the contact data of this message (PDPA); a push subscription would be new contact data for it.
ERASED_NO_PUSH = (
    "ข้อมูลติดต่อของข้อความนี้ถูกลบตามระยะเวลาการเก็บรักษาแล้ว จึงรับการแจ้งเตือนไม่ได้ ยังดูสถานะได้ที่หน้านี้"
    " / This message's contact details were erased after the retention period, so it can no longer take"
    " notifications; its status is still shown on this page."
)
# The form's fields as /openapi.json names them: anything else is refused, so the document is the whole truth.
FORM_FIELDS = frozenset(MessageMultipart.model_fields) - {"attachments"}

log = logging.getLogger("sapha.messages")


class _Refused(Exception):
    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def _ok(payload: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONUnicodeResponse({"ok": True, **payload}, status_code=status, headers=dict(headers or {}))


def _too_many(wait: float, what: str) -> JSONResponse:
    answer = json_error(
        429, f"too many {what} from this address; try again later", retry_after=int(retry_after_header(wait))
    )
    answer.headers["Retry-After"] = retry_after_header(wait)
    return answer


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _limit(raw: str) -> int | None:
    """A page size from the query: 1..100, else None."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or not 1 <= int(raw) <= 100:
        return None
    return int(raw)


def links(code: str) -> dict[str, str]:
    return {"status_url": f"/write/status/{code}", "api_url": f"/api/messages/{code}"}


def contact_keys(setting: str, path: Path) -> Keyring:
    """The keyring from ``DESK_CONTACT_KEYS``, else from ``path``, created there (mode 0600) on first start.

    The generated key is never printed or logged: it lives only in the file, which must be kept (and backed up
    apart from the database) or the sealed contact data cannot be opened again.
    """
    if setting.strip():
        return Keyring.from_setting(setting)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(new_setting_entry() + "\n")
                f.flush()
                os.fsync(f.fileno())
            # Two processes starting together: the second's link fails and it reads the first one's key.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return Keyring.from_setting(path.read_text().strip())


async def run_retention(messages: MessageStore, every_s: float = DAY_S, batch: int = 1000) -> None:
    """Erase expired contact data now and every ``every_s``; a full batch goes round again at once."""
    while True:
        try:
            while await asyncio.to_thread(messages.retention, batch=batch) == batch:
                pass
        except Exception:
            log.exception("the messages retention job failed; it runs again in %s s", every_s)
        await asyncio.sleep(every_s)


class RedactCodes(logging.Filter):
    """Drops tracking codes from uvicorn's access log lines: a code in a log would open its sender's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], _CODE_IN_PATH.sub(r"\1…", args[2]), *args[3:])
        return True


class MessagesAPI:
    """The routes over one ``MessageStore`` and ``AttachmentStore``, given by ``open`` (the server's lifespan)."""

    def __init__(self, authorise: Authorise, *, limits: SubmissionLimits | None = None) -> None:
        self._authorise = authorise
        # Replaceable (tests, the benchmark): handlers read it on every request.
        self.limits = limits or SubmissionLimits(clock=time.monotonic)
        self._messages: MessageStore | None = None
        self._attachments: AttachmentStore | None = None
        # Given at wiring (desk may not import alerts): the subscription check, and the notice sender's wake-up.
        self.check_push: CheckPush | None = None
        self.on_notice: Callable[[], None] | None = None

    def open(self, messages: MessageStore, attachments: AttachmentStore) -> None:
        self._messages, self._attachments = messages, attachments

    @property
    def messages(self) -> MessageStore:
        if self._messages is None:
            raise RuntimeError("the message store is not open (the app's lifespan opens it)")
        return self._messages

    @property
    def attachments(self) -> AttachmentStore:
        if self._attachments is None:
            raise RuntimeError("the attachment store is not open (the app's lifespan opens it)")
        return self._attachments

    # ---- the sender ------------------------------------------------------------------------------------------

    async def _fields(self, request: Request) -> tuple[dict[str, Any], list[bytes]]:
        """The form's fields and the attachments' bytes, from JSON, multipart or urlencoded; bodies capped."""
        media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media == "application/json":
            raw = await read_body_capped(request, JSON_LIMIT)
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise _Refused(400, "body", "must be valid JSON") from None
            if not isinstance(data, dict):
                raise _Refused(400, "body", "must be a JSON object")
            return data, []
        if media not in ("multipart/form-data", "application/x-www-form-urlencoded"):
            raise _Refused(415, "body", "send application/json, multipart/form-data or a urlencoded form")
        raw = await read_body_capped(request, FORM_LIMIT)
        sent = False

        async def replay() -> AsgiMessage:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        try:
            # A second Request over the capped bytes: Starlette's parser then never reads the socket itself.
            form = await Request(request.scope, replay).form(
                max_files=2 * MAX_FILES, max_fields=MAX_FIELDS, max_part_size=FIELD_PART_LIMIT
            )
        except HTTPException as exc:
            raise _Refused(400, "body", f"the form could not be read: {exc.detail}") from None
        fields: dict[str, Any] = {}
        files: list[bytes] = []
        try:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if name != "attachments":
                        raise _Refused(400, name, "must be text, not a file")
                    data = await value.read()
                    # A browser sends an empty, nameless part for a file input left empty.
                    if data or value.filename:
                        files.append(data)
                elif name == "attachments":
                    if value:  # an empty text part is no file at all, like an empty file input
                        raise _Refused(400, name, "must be files")
                elif name in fields:
                    raise _Refused(400, name, "was given more than once")
                else:
                    fields[name] = value
        finally:
            await form.close()
        return fields, files

    async def submit(self, request: Request) -> Response:
        try:
            fields, files = await self._fields(request)
            unknown = next((str(name) for name in fields if name not in FORM_FIELDS), None)
            if unknown is not None:
                raise _Refused(400, unknown[:40], f"unknown field; allowed: {', '.join(sorted(FORM_FIELDS))}")
            submission = validate_submission(fields)
        except _Refused as exc:
            return json_error(exc.status, exc.message, field=exc.field)
        except InvalidMessage as exc:
            first = next(iter(exc.fields))
            return json_error(400, "some fields need fixing", field=first, fields=exc.fields)
        if submission.trapped:
            # The honeypot: the same answer as a success, so a bot learns nothing; nothing is stored.
            code = new_tracking_code()
            return _ok({"code": code, "status": "received", **links(code)}, 202, NO_STORE)
        wait = self.limits.admit(_client_ip(request), submission.contact)
        if wait > 0:
            return _too_many(wait, "messages")
        try:
            checked = await asyncio.to_thread(check_all, files)
        except Refused as exc:
            return json_error(exc.status, str(exc), field="attachments")
        saved = []
        try:
            for item in checked:
                saved.append(await asyncio.to_thread(self.attachments.save, item))
            receipt = await asyncio.to_thread(self.messages.submit, submission, saved)
        except BaseException as exc:
            for meta in saved:
                await asyncio.to_thread(self.attachments.delete, meta.name)
            if isinstance(exc, Duplicate):
                return json_error(409, str(exc), duplicate=True)
            raise
        answer = {"code": receipt.code, "status": receipt.status, **links(receipt.code)}
        return _ok(answer, 202, NO_STORE)

    async def _code(self, request: Request) -> str | Response:
        """The path's tracking code, after spending a lookup token (429 when none is left)."""
        wait = self.limits.lookup(_client_ip(request))
        if wait > 0:
            return _too_many(wait, "tracking code lookups")
        code = canonical_code(request.path_params.get("code", ""))
        if code is None:
            return json_error(404, "no message has this tracking code")
        return code

    async def status(self, request: Request) -> Response:
        code = await self._code(request)
        if isinstance(code, Response):
            return code
        found = await asyncio.to_thread(self.messages.status, code)
        if found is None:
            return json_error(404, "no message has this tracking code")
        return _ok({"message": found, "export_url": f"/api/messages/{code}/export"}, headers=NO_STORE)

    async def export(self, request: Request) -> Response:
        code = await self._code(request)
        if isinstance(code, Response):
            return code
        found = await asyncio.to_thread(self.messages.export, code)
        if found is None:
            return json_error(404, "no message has this tracking code")
        headers = {**NO_STORE, "Content-Disposition": 'attachment; filename="sapha-message.json"'}
        return _ok({"message": found}, headers=headers)

    async def erase(self, request: Request) -> Response:
        code = await self._code(request)
        if isinstance(code, Response):
            return code
        names = await asyncio.to_thread(self.messages.erase, code)
        if names is None:
            return json_error(404, "no message has this tracking code")
        for name in names:
            await asyncio.to_thread(self.attachments.delete, name)
        return _ok({"erased": True}, headers=NO_STORE)

    async def subscribe_push(self, request: Request) -> Response:
        """Tie this browser's push subscription to the message, for notices of its status changes."""
        code = await self._code(request)
        if isinstance(code, Response):
            return code
        raw = await read_body_capped(request, PUSH_JSON_LIMIT)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return json_error(422, "must be valid JSON", field="body")
        if not isinstance(body, dict):
            return json_error(422, "must be a JSON object with a subscription", field="body")
        unknown = next((str(k)[:40] for k in body if k != "subscription"), None)
        if unknown is not None:
            return json_error(422, "unknown field; allowed: subscription", field=unknown)
        if "subscription" not in body:
            return json_error(422, "is required: the browser's PushSubscription.toJSON()", field="subscription")
        try:
            PushSubscriptionIn.model_validate(body["subscription"], strict=True)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(["subscription", *(str(part) for part in error["loc"])])
            return json_error(422, f"{field}: {error['msg']}", field=field)
        if await asyncio.to_thread(self.messages.push_count, code) is None:
            return json_error(404, "no message has this tracking code")
        if self.check_push is None:
            return json_error(503, "push notices are not available on this server")
        try:
            target = await self.check_push(body["subscription"])
        except InvalidMessage as exc:
            name = next(iter(exc.fields))
            return json_error(409, exc.fields[name], field=name)
        try:
            added = await asyncio.to_thread(self.messages.subscribe_push, code, target)
        except ContactErased:
            return json_error(409, ERASED_NO_PUSH, field="subscription")
        if added is None:  # erased between the two calls
            return json_error(404, "no message has this tracking code")
        # 201 either way: the browser is subscribed now; ``new`` says whether it was before.
        return _ok({"subscribed": True, "new": added}, 201, NO_STORE)

    async def suggestions(self, request: Request) -> Response:
        before = request.query_params.get("before")
        if before is not None and not re.fullmatch(r"[0-9TZ:.-]{10,30}", before):
            return json_error(400, "must be the published_at of the last suggestion seen", field="before")
        limit = _limit(request.query_params.get("limit", "20"))
        if limit is None:
            return json_error(400, "must be a whole number from 1 to 100", field="limit")
        found = await asyncio.to_thread(self.messages.published, before=before, limit=limit)
        more = found[-1]["published_at"] if len(found) == limit else None
        return _ok({"suggestions": found, "next_before": more})

    # ---- moderators ------------------------------------------------------------------------------------------

    def guarded(self, permission: str, handler: StaffHandler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            principal = await self._authorise(request, permission)
            if isinstance(principal, Response):
                return principal
            try:
                return await handler(request, principal)
            except _Refused as exc:
                return json_error(exc.status, exc.message, field=exc.field)
            except InvalidMessage as exc:
                first = next(iter(exc.fields))
                return json_error(422, exc.fields[first], field=first, fields=exc.fields)
            except InvalidTransition as exc:
                return json_error(409, str(exc), field="status")
            except Forbidden as exc:
                return json_error(403, str(exc))
            except NotFound:
                return json_error(404, "no such message")

        endpoint.__name__ = handler.__name__
        return endpoint

    @staticmethod
    def _id(request: Request) -> str:
        message_id = request.path_params.get("message_id", "")
        if not _MESSAGE_ID.fullmatch(message_id):
            raise NotFound(message_id)
        return str(message_id)

    @staticmethod
    async def _body(request: Request, allowed: Mapping[str, tuple[type, ...]]) -> dict[str, Any]:
        raw = await read_body_capped(request, STAFF_JSON_LIMIT)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _Refused(422, "body", "must be valid JSON") from None
        if not isinstance(body, dict):
            raise _Refused(422, "body", "must be a JSON object")
        for name, value in body.items():
            if name not in allowed:
                raise _Refused(422, str(name)[:40], f"unknown field; allowed: {', '.join(allowed)}")
            if not isinstance(value, allowed[name]):
                raise _Refused(422, name, "has the wrong type")
        return body

    async def list_messages(self, request: Request, principal: Principal) -> Response:
        status = request.query_params.get("status")
        if status is not None and status not in STATUSES:
            return json_error(400, f"must be one of {', '.join(STATUSES)}", field="status")
        kind = request.query_params.get("kind")
        if kind is not None and kind not in KINDS:
            return json_error(400, f"must be one of {', '.join(KINDS)}", field="kind")
        before = request.query_params.get("before")
        if before is not None and not _MESSAGE_ID.fullmatch(before):
            return json_error(400, "must be a message id", field="before")
        limit = _limit(request.query_params.get("limit", "50"))
        if limit is None:
            return json_error(400, "must be a whole number from 1 to 100", field="limit")
        found = await asyncio.to_thread(
            self.messages.list_messages, principal, status=status, kind=kind, before=before, limit=limit
        )
        more = found[-1].id if len(found) == limit else None
        return _ok({"messages": [m.to_json() for m in found], "next_before": more})

    async def get_message(self, request: Request, principal: Principal) -> Response:
        found = await asyncio.to_thread(self.messages.get, principal, self._id(request))
        return _ok({"message": found.to_json()})

    async def contact(self, request: Request, principal: Principal) -> Response:
        found = await asyncio.to_thread(self.messages.contact, principal, self._id(request))
        return _ok({"contact": None if found is None else found.to_json()}, headers=NO_STORE)

    async def set_status(self, request: Request, principal: Principal) -> Response:
        message_id = self._id(request)
        text = (str, type(None))
        body = await self._body(request, {"status": (str,), "note": text, "committee": text, "answer": text})
        if "status" not in body:
            raise _Refused(422, "status", "is required")
        found = await asyncio.to_thread(
            self.messages.transition,
            principal,
            message_id,
            body["status"],
            note=body.get("note"),
            committee=body.get("committee"),
            answer=body.get("answer"),
        )
        if self.on_notice is not None:
            self.on_notice()
        return _ok({"message": found.to_json()})

    async def assign(self, request: Request, principal: Principal) -> Response:
        message_id = self._id(request)
        body = await self._body(request, {"assigned_to": (str, type(None))})
        if "assigned_to" not in body:
            raise _Refused(422, "assigned_to", "is required (a username, or null to unassign)")
        found = await asyncio.to_thread(self.messages.assign, principal, message_id, body["assigned_to"])
        return _ok({"message": found.to_json()})

    async def publish(self, request: Request, principal: Principal) -> Response:
        message_id = self._id(request)
        body = await self._body(request, {"published": (bool,)})
        if "published" not in body:
            raise _Refused(422, "published", "is required (true or false)")
        found = await asyncio.to_thread(self.messages.publish, principal, message_id, body["published"])
        return _ok({"message": found.to_json()})

    async def attachment(self, request: Request, principal: Principal) -> Response:
        found = await asyncio.to_thread(self.messages.get, principal, self._id(request))
        name = request.path_params.get("name", "")
        meta = next((a for a in found.attachments if a.name == name), None)
        if meta is None:
            return json_error(404, "no such attachment")
        headers = download_headers(meta, stem=f"message-{found.id}-{meta.name[:8]}")
        return FileResponse(self.attachments.path(meta.name), headers=headers, media_type=meta.content_type)

    def routes(self) -> list[Route]:
        g = self.guarded
        base = "/api/staff/messages/{message_id}"
        return [
            Route("/api/messages", self.submit, methods=["POST"]),
            Route("/api/messages/{code}", self.status, methods=["GET"]),
            Route("/api/messages/{code}", self.erase, methods=["DELETE"]),
            Route("/api/messages/{code}/export", self.export, methods=["GET"]),
            Route("/api/messages/{code}/push", self.subscribe_push, methods=["POST"]),
            Route("/api/suggestions", self.suggestions, methods=["GET"]),
            Route("/api/staff/messages", g("message.read", self.list_messages), methods=["GET"]),
            Route(base, g("message.read", self.get_message), methods=["GET"]),
            Route(f"{base}/contact", g("message.contact.read", self.contact), methods=["GET"]),
            Route(f"{base}/status", g("message.triage", self.set_status), methods=["POST"]),
            Route(f"{base}/assign", g("message.triage", self.assign), methods=["POST"]),
            Route(f"{base}/publish", g("message.triage", self.publish), methods=["POST"]),
            Route(f"{base}/attachments/{{name}}", g("attachment.read", self.attachment), methods=["GET"]),
        ]
