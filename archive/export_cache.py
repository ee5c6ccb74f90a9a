"""Transcript exports served without stalling the event loop: rendered in threads, few at a time, cached.

Rendering a long sitting's WebVTT segments every caption with PyThaiNLP, which takes seconds for a six-hour
sitting. On the event loop that would freeze every viewer's captions meanwhile; here it runs in a worker thread,
at most ``max_concurrent`` at once (more would only share the same cores and the GIL), with at most
``max_waiting`` requests queued behind them; past that the caller is told to come back (``Busy``, a 503).

Renders are cached by (sitting, format, the segments' version): the version changes whenever a segment is added,
revised (a correction raises its revision) or gets its seq, and the sitting record changes when its transcript is
marked reviewed, so a cached file is never stale, and a finished sitting is rendered once per format. Akoma Ntoso
also draws on the agenda, speakers, votes and bills, which are read first and are part of its key.
The cache is an LRU bounded in bytes. Identical requests arriving together share one render. JSON, text, WebVTT
and SRT are read and written a page of segments at a time (``exports.DocumentWriter``), so a render's working
memory does not grow with the sitting; Akoma Ntoso, one XML tree, is rendered whole.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import replace

from archive import exports
from archive.models import Bill, Sitting, utc_now
from archive.store import Store

MAX_SEGMENTS = 1_000_000
PAGE_SEGMENTS = 500  # segments read and written at a time


class Busy(Exception):
    """Too many exports are rendering or waiting; try again shortly."""


class ByteLRU:
    """A mapping to bytes bounded by the sum of their lengths; the least recently used go first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> bytes | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: bytes) -> None:
        if len(value) > self.max_bytes:
            return  # would evict everything and still not fit
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= len(old)
        self._items[key] = value
        self.size += len(value)
        while self.size > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self.size -= len(evicted)

    def discard_where(self, stale: Callable[[Hashable], bool]) -> None:
        """Drop every entry whose key ``stale`` accepts."""
        for key in [k for k in self._items if stale(k)]:
            self.size -= len(self._items.pop(key))


class TranscriptExports:
    def __init__(
        self,
        store: Store,
        *,
        max_concurrent: int = 2,
        max_waiting: int = 8,
        cache_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.store = store
        self.cache = ByteLRU(cache_bytes)
        self.renders = 0  # how many renders ran (for tests and metrics)
        self._slots = asyncio.Semaphore(max_concurrent)
        self._max_queued = max_concurrent + max_waiting
        self._queued = 0
        self._inflight: dict[Hashable, asyncio.Future[bytes]] = {}

    async def render(self, sitting: Sitting, fmt: str) -> bytes:
        """The transcript of ``sitting`` in ``fmt`` (a key of ``exports.FORMATS``); raises Busy when overloaded."""
        # Read the version before the segments: a segment added in between makes the render newer than its key,
        # never older, and the next request simply renders again under the new version.
        version = await self.store.segments_version(sitting.id)
        record: exports.Transcript | None = None
        if fmt in exports.RECORD_FORMATS:
            record = await self._record(sitting)
        key = (sitting, fmt, version, record)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        if self._queued >= self._max_queued:
            raise Busy()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        self._queued += 1
        try:
            async with self._slots:
                writer = exports.document_writer(fmt, sitting)
                if writer is not None:
                    body = await self._paged(sitting, writer)
                else:
                    segments = await self.store.segments(sitting.id, limit=MAX_SEGMENTS)
                    base = record or exports.Transcript(sitting, ())
                    transcript = replace(base, segments=segments, generated_at=utc_now())
                    body = await asyncio.to_thread(exports.render, fmt, transcript)
            self.renders += 1
            # A live sitting gets a new version with every caption, and no request names an old version again:
            # without this, a feed polled once a minute filled the cache with dead renders, each bigger than the
            # last (tens of MiB an hour of RSS; docs/benchmarks.md, "Soak (whole service)").
            self.cache.discard_where(lambda k: k != key and k[0].id == sitting.id and k[1] == fmt)  # type: ignore[index]
            self.cache.put(key, body)
            future.set_result(body)
            return body
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            # Nobody else may be waiting; retrieve it so asyncio does not log "exception never retrieved".
            future.exception()
            raise
        finally:
            self._queued -= 1
            del self._inflight[key]

    async def _paged(self, sitting: Sitting, writer: exports.DocumentWriter) -> bytes:
        """``writer``'s document of the sitting, read and written a page at a time (each page in a worker thread:
        word segmentation is CPU-bound). Holding a long sitting whole as rows, segments and dicts raised the heap's
        high-water mark with every render of a growing live sitting (docs/benchmarks.md, "Soak (whole service)");
        now a render holds one page of objects and the text written so far."""
        parts = [writer.head().encode()]
        after: tuple[int, int] | None = None
        for _ in range(0, MAX_SEGMENTS, PAGE_SEGMENTS):
            page = await self.store.segments(sitting.id, after=after, limit=PAGE_SEGMENTS)
            parts.append((await asyncio.to_thread(writer.page, page)).encode())
            if len(page) < PAGE_SEGMENTS:
                break
            after = (page[-1].start_ms, page[-1].id)
        parts.append(writer.tail().encode())
        return b"".join(parts)

    async def _record(self, sitting: Sitting) -> exports.Transcript:
        """The sitting's agenda, speakers, votes and bills (as tuples, so the record can be part of a cache key)."""
        agenda = tuple(await self.store.agenda(sitting.id))
        votes = tuple(await self.store.votes(sitting.id))
        bill_ids = dict.fromkeys(b for b in [*(a.bill_id for a in agenda), *(v.bill_id for v in votes)] if b)
        bills: list[Bill] = []
        for bill_id in bill_ids:
            bill = await self.store.get_bill(bill_id)
            if bill is not None:
                bills.append(bill)
        speakers = tuple(await self.store.speakers(sitting.id))
        return exports.Transcript(sitting, (), agenda, speakers, votes, tuple(bills))
