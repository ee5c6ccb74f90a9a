"""Sapha's entry point: the command line, and the app that ``sapha/`` (the composition root) wires together.

``python server.py [--host H] [--port P]`` serves the API, the WebSocket and SSE endpoints and the viewer.
Settings live in ``sapha/settings.py``; the services and their lifespan in ``sapha/services.py``; live feeds in
``sapha/feeds.py``; pages and health in ``sapha/pages.py``; the route table in ``sapha/routes.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import re
import secrets
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from archive.store import Store, StoreUnavailable
from broadcast.broker import Broker
from broadcast.envelope import ID_PATTERN
from broadcast.ws import ABORT_KEY, EventSocket
from common.cors import CorsPolicy
from common.http import json_error
from common.malloc import cap_arenas
from common.methods import Methods
from common.security import SecurityHeaders
from desk.accounts_sqlite import AccountStore
from desk.messages_sqlite import MessageStore
from sapha.feeds import FeedSpec as FeedSpec
from sapha.routes import routes
from sapha.services import Services, build_services, lifespan
from sapha.services import make_store as make_store
from sapha.settings import Settings as Settings
from stream.demo_media import DEMO_AUDIO
from transcribe.model import SharedModel

# FeedSpec, Settings and make_store are imported "as" themselves: tests and benchmarks import them from here.

log = logging.getLogger("sapha")

# What tests and benchmarks read from ``app.state`` besides ``services``.
STATE_ALIASES = "settings socket webrtc hub store bills recorder metrics staff messages_api".split()


def create_app(
    settings: Settings,
    *,
    broker: Broker | None = None,
    store: Store | None = None,
    feeds: Sequence[FeedSpec] = (),
    model: SharedModel | None = None,
    accounts: AccountStore | None = None,
    messages: MessageStore | None = None,
) -> Starlette:
    """Build the app. Tests pass their own broker, store, model or staff stores; the rest comes from ``settings``.

    The whisper model is loaded once, at start-up when there are feeds, else when a WHIP publisher needs it.
    """
    services = build_services(
        settings, broker=broker, store=store, feeds=feeds, model=model, accounts=accounts, messages=messages
    )
    table = routes(services)

    @contextlib.asynccontextmanager
    async def app_lifespan(app: Starlette) -> AsyncIterator[None]:
        async with lifespan(services):
            yield

    app = Starlette(
        routes=table,
        lifespan=app_lifespan,
        exception_handlers={HTTPException: http_error, StoreUnavailable: store_unavailable, Exception: server_error},
        middleware=[
            Middleware(SecurityHeaders, framable=("/embed/",), frames_others=("/static/embed-example.html",)),
            # The public read API may be read from any allowed origin; operator POSTs never get a CORS grant.
            Middleware(
                Methods,
                routes=table,
                cors=CorsPolicy(frozenset(settings.cors_origins), ("GET", "HEAD"), allow_headers=("Last-Event-ID",)),
                public=("/api/", "/openapi.json"),
            ),
        ],
    )
    app.state.services = services
    for name in STATE_ALIASES:
        setattr(app.state, name, getattr(services, name))
    return app


async def http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    return json_error(status, getattr(exc, "detail", "internal error"))


async def store_unavailable(request: Request, exc: Exception) -> Response:
    failed = json_error(503, f"the archive is unavailable: {exc}")
    failed.headers["Retry-After"] = "1"
    return failed


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return json_error(500, "internal error")


class ServerEntry:
    """The ASGI app uvicorn runs: ``/ws`` goes straight to the socket handler, everything else to Starlette.

    Two reasons. A connection that is open for hours would otherwise keep the middleware and router frames of
    its request alive (about 9 KB each, measured in bench/fanout.py), which matters at thousands of viewers.
    And a client that stops reading keeps its TCP window shut, so neither data nor a close frame can reach it:
    the only way to free it is to abort the transport. ASGI has no such call, so under uvicorn (whose ``send``
    is a bound method of the protocol) we hand the handler the transport's ``abort``; elsewhere it falls back to
    a normal close.
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.socket: EventSocket = app.state.services.socket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        extensions = scope.get("extensions") or {}
        # broadcast.ws_protocol puts it there itself for WebSockets, saving a copy of the scope per viewer.
        if transport is not None and scope["type"] in ("websocket", "http") and ABORT_KEY not in extensions:
            # HTTP too: SSE cuts clients that stopped reading the same way.
            scope = {**scope, "extensions": {**(scope.get("extensions") or {}), ABORT_KEY: transport.abort}}
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            await self.socket.handle(WebSocket(scope, receive, send))
            return
        await self.app(scope, receive, send)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="server.py", description="Run the Sapha live-sitting service.")
    parser.add_argument("--host", help="interface to bind (default: $HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: $PORT or 8000)")
    parser.add_argument("--source", help="caption a live feed: a file path or any FFmpeg URL (rtsp://, https://…m3u8)")
    parser.add_argument("--sitting", help="the sitting id the --source belongs to (created when missing)")
    parser.add_argument("--title", help="title for a sitting that --source creates")
    parser.add_argument("--loop", action="store_true", help="replay a file --source forever, as if live")
    parser.add_argument(
        "--no-realtime", action="store_true", help="read a file --source as fast as possible instead of at 1x"
    )
    parser.add_argument("--demo", action="store_true", help="start the demo sitting (bundled Thai speech, looped)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="serve the port from N processes (needs REDIS_URL; each feed runs in one of them, moving on failure)",
    )
    # Set by the --workers parent on each worker: the listening socket it inherited.
    parser.add_argument("--worker-fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, not {args.workers}")
    if args.workers > 1 and not os.environ.get("REDIS_URL"):
        parser.error("--workers > 1 needs REDIS_URL: the processes share viewers' channels and feed leases in Redis")
    if args.demo and args.source:
        parser.error("--demo and --source cannot be combined")
    if (args.sitting or args.loop or args.title or args.no_realtime) and not args.source:
        parser.error("--sitting, --title, --loop and --no-realtime need --source")
    if args.sitting is not None and not re.fullmatch(ID_PATTERN, args.sitting):
        parser.error(f"--sitting {args.sitting!r} is not a sitting id: use up to 64 letters, digits, '_', '-', '.'")
    return args


