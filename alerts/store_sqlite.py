"""The alerts' own SQLite database: follows, their delivery endpoints, and the durable outbox of deliveries.

One file (``var/alerts.sqlite3`` by default), WAL, one connection per ``AlertStore`` used only by the store's own
thread: every method is a coroutine that runs its SQL on that thread, so the event loop never waits on the disk. Two
server processes may open the same file: each write is one ``BEGIN IMMEDIATE`` transaction and ``busy_timeout``
makes the other wait its turn.

Tables:

* ``endpoints`` — where deliveries go: a webhook (URL and secret; one per webhook follow, so each secret is shown to
  exactly one creator), a push subscription (keyed by its endpoint URL, shared by the follows made with it) or an
  email address (keyed by the address). Each keeps its failure streak (``alerts.schedule.EndpointHealth``) and
  ``disabled`` (``gone`` after a 410 — or a push 404/410, when its follows are removed and its keys erased —
  ``failing`` after a long streak).
* ``follows`` — target key, endpoint, state (``pending`` email awaiting confirmation, ``active``, ``unsubscribed``,
  ``removed``), digest choice, and the SHA-256 of the management and confirmation tokens (never the tokens).
* ``outbox`` — one row per (follow, event), enforced by a unique index: ``enqueue`` inserts the planned deliveries
  it is given in one transaction (``Alerting.publish`` gives an event's in chunks), so a crash after the event was
  published and before anything was sent loses nothing, and publishing the event again adds only what is
  missing. Rows carry the alert, the Standard Webhooks message id (the same on every retry), ``attempts``/
  ``next_at`` (``alerts.schedule``), and a lease (``lease_owner``, ``lease_until``).
* ``throttle`` — the last alert time per (follow, sitting) for alerts born of live talk (``alerts.matcher``).
* ``alert_events`` — events waiting to be expanded into outbox rows, when that is left to the niced sender process
  (``alerts.delivery.SenderProcess``): ``add_event`` is the serving process's one durable write per event (its id,
  the event as JSON; publishing it again adds nothing); ``claim_event`` leases the oldest waiting one to one
  expander (``lease_owner``/``lease_until``, as the outbox's rows are leased), and ``enqueue(...,
  expanding=Expanding(...))`` writes each chunk of its rows only while that lease holds, renewing it, and marks
  the event ``expanded`` in the same transaction as its last chunk. An expander that dies midway leaves the event
  leased; the next one (the same slot's replacement at once, anyone else when the lease ends) expands it again,
  and the outbox's unique (follow, event) index makes the rows already written count once.

Claiming (``claim``) is one transaction that picks due rows of enabled endpoints and leases them to a worker for
``lease_s``; a row leased by anyone is not claimable until its lease ends, and an endpoint gets at most
``per_endpoint`` leased rows at once across all processes. Finishing (``finish``) is accepted only from the lease's
owner. A worker that dies leaves its rows leased until ``lease_until``; then another worker claims and sends them
(at-least-once: a receiver drops duplicates by ``webhook-id``).

Bounds on what the public can make grow: ``MAX_FOLLOWS_PER_ENDPOINT`` follows per push subscription or address,
``MAX_KEYWORD_FOLLOWS`` keyword follows in all, ``MAX_PENDING_PER_ADDRESS`` unconfirmed follows per email address
(each sends one confirmation message), unconfirmed follows expire after ``CONFIRM_TTL_S`` (``purge``), as do
finished outbox rows after ``KEEP_FINISHED_S`` and stale throttle entries.

How it is meant to be wired: ``server.py`` opens ``AlertStore(settings.alerts_db)`` in its lifespan (``await
store.open()`` … ``await store.close()``), hands it to the follow routes (``alerts.follows``) and to
``alerts.delivery.Alerting``, and runs ``await store.purge(time.time())`` hourly.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

from alerts.follows import (
    ChannelType,
    CreatedFollow,
    Digest,
    EmailChannel,
    FollowError,
    FollowRequest,
    PushChannel,
    TargetKind,
    WebhookChannel,
    follow_id_from_unsubscribe,
    new_follow_id,
    new_token,
    token_hash,
)
from alerts.matcher import FollowView, Planned
from alerts.push import PushSubscription
from alerts.schedule import DeliveryState, EndpointHealth, Outcome
from alerts.webhooks import new_message_id, new_secret

MAX_FOLLOWS_PER_ENDPOINT = 200
MAX_KEYWORD_FOLLOWS = 20_000
MAX_PENDING_PER_ADDRESS = 5
CONFIRM_TTL_S = 48 * 3600.0
KEEP_FINISHED_S = 30 * 24 * 3600.0
DIGEST_HOUR = 7  # daily digests go out at 07:00 Thai time
THAI = timezone(timedelta(hours=7))
T = TypeVar("T")

# The follows that alert: active, with an enabled endpoint (``follows_for``, ``interest``).
_LIVE_FOLLOWS = (
    "FROM follows f JOIN endpoints e ON e.id = f.endpoint_id WHERE f.state = 'active' AND e.disabled IS NULL"
)

# SQLite allows a limited number of ``?`` per statement (32,766 since 3.32, 999 before): lists go in this many at once.
IN_CHUNK = 500


def _in_chunks(values: Sequence[T]) -> Iterator[tuple[list[T], str]]:
    """``values`` in pieces of at most ``IN_CHUNK``, each with the ``?,?,…`` to put between ``IN (`` and ``)``."""
    for i in range(0, len(values), IN_CHUNK):
        chunk = list(values[i : i + IN_CHUNK])
        yield chunk, ",".join("?" * len(chunk))


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS endpoints (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    key TEXT NOT NULL,
    url TEXT,
    secret TEXT,
    p256dh TEXT,
    auth TEXT,
    email TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    failing_since REAL,
    disabled TEXT,
    created_at REAL NOT NULL,
    UNIQUE (channel, key)
);
CREATE TABLE IF NOT EXISTS follows (
    id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_value TEXT NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id),
    channel TEXT NOT NULL,
    state TEXT NOT NULL,
    digest TEXT NOT NULL DEFAULT 'immediate',
    token_hash TEXT NOT NULL UNIQUE,
    confirm_hash TEXT UNIQUE,
    created_at REAL NOT NULL,
    confirmed_at REAL
);
CREATE INDEX IF NOT EXISTS follows_target ON follows (target, state);
CREATE INDEX IF NOT EXISTS follows_kind ON follows (target_kind, state);
CREATE INDEX IF NOT EXISTS follows_endpoint ON follows (endpoint_id, state);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    follow_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'alert',
    msg_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    topic TEXT NOT NULL DEFAULT '',
    urgency TEXT NOT NULL DEFAULT 'normal',
    ttl INTEGER NOT NULL DEFAULT 86400,
    digest INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL,
    created_at REAL NOT NULL,
    occurred_at REAL NOT NULL,
    finished_at REAL,
    last_status INTEGER,
    last_error TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS outbox_once ON outbox (follow_id, event_id);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_at) WHERE state = 'pending';
-- One index of pending rows per endpoint serves the per-endpoint lease count (claim), the newer-replaces-older
-- update (enqueue) and cancelling a disabled endpoint's rows; it replaces two (endpoint_id, lease_until) and
-- (endpoint_id, topic), each of which every row's insert, lease and finish had to update.
DROP INDEX IF EXISTS outbox_leased;
DROP INDEX IF EXISTS outbox_topic;
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (endpoint_id, topic, lease_until) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_finished ON outbox (finished_at) WHERE state != 'pending';
CREATE TABLE IF NOT EXISTS throttle (key TEXT PRIMARY KEY, last_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS alert_events (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    created_at REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    added INTEGER NOT NULL DEFAULT 0,
    finished_at REAL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS alert_events_waiting ON alert_events (created_at) WHERE state = 'pending';
"""


