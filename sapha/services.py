"""The services: every long-lived object the server needs, built from ``Settings`` with no I/O, and opened in order.

``build_services`` only constructs (tests pass their own broker, store, model or staff stores). ``lifespan``
opens the resources one group at a time, each group a small async context manager whose open and close sit
together, entered on one ``AsyncExitStack``: the start order reads top to bottom, and shutdown runs it backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerts.api import AlertsAPI
from alerts.delivery import Alerting, DeliveryWorkers, SenderProcess
from alerts.email import SmtpConfig
from alerts.message_notices import NoticeWorker, check_subscription
from alerts.push import application_server_key, load_or_create_vapid
from alerts.store_sqlite import AlertStore
from alerts.wiring import AlertFeed
from archive import bill_clock
from archive import search as archive_search
from archive.api import ArchiveAPI
from archive.bills_api import BillsAPI
from archive.documents import load_if_empty
from archive.documents_api import DocumentsAPI
from archive.recorder import Recorder
from archive.search_api import SearchAPI
from archive.store import Store
from archive.store_postgres import PostgresStore
from archive.store_sqlite import SqliteStore
from broadcast.broker import Broker
from broadcast.broker_memory import MemoryBroker
from broadcast.hub import Hub
from broadcast.limits import ConnectionLimiter
from broadcast.metrics import Metrics
from broadcast.sse import EventStream
from broadcast.ws import EventSocket, SocketLimits
from desk.accounts import SessionPolicy
from desk.accounts_sqlite import AccountStore
from desk.api import StaffAPI
from desk.attachments import AttachmentStore
from desk.messages_api import MessagesAPI, RedactCodes, contact_keys, run_retention
from desk.messages_sqlite import MessageStore
from desk.news_api import NewsAPI
from desk.news_sqlite import NewsStore
from live.hls_http import HlsFiles
from live.supervisor import spawn
from live.webrtc import WebRtcGateway
from sapha.feeds import Feeds, FeedSpec, ModelHolder
from sapha.settings import STATIC, Settings
from transcribe.model import SharedModel

log = logging.getLogger("sapha")


def make_broker(settings: Settings) -> Broker:
    if settings.redis_url:
        from broadcast.broker_redis import RedisBroker

        return RedisBroker(
            settings.redis_url,
            prefix=settings.redis_prefix,
            history_size=settings.history_size,
            socket_timeout=settings.redis_socket_timeout,
            connect_timeout=settings.redis_connect_timeout,
        )
    return MemoryBroker(history_size=settings.history_size)


def make_store(settings: Settings) -> Store:
    url = settings.database_url
    if url.startswith("sqlite:///"):
        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgres://", "postgresql://")):
        return PostgresStore(url)
    raise SystemExit(f"DATABASE_URL must start with sqlite:/// or postgresql:// (got {url.split(':', 1)[0]}:...)")


def channel_exists(store: Store) -> Callable[[str], Awaitable[bool]]:
    """A channel may be subscribed to when its sitting or bill is in the archive."""

    async def exists(channel: str) -> bool:
        kind, _, id = channel.partition(":")
        if kind == "sitting":
            return await store.get_sitting(id) is not None
        if kind == "bill":
            return await store.get_bill(id) is not None
        return channel == "news"

    return exists


class VapidPublicKey:
    """The Web Push public key ``GET /api/alerts/push/key`` serves: known once the alerts group has opened."""

    def __init__(self) -> None:
        self.value: str | None = None

    def __call__(self) -> str:
        if self.value is None:
            raise RuntimeError("the VAPID key is not loaded (the app's lifespan loads it)")
        return self.value


@dataclass
class Services:
    """Everything the routes and the lifespan share. Built by ``build_services``; ``alerting`` exists while open."""

    settings: Settings
    metrics: Metrics
    store: Store
    hub: Hub
    recorder: Recorder
    # OPERATOR_TOKEN, or one made up for this run (``token_generated``: the CLI prints it once).
    operator_token: str
    token_generated: bool
    # -- HTTP APIs, one per module
    staff: StaffAPI
    api: ArchiveAPI
    bills: BillsAPI
    search: SearchAPI
    documents: DocumentsAPI
    messages_api: MessagesAPI
    news_api: NewsAPI
    alerts_api: AlertsAPI
    # -- live delivery
    socket: EventSocket
    sse: EventStream
    hls_files: HlsFiles
    webrtc: WebRtcGateway
    feeds: Feeds
    # -- alerts
    alert_store: AlertStore
    vapid_key: VapidPublicKey
    smtp: SmtpConfig | None
    alerting: Alerting | None = None
    # Staff stores passed in by tests: opened and closed by their owner, not by the lifespan.
    given_accounts: AccountStore | None = field(default=None, repr=False)
    given_messages: MessageStore | None = field(default=None, repr=False)


def build_services(
    settings: Settings,
    *,
    broker: Broker | None = None,
    store: Store | None = None,
    feeds: Sequence[FeedSpec] = (),
    model: SharedModel | None = None,
    accounts: AccountStore | None = None,
    messages: MessageStore | None = None,
) -> Services:
    """Construct every service from ``settings`` (or the parts given); opens nothing, starts nothing."""
    metrics = Metrics()
    store = store or make_store(settings)
    hub = Hub(broker or make_broker(settings), channel_exists=channel_exists(store))
    recorder = Recorder(store, hub, metrics)
    token = settings.operator_token or secrets.token_urlsafe(24)
    staff = StaffAPI(accounts, operator_token=token)
    api = ArchiveAPI(store, recorder, hub, token, authorise=staff.authorise, audit=staff.audit)
    # One count per address for WebSocket and SSE together: both hold a subscription and a socket open.
    connections = ConnectionLimiter(settings.max_connections_per_ip)
    smtp = SmtpConfig.from_url(settings.smtp_url, sender=settings.smtp_from) if settings.smtp_url else None
    vapid_key = VapidPublicKey()
    live_feeds = Feeds(feeds, recorder, metrics, ModelHolder(model), settings=settings)
    messages_api = MessagesAPI(staff.authorise)
    allow_private = settings.webhook_allow_private
    messages_api.check_push = lambda value: check_subscription(value, allow_private=allow_private)
    return Services(
        settings=settings,
        metrics=metrics,
        store=store,
        hub=hub,
        recorder=recorder,
        operator_token=token,
        token_generated=not settings.operator_token,
        staff=staff,
        api=api,
        bills=BillsAPI(store, recorder),
        search=SearchAPI(store),
        documents=DocumentsAPI(store),
        messages_api=messages_api,
        # Topic followers (alerts) are not wired into the server yet: notify_followers is the hook for them.
        news_api=NewsAPI(staff.authorise, search=archive_search, publish=hub.publish, pages=STATIC),
        alerts_api=AlertsAPI(
            store,
            base_url=settings.base_url(),
            vapid_key=vapid_key,
            smtp=smtp is not None,
            allow_private=settings.webhook_allow_private,
        ),
        socket=EventSocket(hub, metrics, SocketLimits(outbox=settings.ws_outbox), limiter=connections),
        sse=EventStream(hub, metrics, outbox_limit=settings.ws_outbox, limiter=connections),
        hls_files=HlsFiles(Path(settings.hls_dir)),
        webrtc=WebRtcGateway(
            store,
            operator_auth=api.may_publish,
            on_publish=live_feeds.caption_whip,
            media_sink=live_feeds.whip_hls,
            max_viewers=settings.whep_max_viewers,
            max_viewers_per_ip=settings.whep_max_viewers_per_ip,
            whep_origins=settings.whep_cors_origins,
            whip_origins=settings.whip_cors_origins,
        ),
        feeds=live_feeds,
        alert_store=AlertStore(settings.alerts_db_path()),
        vapid_key=vapid_key,
        smtp=smtp,
        given_accounts=accounts,
        given_messages=messages,
    )


# -- the lifespan: one context manager per resource group, in start order ----------------------------------------


@contextlib.asynccontextmanager
async def lifespan(services: Services) -> AsyncIterator[None]:
    """Open everything in order; close in reverse on the way out, whatever failed."""
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(archive(services))
        await stack.enter_async_context(staff_desk(services))
        # In the background: a fresh deployment serves at once, and its documents appear within seconds.
        await stack.enter_async_context(
            background(load_if_empty(services.store, services.settings.documents_data, log), "documents-load")
        )
        stack.enter_context(access_log_redaction())
        await stack.enter_async_context(bus(services))
        await stack.enter_async_context(alerts(services))
        # After the hub and the alerts hook: the relay first publishes what an earlier run recorded but could not.
        await stack.enter_async_context(relay(services))
        # The Senate clock's alerts: safe in every process at once (each event is claimed in the archive).
        bills = services.bills
        await stack.enter_async_context(
            background(bill_clock.run(services.store, services.recorder, now=lambda: bills.now()), "bill-clock")
        )
        await stack.enter_async_context(services.feeds.run())
        # Closed first, so captions of a publisher still connected are flushed while the store is open.
        stack.push_async_callback(services.webrtc.close)
        yield


@contextlib.asynccontextmanager
async def background(work: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """A supervised task (live/supervisor.py) for as long as the block runs; cancelled and awaited on exit."""
    task = spawn(work, name)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def archive(services: Services) -> AsyncIterator[None]:
    await services.store.open()
    try:
        yield
    finally:
        await services.store.close()


@contextlib.asynccontextmanager
async def staff_desk(services: Services) -> AsyncIterator[None]:
    """Accounts (and their hourly session purge), messages (and their retention), news: one staff database."""
    settings = services.settings
    web_roots: list[str | Path] = [STATIC, settings.hls_dir]
    async with contextlib.AsyncExitStack() as stack:
        if services.given_accounts is None:
            path = settings.staff_db_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            policy = SessionPolicy(lifetime_s=settings.session_lifetime, idle_s=settings.session_idle)
            accounts = await asyncio.to_thread(AccountStore, path, policy=policy)
            stack.callback(accounts.close)
            services.staff.open(accounts)
        await stack.enter_async_context(background(_purge_sessions(services.staff.accounts), "staff-session-purge"))
        messages = services.given_messages
        if messages is None:
            keyring = await asyncio.to_thread(contact_keys, settings.desk_contact_keys, settings.contact_keys_path())
            messages = await asyncio.to_thread(
                MessageStore,
                settings.staff_db_path(),
                keyring=keyring,
                retention_days=settings.messages_retention_days,
            )
            stack.callback(messages.close)
        services.messages_api.open(messages, AttachmentStore(settings.attachments_path(), web_roots=web_roots))
        await stack.enter_async_context(background(run_retention(messages), "messages-retention"))
        news = await asyncio.to_thread(NewsStore, settings.staff_db_path())
        stack.callback(news.close)
        services.news_api.open(news, AttachmentStore(settings.news_files_path(), web_roots=web_roots))
        yield


@contextlib.contextmanager
def access_log_redaction() -> Iterator[None]:
    """While serving, drop message tracking codes from uvicorn's access log (desk/messages_api.py RedactCodes)."""
    redact = RedactCodes()
    logging.getLogger("uvicorn.access").addFilter(redact)
    try:
        yield
    finally:
        logging.getLogger("uvicorn.access").removeFilter(redact)


