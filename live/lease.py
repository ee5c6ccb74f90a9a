"""Owning something across server processes: a Redis lease, renewed while held, given up the moment it may not be.

Several ``server.py`` processes behind one Redis all know the same feeds; each feed is run by exactly one of them,
the one holding its lease. A lease is one key, ``<prefix>:lease:<name>``, whose value names the holder
(``host:pid:token``): taken with ``SET NX PX ttl``, kept by renewing it every ``renew_every_s`` with a
compare-and-extend script (only the holder's own value is extended), and given back with a compare-and-delete.
A holder that is killed stops renewing, so its lease expires after at most ``ttl_s`` and a standby process takes
it at its next attempt.

The holder's side is conservative: it counts its lease from the moment it *sent* the request that took or renewed
it, so by its own clock the lease ends no later than Redis's does. When a renewal is refused (someone else holds
the key) or has not been confirmed by then (Redis unreachable, the reply lost), ``hold`` cancels the work at once:
a holder that stops in time never overlaps with the next one. Only a process whose event loop stalls for longer
than the lease (so that it cannot even notice) could; the lease is no fencing token.

Next to the lease, ``<prefix>:lease:<name>:since`` keeps the Unix time the thing was first taken, and outlives
holders (it is renewed with the lease, and forgotten ``memory_s`` after the last holder, or at once when the work
ended normally). A new holder uses it to carry on a clock its predecessor started: a feed's archive keeps counting
time from the start of the sitting's feed, not from the takeover.

``LeaseTimer`` is the decision part (when to renew, when the lease must be taken as lost), without I/O or clocks
of its own, so its tests drive it with numbers; ``RedisLease`` does the Redis calls; ``hold`` joins them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

# A killed holder's feed is taken over after at most TTL_S + RENEW_EVERY_S (plus the start of the new feed).
TTL_S = 5.0
# Renewing three times per ttl lets one renewal fail (a Redis blip) without losing the lease.
RENEW_EVERY_S = 1.5
# How long ``since`` outlives the last holder: a sitting's feed down for less than this resumes its clock.
MEMORY_S = 12 * 3600.0

# KEYS[1] the lease, KEYS[2] its ``since``; ARGV: 1 holder, 2 ttl ms, 3 now (Unix s), 4 memory ms.
# Returns {1, since} when taken, {0, holder} when someone else holds it.
_ACQUIRE_LUA = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[3], 'NX')
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  return {1, redis.call('GET', KEYS[2])}
end
return {0, redis.call('GET', KEYS[1]) or ''}
"""

# ARGV: 1 holder, 2 ttl ms, 3 memory ms. 1 when extended, 0 when the key is not (or no longer) this holder's.
_EXTEND_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return 1
end
return 0
"""

# ARGV: 1 holder, 2 "1" to forget ``since`` too (the work is over). Deletes only this holder's lease.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[2] == '1' then redis.call('DEL', KEYS[2]) end
  return 1
end
return 0
"""


