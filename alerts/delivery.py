"""Delivering alerts: publish an event into the durable outbox, and the workers that send what it holds.

``Alerting.publish(event)`` asks the store for the follows the event concerns, plans the deliveries
(``alerts.matcher``) and enqueues them with the event id (``AlertStore.enqueue``) in transactions of
``ENQUEUE_CHUNK`` rows (the first one smaller), waking the workers after each, so the first alerts of a
10,000-follow vote are on their way while the rest are written: once it returns, a crash loses nothing, and
publishing the same event again adds nothing (one row per (follow, event)), so a crash midway is repaired by
publishing again — the relay does, since its hook runs before the archive entry is marked sent (``alerts.wiring``).

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
``nice``). A worker set that stops or dies mid-send leaves its rows
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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from py_vapid import Vapid02

from alerts import email, push, webhooks
from alerts.follows import unsubscribe_token
from alerts.matcher import Event, exact_targets, plan, wants_keywords
from alerts.messages import Alert
from alerts.schedule import AttemptResult, DeliveryState, Outcome, after_outcome, classify
from alerts.sender import HttpSender
from alerts.store_sqlite import AlertStore, Claimed, Finished, new_owner
from alerts.url_policy import HostUnresolved, Resolver, UrlRefused, check_url, resolve

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 200
DEFAULT_PER_ENDPOINT = 1
DEFAULT_TIMEOUT_S = 10.0
POLL_S = 1.0
ENQUEUE_CHUNK = 500
FIRST_CHUNK = 100  # the first transaction is small, so the first alerts go out sooner
START_STEP = 16


class Wakeable(Protocol):
    def wake(self) -> None: ...


class Alerting:
    """Turns published events into outbox rows (module docstring). ``workers``: a ``DeliveryWorkers`` or a
    ``SenderProcess`` (anything with ``wake()``), told when rows are due."""

    def __init__(
        self, store: AlertStore, workers: Wakeable | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.workers = workers
        self.clock = clock

    async def publish(self, event: Event) -> int:
        """Enqueue the deliveries ``event`` calls for; the number of new outbox rows."""
        follows = await self.store.follows_for(exact_targets(event), keywords=wants_keywords(event))
        planned = plan(event, follows)
        added = start = 0
        while start < len(planned):
            end = start + (min(FIRST_CHUNK, ENQUEUE_CHUNK) if start == 0 else ENQUEUE_CHUNK)
            new = await self.store.enqueue(planned[start:end], now=self.clock())
            added += new
            start = end
            if new and self.workers is not None:
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
        client: httpx.AsyncClient | HttpSender | None = None,
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
        self._cpu = asyncio.Semaphore(1)  # one push message built per turn of the event loop (_push)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopping = False
        self.sent = 0  # attempts finished by this set (for the benchmark and operators)

    async def start(self) -> None:
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
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._write_results(), name="alerts-record")
        await asyncio.shield(done)

    async def _write_results(self) -> None:
        # One transaction at a time, each taking every result queued meanwhile: under load the batches grow by
        # themselves, and a lone result is written at once.
        while self._results:
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
        result = await webhooks.post(self._http, request, timeout=self.timeout_s)
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
            return refused
        alert = Alert(**row.payload["alert"])
        sub = push.PushSubscription(row.url, row.p256dh, row.auth)
        async with self._cpu:
            request = push.build_push(
                sub,
                alert.push_payload(self.base_url),
                vapid=self.vapid,
                subject=self.vapid_subject,
                now=self.clock(),
                ttl=row.ttl,
                urgency=row.urgency,  # type: ignore[arg-type]
                topic=push.topic_for(row.topic or alert.subject),
            )
            # Hand the loop back before the next message is built: 200 sends starting together would otherwise
            # encrypt back to back (~30 ms) while a caption waits behind them.
            await asyncio.sleep(0)
        result = await push.send(self._http, request, timeout=self.timeout_s)
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


NICE = 10  # the sender process's niceness: the kernel gives the serving processes' captions the CPU first


class SenderProcess:
    """``DeliveryWorkers`` in a child process at a lower OS priority (``nice``), for a server whose event loop also
    fans out live captions: a 10,000-follow burst then takes CPU only when the serving process does not want it.

    ``await sp.start()`` spawns ``python -m alerts.delivery`` (its settings on stdin: the SMTP password stays out of
    ``ps``); ``wake()`` writes a byte to its stdin (``Alerting.publish`` calls it); ``await sp.stop()`` closes stdin,
    upon which the child stops its workers, waiting for the sends in flight. The child shares the alerts database
    (leases make that safe, as for several server processes); if it dies, the next ``wake()`` or the watchdog
    (every ``poll_s``) starts another, and the dead one's rows are sent once their lease ends."""

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
        poll_s: float = POLL_S,
    ) -> None:
        self.config = {
            "store": str(store_path),
            "base_url": base_url,
            "vapid": str(vapid_path) if vapid_path is not None else None,
            "vapid_subject": vapid_subject,
            "smtp": dataclasses.asdict(smtp) if smtp is not None else None,
            "concurrency": concurrency,
            "allow_private": allow_private,
            "nice": nice,
            "poll_s": poll_s,
        }
        self._proc: asyncio.subprocess.Process | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._stopping = False

    async def _spawn(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "alerts.delivery", stdin=asyncio.subprocess.PIPE
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(self.config).encode() + b"\n")

    async def start(self) -> None:
        self._stopping = False
        await self._spawn()
        self._watchdog = asyncio.create_task(self._watch(), name="alerts-sender-watchdog")

    async def _watch(self) -> None:
        while not self._stopping:
            await asyncio.sleep(float(self.config["poll_s"]))  # type: ignore[arg-type]
            if self._proc is not None and self._proc.returncode is not None and not self._stopping:
                log.error("the alerts sender process exited (%s); starting another", self._proc.returncode)
                await self._spawn()

    @property
    def pid(self) -> int | None:
        """The child's process id (for operators and the benchmark's CPU accounting)."""
        return self._proc.pid if self._proc is not None else None

    def wake(self) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None or proc.stdin.is_closing():
            return  # the watchdog restarts it; the new one claims what is due
        proc.stdin.write(b"w")

    async def stop(self) -> None:
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), DEFAULT_TIMEOUT_S + 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _sender_main() -> None:
    """The child of ``SenderProcess``: settings on the first line of stdin, then a byte per wake-up; EOF stops it."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    config = json.loads(await reader.readline())
    os.nice(int(config["nice"]))
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
    try:
        while await reader.read(4096):
            workers.wake()
    finally:
        await workers.stop()
        await store.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(_sender_main())
