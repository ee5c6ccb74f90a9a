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
    status: str | None
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
