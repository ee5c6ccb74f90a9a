"""The broker contract: per-channel numbered history plus live fan-out between processes.

Two implementations pass one test suite (``tests/test_bus_suite.py``): :class:`MemoryBroker` for a single
process and :class:`RedisBroker` for several. The contract, which :class:`broadcast.hub.Hub` relies on:

* ``publish`` appends to the channel's history and announces the event to live subscribers atomically: seq is
  assigned by the broker, rises by exactly one per publication, and live delivery follows seq order even when
  many publishers in many processes publish to one channel at once.
* History keeps at least the last ``history_size`` events of a channel; older ones may be trimmed.
* ``epoch`` changes only when a channel's history is lost (a memory broker restarted, Redis flushed). Seqs of
  one epoch mean nothing in another.
* Live delivery to the handler is per channel in seq order, without gaps or duplicates, for as long as the
  channel is subscribed: a broker that loses its connection must back-fill from history before it goes on.
* ``subscribe`` returns only once events published afterwards are certain to reach the handler, so a caller
  may then read history and merge without a gap.
* Only ``publish`` creates channel state. ``position``, ``history`` and ``subscribe`` of a channel that has no
  history create nothing (no key, no per-channel entry) and report ``Position(0, envelope.NO_EPOCH)``; the first
  publication starts a real epoch. What ``subscribe`` set up is gone after ``unsubscribe``. Anyone may ask to read
  any channel name, so a read that left state behind would let them grow the broker without bound.
* Every call that needs the backend fails within the broker's timeouts with :class:`BrokerUnavailable`, never
  hangs and never leaks a backend-specific error, so callers can answer 503 and try again later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from broadcast.envelope import Event, Position

EventHandler = Callable[[Event], None]


class BrokerUnavailable(Exception):
    """The broker's backend cannot be reached (or did not answer in time) right now; the call may be retried."""


class Broker(Protocol):
    async def start(self, handler: EventHandler) -> None:
        """Connect, and from now on hand every live event of a subscribed channel to ``handler``."""
        ...

    async def close(self) -> None: ...

    async def publish(self, channel: str, type: str, data: dict[str, Any]) -> Event:
        """Append to history and fan out; returns the event with its seq and epoch."""
        ...

    async def position(self, channel: str) -> Position:
        """The channel's epoch and last seq; ``Position(0, NO_EPOCH)`` for a channel without history."""
        ...

    async def history(self, channel: str, since: int, limit: int) -> tuple[list[Event], Position, int]:
        """Events with seq > ``since`` (oldest first, at most ``limit``), the position, and the first seq still
        held (``position.seq + 1`` when history is empty). ``since`` may be any integer up to ``MAX_SEQ``."""
        ...

    async def subscribe(self, channel: str) -> None:
        """Start live delivery of ``channel`` to the handler (idempotent). Also for channels without history:
        their first publication is then delivered like any other event."""
        ...

    async def unsubscribe(self, channel: str) -> None:
        """Stop live delivery and forget the channel (idempotent; never raises for an unreachable backend)."""
        ...

    async def healthy(self) -> bool:
        """True when the broker can publish right now."""
        ...
