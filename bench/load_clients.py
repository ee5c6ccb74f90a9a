"""The viewers of ``bench/load.py``: WebSocket clients run in separate processes, three implementations.

``lean`` (the default) is a WebSocket client written for load generation on asyncio ``Protocol`` callbacks:

* a real opening handshake (RFC 6455 §4.1): ``GET /ws`` with ``Upgrade``, ``Connection``, a random 16-byte
  ``Sec-WebSocket-Key`` and ``Sec-WebSocket-Version: 13``; the reply must be ``101`` and carry the
  ``Sec-WebSocket-Accept`` that the key implies (SHA-1 + base64 of key and GUID), or the connection is counted
  as failed;
* every frame it sends is masked with a fresh random key (§5.3): the ``subscribe`` text frame, pongs, the close;
* it parses every server frame (§5.2): 7/16/64-bit lengths, FIN and continuation frames (a fragmented message is
  reassembled before it is read), a masked server frame or an unknown opcode counts as a protocol error;
* control frames: a ping is answered with a pong carrying its payload; a close is answered with a close carrying
  the same code, and counted with its code;
* many frames per ``data_received``: one pass over the bytes the kernel handed over, no per-frame task, queue or
  wake-up, and a partial frame waits in a buffer for the rest;
* per event it reads only what the bench measures, by slicing the frame's bytes: ``seq`` (each connection checks
  every seq arrives once and in order: gaps, missing seqs, duplicates), the bench marker and send time in
  ``role``, and ``ts`` (parsed once per distinct value per process, not per frame).

What it leaves out, and why that is fair: it does not decode UTF-8 or parse the JSON of every event (the server
does the same work whatever the client does with the bytes; a browser would decode them on its own machine, not
on the server's 2 cores), it offers no extensions (the server turns compression off anyway) and does not send its
own pings. The server cannot tell it from any other client: same handshake, same frames, same reads of its
socket; so the server's work per viewer is the same as with ``websockets`` or a browser, and what the lean client
saves is only the load generator's CPU, which on this 2-core box competes with the server under test.

``epoll`` (:class:`EpollClients`) does the same protocol and the same per-event checks without asyncio: one plain
level-triggered ``select.epoll`` loop per process over non-blocking sockets, one ``recv_into`` a preallocated
buffer per ready socket, one ``time.time()`` per read, all the frames of a read parsed in one pass over the
buffer. Two things make it cheaper still, and neither changes what the server does: the bench's fields are
sliced out of each distinct event's bytes once per process (every viewer gets the same bytes for an event, so a
payload equal to one already parsed, compared byte for byte, reuses its fields; each connection still checks its
own ``seq``), and after a poll that found few sockets ready the loop waits :data:`BATCH_S` before the next, so
one wake-up serves many sockets. That wait is counted in the latencies it reports (it can only make them worse).

``websockets`` is the ``websockets`` library's asyncio client (one task per connection, ``async for`` over its
messages, pings answered by the library, every message UTF-8 decoded), with the same per-event checks. It costs
several times the CPU per message. ``bench/load.py --client lean,epoll`` (or ``both``: lean and websockets) gives
the processes the kinds in turn and reports each kind's cost from the same run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import hashlib
import json
import os
import resource
import select
import socket
import time
from array import array
from datetime import datetime
from typing import Any

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KINDS = ("lean", "websockets", "epoll")


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit (20,000 sockets need more than the usual 1,024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def accept_for(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` value a server must answer ``key`` with (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final frame, masked with a fresh key, as clients must send them."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    if not n:
        return header + key
    k = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return header + key + (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big")


class Tally:
    """What one client process counts; reset at each round's ``begin``."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.latency = array("d")  # seconds from the bench's send time, one per bench event received this round
        self.fanout = array("d")  # seconds from the envelope's ``ts`` (set as the broker publishes) to receipt
        self.event_k = array("i")  # the publication number of each
        self.counts = {"gaps": 0, "missing_seqs": 0, "dups": 0, "closed_by_server": 0, "lost": 0, "pings": 0,
                       "errors": 0, "protocol_errors": 0, "fragmented": 0}  # fmt: skip
        self.close_codes: dict[int, int] = {}
        self.k0 = 0  # the first publication of the current round: frames of earlier ones are "late"
        self._ts: dict[bytes, float] = {}
        self._last_raw = b""
        self._last_value = 0.0

    def begin(self, k0: int) -> None:
        self.k0 = k0
        del self.latency[:], self.fanout[:], self.event_k[:]
        self._ts.clear()
        self._last_raw = b""

    def ts(self, raw: bytes | bytearray) -> float:
        """The envelope's ``ts`` as a Unix time, parsed once per distinct value: every viewer of a process gets the
        same event one after another, so the last value answers nearly every call without hashing."""
        if raw == self._last_raw:
            return self._last_value
        key = bytes(raw)
        value = self._ts.get(key)
        if value is None:
            value = self._ts[key] = datetime.fromisoformat(key.decode()).timestamp()
        self._last_raw, self._last_value = key, value
        return value


