"""Local fan-out: every connection of this process that watches a channel, fed from one broker subscription.

The hub owns the recovery merge that makes resume exact. To subscribe with ``since`` it first starts live
delivery (buffering it for this subscriber), then reads history, replays what the client missed, and finally
flushes the buffered live events with seq above what was replayed. Live events that race the history read thus
arrive exactly once, in order, and a client told ``recovered: true`` has seen every event after ``since``.

Anyone may ask for any channel name, so the hub first asks ``channel_exists`` (the archive: does this sitting or
bill exist?) and refuses unknown channels before anything is set up; and every per-channel entry it keeps (the
subscriber set, the broker subscription, the position) is gone when the channel's last subscriber leaves.

A burst of subscribers to one channel costs the broker one subscription, not one each: the first subscriber starts
it as a task of its own and everyone who joins meanwhile awaits that same task, so nobody queues behind anybody
else's round trip and a broker failure reaches every waiter at once (then a later subscribe tries afresh). Joining
without ``since`` reads nothing at all: the hub knows each watched channel's position from the events it is handed
(see :class:`_Channel`); and identical history reads in flight are shared. The existence check is shared the
same way: one archive query answers every subscriber asking about the same channel meanwhile, and a "yes" is kept
for :data:`EXISTS_TTL_S`, so 10,000 viewers arriving for a sitting cost the archive a handful of queries.

Fan-out never holds the event loop for long. An event for at most :data:`FANOUT_SLICE` subscribers is handed to
all of them at once, inside the broker's callback, as before. A bigger audience is served by one fan-out task in
slices of that size, for at most :data:`FANOUT_STEP_S` per turn of the loop, yielding between turns; so an
operator's HTTP request, a database or Redis reply, or a subscribe waits for one short step, not for the fan-out of
an event (or of a backlog of them) to 10,000 sockets. That matters beyond the one request: an operator write holds
the archive's write lock across several round trips, each a turn of the loop, so long turns would serialise every
operator of every process behind the fan-out. The recipients of an event are fixed when the broker hands it over
(as in one synchronous pass), events are fanned out strictly one after another in hand-over order, and a
subscription dropped meanwhile is skipped; so every subscriber still sees each channel in seq order, exactly once,
and the resume rules below are unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from broadcast.broker import Broker, BrokerUnavailable
from broadcast.envelope import NO_EPOCH, Event, Position
from broadcast.outbox import Outbox

log = logging.getLogger(__name__)

HISTORY_PAGE = 500

# Subscribers served between two looks at the clock (and the most served inline, inside the broker's callback):
# about 1 ms of CPU at the 13-15 µs a delivered frame costs a worker on loopback. 64 rather than 256: on a box
# short of CPU a slice of 256 took well over FANOUT_STEP_S of wall time, and an operator's POST, which needs a few
# dozen turns of the loop, waited for each of them; 64 cut its p50 by about a third during a 20,000-viewer fan-out
# with no change in the cost per frame (docs/benchmarks.md, "WebSocket viewers").
FANOUT_SLICE = 64
# The most one turn of the loop spends fanning out before it lets everything else that is ready run. Wall time, so
# on a box short of CPU a turn serves fewer sockets rather than holding the loop longer; a turn costs a few tens of
# µs, under 0.1 µs per frame at this size.
FANOUT_STEP_S = 0.002

# How long "this channel exists" is believed without asking the archive again. Only positive answers are kept (an
# unknown channel is asked about every time, and costs no table entry); a sitting is not deleted while people
# watch it, so the worst a stale "yes" does is let a subscriber wait on a channel that never publishes.
EXISTS_TTL_S = 5.0
EXISTS_CACHE_MAX = 1024

# Answers whether a channel may be subscribed to (its sitting or bill exists). Must not raise for unknown names.
ChannelExists = Callable[[str], Awaitable[bool]]


async def _every_channel_exists(channel: str) -> bool:
    return True


class UnknownChannel(LookupError):
    """Subscribing to a channel whose sitting or bill does not exist."""

    def __init__(self, channel: str) -> None:
        super().__init__(f"no such {channel.partition(':')[0]}: {channel.partition(':')[2]!r}")
        self.channel = channel


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Marks a shared task's exception as seen: its waiters may all have gone (cancelled) before it ended."""
    if not task.cancelled():
        task.exception()


