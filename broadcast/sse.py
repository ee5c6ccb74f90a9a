"""``GET /api/channels/{channel}/events``: Server-Sent Events, for clients that cannot hold a WebSocket.

``id:`` is the event's seq, so a browser's EventSource resumes by itself through ``Last-Event-ID``; ``?since=``
does the same for clients that manage their own position. The ``subscribed`` frame comes as an event without an
id, so it never moves the client's position.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from broadcast.envelope import Event, InvalidChannel, check_channel, dumps
from broadcast.hub import Hub, Subscription
from broadcast.metrics import Metrics
from broadcast.outbox import Frame, Outbox
from common.http import json_error

HEARTBEAT_SECONDS = 15.0
RETRY_MS = 2000


def _since(request: Request) -> int | None:
    # Last-Event-ID wins: EventSource reconnects to its original URL, so ?since= there is stale after the first drop.
    raw = request.headers.get("last-event-id") or request.query_params.get("since")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ValueError("since / Last-Event-ID must be a non-negative integer")
    return int(raw)


def _frame(frame: Frame) -> str:
    if isinstance(frame, Event):
        return f"id: {frame.seq}\nevent: {frame.type}\ndata: {frame.json}\n\n"
    return f"event: {frame.get('op', 'message')}\ndata: {dumps(frame)}\n\n"


class EventStream:
    def __init__(self, hub: Hub, metrics: Metrics, *, outbox_limit: int = 1000) -> None:
        self.hub = hub
        self.metrics = metrics
        self.outbox_limit = outbox_limit

    async def handle(self, request: Request) -> Response:
        try:
            channel = check_channel(request.path_params["channel"])
            since = _since(request)
        except (InvalidChannel, ValueError) as exc:
            return json_error(400, str(exc))
        epoch = request.query_params.get("epoch") or None
        return StreamingResponse(
            self._stream(channel, since, epoch),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _stream(self, channel: str, since: int | None, epoch: str | None) -> AsyncIterator[str]:
        # Subscribing inside the generator ties the subscription's life to the response's: whatever ends the
        # response (client gone, overflow, shutdown) runs the finally below.
        outbox = Outbox(self.outbox_limit)
        sub: Subscription | None = None
        gauge = self.metrics.clients_connected.labels("sse")
        gauge.inc()
        try:
            sub, _ = await self.hub.subscribe(outbox, channel, since, epoch)
            yield f"retry: {RETRY_MS}\n\n"
            while True:
                try:
                    frames = await asyncio.wait_for(outbox.take(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    # A comment line keeps proxies and mobile networks from timing out an idle stream.
                    yield ": ping\n\n"
                    continue
                if not frames:
                    # Overflowed: end the response; EventSource reconnects with Last-Event-ID and loses nothing.
                    if outbox.overflowed:
                        self.metrics.slow_consumers.inc()
                    return
                yield "".join(_frame(f) for f in frames)
        finally:
            gauge.dec()
            outbox.close()
            if sub is not None:
                await self.hub.unsubscribe(sub)
