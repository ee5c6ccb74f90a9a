"""Delivering alerts: publish an event into the durable outbox, and the workers that send what it holds.

``Alerting.publish(event)`` asks the store for the follows the event concerns, plans the deliveries
(``alerts.matcher``) and enqueues them with the event id in one transaction (``AlertStore.enqueue``): once it
returns, a crash loses nothing, and publishing the same event again adds nothing.

``DeliveryWorkers`` is one process's worker set: a dispatcher task claims due rows (leased to this set, at most
``per_endpoint`` leased rows per endpoint across all processes, at most ``concurrency`` in flight here) and starts one
task per claimed row, which sends it and records the result:

* webhook — checks the URL policy again, signs afresh (``alerts.webhooks``, same ``webhook-id`` on every retry) and
  POSTs; 2xx delivered, 410 disables the endpoint, anything else retried;
* push — checks the URL policy, encrypts and signs (``alerts.push``, ``TTL``, ``Topic`` from the subject, ``Urgency``)
  in a thread (the elliptic-curve work is CPU) and POSTs; 404/410 remove the subscription;
* email — SMTP (``alerts.email``): the confirmation message, one alert, or a daily digest (every due digest row of
  the address in one message).

Each attempt is bounded by ``timeout_s`` (``alerts.sender``), and a row's lease outlasts it, so a receiver that hangs
or answers 500 holds one slot of its own endpoint for at most that long and never delays anyone else. Retries follow
``alerts.schedule`` (jittered; ``Retry-After`` honoured); endpoints are disabled after 410 or a long failure streak.
The dispatcher wakes when ``wake()`` is called (``publish`` does), when a send finishes, and otherwise every
``poll_s`` to pick up retries and other processes' rows. A worker set that stops or dies mid-send leaves its rows
leased until the lease ends; another set then sends them.

How it is meant to be wired: ``server.py``'s lifespan opens ``AlertStore``, builds ``DeliveryWorkers(store,
base_url=settings.public_url, vapid=load_or_create_vapid(Path("var/vapid_private.pem")), smtp=...,
allow_private=settings.webhook_allow_private)``, ``await workers.start()`` and on shutdown ``await workers.stop()``;
an ``Alerting(store, workers)`` is given to whatever publishes bill, vote, agenda, caption, clock and sitting
events (the recorder's publish hook or a bus subscriber), which calls ``await alerting.publish(event)`` after the
event is archived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from py_vapid import Vapid02

from alerts import email, push, webhooks
from alerts.follows import unsubscribe_token
from alerts.matcher import Event, exact_targets, plan, wants_keywords
from alerts.messages import Alert
from alerts.schedule import AttemptResult, DeliveryState, Outcome, after_outcome, classify
from alerts.store_sqlite import AlertStore, Claimed, new_owner
from alerts.url_policy import Resolver, UrlRefused, check_url, resolve

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 200
DEFAULT_PER_ENDPOINT = 1
DEFAULT_TIMEOUT_S = 10.0
POLL_S = 1.0
POOL_SIZE = 16


class Alerting:
    """Turns published events into outbox rows (module docstring)."""

    def __init__(
        self, store: AlertStore, workers: DeliveryWorkers | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.workers = workers
        self.clock = clock

    async def publish(self, event: Event) -> int:
        """Enqueue the deliveries ``event`` calls for; the number of new outbox rows."""
        follows = await self.store.follows_for(exact_targets(event), keywords=wants_keywords(event))
        planned = plan(event, follows)
        added = await self.store.enqueue(planned, now=self.clock()) if planned else 0
        if added and self.workers is not None:
            self.workers.wake()
        return added


class DeliveryWorkers:
    """One process's senders (module docstring). ``clock`` and ``rng`` are injectable for tests."""

    def __init__(
        self,
        store: AlertStore,
        *,
        base_url: str,
        vapid: Vapid02 | None = None,
        vapid_subject: str = "mailto:webmaster@localhost",
        smtp: email.SmtpConfig | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        per_endpoint: int = DEFAULT_PER_ENDPOINT,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        poll_s: float = POLL_S,
        allow_private: bool = False,
        resolver: Resolver = resolve,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.store = store
        self.base_url = base_url.rstrip("/")
        self.vapid = vapid
        self.vapid_subject = vapid_subject
        self.smtp = smtp
        self.concurrency = concurrency
        self.per_endpoint = per_endpoint
        self.timeout_s = timeout_s
        self.lease_s = 2 * timeout_s + 30  # outlasts one bounded attempt and recording it
        self.poll_s = poll_s
        self.allow_private = allow_private
        self.resolver = resolver
        self.clock = clock
        self.rng = rng or random.Random()
        self.owner = new_owner()
        self._clients: list[httpx.AsyncClient] = [client] if client is not None else []
        self._own_client = client is None
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopping = False
        self.sent = 0  # attempts finished by this set (for the benchmark and operators)

    def _open_clients(self) -> None:
        # Several small connection pools rather than one big one: httpcore scans every pooled connection for each
        # request, so one pool of 200 spent more CPU choosing a connection than sending (bench/alerts.py).
        if not self._clients:
            shards = max(1, self.concurrency // POOL_SIZE)
            size = -(-self.concurrency // shards)
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            self._clients = [httpx.AsyncClient(limits=limits, timeout=self.timeout_s) for _ in range(shards)]

    def _client(self, row: Claimed) -> httpx.AsyncClient:
        return self._clients[hash(row.endpoint_id) % len(self._clients)]

    async def start(self) -> None:
        self._open_clients()
        self._dispatcher = asyncio.create_task(self._dispatch(), name="alerts-dispatch")

    async def stop(self, *, abandon: bool = False) -> None:
        """Stop claiming; wait for the sends in flight (or, with ``abandon``, cancel them: their rows stay leased
        until their lease ends, as after a crash)."""
        self._stopping = True
        self._wake.set()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        if abandon:
            for task in self._tasks:
                task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_client:
            for client in self._clients:
                await client.aclose()
            self._clients = []

    def wake(self) -> None:
        """Look for due deliveries now (after an enqueue)."""
        self._wake.set()

    async def _dispatch(self) -> None:
        while not self._stopping:
            free = self.concurrency - len(self._tasks)
            # Claim in batches: one claim per finished send would scan the outbox thousands of times.
            if free > 0 and (free >= max(1, self.concurrency // 4) or not self._tasks):
                try:
                    claimed = await self.store.claim(
                        self.owner, now=self.clock(), limit=free, per_endpoint=self.per_endpoint, lease_s=self.lease_s
                    )
                except Exception:
                    log.exception("claiming deliveries failed; retrying")
                    claimed = []
                for row in claimed:
                    task = asyncio.create_task(self._deliver(row))
                    self._tasks.add(task)
                    task.add_done_callback(self._done)
                if len(claimed) == free:
                    continue  # more may be due
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()

    async def run_once(self) -> int:
        """Claim what is due now and send it, waiting for every send: for tests and scripts (no dispatcher)."""
        self._open_clients()
        claimed = await self.store.claim(
            self.owner, now=self.clock(), limit=self.concurrency, per_endpoint=self.per_endpoint, lease_s=self.lease_s
        )
        await asyncio.gather(*(self._deliver(row) for row in claimed))
        return len(claimed)

    async def _deliver(self, row: Claimed) -> None:
        rows = [row]
        try:
            if row.channel == "webhook":
                outcome, result = await self._webhook(row)
            elif row.channel == "push":
                outcome, result = await self._push(row)
            else:
                if row.digest:
                    rows += await self.store.claim_digest(
                        self.owner, row.endpoint_id, now=self.clock(), lease_s=self.lease_s
                    )
                    rows = list({r.id: r for r in rows}.values())
                outcome, result = await self._email(rows)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in building the message: retry later rather than lose the row
            log.exception("delivery %s failed to send", row.id)
            outcome, result = Outcome.RETRY, AttemptResult(None, error=f"{type(exc).__name__}: {exc}"[:200])
        now = self.clock()
        state = after_outcome(DeliveryState(row.attempts, None), outcome, result.retry_after, now=now, rng=self.rng)
        self.sent += 1
        await self.store.finish(rows, self.owner, state, outcome, now=now, status=result.status, error=result.error)

    async def _checked(self, url: str | None, schemes: tuple[str, ...]) -> AttemptResult | None:
        try:
            await check_url(url, allow_private=self.allow_private, schemes=schemes, resolver=self.resolver)
        except UrlRefused as exc:
            return AttemptResult(None, error=f"refused: {exc}")
        return None

    async def _webhook(self, row: Claimed) -> tuple[Outcome, AttemptResult]:
        assert row.url is not None and row.secret is not None
        refused = await self._checked(row.url, ("http", "https"))
        if refused is not None:
            return Outcome.GONE, refused
        alert = row.payload["alert"]
        data: dict[str, Any] = {
            **alert,
            "url": self.base_url + alert["url"],
            "follow": row.follow_id,
            "event": row.event_id,
        }
        body = webhooks.event_body(alert["kind"], data, datetime.fromtimestamp(row.payload["occurred_at"], UTC))
        request = webhooks.build_request(
            row.url, body, msg_id=row.msg_id, timestamp=int(self.clock()), secrets=[row.secret]
        )
        result = await webhooks.post(self._client(row), request, timeout=self.timeout_s)
        return classify(result.status), result

    async def _push(self, row: Claimed) -> tuple[Outcome, AttemptResult]:
        assert row.url is not None
        if self.vapid is None:
            return Outcome.RETRY, AttemptResult(None, error="no VAPID key configured")
        if row.p256dh is None or row.auth is None:
            return Outcome.GONE, AttemptResult(None, error="subscription removed")
        schemes = ("https", "http") if self.allow_private else ("https",)
        refused = await self._checked(row.url, schemes)
        if refused is not None:
            return Outcome.GONE, refused
        alert = Alert(**row.payload["alert"])
        sub = push.PushSubscription(row.url, row.p256dh, row.auth)
        request = await asyncio.to_thread(
            push.build_push,
            sub,
            alert.push_payload(self.base_url),
            vapid=self.vapid,
            subject=self.vapid_subject,
            now=self.clock(),
            ttl=row.ttl,
            urgency=row.urgency,  # type: ignore[arg-type]
            topic=push.topic_for(row.topic or alert.subject),
        )
        result = await push.send(self._client(row), request, timeout=self.timeout_s)
        return classify(result.status, gone=push.PUSH_GONE), result

    async def _email(self, rows: list[Claimed]) -> tuple[Outcome, AttemptResult]:
        row = rows[0]
        assert row.email is not None
        if self.smtp is None:
            return Outcome.RETRY, AttemptResult(None, error="SMTP_URL is not set")
        if row.kind == "confirm":
            message = email.confirmation(
                self.smtp,
                row.email,
                base_url=self.base_url,
                token=row.payload["confirm_token"],
                target=row.payload["target"],
            )
        else:
            unsubscribe = email.unsubscribe_url(self.base_url, unsubscribe_token(self.store.link_key, row.follow_id))
            alerts = [Alert(**r.payload["alert"]) for r in rows if r.kind == "alert"]
            if len(rows) == 1 and not row.digest:
                message = email.alert_message(
                    self.smtp, row.email, alerts[0], base_url=self.base_url, unsubscribe=unsubscribe
                )
            else:
                message = email.digest_message(
                    self.smtp, row.email, alerts, base_url=self.base_url, unsubscribe=unsubscribe
                )
        return await email.send(self.smtp, message, timeout=self.timeout_s)
