"""Archive records: what a sitting leaves behind, as immutable values.

Times are ISO-8601 UTC strings ending in 'Z' (so they sort and compare as text);
media times are integer milliseconds from the start of the sitting's media.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any


def utc_now() -> str:
    """Now as ISO-8601 UTC with millisecond precision and a trailing 'Z'."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True, slots=True)
class Sitting:
    id: str
    title: str
    chamber: str  # "senate" | "joint" | "committee"
    status: str  # "scheduled" | "live" | "adjourned"
    scheduled_at: str | None
    created_at: str
    started_at: str | None
    ended_at: str | None
    # When an operator marked the transcript reviewed; None while it is the machine draft.
    reviewed_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AgendaItem:
    id: int
    sitting_id: str
    order: int
    title: str
    bill_id: str | None
    started_at: str
    media_ms: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Speaker:
    id: int
    sitting_id: str
    name: str
    role: str | None
    started_at: str
    media_ms: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Segment:
    id: int
    sitting_id: str
    # The caption.final event's seq on the sitting channel; None until it has been published.
    seq: int | None
    start_ms: int
    end_ms: int
    wall_time: str
    text: str
    agenda_item_id: int | None
    speaker_id: int | None
    revision: int
    # The live utterance this piece belongs to (the caption events' segment_id); None for imported text.
    utterance_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SegmentRevision:
    """One text of a segment: revision 1 is the machine draft (author "machine"), each correction the next."""

    segment_id: int
    revision: int
    text: str
    author: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Vote:
    id: int
    sitting_id: str
    motion: str
    yes: int
    no: int
    abstain: int
    absent: int
    result: str  # "passed" | "rejected"
    bill_id: str | None
    agenda_item_id: int | None
    recorded_at: str
    seq: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Bill:
    id: str
    title: str
    # Free text from the legacy ``POST /api/bills/{id}``; ``stage`` is the validated one (archive/bill_stages.py).
    status: str | None
    updated_at: str
    # None on a bill only named by an agenda item until an operator gives its details (``POST /api/bills``).
    short_name: str | None = None
    type: str | None = None  # bill_stages.BillType
    proposer: str | None = None
    stage: str | None = None  # bill_stages.Stage
    topics: tuple[str, ...] = ()
    agencies: tuple[str, ...] = ()  # the ministries and agencies concerned

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["topics"], d["agencies"] = list(self.topics), list(self.agencies)
        return d


@dataclass(frozen=True, slots=True)
class StageChange:
    """One entry of a bill's stage history: ``stage`` reached on ``on`` (a Thai date, YYYY-MM-DD), from
    ``from_stage`` (None for the stage a bill was entered at), with the sitting, agenda item and vote that caused
    it when known."""

    id: int
    bill_id: str
    from_stage: str | None
    stage: str
    on: str
    recorded_at: str
    sitting_id: str | None = None
    agenda_item_id: int | None = None
    vote_id: int | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SessionPeriodRecord:
    """A session of Parliament as the operator entered it: opening and closing days (YYYY-MM-DD) inclusive."""

    id: int
    start: str
    end: str
    kind: str  # "ordinary" | "extraordinary"
    title: str | None
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class BillClockInputs:
    """What the operator recorded for a bill's sec. 136 clock: the Senate's extension (days, the resolution's date)
    and the Constitutional Court pauses (start, end or None while undecided), dates as YYYY-MM-DD."""

    extension_days: int | None = None
    extension_resolved_on: str | None = None
    pauses: tuple[tuple[str, str | None], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        extension = None
        if self.extension_days is not None:
            extension = {"days": self.extension_days, "resolved_on": self.extension_resolved_on}
        return {"extension": extension, "pauses": [{"start": s, "end": e} for s, e in self.pauses]}


@dataclass(frozen=True, slots=True)
class BillFilters:
    """``GET /api/bills``: every given filter must hold; ``q`` is a case-insensitive substring of the id, title or
    short name."""

    stage: str | None = None
    type: str | None = None
    topic: str | None = None
    agency: str | None = None
    q: str | None = None


@dataclass(frozen=True, slots=True)
class Announcement:
    """An event to publish once the write that produced it is committed, stored with that write.

    ``target`` names the row whose ``seq`` is the event's own (``("segment", id)`` or ``("vote", id)``), so that
    marking the entry sent also writes the seq back to the row, in one transaction.
    """

    key: str
    owner: str
    channel: str
    type: str
    data: dict[str, Any]
    target: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """An announcement recorded but not yet marked published; ``id`` rises in the order entries were recorded."""

    id: int
    key: str
    owner: str
    channel: str
    type: str
    data: dict[str, Any]
    target: tuple[str, int] | None
    created_at: str


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The first answer to an operator request made with an ``Idempotency-Key``; ``status`` None while in flight."""

    key: str
    fingerprint: str
    status: int | None
    body: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class BillRecord:
    """Everything the archive holds about one bill, each list newest first: the sittings that took it up (an
    agenda item, a vote or a mention in a transcript), its agenda items, its votes and the segments that name it."""

    bill: Bill
    sittings: list[Sitting]
    agenda_items: list[AgendaItem]
    votes: list[Vote]
    segments: list[Segment]