class _Channel:
    """What the hub keeps of a channel from its first subscriber until its broker subscription is released.

    ``top`` is the channel's position as far as this hub is concerned: the last event the broker handed over, or,
    before any, the position read right after subscribing. Every event after ``top`` is still to come (the broker
    delivers each channel in seq order without gaps) and reaches every subscriber already in the set, so a
    subscriber that reads ``top`` after joining may start from it and miss nothing. History reads are shared on
    the same ground: a read serves every subscriber that joined before it started (``joins`` numbers the
    joiners; each read records the number at its start).
    """

    __slots__ = ("name", "opened", "closing", "top", "joins", "reads")

    def __init__(self, name: str) -> None:
        self.name = name
        # The broker subscription: one task for everyone who joins while it is made. None until the first joiner,
        # and again after an attempt failed (so the next subscriber tries afresh).
        self.opened: asyncio.Task[None] | None = None
        # Releasing the broker subscription once the last subscriber left; newcomers wait for it, then start over.
        self.closing: asyncio.Task[None] | None = None
        self.top: Position | None = None
        self.joins = 0
        self.reads: dict[tuple[int, int], tuple[int, asyncio.Task[tuple[list[Event], Position, int]]]] = {}

    def advance(self, event: Event) -> None:
        top = self.top
        if top is None or event.epoch != top.epoch or event.seq > top.seq:
            self.top = Position(event.seq, event.epoch)


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

    __slots__ = ("outbox", "channel", "seq", "epoch", "buffer", "buffer_limit", "joined", "dropped")

    def __init__(self, outbox: Outbox, channel: str, buffer_limit: int) -> None:
        self.outbox = outbox
        self.channel = channel
        self.joined = 0  # its number among the channel's joiners (see _Channel)
        # Set once unsubscribed: a sliced fan-out already under way skips it (see Hub._fan_out).
        self.dropped = False
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
    """``channel_exists`` defaults to "every valid name exists", for tests of the bus alone; the server passes the
    archive's answer."""

    def __init__(
        self,
        broker: Broker,
        *,
        channel_exists: ChannelExists | None = None,
        history_page: int = HISTORY_PAGE,
        fanout_slice: int = FANOUT_SLICE,
        fanout_step_s: float = FANOUT_STEP_S,
    ) -> None:
        self.broker = broker
        self.exists: ChannelExists = channel_exists or _every_channel_exists
        self._subs: dict[str, set[Subscription]] = {}
        # Has an entry for every key of _subs, and keeps it while the broker subscription is being released.
        self._channels: dict[str, _Channel] = {}
        self._history_page = history_page
        self.fanout_slice = fanout_slice
        self.fanout_step_s = fanout_step_s
        # Events whose fan-out is sliced: (event, its recipients, how many were served). Bounded by the events the
        # broker hands over faster than they can be written, which the slow-client cut keeps finite.
        self._fanout: deque[tuple[Event, tuple[Subscription, ...], int]] = deque()
        self._fanout_task: asyncio.Task[None] | None = None
        # Channels known to exist until a monotonic time, and existence checks in flight (shared by every asker).
        self._exists: dict[str, float] = {}
        self._asking: dict[str, asyncio.Task[bool]] = {}

    async def start(self) -> None:
        await self.broker.start(self._on_event)

    async def close(self) -> None:
        task, self._fanout_task = self._fanout_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._fanout.clear()
        await self.broker.close()

    @property
    def fanout_backlog(self) -> int:
        """Events whose sliced fan-out has not finished (0 when every event has reached everyone)."""
        return len(self._fanout)

    @property
    def subscription_count(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def channel_count(self) -> int:
        """Channels with at least one subscriber here; every per-channel entry the hub keeps is bounded by it."""
        return len(self._subs)

    def state_sizes(self) -> tuple[int, int, int]:
        """Sizes of the hub's per-channel tables (subscribers, channel states, history reads in flight), for leak
        tests."""
        return len(self._subs), len(self._channels), sum(len(ch.reads) for ch in self._channels.values())

    async def publish(self, channel: str, type: str, data: dict[str, Any]) -> Event:
        return await self.broker.publish(channel, type, data)

    def _on_event(self, event: Event) -> None:
        subs = self._subs.get(event.channel)
        if not subs:
            return
        self._channels[event.channel].advance(event)
        # The recipients are the subscribers of this moment, as in one synchronous pass; the snapshot also lets a
        # subscriber unsubscribe (or overflow and be removed) while we iterate.
        recipients = tuple(subs)
        if self._fanout:
            # An earlier event is still being fanned out: this one goes after it, for everyone.
            self._fanout.append((event, recipients, 0))
            return
        step = self.fanout_slice
        for sub in recipients[:step] if len(recipients) > step else recipients:
            sub.deliver(event)
        if len(recipients) > step:
            self._fanout.append((event, recipients, step))
            if self._fanout_task is None:
                self._fanout_task = asyncio.get_running_loop().create_task(self._fan_out(), name="hub-fan-out")

    async def _fan_out(self) -> None:
        """Serve the queued events slice by slice, one event after another, for at most ``fanout_step_s`` per turn
        of the loop (at least one slice), yielding between turns."""
        queue = self._fanout
        clock = time.perf_counter
        try:
            while queue:
                # Let whatever is ready (HTTP requests, Redis and database replies, client frames) run first.
                await asyncio.sleep(0)
                deadline = clock() + self.fanout_step_s
                while queue:
                    event, recipients, done = queue[0]
                    end = done + self.fanout_slice
                    for sub in recipients[done:end]:
                        if not sub.dropped:
                            sub.deliver(event)
                    if end >= len(recipients):
                        queue.popleft()
                    else:
                        queue[0] = (event, recipients, end)
                    if clock() >= deadline:
                        break
        except Exception:
            # A bug must not leave the queue stuck for good; the connections it skipped resume with ``since``.
            log.exception("fan-out failed; %d event(s) dropped from the local fan-out", len(queue))
            queue.clear()
        finally:
            self._fanout_task = None

    async def _join(self, sub: Subscription) -> _Channel:
        """Add ``sub`` to its channel's subscribers and return once the broker delivers the channel live."""
        while True:
            ch = self._channels.get(sub.channel)
            if ch is None:
                ch = self._channels[sub.channel] = _Channel(sub.channel)
            elif ch.closing is not None:
                # The last subscriber just left; joining now would race the release. Wait, then start over.
                await asyncio.shield(ch.closing)
                continue
            ch.joins += 1
            sub.joined = ch.joins
            self._subs.setdefault(sub.channel, set()).add(sub)
            if ch.opened is None:
                ch.opened = asyncio.create_task(self._open(ch), name=f"hub-subscribe {ch.name}")
                ch.opened.add_done_callback(_retrieve)
            # Shielded: a subscriber that gives up must not cancel the subscription the others wait for. The
            # broker bounds the task's own time; the time spent here waiting for it is nobody's round trip.
            await asyncio.shield(ch.opened)
            return ch

    async def _open(self, ch: _Channel) -> None:
        try:
            await self.broker.subscribe(ch.name)
            position = await self.broker.position(ch.name)
        except BaseException:
            # No half-made subscription: the broker forgets the channel (a subscribe that timed out may still hold
            # it as wanted), and the next joiner starts a new attempt. The waiters of this one get its error.
            ch.top = None
            try:
                await self.broker.unsubscribe(ch.name)
            finally:
                ch.opened = None
            raise
        # An event handed over while the position was read already set ``top``, and every later one is still to
        # come: that mark is exact, keep it.
        if ch.top is None:
            ch.top = position

    async def _close(self, ch: _Channel) -> None:
        try:
            opened = ch.opened
            if opened is not None and not opened.done():
                # Let a subscribe in flight finish rather than cancel it halfway through its network round trip.
                await asyncio.wait([opened])
            await self.broker.unsubscribe(ch.name)
        finally:
            if self._channels.get(ch.name) is ch:
                del self._channels[ch.name]

    async def _history(
        self, ch: _Channel, sub: Subscription, since: int, limit: int
    ) -> tuple[list[Event], Position, int]:
        """``broker.history``, shared with every subscriber that asks the same while it is in flight, provided the
        read started after they joined: an earlier read may lack events the hub handed over before they joined."""
        key = (since, limit)
        shared = ch.reads.get(key)
        if shared is None or shared[0] < sub.joined:
            task = asyncio.create_task(self.broker.history(ch.name, since, limit))
            shared = ch.reads[key] = (ch.joins, task)

            def done(task: asyncio.Task[tuple[list[Event], Position, int]], entry: Any = shared) -> None:
                _retrieve(task)
                if ch.reads.get(key) is entry:
                    del ch.reads[key]

            task.add_done_callback(done)
        return await asyncio.shield(shared[1])

    async def known(self, channel: str) -> bool:
        """Whether ``channel`` exists, by the injected check; a check that fails (the archive down or timing out)
        is :class:`BrokerUnavailable` to the caller, which answers "try again" rather than crashing the socket."""
        now = time.monotonic()
        until = self._exists.get(channel)
        if until is not None:
            if until > now:
                return True
            del self._exists[channel]
        task = self._asking.get(channel)
        if task is None:
            task = self._asking[channel] = asyncio.ensure_future(self.exists(channel))
            task.add_done_callback(lambda t: self._asked(channel, t))
        try:
            # Shielded: one asker giving up must not cancel the answer the others wait for.
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("cannot tell whether channel %s exists: %r", channel, exc)
            raise BrokerUnavailable(f"cannot check channel {channel}") from exc

    def _asked(self, channel: str, task: asyncio.Task[bool]) -> None:
        if self._asking.get(channel) is task:
            del self._asking[channel]
        if task.cancelled() or task.exception() is not None or not task.result():
            return
        if len(self._exists) >= EXISTS_CACHE_MAX:
            self._exists.clear()
        self._exists[channel] = time.monotonic() + EXISTS_TTL_S

    async def subscribe(
        self,
        outbox: Outbox,
        channel: str,
        since: int | None = None,
        epoch: str | None = None,
        *,
        checked: bool = False,
    ) -> tuple[Subscription, Subscribed]:
        """Subscribe ``outbox`` to ``channel``; puts the ``subscribed`` frame, the replay, then live events.

        Raises :class:`UnknownChannel` (unless the caller already ``checked`` with :attr:`exists`) before
        anything is set up, and :class:`BrokerUnavailable` when the broker cannot be reached; either way nothing
        of the subscription is left behind.
        """
        if not checked and not await self.known(channel):
            raise UnknownChannel(channel)
        sub = Subscription(outbox, channel, buffer_limit=outbox.limit)
        try:
            ch = await self._join(sub)
            reply = await self._replay(ch, sub, since, epoch)
        except BaseException:
            await self.unsubscribe(sub)
            raise
        sub.go_live()
        return sub, reply

    async def _replay(self, ch: _Channel, sub: Subscription, since: int | None, epoch: str | None) -> Subscribed:
        outbox = sub.outbox
        if since is None:
            # Joined before ``top`` was last set, so everything after it reaches this subscriber live.
            position = ch.top
            assert position is not None, "set once the broker subscription is made"
            sub.seq, sub.epoch = position.seq, position.epoch
            reply = Subscribed(sub.channel, True, position)
            outbox.put(reply.frame())
            return reply

        # Pages never exceed half the outbox, and each waits for room, so a replay longer than the outbox is paced
        # to the client's reading speed instead of overflowing it.
        page = max(1, min(self._history_page, outbox.limit // 2))
        events, position, first = await self._history(ch, sub, since, page)
        # A client that saw the channel without history (epoch "") and nothing since: whatever it has now is new.
        same_epoch = epoch is None or epoch == position.epoch or (epoch == NO_EPOCH and since == 0)
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
            events, _, _ = await self._history(ch, sub, sub.seq, page)
        return reply

    async def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.channel)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        sub.dropped = True
        if subs:
            return
        del self._subs[sub.channel]
        ch = self._channels[sub.channel]
        if ch.opened is None:
            # Nothing at the broker: never subscribed, or the attempt failed and cleaned up after itself.
            del self._channels[sub.channel]
            return
        # The last one out releases the broker subscription; whoever joins meanwhile waits for that, then starts
        # over. Shielded: the release completes even if this caller is cancelled.
        ch.closing = asyncio.create_task(self._close(ch), name=f"hub-unsubscribe {ch.name}")
        ch.closing.add_done_callback(_retrieve)
        await asyncio.shield(ch.closing)
