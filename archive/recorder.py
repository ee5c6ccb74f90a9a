"""Record, then announce: the one path by which anything a viewer sees becomes an event.

Every write goes to the archive first, together with the events it announces (the outbox, one transaction), and
is published second, by the outbox relay (:mod:`archive.relay`). So an event a viewer saw as final is always in the
archive, even if the process dies right after publishing, and an event recorded while the broker is down is
published, in order, when it returns. The event's seq is written back to the row as the entry is marked sent, which
lets a journalist's link to a segment resolve to the exact event on the live channel.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from archive.bill_mentions import BillMatcher
from archive.models import AgendaItem, Announcement, Bill, Segment, Sitting, Speaker, Vote
from archive.relay import Relay
from archive.store import NotFound, Store
from broadcast import envelope as ev
from broadcast.envelope import Event
from broadcast.hub import Hub
from broadcast.metrics import Metrics
from common.thai import normalize

R = TypeVar("R")
log = logging.getLogger(__name__)


class Unpublished(Exception):
    """Recorded durably, but the broker did not take the event: the relay publishes it when the broker returns.

    ``kind`` names the record ("vote", "sitting", ...) and ``record`` is its JSON-ready form, so an operator can be
    told exactly what was kept.
    """

    def __init__(self, kind: str, record: dict[str, Any]) -> None:
        super().__init__(f"{kind} recorded; its event will be published when the broker is back")
        self.kind = kind
        self.record = record


@dataclass(slots=True)
class Current:
    """What captions of a sitting are filed under right now.

    Read from the store every time, never cached in the process: with several server processes an operator call
    may be handled by another process than the one running the feed, and the archive is what they share.
    """

    agenda_item: AgendaItem | None
    speaker: Speaker | None


class Recorder:
    """Writes to the archive and announces the writes; ``relay`` must be started for outages to heal by themselves.

    Operator-facing calls return ``(record, event)`` or raise :class:`Unpublished` when the record was kept but the
    broker is down. ``caption_final`` never raises for the broker: a feed must keep going, so it returns ``None``
    for the event instead.
    """

    def __init__(self, store: Store, hub: Hub, metrics: Metrics, *, relay: Relay | None = None) -> None:
        self.store = store
        self.hub = hub
        self.metrics = metrics
        self.relay = relay or Relay(store, self._publish)
        # The matcher of the bills last read, rebuilt only when the bills change (compiling it costs more than
        # reading them).
        self._matcher: tuple[tuple[tuple[str, str], ...], BillMatcher] | None = None

    async def _publish(self, channel: str, type: str, data: dict[str, Any]) -> Event:
        event = await self.hub.publish(channel, type, data)
        self.metrics.events_published.labels(type).inc()
        return event

    def _announcement(
        self, channel: str, type: str, data: dict[str, Any], target: tuple[str, int] | None = None
    ) -> Announcement:
        return Announcement(secrets.token_hex(12), self.relay.owner, channel, type, data, target)

    async def _sent(self, announced: list[Announcement]) -> Event | None:
        """Publish through the relay; the first announcement's event, or None if the broker did not take it."""
        if not announced:
            return None
        events = await self.relay.send([a.key for a in announced])
        return events.get(announced[0].key)

    async def _required(self, announced: list[Announcement], kind: str, record: dict[str, Any]) -> Event:
        event = await self._sent(announced)
        if event is None:
            raise Unpublished(kind, record)
        return event

    async def _sitting(self, sitting_id: str) -> Sitting:
        sitting = await self.store.get_sitting(sitting_id)
        if sitting is None:
            raise NotFound(f"no sitting {sitting_id!r}")
        return sitting

    async def current(self, sitting_id: str) -> Current:
        await self._sitting(sitting_id)
        return Current(await self.store.current_agenda_item(sitting_id), await self.store.current_speaker(sitting_id))

    async def create_sitting(
        self, id: str, title: str, chamber: str, scheduled_at: str | None = None
    ) -> tuple[Sitting, Event]:
        def announcements(sitting: Sitting) -> list[Announcement]:
            return [self._announcement(ev.sitting_channel(id), ev.SITTING_STATUS, _status_data(sitting))]

        announced, announce = self._collect(announcements)
        sitting = await self.store.create_sitting(id, title, chamber, scheduled_at, announce=announce)
        return sitting, await self._required(announced, "sitting", sitting.to_dict())

    async def set_status(self, sitting_id: str, status: str, reason: str | None = None) -> tuple[Sitting, Event]:
        def data(sitting: Sitting) -> dict[str, Any]:
            d = _status_data(sitting)
            if reason:
                d["reason"] = reason
            return d

        def announcements(sitting: Sitting) -> list[Announcement]:
            return [self._announcement(ev.sitting_channel(sitting_id), ev.SITTING_STATUS, data(sitting))]

        announced, announce = self._collect(announcements)
        sitting = await self.store.set_sitting_status(sitting_id, status, announce=announce)
        return sitting, await self._required(announced, "sitting", sitting.to_dict())

    async def set_agenda_item(
        self,
        sitting_id: str,
        title: str,
        bill_id: str | None = None,
        order: int | None = None,
        media_ms: int | None = None,
    ) -> tuple[AgendaItem, Event]:
        await self._sitting(sitting_id)
        if bill_id is not None and await self.store.get_bill(bill_id) is None:
            # The agenda often names a bill before anyone has entered it; its title is the best we know.
            await self.store.upsert_bill(bill_id, title, None)

        def announcements(item: AgendaItem) -> list[Announcement]:
            data = item.to_dict()
            out = [self._announcement(ev.sitting_channel(sitting_id), ev.AGENDA_ITEM, data)]
            if bill_id is not None:
                out.append(self._announcement(ev.bill_channel(bill_id), ev.AGENDA_ITEM, data))
            return out

        announced, announce = self._collect(announcements)
        item = await self.store.add_agenda_item(sitting_id, title, bill_id, order, media_ms, announce=announce)
        return item, await self._required(announced, "agenda_item", item.to_dict())

    async def set_speaker(
        self, sitting_id: str, name: str, role: str | None = None, media_ms: int | None = None
    ) -> tuple[Speaker, Event]:
        def announcements(speaker: Speaker) -> list[Announcement]:
            return [self._announcement(ev.sitting_channel(sitting_id), ev.SPEAKER, speaker.to_dict())]

        announced, announce = self._collect(announcements)
        speaker = await self.store.add_speaker(sitting_id, name, role, media_ms, announce=announce)
        return speaker, await self._required(announced, "speaker", speaker.to_dict())

    async def record_vote(
        self,
        sitting_id: str,
        motion: str,
        yes: int,
        no: int,
        abstain: int,
        absent: int,
        result: str,
        bill_id: str | None = None,
    ) -> tuple[Vote, Event]:
        cur = await self.current(sitting_id)
        if bill_id is None and cur.agenda_item is not None:
            bill_id = cur.agenda_item.bill_id
        agenda_id = cur.agenda_item.id if cur.agenda_item else None

        def announcements(vote: Vote) -> list[Announcement]:
            # The row's seq is the event's own, so the event data leaves it out rather than carry a stale null.
            data = {k: v for k, v in vote.to_dict().items() if k != "seq"}
            out = [self._announcement(ev.sitting_channel(sitting_id), ev.VOTE_RESULT, data, ("vote", vote.id))]
            if bill_id is not None:
                out.append(self._announcement(ev.bill_channel(bill_id), ev.VOTE_RESULT, data))
            return out

        announced, announce = self._collect(announcements)
        vote = await self.store.add_vote(
            sitting_id, motion, yes, no, abstain, absent, result, bill_id, agenda_id, announce=announce
        )
        event = await self._required(announced, "vote", vote.to_dict())
        return replace(vote, seq=event.seq), event

    async def caption_partial(
        self, sitting_id: str, segment_id: str, text: str, start: float, end: float
    ) -> Event | None:
        """Partials are not archived: they may change, and only finals are quotable. One the broker does not take
        is dropped (None): the next partial or the final supersedes it."""
        data = {"segment_id": segment_id, "text": normalize(text), "start": round(start, 3), "end": round(end, 3)}
        if self.relay.down:
            return None
        try:
            return await self._publish(ev.sitting_channel(sitting_id), ev.CAPTION_PARTIAL, data)
        except Exception:
            return None

    async def caption_final(
        self, sitting_id: str, segment_id: str, text: str, start: float, end: float
    ) -> tuple[Segment, Event | None]:
        """Archive a final and publish it; the event is None when the broker is down (the relay sends it later)."""
        cur = await self.current(sitting_id)

        def announcements(segment: Segment) -> list[Announcement]:
            data = {
                "segment_id": segment_id,
                "archive_id": segment.id,
                "text": segment.text,
                "start": round(start, 3),
                "end": round(end, 3),
                "agenda_item_id": segment.agenda_item_id,
                "speaker": cur.speaker.name if cur.speaker else None,
            }
            return [self._announcement(ev.sitting_channel(sitting_id), ev.CAPTION_FINAL, data, ("segment", segment.id))]

        announced, announce = self._collect(announcements)
        segment = await self.store.add_segment(
            sitting_id,
            round(start * 1000),
            round(end * 1000),
            text,
            cur.agenda_item.id if cur.agenda_item else None,
            cur.speaker.id if cur.speaker else None,
            utterance_id=segment_id,
            announce=announce,
        )
        event = await self._sent(announced)
        await self._link_bills(segment)
        return (segment if event is None else replace(segment, seq=event.seq)), event

    async def _bill_matcher(self) -> BillMatcher:
        bills = tuple((b.id, b.title) for b in await self.store.list_bills())
        if self._matcher is None or self._matcher[0] != bills:
            self._matcher = (bills, BillMatcher(bills))
        return self._matcher[1]

    async def _link_bills(self, segment: Segment) -> list[str]:
        """Link the segment to the bills its text names (archive/bill_mentions.py); returns their ids.

        Written after the segment (links are derived from its text, and a correction rewrites them); a failure is
        logged, never raised, so that a caption is not lost to its links.
        """
        try:
            bill_ids = (await self._bill_matcher()).bill_ids(segment.text)
            if bill_ids or segment.revision > 1:
                await self.store.link_bills(segment.id, bill_ids)
            return bill_ids
        except Exception as exc:
            log.warning("segment %d: could not link the bills it mentions: %s", segment.id, exc)
            return []

    async def correct_segment(self, segment_id: int, text: str, author: str = "operator") -> tuple[Segment, Event]:
        """Record ``text`` as the segment's next revision and announce ``caption.correction`` on its sitting."""

        def announcements(segment: Segment) -> list[Announcement]:
            data = {
                "archive_id": segment.id,
                "segment_id": segment.utterance_id,
                "revision": segment.revision,
                "text": segment.text,
                "start": segment.start_ms / 1000,
                "end": segment.end_ms / 1000,
                "author": author,
            }
            return [self._announcement(ev.sitting_channel(segment.sitting_id), ev.CAPTION_CORRECTION, data)]

        announced, announce = self._collect(announcements)
        segment = await self.store.revise_segment(segment_id, text, author, announce=announce)
        await self._link_bills(segment)
        return segment, await self._required(announced, "segment", segment.to_dict())

    async def set_reviewed(self, sitting_id: str, reviewed: bool) -> Sitting:
        """Mark the sitting's transcript reviewed (or back to a machine draft); exports say which it is."""
        return await self.store.set_sitting_reviewed(sitting_id, reviewed)

    async def set_bill(self, bill_id: str, title: str, status: str | None) -> Event:
        def announcements(bill: Bill) -> list[Announcement]:
            return [self._announcement(ev.bill_channel(bill_id), ev.BILL_STATUS, bill.to_dict())]

        announced, announce = self._collect(announcements)
        bill = await self.store.upsert_bill(bill_id, title, status, announce=announce)
        return await self._required(announced, "bill", bill.to_dict())

    async def record(
        self,
        kind: str,
        write: Callable[[Callable[[R], list[Announcement]]], Awaitable[R]],
        events: Callable[[R], list[tuple[str, str, dict[str, Any]]]],
        as_dict: Callable[[R], dict[str, Any]],
    ) -> tuple[R, Event | None]:
        """Any write with the events it announces: ``write(announce)`` passes ``announce`` to a store method, which
        stores the ``(channel, type, data)`` events ``events(row)`` makes in the row's transaction; then they are
        published through the outbox. The event is the first one's, None when the write announced nothing (a store
        may call ``announce`` only when it wrote); Unpublished when the broker did not take it. Used by the bills
        (archive/bills_api.py) and the Senate clock (archive/bill_clock.py)."""

        def build(row: R) -> list[Announcement]:
            return [self._announcement(channel, type, data) for channel, type, data in events(row)]

        announced, announce = self._collect(build)
        row = await write(announce)
        if not announced:
            return row, None
        return row, await self._required(announced, kind, as_dict(row))

    @staticmethod
    def _collect(
        build: Callable[[R], list[Announcement]],
    ) -> tuple[list[Announcement], Callable[[R], list[Announcement]]]:
        """Wrap ``build`` so the announcements it makes inside the store's transaction are kept for the caller."""
        announced: list[Announcement] = []

        def announce(row: R) -> list[Announcement]:
            # A write retried inside the store would call this again: keep only the last attempt's.
            announced[:] = build(row)
            return list(announced)

        return announced, announce


def _status_data(sitting: Sitting) -> dict[str, Any]:
    return {
        "sitting_id": sitting.id,
        "status": sitting.status,
        "title": sitting.title,
        "chamber": sitting.chamber,
        "started_at": sitting.started_at,
        "ended_at": sitting.ended_at,
    }
