"""A real HTTP receiver on loopback for the alert tests: uvicorn on a free port, recording every request.

``handler`` decides each answer; by default 204. Used as a webhook receiver and as a Web Push service.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Received], Awaitable[Response]]


async def no_content(_: Received) -> Response:
    return Response(status_code=204)


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    handler: Handler = no_content


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    """A running receiver; set ``.handler`` to change its answers."""
    box: list[Receiver] = []

    async def endpoint(request: Request) -> Response:
        got = Received(request.url.path, {k.lower(): v for k, v in request.headers.items()}, await request.body())
        box[0].received.append(got)
        return await box[0].handler(got)

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("receiver exited before starting")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    box.append(Receiver(f"http://127.0.0.1:{port}"))
    try:
        yield box[0]
    finally:
        server.should_exit = True
        await task