class Conn:
    """Per-connection state both clients share: seq continuity and this round's count of bench events."""

    __slots__ = ("tally", "last_seq", "count", "alive")

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.last_seq = 0
        self.count = 0
        self.alive = True

    def on_text(self, payload: bytes, now: float) -> bool:
        """Account for one text message; True when it was the ``subscribed`` reply."""
        return self.on_text_at(payload, 0, len(payload), now)

    def on_text_at(self, data: bytes | bytearray, start: int, end: int, now: float) -> bool:
        """Account for the text message ``data[start:end]``, read in place (the epoll client parses its receive
        buffer without copying each payload out); True when it was the ``subscribed`` reply."""
        tally = self.tally
        if data.startswith(b'{"op"', start, end):
            head = data[start : min(start + 24, end)]
            if b'"subscribed"' in head:
                return True
            if b'"error"' in head:
                tally.counts["errors"] += 1
            return False
        i = data.find(b'"seq":', start, end)
        if i >= 0:
            seq = int(data[i + 6 : data.index(b",", i, end)])
            last = self.last_seq
            if last:
                if seq <= last:
                    tally.counts["dups"] += 1
                    return False
                if seq != last + 1:
                    tally.counts["gaps"] += 1
                    tally.counts["missing_seqs"] += seq - last - 1
            self.last_seq = seq
        j = data.find(b'"role":"bench ', start, end)
        if j >= 0:
            j += 14
            q = data.index(b'"', j, end)
            space = data.index(b" ", j, q)
            k = int(data[j:space])
            tally.latency.append(now - float(data[space + 1 : q]))
            t = data.find(b'"ts":"', start, end)
            if t >= 0:
                tally.fanout.append(now - tally.ts(data[t + 6 : data.index(b'"', t + 6, end)]))
            tally.event_k.append(k)
            if k >= tally.k0:
                self.count += 1
        return False


