"""The archive's storage contract, independent of any database."""

from __future__ import annotations

from typing import Protocol

from archive.models import AgendaItem, Bill, Segment, Sitting, Speaker, Vote

CHAMBERS = frozenset({"senate", "joint", "committee"})
SITTING_STATUSES = frozenset({"scheduled", "live", "adjourned"})
VOTE_RESULTS = frozenset({"passed", "rejected"})


class NotFound(LookupError):
    """The sitting, segment or vote named does not exist."""


class Conflict(Exception):
    """A record with that id already exists."""


class Store(Protocol):
    """Durable archive of sittings, agenda, speakers, caption segments, votes and bills.

    Contract:
    - Every write is durable when its awaitable returns: committed and fsynced, so a caption
      a viewer has seen as final survives a crash or power loss.
    - Writes are serialised; concurrent callers never interleave inside one write.
    - Reads never block the event loop (database work happens off the loop thread).
    - Text is stored normalised (NFC, zero-width characters stripped, whitespace collapsed).
    - Writing under an unknown sitting raises NotFound; creating an existing sitting raises Conflict.
    - Times are ISO-8601 UTC strings ending in 'Z'; media times are integer milliseconds.
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create_sitting(self, id: str, title: str, chamber: str, scheduled_at: str | None = None) -> Sitting: ...

    async def get_sitting(self, id: str) -> Sitting | None: ...

    async def list_sittings(self, limit: int = 100, offset: int = 0) -> list[Sitting]:
        """Newest first (by created_at)."""
        ...

    async def set_sitting_status(self, id: str, status: str) -> Sitting:
        """started_at is set the first time a sitting goes live; ended_at when it is adjourned."""
        ...

    async def add_agenda_item(
        self,
        sitting_id: str,
        title: str,
        bill_id: str | None = None,
        order: int | None = None,
        media_ms: int | None = None,
    ) -> AgendaItem:
        """order=None takes the next number after the sitting's highest."""
        ...

    async def agenda(self, sitting_id: str) -> list[AgendaItem]: ...

    async def current_agenda_item(self, sitting_id: str) -> AgendaItem | None:
        """The most recently added agenda item."""
        ...

    async def add_speaker(
        self, sitting_id: str, name: str, role: str | None = None, media_ms: int | None = None
    ) -> Speaker: ...

    async def current_speaker(self, sitting_id: str) -> Speaker | None: ...

    async def add_segment(
        self,
        sitting_id: str,
        start_ms: int,
        end_ms: int,
        text: str,
        agenda_item_id: int | None = None,
        speaker_id: int | None = None,
        utterance_id: str | None = None,
    ) -> Segment:
        """Revision 1, seq None, wall_time now. ``utterance_id`` groups the final pieces of one utterance."""
        ...

    async def set_segment_seq(self, segment_id: int, seq: int) -> None: ...

    async def segments(self, sitting_id: str, after_id: int = 0, limit: int = 10000) -> list[Segment]:
        """Segments with id > after_id, ordered by start_ms then id."""
        ...

    async def add_vote(
        self,
        sitting_id: str,
        motion: str,
        yes: int,
        no: int,
        abstain: int,
        absent: int,
        result: str,
        bill_id: str | None = None,
        agenda_item_id: int | None = None,
    ) -> Vote: ...

    async def set_vote_seq(self, vote_id: int, seq: int) -> None: ...

    async def votes(self, sitting_id: str) -> list[Vote]: ...

    async def upsert_bill(self, id: str, title: str, status: str | None = None) -> Bill: ...

    async def get_bill(self, id: str) -> Bill | None: ...
