"""When to try a delivery again, and when to give up on an endpoint: sans-I/O, times in seconds on any clock.

The retry schedule is the one Standard Webhooks recommends (and Svix uses): after the first attempt fails, try again
after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h — eight attempts over about 27.6 hours — then mark the delivery
failed. Each wait is jittered by ±20 % so that the thousands of deliveries of one vote, failing together when a big
receiver is down, do not come back together. The immediate first attempt is not jittered.

``Retry-After`` (on a 429 or 503, in seconds or as an HTTP date) is honoured: the next attempt is never before it,
up to ``MAX_RETRY_AFTER_S`` (a day), beyond which the receiver is not trusted and the schedule's wait is used.

What each answer means (``classify``):

* 2xx — delivered.
* 410 Gone — the receiver says the endpoint is gone: the endpoint is disabled, nothing more is sent to it.
* anything else (3xx: redirects are not followed; 4xx; 5xx; a timeout or a refused connection) — failed, retried on
  the schedule.

``EndpointHealth`` decides when a receiver that keeps failing is disabled: after ``DISABLE_AFTER_FAILURES``
consecutive failed attempts spanning at least ``DISABLE_AFTER_S`` (5 days, as Svix does) with no success between.
Both conditions, so that neither a burst of failures in one minute nor one failure a week ago disables it.

How it is meant to be wired: each outbox row keeps ``attempts`` and ``next_at``; the worker claims rows whose
``next_at`` has come, POSTs, and stores ``after_attempt(...)``'s answer in the same transaction that records the
attempt; the endpoint row keeps an ``EndpointHealth`` (two columns) updated with ``record``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from enum import StrEnum

# Waits before attempts 2..8 (attempt 1 is immediate).
RETRY_SCHEDULE_S: tuple[float, ...] = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
MAX_ATTEMPTS = len(RETRY_SCHEDULE_S) + 1
JITTER = 0.2
MAX_RETRY_AFTER_S = 24 * 3600.0
DISABLE_AFTER_FAILURES = 20
DISABLE_AFTER_S = 5 * 24 * 3600.0


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # failed; try again per the schedule
    GONE = "gone"  # 410 (webhook) or 404/410 (push): stop sending to this endpoint


@dataclass(frozen=True)
class AttemptResult:
    """What one POST came to: the status (None when no answer: timeout, refused, reset) and ``Retry-After``."""

    status: int | None
    retry_after: str | None = None
    error: str | None = None


def classify(status: int | None, *, gone: frozenset[int] = frozenset({410})) -> Outcome:
    """The meaning of an answer (see the module docstring); push passes ``gone={404, 410}`` (RFC 8030 sec. 7.3)."""
    if status is not None and 200 <= status < 300:
        return Outcome.DELIVERED
    if status is not None and status in gone:
        return Outcome.GONE
    return Outcome.RETRY


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from ``now`` (Unix time) as ``Retry-After`` asks, or None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def retry_delay(attempts: int, rng: random.Random) -> float | None:
    """Seconds to wait after ``attempts`` failed attempts (1 after the first), jittered; None when exhausted."""
    if attempts < 1 or attempts > len(RETRY_SCHEDULE_S):
        return None
    step = RETRY_SCHEDULE_S[attempts - 1]
    return step * (1.0 + rng.uniform(-JITTER, JITTER))


@dataclass(frozen=True)
class DeliveryState:
    """One delivery's progress: attempts made, when to try next (None when finished), how it finished."""

    attempts: int = 0
    next_at: float | None = 0.0  # due immediately
    outcome: str | None = None  # None while pending; "delivered", "gone" or "failed"


def after_attempt(state: DeliveryState, result: AttemptResult, *, now: float, rng: random.Random) -> DeliveryState:
    """The delivery's state once the attempt that ended at ``now`` came to ``result`` (webhook statuses)."""
    return after_outcome(state, classify(result.status), result.retry_after, now=now, rng=rng)


def after_outcome(
    state: DeliveryState, outcome: Outcome, retry_after: str | None, *, now: float, rng: random.Random
) -> DeliveryState:
    """As ``after_attempt`` with the answer already classified (push classifies its own statuses)."""
    attempts = state.attempts + 1
    if outcome is Outcome.DELIVERED:
        return DeliveryState(attempts, None, "delivered")
    if outcome is Outcome.GONE:
        return DeliveryState(attempts, None, "gone")
    wait = retry_delay(attempts, rng)
    if wait is None:
        return DeliveryState(attempts, None, "failed")
    asked = parse_retry_after(retry_after, now)
    if asked is not None and asked <= MAX_RETRY_AFTER_S:
        wait = max(wait, asked)
    return DeliveryState(attempts, now + wait, None)


@dataclass(frozen=True)
class EndpointHealth:
    """An endpoint's failure streak; ``disabled`` says why it gets nothing more (None while enabled)."""

    consecutive_failures: int = 0
    failing_since: float | None = None
    disabled: str | None = None

    def record(self, outcome: Outcome, now: float) -> EndpointHealth:
        """The health after an attempt to this endpoint came to ``outcome`` at ``now``."""
        if self.disabled is not None:
            return self
        if outcome is Outcome.DELIVERED:
            return EndpointHealth()
        if outcome is Outcome.GONE:
            return replace(self, disabled="gone")
        since = self.failing_since if self.failing_since is not None else now
        failures = self.consecutive_failures + 1
        disabled = None
        if failures >= DISABLE_AFTER_FAILURES and now - since >= DISABLE_AFTER_S:
            disabled = "failing"
        return EndpointHealth(failures, since, disabled)
