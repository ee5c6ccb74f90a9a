"""The WebSocket protocol uvicorn runs for ``/ws``: its sans-I/O ``websockets`` protocol, plus two things.

1. **Pre-built frames, written straight to the transport.** A live event goes to thousands of connections as the
   same bytes (server frames are not masked, and ``server.uvicorn_config`` turns compression off), so
   :func:`text_frame` builds the frame once per event and :meth:`QuietWebSocketProtocol.write_frame` writes it
   to one connection's transport, without an ASGI ``send`` or a task wake-up per client. It writes only while
   the connection is open and its transport is taking data (not paused by flow control); otherwise it says no
   and the caller queues the frame for the connection's writer, which sends it through ASGI and so waits for
   the client. The protocol's own frames (pings, pongs, close) are whole frames too, written on the same
   thread, so they never interleave with one of ours. The function reaches the app under the ASGI scope
   extension :data:`DIRECT_KEY`; servers without it (other ASGI servers, tests over ASGI) simply never offer it.
2. **No traceback for a client's mistake.** A text frame that is not UTF-8 must fail the connection with 1007
   (RFC 6455 §8.1), and uvicorn does that, but it also logs the client's mistake as a server ERROR with a
   traceback, so anyone could fill the error log with them. Here the same frame closes the connection with 1007
   just the same and is logged at INFO, without a traceback.

3. **Less memory per idle connection.** uvicorn gives every connection an ``asyncio.Queue`` for received
   messages and an ``asyncio.Event`` for flow control: about 3.3 KB and 0.9 KB, mostly empty deques (measured
   with tracemalloc), a fifth of what a viewer costs. :class:`_Inbox` and :class:`_Flag` do the same jobs
   with a list and futures made only while someone waits. The parsed handshake request and response are dropped
   once the handshake is done.

Everything else is uvicorn's (``server.uvicorn_config`` passes this class as ``ws``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State

from broadcast.outbox import ABORT_KEY

log = logging.getLogger(__name__)

INVALID_DATA = 1007

# The ASGI scope extension under which the protocol offers :meth:`QuietWebSocketProtocol.write_frame`.
DIRECT_KEY = "sapha.write_frame"

# Writes one complete pre-built server frame now and returns True, or returns False having written nothing.
WriteFrame = Callable[[bytes], bool]


def text_frame(text: str) -> bytes:
    """One unmasked, uncompressed, final text frame carrying ``text``: what a server sends, byte for byte."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


class _Inbox:
    """The part of ``asyncio.Queue`` that uvicorn's protocol uses (``put_nowait``, ``get``, ``empty``), for its one
    reader (the app's ``receive``). A ``get`` that is cancelled leaves the message queued."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class _Flag:
    """The part of ``asyncio.Event`` that uvicorn's protocol uses for flow control (``set``, ``clear``, ``wait``,
    ``is_set``); waiters' futures exist only while the transport is paused."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> None:
        if self._value:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class QuietWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # uvicorn built the scope and scheduled the app (not started yet); a rejected handshake built none.
        scope = getattr(self, "scope", None)
        if scope is not None:
            extensions = scope["extensions"]
            extensions[DIRECT_KEY] = self.write_frame
            # See broadcast.outbox.ABORT_KEY: the only way to drop a client whose TCP window stays shut.
            extensions[ABORT_KEY] = self.transport.abort
        # The request's headers live on in the scope; the parsed copy is only needed for the handshake.
        self.request = None  # type: ignore[assignment]

    def start_keepalive(self) -> None:
        # uvicorn calls this once, right after writing the 101 response; the response object is not used again,
        # and at thousands of idle connections its headers are worth freeing.
        self.response = None  # type: ignore[assignment]
        super().start_keepalive()

    def write_frame(self, frame: bytes) -> bool:
        """Write ``frame`` (a whole frame from :func:`text_frame`) now, if nothing stands in the way.

        Says no (False, nothing written) before the handshake, once a close was sent or received, while the
        transport is paused because the client is not reading, and when an extension (compression) would have
        to transform the frame. The caller then queues it and sends it through ASGI, in order.
        """
        if (
            not self.handshake_complete
            or self.close_sent
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
            or self.conn.extensions
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type == "text" and not self.close_sent:
            data = b"".join(self.frames)
            try:
                data.decode()
            except UnicodeDecodeError:
                self.frames = []
                log.info("closing a WebSocket that sent a text frame that is not UTF-8 (1007)")
                self.conn.send_close(INVALID_DATA)
                self.handle_parser_exception()
                return
        super().send_receive_event_to_app()
