"""WebSocket load: many viewers on ``server.py --workers N`` behind Redis, with PostgreSQL as the archive.

What it runs (everything private to the run, removed at the end):

1. a private ``redis-server`` on a free loopback port (a temporary directory, no persistence needed here);
2. a fresh PostgreSQL database on the server at ``--postgres`` (default ``postgresql://postgres@127.0.0.1:5432/
   postgres``; the bench creates ``sapha_bench_load_<hex>`` and drops it afterwards);
3. ``server.py --workers N`` (default 2) with ``MAX_CONNECTIONS_PER_IP=0``; the operator creates one live sitting;
4. ``--procs`` client processes (default 8), each opening its share of ``--clients`` WebSocket connections from its
   own source address (127.0.0.2, 127.0.0.3, … so no address needs more than its share of ephemeral ports), each
   connection subscribing to the sitting's channel; the viewers are ``bench/load_clients.py``'s, ``--client lean``
   (default; asyncio), ``epoll`` (a plain ``select.epoll`` loop, the cheapest), ``websockets`` (the library's
   client), or several kinds given to the processes in turn (``lean,epoll``; ``both`` is ``lean,websockets``), so
   one run shows each kind's cost;
5. ``--rounds`` publishing windows (default 3) of ``--duration`` s at ``--rate`` events/s (default 3) of ``speaker``
   events whose ``role`` carries the publication number and the wall-clock time at sending. ``--via broker``
   (default) publishes them from the bench with the service's ``RedisBroker.publish`` (the Lua script every
   process uses); ``--via api`` sends each as an operator ``POST /api/sittings/{id}/speaker`` (archive write in
   PostgreSQL, outbox relay, then Redis), so its latency includes the operator path.

Per round it reports: events published (and the POST statuses), delivered / expected over every connection,
end-to-end latency (sent -> frame handled by the client process) p50/p95/p99/max, the fan-out part alone (the
envelope's ``ts``, stamped when the broker publishes, -> client; ms resolution), per-connection gaps and
duplicates (checked on ``seq``), connections the server closed, the server's CPU (parent + workers, % of one core)
and RSS, and the 1-min load average; the CPU split of the whole box (each worker, the clients per kind, Redis,
PostgreSQL, this process, softirqs, the rest) and µs per delivered frame of the workers and of each client kind;
and ``--probe-rate`` operator POSTs/s (default 1) to a sitting nobody watches, timed, with ``--probe-baseline`` s of
the same before the first round (viewers connected, no events) as the reference. Undelivered events count as later
than ``--grace`` in the percentiles.

    .venv/bin/python bench/load.py                           # quick: 2,000 clients, 3 rounds of 20 s
    .venv/bin/python bench/load.py --clients 20000 --procs 8 --json /tmp/load.json

Loopback only. What the lean client implements of RFC 6455, and why it is a fair stand-in: ``load_clients.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_clients import BATCH_S, KINDS, client_process, raise_nofile  # noqa: E402  (bench/ on the path, as for faults.py)

SITTING = "bench-load"
CHANNEL = f"sitting:{SITTING}"
PROBE = "bench-load-probe"  # a sitting nobody watches: the operator POSTs that time the operator path
TOKEN = "bench-load-operator-token"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
# Thai speaker names, as the operator console sends them.
NAMES = ["นายมงคล สุระสัจจะ", "นางสาวอรุณี ชำนาญยา", "นายเสรี สุวรรณภานนท์", "พลเอกเลิศรัตน์ รัตนวานิช"]


# -- processes shared with bench/faults.py -------------------------------------------------------------------------


def die_with_parent() -> None:
    """In a child before exec: a raised fd limit, and SIGTERM should the bench die without cleaning up."""
    raise_nofile()
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.3):
        return True
    return False


def uptime() -> str:
    """``uptime``'s line, recorded with every figure: the box is shared."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class PrivateRedis:
    """A redis-server of this run alone on a free port; with ``aof`` it fsyncs every write, so a restart keeps
    the channels' history and epochs."""

    def __init__(self, workdir: Path, aof: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("no redis-server binary (make system-deps installs it)")
        self.binary = binary
        self.workdir = workdir
        self.aof = aof
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
             "--dir", str(self.workdir), "--maxclients", "10000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while not port_answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not come up")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@contextlib.contextmanager