@dataclass(frozen=True)
class Claimed:
    """A leased delivery with what its sender needs: the endpoint's address and keys, the stored alert."""

    id: int
    follow_id: str
    endpoint_id: str
    channel: str
    event_id: str
    kind: str  # alert | confirm
    msg_id: str
    payload: dict[str, Any]
    topic: str
    urgency: str
    ttl: int
    digest: bool
    attempts: int
    url: str | None
    secret: str | None
    p256dh: str | None
    auth: str | None
    email: str | None


# One attempt's result as ``AlertStore.finish_many`` takes it: (rows, state, outcome, status, error).
Finished = tuple[Sequence[Claimed], DeliveryState, Outcome, int | None, str | None]


@dataclass(frozen=True)
class WaitingEvent:
    """An event leased to an expander (``claim_event``): its id and JSON (``alerts.matcher.event_to_json``)."""

    id: str
    data: str
    attempts: int


@dataclass(frozen=True)
class Expanding:
    """Passed to ``enqueue`` by an expander: the chunk is written only while ``owner`` holds the event's lease, which
    it renews for ``lease_s``; ``last`` marks the event expanded in the same transaction."""

    event_id: str
    owner: str
    lease_s: float
    last: bool


class LeaseLost(Exception):
    """The event's expansion lease is no longer this expander's (it outlived its lease; another took over)."""


def next_digest_at(now: float) -> float:
    """The next ``DIGEST_HOUR`` o'clock, Thai time, after ``now`` (Unix seconds)."""
    local = datetime.fromtimestamp(now, THAI)
    at = local.replace(hour=DIGEST_HOUR, minute=0, second=0, microsecond=0)
    if at <= local:
        at += timedelta(days=1)
    return at.astimezone(UTC).timestamp()


