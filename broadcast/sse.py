"""``GET /api/channels/{channel}/events``: Server-Sent Events, for clients that cannot hold a WebSocket.

``id:`` is the event's seq, so a browser's EventSource resumes by itself through ``Last-Event-ID``; ``?since=``
does the same for clients that manage their own position. The ``subscribed`` frame comes as an event without an
id, so it never moves the client's position.

The response is its own ASGI callable rather than a ``StreamingResponse`` so that it owns the subscription's whole
life and can cut a client the way the WebSocket does: the writer is the only task that awaits the socket, the
outbox between the hub and the writer is bounded, and a client that stops reading makes it overflow, which ends
the response and aborts the connection (its shut TCP window would hold an ordinary end of response forever). The
client then reconnects with ``Last-Event-ID`` and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from broadcast.broker import BrokerUnavailable
from broadcast.envelope import MAX_SEQ, Event, InvalidChannel, check_channel, dumps
from broadcast.hub import Hub, Subscription, UnknownChannel
from broadcast.limits import ConnectionLimiter, client_address
from broadcast.metrics import Metrics
from broadcast.outbox import ABORT_KEY, Frame, Outbox
from common.http import json_error

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
RETRY_MS = 2000
# One write to the socket carries at most this much, so what waits in the transport for a slow reader stays small
# and the bounded outbox, not the transport, is where a client that stopped reading piles up (and is detected).
WRITE_CHUNK = 64 * 1024
_DIGITS = re.compile(r"[0-9]{1,19}")


def _since(request: Request) -> int | None:
    # Last-Event-ID wins: EventSource reconnects to its original URL, so ?since= there is stale after the first drop.
    raw = request.headers.get("last-event-id") or request.query_params.get("since")
    if raw is None or raw == "":
        return None
    if not _DIGITS.fullmatch(raw) or int(raw) > MAX_SEQ:
        raise ValueError("since / Last-Event-ID must be an integer from 0 to 2^63-1")
    return int(raw)


def _frame(frame: Frame) -> str:
    if isinstance(frame, Event):
        return f"id: {frame.seq}\nevent: {frame.type}\ndata: {frame.json}\n\n"
    return f"event: {frame.get('op', 'message')}\ndata: {dumps(frame)}\n\n"


class EventStream:
    def __init__(
        self,
        hub: Hub,
        metrics: Metrics,
        *,
        outbox_limit: int = 1000,
        limiter: ConnectionLimiter | None = None,
        heartbeat: float = HEARTBEAT_SECONDS,
        close_timeout: float = 2.0,
    ) -> None:
        self.hub = hub
        self.metrics = metrics
        self.outbox_limit = outbox_limit
        self.limiter = limiter if limiter is not None else ConnectionLimiter(0)
        self.heartbeat = heartbeat
        self.close_timeout = close_timeout

    async def handle(self, request: Request) -> Response:
        try:
            channel = check_channel(request.path_params["channel"])
            since = _since(request)
        except (InvalidChannel, ValueError) as exc:
            return json_error(400, str(exc))
        epoch = request.query_params.get("epoch") or None
        if epoch is not None and len(epoch) > 64:
            return json_error(400, "epoch must be at most 64 characters")
        return _EventStreamResponse(self, channel, since, epoch)


class _EventStreamResponse(Response):
    """One client's stream. Refusals (429, 404) are answered before any stream starts, in the JSON error shape."""

    media_type = "text/event-stream"

    def __init__(self, stream: EventStream, channel: str, since: int | None, epoch: str | None) -> None:
        # Response.__init__ is not called: it would add a Content-Length to a body that never ends.
        self.status_code = 200
        self.background = None
        self._stream = stream
        self._channel = channel
        self._since = since
        self._epoch = epoch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = self._stream
        address = client_address(scope)
        if not stream.limiter.acquire(address):
            stream.metrics.connections_refused.labels("sse").inc()
            await json_error(429, "too many connections from this address")(scope, receive, send)
            return
        try:
            try:
                known = await stream.hub.known(self._channel)
            except BrokerUnavailable:
                await json_error(503, "the event bus is unavailable; try again shortly")(scope, receive, send)
                return
            if not known:
                await json_error(404, str(UnknownChannel(self._channel)))(scope, receive, send)
                return
            await self._serve(scope, receive, send)
        finally:
            stream.limiter.release(address)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = self._stream
        outbox = Outbox(stream.outbox_limit)
        gauge = stream.metrics.clients_connected.labels("sse")
        gauge.inc()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        writer = asyncio.create_task(self._write(send, outbox))
        # An overflowing client is cut at once, even while its writer is stuck sending to a shut TCP window.
        outbox.on_overflow = writer.cancel
        listener = asyncio.create_task(_until_disconnect(receive))
        subscribing = asyncio.create_task(
            stream.hub.subscribe(outbox, self._channel, self._since, self._epoch, checked=True)
        )
        sub: Subscription | None = None
        try:
            pending: set[asyncio.Task[Any]] = {writer, listener, subscribing}
            while writer in pending and listener in pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if subscribing in done:
                    sub = self._subscribed(subscribing, outbox)
        finally:
            for task in (writer, listener, subscribing):
                task.cancel()
            for task in (writer, listener, subscribing):
                with contextlib.suppress(BaseException):
                    await task
            if sub is None and subscribing.done() and not subscribing.cancelled() and not subscribing.exception():
                sub = subscribing.result()[0]
            if sub is not None:
                await stream.hub.unsubscribe(sub)
            outbox.close()
            gauge.dec()
        if outbox.overflowed:
            stream.metrics.slow_consumers.inc()
            await self._cut(scope)
        elif listener not in pending:
            return  # the client left; there is nobody to finish the response for
        else:
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": b"", "more_body": False}), stream.close_timeout
                )

    def _subscribed(self, task: asyncio.Task[Any], outbox: Outbox) -> Subscription | None:
        """The subscription, or None after telling the client why there is none (the writer then ends)."""
        exc = task.exception()
        if exc is None:
            sub: Subscription = task.result()[0]
            return sub
        if not isinstance(exc, BrokerUnavailable):
            raise exc
        log.warning("SSE subscribe to %s failed: the event bus is unavailable", self._channel)
        # EventSource reconnects by itself after `retry`; this says why the stream ended.
        outbox.put(
            {
                "op": "error",
                "code": "unavailable",
                "error": "the event bus is unavailable; try again shortly",
                "channel": self._channel,
            }
        )
        outbox.close()
        return None

    async def _write(self, send: Send, outbox: Outbox) -> None:
        await send({"type": "http.response.body", "body": f"retry: {RETRY_MS}\n\n".encode(), "more_body": True})
        while True:
            try:
                frames = await asyncio.wait_for(outbox.take(), self._stream.heartbeat)
            except TimeoutError:
                # A comment line keeps proxies and mobile networks from timing out an idle stream.
                await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
                continue
            if not frames:
                return  # overflowed or closed
            chunk = bytearray()
            for frame in frames:
                chunk += _frame(frame).encode()
                if len(chunk) >= WRITE_CHUNK:
                    await send({"type": "http.response.body", "body": bytes(chunk), "more_body": True})
                    chunk.clear()
            if chunk:
                await send({"type": "http.response.body", "body": bytes(chunk), "more_body": True})

    async def _cut(self, scope: Scope) -> None:
        abort: Callable[[], None] | None = (scope.get("extensions") or {}).get(ABORT_KEY)
        if abort is None:
            return  # no transport to abort (another server): returning mid-response makes it close the connection
        abort()
        # The server learns of the abort on the next loop iteration; let it, so it sees a lost client rather than a
        # response left unfinished.
        await asyncio.sleep(0)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
