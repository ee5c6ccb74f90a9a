"""WebSocket fan-out benchmark: one server process behind Redis, N clients on one sitting channel.

For each client count N and each server under test it:

1. starts the server as a subprocess on a free loopback port: ``server.py`` (Sapha: Starlette + uvicorn, the
   Redis broker) or the bare reference below (``websockets.asyncio.server`` + ``websockets.broadcast()`` relaying
   the same Redis pub/sub channel, the floor that any fan-out in Python on this machine can hope for);
2. reads the server's idle RSS, then connects N lean clients (raw asyncio protocol with a minimal WebSocket frame
   parser, spread over ``--procs`` client processes) that each send ``subscribe`` and wait for ``subscribed``;
3. publishes ``--rate`` events/s for ``--duration`` s straight into Redis with ``RedisBroker.publish`` (the same
   Lua script the service uses, so both servers receive byte-identical envelopes); each event carries a ~200-byte
   Thai caption and its publish wall-clock time in ``data.sent``;
4. waits until every client holds every event, or ``--grace`` s after the last publish, and reports per server
   and N: publish -> client-receive latency p50/p99/max, delivered msg/s, delivered/expected, the server's CPU
   over the window and per delivered message, and server RSS per connection.

Every client reads and parses every frame (and answers pings); latency is taken when the client process handles
the frame, so a starved client adds to it. Undelivered events count as "later than the grace window" in the
percentiles, so a p99 is never flattered by losses.

    .venv/bin/python bench/fanout.py                      # 1k, 5k, 10k clients, 20 s each, both servers
    .venv/bin/python bench/fanout.py --quick              # 200 clients, 5 s: smoke run
    .venv/bin/python bench/fanout.py --clients 5000 --servers sapha --profile-server /tmp/prof
    .venv/bin/python bench/fanout.py --clients 5000 --repeat 3   # 3 interleaved rounds, median and spread

Loopback only: Redis must be on 127.0.0.1 (``--redis-url``/``REDIS_URL``), servers bind 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import platform
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from array import array
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHANNEL = "sitting:bench-fanout"
EVENT_TYPE = "caption.partial"
# ~200 bytes of UTF-8 (Thai is 3 bytes a character): a realistic live caption line.
CAPTION = "ท่านประธานที่เคารพ กระผมขอเสนอญัตติด่วนเรื่องงบประมาณรายจ่ายประจำปี"
OPERATOR_TOKEN = "bench-fanout-operator-token"
SERVERS = ("sapha", "reference")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def child_setup() -> None:
    """In a server subprocess before exec: a raised fd limit, and SIGTERM should the bench die without cleaning up."""
    raise_nofile()
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing non-loopback Redis host {host!r}: this benchmark only talks to 127.0.0.1")


# -- /proc readings ------------------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


# -- lean WebSocket client (runs in the client processes) ----------------------------------------------------------

# Process-wide counters of one client process; every connection appends to them.
LATENCIES = array("d")
CLOSE_CODES: dict[int, int] = {}  # close codes the server sent, for the report
EVENT_K = array("i")  # which publication each latency belongs to (``data.k``), for the per-event breakdown
STATE = {"events": 0, "first": 0.0, "last": 0.0, "closed_by_server": 0, "lost": 0, "pings": 0, "deflate": 0}


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked frame, as clients must send them."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    k = int.from_bytes((key * (n // 4 + 1))[:n], "big") if n else 0
    masked = (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big") if n else b""
    return header + key + masked


class LeanClient(asyncio.Protocol):
    """Handshake, one ``subscribe``, then parse every frame: events are timed, pings answered, closes noted."""

    __slots__ = ("transport", "buf", "open", "subscribed", "count", "request", "sub_frame", "inflater")

    def __init__(self, host: str, port: int, subscribed: asyncio.Future[None], deflate: bool = False) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.open = False
        self.subscribed = subscribed
        self.count = 0
        self.inflater: Any = None
        key = base64.b64encode(os.urandom(16)).decode()
        # Browsers always offer permessage-deflate; --deflate makes these clients do the same.
        offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if deflate else ""
        self.request = (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
        ).encode()
        self.sub_frame = client_frame(0x1, json.dumps({"op": "subscribe", "channel": CHANNEL}).encode())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(f"connection lost before subscribed: {exc}"))
        STATE["lost"] += 1
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.open:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            status = data[: data.find(b"\r\n")]
            if not status.startswith(b"HTTP/1.1 101"):
                if not self.subscribed.done():
                    self.subscribed.set_exception(ConnectionError(status.decode("latin-1")))
                self.transport.close()  # type: ignore[union-attr]
                return
            self.open = True
            if b"permessage-deflate" in data[:end].lower():
                STATE["deflate"] += 1
                self.inflater = zlib.decompressobj(-15)
            self.transport.write(self.sub_frame)  # type: ignore[union-attr]
            data = data[end + 4 :]
        now = time.time()
        pos, n = 0, len(data)
        while n - pos >= 2:
            b1 = data[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                head = 10
            end = pos + head + length
            if end > n:
                break
            b0 = data[pos]
            opcode = b0 & 0x0F
            payload = data[pos + head : end]
            pos = end
            if b0 & 0x40 and self.inflater is not None:
                payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
            if opcode == 0x1:
                if payload.startswith(b'{"op"'):
                    if b'"subscribed"' in payload[:24] and not self.subscribed.done():
                        self.subscribed.set_result(None)
                    continue
                i = payload.rfind(b'"sent":')
                if i >= 0:
                    LATENCIES.append(now - float(payload[i + 7 : payload.index(b"}", i)]))
                    j = payload.rfind(b'"k":', 0, i)
                    EVENT_K.append(int(payload[j + 4 : i - 1]) if j >= 0 else -1)
                self.count += 1
                STATE["events"] += 1
                if not STATE["first"]:
                    STATE["first"] = now
                STATE["last"] = now
            elif opcode == 0x9:
                STATE["pings"] += 1
                self.transport.write(client_frame(0xA, payload))  # type: ignore[union-attr]
            elif opcode == 0x8:
                STATE["closed_by_server"] += 1
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                CLOSE_CODES[code] = CLOSE_CODES.get(code, 0) + 1
                with contextlib.suppress(Exception):
                    self.transport.write(client_frame(0x8, payload[:2]))  # type: ignore[union-attr]
                self.transport.close()  # type: ignore[union-attr]
                return
        if pos < n:
            self.buf = data[pos:]


async def _connect_one(loop: asyncio.AbstractEventLoop, port: int, timeout: float, deflate: bool) -> LeanClient:
    subscribed: asyncio.Future[None] = loop.create_future()
    transport, proto = await asyncio.wait_for(
        loop.create_connection(lambda: LeanClient("127.0.0.1", port, subscribed, deflate), "127.0.0.1", port),
        timeout,
    )
    try:
        await asyncio.wait_for(subscribed, timeout)
    except BaseException:
        transport.abort()
        raise
    return proto


async def _pipe_recv(pipe: Any, timeout: float, parent: int) -> Any:
    deadline = time.monotonic() + timeout
    while not pipe.poll():
        if time.monotonic() > deadline or os.getppid() != parent:
            raise TimeoutError("no word from the parent")
        await asyncio.sleep(0.02)
    return pipe.recv()


async def _client_main(
    pipe: Any,
    port: int,
    n: int,
    concurrency: int,
    connect_timeout: float,
    deflate: bool,
    max_life: float,
    parent: int,
) -> None:
    loop = asyncio.get_running_loop()
    clients: list[LeanClient] = []
    errors: dict[str, int] = {}
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            try:
                clients.append(await _connect_one(loop, port, min(30.0, connect_timeout), deflate))
            except (OSError, TimeoutError, ConnectionError) as exc:
                key = f"{type(exc).__name__}: {exc}"[:120]
                errors[key] = errors.get(key, 0) + 1

    started = time.monotonic()
    tasks = [asyncio.create_task(one()) for _ in range(n)]
    done, pending = await asyncio.wait(tasks, timeout=connect_timeout)
    for task in pending:
        task.cancel()
    if pending:
        errors["connect phase timed out"] = len(pending)
        await asyncio.gather(*pending, return_exceptions=True)
    pipe.send(("ready", len(clients), errors, time.monotonic() - started))

    try:
        msg = await _pipe_recv(pipe, max_life, parent)
    except TimeoutError:
        msg = ("abandoned",)
    if msg[0] == "finish":
        _, per_client, deadline = msg
        want = per_client * len(clients)
        # Bounded: stops at the wall-clock deadline the parent set even if frames are still missing.
        while STATE["events"] < want and time.time() < deadline:
            await asyncio.sleep(0.02)
        counts = [c.count for c in clients]
        pipe.send(
            (
                "done",
                {
                    **STATE,
                    "connected": len(clients),
                    "close_codes": dict(CLOSE_CODES),
                    "min_count": min(counts, default=0),
                    "max_count": max(counts, default=0),
                    "latencies": LATENCIES.tobytes(),
                    "event_k": EVENT_K.tobytes(),
                },
            )
        )
        with contextlib.suppress(TimeoutError):
            await _pipe_recv(pipe, 120, parent)
    for c in clients:
        if c.transport is not None:
            c.transport.abort()
    await asyncio.sleep(0.1)


def client_process(
    pipe: Any,
    port: int,
    n: int,
    concurrency: int,
    connect_timeout: float,
    deflate: bool,
    max_life: float,
    parent: int,
) -> None:
    raise_nofile()
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(_client_main(pipe, port, n, concurrency, connect_timeout, deflate, max_life, parent))


# -- bare reference server ------------------------------------------------------------------------------------------


async def reference_server(
    port: int, redis_url: str, pubsub_channel: str, ping_interval: float, deflate: bool, max_life: float
) -> None:
    """websockets + broadcast(): every Redis message goes to every subscribed client as is, nothing else."""
    import redis.asyncio as aioredis
    from websockets.asyncio.server import broadcast, serve

    subscribers: set[Any] = set()

    async def handler(ws: Any) -> None:
        try:
            async for message in ws:
                try:
                    msg = json.loads(message)
                except ValueError:
                    continue
                if isinstance(msg, dict) and msg.get("op") == "subscribe":
                    subscribers.add(ws)
                    await ws.send(json.dumps({"op": "subscribed", "channel": msg.get("channel")}))
        finally:
            subscribers.discard(ws)

    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = r.pubsub()
    await pubsub.subscribe(pubsub_channel)

    async def relay() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None and message["type"] == "message":
                broadcast(subscribers, message["data"])

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression="deflate" if deflate else None,
        ping_interval=ping_interval,
        ping_timeout=ping_interval,
        max_size=64 * 1024,
        backlog=2048,  # as uvicorn's default
    ):
        task = asyncio.create_task(relay())
        # Bounded: stops on SIGINT/SIGTERM from the bench, or by itself after max_life seconds.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max_life)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await pubsub.aclose()
    await r.aclose()


# -- orchestration -------------------------------------------------------------------------------------------------


@dataclass
class Result:
    server: str
    clients: int
    round: int = 1
    connected: int = 0
    connect_s: float = 0.0
    published: int = 0
    expected: int = 0
    delivered: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    p99_lower_bound: bool = False
    delivered_per_s: float = 0.0
    offered_per_s: float = 0.0
    server_cpu_pct: float = 0.0
    server_cpu_us_per_msg: float | None = None
    client_cpu_pct: float = 0.0
    rss_idle_kib: int = 0
    rss_connected_kib: int = 0
    rss_end_kib: int = 0
    kib_per_conn: float | None = None
    kib_per_conn_end: float | None = None
    deflate_negotiated: int = 0
    close_codes: dict[int, int] = field(default_factory=dict)
    closed_by_server: int = 0
    lost_connections: int = 0
    pings_answered: int = 0
    min_per_client: int = 0
    max_per_client: int = 0
    connect_errors: dict[str, int] = field(default_factory=dict)
    load_before: str = ""
    load_after: str = ""
    window_s: float = 0.0
    note: str = ""
    # Per publication k: [k, p50 ms, max ms, receivers], to see whether slow frames cluster in time (stalls).
    per_event: list[list[float]] = field(default_factory=list)


def percentiles(latencies: Any, expected: int, grace: float) -> tuple[float | None, float | None, bool]:
    """p50 and p99 in ms over ``expected`` samples, undelivered ones counted as later than anything delivered."""
    import numpy as np

    if expected <= 0:
        return None, None, False
    lat = np.sort(latencies) * 1000.0
    out = []
    lower_bound = False
    for q in (0.50, 0.99):
        rank = int(np.ceil(q * expected)) - 1
        if rank < len(lat):
            out.append(float(lat[max(rank, 0)]))
        else:
            out.append(grace * 1000.0)
            lower_bound = True
    return out[0], out[1], lower_bound


class ServerProc:
    def __init__(self, kind: str, port: int, args: argparse.Namespace, prefix: str, workdir: Path) -> None:
        self.kind = kind
        self.port = port
        self.log_path = workdir / f"{kind}-{port}.log"
        env = dict(os.environ)
        if kind == "sapha":
            env.update(
                REDIS_URL=args.redis_url,
                REDIS_PREFIX=prefix,
                OPERATOR_TOKEN=OPERATOR_TOKEN,
                # Every bench client connects from 127.0.0.1.
                MAX_CONNECTIONS_PER_IP="0",
                LOG_LEVEL="warning",
                DATABASE_URL=f"sqlite:///{workdir / f'sapha-{port}.db'}",
                HOST="127.0.0.1",
            )
            cmd = [sys.executable]
            if args.profile_server:
                prof = Path(args.profile_server) / f"sapha-{port}.prof"
                cmd += ["-m", "cProfile", "-o", str(prof)]
            script = Path(args.sapha_launcher).resolve() if args.sapha_launcher else ROOT / "server.py"
            cmd += [str(script), "--host", "127.0.0.1", "--port", str(port)]
        else:
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--serve-reference",
                str(port),
                "--redis-url",
                args.redis_url,
                "--pubsub-channel",
                f"{prefix}:pub:{CHANNEL}",
                "--max-life",
                str(args.connect_timeout + args.duration + args.grace + 300),
            ] + (["--deflate"] if args.deflate else [])
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=child_setup
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited: {self.tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} server not listening after {timeout}s: {self.tail()}")

    def tail(self) -> str:
        self.log.flush()
        return self.log_path.read_bytes()[-2000:].decode("utf-8", "replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            # SIGINT: uvicorn shuts down gracefully, and cProfile (when on) still writes its file.
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


async def _await_msg(pipes: list[Any], procs: list[Any], kind: str, timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    out: list[Any] = [None] * len(pipes)
    while any(o is None for o in out):
        for i, pipe in enumerate(pipes):
            if out[i] is None and pipe.poll():
                msg = pipe.recv()
                if msg[0] != kind:
                    raise RuntimeError(f"client process sent {msg[0]!r}, expected {kind!r}")
                out[i] = msg
        if any(o is None and not p.is_alive() for o, p in zip(out, procs, strict=True)):
            raise RuntimeError("a client process died")
        if time.monotonic() > deadline:
            raise TimeoutError(f"client processes: no {kind!r} within {timeout:.0f}s")
        await asyncio.sleep(0.02)
    return out


def create_bench_sitting(port: int) -> None:
    """Sapha serves only channels of sittings in its archive, so the bench's sitting is created first."""
    import urllib.request

    body = json.dumps({"id": CHANNEL.removeprefix("sitting:"), "title": "bench", "chamber": "senate"}).encode()
    headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}", "Content-Type": "application/json"}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/sittings", body, headers)
    urllib.request.urlopen(request, timeout=30).close()


