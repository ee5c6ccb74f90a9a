"""A bounded outbound queue for one connection (WebSocket or SSE).

Fan-out must never wait on a slow client: the hub only ever appends here, without awaiting. When a client falls
too far behind, the outbox marks itself overflowed and calls ``on_overflow`` so the connection can be cut; the
client then resumes with ``since`` and loses nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from broadcast.envelope import Event

# Events are queued as objects so each transport frames them its own way (WebSocket: the shared JSON;
# SSE: id/event/data lines); control replies such as ``subscribed`` are plain dicts.
Frame = Event | dict[str, Any]


class Outbox:
    def __init__(self, limit: int, on_overflow: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self.overflowed = False
        self.closed = False
        # A plain list and a future made only while someone waits: thousands of these live at once, and an
        # asyncio.Event per connection costs both memory and a wake-up per event.
        self._items: list[Frame] = []
        self._waiter: asyncio.Future[None] | None = None
        self.on_overflow = on_overflow

    def __len__(self) -> int:
        return len(self._items)

    def put(self, frame: Frame) -> None:
        if self.overflowed or self.closed:
            return
        if len(self._items) >= self.limit:
            self.overflow()
            return
        self._items.append(frame)
        self._wake()

    def overflow(self) -> None:
        if self.overflowed:
            return
        self.overflowed = True
        # Nothing queued will be sent any more, so there is no point holding on to it.
        self._items.clear()
        self._wake()
        if self.on_overflow is not None:
            self.on_overflow()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def take(self) -> list[Frame]:
        """Wait for frames and return all queued ones; an empty list means the outbox is overflowed or closed."""
        while not self._items:
            if self.overflowed or self.closed:
                return []
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        items, self._items = self._items, []
        return items

    async def drained(self, below: int) -> None:
        """Wait until fewer than ``below`` frames are queued (used to pace history replay)."""
        while len(self._items) >= below and not (self.overflowed or self.closed):
            await asyncio.sleep(0.01)
