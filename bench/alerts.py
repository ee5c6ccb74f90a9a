"""Alert delivery benchmark: vote results to 10,000 follows of one bill, webhooks and Web Push on loopback, while
live captions fan out from the same server.

    .venv/bin/python bench/alerts.py [--webhooks 1000] [--push 9000] [--sender inprocess|process] [--sender-procs 1]
                                     [--votes 1] [--gap 3] [--viewers 20] [--baseline 8] [--after 3]
                                     [--receiver-nice 10] [--dir /tmp/sapha-bench-alerts] [--json FILE]
                                     [--profile FILE] [--py-spy DIR] [--no-push-pool]

Setup (not timed): the real app (``server.create_app``: archive, hub, alerts store and ``DeliveryWorkers`` in one
process, as deployed) under uvicorn on 127.0.0.1, with ``--webhooks`` webhook follows (one endpoint each, URLs
``/hook/<i>``) and ``--push`` push follows (one subscription each, its own P-256 keys, endpoints ``/push/<i>``) of
bill 42 in its alerts store; a receiver subprocess at niceness ``--receiver-nice`` standing for other people's
servers: a bare asyncio protocol (uvloop) with ``httptools`` that answers a fixed 204 to webhooks and 201 to pushes
and records the arrival time of each request (it neither verifies nor decrypts, so its CPU is not the sender's);
a live sitting with ``--viewers`` WebSocket viewers in another subprocess (so their CPU is not the server's), which
note when each caption frame arrives.

Captions run the whole time through the server's recorder (archive + hub, the live path): a partial every 1/3 s and a
final every second (each third tick). Phases: ``--baseline`` seconds of captions alone; then ``--votes`` vote
results (``vote:1``, ``vote:2`` …, each to the same follows), each published through ``Alerting.publish`` once the
previous one's rows are all finished and ``--gap`` seconds have passed (a newer alert on the bill would otherwise
replace an older push not yet sent); each *burst* lasts from its publish until every row is finished; then
``--after`` seconds of captions alone again. ``--sender inprocess`` (the default) sends from the serving process's
event loop; ``--sender process`` sets ``ALERT_SENDER_NICE`` (``--nice``, 10) and ``ALERT_SENDER_PROCS``
(``--sender-procs``), so publishing records the event and the niced child processes expand and send it
(``alerts.delivery.SenderProcess``); their CPU is counted apart.

Reported per vote: publish (the call) and the time until every row was written; time from publish to the first and
the last arrival; p50/p95 of publish → arrival over all deliveries; deliveries/s; the server process's CPU seconds
during the burst (user+sys, captions included: their rate in the baseline is given so it can be taken off), the
sender children's, the receiver's and other processes' (the machine is shared); rows delivered; the captions'
fan-out p50/p95 during that burst. Over the whole run: caption fan-out latency (recorder called → viewer received,
finals and partials together, one sample per viewer) p50/p95/p99/max in the baseline, the bursts and outside them
(between and after); ``uptime`` before and after. The server's CPU is also split into its event loop's thread and
the rest (the alerts store's SQLite thread), and its kernel (system) share. In-process, the baseline starts once
the Web Push pool holds a record for every subscription, so that its filling is not taken off the bursts.

Where the time goes: ``--profile FILE`` (cProfile of the loop thread, CPU time; heavy) or ``--py-spy DIR`` (py-spy
samples of every thread of the server and the sender children during each burst, collapsed stacks); ``--no-push-pool``
(in-process) encrypts every push message in full, to measure what the prepared records save.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import psutil  # noqa: E402

SITTING = "bench-alerts"
TOKEN = "bench-token"
HOOK_REPLY = b"HTTP/1.1 204 No Content\r\n\r\n"
PUSH_REPLY = b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n"


def serve(nice: int) -> None:
    """The receiver subprocess: prints its port, answers every POST at once with a fixed reply and records its
    arrival; ``GET /stats`` answers the arrivals since the last ``GET`` and the process's CPU seconds."""
    import socket

    import httptools

    os.nice(nice)
    arrivals: list[tuple[float, str]] = []

    class Receiver(asyncio.Protocol):
        def __init__(self) -> None:
            self.transport: asyncio.Transport | None = None
            self.parser = httptools.HttpRequestParser(self)
            self.url = b""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                assert self.transport is not None
                self.transport.close()

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_message_complete(self) -> None:
            url, self.url = self.url, b""
            assert self.transport is not None
            if self.parser.get_method() == b"GET":
                usage = resource.getrusage(resource.RUSAGE_SELF)
                body = json.dumps({"arrivals": arrivals, "cpu_s": usage.ru_utime + usage.ru_stime}).encode()
                arrivals.clear()
                head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
                self.transport.write(head + body)
                return
            arrivals.append((time.time(), url.decode("latin-1")))
            self.transport.write(PUSH_REPLY if url.startswith(b"/push/") else HOOK_REPLY)
            if not self.parser.should_keep_alive():
                self.transport.close()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Receiver, sock=sock, backlog=4096)
        await server.serve_forever()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def view(ws_url: str, viewers: int) -> None:
    """The viewers subprocess: ``viewers`` WebSockets on the sitting; prints ``ready`` once all are subscribed, and
    when a line arrives on stdin prints every caption frame's (type, text, arrival time) as JSON and exits."""
    import websockets

    got: list[tuple[str, str, float]] = []

    async def one(ready: list[int], all_ready: asyncio.Event) -> None:
        async with websockets.connect(ws_url, max_size=2**22) as ws:
            await ws.send(json.dumps({"op": "subscribe", "channel": f"sitting:{SITTING}"}))
            async for raw in ws:
                at = time.time()
                frame = json.loads(raw)
                if frame.get("op") == "subscribed":
                    ready[0] += 1
                    if ready[0] == viewers:
                        all_ready.set()
                elif frame.get("type") in ("caption.final", "caption.partial"):
                    got.append((frame["type"], frame["data"]["text"], at))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        threading.Thread(
            target=lambda: (sys.stdin.readline(), loop.call_soon_threadsafe(stop.set)), daemon=True
        ).start()
        all_ready = asyncio.Event()
        ready = [0]
        tasks = [asyncio.create_task(one(ready, all_ready)) for _ in range(viewers)]
        await asyncio.wait_for(all_ready.wait(), 60)
        print("ready", flush=True)
        await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        print(json.dumps(got), flush=True)

    asyncio.run(main())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sys_cpu_s() -> float:
    """This process's system (kernel) CPU seconds: on loopback that includes the TCP work of both ends of a send."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def busy_cpu_s() -> float:
    """The whole machine's CPU seconds in user, niced user and system time (all cores)."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system


