"""The viewers of ``bench/load.py``: WebSocket clients run in separate processes, two implementations.

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

``websockets`` is the ``websockets`` library's asyncio client (one task per connection, ``async for`` over its
messages, pings answered by the library, every message UTF-8 decoded), with the same per-event checks. It costs
several times the CPU per message; ``bench/load.py --client both`` runs half the processes with each and reports
both costs from the same run.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import resource
import time
from array import array
from datetime import datetime
from typing import Any

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KINDS = ("lean", "websockets")


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

    def begin(self, k0: int) -> None:
        self.k0 = k0
        del self.latency[:], self.fanout[:], self.event_k[:]
        self._ts.clear()

    def ts(self, raw: bytes) -> float:
        value = self._ts.get(raw)
        if value is None:
            value = self._ts[raw] = datetime.fromisoformat(raw.decode()).timestamp()
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
        tally = self.tally
        if payload.startswith(b'{"op"'):
            head = payload[:24]
            if b'"subscribed"' in head:
                return True
            if b'"error"' in head:
                tally.counts["errors"] += 1
            return False
        i = payload.find(b'"seq":')
        if i >= 0:
            seq = int(payload[i + 6 : payload.index(b",", i)])
            last = self.last_seq
            if last:
                if seq <= last:
                    tally.counts["dups"] += 1
                    return False
                if seq != last + 1:
                    tally.counts["gaps"] += 1
                    tally.counts["missing_seqs"] += seq - last - 1
            self.last_seq = seq
        j = payload.find(b'"role":"bench ')
        if j >= 0:
            k_raw, sent = payload[j + 14 : payload.index(b'"', j + 14)].split(b" ")
            k = int(k_raw)
            tally.latency.append(now - float(sent))
            t = payload.find(b'"ts":"')
            if t >= 0:
                tally.fanout.append(now - tally.ts(payload[t + 6 : payload.index(b'"', t + 6)]))
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
    pipe: Any, kind: str, channel: str, port: int, source: str, n: int, concurrency: int, connect_timeout: float
) -> None:
    """One client process: ``n`` viewers of ``kind`` from ``source``, driven by the bench over ``pipe``."""
    raise_nofile()
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_clients(pipe, kind, channel, port, source, n, concurrency, connect_timeout))