def fresh_database(admin_url: str, tag: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for this run, dropped (its sessions ended) afterwards."""
    import psycopg
    from psycopg import sql

    name = f"sapha_bench_{tag}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class Server:
    """``server.py ARGS`` as a subprocess on a free port, its output in ``workdir/<name>.log``."""

    def __init__(self, workdir: Path, args: list[str], env: dict[str, str], name: str = "server") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        base = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        full_env = {
            **base,
            "OPERATOR_TOKEN": TOKEN,
            "LOG_LEVEL": "warning",
            "HOST": "127.0.0.1",
            "MAX_CONNECTIONS_PER_IP": "0",
            "HLS_DIR": str(workdir / "hls"),
            "STAFF_DB": str(workdir / "staff.db"),
            "ALERTS_DB": str(workdir / "alerts.sqlite3"),
            "DOCUMENTS_DATA": "",
            "PYTHONPATH": str(ROOT),
            **env,
        }
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py"), "--port", str(self.port), *args],
            cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
        )  # fmt: skip

    async def ready(self, timeout: float = 300.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {self.tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.url}/healthz", timeout=5)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not ready in {timeout:.0f} s: {self.tail()}")
                await asyncio.sleep(0.2)

    def pids(self) -> list[int]:
        """The parent and its workers."""
        import psutil

        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(self.proc.pid)
            return [parent.pid, *(c.pid for c in parent.children(recursive=True))]
        return []

    def workers(self) -> list[int]:
        return self.pids()[1:]

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of the parent and its live workers."""
        import psutil

        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(psutil.Error):
                t = psutil.Process(pid).cpu_times()
                total += t.user + t.system
        return total

    def rss_kib(self) -> dict[int, int]:
        import psutil

        out = {}
        for pid in self.pids():
            with contextlib.suppress(psutil.Error):
                out[pid] = psutil.Process(pid).memory_info().rss // 1024
        return out

    def tail(self, n: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-n:]
        return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# -- the run --------------------------------------------------------------------------------------------------------


@dataclass
class Round:
    round: int
    clients: int
    connected: int
    published: int = 0  # distinct events on the channel: POSTs answered 2xx and any event a viewer got
    post_statuses: dict[str, int] = field(default_factory=dict)
    post_p95_ms: float | None = None
    expected: int = 0
    delivered: int = 0
    short_connections: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    lower_bound: bool = False
    fanout_p50_ms: float | None = None  # broker publish (envelope ts) -> client; no operator API in it
    fanout_p99_ms: float | None = None
    late_from_earlier: int = 0
    gaps: int = 0
    dups: int = 0
    closed_by_server: int = 0
    lost: int = 0
    server_cpu_pct: float = 0.0
    client_cpu_pct: float = 0.0
    # Where the box's CPU went over the round, % of one core: server parent and each worker, client processes
    # per kind, the private Redis, PostgreSQL, this bench process, and everything else on the box (the soak,
    # other people's work); from /proc/<pid>/stat and /proc/stat.
    cpu: dict[str, Any] = field(default_factory=dict)
    # µs of CPU per delivered frame: the server's workers, and each client kind's processes.
    server_us_per_frame: float | None = None
    client_us_per_frame: dict[str, float] = field(default_factory=dict)
    # Sockets read per epoll wait, for the kinds that count them (epoll): how well one wake-up is shared.
    client_reads_per_poll: dict[str, float] = field(default_factory=dict)
    delivered_by_kind: dict[str, int] = field(default_factory=dict)
    # Operator POSTs to a sitting nobody watches, made during the round on fresh connections (so both workers
    # get some): what an operator waits for while the fan-out runs.
    probe_statuses: dict[str, int] = field(default_factory=dict)
    probe_p50_ms: float | None = None
    probe_p95_ms: float | None = None
    probe_max_ms: float | None = None
    server_rss_mib: float = 0.0
    worker_rss_mib: list[float] = field(default_factory=list)
    load: str = ""
    uptime: str = ""
    worst_events: list[list[float]] = field(default_factory=list)


CLK_TCK = os.sysconf("SC_CLK_TCK")


def pid_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0 once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def box_busy_s() -> tuple[float, float]:
    """CPU seconds the whole box spent busy (all cores; not idle, not waiting for I/O) since boot, and the part of
    it in interrupts and softirqs, which no process is charged for (loopback TCP's receive path runs there)."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(parts[:8]) - parts[3] - parts[4]) / CLK_TCK, (parts[5] + parts[6]) / CLK_TCK


def postgres_pids() -> list[int]:
    import psutil

    out = []
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in ("postgres", "postmaster"):
            out.append(proc.pid)
    return out


class CpuSampler:
    """CPU seconds of every process the bench knows, and of the box, at one moment; ``since`` gives the split."""

    def __init__(self, server: Server, redis_pid: int | None, clients: dict[int, str]) -> None:
        self.server, self.redis_pid, self.clients = server, redis_pid, clients

    def sample(self) -> dict[str, Any]:
        pids = self.server.pids()
        return {
            "t": time.monotonic(),
            "box": box_busy_s(),
            "server_parent": pid_cpu_s(pids[0]) if pids else 0.0,
            "workers": {pid: pid_cpu_s(pid) for pid in pids[1:]},
            "clients": {pid: pid_cpu_s(pid) for pid in self.clients},
            "redis": pid_cpu_s(self.redis_pid) if self.redis_pid else 0.0,
            "postgres": {pid: pid_cpu_s(pid) for pid in postgres_pids()},
            "bench": pid_cpu_s(os.getpid()),
        }

    def since(self, a: dict[str, Any]) -> dict[str, Any]:
        b = self.sample()
        window = b["t"] - a["t"]

        def pct(x: float) -> float:
            return round(x / window * 100, 1)

        workers = [pct(b["workers"][pid] - a["workers"].get(pid, 0.0)) for pid in b["workers"]]
        clients: dict[str, float] = {}
        for pid, kind in self.clients.items():
            clients[kind] = clients.get(kind, 0.0) + b["clients"].get(pid, 0.0) - a["clients"].get(pid, 0.0)
        postgres = sum(v - a["postgres"].get(pid, v) for pid, v in b["postgres"].items())
        parts: dict[str, Any] = {
            "server_parent": pct(b["server_parent"] - a["server_parent"]),
            "workers": workers,
            "clients": {kind: pct(v) for kind, v in clients.items()},
            "redis": pct(b["redis"] - a["redis"]),
            "postgres": pct(postgres),
            "bench": pct(b["bench"] - a["bench"]),
        }
        box = pct(b["box"][0] - a["box"][0])
        parts["softirq"] = pct(b["box"][1] - a["box"][1])
        known = (parts["server_parent"] + sum(workers) + sum(parts["clients"].values()) + parts["redis"]
                 + parts["postgres"] + parts["bench"] + parts["softirq"])  # fmt: skip
        return {**parts, "other": round(box - known, 1), "box": box, "window_s": round(window, 1)}


def quantiles(lat_s: Any, expected: int, grace: float) -> tuple[list[float | None], bool]:
    """p50/p95/p99 in ms over ``expected`` samples, undelivered ones counted as later than the grace window."""
    import numpy as np

    if expected <= 0:
        return [None, None, None], False
    lat = np.sort(lat_s) * 1000.0
    out: list[float | None] = []
    lower = False
    for q in (0.50, 0.95, 0.99):
        rank = max(int(np.ceil(q * expected)) - 1, 0)
        if rank < len(lat):
            out.append(float(lat[rank]))
        else:
            out.append(grace * 1000.0)
            lower = True
    return out, lower


async def publish_round(
    http: Any, broker: Any, rate: float, duration: float, k0: int
) -> tuple[list[int], dict[str, int], list[float]]:
    """``rate`` speaker events/s for ``duration`` s, through the operator API (``broker`` None) or published straight
    into Redis with the service's own ``RedisBroker.publish``; returns the k of each event that was taken."""
    statuses: dict[str, int] = {}
    taken: list[int] = []
    post_ms: list[float] = []

    async def one(k: int) -> None:
        sent = time.time()
        body = {"name": NAMES[k % len(NAMES)], "role": f"bench {k} {sent:.6f}"}
        try:
            if broker is not None:
                await broker.publish(CHANNEL, "speaker", body)
                key = "published"
                taken.append(k)
            else:
                r = await http.post(f"/api/sittings/{SITTING}/speaker", json=body, timeout=60)
                key = str(r.status_code)
                if r.status_code in (200, 201, 202):
                    taken.append(k)
        except Exception as exc:  # noqa: BLE001 - every failure is a row in the report
            key = type(exc).__name__
        post_ms.append((time.time() - sent) * 1000)
        statuses[key] = statuses.get(key, 0) + 1

    total = int(rate * duration)
    start = time.perf_counter()
    tasks = []
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(k0 + i)))
    await asyncio.gather(*tasks)
    return taken, statuses, post_ms