async def run_one(kind: str, n: int, args: argparse.Namespace, prefix: str, workdir: Path) -> Result:
    import numpy as np

    from broadcast.broker_redis import RedisBroker

    res = Result(server=kind, clients=n, offered_per_s=n * args.rate)
    port = free_port()
    server = ServerProc(kind, port, args, prefix, workdir)
    procs: list[Any] = []
    pipes: list[Any] = []
    broker = RedisBroker(args.redis_url, prefix=prefix, history_size=1000)
    try:
        server.wait_ready()
        if kind == "sapha":
            await asyncio.to_thread(create_bench_sitting, port)
        await asyncio.sleep(1.0)
        res.rss_idle_kib = rss_kib(server.pid)

        nprocs = max(1, min(args.procs, n // 250 or 1))
        shares = [n // nprocs + (1 if i < n % nprocs else 0) for i in range(nprocs)]
        ctx = mp.get_context("spawn")
        connect_timeout = args.connect_timeout
        # Every client process gives up by itself after this long, whatever happens to the bench.
        max_life = connect_timeout + args.duration + args.grace + 300
        for share in shares:
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=client_process,
                args=(
                    child,
                    port,
                    share,
                    args.connect_concurrency,
                    connect_timeout,
                    args.deflate,
                    max_life,
                    os.getpid(),
                ),
                daemon=True,
            )
            p.start()
            child.close()
            procs.append(p)
            pipes.append(parent)
        ready = await _await_msg(pipes, procs, "ready", connect_timeout + 60)
        res.connected = sum(m[1] for m in ready)
        res.connect_s = max(m[3] for m in ready)
        for m in ready:
            for k, v in m[2].items():
                res.connect_errors[k] = res.connect_errors.get(k, 0) + v
        await asyncio.sleep(1.0)
        res.rss_connected_kib = rss_kib(server.pid)

        res.load_before = loadavg()
        cpu0 = cpu_seconds(server.pid)
        ccpu0 = sum(cpu_seconds(p.pid) for p in procs)
        count = int(round(args.rate * args.duration))
        data_text = CAPTION
        t0 = time.time()
        first_sent = None
        for k in range(count):
            # Fixed schedule: a slow publish is caught up, not allowed to stretch the run.
            delay = t0 + k / args.rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = time.time()
            first_sent = first_sent or sent
            await broker.publish(CHANNEL, EVENT_TYPE, {"text": data_text, "k": k, "sent": sent})
            res.published += 1
        last_publish = time.time()
        for pipe in pipes:
            pipe.send(("finish", res.published, last_publish + args.grace))
        done = await _await_msg(pipes, procs, "done", args.grace + 60)
        t_done = time.time()
        cpu1 = cpu_seconds(server.pid)
        ccpu1 = sum(cpu_seconds(p.pid) for p in procs)
        res.rss_end_kib = rss_kib(server.pid)
        res.load_after = loadavg()
        for pipe in pipes:
            pipe.send(("exit",))

        stats = [m[1] for m in done]
        lat = np.concatenate([np.frombuffer(s["latencies"], dtype=np.float64) for s in stats])
        # Per connected client: failed connections show in the "connected" column, not as lost events.
        res.expected = res.published * res.connected
        res.delivered = int(sum(s["events"] for s in stats))
        last_recv = max((s["last"] for s in stats if s["last"]), default=t_done)
        # At least the publishing span itself, so a server that keeps up shows exactly the offered rate.
        window = max(res.published / args.rate, last_recv - (first_sent or t0))
        res.window_s = round(window, 3)
        res.delivered_per_s = res.delivered / window
        p50, p99, lb = percentiles(lat, res.expected, args.grace)
        res.p50_ms, res.p99_ms, res.p99_lower_bound = p50, p99, lb
        res.max_ms = float(lat.max() * 1000) if len(lat) else None
        ks = np.concatenate([np.frombuffer(s["event_k"], dtype=np.int32) for s in stats])
        if len(ks) == len(lat) and len(lat):
            order = np.argsort(ks, kind="stable")
            ks_sorted, lat_sorted = ks[order], lat[order] * 1000.0
            uniq, starts = np.unique(ks_sorted, return_index=True)
            for k, chunk in zip(uniq, np.split(lat_sorted, starts[1:]), strict=True):
                res.per_event.append(
                    [int(k), round(float(np.median(chunk)), 2), round(float(chunk.max()), 2), len(chunk)]
                )
        cpu_window = max(1e-6, t_done - (first_sent or t0))
        res.server_cpu_pct = 100.0 * (cpu1 - cpu0) / cpu_window
        res.client_cpu_pct = 100.0 * (ccpu1 - ccpu0) / cpu_window
        if res.delivered:
            res.server_cpu_us_per_msg = 1e6 * (cpu1 - cpu0) / res.delivered
        if res.connected:
            res.kib_per_conn = (res.rss_connected_kib - res.rss_idle_kib) / res.connected
            res.kib_per_conn_end = (res.rss_end_kib - res.rss_idle_kib) / res.connected
        res.closed_by_server = sum(s["closed_by_server"] for s in stats)
        res.deflate_negotiated = sum(s["deflate"] for s in stats)
        for s in stats:
            for code, k in s["close_codes"].items():
                res.close_codes[code] = res.close_codes.get(code, 0) + k
        res.lost_connections = sum(s["lost"] for s in stats)
        res.pings_answered = sum(s["pings"] for s in stats)
        res.min_per_client = min(s["min_count"] for s in stats)
        res.max_per_client = max(s["max_count"] for s in stats)
        if res.connect_errors or res.closed_by_server or res.lost_connections:
            print(f"# {kind} server log tail:\n{server.tail()}", file=sys.stderr, flush=True)
        notes = []
        if args.profile_server and kind == "sapha":
            notes.append("server under cProfile")
        if args.sapha_launcher and kind == "sapha":
            notes.append(f"launcher {Path(args.sapha_launcher).name}")
        if args.deflate:
            notes.append(f"permessage-deflate offered, negotiated on {res.deflate_negotiated}")
        res.note = "; ".join(notes)
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.terminate()
                p.join(10)
        server.stop()
        with contextlib.suppress(Exception):
            await broker.close()
    return res


def fmt(v: float | None, spec: str = ".1f") -> str:
    return "—" if v is None else format(v, spec)


def table(results: list[Result], grace: float) -> str:
    rows = [
        "| server | clients (connected) | p50 ms | p99 ms | max ms | delivered msg/s (offered) "
        "| delivered / expected | server CPU % | CPU µs / msg | RSS KiB / conn (end) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        p99 = f"> {grace * 1000:.0f}" if r.p99_lower_bound else fmt(r.p99_ms)
        ratio = r.delivered / r.expected if r.expected else 0.0
        label = f"{r.server} #{r.round}" if any(x.round > 1 for x in results) else r.server
        label = f"{label} ({r.note})" if r.note else label
        rows.append(
            f"| {label} | {r.clients} ({r.connected}) | {fmt(r.p50_ms)} | {p99} | {fmt(r.max_ms, '.0f')} "
            f"| {r.delivered_per_s:,.0f} ({r.offered_per_s:,.0f}) | {ratio:.4f} | {r.server_cpu_pct:.0f} "
            f"| {fmt(r.server_cpu_us_per_msg)} | {fmt(r.kib_per_conn)} ({fmt(r.kib_per_conn_end)}) |"
        )
    return "\n".join(rows)


def summary(results: list[Result]) -> str:
    """Per N over the rounds: median (min–max) CPU µs per message of each server and of Sapha / reference within a
    round, and median RSS KiB per connection."""

    def spread(values: list[float], spec: str) -> str:
        if not values:
            return "—"
        values = sorted(values)
        return f"{format(median(values), spec)} ({format(values[0], spec)}–{format(values[-1], spec)})"

    rows = [
        "| clients | rounds | sapha CPU µs / msg | reference CPU µs / msg | sapha / reference | sapha RSS KiB / conn "
        "| reference RSS KiB / conn |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sorted({r.clients for r in results}):
        by: dict[tuple[str, int], Result] = {(r.server, r.round): r for r in results if r.clients == n}
        rounds = sorted({rnd for _, rnd in by})
        cpu = {k: [by[k, rnd].server_cpu_us_per_msg or 0.0 for rnd in rounds if (k, rnd) in by] for k in SERVERS}
        rss = {k: [by[k, rnd].kib_per_conn or 0.0 for rnd in rounds if (k, rnd) in by] for k in SERVERS}
        ratios = [
            (by["sapha", rnd].server_cpu_us_per_msg or 0.0) / (by["reference", rnd].server_cpu_us_per_msg or 1.0)
            for rnd in rounds
            if ("sapha", rnd) in by and ("reference", rnd) in by
        ]
        rows.append(
            f"| {n} | {len(rounds)} | {spread(cpu['sapha'], '.1f')} | {spread(cpu['reference'], '.1f')} "
            f"| {spread(ratios, '.2f')} | {spread(rss['sapha'], '.1f')} | {spread(rss['reference'], '.1f')} |"
        )
    return "\n".join(rows)


def versions() -> dict[str, str]:
    import redis
    import starlette
    import uvicorn
    import websockets

    out = {
        "python": platform.python_version(),
        "uvicorn": uvicorn.__version__,
        "starlette": starlette.__version__,
        "websockets": websockets.__version__,
        "redis-py": redis.__version__,
    }
    with contextlib.suppress(ImportError):
        import uvloop

        out["uvloop"] = uvloop.__version__
    return out


async def run_all(args: argparse.Namespace) -> list[Result]:
    import redis.asyncio as aioredis

    prefix = f"bench-fanout-{os.getpid()}-{secrets.token_hex(3)}"
    results: list[Result] = []
    r = aioredis.Redis.from_url(args.redis_url)
    try:
        info = await r.info("server")
        print(f"# redis {info.get('redis_version')} at {args.redis_url}, prefix {prefix}", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
            # Rounds interleave the servers, so each round compares them under the same load from the rest of
            # the box.
            runs = [(rnd, n, kind) for rnd in range(1, args.repeat + 1) for n in args.clients for kind in args.servers]
            for rnd, n, kind in runs:
                print(f"# {kind} N={n} round {rnd}: running (load {loadavg()})", file=sys.stderr, flush=True)
                res = await run_one(kind, n, args, prefix, Path(tmp))
                res.round = rnd
                results.append(res)
                brief = {k: v for k, v in asdict(res).items() if (k != "connect_errors" or v) and k != "per_event"}
                print(f"# {json.dumps(brief)}", file=sys.stderr, flush=True)
                worst = sorted(res.per_event, key=lambda e: -e[2])[:8]
                print(f"# worst events [k, p50 ms, max ms, receivers]: {worst}", file=sys.stderr, flush=True)
                await asyncio.sleep(args.pause)
    finally:
        keys = [f"{prefix}:meta:{CHANNEL}", f"{prefix}:stream:{CHANNEL}"]
        with contextlib.suppress(Exception):
            await r.delete(*keys)
        await r.aclose()
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="WebSocket fan-out benchmark (Sapha vs a bare websockets server)")
    p.add_argument("--clients", default="1000,5000,10000", help="comma-separated client counts (default %(default)s)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of publishing per run (default 20)")
    p.add_argument("--rate", type=float, default=10.0, help="events per second published (default 10)")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to wait for stragglers after the last publish")
    p.add_argument("--servers", default="sapha,reference", help="which servers, in order (default %(default)s)")
    p.add_argument("--procs", type=int, default=2, help="client processes (default 2)")
    p.add_argument("--connect-concurrency", type=int, default=100, help="handshakes in flight per client process")
    p.add_argument("--connect-timeout", type=float, default=180.0, help="bound on each connect phase (s)")
    p.add_argument("--pause", type=float, default=2.0, help="seconds between runs")
    p.add_argument("--repeat", type=int, default=1, help="rounds of every (clients, server) run, interleaved")
    p.add_argument("--quick", action="store_true", help="smoke run: 200 clients, 5 s")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--profile-server", metavar="DIR", help="run server.py under cProfile, one .prof per run in DIR")
    p.add_argument(
        "--deflate",
        action="store_true",
        help="clients offer permessage-deflate as browsers do (and the reference server accepts it)",
    )
    p.add_argument(
        "--sapha-launcher",
        metavar="PY",
        help="for A/B experiments: a script run instead of server.py (same arguments and environment)",
    )
    p.add_argument("--serve-reference", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--pubsub-channel", help=argparse.SUPPRESS)
    p.add_argument("--ping-interval", type=float, default=20.0, help=argparse.SUPPRESS)
    p.add_argument("--max-life", type=float, default=3600.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.clients, args.duration, args.grace = "200", 5.0, 5.0
    args.clients = [int(x) for x in str(args.clients).split(",") if x.strip()]
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in args.servers:
        if s not in SERVERS:
            p.error(f"unknown server {s!r}: sapha or reference")
    check_loopback(args.redis_url)
    if args.profile_server:
        Path(args.profile_server).mkdir(parents=True, exist_ok=True)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    raise_nofile()
    if args.serve_reference:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(
                reference_server(
                    args.serve_reference,
                    args.redis_url,
                    args.pubsub_channel,
                    args.ping_interval,
                    args.deflate,
                    args.max_life,
                )
            )
        return
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load0 = loadavg()
    with asyncio.Runner(loop_factory=new_loop) as runner:
        results = runner.run(run_all(args))
    print(
        f"\nfan-out: {args.rate:g} events/s for {args.duration:g} s per run, grace {args.grace:g} s, "
        f"{args.procs} client process(es); started {started}; load {load0} -> {loadavg()}"
    )
    print(f"versions: {json.dumps(versions())}\n")
    print(table(results, args.grace))
    if args.repeat > 1:
        print(f"\nover {args.repeat} rounds: median (min–max)\n")
        print(summary(results))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"started": started, "args": vars(args), "results": [asdict(r) for r in results]}, indent=2)
        )


if __name__ == "__main__":
    main()
