"""Archived events into alerts: the relay's consumer that turns each published outbox entry into a matcher event and
hands it to ``Alerting.publish``.

The hook (``AlertFeed``) is called by ``archive.relay.Relay`` with every entry the broker took, *before* the entry is
marked sent (``Relay.on_published``). So the outbox rows of the alerts are written before the archive considers
the event handled: a process that dies in between publishes the entry again after its restart and calls the hook
again, and the alerts outbox's unique (follow, event) index makes that second call add nothing, because each alert
event's id is the archive outbox entry's ``key`` (fixed when the write was recorded). Nothing here imports into
``archive``: ``server.py`` sets ``recorder.relay.on_published = AlertFeed(...)``.

Which entries count (each archived write is announced once per channel; one copy is used):

* ``vote.result`` on ``bill:<id>`` — ``VoteResult`` with the counts, linked to the moment of the vote;
* ``agenda.item`` on ``sitting:<id>`` while the sitting is live — ``AgendaLive`` ("being debated now" for the bill's
  follows, ``agenda.mention`` for keywords), linked to the moment it came up;
* ``caption.final`` on ``sitting:<id>`` — ``CaptionFinal``: the bills its text names, keywords, the speaker;
* ``sitting.status`` to ``live`` — ``SittingStarted``, once per sitting whatever the operator re-sends;
* ``bill.status`` carrying a stage change (``from_stage``/``stage``, flat or under ``change``) — ``StageChanged``;
* ``bill.clock`` (``bill_id``, ``event``: ``seven_days_left`` | ``deadline_passed``, ``reading``) — ``ClockDue``.

Anything else (partials are never archived; corrections, speakers, a bill's details) is ignored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

from alerts.matcher import (
    AgendaLive,
    BillInfo,
    CaptionFinal,
    ClockDue,
    Event,
    SittingStarted,
    StageChanged,
    VoteResult,
    bills_mentioned,
)
from alerts.messages import BillRef
from archive.bill_stages import Stage
from archive.models import Bill, OutboxEntry, Sitting
from archive.senate_clock import ClockEvent, ClockReading, ClockState
from archive.store import Store
from broadcast import envelope as ev
from broadcast.envelope import Event as BusEvent

log = logging.getLogger(__name__)

BILLS_TTL_S = 10.0  # how long the list of bills (for captions that name one) is reused


def bill_info(bill: Bill) -> BillInfo:
    """What alerts need of an archived bill."""
    return BillInfo(BillRef(bill.id, bill.short_name or bill.title, bill.title), bill.topics, bill.agencies)


def _when(text: object, default: float) -> float:
    if not isinstance(text, str) or not text:
        return default
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default


def _offset(sitting: Sitting | None, wall: float) -> float:
    """Seconds into the sitting's recording at wall time ``wall`` (0 before it started)."""
    started = _when(sitting.started_at, wall) if sitting is not None else wall
    return max(0.0, wall - started)


