"""Keeping a feed's parts running: their health, backoff between restarts, queues that never block the producer.

A live feed is several loops (see ``live.feed``); each is a ``Part`` whose state ``/healthz`` shows. A part that
fails is logged, marked ``restarting`` and retried after ``Backoff.delay``; the first success after failures
marks it ``running`` again, so callers can announce the recovery once. ``log_task_failure`` is the done-callback
for every background task, so no exception is dropped unseen, and ``StatusReporter`` publishes a sitting's
``sitting.status`` events without ever making a loop wait on the archive or the broker.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from archive.recorder import Recorder, Unpublished
from common.backoff import backoff_delay
from stream.uri import redact_urls

log = logging.getLogger(__name__)

T = TypeVar("T")

# Status reports waiting for the archive beyond this many are dropped, oldest first: a later report says more.
_STATUS_BACKLOG = 16


@dataclass(frozen=True)
class Backoff:
    """Capped, jittered exponential waits between restarts of a failing part (``common.backoff``)."""

    base: float = 0.5
    cap: float = 15.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, failures: int) -> float:
        return backoff_delay(failures, base=self.base, cap=self.cap, rng=self.rng)


@dataclass
class Part:
    """The health of one supervised part of a feed: ``running``, ``restarting`` (failed, waiting to retry) or
    ``stopped`` (done, normally or not)."""

    name: str
    state: str = "starting"
    restarts: int = 0
    failures: int = 0  # in a row, reset by the next success
    error: str | None = None

    def failed(self, exc: BaseException) -> str:
        """Count a failure; returns the message to log and show (URLs redacted)."""
        self.failures += 1
        self.restarts += 1
        self.state = "restarting"
        self.error = redact_urls(str(exc) or type(exc).__name__)
        return self.error

    def succeeded(self) -> bool:
        """Mark the part healthy; ``True`` when this ends a run of failures (time to announce the recovery)."""
        recovered = self.failures > 0
        self.failures = 0
        self.state = "running"
        self.error = None
        return recovered

    def to_dict(self) -> dict[str, object]:
        return {"state": self.state, "restarts": self.restarts, "error": self.error}


def log_task_failure(task: asyncio.Task[object]) -> None:
    """Done-callback for background tasks: an exception that ended one is logged, never silently dropped."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("task %s failed", task.get_name(), exc_info=exc)


def spawn(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """``asyncio.create_task`` with ``log_task_failure`` attached."""
    task = asyncio.create_task(coro, name=name)
    task.add_done_callback(log_task_failure)
    return task


class DropOldest(Generic[T]):
    """A bounded queue whose ``put`` never waits: when full, the oldest item is dropped (and counted).

    For producers that must keep going whatever the consumer does (a source whose reader also writes HLS).
    ``close`` ends it: ``get`` returns what is left, then ``None``.
    """

    def __init__(self, limit: int, on_drop: Callable[[T], None] | None = None) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self._items: deque[T] = deque()
        self._limit = limit
        self._on_drop = on_drop
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T) -> None:
        if self._closed:
            return
        if len(self._items) >= self._limit:
            old = self._items.popleft()
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop(old)
        self._items.append(item)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    def peek(self) -> T | None:
        return self._items[0] if self._items else None

    async def get(self) -> T | None:
        """The oldest item, waiting for one; ``None`` once closed and empty."""
        while not self._items:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    async def wait(self) -> bool:
        """Wait until there is an item (``True``) or the queue is closed and empty (``False``); take nothing."""
        while not self._items:
            if self._closed:
                return False
            self._ready.clear()
            await self._ready.wait()
        return True

    def pop(self) -> T:
        return self._items.popleft()


@dataclass(frozen=True)
class _Report:
    status: str | None  # None: keep the sitting's status, only say why
    reason: str | None


class StatusReporter:
    """Publishes a sitting's ``sitting.status`` events in order, from its own task, retrying with backoff.

    ``report`` returns at once, so a loop that must not stop (the source, which also feeds HLS) never waits on
    the archive or the broker. A report that fails is retried until it is published or a later backlog pushes it
    out (``_STATUS_BACKLOG``); reasons are shown with URLs redacted.
    """

    def __init__(self, recorder: Recorder, sitting_id: str, backoff: Backoff) -> None:
        self._recorder = recorder
        self._sitting_id = sitting_id
        self._backoff = backoff
        self._queue: DropOldest[_Report] = DropOldest(_STATUS_BACKLOG)
        self.part = Part("status")
        self._task: asyncio.Task[None] | None = None

    def report(self, status: str | None, reason: str | None = None) -> None:
        """Set the sitting's status (``None``: keep it) and say why; published soon, in order."""
        self._queue.put(_Report(status, redact_urls(reason) if reason else None))
        if self._task is None:
            self._task = spawn(self._run(), f"status:{self._sitting_id}")

    async def aclose(self, timeout: float | None = None) -> None:
        """Publish what is queued (waiting at most ``timeout`` seconds), then stop."""
        self._queue.close()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            log.warning("sitting %s: %d status reports were not published", self._sitting_id, len(self._queue))
            self._task.cancel()

    def cancel(self) -> None:
        self._queue.close()
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while await self._queue.wait():
            report = self._queue.peek()
            assert report is not None
            try:
                await self._publish(report)
            except Exception as exc:
                message = self.part.failed(exc)
                log.warning("sitting %s: status report failed (%s); retrying", self._sitting_id, message)
                await asyncio.sleep(self._backoff.delay(self.part.failures))
                continue
            self.part.succeeded()
            if self._queue.peek() is report:  # not pushed out while it was being published
                self._queue.pop()

    async def _publish(self, report: _Report) -> None:
        status = report.status
        if status is None:
            sitting = await self._recorder.store.get_sitting(self._sitting_id)
            if sitting is None:
                return
            status = sitting.status
        try:
            await self._recorder.set_status(self._sitting_id, status, report.reason)
        except Unpublished:
            pass  # recorded: the outbox relay publishes it when the broker is back, so retrying would repeat it
