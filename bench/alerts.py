"""Alert delivery benchmark: one vote result to 10,000 follows of one bill, webhooks and Web Push on loopback.

    .venv/bin/python bench/alerts.py [--webhooks 1000] [--push 9000] [--concurrency 200] [--dir /tmp/sapha-bench-alerts]

Setup (not timed): a fresh ``alerts.store_sqlite.AlertStore`` with ``--webhooks`` webhook follows (one endpoint
each, URLs ``/hook/<i>``) and ``--push`` push follows (one subscription each, with its own P-256 keys, endpoints
``/push/<i>``) of bill 42; a receiver subprocess (uvicorn, one process, answers 204 to webhooks and 201 to pushes,
records the arrival time of each request; it neither verifies nor decrypts, so its CPU is not the sender's).

Timed: ``Alerting.publish(vote)`` (match + enqueue of every row in one transaction), then one ``DeliveryWorkers``
set sends until every row is finished. Reported: enqueue time; time from publish to the first and the last arrival;
p50/p95 of publish → arrival over all deliveries; deliveries/s; the sender process's CPU seconds (user+sys) and the
receiver's; rows not delivered. ``uptime`` before and after: the machine is shared.

Not measured here: the effect on live caption fan-out running at the same time (issue 9 asks for it).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402


def serve() -> None:
    """The receiver subprocess: prints its port, records arrival times, ``GET /stats`` answers them."""
    import socket

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


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def run(args: argparse.Namespace) -> dict[str, object]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from alerts.delivery import Alerting, DeliveryWorkers
    from alerts.follows import FollowRequest, PushChannel, Target, TargetKind, WebhookChannel
    from alerts.matcher import BillInfo, VoteResult
    from alerts.messages import BillRef
    from alerts.push import PushSubscription, load_or_create_vapid
    from alerts.store_sqlite import AlertStore

    work = Path(args.dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base = f"http://127.0.0.1:{proc.stdout.readline().strip()}"
        store = AlertStore(work / "alerts.sqlite3")
        await store.open()
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
        workers = DeliveryWorkers(
            store,
            base_url="https://app.senate.example",
            vapid=load_or_create_vapid(work / "vapid_private.pem"),
            concurrency=args.concurrency,
            allow_private=True,
        )
        await workers.start()
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
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        published = time.time()
        added = await Alerting(store, workers).publish(event)
        enqueued = time.time()
        while workers.sent < added:
            await asyncio.sleep(0.05)
        deadline = time.time() + 120  # a failed attempt is retried after ~5 s: wait for it, not for ever
        while await store.deliveries(state="pending") and time.time() < deadline:
            await asyncio.sleep(0.2)
        finished = time.time()
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        await workers.stop()
        rows = await store.deliveries(state="delivered")
        await store.close()
        async with httpx.AsyncClient() as client:
            stats = (await client.get(base + "/stats")).json()
        arrivals = sorted(t for t, _ in stats["arrivals"])
        lat = [t - published for t in arrivals]
        q = statistics.quantiles(lat, n=100) if len(lat) > 1 else lat * 99
        return {
            "follows": total,
            "enqueued": added,
            "enqueue_s": round(enqueued - published, 3),
            "first_s": round(lat[0], 3),
            "last_s": round(lat[-1], 3),
            "p50_s": round(q[49], 3),
            "p95_s": round(q[94], 3),
            "all_finished_s": round(finished - published, 3),
            "deliveries_per_s": round(len(arrivals) / (finished - published), 1),
            "sender_cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2),
            "receiver_cpu_s": round(stats["cpu_s"], 2),
            "arrivals": len(arrivals),
            "delivered_rows": len(rows),
        }
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--push", type=int, default=9000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--dir", default="/tmp/sapha-bench-alerts")
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    result = asyncio.run(run(args))
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print("| " + " | ".join(result) + " |")
    print("|" + "---|" * len(result))
    print("| " + " | ".join(str(v) for v in result.values()) + " |")


if __name__ == "__main__":
    main()
