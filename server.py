"""Sapha's entry point: settings from the environment, and the one place where everything is wired together.

``python server.py [--host H] [--port P]`` serves the API, the WebSocket and SSE endpoints and the viewer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from archive.api import ArchiveAPI, ok
from archive.openapi import openapi_document
from archive.recorder import Recorder
from archive.store import Store
from archive.store_sqlite import SqliteStore
from broadcast.broker import Broker
from broadcast.broker_memory import MemoryBroker
from broadcast.hub import Hub
from broadcast.metrics import Metrics
from broadcast.sse import EventStream
from broadcast.ws import ABORT_KEY, EventSocket, SocketLimits
from common.http import JSONUnicodeResponse, json_error
from live.demo import prepare_demo_sitting, run_demo_script
from live.feed import LiveFeed
from live.hls_http import HlsFiles
from live.webrtc import WebRtcGateway
from stream.demo_media import DEMO_AUDIO
from stream.hls import HlsWriter
from stream.source import AudioSource
from stream.titlecard import TitleCard
from stream.whip import WhipAudioSource
from transcribe.caption import Caption
from transcribe.engine import CaptionEngine
from transcribe.model import ModelError, ModelSettings, SharedModel, load_model

log = logging.getLogger("sapha")

OnCaption = Callable[[Caption], Awaitable[None]]

ROOT = Path(__file__).resolve().parent
STATIC = ROOT / "static"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str | None = None
    redis_prefix: str = "sapha"
    database_url: str = "sqlite:///var/sapha.db"
    operator_token: str = ""
    history_size: int = 10_000
    ws_outbox: int = 1000
    ws_ping_interval: float = 20.0
    log_level: str = "info"
    whisper_language: str = "th"
    hls_dir: str = "var/hls"
    whep_max_viewers: int = 8

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            host=env.get("HOST", cls.host),
            port=int(env.get("PORT", cls.port)),
            redis_url=env.get("REDIS_URL") or None,
            redis_prefix=env.get("REDIS_PREFIX", cls.redis_prefix),
            database_url=env.get("DATABASE_URL", cls.database_url),
            operator_token=env.get("OPERATOR_TOKEN", ""),
            history_size=int(env.get("HISTORY_SIZE", cls.history_size)),
            ws_outbox=int(env.get("WS_OUTBOX", cls.ws_outbox)),
            ws_ping_interval=float(env.get("WS_PING_INTERVAL", cls.ws_ping_interval)),
            log_level=env.get("LOG_LEVEL", cls.log_level),
            whisper_language=env.get("WHISPER_LANGUAGE", cls.whisper_language),
            hls_dir=env.get("HLS_DIR", cls.hls_dir),
            whep_max_viewers=int(env.get("WHEP_MAX_VIEWERS", cls.whep_max_viewers)),
        )


@dataclass(frozen=True)
class FeedSpec:
    """A live feed to start with the server: where the audio comes from and which sitting it belongs to."""

    source: str
    sitting_id: str | None = None
    title: str | None = None
    loop: bool = False
    realtime: bool = True
    demo: bool = False


def make_broker(settings: Settings) -> Broker:
    if settings.redis_url:
        from broadcast.broker_redis import RedisBroker

        return RedisBroker(settings.redis_url, prefix=settings.redis_prefix, history_size=settings.history_size)
    return MemoryBroker(history_size=settings.history_size)


def make_store(settings: Settings) -> Store:
    url = settings.database_url
    if url.startswith("sqlite:///"):
        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("DATABASE_URL: the PostgreSQL store is not available yet; use sqlite:///path/to/file.db")
    raise SystemExit(f"DATABASE_URL must start with sqlite:/// (got {url.split(':', 1)[0]}:...)")


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
        self.socket: EventSocket = app.state.socket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None:
                scope = {**scope, "extensions": {**(scope.get("extensions") or {}), ABORT_KEY: transport.abort}}
            await self.socket.handle(WebSocket(scope, receive, send))
            return
        await self.app(scope, receive, send)


async def _feed_sitting(recorder: Recorder, spec: FeedSpec) -> str:
    """The sitting a feed captions: the demo's, an existing one, or a new one created for it."""
    if spec.demo:
        return await prepare_demo_sitting(recorder)
    if spec.sitting_id and await recorder.store.get_sitting(spec.sitting_id) is not None:
        return spec.sitting_id
    sitting_id = spec.sitting_id or f"feed-{secrets.token_hex(3)}"
    await recorder.create_sitting(sitting_id, spec.title or f"การประชุม {sitting_id}", "senate")
    return sitting_id