class AlertFeed:
    """``await feed(entry, event)``: the ``Relay.on_published`` hook (module docstring)."""

    def __init__(
        self,
        store: Store,
        publish: Callable[[Event], Awaitable[int]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.publish = publish
        self.clock = clock
        self._bills: tuple[float, tuple[BillInfo, ...]] | None = None

    async def __call__(self, entry: OutboxEntry, published: BusEvent | None = None) -> None:
        event = await self.translate(entry)
        if event is not None:
            await self.publish(event)

    async def _bill(self, bill_id: object) -> BillInfo | None:
        if not isinstance(bill_id, str):
            return None
        bill = await self.store.get_bill(bill_id)
        return None if bill is None else bill_info(bill)

    async def _all_bills(self) -> tuple[BillInfo, ...]:
        now = self.clock()
        if self._bills is None or now - self._bills[0] > BILLS_TTL_S:
            self._bills = (now, tuple(bill_info(b) for b in await self.store.list_bills()))
        return self._bills[1]

    async def translate(self, entry: OutboxEntry) -> Event | None:
        """The matcher event an archived entry stands for, or None when it alerts nobody."""
        kind, _, channel_id = entry.channel.partition(":")
        data: dict[str, Any] = entry.data
        now = self.clock()
        if entry.type == ev.VOTE_RESULT and kind == "bill":
            bill = await self._bill(channel_id)
            if bill is None:
                return None
            sitting = await self.store.get_sitting(str(data.get("sitting_id")))
            at = _when(data.get("recorded_at"), now)
            return VoteResult(
                id=entry.key,
                at=at,
                bill=bill,
                motion=str(data.get("motion", "")),
                yes=int(data.get("yes", 0)),
                no=int(data.get("no", 0)),
                abstain=int(data.get("abstain", 0)),
                not_voting=int(data.get("absent", 0)),
                passed=data.get("result") == "passed",
                sitting_id=str(data.get("sitting_id")),
                offset_s=_offset(sitting, at),
            )
        if entry.type == ev.AGENDA_ITEM and kind == "sitting":
            sitting = await self.store.get_sitting(channel_id)
            if sitting is None or sitting.status != "live":
                return None  # an agenda set up before the sitting is no "being debated now"
            at = _when(data.get("started_at"), now)
            media_ms = data.get("media_ms")
            offset = media_ms / 1000 if isinstance(media_ms, int) else _offset(sitting, at)
            return AgendaLive(
                id=entry.key,
                at=at,
                sitting_id=channel_id,
                title=str(data.get("title", "")),
                offset_s=offset,
                bill=await self._bill(data.get("bill_id")),
            )
        if entry.type == ev.CAPTION_FINAL and kind == "sitting":
            text = str(data.get("text", ""))
            speaker = data.get("speaker")
            return CaptionFinal(
                id=entry.key,
                at=now,
                sitting_id=channel_id,
                text=text,
                offset_s=float(data.get("start", 0.0)),
                speaker_id=speaker if isinstance(speaker, str) and speaker else None,
                speaker=speaker if isinstance(speaker, str) else "",
                bills=bills_mentioned(text, await self._all_bills()),
            )
        if entry.type == ev.SITTING_STATUS and kind == "sitting" and data.get("status") == "live":
            return SittingStarted(
                id=f"sitting-started:{channel_id}",  # once per sitting, however often "live" is sent
                at=_when(data.get("started_at"), now),
                sitting_id=channel_id,
                chamber=str(data.get("chamber", "")),
                title=str(data.get("title", channel_id)),
            )
        if entry.type == ev.BILL_STATUS and kind == "bill":
            change = data.get("change") if isinstance(data.get("change"), dict) else data
            assert isinstance(change, dict)
            to = change.get("stage")
            if "from_stage" not in change or to not in set(Stage):
                return None  # a bill's details, not a stage change
            bill = await self._bill(channel_id)
            if bill is None:
                return None
            before = change.get("from_stage")
            try:
                on = date.fromisoformat(str(change.get("on")))
            except ValueError:
                on = datetime.fromtimestamp(now).date()
            return StageChanged(
                id=entry.key,
                at=_when(change.get("recorded_at"), now),
                bill=bill,
                from_stage=Stage(before) if before in set(Stage) else None,
                to_stage=Stage(to),
                on=on,
            )
        if entry.type == "bill.clock" and kind == "bill":
            if data.get("kind") == "changed":
                # An operator set an extension or a court pause: the clock's inputs moved, nothing is due yet.
                return None
            return await self._clock(entry, channel_id, data, now)
        return None

    async def _clock(self, entry: OutboxEntry, bill_id: str, data: dict[str, Any], now: float) -> Event | None:
        bill = await self._bill(bill_id)
        raw = data.get("reading")
        try:
            event = ClockEvent(str(data.get("event") or data.get("kind")))
            assert isinstance(raw, dict)
            reading = ClockReading(
                today=date.fromisoformat(raw["today"]),
                arrived_on=date.fromisoformat(raw["arrived_on"]),
                state=ClockState(raw["state"]),
                limit=int(raw["limit"]),
                extension_days=int(raw.get("extension_days", 0)),
                day=int(raw["day"]),
                days_left=int(raw["days_left"]),
                last_day=date.fromisoformat(raw["last_day"]) if raw.get("last_day") else None,
                deemed_approved_on=(
                    date.fromisoformat(raw["deemed_approved_on"]) if raw.get("deemed_approved_on") else None
                ),
                seven_days_left_on=(
                    date.fromisoformat(raw["seven_days_left_on"]) if raw.get("seven_days_left_on") else None
                ),
            )
        except (AssertionError, KeyError, TypeError, ValueError):
            log.warning("bill %s: a bill.clock event without a readable clock: %r", bill_id, data)
            return None
        if bill is None:
            return None
        return ClockDue(id=entry.key, at=now, bill=bill, reading=reading, event=event)
