"""A bounded outbound queue for one connection (WebSocket or SSE).

Fan-out must never wait on a slow client: the hub only ever appends here, without awaiting. When a client falls
too far behind, the outbox marks itself overflowed and calls ``on_overflow`` so the connection can be cut; the
client then resumes with ``since`` and loses nothing.

A transport that can send a frame synchronously sets ``write``: while nothing is queued, ``put`` offers each
frame to it first, and only a frame it declines is queued (then ``on_backlog`` tells the transport that someone
must ``take_now``/``take`` it). Frames reach the client in ``put`` order either way, because ``write`` is never
offered a frame while an earlier one is still queued, and the transport declines while its writer is sending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from broadcast.envelope import Event

# The ASGI scope extension under which server.ServerEntry passes the connection's transport ``abort``: the only way
# to drop a peer whose TCP window is shut, since a close frame (or the end of a response) queued behind megabytes
# it will never read is never delivered. Servers without it fall back to an ordinary close.
ABORT_KEY = "sapha.abort"

# Events are queued as objects so each transport frames them its own way (WebSocket: the shared JSON;
# SSE: id/event/data lines); control replies such as ``subscribed`` are plain dicts.
Frame = Event | dict[str, Any]


# Sends one frame now and returns True, or returns False having sent nothing (the frame is then queued).
Write = Callable[[Frame], bool]


class Outbox:
    __slots__ = ("limit", "overflowed", "closed", "_items", "_waiter", "on_overflow", "write", "on_backlog")

    def __init__(
        self,
        limit: int,
        on_overflow: Callable[[], object] | None = None,
        *,
        write: Write | None = None,
        on_backlog: Callable[[], object] | None = None,
    ) -> None:
        self.limit = limit
        self.overflowed = False
        self.closed = False
        # A plain list and a future made only while someone waits: thousands of these live at once, and an
        # asyncio.Event per connection costs both memory and a wake-up per event.
        self._items: list[Frame] = []
        self._waiter: asyncio.Future[None] | None = None
        self.on_overflow = on_overflow
        self.write = write
        self.on_backlog = on_backlog

    def __len__(self) -> int:
        return len(self._items)

    def put(self, frame: Frame) -> None:
        if self.overflowed or self.closed:
            return
        items = self._items
        if not items:
            # The fan-out hot path: an idle client gets the frame at once, with no queue and no wake-up.
            if self.write is not None and self.write(frame):
                return
            items.append(frame)
            if self.on_backlog is not None:
                self.on_backlog()
        elif len(items) >= self.limit:
            self.overflow()
            return
        else:
            items.append(frame)
        self._wake()

    def overflow(self) -> None:
        if self.overflowed or self.closed:
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

    def take_now(self) -> list[Frame]:
        """All queued frames, without waiting (an empty list when none are queued)."""
        items, self._items = self._items, []
        return items

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