def _engine_factory(model: SharedModel, language: str) -> Callable[[OnCaption], CaptionEngine]:
    """Engines for one feed; a per-feed prefix keeps caption segment ids unique across runs of a sitting."""
    prefix = f"{secrets.token_hex(3)}-"

    def make_engine(on_caption: OnCaption) -> CaptionEngine:
        return CaptionEngine(model, language=language, on_caption=on_caption, segment_prefix=prefix)

    return make_engine


async def _start_feeds(
    specs: Sequence[FeedSpec],
    recorder: Recorder,
    metrics: Metrics,
    model: SharedModel,
    language: str,
    hls_root: Path,
) -> tuple[list[LiveFeed], list[asyncio.Task[None]]]:
    feeds: list[LiveFeed] = []
    tasks: list[asyncio.Task[None]] = []
    for spec in specs:
        sitting_id = await _feed_sitting(recorder, spec)
        make_engine = _engine_factory(model, language)

        sitting = await recorder.store.get_sitting(sitting_id)
        title = sitting.title if sitting else sitting_id
        # Audio-only feeds (the demo, a microphone) get a title card as their picture.
        hls = HlsWriter(hls_root / sitting_id, picture=TitleCard(title))
        source = AudioSource(spec.source, realtime=spec.realtime, loop=spec.loop, hls=hls)
        feed = LiveFeed(sitting_id, source, make_engine, recorder, metrics, adjourn_at_end=not spec.loop)
        feeds.append(feed)
        tasks.append(asyncio.create_task(feed.run(), name=f"feed:{sitting_id}"))
        if spec.demo:
            tasks.append(asyncio.create_task(run_demo_script(recorder, sitting_id), name="demo-script"))
    return feeds, tasks


