"""Which follows an event concerns, and the deliveries to enqueue for it. Sans-I/O: events and follows in, planned
deliveries out; no database, no clock (events carry their time).

Events (each with a stable ``id`` — the archived event's, so publishing the same event twice plans the same rows —
and ``at``, Unix seconds):

* ``StageChanged`` — a bill moved stage: follows of the bill, of any of its topics, of any of its agencies;
* ``VoteResult`` — a vote on a bill, with counts: the same follows, linked to the moment of the vote;
* ``AgendaLive`` — an agenda item came up in a live sitting: its bill's (topics', agencies') follows get "being
  debated now" with the watch link at that moment; keyword follows whose search matches the item's title get an
  ``agenda.mention``;
* ``CaptionFinal`` — a live final caption: follows of each bill it names (the caller finds them with
  ``bills_mentioned``), keyword follows whose search matches it, and follows of its speaker;
* ``ClockDue`` — a Senate clock event of a bill (7 days left, deadline passed);
* ``SittingStarted`` — a sitting of a chamber began: ``sittings:<chamber>`` follows.

Rules: one planned delivery per follow per event (the first matching reason wins: the bill itself, then a topic,
then an agency); the outbox keeps exactly one row per (follow, event) besides. Alerts born of live talk (caption
mentions, a speaker speaking, an agenda title matching a keyword) carry a ``throttle_key`` (follow and sitting) and
``THROTTLE_S``: the outbox enqueues at most one per key per window, so a debate that keeps naming the bill sends one
alert every 15 minutes at most, not one per sentence. Keyword matching is ``archive.search``'s (``parse_query`` and
``score`` on the folded text), so an alert fires exactly when the saved search would find the text.

How it is meant to be wired: the driver (``alerts.delivery.Alerting``) asks the store for the active follows of
``exact_targets(event)`` and, when ``wants_keywords(event)``, the keyword follows; passes them to ``plan``; and
enqueues the result with the event id (in chunks of a few hundred rows, each one transaction). When that work is left
to the niced sender process, the event travels through the alerts database as JSON: ``event_to_json`` /
``event_from_json`` (every field of every event kind, nested bills, stages, dates and clock readings included).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from alerts import messages
from alerts.messages import Alert, BillRef
from archive.bill_stages import Stage
from archive.search import Query, QueryError, fold, occurrences, parse_query, score
from archive.senate_clock import ClockEvent, ClockReading

THROTTLE_S = 15 * 60.0
DEFAULT_TTL_S = 24 * 3600
LIVE_TTL_S = 2 * 3600  # "being debated now" is stale once the debate is over


@dataclass(frozen=True)
class BillInfo:
    """A bill as events carry it: what alerts say of it, and its topics and agencies (for those follows)."""

    ref: BillRef
    topics: tuple[str, ...] = ()
    agencies: tuple[str, ...] = ()

    def targets(self) -> list[str]:
        return [self.ref.subject, *(f"topic:{t}" for t in self.topics), *(f"agency:{a}" for a in self.agencies)]


@dataclass(frozen=True)
class StageChanged:
    id: str
    at: float
    bill: BillInfo
    from_stage: Stage | None
    to_stage: Stage
    on: date


@dataclass(frozen=True)
class VoteResult:
    id: str
    at: float
    bill: BillInfo
    motion: str
    yes: int
    no: int
    abstain: int
    not_voting: int
    passed: bool
    sitting_id: str
    offset_s: float


@dataclass(frozen=True)
class AgendaLive:
    id: str
    at: float
    sitting_id: str
    title: str
    offset_s: float
    bill: BillInfo | None = None


@dataclass(frozen=True)
class CaptionFinal:
    id: str
    at: float
    sitting_id: str
    text: str
    offset_s: float
    speaker_id: str | None = None
    speaker: str = ""
    bills: tuple[BillInfo, ...] = ()  # the bills the caption names (``bills_mentioned``)


@dataclass(frozen=True)
class ClockDue:
    id: str
    at: float
    bill: BillInfo
    reading: ClockReading
    event: ClockEvent


@dataclass(frozen=True)
class SittingStarted:
    id: str
    at: float
    sitting_id: str
    chamber: str
    title: str


Event = StageChanged | VoteResult | AgendaLive | CaptionFinal | ClockDue | SittingStarted
EVENT_KINDS: dict[str, type[Any]] = {
    c.__name__: c for c in (StageChanged, VoteResult, AgendaLive, CaptionFinal, ClockDue, SittingStarted)
}


class EventDecodeError(ValueError):
    """Stored event JSON that does not make an event (an unknown kind, a missing or mistyped field)."""


def _encode(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


def _decode(hint: Any, value: object) -> object:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]  # our events' unions are all ``X | None``
        return _decode(inner, value)
    if origin is tuple:
        if not isinstance(value, list):
            raise EventDecodeError(f"expected a list, got {value!r:.60}")
        return tuple(_decode(typing.get_args(hint)[0], v) for v in value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise EventDecodeError(f"expected an object for {hint.__name__}")
        hints = typing.get_type_hints(hint)
        try:
            return hint(**{f.name: _decode(hints[f.name], value[f.name]) for f in dataclasses.fields(hint)})
        except KeyError as exc:
            raise EventDecodeError(f"{hint.__name__} lacks {exc}") from None
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if hint is date:
        return date.fromisoformat(str(value))
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint in (str, int, bool) and type(value) is hint:
        return value
    raise EventDecodeError(f"expected {hint}, got {value!r:.60}")


def event_to_json(event: Event) -> str:
    """The event as JSON (its kind and every field), for ``event_from_json`` in another process."""
    return json.dumps({"kind": type(event).__name__, "event": _encode(event)}, ensure_ascii=False)


def event_from_json(text: str) -> Event:
    """The event ``event_to_json`` wrote; ``EventDecodeError`` when the text is not one."""
    try:
        data = json.loads(text)
        cls = EVENT_KINDS[data["kind"]]
        return typing.cast(Event, _decode(cls, data["event"]))
    except (KeyError, TypeError, ValueError) as exc:  # EventDecodeError is a ValueError
        raise EventDecodeError(str(exc)) from exc


@dataclass(frozen=True)
class FollowView:
    """What the matcher needs of an active follow: its target key (``bill:42``; a keyword's holds the folded
    query) and, for a keyword, the query as written."""

    id: str
    target: str
    endpoint_id: str
    channel: str
    keyword: str | None = None


@dataclass(frozen=True)
class Planned:
    """One delivery to enqueue. ``topic`` groups alerts that replace one another (push ``Topic``)."""

    follow_id: str
    endpoint_id: str
    channel: str
    event_id: str
    alert: Alert
    topic: str
    urgency: str = "normal"
    ttl_s: int = DEFAULT_TTL_S
    throttle_key: str | None = None
    throttle_s: float = 0.0
    occurred_at: float = field(default=0.0)


def exact_targets(event: Event) -> list[str]:
    """The target keys whose follows this event concerns directly (keywords aside)."""
    if isinstance(event, StageChanged | VoteResult | ClockDue):
        return event.bill.targets()
    if isinstance(event, AgendaLive):
        return event.bill.targets() if event.bill is not None else []
    if isinstance(event, CaptionFinal):
        out = [t for bill in event.bills for t in bill.targets()]
        if event.speaker_id:
            out.append(f"speaker:{event.speaker_id}")
        return list(dict.fromkeys(out))
    return [f"sittings:{event.chamber}"]


def wants_keywords(event: Event) -> bool:
    """Whether keyword follows may match: live text (captions and agenda titles) only."""
    return live_text(event) is not None


@functools.lru_cache(maxsize=4096)
def _query(text: str) -> Query | None:
    try:
        return parse_query(text)
    except QueryError:
        return None


def keyword_matches(keyword: str, text: str) -> bool:
    """Whether the saved search ``keyword`` finds ``text`` (``archive.search`` rules on the folded text)."""
    query = _query(keyword)
    return query is not None and score(query, fold(text)) is not None


def live_text(event: Event) -> str | None:
    """What keyword follows are matched against: a live final's words or a live agenda item's title; None for
    events that keywords do not concern."""
    if isinstance(event, CaptionFinal):
        return event.text
    if isinstance(event, AgendaLive):
        return event.title
    return None


def any_keyword_matches(keywords: Iterable[str], text: str) -> bool:
    """Whether any of the saved searches ``keywords`` finds ``text`` (the text folded once)."""
    folded = fold(text)
    return any((query := _query(k)) is not None and score(query, folded) is not None for k in keywords)


def bills_mentioned(text: str, bills: Iterable[BillInfo]) -> tuple[BillInfo, ...]:
    """The bills among ``bills`` whose short name occurs in ``text`` (folded, on cluster boundaries)."""
    folded = fold(text)
    out = []
    for bill in bills:
        name = fold(bill.ref.short_name)
        if name and next(iter(occurrences(folded, name)), None) is not None:
            out.append(bill)
    return tuple(out)


def _bill_alert(event: Event, bill: BillInfo) -> tuple[Alert, str, int]:
    ref = bill.ref
    if isinstance(event, StageChanged):
        return messages.stage_changed(ref, event.from_stage, event.to_stage, event.on), "normal", DEFAULT_TTL_S
    if isinstance(event, VoteResult):
        alert = messages.vote_result(
            ref,
            motion=event.motion,
            yes=event.yes,
            no=event.no,
            abstain=event.abstain,
            not_voting=event.not_voting,
            passed=event.passed,
            sitting_id=event.sitting_id,
            offset_s=event.offset_s,
        )
        return alert, "normal", DEFAULT_TTL_S
    if isinstance(event, AgendaLive):
        alert = messages.debating_now(
            ref, agenda_title=event.title, sitting_id=event.sitting_id, offset_s=event.offset_s
        )
        return alert, "high", LIVE_TTL_S
    if isinstance(event, ClockDue):
        return messages.senate_clock(ref, event.reading, event.event), "normal", DEFAULT_TTL_S
    assert isinstance(event, CaptionFinal)
    alert = messages.caption_mention(
        subject=ref.subject,
        matched=ref.short_name,
        text=event.text,
        sitting_id=event.sitting_id,
        offset_s=event.offset_s,
        speaker=event.speaker or None,
    )
    return alert, "normal", LIVE_TTL_S


def plan(event: Event, follows: Sequence[FollowView]) -> list[Planned]:
    """The deliveries ``event`` calls for among ``follows`` (active ones: exact targets and keywords)."""
    by_target: dict[str, list[FollowView]] = {}
    keywords: list[FollowView] = []
    for f in follows:
        if f.keyword is not None:
            keywords.append(f)
        else:
            by_target.setdefault(f.target, []).append(f)
    out: dict[str, Planned] = {}
    sitting = getattr(event, "sitting_id", None)

    def add(f: FollowView, alert: Alert, urgency: str, ttl: int, throttled: bool) -> None:
        if f.id in out:
            return
        out[f.id] = Planned(
            follow_id=f.id,
            endpoint_id=f.endpoint_id,
            channel=f.channel,
            event_id=event.id,
            alert=alert,
            topic=alert.subject,
            urgency=urgency,
            ttl_s=ttl,
            throttle_key=f"{f.id}|{sitting}" if throttled else None,
            throttle_s=THROTTLE_S if throttled else 0.0,
            occurred_at=event.at,
        )

    bills: tuple[BillInfo, ...] = ()
    if isinstance(event, StageChanged | VoteResult | ClockDue):
        bills = (event.bill,)
    elif isinstance(event, AgendaLive) and event.bill is not None:
        bills = (event.bill,)
    elif isinstance(event, CaptionFinal):
        bills = event.bills
    for bill in bills:
        alert, urgency, ttl = _bill_alert(event, bill)
        for target in bill.targets():
            for f in by_target.get(target, ()):
                add(f, alert, urgency, ttl, throttled=isinstance(event, CaptionFinal))

    if isinstance(event, CaptionFinal) and event.speaker_id:
        followers = by_target.get(f"speaker:{event.speaker_id}", ())
        if followers:
            alert = messages.speaker_speaking(
                speaker_id=event.speaker_id,
                speaker=event.speaker,
                text=event.text,
                sitting_id=event.sitting_id,
                offset_s=event.offset_s,
            )
            for f in followers:
                add(f, alert, "normal", LIVE_TTL_S, throttled=True)

    if isinstance(event, SittingStarted):
        alert = messages.sitting_started(chamber=event.chamber, title=event.title, sitting_id=event.sitting_id)
        for f in by_target.get(f"sittings:{event.chamber}", ()):
            add(f, alert, "high", LIVE_TTL_S, throttled=False)

    text = live_text(event)
    if text is not None and keywords:
        folded = fold(text)
        for f in keywords:
            assert f.keyword is not None
            query = _query(f.keyword)
            if f.id in out or query is None or score(query, folded) is None:
                continue
            if isinstance(event, CaptionFinal):
                alert = messages.caption_mention(
                    subject=f"keyword:{f.keyword}",
                    matched=query.include[0].text,
                    text=event.text,
                    sitting_id=event.sitting_id,
                    offset_s=event.offset_s,
                    speaker=event.speaker or None,
                )
            else:
                assert isinstance(event, AgendaLive)
                alert = messages.agenda_mention(
                    subject=f"keyword:{f.keyword}",
                    matched=query.include[0].text,
                    agenda_title=event.title,
                    sitting_id=event.sitting_id,
                    offset_s=event.offset_s,
                )
            add(f, alert, "normal", LIVE_TTL_S, throttled=True)
    return list(out.values())
