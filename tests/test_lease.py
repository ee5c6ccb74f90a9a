"""Feed leases (live/lease.py) and the --workers restart policy (live/workers.py).

The timer and the policy are driven with numbers; ``hold`` with an in-memory lease whose answers the test sets;
``RedisLease`` against the real Redis.
"""

from __future__ import annotations

import asyncio
import random

import pytest
import redis.asyncio

from live.lease import LeaseTimer, Ownership, RedisLease, hold, holder_id, holder_pid
from live.workers import RestartPolicy
from server import parse_args

# ---- LeaseTimer -------------------------------------------------------------------------------------------------


@pytest.mark.fast
def test_a_lease_is_counted_from_when_its_request_was_sent() -> None:
    """Taken by a request sent at 10, a 5 s lease is held until just before 15 by the holder's clock, not after."""
    timer = LeaseTimer(ttl_s=5, renew_every_s=1.5)
    assert not timer.held(0)
    timer.taken(10)
    assert timer.held(14.99)
    assert not timer.held(15)
    assert timer.remaining(12) == 3


@pytest.mark.fast
def test_renewals_are_due_every_renew_interval_and_retried_at_once_when_late() -> None:
    """Renewal is due renew_every_s after the last confirmed one; past that (a renewal failed) it is due now."""
    timer = LeaseTimer(ttl_s=5, renew_every_s=1.5)
    timer.taken(10)
    assert timer.due(10) == 1.5
    assert timer.due(11) == 0.5
    assert timer.due(13) == 0
    timer.taken(11.5)
    assert timer.due(11.5) == 1.5


@pytest.mark.fast
def test_an_unconfirmed_or_refused_lease_is_lost() -> None:
    """Without a confirmed renewal within ttl the lease is lost (due is None); a refusal loses it at once."""
    timer = LeaseTimer(ttl_s=5, renew_every_s=1.5)
    timer.taken(10)
    assert timer.due(14.9) == 0
    assert timer.due(15) is None
    timer.taken(20)
    timer.refused()
    assert timer.due(20) is None and timer.remaining(20) == 0


@pytest.mark.fast
def test_renewing_must_come_before_expiry() -> None:
    """A timer whose renewal interval is not shorter than its ttl is refused."""
    with pytest.raises(ValueError):
        LeaseTimer(ttl_s=1, renew_every_s=1)


@pytest.mark.fast
def test_the_holder_pid_is_read_from_the_holder_id() -> None:
    """/healthz shows the pid inside a holder id; anything else shows as no pid."""
    assert holder_pid("box:4242:abcd") == 4242
    assert holder_pid(holder_id()) is not None
    assert holder_pid(None) is None and holder_pid("") is None and holder_pid("nonsense") is None


# ---- hold -------------------------------------------------------------------------------------------------------


class ScriptedLease:
    """A lease whose answers the test decides: ``free`` (acquire), ``ours`` (extend), ``broken`` (extend raises)."""

    def __init__(self) -> None:
        self.holder = "here:1:aa"
        self.free = True
        self.ours = True
        self.broken = False
        self.since = 1000.0
        self.acquired = 0
        self.released: list[bool] = []

    async def acquire(self, now_unix: float) -> tuple[bool, str]:
        if not self.free:
            return False, "there:2:bb"
        self.free = False
        self.ours = True
        self.acquired += 1
        return True, repr(self.since)

    async def extend(self) -> bool:
        if self.broken:
            raise ConnectionError("redis is away")
        return self.ours

    async def release(self, finished: bool) -> None:
        self.released.append(finished)
        self.free = True


FAST = LeaseTimer(ttl_s=0.3, renew_every_s=0.02)


async def _until(check: object, what: str) -> None:
    """Poll ``check()``; the limit only stops a broken run from hanging."""
    for _ in range(2000):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.fast
async def test_work_runs_with_since_and_finishing_releases_the_lease_for_good() -> None:
    """The work gets the lease's since; when it returns, the lease is released with since forgotten."""
    lease = ScriptedLease()
    got: list[float] = []

    async def work(since: float) -> None:
        got.append(since)

    await hold(lease, work, timer=FAST, retry_s=0.01)
    assert got == [1000.0]
    assert lease.released == [True]


@pytest.mark.fast
async def test_a_standby_waits_and_shows_who_holds_the_lease() -> None:
    """While another process holds the lease the work does not run, and the holder's pid is shown."""
    lease = ScriptedLease()
    lease.free = False
    owner = Ownership("feed:x")
    started = asyncio.Event()

    async def work(since: float) -> None:
        started.set()

    task = asyncio.create_task(hold(lease, work, timer=FAST, ownership=owner, retry_s=0.01))
    await _until(lambda: owner.holder == "there:2:bb", "the other holder to be seen")
    assert owner.owner_pid == 2 and not owner.here and not started.is_set()
    lease.free = True
    await task
    assert started.is_set() and owner.takeovers == 1