def create_app(
    settings: Settings,
    *,
    broker: Broker | None = None,
    store: Store | None = None,
    feeds: Sequence[FeedSpec] = (),
    model: SharedModel | None = None,
) -> Starlette:
    """Build the app. Tests pass their own broker, store or model; everything else comes from ``settings``.

    The whisper model is loaded once, at start-up, and only when there are feeds to caption.
    """
    metrics = Metrics()
    hub = Hub(broker or make_broker(settings))
    store = store or make_store(settings)
    recorder = Recorder(store, hub, metrics)
    token = settings.operator_token or secrets.token_urlsafe(24)
    api = ArchiveAPI(store, recorder, hub, token)
    socket = EventSocket(hub, metrics, SocketLimits(outbox=settings.ws_outbox))
    sse = EventStream(hub, metrics, outbox_limit=settings.ws_outbox)
    hls_root = Path(settings.hls_dir)
    hls_files = HlsFiles(hls_root)
    op = api.operator

    running: list[LiveFeed] = []
    # Loaded at start-up when there are feeds, else when the first WHIP publisher needs captions; once either way.
    loaded: list[SharedModel] = [model] if model is not None else []
    model_lock = asyncio.Lock()

    async def shared_model() -> SharedModel:
        async with model_lock:
            if not loaded:
                loaded.append(await asyncio.to_thread(load_model, ModelSettings.from_env()))
            return loaded[0]

    def whip_hls(sitting_id: str, video: bool) -> HlsWriter:
        # A publisher that sends sound only (a microphone) still gets a picture for HLS viewers.
        writer = HlsWriter(hls_root / sitting_id, picture=TitleCard(sitting_id))
        writer.begin_input(video=video, audio=True)
        return writer

    async def caption_whip(sitting_id: str, audio: WhipAudioSource) -> None:
        try:
            shared = await shared_model()
        except ModelError as exc:
            log.error("sitting %s: WHIP audio will not be captioned: %s", sitting_id, exc)
            return
        feed = LiveFeed(
            sitting_id,
            audio,
            _engine_factory(shared, settings.whisper_language),
            recorder,
            metrics,
            adjourn_at_end=False,
        )
        running.append(feed)
        try:
            await feed.run()
        finally:
            running.remove(feed)

    webrtc = WebRtcGateway(
        store,
        operator_auth=api.authorised,
        on_publish=caption_whip,
        media_sink=whip_hls,
        max_viewers=settings.whep_max_viewers,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        await hub.start()
        tasks: list[asyncio.Task[None]] = []
        try:
            if feeds:
                try:
                    shared = await shared_model()
                except ModelError as exc:
                    log.error("%s", exc)
                    raise
                started, tasks = await _start_feeds(
                    feeds, recorder, metrics, shared, settings.whisper_language, hls_root
                )
                running.extend(started)
            yield
        finally:
            # WebRTC first, so captions of a publisher still connected are flushed while the store is open.
            await webrtc.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await hub.close()
            await store.close()

    async def healthz(request: Request) -> Response:
        broker_ok = await hub.broker.healthy()
        body = {
            "broker": "ok" if broker_ok else "down",
            "subscriptions": hub.subscription_count,
            "feeds": [feed.state.to_dict() for feed in running],
        }
        if not broker_ok:
            return JSONUnicodeResponse({"ok": False, "status": 503, "error": "broker down", **body}, 503)
        return ok(body)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(request: Request) -> Response:
        return JSONUnicodeResponse(openapi_document())

    async def index_page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def watch_page(request: Request) -> Response:
        if await store.get_sitting(request.path_params["sitting_id"]) is None:
            return FileResponse(STATIC / "404.html", status_code=404)
        return FileResponse(STATIC / "watch.html")

    async def embed_page(request: Request) -> Response:
        # No X-Frame-Options or frame-ancestors here: this page exists to be framed by other sites.
        if await store.get_sitting(request.path_params["sitting_id"]) is None:
            return FileResponse(STATIC / "404.html", status_code=404)
        return FileResponse(STATIC / "embed.html")

    routes = [
        Route("/", index_page),
        Route("/watch/{sitting_id}", watch_page),
        Route("/embed/{sitting_id}", embed_page),
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint),
        Route("/openapi.json", openapi),
        Route("/api/sittings", api.list_sittings, methods=["GET"]),
        Route("/api/sittings", op(api.create_sitting), methods=["POST"]),
        Route("/api/sittings/{sitting_id}", api.get_sitting, methods=["GET"]),
        Route("/api/sittings/{sitting_id}/transcript", api.transcript, methods=["GET"]),
        Route("/api/sittings/{sitting_id}/status", op(api.set_status), methods=["POST"]),
        Route("/api/sittings/{sitting_id}/agenda", op(api.set_agenda), methods=["POST"]),
        Route("/api/sittings/{sitting_id}/votes", op(api.record_vote), methods=["POST"]),
        Route("/api/sittings/{sitting_id}/speaker", op(api.set_speaker), methods=["POST"]),
        Route("/api/bills/{bill_id}", api.get_bill, methods=["GET"]),
        Route("/api/bills/{bill_id}", op(api.set_bill), methods=["POST"]),
        Route("/api/channels/{channel}/events", sse.handle, methods=["GET"]),
        Route("/live/{sitting_id}/{name:path}", hls_files.handle, methods=["GET"]),
        WebSocketRoute("/ws", socket.handle),
        *webrtc.routes(),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        return json_error(status, getattr(exc, "detail", "internal error"))

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return json_error(500, "internal error")

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.settings = settings
    app.state.socket = socket
    app.state.webrtc = webrtc
    app.state.hub = hub
    app.state.store = store
    app.state.recorder = recorder
    app.state.metrics = metrics
    app.state.operator_token = token
    app.state.token_generated = not settings.operator_token
    return app


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
    args = parser.parse_args(argv)
    if args.demo and args.source:
        parser.error("--demo and --source cannot be combined")
    if (args.sitting or args.loop or args.title or args.no_realtime) and not args.source:
        parser.error("--sitting, --title, --loop and --no-realtime need --source")
    return args


def feeds_from_args(args: argparse.Namespace) -> list[FeedSpec]:
    if args.demo:
        return [FeedSpec(str(DEMO_AUDIO), loop=True, demo=True)]
    if args.source:
        return [FeedSpec(args.source, args.sitting, args.title, args.loop, not args.no_realtime)]
    return []


def uvicorn_config(app: Any, settings: Settings) -> Any:
    import uvicorn

    return uvicorn.Config(
        ServerEntry(app),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws="websockets-sansio",
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
    env_settings = Settings.from_env()
    settings = Settings(
        **{
            **env_settings.__dict__,
            "host": args.host or env_settings.host,
            "port": args.port or env_settings.port,
        }
    )
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings, feeds=feeds_from_args(args))
    if app.state.token_generated:
        # Printed once to the console, never logged: whoever started the server is the operator.
        print(f"OPERATOR_TOKEN not set; this run's operator token is: {app.state.operator_token}", file=sys.stderr)
    # Thousands of long-lived connections make Python's full collections slow (a stall every few seconds at
    # 2k clients in bench/fanout.py): move start-up objects out of the collector's way and collect less often.
    gc.freeze()
    gc.set_threshold(10_000, 50, 1000)
    if args.demo:
        print(f"Demo sitting: http://{settings.host}:{settings.port}/watch/demo", file=sys.stderr)
    uvicorn.Server(uvicorn_config(app, settings)).run()


if __name__ == "__main__":
    main()