@contextlib.asynccontextmanager
async def bus(services: Services) -> AsyncIterator[None]:
    await services.hub.start()
    try:
        yield
    finally:
        await services.hub.close()


@contextlib.asynccontextmanager
async def alerts(services: Services) -> AsyncIterator[None]:
    """Alerts (alerts/wiring.py): every entry the relay publishes is handed to the matcher before it is marked sent,
    so a restart replays what was not yet enqueued. Workers run in every process (claims are leased in the shared
    alerts database); ALERT_WORKERS=0 leaves sending to other processes."""
    settings, store = services.settings, services.alert_store
    await store.open()
    try:
        vapid = await asyncio.to_thread(load_or_create_vapid, settings.vapid_key_path())
        services.vapid_key.value = application_server_key(vapid)
        workers = DeliveryWorkers(
            store,
            base_url=settings.base_url(),
            vapid=vapid,
            smtp=services.smtp,
            allow_private=settings.webhook_allow_private,
        )
        # ALERT_SENDER_NICE / ALERT_SENDER_IDLE: the same workers in child processes at a lower priority, off the
        # loop that fans out captions.
        sender = (
            SenderProcess(
                settings.alerts_db_path(),
                base_url=settings.base_url(),
                vapid_path=settings.vapid_key_path(),
                smtp=services.smtp,
                allow_private=settings.webhook_allow_private,
                nice=settings.alert_sender_nice,
                idle=settings.alert_sender_idle,
                procs=settings.alert_sender_procs,
            )
            if settings.alert_sender_nice > 0 or settings.alert_sender_idle
            else None
        )
        services.alerting = Alerting(store, (sender or workers) if settings.alert_workers else None)
        services.alerts_api.open(store, (sender or workers).wake)
        services.recorder.relay.on_published = AlertFeed(services.store, services.alerting.publish)
        # The senders' status notices (alerts/message_notices.py), beside the alerts' workers and like them leased.
        notices = NoticeWorker(
            services.messages_api.messages,
            base_url=settings.base_url(),
            smtp=services.smtp,
            vapid=vapid,
            allow_private=settings.webhook_allow_private,
        )
        try:
            if settings.alert_workers:
                await (sender or workers).start()
                await notices.start()
                services.messages_api.on_notice = notices.wake
            async with background(_purge_alerts(store), "alerts-purge"):
                yield
        finally:
            services.messages_api.on_notice = None
            services.recorder.relay.on_published = None
            await notices.stop()
            await workers.stop()
            if sender is not None:
                await sender.stop()
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def relay(services: Services) -> AsyncIterator[None]:
    await services.recorder.relay.start()
    try:
        yield
    finally:
        await services.recorder.relay.stop()


async def _purge_alerts(store: AlertStore, every_s: float = 3600.0) -> None:
    """Hourly: expire unconfirmed email follows, forget old outbox rows and throttles (alerts/store_sqlite.py)."""
    while True:
        await store.purge(time.time())
        await asyncio.sleep(every_s)


async def _purge_sessions(accounts: AccountStore, every_s: float = 3600.0) -> None:
    """Delete ended sessions hourly, so that they do not pile up in the staff database."""
    while True:
        await asyncio.to_thread(accounts.purge_sessions)
        await asyncio.sleep(every_s)
