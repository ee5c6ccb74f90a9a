"""The follow API and the Atom feeds: ``POST /api/follows`` and its links, the VAPID key, ``/feeds/…``.

* ``POST /api/follows`` — ``alerts.follows`` validates, the store keeps it; 201 with the management token (and a
  webhook's secret) shown once. A body that breaks the documented shape is a 422 naming the field; the rest is
  refused for reasons no schema can state, never as a 422 (a fuzzer rightly reads that as "the document lied"): a
  bill not in the archive is a 404; a host that does not resolve to public addresses, a duplicate, or an email
  follow on a server without ``SMTP_URL`` (naming ``channel.type``) a 409. Not a 503: the server is working, it
  offers no email here, and a 5xx would say it failed. An email follow starts ``pending``
  and only the confirmation message is sent until its link comes back.
* ``GET /api/follows/confirm?token=`` — the email's confirmation link: activates the follow.
* ``GET /api/follows/unsubscribe?token=`` shows a page with one button; the button ``POST``s the same URL, which
  ends the follow. A GET never unsubscribes: mail scanners and link prefetchers open every link in a message.
  The ``POST`` is also what ``List-Unsubscribe-Post`` (RFC 8058) one-click sends.
* ``GET|DELETE /api/follows/{token}`` — the follow a management token (``mt_…``) names; DELETE ends it. Only a
  management token matches ``{token}``, so ``/api/follows/unsubscribe`` is not also a follow (its ``Allow`` would
  list ``DELETE``).
* ``GET /api/push/vapid`` — the public VAPID key the browser subscribes with.
* ``/feeds/bills.atom``, ``/feeds/bills/{id}.atom``, ``/feeds/speakers/{name}.atom``, ``/feeds/search.atom?q=`` —
  Atom (``alerts.atom``) read from the archive: stage changes and votes, a speaker's turns, matching captions,
  each with a tag URI made from the archived row (``bill/42/change/17``, ``vote/9``, ``segment/311``).

Tokens in links are checked against ``common.alert_schemas.TOKEN_REGEX``, the pattern the document gives: anything
else is a 400 naming ``token``. The confirmation and unsubscribe links answer success as a page to a browser and as
JSON to a client that asks for it (``Accept: application/json``; the unsubscribe ``POST`` answers JSON unless
``text/html`` is asked for, since one-click clients send no ``Accept``); the document lists both. Their errors are
JSON, as documented, whoever asks. Everything else is JSON or Atom. Pages carry no script or style of their own.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Match, Route
from starlette.types import Scope

from alerts import atom, messages
from alerts.follows import FollowError, TargetKind, check_shape, parse_follow_request, parse_target
from alerts.store_sqlite import AlertStore
from archive.bill_stages import Stage
from archive.models import Bill, BillFilters, StageChange, Vote
from archive.search import QUERY_REGEX, QueryError, SearchFilters
from archive.store import Store
from broadcast.envelope import ID_PATTERN
from common.alert_schemas import MANAGE_TOKEN_REGEX, TOKEN_REGEX, first_problem, fullmatch, search_feed_query
from common.http import JSONUnicodeResponse, json_error, read_body_capped

log = logging.getLogger(__name__)

# The cap of every JSON body (archive.validate): a follow needs under 4 KiB, but the 413 must not pre-empt the
# 422 of a body that breaks the schema by a field a little too long (2049 characters, each up to 12 bytes of JSON).
MAX_BODY_BYTES = 64 * 1024
_TOKEN = fullmatch(TOKEN_REGEX)
_MANAGE_TOKEN = fullmatch(MANAGE_TOKEN_REGEX)
FEED_YEAR = 2025  # the tag URIs' date: fixed, so that entry ids never change (RFC 4151)
ALL_BILLS_SCAN = 50  # bills read for /feeds/bills.atom (the most recently changed)
SPEAKER_SITTINGS = 20  # sittings read for a speaker's feed (the newest)


def _ok(payload: dict[str, Any], status: int = 200) -> Response:
    return JSONUnicodeResponse({"ok": True, **payload}, status_code=status)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _wants_page(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and not _wants_json(request)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A small page with no script: the confirmation and unsubscribe links open in a browser."""
    text = (
        '<!doctype html><html lang="th"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f'<title>{html.escape(title)} — Sapha</title><link rel="stylesheet" href="/static/app.css"></head>'
        '<body><main id="main" class="follow-page">'
        f'<h1 class="page-title">{html.escape(title)}</h1>{body}'
        '<p><a href="/">หน้าแรก · Home</a></p></main></body></html>'
    )
    return HTMLResponse(text, status_code=status, headers={"Cache-Control": "no-store"})


