"""Alert delivery benchmark: one vote result to 10,000 follows of one bill, webhooks and Web Push on loopback, while
live captions fan out from the same server.

    .venv/bin/python bench/alerts.py [--webhooks 1000] [--push 9000] [--sender inprocess|process] [--viewers 20]
                                     [--baseline 8] [--after 3] [--dir /tmp/sapha-bench-alerts] [--json FILE]

Setup (not timed): the real app (``server.create_app``: archive, hub, alerts store and ``DeliveryWorkers`` in one
process, as deployed) under uvicorn on 127.0.0.1, with ``--webhooks`` webhook follows (one endpoint each, URLs
``/hook/<i>``) and ``--push`` push follows (one subscription each, its own P-256 keys, endpoints ``/push/<i>``) of
bill 42 in its alerts store; a receiver subprocess (uvicorn, answers 204 to webhooks and 201 to pushes, records the
arrival time of each request; it neither verifies nor decrypts, so its CPU is not the sender's); a live sitting with
``--viewers`` WebSocket viewers in another subprocess (so their CPU is not the server's), which note when each
caption frame arrives.

Captions run the whole time through the server's recorder (archive + hub, the live path): a partial every 1/3 s and a
final every second (each third tick). Phases: ``--baseline`` seconds of captions alone; then the vote result is
published through ``Alerting.publish`` (match + enqueue) and the server's own workers send until every row is
finished (the *burst*); then ``--after`` seconds of captions alone again. ``--sender inprocess`` (the default) sends
from the serving process's event loop; ``--sender process`` sets ``ALERT_SENDER_NICE`` (``--nice``, 10), so the
server's workers run in a niced child process (``alerts.delivery.SenderProcess``) and its CPU is counted apart.

Reported: enqueue time; time from publish to the first and the last arrival; p50/p95 of publish → arrival over all
deliveries; deliveries/s; the server process's CPU seconds during the burst (user+sys, captions included: their rate
in the baseline is given so it can be taken off) and the receiver's; rows delivered; caption fan-out latency
(recorder called → viewer received, finals and partials together, one sample per viewer) p50/p95/p99/max in the
baseline, the burst and after it;
``uptime`` before and after: the machine is shared.
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


def serve(nice: int) -> None:
    """The receiver subprocess: prints its port, records arrival times, ``GET /stats`` answers them."""
    import socket

    os.nice(nice)
    import uvicorn

    arrivals: list[tuple[float, str]] = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:
            msg = await receive()
            more = msg.get("more_body", False)
        path = scope["path"]
        if scope["method"] == "GET":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            body = json.dumps({"arrivals": arrivals, "cpu_s": usage.ru_utime + usage.ru_stime}).encode()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})
            return
        arrivals.append((time.time(), path))
        status = 201 if path.startswith("/push/") else 204
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", backlog=4096)
    uvicorn.Server(config).run(sockets=[sock])


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
        # ALERT_SENDER_NICE (--sender process): the server's workers run in a niced child sharing the alerts database.
        sender_proc = alerting.workers if isinstance(alerting.workers, SenderProcess) else None
        assert (sender_proc is not None) == (args.sender == "process")

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

        captions = Captions(services.recorder)
        producer = asyncio.create_task(captions.produce())
        baseline_start, cpu_base0 = time.time(), cpu_s()
        await asyncio.sleep(args.baseline)
        cpu_base = (cpu_s() - cpu_base0) / (time.time() - baseline_start)

        event = VoteResult(
            "vote:1",
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
        total = args.webhooks + args.push
        prof = None
        if args.profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        child = psutil.Process(sender_proc.pid) if sender_proc is not None and sender_proc.pid else None
        child0 = sum(child.cpu_times()[:2]) if child is not None else 0.0
        cpu0 = cpu_s()
        published = time.time()
        added = await alerting.publish(event)
        enqueued = time.time()
        deadline = time.time() + 120  # a failed attempt is retried after ~5 s: wait for it, not for ever
        while await store.count(state="pending") and time.time() < deadline:
            await asyncio.sleep(0.05)
        finished = time.time()
        cpu1 = cpu_s()
        child_cpu = sum(child.cpu_times()[:2]) - child0 if child is not None else 0.0
        if prof is not None:
            prof.disable()
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
        pending = await store.deliveries(state="pending")
        rows = await store.deliveries(state="delivered")
        async with httpx.AsyncClient() as client:
            stats = (await client.get(base + "/stats")).json()
        arrivals = sorted(t for t, _ in stats["arrivals"])
        lat = [t - published for t in arrivals]
        phases: dict[str, list[float]] = {"baseline": [], "burst": [], "after": []}
        for kind, text, at in frames:
            sent = captions.sent.get((kind, text))
            if sent is None:
                continue
            phase = "baseline" if sent < published else "burst" if sent <= finished else "after"
            if sent <= after_end:
                phases[phase].append((at - sent) * 1000)
        return {
            "follows": total,
            "enqueued": added,
            "enqueue_s": round(enqueued - published, 3),
            "first_s": round(lat[0], 3),
            "last_s": round(lat[-1], 3),
            "p50_s": round(pct(lat, 50), 3),
            "p95_s": round(pct(lat, 95), 3),
            "all_finished_s": round(finished - published, 3),
            "deliveries_per_s": round(len(arrivals) / (finished - published), 1),
            "sender": args.sender,
            "server_cpu_s": round(cpu1 - cpu0, 2),
            "sender_proc_cpu_s": round(child_cpu, 2),
            "captions_cpu_per_s": round(cpu_base, 3),
            "sender_cpu_ms_per_delivery": round(
                (cpu1 - cpu0 + child_cpu - cpu_base * (finished - published)) / max(1, len(arrivals)) * 1000, 3
            ),
            "receiver_cpu_s": round(stats["cpu_s"], 2),
            "receiver_nice": args.receiver_nice,
            "arrivals": len(arrivals),
            "delivered_rows": len(rows),
            "pending_rows": len(pending),
            "captions_ms": {
                ph: {"n": len(v), "p50": pct(v, 50), "p95": pct(v, 95), "p99": pct(v, 99), "max": max(v, default=0)}
                for ph, v in phases.items()
            },
            "statistics_mean_ms": {ph: statistics.fmean(v) if v else None for ph, v in phases.items()},
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
        help="send from the serving process's own workers, or from a niced SenderProcess (ALERT_WORKERS=0 there)",
    )
    parser.add_argument("--nice", type=int, default=10, help="the sender process's niceness (--sender process)")
    parser.add_argument(
        "--receiver-nice",
        type=int,
        default=0,
        help="the receiver's niceness: receivers are other machines in production, so their CPU can be put last here",
    )
    parser.add_argument("--viewers", type=int, default=20, help="WebSocket viewers of the live sitting")
    parser.add_argument("--baseline", type=float, default=8.0, help="seconds of captions alone before the vote")
    parser.add_argument("--after", type=float, default=3.0, help="seconds of captions alone after the burst")
    parser.add_argument("--dir", default="/tmp/sapha-bench-alerts")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--profile", default="", help="write a cProfile of the burst to this file")
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
    captions = result.pop("captions_ms")
    flat = {k: v for k, v in result.items() if not isinstance(v, dict) and not k.startswith("uptime")}
    print("| " + " | ".join(flat) + " |")
    print("|" + "---|" * len(flat))
    print("| " + " | ".join(str(v) for v in flat.values()) + " |")
    print("captions (recorder → viewer), ms:")
    for phase, c in captions.items():
        print(
            f"  {phase:8} n={c['n']:4}  p50 {c['p50']:.1f}  p95 {c['p95']:.1f}  p99 {c['p99']:.1f}  max {c['max']:.1f}"
        )
    result["captions_ms"] = captions
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
