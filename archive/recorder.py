"""Record, then announce: the one path by which anything a viewer sees becomes an event.

Every write goes to the archive first and is published second, so an event a viewer saw as final is always in
the archive, even if the process dies right after publishing. The event's seq is then written back to the row,
which lets a journalist's link to a segment resolve to the exact event on the live channel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from archive.models import AgendaItem, Segment, Sitting, Speaker, Vote
from archive.store import NotFound, Store
from broadcast import envelope as ev
from broadcast.envelope import Event
from broadcast.hub import Hub
from broadcast.metrics import Metrics
from common.thai import normalize


@dataclass(slots=True)
class Current:
    """What captions of a sitting are filed under right now.

    Read from the store every time, never cached in the process: with several server processes an operator call
    may be handled by another process than the one running the feed, and the archive is what they share.
    """

    agenda_item: AgendaItem | None
    speaker: Speaker | None


class Recorder:
    def __init__(self, store: Store, hub: Hub, metrics: Metrics) -> None:
        self.store = store
        self.hub = hub
        self.metrics = metrics

    async def _publish(self, channel: str, type: str, data: dict[str, Any]) -> Event:
        event = await self.hub.publish(channel, type, data)
        self.metrics.events_published.labels(type).inc()
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
        sitting = await self.store.create_sitting(id, title, chamber, scheduled_at)
        event = await self._publish(ev.sitting_channel(id), ev.SITTING_STATUS, _status_data(sitting))
        return sitting, event

    async def set_status(self, sitting_id: str, status: str, reason: str | None = None) -> tuple[Sitting, Event]:
        sitting = await self.store.set_sitting_status(sitting_id, status)
        data = _status_data(sitting)
        if reason:
            data["reason"] = reason
        event = await self._publish(ev.sitting_channel(sitting_id), ev.SITTING_STATUS, data)
        return sitting, event

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
        item = await self.store.add_agenda_item(sitting_id, title, bill_id, order, media_ms)
        data = item.to_dict()
        event = await self._publish(ev.sitting_channel(sitting_id), ev.AGENDA_ITEM, data)
        if bill_id is not None:
            await self._publish(ev.bill_channel(bill_id), ev.AGENDA_ITEM, data)
        return item, event

    async def set_speaker(
        self, sitting_id: str, name: str, role: str | None = None, media_ms: int | None = None
    ) -> tuple[Speaker, Event]:
        speaker = await self.store.add_speaker(sitting_id, name, role, media_ms)
        event = await self._publish(ev.sitting_channel(sitting_id), ev.SPEAKER, speaker.to_dict())
        return speaker, event

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
        vote = await self.store.add_vote(sitting_id, motion, yes, no, abstain, absent, result, bill_id, agenda_id)
        # The row's seq is the event's own, so the event data leaves it out rather than carry a stale null.
        data = {k: v for k, v in vote.to_dict().items() if k != "seq"}
        event = await self._publish(ev.sitting_channel(sitting_id), ev.VOTE_RESULT, data)
        await self.store.set_vote_seq(vote.id, event.seq)
        vote = replace(vote, seq=event.seq)
        if bill_id is not None:
            await self._publish(ev.bill_channel(bill_id), ev.VOTE_RESULT, data)
        return vote, event

    async def caption_partial(self, sitting_id: str, segment_id: str, text: str, start: float, end: float) -> Event:
        """Partials are not archived: they may change, and only finals are quotable."""
        data = {"segment_id": segment_id, "text": normalize(text), "start": round(start, 3), "end": round(end, 3)}
        return await self._publish(ev.sitting_channel(sitting_id), ev.CAPTION_PARTIAL, data)

    async def caption_final(
        self, sitting_id: str, segment_id: str, text: str, start: float, end: float
    ) -> tuple[Segment, Event]:
        cur = await self.current(sitting_id)
        segment = await self.store.add_segment(
            sitting_id,
            round(start * 1000),
            round(end * 1000),
            text,
            cur.agenda_item.id if cur.agenda_item else None,
            cur.speaker.id if cur.speaker else None,
            utterance_id=segment_id,
        )
        data = {
            "segment_id": segment_id,
            "archive_id": segment.id,
            "text": segment.text,
            "start": round(start, 3),
            "end": round(end, 3),
            "agenda_item_id": segment.agenda_item_id,
            "speaker": cur.speaker.name if cur.speaker else None,
        }
        event = await self._publish(ev.sitting_channel(sitting_id), ev.CAPTION_FINAL, data)
        await self.store.set_segment_seq(segment.id, event.seq)
        return replace(segment, seq=event.seq), event

    async def set_bill(self, bill_id: str, title: str, status: str | None) -> Event:
        bill = await self.store.upsert_bill(bill_id, title, status)
        return await self._publish(ev.bill_channel(bill_id), ev.BILL_STATUS, bill.to_dict())


def _status_data(sitting: Sitting) -> dict[str, Any]:
    return {
        "sitting_id": sitting.id,
        "status": sitting.status,
        "title": sitting.title,
        "chamber": sitting.chamber,
        "started_at": sitting.started_at,
        "ended_at": sitting.ended_at,
    }
