"""In-process broker: history in a bounded deque per channel, live delivery by direct call."""

from __future__ import annotations

import secrets
from collections import deque
from typing import Any

from broadcast.broker import EventHandler
from broadcast.envelope import NO_EPOCH, Event, Position, utc_now_iso


class _Channel:
    __slots__ = ("epoch", "seq", "events")

    def __init__(self, history_size: int) -> None:
        # A fresh epoch per channel per process: a restart loses memory history, and the new epoch says so.
        self.epoch = secrets.token_hex(4)
        self.seq = 0
        self.events: deque[Event] = deque(maxlen=history_size)


class MemoryBroker:
    """The default when ``REDIS_URL`` is unset. Everything runs on the event loop, so no locks are needed.

    Only ``publish`` adds to ``_channels``; reads of a channel nobody published to answer from nothing.
    """

    def __init__(self, *, history_size: int = 2_000) -> None:
        self._history_size = history_size
        self._channels: dict[str, _Channel] = {}
        self._subscribed: set[str] = set()
        self._handler: EventHandler | None = None

    @property
    def channel_count(self) -> int:
        """Channels with history in this process (for metrics and tests)."""
        return len(self._channels)

    async def start(self, handler: EventHandler) -> None:
        self._handler = handler

    async def close(self) -> None:
        self._handler = None

    async def publish(self, channel: str, type: str, data: dict[str, Any]) -> Event:
        ch = self._channels.get(channel)
        if ch is None:
            ch = self._channels[channel] = _Channel(self._history_size)
        ch.seq += 1
        event = Event(channel, ch.seq, ch.epoch, type, utc_now_iso(), data)
        ch.events.append(event)
        if self._handler is not None and channel in self._subscribed:
            self._handler(event)
        return event

    async def position(self, channel: str) -> Position:
        ch = self._channels.get(channel)
        return Position(0, NO_EPOCH) if ch is None else Position(ch.seq, ch.epoch)

    async def history(self, channel: str, since: int, limit: int) -> tuple[list[Event], Position, int]:
        ch = self._channels.get(channel)
        if ch is None:
            return [], Position(0, NO_EPOCH), 1
        first = ch.events[0].seq if ch.events else ch.seq + 1
        start = max(since + 1, first)
        skip = start - first
        events = [ch.events[i] for i in range(skip, min(len(ch.events), skip + max(limit, 0)))]
        return events, Position(ch.seq, ch.epoch), first

    async def subscribe(self, channel: str) -> None:
        self._subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._subscribed.discard(channel)

    async def healthy(self) -> bool:
        return True
