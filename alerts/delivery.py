"""Delivering alerts: publish an event into the durable outbox, and the workers that send what it holds.

``Alerting.publish(event)`` asks the store for the follows the event concerns, plans the deliveries
(``alerts.matcher``) and enqueues them with the event id (``AlertStore.enqueue``) in transactions of
``ENQUEUE_CHUNK`` rows (the first one smaller), waking the workers after each, so the first alerts of a
10,000-follow vote are on their way while the rest are written: once it returns, a crash loses nothing, and
publishing the same event again adds nothing (one row per (follow, event)), so a crash midway is repaired by
publishing again — the relay does, since its hook runs before the archive entry is marked sent (``alerts.wiring``).
With the senders in niced child processes (``SenderProcess``), ``publish`` makes one durable write instead (the
event, in the store's ``alert_events``) and a child does the match and the chunked enqueue under the event's lease
(``Alerting.expand_waiting``), so the serving process's loop is not held by 10,000 rows.

``DeliveryWorkers`` is one process's worker set: a dispatcher task claims due rows (leased to this set, at most
``per_endpoint`` leased rows per endpoint across all processes, at most ``concurrency`` in flight here) and starts one
task per claimed row, which sends it and records the result:

* webhook — checks the URL policy again, signs afresh (``alerts.webhooks``, same ``webhook-id`` on every retry) and
  POSTs; 2xx delivered, 410 (or a host that now resolves to an address the policy refuses) disables the endpoint,
  anything else retried — a host that does not resolve at all too (a DNS outage must not drop every endpoint);
* push — checks the URL policy, encrypts and signs (``alerts.push``, ``TTL``, ``Topic`` from the subject, ``Urgency``)
  on the event loop (about 0.1 ms: a thread hop cost more than the work) and POSTs; 404/410 (or a refused address,
  not a host that does not resolve) remove the subscription;
* email — SMTP (``alerts.email``): the confirmation message, one alert, or a daily digest (every due digest row of
  the address in one message).

Each attempt is bounded by ``timeout_s`` (``alerts.sender``), and a row's lease outlasts it, so a receiver that hangs
or answers 500 holds one slot of its own endpoint for at most that long and never delays anyone else. Retries follow
``alerts.schedule`` (jittered; ``Retry-After`` honoured); endpoints are disabled after 410 or a long failure streak.
The dispatcher wakes when ``wake()`` is called (``publish`` does), when a send finishes, and otherwise every
``poll_s`` to pick up retries and other processes' rows.

Cost per delivery (bench/alerts.py, docs/benchmarks.md): claims are batched (one transaction leases up to a
quarter of ``concurrency`` rows or more), results are recorded in batches (``AlertStore.finish_many``: whatever
finished while the previous batch was being written goes in the next transaction — a send's slot is freed only
once its result is committed, so a crash loses at most the sends in flight, which are sent again), HTTP goes
through ``alerts.sender.HttpSender`` (keep-alive per origin), the VAPID token is reused per push service.

Captions come first: the sends are small steps on the event loop (none holds it for more than a fraction of a
millisecond), at most ``concurrency`` of them, and ``ALERT_WORKERS=0`` moves sending out of the processes that
serve viewers altogether (another process sharing the alerts database sends, and can run at a lower OS priority:
``nice``); ``ALERT_SENDER_NICE`` runs them, and the expansion of events, in ``ALERT_SENDER_PROCS`` niced children
of each server process (``SenderProcess``). A worker set that stops or dies mid-send leaves its rows
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
import dataclasses
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from py_vapid import Vapid02

from alerts import email, push, push_keys, webhooks
from alerts.follows import unsubscribe_token
from alerts.matcher import (
    Event,
    EventDecodeError,
    any_keyword_matches,
    event_from_json,
    event_to_json,
    exact_targets,
    live_text,
    plan,
    wants_keywords,
)
from alerts.messages import Alert
from alerts.schedule import AttemptResult, DeliveryState, Outcome, after_outcome, classify
from alerts.sender import HttpSender
from alerts.store_sqlite import AlertStore, Claimed, Expanding, Finished, LeaseLost, new_owner
from alerts.url_policy import HostUnresolved, Resolver, UrlRefused, check_url, resolve

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 200
DEFAULT_PER_ENDPOINT = 1
DEFAULT_TIMEOUT_S = 10.0
POLL_S = 1.0
ENQUEUE_CHUNK = 500
FIRST_CHUNK = 100  # the first transaction is small, so the first alerts go out sooner
EXPAND_LEASE_S = 30.0  # an event's expansion lease, renewed by every chunk (a chunk takes milliseconds)
MAX_EXPAND_ATTEMPTS = 20  # an event that fails this often (a bug, not a passing fault) is given up, logged, kept
START_STEP = 16
RECORD_WAIT_S = 0.02  # how long a result may wait for others to be written with it (its slot stays taken meanwhile)
MAX_ALERT_PARTS = 256


class _AlertParts:
    """One stored alert's ``Alert``, push payload and webhook body template (``DeliveryWorkers._parts``); the last
    two are built on first use."""

    def __init__(self, alert: dict[str, Any], occurred_at: float, base_url: str) -> None:
        self.stored = alert
        self.occurred_at = occurred_at
        self.base_url = base_url
        self._alert: Alert | None = None
        self._payload: bytes | None = None
        self._template: webhooks.BodyTemplate | None = None

    @property
    def alert(self) -> Alert:
        if self._alert is None:
            self._alert = Alert(**self.stored)
        return self._alert

    @property
    def push_payload(self) -> bytes:
        if self._payload is None:
            self._payload = self.alert.push_payload(self.base_url)
        return self._payload

    def webhook_body(self, follow_id: str, event_id: str) -> bytes:
        """The Standard Webhooks body: the alert with its absolute url, the follow's and the event's ids."""
        if self._template is None:
            data = {**self.stored, "url": self.base_url + self.stored["url"]}
            at = datetime.fromtimestamp(self.occurred_at, UTC)
            self._template = webhooks.BodyTemplate(self.stored["kind"], data, at, ("follow", "event"))
        return self._template.render(follow_id, event_id)


class Wakeable(Protocol):
    def wake(self) -> None: ...


class Alerting:
    """Turns published events into outbox rows (module docstring). ``workers``: a ``DeliveryWorkers`` or a
    ``SenderProcess`` (anything with ``wake()``), told when rows are due.

    ``defer`` (by default: when ``workers`` is a ``SenderProcess``): ``publish`` only records the event (one row
    in the store's ``alert_events``) and wakes the sender processes, one of which expands it (``expand_waiting``):
    the match and the 10,000 inserts of a big vote then cost the niced child's CPU, not the caption loop's. In
    process (``DeliveryWorkers`` on this loop, or no workers: ``ALERT_WORKERS=0``) the event is expanded here at
    once, as before: the same loop would do the same work a moment later, and a process without a sender must not
    leave its events to one that may not exist."""

    def __init__(
        self,
        store: AlertStore,
        workers: Wakeable | None = None,
        *,
        clock: Callable[[], float] = time.time,
        defer: bool | None = None,
    ) -> None:
        self.store = store
        self.workers = workers
        self.clock = clock
        self.defer = isinstance(workers, SenderProcess) if defer is None else defer

    async def publish(self, event: Event) -> int:
        """Enqueue the deliveries ``event`` calls for; the number of new outbox rows. Deferred (class docstring):
        record the event for the sender process and return 0 (its rows are written there)."""
        if self.defer:
            if not await self._may_alert(event):
                return 0
            added = await self.store.add_event(event.id, event_to_json(event), now=self.clock())
            if added and self.workers is not None:
                self.workers.wake()
            return 0
        return await self.expand(event)

    async def _may_alert(self, event: Event) -> bool:
        """Whether anyone follows what ``event`` concerns, found by reads alone. Deferred, ``publish`` runs on the
        live path (``Relay.on_published``: the next caption waits for it) and most events — every final caption —
        alert nobody; writing each one to the alerts database meant waiting for its write lock, which a sender
        process may hold while the scheduler runs the captions instead, so bursts of deliveries lengthened the
        captions' tail. The sender matches the follows again when it expands the event."""
        text = live_text(event)
        followed, keywords = await self.store.interest(exact_targets(event), keywords=text is not None)
        return followed or (text is not None and any_keyword_matches(keywords, text))

    async def expand(self, event: Event, *, owner: str | None = None, lease_s: float = EXPAND_LEASE_S) -> int:
        """Match ``event`` and write its rows in chunks (the first small), waking the workers after each; the number
        of rows added. ``owner``: an expander holding the event's lease (``expand_waiting``), which each chunk
        renews and the last one ends by marking the event expanded; ``LeaseLost`` if it passed to another."""
        follows = await self.store.follows_for(exact_targets(event), keywords=wants_keywords(event))
        planned = plan(event, follows)
        added = start = 0
        while start < len(planned) or (owner is not None and start == 0):
            end = start + (min(FIRST_CHUNK, ENQUEUE_CHUNK) if start == 0 else ENQUEUE_CHUNK)
            leased = None if owner is None else Expanding(event.id, owner, lease_s, last=end >= len(planned))
            new = await self.store.enqueue(planned[start:end], now=self.clock(), expanding=leased)
            added += new
            start = end
            if new and self.workers is not None:
                self.workers.wake()
        return added

    async def expand_waiting(
        self, owner: str, *, lease_s: float = EXPAND_LEASE_S, until: asyncio.Event | None = None
    ) -> int:
        """Expand the recorded events waiting for it, oldest first, each under a lease to ``owner`` (one expander
        per event however many sender processes share the store), stopping between events once ``until`` is set;
        the number of events expanded. An event that fails is left for the next call (logged) and the others go
        on; one that makes no event, or has failed ``MAX_EXPAND_ATTEMPTS`` times, is marked failed and logged."""
        done = 0
        failed: list[str] = []  # this call's failures: not taken again until the next call
        while until is None or not until.is_set():
            waiting = await self.store.claim_event(owner, now=self.clock(), lease_s=lease_s, skip=failed)
            if waiting is None:
                break
            try:
                event = event_from_json(waiting.data)
            except EventDecodeError as exc:
                log.error("alert event %s cannot be read (%s); not expanded", waiting.id, exc)
                await self.store.fail_event(waiting.id, owner, now=self.clock(), error=str(exc))
                continue
            try:
                await self.expand(event, owner=owner, lease_s=lease_s)
            except LeaseLost:
                log.warning("alert event %s: its expansion lease passed to another expander", waiting.id)
                continue
            except Exception as exc:
                failed.append(waiting.id)
                if waiting.attempts >= MAX_EXPAND_ATTEMPTS:
                    log.exception("alert event %s failed %d times; given up", waiting.id, waiting.attempts)
                    error = f"gave up after {waiting.attempts} attempts: {type(exc).__name__}: {exc}"
                    await self.store.fail_event(waiting.id, owner, now=self.clock(), error=error)
                else:
                    log.exception("expanding alert event %s failed; it is tried again", waiting.id)
                continue
            done += 1
        return done


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
        client: httpx.AsyncClient | HttpSender | None = None,
        push_pool_cap: int = push_keys.DEFAULT_CAP,
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
        self._http: httpx.AsyncClient | HttpSender = client if client is not None else HttpSender()
        self._own_client = client is None
        self._results: list[tuple[Finished, asyncio.Future[None]]] = []
        self._recorder: asyncio.Task[None] | None = None
        self._enough = asyncio.Event()  # a full batch of results is waiting (_record)
        self._record_batch = max(1, concurrency // 4)
        self._cpu = asyncio.Semaphore(1)  # one push message encrypted in full per turn of the event loop (_push)
        self._alerts: dict[tuple[Any, ...], _AlertParts] = {}  # what every follow of one event shares (_parts)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopping = False
        self.sent = 0  # attempts finished by this set (for the benchmark and operators)
        # Web Push encryption prepared in idle time (alerts.push_keys); push_pool_cap=0 encrypts every message in full.
        # It refills only while no send is in flight here, so a refill never competes with a burst's sends.
        self.push_pool = (
            push_keys.PreparedPool(store, cap=push_pool_cap, busy=lambda: bool(self._tasks))
            if vapid is not None and push_pool_cap > 0
            else None
        )

    async def start(self) -> None:
        self._dispatcher = asyncio.create_task(self._dispatch(), name="alerts-dispatch")
        if self.push_pool is not None:
            await self.push_pool.start()

    async def stop(self, *, abandon: bool = False) -> None:
        """Stop claiming; wait for the sends in flight (or, with ``abandon``, cancel them: their rows stay leased
        until their lease ends, as after a crash)."""
        self._stopping = True
        self._wake.set()
        if self.push_pool is not None:  # first: it reads the store, which the caller closes next
            await self.push_pool.stop()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        if abandon:
            for task in self._tasks:
                task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._recorder is not None:  # results of finished sends still being written
            await asyncio.gather(self._recorder, return_exceptions=True)
        if self._own_client:
            await self._http.aclose()
            self._http = HttpSender()  # a set may be started again

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
                for i, row in enumerate(claimed, 1):
                    task = asyncio.create_task(self._deliver(row))
                    self._tasks.add(task)
                    task.add_done_callback(self._done)
                    if i % START_STEP == 0:
                        # Let the sends just started take their first step (and a caption in between) before
                        # starting more: 200 first steps in one turn of the loop held it for tens of milliseconds.
                        await asyncio.sleep(0)
                if len(claimed) == free:
                    continue  # more may be due
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        # Wake the dispatcher only when it would claim (a quarter of the slots free, or none in flight): waking it
        # for each of a burst's 10,000 finished sends cost a task and a timer each, to claim nothing.
        if self.concurrency - len(self._tasks) >= max(1, self.concurrency // 4) or not self._tasks:
            self._wake.set()

    async def run_once(self) -> int:
        """Claim what is due now and send it, waiting for every send: for tests and scripts (no dispatcher)."""
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
        with contextlib.suppress(Exception):  # logged by _write_results; the rows stay leased and are sent again
            await self._record((rows, state, outcome, result.status, result.error))
        self.sent += 1

    async def _record(self, finished: Finished) -> None:
        """Queue one attempt's result for the next ``finish_many`` transaction and wait until it is committed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._results.append((finished, done))
        # Enough for a batch, or every send in flight is waiting for its result to be written: no point waiting.
        if len(self._results) >= min(self._record_batch, len(self._tasks)):
            self._enough.set()
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._write_results(), name="alerts-record")
        await asyncio.shield(done)

    async def _write_results(self) -> None:
        # One transaction at a time, each taking every result queued meanwhile, after waiting up to RECORD_WAIT_S
        # for a batch of a quarter of the slots (``_record`` cuts the wait short when one is there, or when nothing
        # else is in flight): in a burst the sends finish a few per millisecond, and writing whatever had finished
        # made transactions of ~6 rows, 1,700 per 10,000 deliveries, each with its commit and two thread hops.
        while self._results:
            if not self._enough.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._enough.wait(), RECORD_WAIT_S)
            self._enough.clear()
            batch, self._results = self._results, []
            try:
                await self.store.finish_many([f for f, _ in batch], self.owner, now=self.clock())
            except Exception as exc:
                # The rows stay leased and are sent again when the lease ends (at-least-once).
                log.exception("recording %d delivery results failed", len(batch))
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _checked(self, url: str | None, schemes: tuple[str, ...]) -> tuple[Outcome, AttemptResult] | None:
        """None when the URL may be sent to now; else the attempt's outcome: a host that does not resolve is
        retried on the schedule (a DNS failure passes), one the policy refuses is gone for good."""
        try:
            await check_url(url, allow_private=self.allow_private, schemes=schemes, resolver=self.resolver)
        except HostUnresolved as exc:
            return Outcome.RETRY, AttemptResult(None, error=str(exc))
        except UrlRefused as exc:
            return Outcome.GONE, AttemptResult(None, error=f"refused: {exc}")
        return None

    async def _webhook(self, row: Claimed) -> tuple[Outcome, AttemptResult]:
        assert row.url is not None and row.secret is not None
        refused = await self._checked(row.url, ("http", "https"))
        if refused is not None:
            return refused
        body = self._parts(row).webhook_body(row.follow_id, row.event_id)
        request = webhooks.build_request(
            row.url, body, msg_id=row.msg_id, timestamp=int(self.clock()), secrets=[row.secret]
        )
        result = await webhooks.post(self._http, request, timeout=self.timeout_s)
        return classify(result.status), result

    async def _push(self, row: Claimed) -> tuple[Outcome, AttemptResult]:
        assert row.url is not None
        vapid = self.vapid
        if vapid is None:
            return Outcome.RETRY, AttemptResult(None, error="no VAPID key configured")
        if row.p256dh is None or row.auth is None:
            return Outcome.GONE, AttemptResult(None, error="subscription removed")
        schemes = ("https", "http") if self.allow_private else ("https",)
        refused = await self._checked(row.url, schemes)
        if refused is not None:
            return refused
        parts = self._parts(row)
        sub = push.PushSubscription(row.url, row.p256dh, row.auth)
        # Taken out of the pool for this attempt alone: a retry takes another or encrypts in full.
        prepared = self.push_pool.take(sub) if self.push_pool is not None else None

        def build() -> push.PushRequest:
            return push.build_push(
                sub,
                parts.push_payload,
                vapid=vapid,
                subject=self.vapid_subject,
                now=self.clock(),
                ttl=row.ttl,
                urgency=row.urgency,  # type: ignore[arg-type]
                topic=push.topic_for(row.topic or parts.alert.subject),
                prepared=prepared,
            )

        if prepared is not None:
            request = build()  # sealing a prepared record: a few microseconds
        else:
            async with self._cpu:
                request = build()
                # Hand the loop back before the next message is encrypted in full: 200 sends starting together
                # would otherwise encrypt back to back (~30 ms) while a caption waits behind them.
                await asyncio.sleep(0)
        result = await push.send(self._http, request, timeout=self.timeout_s)
        return classify(result.status, gone=push.PUSH_GONE), result

    def _parts(self, row: Claimed) -> _AlertParts:
        """What the deliveries of one alert share, built for the first of them: the ``Alert``, the push payload, the
        webhook body but for its ids. Keyed by the stored alert itself (and its time), so it is never another's."""
        alert = row.payload["alert"]
        key = (tuple(alert.items()), row.payload["occurred_at"])
        parts = self._alerts.get(key)
        if parts is None:
            if len(self._alerts) >= MAX_ALERT_PARTS:
                self._alerts.clear()  # a bound: a burst is one or a few alerts
            parts = self._alerts[key] = _AlertParts(alert, row.payload["occurred_at"], self.base_url)
        return parts

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


NICE = 10  # the sender process's niceness: the kernel gives the serving processes' captions the CPU first
PROCS_ENV = "ALERT_SENDER_PROCS"
MAX_PROCS = 16


def sender_procs_from_env(env: Mapping[str, str] = os.environ) -> int:
    """``ALERT_SENDER_PROCS`` (default 1): how many niced sender children a ``SenderProcess`` runs."""
    raw = env.get(PROCS_ENV, "").strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PROCS:
        raise ValueError(f"{PROCS_ENV} must be a whole number from 1 to {MAX_PROCS}, not {raw!r}")
    return int(raw)


class SenderProcess:
    """``DeliveryWorkers`` in ``procs`` child processes at a lower OS priority (``nice``), for a server whose event
    loop also fans out live captions: a 10,000-follow burst then takes CPU only when the serving process does not
    want it. ``procs`` (``ALERT_SENDER_PROCS``, default 1) children share the outbox through its leases, so a burst
    can use every core the serving process leaves idle; ``concurrency`` is split between them.

    ``Alerting`` given a ``SenderProcess`` defers expansion to it: ``publish`` records the event in the store
    (``AlertStore.add_event``) and calls ``wake()``, and a child matches the follows and writes the outbox rows
    (``Alerting.expand_waiting``, under the event's lease: one expander per event, whichever child or server
    process). Each child expands as slot ``i`` of this object, a name its replacement keeps, so a child killed
    midway has its event taken up again by the next one at once (by anyone else once the lease ends).

    ``await sp.start()`` spawns ``python -m alerts.delivery`` per child (its settings on stdin: the SMTP password
    stays out of ``ps``); ``wake()`` writes ``w`` to each child's stdin (look for events and due rows); a child that
    wrote rows writes ``r`` on its stdout, which is passed to its siblings (look for due rows), so they join the
    burst at once rather than at their next poll; ``await sp.stop()`` closes the stdins, upon which each child
    finishes the event it is expanding and stops its workers, waiting for the sends in flight. If a child dies, the
    watchdog (every ``poll_s``) starts another in its slot; the dead one's rows are sent once their lease ends."""

    def __init__(
        self,
        store_path: str | Path,
        *,
        base_url: str,
        vapid_path: str | Path | None,
        vapid_subject: str = "mailto:webmaster@localhost",
        smtp: email.SmtpConfig | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        allow_private: bool = False,
        nice: int = NICE,
        idle: bool = False,
        poll_s: float = POLL_S,
        procs: int = 1,
    ) -> None:
        self.procs = procs
        if not 1 <= self.procs <= MAX_PROCS:
            raise ValueError(f"procs must be from 1 to {MAX_PROCS}")
        self.config = {
            "store": str(store_path),
            "base_url": base_url,
            "vapid": str(vapid_path) if vapid_path is not None else None,
            "vapid_subject": vapid_subject,
            "smtp": dataclasses.asdict(smtp) if smtp is not None else None,
            "concurrency": max(1, concurrency // self.procs),
            "allow_private": allow_private,
            "nice": nice,
            "idle": idle,
            "poll_s": poll_s,
            "tell": self.procs > 1,  # only siblings need to hear of new rows
        }
        run = new_owner().removeprefix("w_")
        self._expanders = [f"x_{run}_{i}" for i in range(self.procs)]
        self._slots: list[asyncio.subprocess.Process | None] = [None] * self.procs
        self._relays: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._stopping = False

    async def _spawn(self, slot: int) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "alerts.delivery", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        self._slots[slot] = proc
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({**self.config, "expander": self._expanders[slot]}).encode() + b"\n")
        relay = asyncio.create_task(self._relay(slot, proc), name=f"alerts-sender-relay-{slot}")
        self._relays.add(relay)
        relay.add_done_callback(self._relays.discard)

    async def _relay(self, slot: int, proc: asyncio.subprocess.Process) -> None:
        """Until the child's stdout closes: it wrote rows, so wake its siblings' workers."""
        assert proc.stdout is not None
        while await proc.stdout.read(4096):
            for i, other in enumerate(self._slots):
                if i != slot:
                    self._write(other, b"r")

    @staticmethod
    def _write(proc: asyncio.subprocess.Process | None, data: bytes) -> None:
        if proc is None or proc.stdin is None or proc.returncode is not None or proc.stdin.is_closing():
            return  # the watchdog restarts it; the new one looks for what is waiting
        proc.stdin.write(data)

    async def start(self) -> None:
        self._stopping = False
        for slot in range(self.procs):
            await self._spawn(slot)
        self._watchdog = asyncio.create_task(self._watch(), name="alerts-sender-watchdog")

    async def _watch(self) -> None:
        while not self._stopping:
            await asyncio.sleep(float(self.config["poll_s"]))  # type: ignore[arg-type]
            for slot, proc in enumerate(self._slots):
                if proc is not None and proc.returncode is not None and not self._stopping:
                    log.error("alerts sender process %d exited (%s); starting another", slot, proc.returncode)
                    await self._spawn(slot)

    @property
    def pid(self) -> int | None:
        """The first child's process id (for operators and the benchmark's CPU accounting)."""
        return self.pids[0] if self.pids else None

    @property
    def pids(self) -> list[int]:
        """Every child's process id."""
        return [p.pid for p in self._slots if p is not None]

    def wake(self) -> None:
        for proc in self._slots:
            self._write(proc, b"w")

    async def stop(self) -> None:
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        for proc in self._slots:
            if proc is not None and proc.stdin is not None:
                proc.stdin.close()
        for proc in self._slots:
            if proc is None:
                continue
            try:
                await asyncio.wait_for(proc.wait(), DEFAULT_TIMEOUT_S + 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._relays:
            await asyncio.gather(*self._relays, return_exceptions=True)


class _Siblings:
    """A sender child's ``Alerting.workers``: new rows wake this child's workers and, with ``tell``, are told to the
    parent (a byte on stdout), which wakes the other children's."""

    def __init__(self, workers: DeliveryWorkers, tell: bool) -> None:
        self.workers = workers
        self.tell = tell
        if tell:
            os.set_blocking(sys.stdout.fileno(), False)  # a full pipe drops a wake-up rather than stall the child

    def wake(self) -> None:
        self.workers.wake()
        if self.tell:
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(sys.stdout.fileno(), b"r")


async def _expand_loop(
    alerting: Alerting, owner: str, wake: asyncio.Event, stopping: asyncio.Event, poll_s: float
) -> None:
    """Expand what waits (``Alerting.expand_waiting``) whenever woken, and every ``poll_s`` (events recorded while no
    child ran, or left by an expander that died)."""
    while not stopping.is_set():
        wake.clear()
        try:
            await alerting.expand_waiting(owner, until=stopping)
        except Exception:
            log.exception("expanding alert events failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), poll_s)


def lowest_class() -> None:
    """Move this process into Linux's ``SCHED_IDLE`` class (``ALERT_SENDER_IDLE``). A niced process may run on to
    the end of its time slice when a caption's task wakes on its core (the fair scheduler weighs niceness over
    time, not at each wake-up); a waking task of the normal class preempts a ``SCHED_IDLE`` one at once. The price:
    on a core that something else keeps busy, the sender gets almost nothing. Called before the child starts any
    thread (the store's, the executor's): the class is per thread, and new threads inherit it."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError) as exc:  # not Linux, or refused: the niceness alone still applies
        log.warning("alerts sender: SCHED_IDLE not available (%s); running at its niceness only", exc)


async def _sender_main() -> None:
    """A child of ``SenderProcess``: settings on the first line of stdin, then ``w`` (events or rows) or ``r`` (rows)
    per wake-up; EOF stops it, once the event being expanded is written."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    config = json.loads(await reader.readline())
    os.nice(int(config["nice"]))
    if config.get("idle"):
        lowest_class()
    store = AlertStore(config["store"])
    await store.open()
    vapid = await asyncio.to_thread(push.load_or_create_vapid, Path(config["vapid"])) if config["vapid"] else None
    workers = DeliveryWorkers(
        store,
        base_url=config["base_url"],
        vapid=vapid,
        vapid_subject=config["vapid_subject"],
        smtp=email.SmtpConfig(**config["smtp"]) if config["smtp"] else None,
        concurrency=int(config["concurrency"]),
        allow_private=bool(config["allow_private"]),
        poll_s=float(config["poll_s"]),
    )
    await workers.start()
    alerting = Alerting(store, _Siblings(workers, bool(config["tell"])), defer=False)
    wake, stopping = asyncio.Event(), asyncio.Event()
    expander = asyncio.create_task(
        _expand_loop(alerting, str(config["expander"]), wake, stopping, float(config["poll_s"])),
        name="alerts-expand",
    )
    try:
        while data := await reader.read(4096):
            workers.wake()
            if b"w" in data:
                wake.set()
    finally:
        stopping.set()
        wake.set()
        await asyncio.gather(expander, return_exceptions=True)
        await workers.stop()
        await store.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(_sender_main())
