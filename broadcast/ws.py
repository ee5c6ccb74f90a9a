"""``GET /ws``: the WebSocket transport.

Each connection follows one lifecycle: accept, register, run a reader (client ops) and a writer (the outbox)
side by side, and on any exit unsubscribe everything and unregister. The writer is the only task that awaits
the socket, so a client that stops reading stalls nothing but its own writer; its outbox then overflows and the
connection is closed with :data:`closecodes.SLOW_CONSUMER`.
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
from broadcast.envelope import Event, InvalidChannel, check_channel, dumps
from broadcast.hub import Hub, Subscription
from broadcast.metrics import Metrics
from broadcast.outbox import Frame, Outbox

log = logging.getLogger(__name__)

# Set by server.ServerEntry: the only way to drop a peer whose TCP window is shut, since a close frame
# queued behind megabytes it will never read is never delivered.
ABORT_KEY = "sapha.abort"


@dataclass(frozen=True, slots=True)
class SocketLimits:
    outbox: int = 1000
    channels_per_connection: int = 32
    max_consecutive_errors: int = 20
    close_timeout: float = 2.0


class BadRequest(ValueError):
    def __init__(self, code: str, message: str, channel: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.channel = channel


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
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest("bad_request", f"'{key}' must be a non-negative integer")
    return value


def _optional_str(msg: dict[str, Any], key: str) -> str | None:
    value = msg.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 64:
        raise BadRequest("bad_request", f"'{key}' must be a non-empty string")
    return value


class EventSocket:
    def __init__(self, hub: Hub, metrics: Metrics, limits: SocketLimits | None = None) -> None:
        self.hub = hub
        self.metrics = metrics
        self.limits = limits or SocketLimits()

    async def handle(self, websocket: WebSocket) -> None:
        await websocket.accept()
        subs: dict[str, Subscription] = {}
        gauge = self.metrics.clients_connected.labels("ws")
        gauge.inc()
        outbox = Outbox(self.limits.outbox)
        writer = asyncio.create_task(self._write(websocket, outbox))
        # An overflowing client is cut at once, even while its writer is stuck sending to a shut TCP window.
        outbox.on_overflow = writer.cancel
        reader = asyncio.create_task(self._read(websocket, outbox, subs))
        close_code: int | None = None
        try:
            done, _ = await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
            if outbox.overflowed:
                self.metrics.slow_consumers.inc()
                close_code = closecodes.SLOW_CONSUMER
            elif reader in done and reader.exception() is None:
                close_code = reader.result()
            else:
                task = reader if reader in done else writer
                exc = None if task.cancelled() else task.exception()
                if exc is not None and not _is_disconnect(exc):
                    log.error("websocket handler failed", exc_info=exc)
                    close_code = closecodes.INTERNAL_ERROR
        finally:
            outbox.close()
            for task in (writer, reader):
                task.cancel()
            for task in (writer, reader):
                with contextlib.suppress(BaseException):
                    await task
            for sub in subs.values():
                await self.hub.unsubscribe(sub)
            gauge.dec()
            if close_code is not None:
                await self._close(websocket, close_code)

    async def _close(self, websocket: WebSocket, code: int) -> None:
        try:
            await asyncio.wait_for(websocket.close(code, closecodes.REASONS.get(code, "")), self.limits.close_timeout)
        except (TimeoutError, RuntimeError, OSError):
            abort: Callable[[], None] | None = websocket.scope.get("extensions", {}).get(ABORT_KEY)
            if abort is not None:
                abort()

    async def _write(self, websocket: WebSocket, outbox: Outbox) -> None:
        while True:
            frames = await outbox.take()
            if not frames:
                return
            for frame in frames:
                await websocket.send_text(_frame_text(frame))

    async def _read(self, websocket: WebSocket, outbox: Outbox, subs: dict[str, Subscription]) -> int | None:
        """Serve client ops until the client leaves (returns None) or misbehaves (returns a close code)."""
        errors = 0
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            raw = message.get("text")
            if raw is None:
                raw = (message.get("bytes") or b"").decode("utf-8", "replace")
            try:
                reply = await self._handle(raw, outbox, subs)
                errors = 0
            except BadRequest as exc:
                errors += 1
                reply = _error(exc.code, str(exc), exc.channel)
                if errors >= self.limits.max_consecutive_errors:
                    outbox.put(reply)
                    return closecodes.TOO_MANY_ERRORS
            if reply is not None:
                outbox.put(reply)

    async def _handle(self, raw: str, outbox: Outbox, subs: dict[str, Subscription]) -> dict[str, Any] | None:
        try:
            msg = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BadRequest("bad_json", f"frame is not valid JSON: {exc.msg}") from None
        if not isinstance(msg, dict):
            raise BadRequest("bad_request", "frame must be a JSON object")
        op = msg.get("op")
        if op == "ping":
            return {"op": "pong"}
        if op not in ("subscribe", "unsubscribe"):
            raise BadRequest("unknown_op", f"unknown op {op!r}; expected subscribe, unsubscribe or ping")
        try:
            channel = check_channel(msg.get("channel"))
        except InvalidChannel as exc:
            raise BadRequest("bad_channel", str(exc)) from None
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
        epoch = _optional_str(msg, "epoch")
        # The hub queues the `subscribed` reply itself, ahead of the replay, so ordering is exact.
        sub, _ = await self.hub.subscribe(outbox, channel, since, epoch)
        subs[channel] = sub
        return None


def _is_disconnect(exc: BaseException) -> bool:
    # uvicorn raises its own ClientDisconnected (an OSError) when sending to a peer that has gone.
    return isinstance(exc, WebSocketDisconnect | OSError) or type(exc).__name__ == "ClientDisconnected"
