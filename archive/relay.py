"""The outbox relay: publishes what the archive recorded, in the order it was recorded, once the broker takes it.

The recorder writes each row and the events it announces in one transaction (the outbox), then asks the relay to
publish. With the broker up that happens at once, inside the recorder's call. With the broker down the call
returns without the event, and the relay's own task retries with backoff until the broker is back, then
publishes the backlog oldest first. Everything goes through the relay, and the relay publishes one entry at a
time in recorded order, so a new entry never overtakes an older one: since the broker numbers events as they are
published, seq order on a channel is the order the archive recorded them in, outage or not.

Delivery is at-least-once: an entry is marked sent (and its seq written back to its row) only after the broker
acknowledged it. If the process dies, or the database fails, between the two, the entry is published again later
under a new seq (see docs/recovery.md).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from archive.models import OutboxEntry
from archive.store import Store
from broadcast.envelope import Event
from common.backoff import backoff_delay

log = logging.getLogger(__name__)

Publish = Callable[[str, str, dict[str, Any]], Awaitable[Event]]
# Called with each entry the broker took, before the entry is marked sent (see ``Relay.on_published``).
OnPublished = Callable[[OutboxEntry, Event], Awaitable[None]]

_BATCH = 100


class Relay:
    """Publishes the outbox entries of one owner (this process), oldest first.

    ``send`` publishes whatever is pending, the caller's entries included, unless the broker is known to be down,
    and returns the events of the caller's entries that made it. ``start`` runs the retry loop; without it, pending
    entries go out only with the next ``send``.
    """

    def __init__(
        self,
        store: Store,
        publish: Publish,
        *,
        owner: str | None = None,
        publish_timeout: float = 5.0,
        backoff_base: float = 0.1,
        backoff_cap: float = 5.0,
        adopt_after_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.owner = owner or f"relay-{secrets.token_hex(6)}"
        self._publish = publish
        self._publish_timeout = publish_timeout
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._adopt_after_s = adopt_after_s
        self._rng = rng or random.Random()
        # One drain at a time: two would publish the same entry, or two entries out of order.
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Keys some ``send`` waits on, and the events published for them; both bounded by the callers in flight.
        self._wanted: set[str] = set()
        self._results: dict[str, Event] = {}
        # Entries the broker took whose marking failed: re-marked before anything else is published, never resent
        # by this process.
        self._unmarked: dict[int, int] = {}
        # A consumer of every published entry (server.py: alerts), awaited after the broker took the entry and
        # before it is marked sent: a process that dies in between publishes the entry again and calls it again,
        # so it must be idempotent per ``entry.key``. Its own failures are logged, never raised into the relay.
        self.on_published: OnPublished | None = None
        self.down = False
        self.failures = 0

    async def start(self) -> None:
        """Start the retry loop; it first publishes whatever earlier runs left pending."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def send(self, keys: Sequence[str]) -> dict[str, Event]:
        """Publish pending entries, those with ``keys`` included; returns the events of ``keys`` that went out."""
        self._wanted.update(keys)
        try:
            # While the broker is down the loop is backing off: trying here too would make every caller wait out
            # the broker's timeout. The entry waits its turn behind the backlog.
            if not self.down:
                await self.drain()
            return {key: self._results[key] for key in keys if key in self._results}
        finally:
            self._wanted.difference_update(keys)
            for key in keys:
                self._results.pop(key, None)

    async def drain(self) -> bool:
        """Publish this owner's pending entries in order; False when the broker or the database failed."""
        async with self._lock:
            ok = await self._drain_locked()
        if not ok and not self.down:
            self.down = True
            self._wake.set()
        return ok

    async def _drain_locked(self) -> bool:
        for entry_id, seq in list(self._unmarked.items()):
            if not await self._mark(entry_id, seq):
                return False
            del self._unmarked[entry_id]
        while True:
            try:
                entries = await self.store.outbox_pending(self.owner, _BATCH)
            except Exception as exc:
                log.warning("outbox: cannot read pending entries: %s", exc)
                return False
            if not entries:
                self.down = False
                return True
            for entry in entries:
                event = await self._publish_one(entry)
                if event is None:
                    return False
                if entry.key in self._wanted:
                    self._results[entry.key] = event
                await self._handed_on(entry, event)
                if not await self._mark(entry.id, event.seq):
                    self._unmarked[entry.id] = event.seq
                    return False

    async def _publish_one(self, entry: OutboxEntry) -> Event | None:
        try:
            return await asyncio.wait_for(self._publish(entry.channel, entry.type, entry.data), self._publish_timeout)
        except Exception as exc:
            # Every failure counts as "not published yet": the broker's own errors (connection refused, reset,
            # timeouts) are the common case, and anything else is retried and logged rather than lose the event.
            if not self.down:
                log.warning("outbox: broker did not take %s on %s; will retry: %r", entry.type, entry.channel, exc)
            return None

    async def _handed_on(self, entry: OutboxEntry, event: Event) -> None:
        if self.on_published is None:
            return
        try:
            await self.on_published(entry, event)
        except Exception:
            # The live bus must not stall on a consumer: the entry is still marked sent.
            log.exception("outbox: the consumer of %s on %s failed", entry.type, entry.channel)

    async def _mark(self, entry_id: int, seq: int) -> bool:
        try:
            await self.store.outbox_sent(entry_id, seq)
            return True
        except Exception as exc:
            log.warning("outbox: published entry %d as seq %d but could not mark it sent: %s", entry_id, seq, exc)
            return False

    async def _run(self) -> None:
        while True:
            try:
                adopted = await self.store.outbox_adopt(self.owner, self._adopt_after_s)
                if adopted:
                    log.warning("outbox: adopted %d entries another process left unpublished", adopted)
            except Exception as exc:
                log.warning("outbox: cannot adopt orphaned entries: %s", exc)
            was_down = self.down
            if await self.drain():
                if was_down:
                    log.warning("outbox: the broker is back; backlog published")
                self.failures = 0
                wait = self._adopt_after_s / 2
            else:
                self.failures += 1
                wait = backoff_delay(self.failures, base=self._backoff_base, cap=self._backoff_cap, rng=self._rng)
            self._wake.clear()
            try:
                # A failed send wakes a healthy loop at once; a loop backing off keeps its own pace.
                if self.down:
                    await asyncio.sleep(wait)
                else:
                    await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass
