"""The one event envelope that every transport carries.

An event is addressed to a channel (``sitting:<id>`` or ``bill:<id>``) and numbered there: ``seq`` starts at 1
and rises by one per publication; ``epoch`` names the history that ``seq`` counts in and changes only when that
history is lost. A client that keeps the last (epoch, seq) pair it saw can always ask for exactly what it missed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.http import dumps  # noqa: F401  (re-exported: the wire format of events)

SITTING_STATUS = "sitting.status"
CAPTION_PARTIAL = "caption.partial"
CAPTION_FINAL = "caption.final"
CAPTION_CORRECTION = "caption.correction"
AGENDA_ITEM = "agenda.item"
VOTE_RESULT = "vote.result"
SPEAKER = "speaker"
BILL_STATUS = "bill.status"
BILL_CLOCK = "bill.clock"  # the Senate's sec. 136 clock: 7 days left, deadline passed, inputs changed
NEWS_PUBLISHED = "news.published"  # an article published (desk/news_api.py), on the `news` channel

EVENT_TYPES = frozenset(
    {
        SITTING_STATUS,
        CAPTION_PARTIAL,
        CAPTION_FINAL,
        CAPTION_CORRECTION,
        AGENDA_ITEM,
        VOTE_RESULT,
        SPEAKER,
        BILL_STATUS,
        BILL_CLOCK,
        NEWS_PUBLISHED,
    }
)

# The epoch of a channel that has no history: nothing was ever published to it, or its history was lost. Reading
# such a channel creates nothing; the first publication starts a real epoch (8 hex digits, never empty).
NO_EPOCH = ""
# The largest seq any transport accepts from a client: Redis counts seqs in signed 64-bit integers, and a bigger
# number can only be a client's mistake (or a probe), never a position the server gave out.
MAX_SEQ = 2**63 - 1

# Ids go into Redis keys, URLs and file names, so they are kept to a safe alphabet.
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"
# `news` is one channel, without an id: the Senate's published articles.
_CHANNEL_RE = re.compile(rf"(sitting|bill):{ID_PATTERN}|news")


class InvalidChannel(ValueError):
    """The name does not match ``sitting:<id>`` or ``bill:<id>``."""


def check_channel(channel: object) -> str:
    """Return ``channel`` if it is a valid channel name, else raise :class:`InvalidChannel`."""
    if not isinstance(channel, str) or not _CHANNEL_RE.fullmatch(channel):
        raise InvalidChannel(f"channel must look like 'sitting:<id>' or 'bill:<id>', got {channel!r}")
    return channel


def sitting_channel(sitting_id: str) -> str:
    return f"sitting:{sitting_id}"


def bill_channel(bill_id: str) -> str:
    return f"bill:{bill_id}"


def utc_now_iso() -> str:
    """ISO-8601 UTC with milliseconds and a ``Z``, the form every ``ts`` uses."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Position:
    """Where a channel's history stands: the last seq published in this epoch (0 when none yet).

    A channel without history is ``Position(0, NO_EPOCH)``.
    """

    seq: int
    epoch: str


@dataclass(frozen=True, slots=True)
class Event:
    channel: str
    seq: int
    epoch: str
    type: str
    ts: str
    data: dict[str, Any]
    # Encoded once and shared by every client it is sent to; fan-out to thousands must not re-encode.
    _json: list[str] = field(default_factory=list, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "seq": self.seq,
            "epoch": self.epoch,
            "type": self.type,
            "ts": self.ts,
            "data": self.data,
        }

    @property
    def json(self) -> str:
        if not self._json:
            self._json.append(dumps(self.to_dict()))
        return self._json[0]

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event:
        d = json.loads(raw)
        event = cls(d["channel"], int(d["seq"]), d["epoch"], d["type"], d["ts"], d["data"])
        event._json.append(raw.decode() if isinstance(raw, bytes) else raw)
        return event