class LeanViewer(asyncio.Protocol):
    """Handshake (with the accept check), ``subscribe``, then every frame parsed in one pass per read."""

    __slots__ = ("conn", "transport", "buf", "open", "subscribed", "key", "request", "sub_frame", "frag", "frag_op")

    def __init__(self, conn: Conn, host: str, subscribed: asyncio.Future[None]) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.open = False
        self.subscribed = subscribed
        self.key = base64.b64encode(os.urandom(16))
        self.request = (
            b"GET /ws HTTP/1.1\r\nHost: " + host.encode() + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + self.key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sub_frame = client_frame(0x1, json.dumps({"op": "subscribe", "channel": conn.tally.channel}).encode())
        self.frag: list[bytes] | None = None  # the parts of a fragmented message so far
        self.frag_op = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(f"lost before subscribed: {exc}"))
        elif self.conn.alive:
            self.conn.tally.counts["lost"] += 1
        self.conn.alive = False
        self.transport = None

    def _fail(self, why: str) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(why))
        self.conn.tally.counts["protocol_errors"] += 1
        if self.transport is not None:
            self.transport.abort()

    def _handshake(self, data: bytes) -> bytes | None:
        """The bytes after a valid 101 response, or None (waiting for more, or failed)."""
        end = data.find(b"\r\n\r\n")
        if end < 0:
            self.buf = data
            return None
        head = data[:end].split(b"\r\n")
        if not head[0].startswith(b"HTTP/1.1 101"):
            self._fail(head[0].decode("latin-1"))
            return None
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"sec-websocket-accept") != accept_for(self.key) or headers.get(b"upgrade", b"").lower() != (
            b"websocket"
        ):
            self._fail("bad Sec-WebSocket-Accept or Upgrade in the 101 response")
            return None
        self.open = True
        assert self.transport is not None
        self.transport.write(self.sub_frame)
        return data[end + 4 :]

    def data_received(self, data: bytes) -> None:
        if self.buf:
            data, self.buf = self.buf + data, b""
        transport = self.transport
        if transport is None:
            return
        if not self.open:
            rest = self._handshake(data)
            if rest is None:
                return
            data = rest
        now = time.time()
        conn = self.conn
        pos, n = 0, len(data)
        while n - pos >= 2:
            b0, b1 = data[pos], data[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
            if b1 & 0x80:
                self._fail("the server masked a frame")  # RFC 6455 §5.1: servers must not
                return
            end = pos + head + length
            if end > n:
                break
            opcode = b0 & 0x0F
            payload = data[pos + head : end]
            pos = end
            if opcode == 0x1 and b0 & 0x80:
                if conn.on_text(payload, now) and not self.subscribed.done():
                    self.subscribed.set_result(None)
            elif opcode in (0x1, 0x2) or opcode == 0x0:
                # A fragmented message: parts until FIN, control frames may come in between (§5.4).
                if opcode:
                    self.frag, self.frag_op = [payload], opcode
                elif self.frag is None:
                    self._fail("a continuation frame with nothing to continue")
                    return
                else:
                    self.frag.append(payload)
                if b0 & 0x80:
                    if len(self.frag) > 1:
                        conn.tally.counts["fragmented"] += 1
                    message, self.frag = b"".join(self.frag), None
                    if self.frag_op == 0x1 and conn.on_text(message, now) and not self.subscribed.done():
                        self.subscribed.set_result(None)
            elif opcode == 0x9:
                conn.tally.counts["pings"] += 1
                transport.write(client_frame(0xA, payload))
            elif opcode == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                if conn.alive:
                    conn.tally.counts["closed_by_server"] += 1
                    conn.tally.close_codes[code] = conn.tally.close_codes.get(code, 0) + 1
                conn.alive = False
                # Echo the code (§5.5.1), then let the server close the TCP connection first.
                transport.write(client_frame(0x8, payload[:2]))
                return
            elif opcode != 0xA:
                self._fail(f"unknown opcode {opcode}")
                return
        if pos < n:
            self.buf = data[pos:]


async def _lean(loop: asyncio.AbstractEventLoop, conn: Conn, port: int, source: str) -> Any:
    subscribed: asyncio.Future[None] = loop.create_future()
    transport, _ = await asyncio.wait_for(
        loop.create_connection(
            lambda: LeanViewer(conn, f"127.0.0.1:{port}", subscribed), "127.0.0.1", port, local_addr=(source, 0)
        ),
        30,
    )
    try:
        await asyncio.wait_for(subscribed, 60)
    except BaseException:
        transport.abort()
        raise
    return transport.abort


async def _websockets(loop: asyncio.AbstractEventLoop, conn: Conn, port: int, source: str) -> Any:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    tally = conn.tally
    ws = await asyncio.wait_for(
        connect(f"ws://127.0.0.1:{port}/ws", compression=None, ping_interval=None, max_queue=None,
                local_addr=(source, 0), open_timeout=30),
        30,
    )  # fmt: skip
    try:
        await ws.send(json.dumps({"op": "subscribe", "channel": tally.channel}))
        async with asyncio.timeout(60):
            while True:
                msg = await ws.recv()
                if conn.on_text(msg.encode() if isinstance(msg, str) else msg, time.time()):
                    break
    except BaseException:
        ws.transport.abort()
        raise

    async def read() -> None:
        try:
            async for msg in ws:
                conn.on_text(msg.encode() if isinstance(msg, str) else msg, time.time())
        except ConnectionClosed:
            pass
        if conn.alive:
            rcvd = ws.protocol.close_rcvd
            if rcvd is not None:
                tally.counts["closed_by_server"] += 1
                tally.close_codes[rcvd.code] = tally.close_codes.get(rcvd.code, 0) + 1
            else:
                tally.counts["lost"] += 1
        conn.alive = False

    task = loop.create_task(read())

    def abort() -> None:
        conn.alive = False
        task.cancel()
        ws.transport.abort()

    return abort


# -- epoll: one plain select.epoll loop per process, no asyncio ---------------------------------------------------

CONNECTING, HANDSHAKE, SUBSCRIBING, LIVE, CLOSING = range(5)
EV_IN = select.EPOLLIN
EV_OUT = select.EPOLLOUT
RECV_BUFFER = 1 << 18  # one receive buffer per process, shared by every socket: parsed before the next read
# After a poll that found few sockets ready, wait this long before the next one, so that one wake-up serves many
# sockets: the fan-out reaches a process's sockets a few at a time, and a poll per handful of sockets costs more
# in wake-ups than the reads themselves. It adds at most this much to the latencies the bench measures (arrival
# is stamped when the socket is read), so it can only make the figures worse, never better.
BATCH_S = 0.002
BATCH_MIN = 64


class EpollViewer:
    """One connection of :class:`EpollClients`: its socket, where it stands, and what waits to be sent or parsed."""

    __slots__ = ("sock", "fd", "conn", "state", "key", "pending", "rest", "frag", "frag_op", "deadline")

    def __init__(self, sock: socket.socket, conn: Conn, deadline: float) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.conn = conn
        self.state = CONNECTING
        self.key = base64.b64encode(os.urandom(16))
        self.pending = b""  # bytes the kernel did not take yet (EPOLLOUT is watched while there are any)
        self.rest = b""  # the start of a frame (or of the 101 response) whose end has not arrived
        self.frag: list[bytes] | None = None  # the parts of a fragmented message so far
        self.frag_op = 0
        self.deadline = deadline  # for the connect, then for the handshake and the ``subscribed`` reply


class EpollClients:
    """The viewers of one process on one level-triggered ``select.epoll`` over non-blocking sockets, no asyncio.

    Per ready socket: one ``recv_into`` a preallocated buffer (a partial frame left by the previous read is put
    back in front of it first), one ``time.time()``, then every frame of the read parsed in one pass. The protocol
    is the lean client's: the RFC 6455 handshake with the ``Sec-WebSocket-Accept`` check, masked client frames,
    7/16/64-bit lengths, fragmented messages reassembled (control frames may come in between), pings answered with
    pongs, a close answered with the same code; a masked server frame, RSV bits without an extension, a
    continuation with nothing to continue, a new message inside a fragmented one, a fragmented or oversized control
    frame or an unknown opcode is a protocol error (counted, the connection dropped).

    The bench's fields (``seq``, the marker and send time in ``role``, ``ts``) are sliced out of the payload's
    bytes as the lean client does, once per distinct event: the server sends every viewer of an event the same
    bytes, so a payload equal to one of the last two parsed (compared byte for byte in the buffer) reuses their
    fields. Every frame is still read, framed and compared, and each connection still checks its own ``seq``.
    """

    def __init__(self, tally: Tally, port: int, source: str, host: str = "127.0.0.1", batch_s: float = BATCH_S) -> None:
        self.tally = tally
        self.port = port
        self.source = source
        self.host = host
        self.batch_s = batch_s
        self.ep = select.epoll()
        self.viewers: dict[int, EpollViewer] = {}
        self.conns: list[Conn] = []  # subscribed: what the bench counts
        self.errors: dict[str, int] = {}  # connections that never got to ``subscribed``, by reason
        self.failures: dict[str, int] = {}  # protocol errors, by reason
        self.in_flight = 0  # started, neither subscribed nor failed
        self.control_fd = -1  # the bench's pipe, watched on the same epoll
        self.polls = 0  # epoll waits and sockets served, since the round began
        self.reads = 0
        self.buf = bytearray(RECV_BUFFER)
        self.view = memoryview(self.buf)
        self.request_tail = b"\r\nSec-WebSocket-Version: 13\r\nHost: " + f"{host}:{port}".encode() + b"\r\n\r\n"
        self.sub_payload = json.dumps({"op": "subscribe", "channel": tally.channel}).encode()
        # The last two bench events parsed: the whole frame's bytes and (seq, k, sent time, envelope ts).
        self.last: tuple[bytes, tuple[int, int, float, float]] = (b"", (0, 0, 0.0, 0.0))
        self.before: tuple[bytes, tuple[int, int, float, float]] = self.last

    # -- connecting ------------------------------------------------------------------------------------------------

    def _note(self, why: str) -> None:
        key = why[:100]
        self.errors[key] = self.errors.get(key, 0) + 1

    def _error(self, v: EpollViewer, why: str) -> None:
        """A connection that failed before it was subscribed: a row of the connect errors."""
        self._note(why)
        self.in_flight -= 1
        self._drop(v)

    def _drop(self, v: EpollViewer) -> None:
        if self.viewers.pop(v.fd, None) is not None:
            with contextlib.suppress(OSError):
                self.ep.unregister(v.fd)
        v.conn.alive = False
        v.sock.close()

    def start_one(self, connect_timeout: float = 30.0) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        v = EpollViewer(sock, Conn(self.tally), time.monotonic() + connect_timeout)
        self.in_flight += 1
        try:
            sock.bind((self.source, 0))
            err = sock.connect_ex((self.host, self.port))
        except OSError as exc:
            err, why = -1, f"{type(exc).__name__}: {exc}"
        else:
            why = f"OSError: {os.strerror(err)}"
        if err not in (0, errno.EINPROGRESS):
            self._note(why)
            self.in_flight -= 1
            sock.close()
            return
        self.viewers[v.fd] = v
        self.ep.register(v.fd, EV_OUT)

    def _connected(self, v: EpollViewer) -> None:
        err = v.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._error(v, f"ConnectionError: {os.strerror(err)}")
            return
        v.state = HANDSHAKE
        v.deadline = time.monotonic() + 60.0
        self.ep.modify(v.fd, EV_IN)
        self._send(v, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                   + v.key + self.request_tail)  # fmt: skip

    def _handshake(self, v: EpollViewer, data: bytes) -> bytes | None:
        """The bytes after a valid 101 response, or None (waiting for more, or failed)."""
        end = data.find(b"\r\n\r\n")
        if end < 0:
            v.rest = data
            return None
        head = data[:end].split(b"\r\n")
        if not head[0].startswith(b"HTTP/1.1 101"):
            self.tally.counts["protocol_errors"] += 1
            self._error(v, f"ConnectionError: {head[0].decode('latin-1')}")
            return None
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"sec-websocket-accept") != accept_for(v.key) or headers.get(b"upgrade", b"").lower() != (
            b"websocket"
        ):
            self.tally.counts["protocol_errors"] += 1
            self._error(v, "ConnectionError: bad Sec-WebSocket-Accept or Upgrade in the 101 response")
            return None
        v.state = SUBSCRIBING
        self._send(v, client_frame(0x1, self.sub_payload))
        return data[end + 4 :]

    def expire(self) -> None:
        """Give up on connections that took too long to connect, answer the handshake or confirm ``subscribe``."""
        now = time.monotonic()
        for v in [v for v in self.viewers.values() if v.state < LIVE and v.deadline < now]:
            self._error(v, "TimeoutError: connect, handshake or subscribe took too long")

    def connect(self, n: int, concurrency: int, timeout: float) -> None:
        """Open ``n`` viewers, at most ``concurrency`` in flight, within ``timeout`` s in all."""
        started = 0
        give_up = time.monotonic() + timeout
        last_expire = 0.0
        while started < n or self.in_flight:
            while started < n and self.in_flight < concurrency:
                self.start_one()
                started += 1
            self.step(0.05, batch=False)
            now = time.monotonic()
            if now - last_expire > 0.5:
                self.expire()
                last_expire = now
            if now > give_up:
                late = [v for v in self.viewers.values() if v.state < LIVE]
                for v in late:
                    self._drop(v)
                self.in_flight -= len(late)
                if late or started < n:
                    self.errors["connect phase timed out"] = len(late) + n - started
                break

    # -- sending ---------------------------------------------------------------------------------------------------

    def _send(self, v: EpollViewer, data: bytes) -> None:
        if v.pending:
            v.pending += data
            return
        try:
            sent = v.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._gone(v)
            return
        if sent < len(data):
            v.pending = data[sent:]
            self.ep.modify(v.fd, EV_IN | EV_OUT)

    def _flush(self, v: EpollViewer) -> None:
        data, v.pending = v.pending, b""
        self.ep.modify(v.fd, EV_IN)
        if data:
            self._send(v, data)

    # -- reading ---------------------------------------------------------------------------------------------------

    def _gone(self, v: EpollViewer) -> None:
        """The connection ended (EOF or a socket error)."""
        if v.state < LIVE:
            self._error(v, "ConnectionError: lost before subscribed")
            return
        if v.conn.alive:
            self.tally.counts["lost"] += 1
        self._drop(v)

    def _fail(self, v: EpollViewer, why: str) -> None:
        self.tally.counts["protocol_errors"] += 1
        self.failures[why] = self.failures.get(why, 0) + 1
        if v.state < LIVE:
            self._error(v, f"ConnectionError: {why}")
        else:
            self._drop(v)

    def step(self, timeout: float, batch: bool = True) -> bool:
        """Wait up to ``timeout`` s, then read every ready socket once; True when the control pipe is readable."""
        control = False
        viewers = self.viewers
        ready = self.ep.poll(timeout, 4096)
        self.polls += 1
        if batch and self.batch_s and 0 < len(ready) < BATCH_MIN:
            # Level-triggered: what was ready is still ready after the wait, with whatever came meanwhile.
            time.sleep(self.batch_s)
            ready = self.ep.poll(0, 4096)
        buf, view = self.buf, self.view
        now_s = time.time
        tally = self.tally
        for fd, ev in ready:
            v = viewers.get(fd)
            if v is None:
                if fd == self.control_fd:
                    control = True
                continue
            if ev == EV_IN and not v.rest and v.state == LIVE:
                # The hot path: a live connection with nothing left over from the last read.
                try:
                    n = v.sock.recv_into(view)
                except BlockingIOError:
                    continue
                except OSError:
                    self._gone(v)
                    continue
                if not n:
                    self._gone(v)
                    continue
                now = now_s()
                # Nearly always the read is one whole frame, byte for byte one of the last two parsed (whose
                # header and payload were checked then): count it here; anything else goes through the parser.
                frame, fields = self.last
                if n != len(frame) or not buf.startswith(frame):
                    frame, fields = self.before
                    if n != len(frame) or not buf.startswith(frame) or v.frag is not None:
                        self._frames(v, n, now)
                        continue
                elif v.frag is not None:
                    self._frames(v, n, now)
                    continue
                # As _account, inline: this runs once per delivered frame.
                conn = v.conn
                seq, k, sent, ts = fields
                last = conn.last_seq
                if seq != last + 1 and last:
                    if seq <= last:
                        tally.counts["dups"] += 1
                        continue
                    tally.counts["gaps"] += 1
                    tally.counts["missing_seqs"] += seq - last - 1
                conn.last_seq = seq
                tally.latency.append(now - sent)
                tally.fanout.append(now - ts)
                tally.event_k.append(k)
                if k >= tally.k0:
                    conn.count += 1
                continue
            if ev & EV_OUT:
                if v.state == CONNECTING:
                    self._connected(v)
                    continue
                self._flush(v)
            if ev & ~EV_OUT and v.fd in viewers:
                self._read(v)
                buf, view = self.buf, self.view  # a long message may have grown the buffer
        self.reads += len(ready)
        return control

    def _read(self, v: EpollViewer) -> None:
        """A read outside the hot path: a partial frame left over, the handshake, a closing connection."""
        rest = v.rest
        off = len(rest)
        if off + 65536 > len(self.buf):
            # A message bigger than the buffer is being reassembled: grow it (never the case for events).
            self.buf = bytearray(2 * (off + 65536))
            self.view = memoryview(self.buf)
        buf = self.buf
        buf[:off] = rest
        v.rest = b""
        try:
            n = v.sock.recv_into(self.view[off:])
        except BlockingIOError:
            v.rest = rest
            return
        except OSError:
            self._gone(v)
            return
        if not n:
            self._gone(v)
            return
        now = time.time()
        end = off + n
        if v.state < SUBSCRIBING:
            after = self._handshake(v, bytes(buf[:end]))
            if not after:
                return
            end = len(after)
            buf[:end] = after
        elif v.state == CLOSING:
            return  # the close is answered: read until the server ends the connection
        self._frames(v, end, now)

    def _frames(self, v: EpollViewer, end: int, now: float) -> None:
        """Every frame in ``buf[:end]``, in one pass; a partial one at the end is kept for the next read."""
        buf = self.buf
        conn = v.conn
        pos = 0
        while end - pos >= 2:
            start = pos
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            head = pos + 2
            if length == 126:
                if end - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                head = pos + 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = pos + 10
            if b1 & 0x80:
                self._fail(v, "the server masked a frame")  # RFC 6455 §5.1: servers must not
                return
            stop = head + length
            if stop > end:
                break
            pos = stop
            if b0 == 0x81 and v.frag is None:
                # A whole text message (FIN, no RSV bits, not inside a fragmented one): nearly every frame.
                size = stop - start
                frame, fields = self.last
                if not (size == len(frame) and buf.startswith(frame, start)):
                    frame, fields = self.before
                    if not (size == len(frame) and buf.startswith(frame, start)):
                        parsed = self._bench_fields(buf, start, head, stop)
                        if parsed is None:
                            # Not a bench event (the ``subscribed`` reply, an error): the lean client's reading.
                            if conn.on_text_at(buf, head, stop, now) and v.state == SUBSCRIBING:
                                self._subscribed(v)
                            continue
                        fields = parsed
                self._account(conn, fields, now)
                continue
            if not self._other(v, b0, buf, head, stop, now):
                return
        if pos < end:
            v.rest = bytes(buf[pos:end])

    def _account(self, conn: Conn, fields: tuple[int, int, float, float], now: float) -> None:
        """One bench event received on ``conn``: its seq checked against the connection's last, its latencies."""
        tally = self.tally
        seq, k, sent, ts = fields
        last = conn.last_seq
        if seq != last + 1 and last:
            if seq <= last:
                tally.counts["dups"] += 1
                return
            tally.counts["gaps"] += 1
            tally.counts["missing_seqs"] += seq - last - 1
        conn.last_seq = seq
        tally.latency.append(now - sent)
        tally.fanout.append(now - ts)
        tally.event_k.append(k)
        if k >= tally.k0:
            conn.count += 1

    def _bench_fields(self, buf: bytearray, start: int, head: int, stop: int) -> tuple[int, int, float, float] | None:
        """``seq``, the publication number, the send time and the envelope's ``ts`` of the bench event whose frame
        is ``buf[start:stop]`` (payload from ``head``), sliced out of its bytes as the lean client does (None for
        anything else); the frame is remembered, whole, as the newest parsed."""
        i = buf.find(b'"seq":', head, stop)
        j = buf.find(b'"role":"bench ', head, stop)
        t = buf.find(b'"ts":"', head, stop)
        if i < 0 or j < 0 or t < 0 or buf.startswith(b'{"op"', head):
            return None
        j += 14
        q = buf.index(b'"', j, stop)
        space = buf.index(b" ", j, q)
        fields = (
            int(buf[i + 6 : buf.index(b",", i, stop)]),
            int(buf[j:space]),
            float(buf[space + 1 : q]),
            self.tally.ts(buf[t + 6 : buf.index(b'"', t + 6, stop)]),
        )
        self.before, self.last = self.last, (bytes(buf[start:stop]), fields)
        return fields

    def _other(self, v: EpollViewer, b0: int, buf: bytearray, head: int, stop: int, now: float) -> bool:
        """Any frame but a whole text message; False when the connection is done with (failed or closing)."""
        if b0 & 0x70:
            self._fail(v, "RSV bits set without an extension")
            return False
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if opcode < 0x3:
            # A fragmented message: parts until FIN, control frames may come in between (§5.4).
            if opcode:
                if v.frag is not None:
                    self._fail(v, "a new message inside a fragmented one")
                    return False
                v.frag, v.frag_op = [bytes(buf[head:stop])], opcode
            elif v.frag is None:
                self._fail(v, "a continuation frame with nothing to continue")
                return False
            else:
                v.frag.append(bytes(buf[head:stop]))
            if fin:
                if len(v.frag) > 1:
                    self.tally.counts["fragmented"] += 1
                message, v.frag = b"".join(v.frag), None
                if v.frag_op == 0x1 and v.conn.on_text(message, now) and v.state == SUBSCRIBING:
                    self._subscribed(v)
            return True
        if not fin or stop - head > 125:
            self._fail(v, "a fragmented or oversized control frame")  # §5.5
            return False
        if opcode == 0x9:
            self.tally.counts["pings"] += 1
            self._send(v, client_frame(0xA, bytes(buf[head:stop])))
            return v.fd in self.viewers
        if opcode == 0x8:
            conn = v.conn
            code = (buf[head] << 8) | buf[head + 1] if stop - head >= 2 else 1005
            if conn.alive:
                self.tally.counts["closed_by_server"] += 1
                self.tally.close_codes[code] = self.tally.close_codes.get(code, 0) + 1
            conn.alive = False
            if v.state < LIVE:
                self.in_flight -= 1
                self._note("ConnectionError: closed before subscribed")
            # Echo the code (§5.5.1), then let the server close the TCP connection first.
            v.state = CLOSING
            self._send(v, client_frame(0x8, bytes(buf[head : min(head + 2, stop)])))
            return False
        if opcode != 0xA:
            self._fail(v, f"unknown opcode {opcode}")
            return False
        return True

    def _subscribed(self, v: EpollViewer) -> None:
        v.state = LIVE
        self.in_flight -= 1
        self.conns.append(v.conn)

    def close(self) -> None:
        for v in list(self.viewers.values()):
            v.conn.alive = False
            v.sock.close()
        self.viewers.clear()
        self.ep.close()


