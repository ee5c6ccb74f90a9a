"""``GET /ws``: the WebSocket transport.

Each connection follows one lifecycle: accept, register, read client ops in the handler's own task, and on any
exit unsubscribe everything and unregister. Delivery never awaits the client: an idle connection gets each event
as a pre-built frame written straight to its transport during the hub's fan-out, and a connection that is behind
queues frames in its bounded outbox for a writer task that exists only while there is a backlog (see
:class:`_Connection`). A client that stops reading stalls nothing but its own writer; its outbox then overflows
and the connection is closed with :data:`closecodes.SLOW_CONSUMER`.

Whatever a client sends is answered, never fatal: every malformed frame (not JSON, not UTF-8, nested too deep,
numbers too big, wrong types, unknown channels) gets an ``error`` frame and the connection stays usable, until
``max_consecutive_errors`` in a row close it with :data:`closecodes.TOO_MANY_ERRORS`. A client address with
too many connections open already is closed with :data:`closecodes.TOO_MANY_CONNECTIONS` right after accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from broadcast import closecodes
from broadcast.broker import BrokerUnavailable
from broadcast.envelope import MAX_SEQ, Event, InvalidChannel, check_channel, dumps
from broadcast.hub import Hub, Subscription, UnknownChannel
from broadcast.limits import ConnectionLimiter, client_address
from broadcast.metrics import Metrics
from broadcast.outbox import ABORT_KEY, Frame, Outbox
from broadcast.ws_protocol import DIRECT_KEY, WriteFrame, text_frame

log = logging.getLogger(__name__)

__all__ = ["ABORT_KEY", "BadRequest", "EventSocket", "SocketLimits"]


@dataclass(frozen=True, slots=True)
class SocketLimits:
    outbox: int = 1000
    channels_per_connection: int = 32
    max_consecutive_errors: int = 20
    close_timeout: float = 2.0


# Client-supplied values are quoted in error messages only this far, so an error never echoes a 64 KiB frame.
QUOTE_LIMIT = 80


class BadRequest(ValueError):
    """A frame the server cannot serve; answered with an error frame. ``client_fault`` ones count towards
    ``max_consecutive_errors``; the others (the bus being down) are the server's problem, not the client's."""

    def __init__(self, code: str, message: str, channel: str | None = None, *, client_fault: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.channel = channel
        self.client_fault = client_fault


def _quote(value: object) -> str:
    text = repr(value)
    return text if len(text) <= QUOTE_LIMIT else f"{text[: QUOTE_LIMIT - 1]}…"


def _frame_text(frame: Frame) -> str:
    return frame.json if isinstance(frame, Event) else dumps(frame)


def _error(code: str, message: str, channel: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"op": "error", "code": code, "error": message}
    if channel is not None:
        frame["channel"] = channel
    return frame


def _optional_int(msg: dict[str, Any], key: str) -> int | None:
    value = msg.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
        raise BadRequest("bad_request", f"'{key}' must be an integer from 0 to 2^63-1")
    return value


def _optional_epoch(msg: dict[str, Any], key: str) -> str | None:
    # "" is a real answer: the epoch of a channel without history, as the state's position reports it.
    value = msg.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise BadRequest("bad_request", f"'{key}' must be a string of at most 64 characters")
    return value


def _parse(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadRequest("bad_json", f"frame is not valid JSON: {exc.msg}") from None
    except RecursionError:
        # Python's parser recurses per nesting level; 64 KiB of "[" is far past its limit.
        raise BadRequest("bad_json", "frame is nested too deeply") from None
    except ValueError:
        # An integer literal longer than Python converts (sys.get_int_max_str_digits()).
        raise BadRequest("bad_json", "frame has a number too large to read") from None


class EventSocket:
    def __init__(
        self,
        hub: Hub,
        metrics: Metrics,
        limits: SocketLimits | None = None,
        *,
        limiter: ConnectionLimiter | None = None,
    ) -> None:
        self.hub = hub
        self.metrics = metrics
        self.limits = limits or SocketLimits()
        self.limiter = limiter if limiter is not None else ConnectionLimiter(0)
        # The frame of the event being fanned out: the hub hands one event to every subscriber in turn, so one
        # entry builds each event's frame once per event, not once per client.
        self._last_event: Event | None = None
        self._last_frame = b""
        # Frames sent by each delivery path since start-up (what tests and the benchmark look at).
        self.sent_direct = 0
        self.sent_queued = 0

    def event_frame(self, event: Event) -> bytes:
        """The pre-built WebSocket frame of ``event``, shared by every connection it is written to."""
        if event is not self._last_event:
            self._last_frame = text_frame(event.json)
            self._last_event = event
        return self._last_frame

    async def handle(self, websocket: WebSocket) -> None:
        address = client_address(websocket.scope)
        if not self.limiter.acquire(address):
            self.metrics.connections_refused.labels("ws").inc()
            # Accepted only to be closed: a close code is what a browser's WebSocket can see; a refused
            # handshake reaches it as a bare 1006.
            await websocket.accept()
            await self._close(websocket, closecodes.TOO_MANY_CONNECTIONS)
            return
        try:
            await self._serve(websocket)
        finally:
            self.limiter.release(address)

    async def _serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        conn = _Connection(self, websocket)
        gauge = self.metrics.clients_connected.labels("ws")
        gauge.inc()
        close_code: int | None = None
        try:
            # The handler's own task reads; nothing else runs for an idle connection (see _Connection).
            close_code = await self._read(conn)
        except Exception as exc:
            if not _is_disconnect(exc):
                log.error("websocket handler failed", exc_info=exc)
                close_code = closecodes.INTERNAL_ERROR
        finally:
            conn.finish()
            for sub in conn.subs.values():
                await self.hub.unsubscribe(sub)
            gauge.dec()
            if conn.closer is not None:
                with contextlib.suppress(BaseException):
                    await conn.closer
            elif close_code is not None:
                await self._close(websocket, close_code)

    async def _close(self, websocket: WebSocket, code: int) -> None:
        try:
            await asyncio.wait_for(websocket.close(code, closecodes.REASONS.get(code, "")), self.limits.close_timeout)
        except (TimeoutError, RuntimeError, OSError):
            abort: Callable[[], None] | None = websocket.scope.get("extensions", {}).get(ABORT_KEY)
            if abort is not None:
                abort()

    async def _read(self, conn: _Connection) -> int | None:
        """Serve client ops until the client leaves (returns None) or misbehaves (returns a close code)."""
        websocket, outbox = conn.websocket, conn.outbox
        errors = 0
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            try:
                reply = await self._handle(_text(message), outbox, conn.subs)
                errors = 0
            except BadRequest as exc:
                if exc.client_fault:
                    errors += 1
                reply = _error(exc.code, str(exc), exc.channel)
                if errors >= self.limits.max_consecutive_errors:
                    outbox.put(reply)
                    return closecodes.TOO_MANY_ERRORS
            if reply is not None:
                outbox.put(reply)

    async def _handle(self, raw: str, outbox: Outbox, subs: dict[str, Subscription]) -> dict[str, Any] | None:
        msg = _parse(raw)
        if not isinstance(msg, dict):
            raise BadRequest("bad_request", "frame must be a JSON object")
        op = msg.get("op")
        if op == "ping":
            return {"op": "pong"}
        if op not in ("subscribe", "unsubscribe"):
            raise BadRequest("unknown_op", f"unknown op {_quote(op)}; expected subscribe, unsubscribe or ping")
        try:
            channel = check_channel(msg.get("channel"))
        except InvalidChannel:
            raise BadRequest(
                "bad_channel", f"channel must look like 'sitting:<id>' or 'bill:<id>', got {_quote(msg.get('channel'))}"
            ) from None
        if op == "unsubscribe":
            sub = subs.pop(channel, None)
            if sub is None:
                raise BadRequest("not_subscribed", "not subscribed to this channel", channel)
            await self.hub.unsubscribe(sub)
            return {"op": "unsubscribed", "channel": channel}
        if channel in subs:
            raise BadRequest("already_subscribed", "already subscribed to this channel", channel)
        if len(subs) >= self.limits.channels_per_connection:
            raise BadRequest("too_many_channels", f"at most {self.limits.channels_per_connection} channels", channel)
        since = _optional_int(msg, "since")
        epoch = _optional_epoch(msg, "epoch")
        # The hub queues the `subscribed` reply itself, ahead of the replay, so ordering is exact.
        try:
            sub, _ = await self.hub.subscribe(outbox, channel, since, epoch)
        except UnknownChannel as exc:
            raise BadRequest("unknown_channel", str(exc), channel) from None
        except BrokerUnavailable:
            log.warning("subscribe to %s failed: the event bus is unavailable", channel)
            raise BadRequest(
                "unavailable", "the event bus is unavailable; try again shortly", channel, client_fault=False
            ) from None
        subs[channel] = sub
        return None


def _text(message: Any) -> str:
    """The frame's text; a binary frame is read as UTF-8 too (strictly: invalid bytes are an error, not guessed)."""
    text = message.get("text")
    if text is not None:
        return str(text)
    try:
        return bytes(message.get("bytes") or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("bad_json", "frame is not valid UTF-8 JSON") from None


def _is_disconnect(exc: BaseException) -> bool:
    # uvicorn raises its own ClientDisconnected (an OSError) when sending to a peer that has gone.
    return isinstance(exc, WebSocketDisconnect | OSError) or type(exc).__name__ == "ClientDisconnected"


class _Connection:
    """One open ``/ws`` connection and its two delivery paths.

    Idle (nothing queued, no writer running, the transport taking data): a frame is written straight to the
    transport as pre-built bytes, inside the hub's fan-out loop; no task wakes up. Behind (the transport paused
    because the client is not reading, a frame already queued, or no direct write on this server): frames queue
    in the outbox and a writer task, started on demand, sends them through ASGI, which waits for the client; the
    writer ends once the queue is empty, and the next frame can go straight out again. Order is kept because a
    frame is only written directly when nothing is queued or being sent ahead of it. A client that stays behind
    overflows the outbox and is cut with :data:`closecodes.SLOW_CONSUMER` by a closing task, which also aborts
    the transport if the close frame cannot be delivered; the reader then sees the disconnect and cleans up.
    """

    __slots__ = ("socket", "websocket", "outbox", "subs", "writer", "closer", "_write_frame")

    def __init__(self, socket: EventSocket, websocket: WebSocket) -> None:
        self.socket = socket
        self.websocket = websocket
        self.subs: dict[str, Subscription] = {}
        self.writer: asyncio.Task[None] | None = None
        self.closer: asyncio.Task[None] | None = None
        self._write_frame: WriteFrame | None = websocket.scope.get("extensions", {}).get(DIRECT_KEY)
        self.outbox = Outbox(
            socket.limits.outbox,
            self._overflowed,
            write=self._write if self._write_frame is not None else None,
            on_backlog=self._start_writer,
        )

    def _write(self, frame: Frame) -> bool:
        if self.writer is not None:
            return False
        write_frame = self._write_frame
        assert write_frame is not None
        socket = self.socket
        if write_frame(socket.event_frame(frame) if isinstance(frame, Event) else text_frame(dumps(frame))):
            socket.sent_direct += 1
            return True
        return False

    def _start_writer(self) -> None:
        if self.writer is None and self.closer is None:
            self.writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        outbox, websocket = self.outbox, self.websocket
        try:
            while frames := outbox.take_now():
                for frame in frames:
                    await websocket.send_text(_frame_text(frame))
                    self.socket.sent_queued += 1
        except Exception as exc:
            if _is_disconnect(exc):
                # Nothing more can reach this client; the reader gets the disconnect and cleans up.
                outbox.close()
            else:
                log.error("websocket writer failed", exc_info=exc)
                self.cut(closecodes.INTERNAL_ERROR)
        finally:
            self.writer = None

    def _overflowed(self) -> None:
        self.socket.metrics.slow_consumers.inc()
        self.cut(closecodes.SLOW_CONSUMER)

    def cut(self, code: int) -> None:
        """Close the connection from outside the reader (whose receive then ends with the disconnect)."""
        if self.closer is not None:
            return
        self.outbox.close()
        writer, self.writer = self.writer, None
        if writer is not None and writer is not asyncio.current_task():
            # It may be stuck sending to a shut TCP window; the close below gets the same wait, then an abort.
            writer.cancel()
        self.closer = asyncio.get_running_loop().create_task(self._close(code))

    async def _close(self, code: int) -> None:
        # Let go of the channels first: the close may wait close_timeout for a client that is not reading.
        for sub in tuple(self.subs.values()):
            await self.socket.hub.unsubscribe(sub)
        await self.socket._close(self.websocket, code)

    def finish(self) -> None:
        """Stop both paths; called once the reader is done."""
        self.outbox.close()
        # The outbox holds bound methods of this object; let reference counting free both at once.
        self.outbox.write = self.outbox.on_backlog = self.outbox.on_overflow = None
        if self.writer is not None:
            self.writer.cancel()
            self.writer = None