def children_cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += sum(psutil.Process(pid).cpu_times()[:2])
    return total


def start_py_spy(folder: str, vote: int, pids: list[int]) -> list[subprocess.Popen[bytes]]:
    """Sample each of ``pids`` (the server, the sender children) during one burst with py-spy (the venv's), every
    thread, without pausing them; ``stop_py_spy`` ends it and the collapsed stacks are written to ``folder``."""
    spy = Path(sys.executable).with_name("py-spy")
    Path(folder).mkdir(parents=True, exist_ok=True)
    procs = []
    for pid in pids:
        out = Path(folder) / f"vote{vote}-{'server' if pid == os.getpid() else pid}.txt"
        cmd = [str(spy), "record", "--pid", str(pid), "--threads", "--nonblocking", "--rate", "100", "--format", "raw"]
        procs.append(subprocess.Popen([*cmd, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(0.3)  # attached before the publish
    return procs


def stop_py_spy(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(2)  # SIGINT: py-spy writes what it sampled and exits
    for p in procs:
        p.wait()


class Captions:
    """A partial every 1/3 s and a final every third tick through the recorder; when each was handed to it."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.sent: dict[tuple[str, str], float] = {}

    async def produce(self) -> None:
        i = tick = 0
        start = time.perf_counter()
        while True:
            tick += 1
            if tick % 3:
                text = f"กำลังพูด {i} ตอน {tick % 3}"
                self.sent[("caption.partial", text)] = time.time()
                await self.recorder.caption_partial(SITTING, f"seg{i}", text, i * 1.0, i * 1.0 + 0.5)
            else:
                text = f"คำบรรยายที่ {i} จบแล้ว"
                self.sent[("caption.final", text)] = time.time()
                await self.recorder.caption_final(SITTING, f"seg{i}", text, i * 1.0, i * 1.0 + 1.0)
                i += 1
            await asyncio.sleep(max(0.0, start + tick / 3 - time.perf_counter()))


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "max": max(values, default=0),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import uvicorn
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from alerts.delivery import SenderProcess
    from alerts.follows import FollowRequest, PushChannel, Target, TargetKind, WebhookChannel
    from alerts.matcher import BillInfo, VoteResult
    from alerts.messages import BillRef
    from alerts.push import PushSubscription
    from server import Settings, create_app, uvicorn_config

    work = Path(args.dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    receiver = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--receiver-nice", str(args.receiver_nice)],
        stdout=subprocess.PIPE,
        text=True,
    )
    viewers: subprocess.Popen[str] | None = None
    server: Any = None
    serving: asyncio.Task[None] | None = None
    try:
        assert receiver.stdout is not None
        base = f"http://127.0.0.1:{receiver.stdout.readline().strip()}"
        settings = Settings(
            host="127.0.0.1",
            port=0,
            public_url="https://app.senate.example",
            database_url=f"sqlite:///{work / 'sapha.db'}",
            operator_token=TOKEN,
            log_level="warning",
            hls_dir=str(work / "hls"),
            documents_data="",
            max_connections_per_ip=0,
            alerts_db=str(work / "alerts.sqlite3"),
            vapid_key_file=str(work / "vapid_private.pem"),
            webhook_allow_private=True,
            alert_sender_nice=args.nice if args.sender == "process" else 0,
            alert_sender_procs=args.sender_procs,
            alert_sender_idle=args.idle and args.sender == "process",
        )
        app = create_app(settings)
        server = uvicorn.Server(uvicorn_config(app, settings))
        server.capture_signals = contextlib.nullcontext
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        services = app.state.services
        alerting = services.alerting
        assert alerting is not None
        store = services.alert_store
        # ALERT_SENDER_NICE (--sender process): the server's workers run in niced children sharing the alerts database.
        sender_proc = alerting.workers if isinstance(alerting.workers, SenderProcess) else None
        assert (sender_proc is not None) == (args.sender == "process")
        assert sender_proc is None or len(sender_proc.pids) == args.sender_procs
        if args.no_push_pool and sender_proc is None:  # in-process only: every push message encrypted in full
            pool = getattr(alerting.workers, "push_pool", None)
            if pool is not None:
                await pool.stop()
                alerting.workers.push_pool = None  # type: ignore[union-attr]

        t0 = time.perf_counter()
        bill = Target(TargetKind.BILL, "42")
        for i in range(args.webhooks):
            await store.create_follow(FollowRequest(bill, WebhookChannel(f"{base}/hook/{i}")), now=time.time())
        for i in range(args.push):
            point = (
                ec.generate_private_key(ec.SECP256R1())
                .public_key()
                .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
            )
            sub = PushSubscription(f"{base}/push/{i}", b64url(point), b64url(os.urandom(16)))
            await store.create_follow(FollowRequest(bill, PushChannel(sub)), now=time.time())
        print(f"setup: {args.webhooks + args.push} follows in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        # In-process, wait until the Web Push pool holds a record for every subscription, so that its filling
        # (~0.13 ms of CPU per record) is not in the baseline, which is taken off each burst's CPU. The children's
        # pools (--sender process) are out of reach; they fill meanwhile.
        pool = getattr(alerting.workers, "push_pool", None)
        filled_by = time.time() + 60
        while pool is not None and len(pool) < args.push and time.time() < filled_by:
            await asyncio.sleep(0.2)
        if pool is not None:
            print(f"push pool: {pool.stats()} after {time.perf_counter() - t0:.1f} s", file=sys.stderr)

        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            r = await client.post("/api/sittings", json={"id": SITTING, "title": "การประชุมทดสอบ", "chamber": "senate"})
            assert r.status_code == 201, r.text
            r = await client.post(f"/api/sittings/{SITTING}/status", json={"status": "live"})
            assert r.status_code == 200, r.text
        viewers = subprocess.Popen(
            [sys.executable, __file__, "--view", url.replace("http", "ws") + "/ws", "--viewers", str(args.viewers)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert viewers.stdout is not None and viewers.stdin is not None
        line = await asyncio.to_thread(viewers.stdout.readline)
        assert line.strip() == "ready", line

        total = args.webhooks + args.push
        rx = httpx.AsyncClient(base_url=base)
        await rx.get("/stats")  # forget the setup's (none) and open the connection
        captions = Captions(services.recorder)
        producer = asyncio.create_task(captions.produce())
        baseline_start, cpu_base0 = time.time(), cpu_s()
        await asyncio.sleep(args.baseline)
        cpu_base = (cpu_s() - cpu_base0) / (time.time() - baseline_start)

        prof = None
        if args.profile:
            import cProfile

            # CPU time of the loop's thread (a wall-clock profile on this shared box mostly shows waiting for a core),
            # enabled during each burst only (not the gaps between votes).
            prof = cProfile.Profile(time.thread_time)
        votes: list[dict[str, Any]] = []
        bursts: list[tuple[float, float]] = []
        rx_cpu = (await rx.get("/stats")).json()["cpu_s"]
        for k in range(1, args.votes + 1):
            if k > 1:
                await asyncio.sleep(args.gap)
            event = VoteResult(
                f"vote:{k}",
                time.time(),
                BillInfo(BillRef("42", "ร่าง พ.ร.บ. ภาษีสรรพสามิต")),
                "รับหลักการ",
                150,
                20,
                5,
                25,
                True,
                "s7",
                3723.0,
            )
            pids = sender_proc.pids if sender_proc is not None else []
            child0 = children_cpu_s(pids)
            viewers0 = children_cpu_s([viewers.pid])
            busy0 = busy_cpu_s()
            # In-process only (a child's pool is out of reach): how many push messages found a prepared record.
            pool = getattr(alerting.workers, "push_pool", None)
            pool0 = pool.stats() if pool is not None else None
            spies = start_py_spy(args.py_spy, k, [os.getpid(), *pids]) if args.py_spy else []
            cpu0, loop0, sys0 = cpu_s(), time.thread_time(), sys_cpu_s()
            if prof is not None:
                prof.enable()
            published = time.time()
            await alerting.publish(event)
            returned = time.time()
            deadline = time.time() + 120  # a failed attempt is retried after ~5 s: wait for it, not for ever
            expanded_at = returned
            # Polled with cheap queries (a primary key; the outbox's partial index of pending rows): this loop runs
            # in the serving process.
            while time.time() < deadline:
                if sender_proc is not None:
                    (row,) = await store.events(id=event.id)
                    if row["state"] == "pending":
                        await asyncio.sleep(0.05)
                        continue
                    expanded_at = row["finished_at"]
                if await store.next_due() is None:
                    break
                await asyncio.sleep(0.05)
            finished = time.time()
            if prof is not None:
                prof.disable()
            cpu1, loop1, sys1 = cpu_s(), time.thread_time(), sys_cpu_s()
            stop_py_spy(spies)
            busy = busy_cpu_s() - busy0
            child_cpu = children_cpu_s(pids) - child0
            viewers_cpu = children_cpu_s([viewers.pid]) - viewers0
            bursts.append((published, finished))
            stats = (await rx.get("/stats")).json()
            arrivals = sorted(t for t, _ in stats["arrivals"])
            lat = [t - published for t in arrivals] or [float("nan")]
            votes.append(
                {
                    "vote": k,
                    "publish_ms": round((returned - published) * 1000, 1),
                    "rows_written_s": round(expanded_at - published, 3),
                    "first_s": round(lat[0], 3),
                    "p50_s": round(pct(lat, 50), 3),
                    "p95_s": round(pct(lat, 95), 3),
                    "last_s": round(lat[-1], 3),
                    "all_finished_s": round(finished - published, 3),
                    "deliveries_per_s": round(len(arrivals) / (finished - published), 1),
                    "arrivals": len(arrivals),
                    "delivered_rows": await store.count(event_id=event.id, state="delivered"),
                    "server_cpu_s": round(cpu1 - cpu0, 2),
                    # Of which the event loop's thread (the rest: the alerts store's SQLite thread, the archive's).
                    "server_loop_cpu_s": round(loop1 - loop0, 2),
                    "server_sys_cpu_s": round(sys1 - sys0, 2),
                    "sender_procs_cpu_s": round(child_cpu, 2),
                    "sender_cpu_ms_per_delivery": round(
                        (cpu1 - cpu0 + child_cpu - cpu_base * (finished - published)) / max(1, len(arrivals)) * 1000, 3
                    ),
                    "receiver_cpu_s": round(stats["cpu_s"] - rx_cpu, 2),
                    # The machine is shared: what other processes (another helper's tests, the soak) took meanwhile.
                    "push_prepared": (
                        f"{pool.stats()['taken'] - pool0['taken']}/"
                        f"{pool.stats()['taken'] - pool0['taken'] + pool.stats()['missed'] - pool0['missed']}"
                        if pool is not None and pool0 is not None
                        else "-"
                    ),
                    "others_cpu_s": round(
                        busy - (cpu1 - cpu0) - child_cpu - viewers_cpu - (stats["cpu_s"] - rx_cpu), 2
                    ),
                }
            )
            rx_cpu = stats["cpu_s"]
            print(f"vote {k}: {votes[-1]}", file=sys.stderr)
        if prof is not None:
            prof.dump_stats(args.profile)
        await asyncio.sleep(args.after)
        after_end = time.time()
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
        await asyncio.sleep(0.5)  # the last frames in flight
        viewers.stdin.write("stop\n")
        viewers.stdin.flush()
        frames = json.loads(await asyncio.to_thread(viewers.stdout.readline))
        await rx.aclose()
        phases: dict[str, list[float]] = {"baseline": [], "burst": [], "after": []}
        per_burst: list[list[float]] = [[] for _ in bursts]
        for kind, text, at in frames:
            sent = captions.sent.get((kind, text))
            if sent is None or sent > after_end:
                continue
            ms = (at - sent) * 1000
            inside = [i for i, (a, b) in enumerate(bursts) if a <= sent <= b]
            if sent < bursts[0][0]:
                phases["baseline"].append(ms)
            elif inside:
                phases["burst"].append(ms)
                per_burst[inside[0]].append(ms)
            else:
                phases["after"].append(ms)
        for v, samples in zip(votes, per_burst, strict=True):
            v["captions_p50_ms"] = round(pct(samples, 50), 1)
            v["captions_p95_ms"] = round(pct(samples, 95), 1)
        return {
            "follows": total,
            "sender": args.sender,
            "sender_procs": args.sender_procs if args.sender == "process" else 0,
            "receiver_nice": args.receiver_nice,
            "captions_cpu_per_s": round(cpu_base, 3),
            "pending_rows": await store.count(state="pending"),
            "votes": votes,
            "median_first_s": statistics.median(v["first_s"] for v in votes),
            "median_p95_s": statistics.median(v["p95_s"] for v in votes),
            "median_last_s": statistics.median(v["last_s"] for v in votes),
            "captions_ms": {ph: summary(v) for ph, v in phases.items()},
        }
    finally:
        if viewers is not None and viewers.poll() is None:
            viewers.kill()
            viewers.wait()
        if server is not None and serving is not None:
            server.should_exit = True
            await serving
        receiver.terminate()
        receiver.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--view", default="", help=argparse.SUPPRESS)
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--push", type=int, default=9000)
    parser.add_argument(
        "--sender",
        choices=("inprocess", "process"),
        default="inprocess",
        help="expand and send on the serving process's loop, or in niced SenderProcess children (ALERT_SENDER_NICE)",
    )
    parser.add_argument("--nice", type=int, default=10, help="the sender processes' niceness (--sender process)")
    parser.add_argument(
        "--idle", action="store_true", help="the sender processes in the SCHED_IDLE class (ALERT_SENDER_IDLE)"
    )
    parser.add_argument(
        "--sender-procs", type=int, default=1, help="how many sender children (ALERT_SENDER_PROCS; --sender process)"
    )
    parser.add_argument("--votes", type=int, default=1, help="vote results published one after another")
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between one vote's last row and the next vote")
    parser.add_argument(
        "--receiver-nice",
        type=int,
        default=10,
        help="the receiver's niceness: receivers are other machines in production, so their CPU should not be taken "
        "from the server's captions here",
    )
    parser.add_argument("--viewers", type=int, default=20, help="WebSocket viewers of the live sitting")
    parser.add_argument("--baseline", type=float, default=8.0, help="seconds of captions alone before the first vote")
    parser.add_argument("--after", type=float, default=3.0, help="seconds of captions alone after the last burst")
    parser.add_argument("--dir", default="/tmp/sapha-bench-alerts")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--no-push-pool", action="store_true", help="(inprocess) encrypt every push message in full")
    parser.add_argument(
        "--py-spy", default="", help="sample each burst of the server and the sender children with py-spy into DIR"
    )
    parser.add_argument(
        "--profile",
        default="",
        help="write a cProfile (CPU time) of the serving loop thread during the bursts (publish to last row) to FILE",
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.receiver_nice)
        return
    if args.view:
        view(args.view, args.viewers)
        return
    before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print("uptime:", before)
    result = asyncio.run(run(args))
    after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print("uptime:", after)
    result["uptime_before"], result["uptime_after"] = before, after
    print(
        f"sender {result['sender']} procs {result['sender_procs']}, receiver nice {result['receiver_nice']}, "
        f"captions CPU {result['captions_cpu_per_s']} s/s, rows left pending {result['pending_rows']}"
    )
    votes = result["votes"]
    print("| " + " | ".join(votes[0]) + " |")
    print("|" + "---|" * len(votes[0]))
    for v in votes:
        print("| " + " | ".join(str(x) for x in v.values()) + " |")
    print(
        f"median over votes: first {result['median_first_s']:.3f} s, p95 {result['median_p95_s']:.3f} s, "
        f"last {result['median_last_s']:.3f} s"
    )
    print("captions (recorder → viewer), ms:")
    for phase, c in result["captions_ms"].items():
        print(
            f"  {phase:8} n={c['n']:4}  p50 {c['p50']:.1f}  p95 {c['p95']:.1f}  p99 {c['p99']:.1f}  max {c['max']:.1f}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