async def probe_round(url: str, rate: float, duration: float) -> tuple[dict[str, int], list[float]]:
    """Operator POSTs (a speaker on the probe sitting) at ``rate``/s for ``duration`` s, each on a new connection
    so the kernel hands them to either worker; returns the statuses and each POST's time to answer (ms)."""
    import httpx

    statuses: dict[str, int] = {}
    took: list[float] = []
    if rate <= 0:
        return statuses, took
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_keepalive_connections=0)

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        try:
            async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as http:
                r = await http.post(
                    f"/api/sittings/{PROBE}/speaker",
                    json={"name": NAMES[i % len(NAMES)], "role": f"probe {i}"},
                    timeout=60,
                )
            key = str(r.status_code)
        except Exception as exc:  # noqa: BLE001 - every failure is a row in the report
            key = type(exc).__name__
        took.append((time.perf_counter() - t0) * 1000)
        statuses[key] = statuses.get(key, 0) + 1

    start = time.perf_counter()
    tasks = []
    for i in range(int(rate * duration)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return statuses, took


async def run(args: argparse.Namespace) -> list[Round]:
    import httpx
    import numpy as np

    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp_name:
        tmp = Path(tmp_name)
        redis = PrivateRedis(tmp)
        redis.start()
        procs: list[Any] = []
        pipes: list[Any] = []
        server: Server | None = None
        try:
            with fresh_database(args.postgres, "load") as db_url:
                server = Server(
                    tmp,
                    ["--workers", str(args.workers)],
                    {"REDIS_URL": redis.url, "DATABASE_URL": db_url, "WS_OUTBOX": "1000"},
                )
                await server.ready()
                headers = {"Authorization": f"Bearer {TOKEN}"}
                broker = None
                if args.via == "broker":
                    from broadcast.broker_redis import RedisBroker

                    # publish() needs no start(): that only opens the subscriber side.
                    broker = RedisBroker(redis.url, prefix="sapha")
                async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
                    r = await http.post("/api/sittings", json={"id": SITTING, "title": "การประชุมวุฒิสภา (load)",
                                                               "chamber": "senate"})  # fmt: skip
                    assert r.status_code == 201, r.text
                    r = await http.post(f"/api/sittings/{SITTING}/status", json={"status": "live"})
                    assert r.status_code == 200, r.text
                    r = await http.post("/api/sittings", json={"id": PROBE, "title": "การประชุมวุฒิสภา (probe)",
                                                               "chamber": "senate"})  # fmt: skip
                    assert r.status_code == 201, r.text
                    await asyncio.sleep(1)
                    rss_idle = sum(server.rss_kib().values())
                    print(f"# server up: workers {server.workers()}, idle RSS {rss_idle / 1024:.0f} MiB; "
                          f"{uptime()}", file=sys.stderr, flush=True)  # fmt: skip

                    ctx = mp.get_context("spawn")
                    share = [args.clients // args.procs + (1 if i < args.clients % args.procs else 0)
                             for i in range(args.procs)]  # fmt: skip
                    kinds = [args.kinds[i % len(args.kinds)] for i in range(args.procs)]
                    t0 = time.monotonic()
                    for i, n in enumerate(share):
                        parent_end, child_end = ctx.Pipe()
                        p = ctx.Process(
                            target=client_process,
                            args=(child_end, kinds[i], CHANNEL, server.port, f"127.0.0.{2 + i}", n,
                                  args.connect_concurrency, args.connect_timeout, args.epoll_wait_ms / 1000),
                            daemon=True,
                        )  # fmt: skip
                        p.start()
                        procs.append(p)
                        pipes.append(parent_end)
                    sampler = CpuSampler(server, redis.proc.pid if redis.proc else None,
                                         {p.pid: kinds[i] for i, p in enumerate(procs)})  # fmt: skip
                    connect_cpu = sampler.sample()
                    connected = 0
                    errors: dict[str, int] = {}
                    for pipe in pipes:
                        while not pipe.poll(1):
                            await asyncio.sleep(0)
                        _, got, errs, _ = pipe.recv()
                        connected += got
                        for key, v in errs.items():
                            errors[key] = errors.get(key, 0) + v
                    connect_s = time.monotonic() - t0
                    connect_split = sampler.since(connect_cpu)
                    await asyncio.sleep(2)
                    rss_conn = sum(server.rss_kib().values())
                    per_conn = (rss_conn - rss_idle) / max(connected, 1)
                    fds = {}
                    import psutil

                    for pid in server.workers():
                        with contextlib.suppress(psutil.Error):
                            fds[pid] = psutil.Process(pid).num_fds()
                    print(f"# {connected}/{args.clients} connected in {connect_s:.1f} s; errors {errors}; "
                          f"RSS {rss_conn / 1024:.0f} MiB ({per_conn:.1f} KiB/conn); worker fds {fds}; "
                          f"CPU % of one core during the connect phase {json.dumps(connect_split)}; "
                          f"{uptime()}", file=sys.stderr, flush=True)  # fmt: skip

                    if args.probe_rate > 0 and args.probe_baseline > 0:
                        # The reference for the operator probe, measured in the same run: every viewer connected,
                        # no event published, so only the fan-out is missing.
                        quiet_statuses, quiet_ms = await probe_round(server.url, args.probe_rate, args.probe_baseline)
                        print(f"# operator probe with no fan-out: p50 {np.percentile(quiet_ms, 50):.0f} ms, "
                              f"p95 {np.percentile(quiet_ms, 95):.0f} ms, max {max(quiet_ms):.0f} ms "
                              f"{quiet_statuses}; load {loadavg()}", file=sys.stderr, flush=True)  # fmt: skip
                    k = 0
                    for rnd in range(1, args.rounds + 1):
                        res = Round(rnd, args.clients, connected, load=loadavg(), uptime=uptime())
                        cpu0, w0 = server.cpu_s(), time.monotonic()
                        split0 = sampler.sample()
                        for pipe in pipes:
                            pipe.send(("begin", k))
                        for pipe in pipes:  # every client process must have reset before the first event
                            while not pipe.poll(0.05):
                                await asyncio.sleep(0)
                            pipe.recv()
                        k0 = k
                        (taken, statuses, post_ms), (probe_statuses, probe_ms) = await asyncio.gather(
                            publish_round(http, broker, args.rate, args.duration, k),
                            probe_round(server.url, args.probe_rate, args.duration),
                        )
                        res.probe_statuses = probe_statuses
                        if probe_ms:
                            res.probe_p50_ms = float(np.percentile(probe_ms, 50))
                            res.probe_p95_ms = float(np.percentile(probe_ms, 95))
                            res.probe_max_ms = float(max(probe_ms))
                        k += int(args.rate * args.duration)
                        res.post_statuses = statuses
                        res.post_p95_ms = float(np.percentile(post_ms, 95)) if post_ms else None
                        deadline = time.time() + args.grace
                        for pipe in pipes:
                            # A POST that timed out here may still have been recorded and published: the
                            # clients wait for every event the operator *sent*, and count what they got.
                            pipe.send(("collect", int(args.rate * args.duration), deadline))
                        stats = []
                        for pipe in pipes:
                            while not pipe.poll(1):
                                await asyncio.sleep(0)
                            stats.append(pipe.recv()[1])
                        window = time.monotonic() - w0
                        res.server_cpu_pct = (server.cpu_s() - cpu0) / window * 100
                        res.client_cpu_pct = sum(s["cpu_s"] for s in stats) / window * 100
                        res.cpu = sampler.since(split0)
                        worker_s = sum(res.cpu["workers"]) / 100 * res.cpu["window_s"]
                        rss = server.rss_kib()
                        res.server_rss_mib = sum(rss.values()) / 1024
                        res.worker_rss_mib = [round(v / 1024, 1) for pid, v in rss.items() if pid != server.proc.pid]
                        lat = np.concatenate([np.frombuffer(s["latency"], dtype="d") for s in stats])
                        ks = np.concatenate([np.frombuffer(s["event_k"], dtype="i") for s in stats])
                        fan = np.concatenate([np.frombuffer(s["fanout"], dtype="d") for s in stats])
                        # Frames of earlier rounds that arrived during this one are counted apart.
                        this = ks >= k0
                        res.late_from_earlier = int((~this).sum())
                        lat, ks, fan = lat[this], ks[this], fan[this]
                        res.published = len(set(taken) | {int(x) for x in np.unique(ks)})
                        res.expected = res.published * connected
                        if len(fan):
                            res.fanout_p50_ms = float(np.percentile(fan, 50) * 1000)
                            res.fanout_p99_ms = float(np.percentile(fan, 99) * 1000)
                        res.delivered = len(lat)
                        if res.delivered:
                            res.server_us_per_frame = round(worker_s / res.delivered * 1e6, 2)
                        for s_ in stats:
                            kind = s_["kind"]
                            got = len(s_["latency"]) // 8
                            res.delivered_by_kind[kind] = res.delivered_by_kind.get(kind, 0) + got
                            res.client_us_per_frame[kind] = res.client_us_per_frame.get(kind, 0.0) + s_["cpu_s"]
                        polls: dict[str, list[int]] = {}
                        for s_ in stats:
                            if "polls" in s_:
                                got_polls = polls.setdefault(s_["kind"], [0, 0])
                                got_polls[0] += s_["polls"]
                                got_polls[1] += s_["reads"]
                        res.client_reads_per_poll = {kind: round(r / max(p_, 1), 1) for kind, (p_, r) in polls.items()}
                        for kind, cpu_s in res.client_us_per_frame.items():
                            n_kind = res.delivered_by_kind[kind]
                            res.client_us_per_frame[kind] = round(cpu_s / n_kind * 1e6, 2) if n_kind else 0.0
                        res.short_connections = sum(s["short"] for s in stats)
                        (res.p50_ms, res.p95_ms, res.p99_ms), res.lower_bound = quantiles(lat, res.expected,
                                                                                          args.grace)  # fmt: skip
                        res.max_ms = float(lat.max() * 1000) if len(lat) else None
                        res.gaps = sum(s["gaps"] for s in stats)
                        res.dups = sum(s["dups"] for s in stats)
                        res.closed_by_server = sum(s["closed_by_server"] for s in stats)
                        res.lost = sum(s["lost"] for s in stats)
                        if len(lat):
                            per_k = [[int(x), float(np.median(lat[ks == x]) * 1000), float(lat[ks == x].max() * 1000)]
                                     for x in np.unique(ks)]  # fmt: skip
                            res.worst_events = sorted(per_k, key=lambda e: -e[2])[:5]
                        res.load += f" -> {loadavg()}"
                        rounds.append(res)
                        brief = {key: v for key, v in asdict(res).items() if key != "worst_events"}
                        print(f"# {json.dumps(brief, ensure_ascii=False)}", file=sys.stderr, flush=True)
                        print(f"# worst events [k, p50 ms, max ms]: {res.worst_events}", file=sys.stderr, flush=True)
                        await asyncio.sleep(args.pause)
                    for pipe in pipes:
                        pipe.send(("stop",))
                    if broker is not None:
                        await broker.close()
                for p in procs:
                    p.join(30)
                log = server.tail(100_000)
                server.stop()
                server = None
                bad = [line for line in log.splitlines() if "Traceback" in line or " ERROR " in line]
                if bad:
                    print(f"# server log has {len(bad)} error lines, first: {bad[:3]}", file=sys.stderr)
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()
                    p.join(10)
            if server is not None:
                print(f"# server log tail:\n{server.tail()}", file=sys.stderr)
                server.stop()
            redis.kill()
    return rounds


def fmt(v: float | None, spec: str = ".0f") -> str:
    return "—" if v is None else format(v, spec)


def table(rounds: list[Round], grace: float) -> str:
    rows = [
        "| round | clients (connected) | events | delivered / expected | p50 ms | p95 ms | p99 ms | max ms "
        "| fan-out p50 / p99 ms | POST p95 ms (statuses) | operator probe p50 / p95 / max ms | gaps / dups | closed "
        "| server CPU % (workers) | server µs/frame | server RSS MiB (workers) | client CPU % | client µs/frame "
        "| other CPU % | load (1-min) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|---|---|---|---:|---:|---:|---|---:|---|---:|---|",
    ]
    for r in rounds:
        p99 = f"> {grace * 1000:.0f}" if r.lower_bound else fmt(r.p99_ms)
        ratio = r.delivered / r.expected if r.expected else 0.0
        rows.append(
            f"| {r.round} | {r.clients:,} ({r.connected:,}) | {r.published} | {ratio:.4f} | {fmt(r.p50_ms)} "
            f"| {fmt(r.p95_ms)} | {p99} | {fmt(r.max_ms)} | {fmt(r.fanout_p50_ms)} / {fmt(r.fanout_p99_ms)} "
            f"| {fmt(r.post_p95_ms)} ({', '.join(f'{k}: {v}' for k, v in r.post_statuses.items())}) "
            f"| {fmt(r.probe_p50_ms)} / {fmt(r.probe_p95_ms)} / {fmt(r.probe_max_ms)} "
            f"| {r.gaps} / {r.dups} | {r.closed_by_server + r.lost} "
            f"| {r.server_cpu_pct:.0f} ({' + '.join(f'{w:.0f}' for w in r.cpu.get('workers', []))}) "
            f"| {fmt(r.server_us_per_frame, '.1f')} "
            f"| {r.server_rss_mib:.0f} ({', '.join(f'{w:.0f}' for w in r.worker_rss_mib)}) "
            f"| {r.client_cpu_pct:.0f} | {', '.join(f'{k} {v:.1f}' for k, v in r.client_us_per_frame.items())} "
            f"| {fmt(r.cpu.get('other'))} | {r.load} |"
        )
    return "\n".join(rows)


def summary(rounds: list[Round]) -> str:
    def spread(values: list[float]) -> str:
        values = sorted(v for v in values if v is not None)
        return f"{median(values):.0f} ({values[0]:.0f}–{values[-1]:.0f})" if values else "—"

    return (
        f"over {len(rounds)} rounds, median (min–max): p50 {spread([r.p50_ms for r in rounds])} ms, "  # type: ignore[misc]
        f"p95 {spread([r.p95_ms for r in rounds])} ms, p99 {spread([r.p99_ms for r in rounds])} ms, "  # type: ignore[misc]
        f"server CPU {spread([r.server_cpu_pct for r in rounds])} %, "
        f"operator probe p95 {spread([r.probe_p95_ms for r in rounds])} ms "  # type: ignore[misc]
        f"(max {spread([r.probe_max_ms for r in rounds])} ms); "  # type: ignore[misc]
        f"all delivered in {sum(1 for r in rounds if r.delivered == r.expected)} of {len(rounds)}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="WebSocket viewers on server.py --workers N (Redis, PostgreSQL)")
    p.add_argument("--clients", type=int, default=2000, help="viewers (default %(default)s; 20000: the target)")
    p.add_argument("--procs", type=int, default=8, help="client processes, one source address each (default 8)")
    p.add_argument("--workers", type=int, default=2, help="server processes (default 2)")
    p.add_argument("--rate", type=float, default=3.0, help="events/s through the operator API (default 3)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of publishing per round (default 20)")
    p.add_argument("--rounds", type=int, default=3, help="publishing rounds on the same connections (default 3)")
    p.add_argument("--grace", type=float, default=15.0, help="seconds to wait for stragglers after a round")
    p.add_argument("--pause", type=float, default=3.0, help="seconds between rounds")
    p.add_argument("--connect-concurrency", type=int, default=100, help="handshakes in flight per client process")
    p.add_argument("--connect-timeout", type=float, default=300.0, help="bound on the connect phase (s)")
    p.add_argument("--postgres", default=os.environ.get("SAPHA_BENCH_POSTGRES", DEFAULT_POSTGRES),
                   help="maintenance URL of a PostgreSQL where the bench may CREATE DATABASE")  # fmt: skip
    p.add_argument("--via", choices=("broker", "api"), default="broker",
                   help="RedisBroker.publish from the bench (default), or operator POSTs")  # fmt: skip
    p.add_argument(
        "--client",
        default="lean",
        help=f"viewer implementation (bench/load_clients.py): one of {', '.join(KINDS)}, or several joined by "
        "commas, given to the processes in turn (lean,epoll: both costs from the same run); both: "
        "lean,websockets (default lean)",
    )
    p.add_argument(
        "--epoll-wait-ms",
        type=float,
        default=BATCH_S * 1000,
        help="epoll viewers: after a poll that found few sockets ready, wait this long so that one wake-up serves "
        "more of them (counted in the latencies; default %(default)g; 0: none)",
    )
    p.add_argument(
        "--probe-rate",
        type=float,
        default=1.0,
        help="operator POSTs/s to an unwatched sitting during each round, timed (default 1; 0: none)",
    )
    p.add_argument(
        "--probe-baseline",
        type=float,
        default=10.0,
        help="seconds of operator probes before the first round, with no events (the reference; default 10)",
    )
    p.add_argument("--json", help="also write the raw results here")
    args = p.parse_args(argv)
    if not 1 <= args.procs <= 250:
        p.error("--procs must be 1..250 (one 127.0.0.x source address each)")
    args.kinds = ["lean", "websockets"] if args.client == "both" else args.client.split(",")
    if not set(args.kinds) <= set(KINDS) or len(args.kinds) > args.procs:
        p.error(f"--client must name {', '.join(KINDS)} or both, at most one kind per process")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    raise_nofile()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    before = uptime()
    rounds = asyncio.run(run(args))
    print(
        f"\nload: {args.clients:,} viewers in {args.procs} client processes on server.py --workers {args.workers} "
        f"(published via {args.via}) "
        f"(Redis, PostgreSQL); {args.rate:g} events/s × {args.duration:g} s per round, grace {args.grace:g} s; "
        f"started {started}\nuptime before: {before}\nuptime after:  {uptime()}\n"
    )
    print(table(rounds, args.grace))
    print(f"\n{summary(rounds)}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"started": started, "args": vars(args), "rounds": [asdict(r) for r in rounds]}, indent=2)
        )


if __name__ == "__main__":
    main()
