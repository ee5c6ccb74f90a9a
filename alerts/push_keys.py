"""Web Push encryption prepared in idle time, so that a 10,000-follow burst only seals (``alerts.push``).

Of RFC 8291's work for one message, everything but AES-128-GCM of the payload is independent of the payload: the
new ephemeral P-256 key pair, its ECDH secret with the subscription's ``p256dh``, the IKM (with the ``auth`` secret),
the random salt and from it the content-encryption key and nonce (RFC 8188). ``push.prepare`` makes that part — a
``push.Prepared`` record — and ``push.seal`` finishes a message with it; the ECDH and key generation are nearly all
of the cost, so a message sealed from a prepared record costs a small fraction of a full ``push.encrypt``.

``PreparedPool`` keeps up to ``per_subscription`` records for each of at most ``cap`` subscriptions (the oldest
enabled push subscriptions with an active follow, read with ``AlertStore.push_subscriptions``), in this process's
memory only: the records hold content-encryption keys, so they are never written to disk or logs (``Prepared`` has
no repr) and ``stop`` drops them. A record is handed out ONCE: ``take`` removes it from the pool before returning it,
so it is never used for a second message, a retry included (the retry takes another record, or finds none and
encrypts in full). That is what keeps precomputing within RFC 8291: each key pair and salt still serve exactly one
message; only the moment they are made moves earlier (see ``push.prepare``).

Filling is low priority, on the event loop: the pool is read from the store every ``refresh_s`` (and soon after a
``take``; after passes that found nothing to do, less and less often, down to every ``MAX_REFRESH_S``); records of
subscriptions no longer there (deleted, expired, unfollowed, keys changed — the key is the endpoint with both keys) are
dropped and missing ones prepared, a slice of at most ``slice_s`` of CPU at a time with ``await asyncio.sleep(0)``
between slices, and nothing at all (not even the store read) until ``quiet_s`` have passed since the last ``take`` and,
when the owner says so (``busy``: ``DeliveryWorkers`` passes "a send is in flight"), nothing is being sent: during a
burst the CPU goes to sending, and the pool refills after it. A thread would not help: the EC operations hold the
GIL, so a thread would only take the loop away in longer, unscheduled pieces.

Memory: a record is about 270 bytes and a subscription's key 49 (a 16-byte hash of endpoint and keys, not the
strings); measured with the dict, about 460 bytes per subscription, so the default cap of 50,000 subscriptions with
one record each stays near 22 MiB. Every process with a started ``DeliveryWorkers`` keeps its own pool.

How it is meant to be wired: ``DeliveryWorkers`` owns one (``push_pool_cap``; 0 turns it off), starts and stops it
with itself, and passes ``prepared=pool.take(subscription)`` to ``push.build_push``; ``None`` (no record yet) means
``build_push`` encrypts in full.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from alerts.push import Prepared, PushSubscription, prepare

log = logging.getLogger(__name__)

DEFAULT_CAP = 50_000
DEFAULT_PER_SUBSCRIPTION = 1  # one alert per subscription per burst: a vote reaches each subscription once
REFRESH_S = 5.0
MAX_REFRESH_S = 60.0  # the longest wait between passes while nothing changes (a new subscription waits this long)
QUIET_S = 1.0
SLICE_S = 0.0005  # at most this much preparing per turn of the event loop (one record is ~0.1-0.3 ms)
BUSY_POLL_S = 0.1  # how often a refill waiting for the owner's sends to end looks again
READ_STEP = 500  # subscriptions keyed per turn of the loop when reconciling the store's list


class SubscriptionSource(Protocol):
    """Where the subscriptions to prepare for come from (``AlertStore`` is one)."""

    async def push_subscriptions(self, *, limit: int) -> Sequence[PushSubscription]: ...


def subscription_key(sub: PushSubscription) -> bytes:
    """The pool's key for a subscription: its endpoint and both keys (new keys on the same endpoint are another
    subscription), hashed to 16 bytes so that 50,000 of them stay small."""
    text = f"{sub.endpoint}\n{sub.p256dh}\n{sub.auth}".encode()
    return hashlib.blake2b(text, digest_size=16).digest()


class PreparedPool:
    """Prepared RFC 8291 records per subscription, bounded, filled in idle time (module docstring). ``clock`` is
    injectable for tests."""

    def __init__(
        self,
        source: SubscriptionSource,
        *,
        cap: int = DEFAULT_CAP,
        per_subscription: int = DEFAULT_PER_SUBSCRIPTION,
        refresh_s: float = REFRESH_S,
        quiet_s: float = QUIET_S,
        slice_s: float = SLICE_S,
        clock: Callable[[], float] = time.monotonic,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        if cap < 1 or per_subscription < 1:
            raise ValueError("cap and per_subscription must be at least 1")
        self.source = source
        self.cap = cap
        self.per_subscription = per_subscription
        self.refresh_s = refresh_s
        self.quiet_s = quiet_s
        self.slice_s = slice_s
        self.clock = clock
        self.busy = busy
        self._records: dict[bytes, list[Prepared]] = {}
        self._last_take = float("-inf")
        self._dropped = 0  # subscriptions whose records the last refresh dropped
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Counters for operators and the benchmark (no secrets): records handed out, takes that found none (the
        # message was encrypted in full), records made.
        self.taken = 0
        self.missed = 0
        self.made = 0

    def take(self, sub: PushSubscription) -> Prepared | None:
        """A prepared record for ``sub``'s current keys, removed from the pool so that no one gets it again; None
        when there is none (encrypt in full). Use it for one message only, sent or not."""
        self._last_take = self.clock()
        self._wake.set()  # refill once the burst is over
        key = subscription_key(sub)
        records = self._records.get(key)
        if not records:
            self.missed += 1
            return None
        record = records.pop()
        if not records:
            del self._records[key]
        self.taken += 1
        return record

    def discard(self, sub: PushSubscription) -> None:
        """Forget ``sub``'s records now (a subscription known to be gone); the next refresh would anyway."""
        self._records.pop(subscription_key(sub), None)

    def __len__(self) -> int:
        """Subscriptions holding at least one record (never more than ``cap``)."""
        return len(self._records)

    @property
    def records(self) -> int:
        return sum(len(r) for r in self._records.values())

    def stats(self) -> dict[str, int]:
        return {
            "subscriptions": len(self),
            "records": self.records,
            "taken": self.taken,
            "missed": self.missed,
            "made": self.made,
        }

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="alerts-push-keys")

    async def stop(self) -> None:
        """Stop filling and drop every record (they exist only in this process's memory)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._records.clear()

    async def _run(self) -> None:
        interval = self.refresh_s
        while True:
            try:
                changed = await self.refresh() > 0 or self._dropped > 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store closed or busy: try again later; never log a record
                log.warning(
                    "preparing Web Push encryption failed (%s); retrying in %.0f s", type(exc).__name__, self.refresh_s
                )
                changed = True
            # A pass that found nothing to do doubles the wait, up to MAX_REFRESH_S: reading and keying 9,000
            # subscriptions costs ~40 ms of CPU, every 5 s for ever on an idle server. A take (a send) wakes it at
            # once, and a pass that found new or gone subscriptions brings it back to ``refresh_s``.
            interval = self.refresh_s if changed else min(2 * interval, max(self.refresh_s, MAX_REFRESH_S))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)

    async def _quiet(self) -> None:
        """Return once no ``take`` has happened for ``quiet_s`` and ``busy()`` (the owner's sends in flight) is
        false: a burst is over. Takes alone left a gap: a burst's webhooks, or a stretch in which another process
        took the push rows, went a second without a take, and a refill (~0.13 ms per record) then ran between the
        sends and counted in the burst."""
        while True:
            wait = self._last_take + self.quiet_s - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            elif self.busy is not None and self.busy():
                await asyncio.sleep(BUSY_POLL_S)
            else:
                return

    async def refresh(self) -> int:
        """One pass: read the subscriptions, drop the records of those gone, prepare the missing ones; the number
        of records made."""
        await self._quiet()
        subs = await self.source.push_subscriptions(limit=self.cap)
        wanted: dict[bytes, PushSubscription] = {}
        for i, sub in enumerate(subs[: self.cap]):
            wanted[subscription_key(sub)] = sub
            if i % READ_STEP == READ_STEP - 1:
                await asyncio.sleep(0)
        # Only keys in ``wanted`` (at most ``cap``) survive this and only they are added below, so the pool never
        # holds more than ``cap`` subscriptions.
        gone = self._records.keys() - wanted.keys()
        for key in gone:
            del self._records[key]
        self._dropped = len(gone)
        todo = [(k, s) for k, s in wanted.items() if len(self._records.get(k, ())) < self.per_subscription]
        del wanted, subs
        made = 0
        i = 0
        while i < len(todo):
            await self._quiet()
            start = time.perf_counter()
            while i < len(todo) and (time.perf_counter() - start < self.slice_s):
                key, sub = todo[i]
                i += 1
                records = self._records.get(key, [])
                try:
                    while len(records) < self.per_subscription:
                        records.append(prepare(sub.p256dh, sub.auth))
                        made += 1
                        self.made += 1
                except ValueError:
                    continue  # keys that are not a P-256 point: the full path refuses them the same way
                self._records[key] = records
            await asyncio.sleep(0)
        return made