def _token(request: Request) -> str | None:
    """The link's token when it has the documented shape; None otherwise (a 400)."""
    token = request.query_params.get("token", "")
    return token if _TOKEN.fullmatch(token) else None


_BAD_TOKEN = "token must be the token from the link (1-200 of A-Z a-z 0-9 _ . -)"


class _ManageTokenRoute(Route):
    """A route whose ``{token}`` matches only a management token: ``/api/follows/unsubscribe`` and ``…/confirm``
    are then served by their own routes alone, and ``Allow`` (common.methods, from every matching route) lists
    exactly their methods."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and not _MANAGE_TOKEN.fullmatch(child["path_params"]["token"]):
            return Match.NONE, {}
        return match, child


class AlertsAPI:
    """The routes above. ``open(store, wake)`` once the alerts store is open (in the lifespan)."""

    def __init__(
        self,
        archive: Store,
        *,
        base_url: str,
        vapid_key: Callable[[], str],
        smtp: bool,
        allow_private: bool,
    ) -> None:
        self.archive = archive
        self.base_url = base_url.rstrip("/")
        self.vapid_key = vapid_key
        self.smtp = smtp
        self.allow_private = allow_private
        self.authority = urlsplit(self.base_url).hostname or "localhost"
        self._store: AlertStore | None = None
        self._wake: Callable[[], None] = lambda: None

    def open(self, store: AlertStore, wake: Callable[[], None] | None = None) -> None:
        self._store = store
        self._wake = wake or (lambda: None)

    @property
    def store(self) -> AlertStore:
        assert self._store is not None, "AlertsAPI.open() first"
        return self._store

    def routes(self) -> list[Route]:
        return [
            Route("/api/follows", self.create, methods=["POST"]),
            Route("/api/follows/confirm", self.confirm, methods=["GET"]),
            Route("/api/follows/unsubscribe", self.unsubscribe_page, methods=["GET"]),
            Route("/api/follows/unsubscribe", self.unsubscribe, methods=["POST"]),
            _ManageTokenRoute("/api/follows/{token}", self.get_follow, methods=["GET"]),
            _ManageTokenRoute("/api/follows/{token}", self.delete_follow, methods=["DELETE"]),
            Route("/api/push/vapid", self.vapid, methods=["GET"]),
            Route("/feeds/bills.atom", self.all_bills_feed, methods=["GET"]),
            Route("/feeds/bills/{bill_id}.atom", self.bill_feed, methods=["GET"]),
            Route("/feeds/speakers/{name}.atom", self.speaker_feed, methods=["GET"]),
            Route("/feeds/search.atom", self.search_feed, methods=["GET"]),
        ]

    # -- follows ----------------------------------------------------------------------------------------------

    def _links(self, token: str) -> dict[str, str]:
        t = quote(token, safe="")
        return {
            "manage": f"{self.base_url}/api/follows/{t}",
            "unsubscribe": f"{self.base_url}/api/follows/unsubscribe?token={t}",
        }

    def _feed_for(self, kind: TargetKind, value: str) -> str | None:
        v = quote(value, safe="")
        if kind is TargetKind.BILL:
            return f"{self.base_url}/feeds/bills/{v}.atom"
        if kind is TargetKind.KEYWORD:
            return f"{self.base_url}/feeds/search.atom?q={v}"
        if kind is TargetKind.SPEAKER:
            return f"{self.base_url}/feeds/speakers/{v}.atom"
        return None

    async def create(self, request: Request) -> Response:
        raw = await read_body_capped(request, MAX_BODY_BYTES)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return json_error(422, "the body must be JSON", field="body")
        try:
            check_shape(body)  # 422: what the document calls invalid; every later refusal is not a 422
            # The target first: an unknown bill is a 404 before any webhook host is looked up.
            target = parse_target(body.get("target"))
            if target.kind is TargetKind.BILL and await self.archive.get_bill(target.value) is None:
                return json_error(404, f"no bill {target.value!r}", field="target.value")
            if body["channel"]["type"] == "email" and not self.smtp:
                return json_error(
                    409, "email alerts are not configured on this server (no SMTP_URL)", field="channel.type"
                )
            follow = await parse_follow_request(body, allow_private=self.allow_private)
        except FollowError as err:
            return json_error(err.status, str(err), field=err.field)
        try:
            created = await self.store.create_follow(follow, now=time.time())
        except FollowError as err:
            return json_error(err.status, str(err), field=err.field)
        if created.state == "pending":
            self._wake()  # the confirmation message
        public = created.public()
        out = {
            "follow": {k: public[k] for k in ("id", "target", "channel", "state")},
            "token": created.token,
            **self._links(created.token),
            "feed": self._feed_for(created.target.kind, created.target.value),
        }
        if created.secret is not None:
            out["secret"] = created.secret
        return _ok(out, 201)

    async def confirm(self, request: Request) -> Response:
        token = _token(request)
        if token is None:
            return json_error(400, _BAD_TOKEN, field="token")
        follow_id = await self.store.confirm_email(token, now=time.time())
        if follow_id is None:
            error = "this confirmation link is unknown, already used or expired (48 hours)"
            return json_error(404, error, field="token")
        if _wants_json(request):
            return _ok({"id": follow_id, "state": "active"})
        return _page("ยืนยันการติดตามแล้ว · Confirmed", "<p>ต่อไปนี้การแจ้งเตือนจะส่งมาที่อีเมลนี้ · Alerts will now come here.</p>")

    async def unsubscribe_page(self, request: Request) -> Response:
        token = _token(request)
        if token is None:
            return json_error(400, _BAD_TOKEN, field="token")
        action = f"/api/follows/unsubscribe?token={quote(token, safe='')}"
        if _wants_json(request):
            return _ok({"unsubscribe": action, "method": "POST"})
        form = (
            f'<form method="post" action="{html.escape(action)}">'
            "<p>กดปุ่มเพื่อเลิกรับการแจ้งเตือนนี้ · Press the button to stop these alerts.</p>"
            '<button type="submit" class="btn">เลิกติดตาม · Unsubscribe</button></form>'
        )
        return _page("เลิกติดตาม · Unsubscribe", form)

    async def unsubscribe(self, request: Request) -> Response:
        token = _token(request)
        if token is None:
            return json_error(400, _BAD_TOKEN, field="token")
        follow_id = await self.store.unsubscribe(token)
        if follow_id is None:
            return json_error(404, "this unsubscribe link is unknown", field="token")
        if _wants_page(request):
            return _page(
                "เลิกติดตามแล้ว · Unsubscribed", "<p>จะไม่มีการแจ้งเตือนนี้อีก · You will get no more of these alerts.</p>"
            )
        return _ok({"id": follow_id, "state": "unsubscribed"})

    async def _by_token(self, request: Request) -> dict[str, Any] | None:
        return await self.store.follow_by_token(request.path_params["token"])  # shaped by _ManageTokenRoute

    @staticmethod
    def _follow_out(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": row["id"],
            "target": {"kind": row["target_kind"], "value": row["target_value"]},
            "channel": row["channel"],
            "state": row["state"],
        }

    async def get_follow(self, request: Request) -> Response:
        row = await self._by_token(request)
        if row is None:
            return json_error(404, "no follow has this token", field="token")
        return _ok({"follow": self._follow_out(row)})

    async def delete_follow(self, request: Request) -> Response:
        row = await self._by_token(request)
        if row is None:
            return json_error(404, "no follow has this token", field="token")
        await self.store.unsubscribe(request.path_params["token"])
        return _ok({"id": row["id"], "state": "unsubscribed"})

    async def vapid(self, request: Request) -> Response:
        return _ok({"key": self.vapid_key()}, 200)

    # -- Atom ---------------------------------------------------------------------------------------------------

    def _atom(self, spec: atom.FeedSpec, entries: list[atom.FeedEntry]) -> Response:
        body = atom.render(
            spec, entries, base_url=self.base_url, authority=self.authority, year=FEED_YEAR, now=datetime.now(UTC)
        )
        return Response(body, media_type=atom.ATOM_MEDIA_TYPE)

    async def _bill_entries(self, bill: Bill) -> list[atom.FeedEntry]:
        ref = messages.BillRef(bill.id, bill.short_name or bill.title, bill.title)
        out: list[atom.FeedEntry] = []
        for change in await self.archive.bill_stages(bill.id):
            out.append(_change_entry(ref, change))
        record = await self.archive.bill_record(bill.id, limit=1)
        if record is not None:
            starts = {s.id: s.started_at for s in record.sittings}
            out += [_vote_entry(ref, v, starts.get(v.sitting_id)) for v in record.votes]
        return out

    async def bill_feed(self, request: Request) -> Response:
        bill_id = request.path_params["bill_id"]
        bill = await self.archive.get_bill(bill_id) if re.fullmatch(ID_PATTERN, bill_id) else None
        if bill is None:
            return json_error(404, f"no bill {bill_id!r}", field="bill_id")
        spec = atom.FeedSpec(
            f"feeds/bill/{bill.id}",
            f"ความคืบหน้า: {bill.short_name or bill.title}",
            f"/feeds/bills/{quote(bill.id)}.atom",
            f"/bills/{quote(bill.id)}",
        )
        return self._atom(spec, await self._bill_entries(bill))

    async def all_bills_feed(self, request: Request) -> Response:
        bills, _ = await self.archive.find_bills(BillFilters(), limit=ALL_BILLS_SCAN)
        entries: list[atom.FeedEntry] = []
        for bill in bills:
            entries += await self._bill_entries(bill)
        return self._atom(atom.FeedSpec("feeds/bills", "ความคืบหน้าร่างกฎหมายทั้งหมด", "/feeds/bills.atom", "/"), entries)

    async def speaker_feed(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not name.strip() or len(name) > 300:
            return json_error(404, "no such speaker", field="name")
        entries: list[atom.FeedEntry] = []
        for sitting in await self.archive.list_sittings(limit=SPEAKER_SITTINGS):
            for turn in await self.archive.speakers(sitting.id):
                if turn.name != name:
                    continue
                at = _parse(turn.started_at)
                t = turn.media_ms / 1000 if turn.media_ms is not None else _since(sitting.started_at, at)
                entries.append(
                    atom.FeedEntry(
                        f"speaker-turn/{turn.id}",
                        f"{turn.name} อภิปราย: {sitting.title}",
                        f"{turn.name}{' (' + turn.role + ')' if turn.role else ''} — {sitting.title}",
                        messages.watch_link(sitting.id, t),
                        at,
                    )
                )
        spec = atom.FeedSpec(
            f"feeds/speaker/{quote(name, safe='')}",
            f"คำอภิปรายของ {name}",
            f"/feeds/speakers/{quote(name, safe='')}.atom",
            f"/search?q={quote(name, safe='')}",
        )
        return self._atom(spec, entries)

    async def search_feed(self, request: Request) -> Response:
        q = request.query_params.get("q", "")
        problem = first_problem(search_feed_query(QUERY_REGEX), {"q": q})
        if problem is not None:
            return json_error(400, problem[1], field=problem[0])
        try:
            page = await self.archive.search(q, SearchFilters(), limit=atom.MAX_ENTRIES)
        except QueryError as err:
            return json_error(400, str(err), field="q")
        entries = []
        for hit in page.hits:
            text = "".join(span.text for span in hit.snippet)
            entries.append(
                atom.FeedEntry(
                    f"segment/{hit.segment_id}",
                    f"“{messages.plain(q, 80)}” — {hit.sitting_id}",
                    f"{hit.speaker + ': ' if hit.speaker else ''}{text}",
                    messages.watch_link(hit.sitting_id, hit.start_ms / 1000),
                    datetime.fromisoformat(hit.day).replace(tzinfo=UTC) if len(hit.day) == 10 else datetime.now(UTC),
                )
            )
        spec = atom.FeedSpec(
            f"feeds/keyword/{quote(q, safe='')}",
            f"คำค้น: {q}",
            f"/feeds/search.atom?q={quote(q, safe='')}",
            f"/search?q={quote(q, safe='')}",
        )
        return self._atom(spec, entries)


def _parse(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)


def _since(started: str | None, at: datetime) -> float:
    return max(0.0, (at - _parse(started)).total_seconds()) if started else 0.0


def _change_entry(ref: messages.BillRef, change: StageChange) -> atom.FeedEntry:
    before = Stage(change.from_stage) if change.from_stage in set(Stage) else None
    alert = messages.stage_changed(ref, before, Stage(change.stage), date.fromisoformat(change.on))
    return atom.entry_from_alert(alert, f"bill/{ref.id}/change/{change.id}", _parse(change.recorded_at))


def _vote_entry(ref: messages.BillRef, vote: Vote, started: str | None) -> atom.FeedEntry:
    at = _parse(vote.recorded_at)
    alert = messages.vote_result(
        ref,
        motion=vote.motion,
        yes=vote.yes,
        no=vote.no,
        abstain=vote.abstain,
        not_voting=vote.absent,
        passed=vote.result == "passed",
        sitting_id=vote.sitting_id,
        offset_s=_since(started, at),
    )
    return atom.entry_from_alert(alert, f"vote/{vote.id}", at)