def feeds_from_args(args: argparse.Namespace) -> list[FeedSpec]:
    if args.demo:
        return [FeedSpec(str(DEMO_AUDIO), loop=True, demo=True)]
    if args.source:
        return [FeedSpec(args.source, args.sitting, args.title, args.loop, not args.no_realtime)]
    return []


def uvicorn_config(app: Any, settings: Settings) -> Any:
    import uvicorn

    from broadcast.ws_protocol import QuietWebSocketProtocol

    return uvicorn.Config(
        ServerEntry(app),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # uvicorn's websockets-sansio protocol, minus a traceback in the log for each non-UTF-8 text frame.
        ws=QuietWebSocketProtocol,
        ws_max_size=64 * 1024,
        # Compression would cost a deflate per client per event (events are encoded once and shared) and
        # doubles memory per connection; captions are small, so bandwidth saved is little.
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_interval,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    args = parse_args(argv)
    cap_arenas()  # before the model and the thread pools start their threads
    env_settings = Settings.from_env()
    settings = Settings(
        **{
            **env_settings.__dict__,
            "host": args.host or env_settings.host,
            "port": args.port or env_settings.port,
        }
    )
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.workers > 1:
        sys.exit(_run_workers(args, settings))
    app = create_app(settings, feeds=feeds_from_args(args))
    services: Services = app.state.services
    if services.token_generated:
        announce_token(services.operator_token, settings)
    # Thousands of long-lived connections make Python's full collections slow (a stall every few seconds at
    # 2k clients in bench/fanout.py): move start-up objects out of the collector's way and collect less often.
    gc.freeze()
    gc.set_threshold(10_000, 50, 1000)
    if args.worker_fd is not None:
        from live.workers import stop_with_parent, worker_socket

        stop_with_parent()
        uvicorn.Server(uvicorn_config(app, settings)).run(sockets=[worker_socket(args.worker_fd)])
        return
    if args.demo:
        print(f"Demo sitting: http://{settings.host}:{settings.port}/watch/demo", file=sys.stderr)
    uvicorn.Server(uvicorn_config(app, settings)).run()


def announce_token(token: str, settings: Settings) -> Path:
    """Put a generated operator token in a file only its owner can read, and say where.

    The token itself never goes to stderr: under systemd or a container runtime stderr is a log that others read.
    """
    path = settings.staff_db_path().parent / "operator-token"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    os.chmod(path, 0o600)  # an older file keeps its mode through O_CREAT
    print(f"OPERATOR_TOKEN not set; this run's operator token is in {path} (readable only by you)", file=sys.stderr)
    return path


def _run_workers(args: argparse.Namespace, settings: Settings) -> int:
    """``--workers N``: bind the port here and run N worker processes on it (``live.workers``)."""
    from live.workers import bind, run_workers

    env = dict(os.environ)
    token = settings.operator_token or secrets.token_urlsafe(24)
    if not settings.operator_token:
        announce_token(token, settings)  # one token for all workers
    env["OPERATOR_TOKEN"] = token
    # Every worker must name the same sitting, or each would create its own.
    sitting = args.sitting or (f"feed-{secrets.token_hex(3)}" if args.source else None)
    worker_args = [
        *(["--demo"] if args.demo else []),
        *(["--source", args.source, "--sitting", sitting] if args.source and sitting else []),
        *(["--title", args.title] if args.title else []),
        *(["--loop"] if args.loop else []),
        *(["--no-realtime"] if args.no_realtime else []),
    ]
    sock = bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    print(f"Serving http://{settings.host}:{port} from {args.workers} worker processes", file=sys.stderr)
    if args.demo:
        print(f"Demo sitting: http://{settings.host}:{port}/watch/demo", file=sys.stderr)
    try:
        return run_workers(args.workers, sock, Path(__file__), worker_args, env)
    finally:
        sock.close()


if __name__ == "__main__":
    main()
