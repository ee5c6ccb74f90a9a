"""Sans-I/O rate limits for the desk: token buckets (messages, lookups) and the login throttle (failures).

Both take an injected clock (a function returning seconds, ``time.monotonic`` in the server) and hold their
state in memory, per process, bounded by ``max_keys``: the least recently touched key is forgotten first. A
forgotten bucket starts full again and a forgotten login counter at zero, so an attacker who wants to reset a
key must first touch ``max_keys`` others, each costing them a request that is itself limited.

Neither does any I/O or sleeps: they answer "how many seconds until this may go ahead" (0 = now), and the
endpoint answers 429 with ``Retry-After`` (rounded up) instead of waiting.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]
DEFAULT_MAX_KEYS = 100_000


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` for a wait of ``seconds``: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


@dataclass(frozen=True, slots=True)
class BucketPolicy:
    """``capacity`` requests in a burst, refilled at ``per_s`` tokens a second."""

    capacity: float
    per_s: float

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.per_s <= 0:
            raise ValueError("a bucket needs capacity >= 1 and a positive refill rate")


class TokenBuckets:
    """One token bucket per key: ``take(key)`` spends a token, or says how long until one is there."""

    def __init__(self, policy: BucketPolicy, *, clock: Clock, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.policy = policy
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → (tokens, at)

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.policy.capacity, now))
        return min(self.policy.capacity, tokens + max(0.0, now - at) * self.policy.per_s)

    def take(self, key: str, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens of ``key``'s bucket: 0.0 when spent, else the seconds until they would be there.

        A refused take spends nothing, so a client that waits the answer's seconds is then admitted.
        """
        now = self._clock()
        tokens = self._level(key, now)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (cost - tokens) / self.policy.per_s
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How failures slow and then lock one key.

    The first ``free_failures`` cost nothing; each later failure doubles the wait before the next try, from
    ``base_delay_s`` up to ``max_delay_s``; ``lockout_failures`` failures lock the key for ``lockout_s``. A key
    with no failure for ``window_s`` starts over.
    """

    free_failures: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    lockout_failures: int = 10
    lockout_s: float = 900.0
    window_s: float = 900.0

    def delay(self, failures: int) -> float:
        over = failures - self.free_failures
        if over <= 0:
            return 0.0
        return min(self.max_delay_s, self.base_delay_s * 2 ** min(over - 1, 32))


@dataclass(slots=True)
class _Failures:
    count: int
    last: float
    locked_until: float


class FailureCounter:
    """Counted failures per key under one ``ThrottlePolicy``."""

    def __init__(self, policy: ThrottlePolicy, *, clock: Clock, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.policy = policy
        self._clock = clock
        self._max_keys = max_keys
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def _current(self, key: str, now: float) -> _Failures | None:
        entry = self._keys.get(key)
        if entry is not None and now >= entry.locked_until and now - entry.last >= self.policy.window_s:
            del self._keys[key]
            return None
        return entry

    def wait(self, key: str) -> float:
        """Seconds before ``key`` may try again (0.0: now)."""
        now = self._clock()
        entry = self._current(key, now)
        if entry is None:
            return 0.0
        if now < entry.locked_until:
            return entry.locked_until - now
        return max(0.0, entry.last + self.policy.delay(entry.count) - now)

    def locked(self, key: str) -> bool:
        entry = self._current(key, self._clock())
        return entry is not None and self._clock() < entry.locked_until

    def fail(self, key: str) -> None:
        now = self._clock()
        entry = self._current(key, now)
        if entry is None:
            entry = self._keys[key] = _Failures(count=0, last=now, locked_until=0.0)
        if now >= entry.locked_until > 0.0:
            # A lockout that ran out starts the count over, so the next failure is not another lockout at once.
            entry.count, entry.locked_until = 0, 0.0
        entry.count += 1
        entry.last = now
        if entry.count >= self.policy.lockout_failures:
            entry.locked_until = now + self.policy.lockout_s
        self._keys.move_to_end(key)
        while len(self._keys) > self._max_keys:
            self._keys.popitem(last=False)

    def clear(self, key: str) -> None:
        self._keys.pop(key, None)


class LoginThrottle:
    """Failed logins counted per account name and per client address, each under its own policy.

    The driver's order, for every login attempt (``AccountStore.login`` does exactly this):

    1. ``wait(username, ip)`` > 0 → refuse with 429 and ``Retry-After``, *without* checking the password, so a
       locked account does not tell an attacker whether their guess was right;
    2. check the password; wrong or unknown account → ``failed(username, ip)`` and 401;
    3. right → ``succeeded(username)``: the account starts over, the address does not (one success in a
       credential-stuffing run must not reset the count of all the others).

    The address policy is looser by default: many staff share the parliament's NAT.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        account: ThrottlePolicy | None = None,
        ip: ThrottlePolicy | None = None,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self.accounts = FailureCounter(account or ThrottlePolicy(), clock=clock, max_keys=max_keys)
        self.addresses = FailureCounter(
            ip or ThrottlePolicy(free_failures=10, lockout_failures=50), clock=clock, max_keys=max_keys
        )

    @staticmethod
    def _name(username: str) -> str:
        # Case variants of one name are one account to the store, so they share one counter.
        return username.strip().casefold()

    def wait(self, username: str, ip: str) -> float:
        return max(self.accounts.wait(self._name(username)), self.addresses.wait(ip))

    def failed(self, username: str, ip: str) -> None:
        self.accounts.fail(self._name(username))
        self.addresses.fail(ip)

    def succeeded(self, username: str) -> None:
        self.accounts.clear(self._name(username))