def _epoll_process(
    pipe: Any, channel: str, port: int, source: str, n: int, concurrency: int, connect_timeout: float, batch_s: float
) -> None:
    tally = Tally(channel)
    clients = EpollClients(tally, port, source, batch_s=batch_s)
    started = time.monotonic()
    clients.connect(n, concurrency, connect_timeout)
    pipe.send(("ready", len(clients.conns), clients.errors, time.monotonic() - started))
    clients.control_fd = pipe.fileno()
    clients.ep.register(clients.control_fd, EV_IN)
    conns = clients.conns
    parent = os.getppid()
    cpu0 = time.process_time()
    collecting: tuple[int, float] | None = None
    next_check = 0.0
    try:
        while True:
            if clients.step(0.05 if collecting else 1.0):
                try:
                    msg = pipe.recv()
                except EOFError:
                    break
                if msg[0] == "begin":
                    tally.begin(msg[1])
                    for c in conns:
                        c.count = 0
                    clients.polls = clients.reads = 0
                    cpu0 = time.process_time()
                    pipe.send(("begun",))
                elif msg[0] == "collect":
                    collecting = (msg[1], msg[2])
                else:
                    break
            if collecting is not None:
                want, deadline = collecting
                now = time.time()
                # Bounded by the wall-clock deadline the bench set, even if frames are still missing; the scan
                # over every connection runs at most every 50 ms, as the asyncio clients' does.
                if now >= deadline or (now >= next_check and all(c.count >= want for c in conns)):
                    collecting = None
                    counts = [c.count for c in conns]
                    pipe.send(
                        (
                            "round",
                            {
                                **tally.counts,
                                "kind": "epoll",
                                "connected_now": sum(1 for c in conns if c.alive),
                                "close_codes": dict(tally.close_codes),
                                "short": sum(1 for c in counts if c < want),
                                "received": sum(counts),
                                "latency": tally.latency.tobytes(),
                                "fanout": tally.fanout.tobytes(),
                                "event_k": tally.event_k.tobytes(),
                                "cpu_s": time.process_time() - cpu0,
                                "polls": clients.polls,
                                "reads": clients.reads,
                            },
                        )
                    )
                elif now >= next_check:
                    next_check = now + 0.05
            elif os.getppid() != parent:
                break
    finally:
        clients.close()