class AlertStore:
    """Follows, endpoints and the outbox in one SQLite file (module docstring); all methods are coroutines."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alerts-db")
        self._conn: sqlite3.Connection | None = None
        self.link_key = b""

    # -- plumbing ---------------------------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None, "AlertStore.open() first"
        return self._conn

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            out = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return out

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=30000")
        self._conn = db
        db.executescript(SCHEMA)  # idempotent (IF NOT EXISTS); executescript commits on its own
        self.link_key = self._tx(self._link_key)

    @staticmethod
    def _link_key(db: sqlite3.Connection) -> bytes:
        row = db.execute("SELECT v FROM meta WHERE k = 'link_key'").fetchone()
        if row is not None:
            return bytes(row["v"])
        key = secrets.token_bytes(32)
        db.execute("INSERT INTO meta (k, v) VALUES ('link_key', ?)", (key,))
        return key

    async def open(self) -> None:
        await self._run(self._open)

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._run(close)
        self._executor.shutdown(wait=True)

    # -- follows ----------------------------------------------------------------------------------------------

    async def create_follow(self, request: FollowRequest, *, now: float) -> CreatedFollow:
        """Store a follow (``alerts.follows``); an email follow starts ``pending`` with its confirmation message
        enqueued. ``FollowError`` (409) for a duplicate or a full endpoint."""
        return await self._run(self._tx, lambda db: self._create_follow(db, request, now))

    def _create_follow(self, db: sqlite3.Connection, request: FollowRequest, now: float) -> CreatedFollow:
        target, channel = request.target, request.channel
        kind = request.channel_type
        if target.kind is TargetKind.KEYWORD:
            (n,) = db.execute(
                "SELECT COUNT(*) FROM follows WHERE target_kind = 'keyword' AND state IN ('active', 'pending')"
            ).fetchone()
            if n >= MAX_KEYWORD_FOLLOWS:
                raise FollowError("too many keyword follows on this server; try again later", "target", 503)
        secret: str | None = None
        endpoint_id = "ep_" + secrets.token_hex(12)
        if isinstance(channel, WebhookChannel):
            secret = new_secret()
            db.execute(
                "INSERT INTO endpoints (id, channel, key, url, secret, created_at) VALUES (?, 'webhook', ?, ?, ?, ?)",
                (endpoint_id, endpoint_id, channel.url, secret, now),
            )
        elif isinstance(channel, PushChannel):
            sub = channel.subscription
            db.execute(
                "INSERT INTO endpoints (id, channel, key, url, p256dh, auth, created_at) "
                "VALUES (?, 'push', ?, ?, ?, ?, ?) ON CONFLICT (channel, key) DO UPDATE SET "
                "p256dh = excluded.p256dh, auth = excluded.auth, disabled = NULL, failures = 0, failing_since = NULL",
                (endpoint_id, sub.endpoint, sub.endpoint, sub.p256dh, sub.auth, now),
            )
            endpoint_id = db.execute(
                "SELECT id FROM endpoints WHERE channel = 'push' AND key = ?", (sub.endpoint,)
            ).fetchone()["id"]
        else:
            assert isinstance(channel, EmailChannel)
            db.execute(
                "INSERT INTO endpoints (id, channel, key, email, created_at) VALUES (?, 'email', ?, ?, ?) "
                "ON CONFLICT (channel, key) DO NOTHING",
                (endpoint_id, channel.address.lower(), channel.address, now),
            )
            endpoint_id = db.execute(
                "SELECT id FROM endpoints WHERE channel = 'email' AND key = ?", (channel.address.lower(),)
            ).fetchone()["id"]
            (pending,) = db.execute(
                "SELECT COUNT(*) FROM follows WHERE endpoint_id = ? AND state = 'pending' AND created_at > ?",
                (endpoint_id, now - CONFIRM_TTL_S),
            ).fetchone()
            if pending >= MAX_PENDING_PER_ADDRESS:
                raise FollowError(
                    "this address has too many follows awaiting confirmation; confirm them first",
                    "channel.email",
                    429,
                )
        rows = db.execute(
            "SELECT target FROM follows WHERE endpoint_id = ? AND state IN ('active', 'pending')", (endpoint_id,)
        ).fetchall()
        if any(r["target"] == target.key for r in rows):
            raise FollowError("this channel already follows that target", "target", 409)
        if len(rows) >= MAX_FOLLOWS_PER_ENDPOINT:
            raise FollowError(f"a channel may hold at most {MAX_FOLLOWS_PER_ENDPOINT} follows", "channel", 409)
        follow_id, token = new_follow_id(), new_token()
        state = "pending" if kind is ChannelType.EMAIL else "active"
        confirm = new_token("ct_") if kind is ChannelType.EMAIL else None
        digest = channel.digest if isinstance(channel, EmailChannel) else Digest.IMMEDIATE
        db.execute(
            "INSERT INTO follows (id, target, target_kind, target_value, endpoint_id, channel, state, digest, "
            "token_hash, confirm_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                follow_id,
                target.key,
                target.kind.value,
                target.value,
                endpoint_id,
                kind.value,
                state,
                digest.value,
                token_hash(token),
                token_hash(confirm) if confirm else None,
                now,
            ),
        )
        if confirm is not None:
            # The confirmation token travels only in this message; the row's payload is erased once it is sent.
            payload = {"confirm_token": confirm, "target": {"kind": target.kind.value, "value": target.value}}
            db.execute(
                "INSERT INTO outbox (follow_id, endpoint_id, channel, event_id, kind, msg_id, payload, next_at, "
                "created_at, occurred_at) VALUES (?, ?, 'email', ?, 'confirm', ?, ?, ?, ?, ?)",
                (follow_id, endpoint_id, f"confirm:{follow_id}", new_message_id(), json.dumps(payload), now, now, now),
            )
        return CreatedFollow(follow_id, target, kind, state, token, secret)

    async def confirm_email(self, token: str, *, now: float) -> str | None:
        """Activate the pending email follow this confirmation token belongs to; its id, or None when the token is
        unknown, already used or expired."""

        def confirm(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT id FROM follows WHERE confirm_hash = ? AND state = 'pending' AND created_at > ?",
                (token_hash(token), now - CONFIRM_TTL_S),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE follows SET state = 'active', confirmed_at = ?, confirm_hash = NULL WHERE id = ?",
                (now, row["id"]),
            )
            return str(row["id"])

        return await self._run(self._tx, confirm)

    async def unsubscribe(self, token: str) -> str | None:
        """End the follow named by a management token or a signed email unsubscribe token, cancelling its pending
        deliveries; its id, or None when the token is not one of ours."""

        def unsubscribe(db: sqlite3.Connection) -> str | None:
            follow_id = follow_id_from_unsubscribe(self.link_key, token)
            if follow_id is None:
                row = db.execute("SELECT id FROM follows WHERE token_hash = ?", (token_hash(token),)).fetchone()
                if row is None:
                    return None
                follow_id = str(row["id"])
            found = db.execute(
                "UPDATE follows SET state = 'unsubscribed' WHERE id = ? AND state IN ('active', 'pending')",
                (follow_id,),
            ).rowcount
            db.execute(
                "UPDATE outbox SET state = 'cancelled', finished_at = created_at WHERE follow_id = ? "
                "AND state = 'pending'",
                (follow_id,),
            )
            exists = found or db.execute("SELECT 1 FROM follows WHERE id = ?", (follow_id,)).fetchone()
            return follow_id if exists else None

        return await self._run(self._tx, unsubscribe)

    async def follow_by_token(self, token: str) -> dict[str, Any] | None:
        """The follow a management token belongs to (id, target_kind, target_value, channel, state), or None."""

        def get(db: sqlite3.Connection) -> dict[str, Any] | None:
            row = db.execute(
                "SELECT id, target_kind, target_value, channel, state FROM follows WHERE token_hash = ?",
                (token_hash(token),),
            ).fetchone()
            return None if row is None else dict(row)

        return await self._run(get, self._db())

    async def follow_state(self, follow_id: str) -> str | None:
        def get(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT state FROM follows WHERE id = ?", (follow_id,)).fetchone()
            return None if row is None else str(row["state"])

        return await self._run(get, self._db())

    async def endpoint(self, endpoint_id: str) -> dict[str, Any] | None:
        def get(db: sqlite3.Connection) -> dict[str, Any] | None:
            row = db.execute("SELECT * FROM endpoints WHERE id = ?", (endpoint_id,)).fetchone()
            return None if row is None else dict(row)

        return await self._run(get, self._db())

    async def follows_for(self, targets: Sequence[str], *, keywords: bool) -> list[FollowView]:
        """Active follows of any of ``targets`` (and every keyword follow when ``keywords``) whose endpoint is
        enabled."""

        def read(db: sqlite3.Connection) -> list[FollowView]:
            out: list[FollowView] = []
            columns = "f.id, f.target, f.endpoint_id, f.channel, f.target_kind, f.target_value"
            base = f"SELECT {columns} {_LIVE_FOLLOWS} AND "
            rows: list[sqlite3.Row] = []
            for chunk, marks in _in_chunks(targets):
                rows += db.execute(base + f"f.target IN ({marks})", chunk).fetchall()
            if keywords:
                rows += db.execute(base + "f.target_kind = 'keyword'").fetchall()
            for r in rows:
                kw = r["target_value"] if r["target_kind"] == TargetKind.KEYWORD else None
                out.append(FollowView(r["id"], r["target"], r["endpoint_id"], r["channel"], kw))
            return out

        return await self._run(read, self._db())

    async def interest(self, targets: Sequence[str], *, keywords: bool) -> tuple[bool, list[str]]:
        """Whether any of ``targets`` has an active follow with an enabled endpoint; if none has and ``keywords``,
        also the distinct saved searches of such keyword follows (at most ``MAX_KEYWORD_FOLLOWS``): what
        ``Alerting`` needs to tell whether an event may alert anyone, in one read. A read: it never waits for the
        write lock that the sender processes hold while they write rows."""

        def read(db: sqlite3.Connection) -> tuple[bool, list[str]]:
            for chunk, marks in _in_chunks(targets):
                if db.execute(f"SELECT 1 {_LIVE_FOLLOWS} AND f.target IN ({marks}) LIMIT 1", chunk).fetchone():
                    return True, []
            if not keywords:
                return False, []
            query = f"SELECT DISTINCT f.target_value {_LIVE_FOLLOWS} AND f.target_kind = 'keyword'"
            return False, [r[0] for r in db.execute(query)]

        return await self._run(read, self._db())

    async def push_subscriptions(self, *, limit: int) -> list[PushSubscription]:
        """At most ``limit`` enabled push subscriptions with an active follow, oldest first: those
        ``alerts.push_keys`` prepares encryption for in idle time. One read (the follows index), no write."""

        def read(db: sqlite3.Connection) -> list[PushSubscription]:
            return [
                PushSubscription(r[0], r[1], r[2])
                for r in db.execute(
                    "SELECT e.url, e.p256dh, e.auth FROM endpoints e WHERE e.channel = 'push' AND e.disabled IS NULL "
                    "AND e.p256dh IS NOT NULL AND e.auth IS NOT NULL AND EXISTS (SELECT 1 FROM follows f "
                    "WHERE f.endpoint_id = e.id AND f.state = 'active') ORDER BY e.rowid LIMIT ?",
                    (limit,),
                )
            ]

        return await self._run(read, self._db())

    # -- outbox -----------------------------------------------------------------------------------------------

    async def enqueue(self, planned: Sequence[Planned], *, now: float, expanding: Expanding | None = None) -> int:
        """Insert the planned deliveries of one event in one transaction: one row per (follow, event) — repeats
        are ignored — skipping follows no longer active and throttled live alerts. The number of rows added.
        With ``expanding``: only while that expander holds the event's lease (else ``LeaseLost``, nothing written),
        renewing it, or on the last chunk marking the event expanded."""

        def enqueue(db: sqlite3.Connection) -> int:
            if expanding is None:
                return self._enqueue(db, planned, now)
            row = db.execute(
                "SELECT lease_owner FROM alert_events WHERE id = ? AND state = 'pending'", (expanding.event_id,)
            ).fetchone()
            if row is None or row["lease_owner"] != expanding.owner:
                raise LeaseLost(expanding.event_id)
            added = self._enqueue(db, planned, now)
            if expanding.last:
                db.execute(
                    "UPDATE alert_events SET state = 'expanded', finished_at = ?, lease_owner = NULL, "
                    "lease_until = NULL, added = added + ? WHERE id = ?",
                    (now, added, expanding.event_id),
                )
            else:
                db.execute(
                    "UPDATE alert_events SET lease_until = ?, added = added + ? WHERE id = ?",
                    (now + expanding.lease_s, added, expanding.event_id),
                )
            return added

        return await self._run(self._tx, enqueue)

    def _enqueue(self, db: sqlite3.Connection, planned: Sequence[Planned], now: float) -> int:
        added = 0
        # The follows still active, read in a few queries rather than one per row; and each alert's JSON built once
        # (one vote's 10,000 rows share one alert): together they were most of an enqueue's time.
        digests: dict[str, str] = {}
        ids = [p.follow_id for p in planned]
        for chunk, marks in _in_chunks(ids):
            for r in db.execute(f"SELECT id, digest FROM follows WHERE state = 'active' AND id IN ({marks})", chunk):
                digests[r["id"]] = r["digest"]
        alert_json: dict[int, str] = {}
        newest: dict[tuple[str, str], int] = {}  # a push (endpoint, topic): the id of its newest row written here
        for p in planned:
            if p.throttle_key is not None:
                row = db.execute("SELECT last_at FROM throttle WHERE key = ?", (p.throttle_key,)).fetchone()
                if row is not None and p.occurred_at - row["last_at"] < p.throttle_s:
                    continue
            digest = digests.get(p.follow_id)
            if digest is None:
                continue
            if id(p.alert) not in alert_json:
                alert_json[id(p.alert)] = json.dumps(p.alert.as_dict(), ensure_ascii=False)
            head = json.dumps({"follow": p.follow_id, "event": p.event_id, "occurred_at": p.occurred_at})
            payload = head[:-1] + ', "alert": ' + alert_json[id(p.alert)] + "}"
            daily = digest == Digest.DAILY
            cur = db.execute(
                "INSERT OR IGNORE INTO outbox (follow_id, endpoint_id, channel, event_id, msg_id, payload, topic, "
                "urgency, ttl, digest, next_at, created_at, occurred_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    p.follow_id,
                    p.endpoint_id,
                    p.channel,
                    p.event_id,
                    new_message_id(),
                    payload,
                    p.topic,
                    p.urgency,
                    p.ttl_s,
                    int(daily),
                    next_digest_at(now) if daily else now,
                    now,
                    p.occurred_at,
                ),
            )
            if not cur.rowcount:
                continue
            added += 1
            if p.throttle_key is not None:
                db.execute(
                    "INSERT INTO throttle (key, last_at) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                    "last_at = excluded.last_at",
                    (p.throttle_key, p.occurred_at),
                )
            if p.channel == ChannelType.PUSH and cur.lastrowid is not None:
                newest[(p.endpoint_id, p.topic)] = cur.lastrowid
        self._replace_older(db, newest, now)
        return added

    @staticmethod
    def _replace_older(db: sqlite3.Connection, newest: dict[tuple[str, str], int], now: float) -> None:
        """A newer alert on the same subject replaces an older one not yet sent, as the push ``Topic`` does for one
        sent but not yet delivered to the phone: of each (endpoint, topic) given, every pending row not leased but
        the newest is ``replaced`` (as if each row had replaced the older ones when written). One statement per
        topic and 500 endpoints: one per row was half of a 10,000-row enqueue's statements."""
        by_topic: dict[str, list[tuple[str, int]]] = {}
        for (endpoint_id, topic), row_id in newest.items():
            by_topic.setdefault(topic, []).append((endpoint_id, row_id))
        for topic, pairs in by_topic.items():
            for chunk, marks in _in_chunks(pairs):
                db.execute(
                    "UPDATE outbox SET state = 'replaced', finished_at = ? WHERE state = 'pending' AND topic = ? "
                    f"AND endpoint_id IN ({marks}) AND id NOT IN ({marks}) "
                    "AND (lease_until IS NULL OR lease_until <= ?)",
                    (now, topic, *(e for e, _ in chunk), *(r for _, r in chunk), now),
                )

    # -- events waiting for expansion (alert_events) ------------------------------------------------------------

    async def add_event(self, event_id: str, data: str, *, now: float) -> bool:
        """Record an event for an expander (one transaction: once this returns, a crash loses nothing). False when
        it was recorded before (publishing it again adds nothing, expanded or not)."""

        def add(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "INSERT OR IGNORE INTO alert_events (id, data, created_at) VALUES (?, ?, ?)", (event_id, data, now)
            )
            return bool(cur.rowcount)

        return await self._run(self._tx, add)

    async def claim_event(
        self, owner: str, *, now: float, lease_s: float, skip: Sequence[str] = ()
    ) -> WaitingEvent | None:
        """Lease the oldest waiting event (not in ``skip``) to ``owner`` until ``now + lease_s``: one not leased,
        leased past its end, or leased to ``owner`` itself (an expander slot's previous process died midway; it is
        the only one using that name). None when none waits."""

        def claim(db: sqlite3.Connection) -> WaitingEvent | None:
            marks = ",".join("?" * len(skip))
            row = db.execute(
                "SELECT id, data, attempts FROM alert_events WHERE state = 'pending' "
                f"AND (lease_until IS NULL OR lease_until <= ? OR lease_owner = ?) AND id NOT IN ({marks}) "
                "ORDER BY created_at, id LIMIT 1",
                (now, owner, *skip),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE alert_events SET lease_owner = ?, lease_until = ?, attempts = attempts + 1 WHERE id = ?",
                (owner, now + lease_s, row["id"]),
            )
            return WaitingEvent(row["id"], row["data"], row["attempts"] + 1)

        def waiting(db: sqlite3.Connection) -> bool:
            return db.execute("SELECT 1 FROM alert_events WHERE state = 'pending' LIMIT 1").fetchone() is not None

        # A read first, outside any transaction: the senders poll, and most polls find nothing to take the write
        # lock for.
        if not await self._run(waiting, self._db()):
            return None
        return await self._run(self._tx, claim)

    async def fail_event(self, event_id: str, owner: str, *, now: float, error: str) -> None:
        """Give up on an event whose stored JSON makes no event (``alerts.matcher.EventDecodeError``): ``failed``,
        kept with the reason for an operator, never retried."""

        def fail(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE alert_events SET state = 'failed', finished_at = ?, last_error = ?, lease_owner = NULL, "
                "lease_until = NULL WHERE id = ? AND lease_owner = ?",
                (now, error[:200], event_id, owner),
            )

        await self._run(self._tx, fail)

    async def events(self, **where: Any) -> list[dict[str, Any]]:
        """``alert_events`` rows matching ``column=value`` filters (for tests, operators and the benchmark)."""

        def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
            assert set(where) <= {"id", "state", "lease_owner"}
            clause = " AND ".join(f"{k} = ?" for k in where) or "1"
            return [
                dict(r)
                for r in db.execute(
                    f"SELECT * FROM alert_events WHERE {clause} ORDER BY created_at, id", [*where.values()]
                )
            ]

        return await self._run(read, self._db())

    async def claim(self, owner: str, *, now: float, limit: int, per_endpoint: int, lease_s: float) -> list[Claimed]:
        """Lease up to ``limit`` due deliveries of enabled endpoints to ``owner`` until ``now + lease_s``, at most
        ``per_endpoint`` leased rows per endpoint counting those leased by anyone."""

        def claim(db: sqlite3.Connection) -> list[Claimed]:
            # The oldest due rows first, a few times ``limit`` of them: a leased row's ``next_at`` is its lease's
            # end (``_lease``), so rows in flight are not in this range and each claim reads O(limit) rows, not the
            # whole backlog (10,000 rows of one vote made every claim a full scan).
            due = (
                "FROM outbox o JOIN endpoints e ON e.id = o.endpoint_id WHERE o.state = 'pending' AND o.next_at <= ? "
                "AND (o.lease_until IS NULL OR o.lease_until <= ?) AND e.disabled IS NULL"
            )
            # Read lazily, ``limit`` rows at a time: in a burst (one row per endpoint) the first page fills the
            # claim, and reading all 4 × ``limit`` rows every time was a third of a claim's cost.
            head = f"SELECT o.id, o.endpoint_id {due} ORDER BY o.next_at, o.id LIMIT ?"
            cur = db.execute(head, (now, now, 4 * limit))
            taken: dict[str, int] = {}
            ids: list[int] = []
            read = 0
            while len(ids) < limit and (page := cur.fetchmany(limit)):
                read += len(page)
                ids += self._pick(db, page, taken, limit - len(ids), per_endpoint, now)
            cur.close()
            if len(ids) < limit and read == 4 * limit and len(taken) < limit:
                # One endpoint's backlog fills the head of the queue: look past it (a full scan, but only then),
                # so that a slow receiver with many rows never holds back the others.
                rows = db.execute(
                    f"SELECT id, endpoint_id FROM (SELECT o.id, o.endpoint_id, o.next_at, ROW_NUMBER() OVER "
                    f"(PARTITION BY o.endpoint_id ORDER BY o.next_at, o.id) AS rn {due}) WHERE rn <= ? "
                    "ORDER BY next_at, id LIMIT ?",
                    (now, now, per_endpoint, 4 * limit),
                ).fetchall()
                ids = self._pick(db, rows, {}, limit, per_endpoint, now)
            return self._lease(db, ids, owner, now + lease_s)

        return await self._run(self._tx, claim)

    @staticmethod
    def _pick(
        db: sqlite3.Connection,
        rows: Sequence[sqlite3.Row],
        taken: dict[str, int],
        limit: int,
        per_endpoint: int,
        now: float,
    ) -> list[int]:
        """Of ``rows`` (id, endpoint_id; due, in order), the ids of at most ``limit`` that keep each endpoint within
        ``per_endpoint`` leased rows; ``taken`` (endpoint → rows leased, by anyone, or picked here) is filled in for
        endpoints not yet in it and updated."""
        new = sorted({r["endpoint_id"] for r in rows} - taken.keys())
        for endpoint_id in new:
            taken[endpoint_id] = 0
        for chunk, marks in _in_chunks(new):
            for e in db.execute(
                "SELECT endpoint_id, COUNT(*) AS n FROM outbox WHERE state = 'pending' AND lease_until > ? "
                f"AND endpoint_id IN ({marks}) GROUP BY endpoint_id",
                (now, *chunk),
            ):
                taken[e["endpoint_id"]] = e["n"]
        ids: list[int] = []
        for r in rows:
            if len(ids) == limit:
                break
            if taken[r["endpoint_id"]] < per_endpoint:
                taken[r["endpoint_id"]] += 1
                ids.append(r["id"])
        return ids

    def _lease(self, db: sqlite3.Connection, ids: list[int], owner: str, until: float) -> list[Claimed]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        db.execute(
            f"UPDATE outbox SET lease_owner = ?, lease_until = ?, next_at = ? WHERE id IN ({marks})",
            (owner, until, until, *ids),
        )
        rows = db.execute(
            "SELECT o.*, e.url, e.secret, e.p256dh, e.auth, e.email FROM outbox o "
            f"JOIN endpoints e ON e.id = o.endpoint_id WHERE o.id IN ({marks}) ORDER BY o.next_at, o.id",
            ids,
        ).fetchall()
        return [
            Claimed(
                id=r["id"],
                follow_id=r["follow_id"],
                endpoint_id=r["endpoint_id"],
                channel=r["channel"],
                event_id=r["event_id"],
                kind=r["kind"],
                msg_id=r["msg_id"],
                payload=json.loads(r["payload"]),
                topic=r["topic"],
                urgency=r["urgency"],
                ttl=r["ttl"],
                digest=bool(r["digest"]),
                attempts=r["attempts"],
                url=r["url"],
                secret=r["secret"],
                p256dh=r["p256dh"],
                auth=r["auth"],
                email=r["email"],
            )
            for r in rows
        ]

    async def claim_digest(self, owner: str, endpoint_id: str, *, now: float, lease_s: float) -> list[Claimed]:
        """Lease every other due, unleased daily-digest row of ``endpoint_id`` (they go out in one message)."""

        def claim(db: sqlite3.Connection) -> list[Claimed]:
            ids = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM outbox WHERE endpoint_id = ? AND state = 'pending' AND digest = 1 AND next_at <= ? "
                    "AND (lease_until IS NULL OR lease_until <= ?) LIMIT 200",
                    (endpoint_id, now, now),
                )
            ]
            return self._lease(db, ids, owner, now + lease_s)

        return await self._run(self._tx, claim)

    async def finish(
        self,
        rows: Sequence[Claimed],
        owner: str,
        state: DeliveryState,
        outcome: Outcome,
        *,
        now: float,
        status: int | None = None,
        error: str | None = None,
    ) -> bool:
        """Record one attempt's result for ``rows`` (one message: a delivery, or a digest's rows) and the endpoint's
        health, in one transaction; only the lease's owner may. A ``gone`` or ``failing`` endpoint is disabled and
        its pending rows cancelled; a gone push subscription is removed (its follows ``removed``, keys erased).
        False when the lease was lost (another worker owns the rows now)."""

        return (await self.finish_many([(rows, state, outcome, status, error)], owner, now=now))[0]

    async def finish_many(self, results: Sequence[Finished], owner: str, *, now: float) -> list[bool]:
        """``finish`` for several attempts in one transaction (the workers record a burst's results together: one
        commit per attempt was most of the outbox's cost); one answer per item, in order."""
        if not results:
            return []
        return await self._run(self._tx, lambda db: self._finish_batch(db, results, owner, now))

    def _finish_batch(self, db: sqlite3.Connection, results: Sequence[Finished], owner: str, now: float) -> list[bool]:
        """``finish_many``'s transaction. A burst's results are nearly all deliveries to healthy endpoints: those
        (``DELIVERED``, the only result of their endpoint in this batch) are written a few statements for the whole
        batch — their rows by id, grouped by the values written, and the endpoints whose failure streak they end —
        instead of two statements per row. Every other result goes through ``_finish``, in order, as before: a
        delivery never disables an endpoint, and an endpoint with several results here keeps them in sequence."""
        per_endpoint: dict[str, int] = {}
        for rows, *_ in results:
            if rows:
                per_endpoint[rows[0].endpoint_id] = per_endpoint.get(rows[0].endpoint_id, 0) + 1
        answers: list[bool] = [False] * len(results)
        groups: dict[tuple[Any, ...], list[int]] = {}
        fast: list[int] = []
        for i, (rows, state, outcome, status, error) in enumerate(results):
            if not rows or outcome is not Outcome.DELIVERED or per_endpoint[rows[0].endpoint_id] > 1:
                continue
            fast.append(i)
            for row in rows:
                erase = row.kind == "confirm" and state.outcome is not None
                values = (state.attempts, state.next_at, state.outcome or "pending", status, error)
                groups.setdefault((*values, now if state.outcome else None, erase), []).append(row.id)
        updated: set[int] = set()
        for (attempts, next_at, outcome_text, status, error, finished_at, erase), ids in groups.items():
            for chunk, marks in _in_chunks(ids):
                updated.update(
                    r[0]
                    for r in db.execute(
                        "UPDATE outbox SET attempts = ?, next_at = COALESCE(?, next_at), state = ?, "
                        "lease_owner = NULL, lease_until = NULL, last_status = ?, last_error = ?, finished_at = ?, "
                        "payload = CASE WHEN ? THEN '{}' ELSE payload END "
                        f"WHERE id IN ({marks}) AND lease_owner = ? RETURNING id",
                        (attempts, next_at, outcome_text, status, error, finished_at, erase, *chunk, owner),
                    ).fetchall()
                )
        recovered: list[str] = []  # endpoints whose rows were recorded: a delivery ends any failure streak
        for i in fast:
            rows = results[i][0]
            answers[i] = any(row.id in updated for row in rows)
            if answers[i]:
                recovered.append(rows[0].endpoint_id)
        for endpoints, marks in _in_chunks(recovered):
            # EndpointHealth.record(DELIVERED): a clean slate for an enabled endpoint, nothing for a disabled one;
            # a healthy endpoint (almost every one) is not written.
            db.execute(
                f"UPDATE endpoints SET failures = 0, failing_since = NULL WHERE id IN ({marks}) AND disabled IS NULL "
                "AND (failures != 0 OR failing_since IS NOT NULL)",
                endpoints,
            )
        fast_set = set(fast)
        for i, r in enumerate(results):
            if i not in fast_set:
                answers[i] = self._finish(db, *r, owner, now)
        return answers

    @staticmethod
    def _finish(
        db: sqlite3.Connection,
        rows: Sequence[Claimed],
        state: DeliveryState,
        outcome: Outcome,
        status: int | None,
        error: str | None,
        owner: str,
        now: float,
    ) -> bool:
        changed = 0
        for row in rows:
            erase = row.kind == "confirm" and state.outcome is not None
            changed += db.execute(
                "UPDATE outbox SET attempts = ?, next_at = COALESCE(?, next_at), state = ?, lease_owner = NULL, "
                "lease_until = NULL, last_status = ?, last_error = ?, finished_at = ?, "
                "payload = CASE WHEN ? THEN '{}' ELSE payload END WHERE id = ? AND lease_owner = ?",
                (
                    state.attempts,
                    state.next_at,
                    state.outcome or "pending",
                    status,
                    error,
                    now if state.outcome else None,
                    erase,
                    row.id,
                    owner,
                ),
            ).rowcount
        if not changed:
            return False
        endpoint_id = rows[0].endpoint_id
        e = db.execute(
            "SELECT channel, failures, failing_since, disabled FROM endpoints WHERE id = ?", (endpoint_id,)
        ).fetchone()
        health = EndpointHealth(e["failures"], e["failing_since"], e["disabled"]).record(outcome, now)
        if (health.consecutive_failures, health.failing_since, health.disabled) != (
            e["failures"],
            e["failing_since"],
            e["disabled"],
        ):  # a healthy endpoint that stays healthy (almost every delivery) needs no write
            db.execute(
                "UPDATE endpoints SET failures = ?, failing_since = ?, disabled = ? WHERE id = ?",
                (health.consecutive_failures, health.failing_since, health.disabled, endpoint_id),
            )
        if health.disabled is not None and e["disabled"] is None:
            db.execute(
                "UPDATE outbox SET state = 'cancelled', finished_at = ? WHERE endpoint_id = ? AND state = 'pending'",
                (now, endpoint_id),
            )
            if e["channel"] == ChannelType.PUSH and health.disabled == "gone":
                db.execute("UPDATE endpoints SET p256dh = NULL, auth = NULL WHERE id = ?", (endpoint_id,))
                db.execute(
                    "UPDATE follows SET state = 'removed' WHERE endpoint_id = ? AND state = 'active'",
                    (endpoint_id,),
                )
        return True

    async def next_due(self) -> float | None:
        """When the earliest pending delivery is due (None when none is pending)."""

        def read(db: sqlite3.Connection) -> float | None:
            row = db.execute("SELECT MIN(next_at) FROM outbox WHERE state = 'pending'").fetchone()
            return None if row[0] is None else float(row[0])

        return await self._run(read, self._db())

    async def deliveries(self, **where: Any) -> list[dict[str, Any]]:
        """Outbox rows matching ``column=value`` filters (for tests, operators and the benchmark)."""

        def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
            cols = {"follow_id", "endpoint_id", "event_id", "state", "channel", "kind"}
            assert set(where) <= cols
            clause = " AND ".join(f"{k} = ?" for k in where) or "1"
            return [
                dict(r) for r in db.execute(f"SELECT * FROM outbox WHERE {clause} ORDER BY id", list(where.values()))
            ]

        return await self._run(read, self._db())

    async def count(self, **where: Any) -> int:
        """How many outbox rows match ``column=value`` filters (``state="pending"``: the backlog)."""

        def read(db: sqlite3.Connection) -> int:
            assert set(where) <= {"follow_id", "endpoint_id", "event_id", "state", "channel", "kind"}
            clause = " AND ".join(f"{k} = ?" for k in where) or "1"
            return int(db.execute(f"SELECT COUNT(*) FROM outbox WHERE {clause}", list(where.values())).fetchone()[0])

        return await self._run(read, self._db())

    async def purge(self, now: float) -> None:
        """Forget expired unconfirmed follows, finished outbox rows and expanded events past ``KEEP_FINISHED_S``,
        and stale throttles."""

        def purge(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE follows SET state = 'expired', confirm_hash = NULL WHERE state = 'pending' AND created_at <= ?",
                (now - CONFIRM_TTL_S,),
            )
            db.execute("DELETE FROM outbox WHERE state != 'pending' AND finished_at <= ?", (now - KEEP_FINISHED_S,))
            db.execute("DELETE FROM throttle WHERE last_at <= ?", (now - 24 * 3600,))
            db.execute(
                "DELETE FROM alert_events WHERE state != 'pending' AND finished_at <= ?", (now - KEEP_FINISHED_S,)
            )

        await self._run(self._tx, purge)


def new_owner() -> str:
    """A worker set's lease owner id: unique per process and start."""
    return "w_" + uuid.uuid4().hex[:16]
