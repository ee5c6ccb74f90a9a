"""Redis broker: history in a stream per channel, live fan-out over pub/sub, seq from one Lua script.

Keys for channel ``C`` (``P`` is the prefix):

* ``P:meta:C`` hash with ``seq`` (last seq published) and ``epoch``;
* ``P:stream:C`` stream of envelopes, entry id ``<seq>-0``, trimmed with ``MAXLEN ~ history_size``;
* ``P:pub:C`` pub/sub channel carrying the same envelope JSON.

Publishing is one script (epoch, HINCRBY, XADD, PUBLISH), so any number of publisher processes get gapless seqs
and pub/sub order equals seq order. Only that script writes: position and history are read-only scripts, and a
subscription is a pub/sub SUBSCRIBE (no key), so reading or watching a channel nobody published to leaves nothing
in Redis. Live delivery uses one dedicated pub/sub connection for all channels; a
reader task tracks the last seq delivered per channel and fills any gap from the stream, so the handler sees
each channel in seq order without gaps or duplicates, across reconnects too. ``docs/recovery.md`` has the story.

Commands go through a bounded pool whose callers wait their turn for a connection (a burst queues instead of
failing with "Too many connections"); the reader's own reads (a new subscription's position, back-fill) use a
connection of its own, so live delivery and subscribe confirmations never queue behind that burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, BlockingConnectionPool, Connection, parse_url
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry

from broadcast.broker import BrokerUnavailable, EventHandler
from broadcast.envelope import MAX_SEQ, NO_EPOCH, Event, Position, dumps, utc_now_iso

log = logging.getLogger(__name__)

# Catch-up reads the stream in pages so a long outage does not pull one huge reply.
CATCH_UP_PAGE = 1000
# Reconnect backoff: doubles from the base up to the cap, each wait drawn from its upper half (jitter), so a
# fleet of processes that lost Redis together does not come back in lockstep.
RECONNECT_BASE = 0.05
RECONNECT_CAP = 5.0

# Publishing: the channel's (seq, epoch), creating the epoch if there is none. A missing epoch means the
# channel's history is gone (never existed, keys deleted, Redis flushed), so whatever stream is left belongs to a
# dead numbering and is dropped; otherwise XADD <seq>-0 would also clash with its old ids.
# KEYS[1] meta hash, KEYS[2] stream; ARGV[1] epoch candidate.
_CURRENT_LUA = """
local function current()
  local m = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
  if not m[2] then
    redis.call('DEL', KEYS[2])
    redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'seq', 0)
    return 0, ARGV[1]
  end
  return tonumber(m[1]) or 0, m[2]
end
"""

# Reading: the same (seq, epoch) without writing anything; a channel without an epoch has no history (an orphaned
# stream is not history either: the next publication drops it). KEYS as above.
_READ_CURRENT_LUA = """
local function current()
  local m = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
  if not m[2] then return 0, false end
  return tonumber(m[1]) or 0, m[2]
end
"""

# ARGV: 1 epoch candidate, 2 channel, 3 type, 4 ts, 5 data (compact JSON), 6 maxlen, 7 pub/sub channel.
# The envelope is concatenated here rather than cjson-encoded as a whole: cjson would re-encode ``data`` (and
# turn floats and empty objects into something else); only the plain strings go through cjson.encode.
_PUBLISH_LUA = (
    _CURRENT_LUA
    + """
local _, epoch = current()
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local env = '{"channel":' .. cjson.encode(ARGV[2]) .. ',"seq":' .. seq .. ',"epoch":' .. cjson.encode(epoch)
  .. ',"type":' .. cjson.encode(ARGV[3]) .. ',"ts":' .. cjson.encode(ARGV[4]) .. ',"data":' .. ARGV[5] .. '}'
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], seq .. '-0', 'e', env)
redis.call('PUBLISH', ARGV[7], env)
return env
"""
)

_POSITION_LUA = (
    _READ_CURRENT_LUA
    + """
local seq, epoch = current()
if not epoch then return {0, ''} end
return {seq, epoch}
"""
)

# ARGV: 1 first stream id wanted, 2 limit. Returns {seq, epoch, first held, envelopes...}; one script, so the
# position is never older than the events returned.
_HISTORY_LUA = (
    _READ_CURRENT_LUA
    + """