@pytest.mark.fast
async def test_a_refused_renewal_cancels_the_work_and_the_lease_is_taken_again_later() -> None:
    """Another process took the lease: the work is cancelled at once, then restarted when the lease comes back."""
    lease = ScriptedLease()
    owner = Ownership("feed:x")
    runs: list[str] = []
    done = asyncio.Event()

    async def work(since: float) -> None:
        runs.append("started")
        try:
            if len(runs) == 1:
                await asyncio.Event().wait()  # runs until cancelled
        except asyncio.CancelledError:
            runs.append("cancelled")
            raise
        done.set()

    task = asyncio.create_task(hold(lease, work, timer=FAST, ownership=owner, retry_s=0.01))
    await _until(lambda: owner.here, "the lease to be taken")
    lease.ours = False  # someone else's now: it is not free until they let it go
    await _until(lambda: runs == ["started", "cancelled"], "the work to be cancelled")
    assert not owner.here and lease.released == []
    lease.free = True
    await task
    assert runs == ["started", "cancelled", "started"] and lease.acquired == 2 and owner.takeovers == 2


@pytest.mark.fast
async def test_renewals_that_cannot_reach_redis_until_expiry_lose_the_lease() -> None:
    """Renewals that fail until the holder's ttl has run out stop the work, without a release (it cannot reach)."""
    lease = ScriptedLease()
    owner = Ownership("feed:x")
    cancelled = asyncio.Event()

    async def work(since: float) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.create_task(hold(lease, work, timer=FAST, ownership=owner, retry_s=0.01))
    await _until(lambda: owner.here, "the lease to be taken")
    lease.broken = True
    await asyncio.wait_for(cancelled.wait(), 10)
    assert not owner.here and lease.released == []
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.mark.fast
async def test_cancelling_hold_stops_the_work_and_releases_the_lease() -> None:
    """A process shutting down gives its lease back (keeping since), so another takes over without waiting."""
    lease = ScriptedLease()
    owner = Ownership("feed:x")

    async def work(since: float) -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(hold(lease, work, timer=FAST, ownership=owner, retry_s=0.01))
    await _until(lambda: owner.here, "the lease to be taken")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert lease.released == [False] and not owner.here


@pytest.mark.fast
async def test_work_that_fails_releases_the_lease_and_raises() -> None:
    """A feed that crashes lets its lease go for another process to try, and the error is not swallowed."""
    lease = ScriptedLease()

    async def work(since: float) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await hold(lease, work, timer=FAST, retry_s=0.01)
    assert lease.released == [False]


# ---- RestartPolicy ----------------------------------------------------------------------------------------------


@pytest.mark.fast
def test_a_worker_that_ran_a_while_is_restarted_at_once() -> None:
    """A worker killed after running normally is replaced immediately, and resets the count of young deaths."""
    policy = RestartPolicy(young_s=15, give_up_after=3, rng=random.Random(1))
    assert policy.exited(1.0) is not None
    assert policy.exited(600.0) == 0.0
    assert policy.young_deaths == 0


@pytest.mark.fast
def test_workers_that_keep_dying_young_back_off_then_give_up() -> None:
    """Quick deaths in a row are restarted after growing waits; after give_up_after of them, not at all."""
    policy = RestartPolicy(young_s=15, give_up_after=3, rng=random.Random(1))
    first, second = policy.exited(0.5), policy.exited(0.5)
    assert first is not None and second is not None and 0 < first < second
    assert policy.exited(0.5) is None


@pytest.mark.fast
def test_several_workers_need_redis(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """--workers 2 without REDIS_URL is a command-line error that says why; with it, it is accepted."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(SystemExit) as exc:
        parse_args(["--workers", "2"])
    assert exc.value.code == 2 and "--workers > 1 needs REDIS_URL" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--workers", "0"])
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert parse_args(["--workers", "2"]).workers == 2


# ---- RedisLease -------------------------------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_lease_is_exclusive_and_only_its_holder_extends_or_releases_it(
    redis_url: str, redis_prefix: str
) -> None:
    """Two holders: one takes the lease, the other is told who has it and can neither extend nor release it."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        a = RedisLease(client, redis_prefix, "feed:s", holder="a:1:x")
        b = RedisLease(client, redis_prefix, "feed:s", holder="b:2:y")
        assert await a.acquire(1000.0) == (True, "1000.0")
        assert await b.acquire(2000.0) == (False, "a:1:x")
        assert not await b.extend()
        await b.release(finished=True)
        assert await a.extend()
        assert await client.get(a.key) == b"a:1:x"
        await a.release(finished=False)
        # Free again, and since is kept: the next holder counts from the first.
        assert await b.acquire(3000.0) == (True, "1000.0")
        await b.release(finished=True)
        assert await client.exists(b.key, b.since_key) == 0
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_redis_lease_expires_when_not_renewed(redis_url: str, redis_prefix: str) -> None:
    """A holder that stops renewing (killed) loses the lease after its ttl; the next holder takes it."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        a = RedisLease(client, redis_prefix, "feed:s", holder="a:1:x", ttl_s=0.05)
        b = RedisLease(client, redis_prefix, "feed:s", holder="b:2:y", ttl_s=0.05)
        assert (await a.acquire(1000.0))[0]
        await _until_async(lambda: b.acquire(2000.0), "the lease to expire")
        assert not await a.extend()
    finally:
        await client.aclose()


async def _until_async(attempt: object, what: str) -> None:
    for _ in range(2000):
        took, _holder = await attempt()  # type: ignore[operator]
        if took:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")