async def _wait_pipe(pipe: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    parent = os.getppid()
    while not pipe.poll():
        if time.monotonic() > deadline or os.getppid() != parent:
            raise TimeoutError("no word from the bench")
        await asyncio.sleep(0.02)
    return pipe.recv()


async def _clients(
    pipe: Any, kind: str, channel: str, port: int, source: str, n: int, concurrency: int, connect_timeout: float
) -> None:
    loop = asyncio.get_running_loop()
    tally = Tally(channel)
    conns: list[Conn] = []
    aborts: list[Any] = []
    errors: dict[str, int] = {}
    sem = asyncio.Semaphore(concurrency)
    opener = _lean if kind == "lean" else _websockets

    async def one() -> None:
        async with sem:
            conn = Conn(tally)
            try:
                aborts.append(await opener(loop, conn, port, source))
                conns.append(conn)
            except (OSError, TimeoutError, ConnectionError, Exception) as exc:  # noqa: BLE001 - each is a row
                key = f"{type(exc).__name__}: {exc}"[:100]
                errors[key] = errors.get(key, 0) + 1

    started = time.monotonic()
    tasks = [asyncio.create_task(one()) for _ in range(n)]
    _, pending = await asyncio.wait(tasks, timeout=connect_timeout)
    for task in pending:
        task.cancel()
    if pending:
        errors["connect phase timed out"] = len(pending)
    pipe.send(("ready", len(conns), errors, time.monotonic() - started))
    cpu0 = time.process_time()
    while True:
        try:
            msg = await _wait_pipe(pipe, 3600)
        except TimeoutError:
            break
        if msg[0] == "begin":
            tally.begin(msg[1])
            for c in conns:
                c.count = 0
            cpu0 = time.process_time()
            pipe.send(("begun",))
            continue
        if msg[0] != "collect":
            break
        _, want, deadline = msg
        # Bounded by the wall-clock deadline the bench set, even if frames are still missing.
        while time.time() < deadline and any(c.count < want for c in conns):
            await asyncio.sleep(0.05)
        counts = [c.count for c in conns]
        pipe.send(
            (
                "round",
                {
                    **tally.counts,
                    "kind": kind,
                    "connected_now": sum(1 for c in conns if c.alive),
                    "close_codes": dict(tally.close_codes),
                    "short": sum(1 for c in counts if c < want),
                    "received": sum(counts),
                    "latency": tally.latency.tobytes(),
                    "fanout": tally.fanout.tobytes(),
                    "event_k": tally.event_k.tobytes(),
                    "cpu_s": time.process_time() - cpu0,
                },
            )
        )
    for c in conns:
        c.alive = False
    for abort in aborts:
        abort()
    await asyncio.sleep(0.1)


def client_process(
    pipe: Any,
    kind: str,
    channel: str,
    port: int,
    source: str,
    n: int,
    concurrency: int,
    connect_timeout: float,
    batch_s: float = BATCH_S,
) -> None:
    """One client process: ``n`` viewers of ``kind`` from ``source``, driven by the bench over ``pipe``;
    ``batch_s`` is the epoll kind's wait after a poll that found few sockets ready."""
    raise_nofile()
    if kind == "epoll":
        _epoll_process(pipe, channel, port, source, n, concurrency, connect_timeout, batch_s)
        return
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_clients(pipe, kind, channel, port, source, n, concurrency, connect_timeout))