def holder_id() -> str:
    """This process's name as a lease holder: host and pid (shown in ``/healthz``), and a token, never reused."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def holder_pid(holder: str | None) -> int | None:
    """The pid in a ``holder_id``; ``None`` for no holder or one that does not look like ours."""
    if not holder:
        return None
    parts = holder.rsplit(":", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


class LeaseTimer:
    """When the holder renews, and when it must assume its lease is gone; times are the caller's monotonic clock.

    ``taken(sent_at)`` after Redis confirmed a take or a renewal sent at ``sent_at``; ``refused()`` when Redis
    said the lease is someone else's. ``due(now)`` says what to do next: ``None`` when the lease must be taken as
    lost (stop the work), else how long to wait before the next renewal (0: now). ``remaining(now)`` bounds how
    long a renewal may take: an answer that comes later is too late to count.
    """

    def __init__(self, ttl_s: float = TTL_S, renew_every_s: float = RENEW_EVERY_S) -> None:
        if not 0 < renew_every_s < ttl_s:
            raise ValueError(f"need 0 < renew_every_s < ttl_s, not {renew_every_s} and {ttl_s}")
        self.ttl_s = ttl_s
        self.renew_every_s = renew_every_s
        self._sent_at: float | None = None  # of the last request Redis confirmed

    def taken(self, sent_at: float) -> None:
        self._sent_at = sent_at

    def refused(self) -> None:
        self._sent_at = None

    def held(self, now: float) -> bool:
        return self._sent_at is not None and now < self._sent_at + self.ttl_s

    def remaining(self, now: float) -> float:
        return max(0.0, self._sent_at + self.ttl_s - now) if self._sent_at is not None else 0.0

    def due(self, now: float) -> float | None:
        if not self.held(now):
            return None
        assert self._sent_at is not None
        # After a failed renewal ``now`` is past the renewal time: retry at once, while time is left.
        return max(0.0, self._sent_at + self.renew_every_s - now)


class Lease(Protocol):
    """One named lease, as a holder sees it. Every call may raise the store's connection errors.

    ``acquire`` takes it when free: ``(True, since)`` with the Unix time it was first taken (see the module
    docstring), or ``(False, holder)`` naming who has it ("" when nobody could be named). ``extend`` renews it,
    ``False`` when it is no longer ours. ``release`` gives it back if still ours; ``finished`` also forgets ``since``.
    """

    async def acquire(self, now_unix: float) -> tuple[bool, str]: ...

    async def extend(self) -> bool: ...

    async def release(self, finished: bool) -> None: ...


class RedisLease:
    """``Lease`` on a Redis key (``redis.asyncio.Redis`` client); see the module docstring for the keys."""

    def __init__(
        self,
        redis: Any,
        prefix: str,
        name: str,
        *,
        holder: str | None = None,
        ttl_s: float = TTL_S,
        memory_s: float = MEMORY_S,
    ) -> None:
        self.redis = redis
        self.key = f"{prefix}:lease:{name}"
        self.since_key = f"{self.key}:since"
        self.holder = holder or holder_id()
        self._ttl_ms = str(round(ttl_s * 1000))
        self._memory_ms = str(round(memory_s * 1000))
        self._acquire = redis.register_script(_ACQUIRE_LUA)
        self._extend = redis.register_script(_EXTEND_LUA)
        self._release = redis.register_script(_RELEASE_LUA)

    async def acquire(self, now_unix: float) -> tuple[bool, str]:
        keys = [self.key, self.since_key]
        took, value = await self._acquire(keys=keys, args=[self.holder, self._ttl_ms, repr(now_unix), self._memory_ms])
        text = value.decode() if isinstance(value, bytes) else str(value)
        return bool(took), text

    async def extend(self) -> bool:
        keys = [self.key, self.since_key]
        return bool(await self._extend(keys=keys, args=[self.holder, self._ttl_ms, self._memory_ms]))

    async def release(self, finished: bool) -> None:
        await self._release(keys=[self.key, self.since_key], args=[self.holder, "1" if finished else "0"])


@dataclass
class Ownership:
    """What ``/healthz`` shows of a lease: who holds it (as far as this process last saw) and whether it is us."""

    name: str
    holder: str | None = None
    here: bool = False
    takeovers: int = 0  # times this process took the lease

    @property
    def owner_pid(self) -> int | None:
        return holder_pid(self.holder)


Work = Callable[[float], Awaitable[None]]


async def hold(
    lease: Lease,
    work: Work,
    *,
    timer: LeaseTimer | None = None,
    ownership: Ownership | None = None,
    retry_s: float = RENEW_EVERY_S,
    monotonic: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> None:
    """Run ``work(since)`` whenever this process holds ``lease``, and only then; forever, until ``work`` returns.

    Waits (trying every ``retry_s``) until the lease is free, takes it and runs ``work`` with the Unix time the
    lease was first taken, renewing meanwhile. When a renewal is refused or not confirmed in time, ``work`` is
    cancelled at once and the wait starts again. When ``work`` returns, the lease is released (and its ``since``
    forgotten) and ``hold`` returns; when it raises, the lease is released for another process to try, and the
    error propagates. Errors reaching Redis are logged and retried; cancelling ``hold`` cancels ``work`` and
    releases the lease.
    """
    timer = timer or LeaseTimer()
    state = ownership or Ownership("lease")
    while True:
        since = await _take(lease, timer, state, retry_s, monotonic, wall)
        state.here = True
        state.takeovers += 1
        task = asyncio.ensure_future(work(since))
        lost = False
        try:
            lost = await _keep(lease, timer, task, monotonic)
        finally:
            state.here = False
            if not task.done():
                task.cancel()
                # ``wait``, not ``await task``: the work's cancellation must not be mistaken for our own.
                await asyncio.wait({task})
            if not lost:
                finished = task.done() and not task.cancelled() and task.exception() is None
                await _release(lease, finished)
        if not lost:
            task.result()  # the work's own error, if any
            return
        log.warning("lease %s lost: the work stopped; waiting to take it again", state.name)


# Timeouts use ``asyncio.timeout``: Python 3.11's ``wait_for`` can swallow a cancellation that arrives just as the
# call it waits on completes, and a ``hold`` that ignores being cancelled never stops.


async def _take(
    lease: Lease,
    timer: LeaseTimer,
    state: Ownership,
    retry_s: float,
    monotonic: Callable[[], float],
    wall: Callable[[], float],
) -> float:
    """Wait until the lease is ours; returns its ``since``."""
    reported = False
    while True:
        sent = monotonic()
        try:
            async with asyncio.timeout(timer.ttl_s):
                took, value = await lease.acquire(wall())
        except Exception as exc:
            if not reported:
                log.warning("lease %s: cannot reach the lease store: %r; retrying", state.name, exc)
                reported = True
        else:
            if took:
                timer.taken(sent)
                state.holder = getattr(lease, "holder", None)
                return float(value)
            state.holder = value or None
        await asyncio.sleep(retry_s)


async def _keep(lease: Lease, timer: LeaseTimer, task: asyncio.Future[None], monotonic: Callable[[], float]) -> bool:
    """Renew until ``task`` is done (False) or the lease is lost (True)."""
    while True:
        wait = timer.due(monotonic())
        if wait is None:
            return True
        done, _ = await asyncio.wait({task}, timeout=wait)
        if done:
            return False
        sent = monotonic()
        remaining = timer.remaining(sent)
        if remaining <= 0:
            return True
        try:
            async with asyncio.timeout(remaining):
                extended = await lease.extend()
        except Exception as exc:
            # Not lost yet: ``due`` says whether time is left for another try.
            log.warning("lease renewal failed: %r", exc)
            await asyncio.sleep(min(0.1, timer.remaining(monotonic())))
            continue
        if not extended:
            timer.refused()
            return True
        timer.taken(sent)


async def _release(lease: Lease, finished: bool) -> None:
    try:
        async with asyncio.timeout(TTL_S):
            await lease.release(finished)
    except Exception as exc:
        # It expires by itself: the next holder only waits a little longer.
        log.warning("could not release a lease: %r", exc)
