"""Local fan-out: every connection of this process that watches a channel, fed from one broker subscription.

The hub owns the recovery merge that makes resume exact. To subscribe with ``since`` it first starts live
delivery (buffering it for this subscriber), then reads history, replays what the client missed, and finally
flushes the buffered live events with seq above what was replayed. Live events that race the history read thus
arrive exactly once, in order, and a client told ``recovered: true`` has seen every event after ``since``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from broadcast.broker import Broker
from broadcast.envelope import Event, Position
from broadcast.outbox import Outbox

log = logging.getLogger(__name__)

HISTORY_PAGE = 500


@dataclass(frozen=True, slots=True)
class Subscribed:
    channel: str
    recovered: bool
    position: Position

    def frame(self) -> dict[str, Any]:
        return {
            "op": "subscribed",
            "channel": self.channel,
            "recovered": self.recovered,
            "seq": self.position.seq,
            "epoch": self.position.epoch,
        }


class Subscription:
    """One outbox watching one channel. Delivery drops duplicates by seq; an epoch change resets the count."""

    __slots__ = ("outbox", "channel", "seq", "epoch", "buffer", "buffer_limit")

    def __init__(self, outbox: Outbox, channel: str, buffer_limit: int) -> None:
        self.outbox = outbox
        self.channel = channel
        self.seq = 0
        self.epoch = ""
        self.buffer: list[Event] | None = []
        self.buffer_limit = buffer_limit

    def deliver(self, event: Event) -> None:
        if self.buffer is not None:
            if len(self.buffer) >= self.buffer_limit:
                self.outbox.overflow()
            else:
                self.buffer.append(event)
            return
        self._send(event)

    def _send(self, event: Event) -> None:
        if event.epoch == self.epoch and event.seq <= self.seq:
            return
        self.seq = event.seq
        self.epoch = event.epoch
        self.outbox.put(event)

    def go_live(self) -> None:
        buffered, self.buffer = self.buffer or [], None
        for event in buffered:
            self._send(event)


class Hub:
    def __init__(self, broker: Broker, *, history_page: int = HISTORY_PAGE) -> None:
        self.broker = broker
        self._subs: dict[str, set[Subscription]] = {}
        self._live: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._history_page = history_page

    async def start(self) -> None:
        await self.broker.start(self._on_event)

    async def close(self) -> None:
        await self.broker.close()

    @property
    def subscription_count(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def channel_count(self) -> int:
        return len(self._subs)

    async def publish(self, channel: str, type: str, data: dict[str, Any]) -> Event:
        return await self.broker.publish(channel, type, data)

    def _on_event(self, event: Event) -> None:
        subs = self._subs.get(event.channel)
        if not subs:
            return
        # A subscriber may unsubscribe (or overflow and be removed) while we iterate.
        for sub in tuple(subs):
            sub.deliver(event)

    async def _sync_broker(self, channel: str) -> None:
        """Make the broker's live subscription match whether anyone here watches ``channel``."""
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            wanted = bool(self._subs.get(channel))
            if wanted and channel not in self._live:
                await self.broker.subscribe(channel)
                self._live.add(channel)
            elif not wanted and channel in self._live:
                self._live.discard(channel)
                await self.broker.unsubscribe(channel)
            if not wanted:
                self._locks.pop(channel, None)

    async def subscribe(
        self,
        outbox: Outbox,
        channel: str,
        since: int | None = None,
        epoch: str | None = None,
    ) -> tuple[Subscription, Subscribed]:
        """Subscribe ``outbox`` to ``channel``; puts the ``subscribed`` frame, the replay, then live events."""
        sub = Subscription(outbox, channel, buffer_limit=outbox.limit)
        self._subs.setdefault(channel, set()).add(sub)
        try:
            await self._sync_broker(channel)
            reply = await self._replay(sub, since, epoch)
        except BaseException:
            await self.unsubscribe(sub)
            raise
        sub.go_live()
        return sub, reply

    async def _replay(self, sub: Subscription, since: int | None, epoch: str | None) -> Subscribed:
        outbox = sub.outbox
        if since is None:
            position = await self.broker.position(sub.channel)
            sub.seq, sub.epoch = position.seq, position.epoch
            reply = Subscribed(sub.channel, True, position)
            outbox.put(reply.frame())
            return reply

        # Pages never exceed half the outbox, and each waits for room, so a replay longer than the outbox is paced
        # to the client's reading speed instead of overflowing it.
        page = max(1, min(self._history_page, outbox.limit // 2))
        events, position, first = await self.broker.history(sub.channel, since, page)
        same_epoch = epoch is None or epoch == position.epoch
        recovered = same_epoch and first - 1 <= since <= position.seq
        reply = Subscribed(sub.channel, recovered, position)
        outbox.put(reply.frame())
        sub.epoch = position.epoch
        if not same_epoch or since > position.seq:
            # The client's seq counts in a history that no longer exists: nothing here relates to it.
            sub.seq = position.seq
            return reply
        sub.seq = since
        while events:
            await outbox.drained(outbox.limit - len(events) + 1)
            if outbox.overflowed or outbox.closed:
                break
            for event in events:
                sub.seq = event.seq
                outbox.put(event)
            if len(events) < page:
                break
            events, _, _ = await self.broker.history(sub.channel, sub.seq, page)
        return reply

    async def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.channel)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if not subs:
            del self._subs[sub.channel]
        await self._sync_broker(sub.channel)