local seq, epoch = current()
if not epoch then return {0, '', 1} end
local first = seq + 1
local head = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if head[1] then first = tonumber(string.match(head[1][1], '^(%d+)')) end
local out = {seq, epoch, first}
local limit = tonumber(ARGV[2])
if limit > 0 then
  for _, entry in ipairs(redis.call('XRANGE', KEYS[2], ARGV[1], '+', 'COUNT', limit)) do
    out[#out + 1] = entry[2][2]
  end
end
return out
"""
)


class _Dead(Exception):
    """The pub/sub connection stopped answering PING."""


class _Sub:
    """Delivery state of one subscribed channel. ``epoch`` is None until the first SUBSCRIBE is confirmed."""

    __slots__ = ("channel", "epoch", "last", "ready")

    def __init__(self, channel: str, ready: asyncio.Future[None]) -> None:
        self.channel = channel
        self.epoch: str | None = None
        self.last = 0
        self.ready = ready


def redact(url: str) -> str:
    """The URL with any password replaced, fit for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class RedisBroker:
    """Broker for several processes. ``start`` fails if Redis cannot be reached; later losses are survived.

    Every command waits at most ``socket_timeout`` for its answer (``connect_timeout`` for a new connection), and
    ``subscribe`` at most both together, so a hung Redis (``DEBUG SLEEP``, ``CLIENT PAUSE``, a dead network) makes
    publish, position, history and subscribe raise :class:`BrokerUnavailable` instead of hanging their callers.
    At most ``max_connections`` commands are in flight at once; the others wait for a connection, for at most
    ``socket_timeout + connect_timeout`` (the time a command holding one may take).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "sapha",
        history_size: int = 2_000,
        ping_interval: float = 5.0,
        ping_timeout: float = 3.0,
        socket_timeout: float = 3.0,
        connect_timeout: float = 3.0,
        max_connections: int = 64,
    ) -> None:
        self._where = redact(url)
        self._prefix = prefix
        self._pub_prefix = f"{prefix}:pub:"
        self._history_size = history_size
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._subscribe_timeout = socket_timeout + connect_timeout
        # Few retries, short waits: a publish during an outage should fail fast rather than stall its caller.
        # One retry still absorbs the pooled connections that a Redis restart left dead. Only on a connection
        # error, never on a timeout: a command that timed out may still have run, and running a publish twice
        # would number one event twice.
        command_kwargs: dict[str, Any] = dict(
            decode_responses=True,
            retry=Retry(ExponentialWithJitterBackoff(cap=0.2, base=0.01), 1, supported_errors=(RedisConnectionError,)),
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
        )
        # redis-py's default pool raises once 100 commands are in flight; a burst of readers must queue instead.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=socket_timeout + connect_timeout,
            client_name=f"{prefix}:cmd",
            **command_kwargs,
        )
        self._redis = Redis.from_pool(pool)
        # The reader's reads run one at a time, on a connection nobody else queues for.
        self._reader_redis = Redis.from_url(
            url, single_connection_client=True, client_name=f"{prefix}:reader", **command_kwargs
        )
        self._publish_script = self._redis.register_script(_PUBLISH_LUA)
        self._position_script = self._redis.register_script(_POSITION_LUA)
        self._history_script = self._redis.register_script(_HISTORY_LUA)

        kwargs: dict[str, Any] = dict(parse_url(url))
        self._conn_class: type[AbstractConnection] = kwargs.pop("connection_class", Connection)
        # RESP2 on purpose: there a PING in subscribed mode comes back as a ``pong`` message in the same stream
        # as the events, which is exactly what proves the reader still hears the server. No retries inside
        # redis-py: a lost connection must surface here, where re-subscribing and back-filling happen.
        kwargs.update(
            decode_responses=True,
            protocol=2,
            client_name=f"{prefix}:pubsub",
            retry=None,
            health_check_interval=0,
            socket_connect_timeout=ping_timeout,
            socket_timeout=ping_timeout,
        )
        self._conn_kwargs = kwargs

        self._handler: EventHandler | None = None
        self._subs: dict[str, _Sub] = {}
        self._conn: AbstractConnection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self._pong: asyncio.Future[None] | None = None
        # True while the reader waits on its own command connection (position, back-fill) and so cannot read a PONG.
        self._busy = False
        self._reconnects = 0
        self._closed = False

    # -- keys ---------------------------------------------------------------------------------------------------

    def _keys(self, channel: str) -> list[str]:
        return [f"{self._prefix}:meta:{channel}", f"{self._prefix}:stream:{channel}"]

    def _pub(self, channel: str) -> str:
        return f"{self._pub_prefix}{channel}"

    @property
    def subscription_count(self) -> int:
        """Channels this broker delivers live; an entry lasts from ``subscribe`` to ``unsubscribe`` only."""
        return len(self._subs)

    @property
    def reconnects(self) -> int:
        """How many times the pub/sub connection was re-established since start (for metrics and tests)."""
        return self._reconnects

    # -- Broker -------------------------------------------------------------------------------------------------

    async def start(self, handler: EventHandler) -> None:
        if self._supervisor is not None:
            raise RuntimeError("RedisBroker already started")
        self._handler = handler
        await self._redis.ping()
        conn = await self._open()
        self._supervisor = asyncio.create_task(self._supervise(conn), name="redis-broker-pubsub")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        for sub in self._subs.values():
            sub.ready.cancel()
        self._subs.clear()
        if self._conn is not None:
            await self._discard(self._conn)
        self._handler = None
        await self._redis.aclose()
        await self._reader_redis.aclose()

    async def publish(self, channel: str, type: str, data: dict[str, Any]) -> Event:
        args: list[str | int] = [
            secrets.token_hex(4),
            channel,
            type,
            utc_now_iso(),
            dumps(data),
            self._history_size,
            self._pub(channel),
        ]
        try:
            raw = await self._publish_script(keys=self._keys(channel), args=args)
        except (RedisError, OSError) as exc:
            raise self._unavailable("publish", exc) from exc
        return Event.from_json(raw)

    async def position(self, channel: str) -> Position:
        return await self._position(channel, self._redis)

    async def history(self, channel: str, since: int, limit: int) -> tuple[list[Event], Position, int]:
        return await self._history(channel, since, limit, self._redis)

    async def _position(self, channel: str, client: Redis) -> Position:
        try:
            seq, epoch = await self._position_script(keys=self._keys(channel), args=[], client=client)
        except (RedisError, OSError) as exc:
            raise self._unavailable("position", exc) from exc
        return Position(int(seq), epoch or NO_EPOCH)

    async def _history(self, channel: str, since: int, limit: int, client: Redis) -> tuple[list[Event], Position, int]:
        # Stream ids are unsigned 64-bit: clamp, so an absurd since reads nothing instead of failing in Redis.
        start = min(max(since + 1, 0), MAX_SEQ)
        try:
            reply = await self._history_script(
                keys=self._keys(channel), args=[f"{start}-0", max(limit, 0)], client=client
            )
        except (RedisError, OSError) as exc:
            raise self._unavailable("history", exc) from exc
        seq, epoch, first, *raws = reply
        return [Event.from_json(raw) for raw in raws], Position(int(seq), epoch or NO_EPOCH), int(first)

    def _unavailable(self, what: str, exc: BaseException) -> BrokerUnavailable:
        return BrokerUnavailable(f"redis at {self._where}: {what} failed: {str(exc) or type(exc).__name__}")

    async def subscribe(self, channel: str) -> None:
        """Returns once the SUBSCRIBE is confirmed and the channel's position read; waits across reconnects, but
        at most ``socket_timeout + connect_timeout`` (then :class:`BrokerUnavailable`; the channel stays wanted
        until ``unsubscribe``)."""
        if self._supervisor is None:
            raise RuntimeError("RedisBroker.subscribe before start")
        sub = self._subs.get(channel)
        if sub is None:
            sub = self._subs[channel] = _Sub(channel, asyncio.get_running_loop().create_future())
            conn = self._conn
            if conn is not None:
                # A failed send means a dead connection; the supervisor re-subscribes every channel in _subs.
                with contextlib.suppress(RedisError, OSError):
                    await self._send(conn, "SUBSCRIBE", self._pub(channel))
        # Shielded: one caller giving up must not cancel the wait of another caller of the same channel.
        try:
            await asyncio.wait_for(asyncio.shield(sub.ready), self._subscribe_timeout)
        except TimeoutError as exc:
            raise BrokerUnavailable(
                f"redis at {self._where}: subscribe not confirmed within {self._subscribe_timeout:g}s"
            ) from exc

    async def unsubscribe(self, channel: str) -> None:
        sub = self._subs.pop(channel, None)
        if sub is None:
            return
        sub.ready.cancel()
        conn = self._conn
        if conn is not None:
            # Delivery stops at once regardless (the reader ignores channels not in _subs).
            with contextlib.suppress(RedisError, OSError):
                await self._send(conn, "UNSUBSCRIBE", self._pub(channel))

    async def healthy(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._redis.ping(), self._ping_timeout))
        except (RedisError, OSError, TimeoutError):
            return False

    # -- the pub/sub connection ---------------------------------------------------------------------------------

    async def _open(self) -> AbstractConnection:
        """Connect and SUBSCRIBE every wanted channel; confirmations are handled by the reader."""
        conn = self._conn_class(**self._conn_kwargs)
        try:
            await conn.connect()
            # Publishing _conn and snapshotting _subs happen with no await in between, so a concurrent
            # subscribe() either is in this snapshot or sees _conn and sends its own SUBSCRIBE (a duplicate
            # SUBSCRIBE is harmless: its confirmation only triggers a catch-up).
            self._conn = conn
            channels = [self._pub(name) for name in self._subs]
            if channels:
                await self._send(conn, "SUBSCRIBE", *channels)
        except BaseException:
            await self._discard(conn)
            raise
        return conn

    async def _discard(self, conn: AbstractConnection) -> None:
        if self._conn is conn:
            self._conn = None
        with contextlib.suppress(RedisError, OSError):
            await conn.disconnect()

    async def _send(self, conn: AbstractConnection, *args: str) -> None:
        async with self._write_lock:
            # Never write to a replaced or broken connection: redis-py would silently reconnect it, without our
            # subscriptions and behind the reader's back.
            if conn is self._conn and conn.is_connected:
                await conn.send_command(*args, check_health=False)

    async def _supervise(self, conn: AbstractConnection) -> None:
        while True:
            try:
                await self._session(conn)
            except (RedisError, OSError, _Dead, BrokerUnavailable) as exc:
                log.warning("redis pub/sub connection to %s lost (%s); reconnecting", self._where, exc)
            except Exception:
                # A bug must not leave the process deaf for good: log it loudly and start over.
                log.exception("redis pub/sub reader failed; reconnecting")
            finally:
                await self._discard(conn)
            conn = await self._reconnect()

    async def _reconnect(self) -> AbstractConnection:
        attempt = 0
        while True:
            delay = min(RECONNECT_CAP, RECONNECT_BASE * 2**attempt)
            await asyncio.sleep(random.uniform(delay / 2, delay))
            attempt += 1
            try:
                conn = await self._open()
            except (RedisError, OSError) as exc:
                log.warning("redis reconnect to %s failed (attempt %d): %s", self._where, attempt, exc)
                continue
            self._reconnects += 1
            log.warning(
                "redis pub/sub reconnected to %s after %d attempt(s); back-filling %d channel(s)",
                self._where,
                attempt,
                len(self._subs),
            )
            return conn

    async def _session(self, conn: AbstractConnection) -> None:
        """Read and watch one connection until either fails; raises why."""
        self._busy = False
        self._pong = None
        reader = asyncio.create_task(self._read(conn), name="redis-broker-reader")
        watchdog = asyncio.create_task(self._watchdog(conn), name="redis-broker-watchdog")
        try:
            done, _ = await asyncio.wait({reader, watchdog}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, watchdog):
                task.cancel()
            await asyncio.gather(reader, watchdog, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if exc is not None:
                raise exc
        raise _Dead("pub/sub tasks ended")

    async def _watchdog(self, conn: AbstractConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._ping_interval)
            pong = self._pong = loop.create_future()
            await self._send(conn, "PING")
            while True:
                done, _ = await asyncio.wait({pong}, timeout=self._ping_timeout)
                if done:
                    break
                # A reader busy back-filling has not read the socket, so its silence proves nothing yet;
                # the command connection's own socket timeout bounds how long that lasts.
                if not self._busy:
                    raise _Dead(f"no PONG within {self._ping_timeout}s")

    async def _read(self, conn: AbstractConnection) -> None:
        while True:
            msg = await conn.read_response(timeout=math.inf)
            if msg == "PONG" or (isinstance(msg, list) and msg and msg[0] == "pong"):
                # Plain PONG when no channel is subscribed; a ``pong`` message in subscribed mode.
                if self._pong is not None and not self._pong.done():
                    self._pong.set_result(None)
                continue
            if not isinstance(msg, list) or len(msg) < 3:
                continue
            kind, name, payload = msg[0], msg[1], msg[2]
            if not isinstance(name, str) or not name.startswith(self._pub_prefix):
                continue
            sub = self._subs.get(name[len(self._pub_prefix) :])
            if sub is None:
                continue  # unsubscribed meanwhile
            if kind == "message":
                if sub.epoch is None:
                    # Left over from an earlier subscription of this name; this one starts at the position
                    # read when its own SUBSCRIBE is confirmed, which is later than this event.
                    continue
                try:
                    event = Event.from_json(payload)
                except (ValueError, KeyError, TypeError):
                    log.warning("ignoring a malformed message on %s", name)
                    continue
                await self._on_live(sub, event)
            elif kind == "subscribe":
                await self._on_subscribed(sub)

    async def _on_subscribed(self, sub: _Sub) -> None:
        """A SUBSCRIBE is confirmed: from here on every publication reaches this connection, in order.

        The position is read only now, and by the reader itself, so it is at least the seq of anything published
        before the confirmation; events above it either arrive as messages, which wait unread in the socket
        until ``last`` is set, or were already caught up. Nothing is lost, nothing needs a buffer.
        """
        self._busy = True
        try:
            if sub.epoch is None:
                position = await self._position(sub.channel, self._reader_redis)
                if self._subs.get(sub.channel) is not sub:
                    return
                sub.epoch, sub.last = position.epoch, position.seq
                if not sub.ready.done():
                    sub.ready.set_result(None)
            else:
                # A re-subscription (reconnect, or a repeated SUBSCRIBE): what was published while this
                # connection was not listening is only in the stream.
                await self._catch_up(sub)
        finally:
            self._busy = False

    async def _on_live(self, sub: _Sub, event: Event) -> None:
        if event.epoch == sub.epoch or (sub.epoch == NO_EPOCH and sub.last == 0):
            # (A channel subscribed while it had no history: its first publication starts the epoch.)
            if event.epoch == sub.epoch and event.seq <= sub.last:
                return
            if event.seq == sub.last + 1:
                self._deliver(sub, event)
                return
        # A gap, or another epoch: the stream is the truth, and it holds this event too (XADD precedes PUBLISH).
        self._busy = True
        try:
            await self._catch_up(sub)
        finally:
            self._busy = False

    async def _catch_up(self, sub: _Sub) -> None:
        while True:
            events, position, first = await self._history(sub.channel, sub.last, CATCH_UP_PAGE, self._reader_redis)
            if self._subs.get(sub.channel) is not sub:
                return
            if position.epoch != sub.epoch and sub.epoch == NO_EPOCH and sub.last == 0:
                # Subscribed while the channel had no history; what it has now is all new, nothing was lost.
                sub.epoch = position.epoch
            elif position.epoch != sub.epoch:
                log.warning(
                    "channel %s: epoch %s replaced by %s (history lost); delivering the new history",
                    sub.channel,
                    sub.epoch,
                    position.epoch,
                )
                sub.epoch, sub.last = position.epoch, 0
                continue
            if events and events[0].seq > sub.last + 1:
                # Trimmed before it could be delivered (an outage longer than history_size publications).
                log.warning(
                    "channel %s: seqs %d..%d were trimmed before delivery", sub.channel, sub.last + 1, first - 1
                )
            for event in events:
                self._deliver(sub, event)
            log.debug("channel %s: %d event(s) delivered from the stream", sub.channel, len(events))
            if len(events) < CATCH_UP_PAGE:
                return

    def _deliver(self, sub: _Sub, event: Event) -> None:
        sub.epoch, sub.last = event.epoch, event.seq
        handler = self._handler
        if handler is None:
            return
        try:
            handler(event)
        except Exception:
            # One faulty consumer must not kill the reader that feeds every channel.
            log.exception("event handler failed on %s seq %d", event.channel, event.seq)
