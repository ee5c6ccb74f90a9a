"""The public's messages under load while a sitting is live: submissions/s from many addresses, and captions.

    .venv/bin/python bench/messages.py [--rate 200] [--duration 60] [--viewers 50] [--addresses 5000]

One process: the real app (``create_app``) under uvicorn on 127.0.0.1, a live sitting, ``--viewers`` WebSocket
viewers subscribed to it, and a caption final every 0.25 s through the recorder (archive, then publish). The
submissions go through the same app in-process as ASGI calls, each with its own ``client`` address in the scope
(uvicorn does not trust ``X-Forwarded-For`` by default, and the box has one address): most of the
``--addresses`` send a few messages each; one in twenty submissions comes from a small set of abusive addresses,
which the per-address limit stops. Every message has its own text and email, except one in fifty, which repeats an
earlier one (a duplicate, 409).

Two phases with the same viewers and captions: ``--baseline`` seconds with no submissions, then ``--duration``
seconds at ``--rate``. Reported: submissions offered, accepted (202), rate-limited (429), duplicates (409),
other answers; submission latency p50/p95/p99 (ASGI call to its last byte); caption fan-out latency p50/p95/p99
(the recorder called → a viewer's WebSocket received the final) in each phase; CPU load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from desk.sealing import new_setting_entry  # noqa: E402
from server import Settings, create_app, uvicorn_config  # noqa: E402

SITTING = "bench-messages"
TOKEN = "bench-token"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def asgi_post(app: Any, path: str, body: bytes, client: str) -> int:
    """One POST through the app as uvicorn would call it, from ``client``; the answer's status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": (client, 40_000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


class Captions:
    """A final every ``every_s`` through the recorder; viewers note when each arrives."""

    def __init__(self, recorder: Any, every_s: float = 0.25) -> None:
        self.recorder = recorder
        self.every_s = every_s
        self.sent: dict[str, float] = {}
        self.latency: dict[str, list[float]] = {"baseline": [], "load": []}
        self.phase = "baseline"
        self.phase_of: dict[str, str] = {}

    async def produce(self) -> None:
        i = 0
        while True:
            segment = f"b{i}"
            self.sent[segment] = time.perf_counter()
            self.phase_of[segment] = self.phase
            await self.recorder.caption_final(SITTING, segment, f"คำบรรยายที่ {i}", i * 2.0, i * 2.0 + 2)
            i += 1
            await asyncio.sleep(self.every_s)

    async def view(self, ws_url: str, ready: asyncio.Event, count: list[int]) -> None:
        async with websockets.connect(ws_url, max_size=2**20) as ws:
            await ws.send(json.dumps({"op": "subscribe", "channel": f"sitting:{SITTING}"}))
            async for raw in ws:
                frame = json.loads(raw)
                if frame.get("op") == "subscribed":
                    count[0] += 1
                    if count[0] >= count[1]:
                        ready.set()
                    continue
                if frame.get("type") == "caption.final":
                    segment = frame["data"]["segment_id"]
                    at = self.sent.get(segment)
                    if at is not None:
                        self.latency[self.phase_of[segment]].append((time.perf_counter() - at) * 1000)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-messages-"))
    settings = Settings(
        host="127.0.0.1",
        port=0,
        database_url=f"sqlite:///{tmp / 'sapha.db'}",
        operator_token=TOKEN,
        log_level="warning",
        hls_dir=str(tmp / "hls"),
        desk_contact_keys=new_setting_entry(),
        max_connections_per_ip=0,
    )
    app = create_app(settings)
    server = uvicorn.Server(uvicorn_config(app, settings))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        r = await client.post("/api/sittings", json={"id": SITTING, "title": "การประชุมทดสอบ", "chamber": "senate"})
        assert r.status_code == 201, r.text
        assert (await client.post(f"/api/sittings/{SITTING}/status", json={"status": "live"})).status_code == 200

    captions = Captions(app.state.recorder)
    ready = asyncio.Event()
    count = [0, args.viewers]
    viewers = [
        asyncio.create_task(captions.view(url.replace("http", "ws") + "/ws", ready, count)) for _ in range(args.viewers)
    ]
    await asyncio.wait_for(ready.wait(), 30)
    producer = asyncio.create_task(captions.produce())
    await asyncio.sleep(args.baseline)

    captions.phase = "load"
    rng = random.Random(7)
    good = [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(1, args.addresses + 1)]
    abusive = [f"172.16.0.{i}" for i in range(1, 11)]
    statuses: dict[int, int] = {}
    latency: list[float] = []
    sent_texts: list[tuple[str, str]] = []
    total = int(args.rate * args.duration)
    cpu0, wall0, load0 = time.process_time(), time.perf_counter(), os.getloadavg()

    async def one(i: int) -> None:
        ip = rng.choice(abusive) if i % 20 == 0 else rng.choice(good)
        fresh = (f"เรื่องที่ {i}", f"ข้อเสนอแนะหมายเลข {i} {rng.random()}")
        subject, text = rng.choice(sent_texts) if i % 50 == 49 and sent_texts else fresh
        sent_texts.append((subject, text))
        body = {
            "kind": "suggestion",
            "subject": subject,
            "text": text,
            "email": f"sender{i}@example.com",
            "consent": True,
        }
        t0 = time.perf_counter()
        status = await asgi_post(app, "/api/messages", json.dumps(body).encode(), ip)
        latency.append((time.perf_counter() - t0) * 1000)
        statuses[status] = statuses.get(status, 0) + 1

    start = time.perf_counter()
    tasks = []
    for i in range(total):
        delay = start + i / args.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    offered_s = time.perf_counter() - start
    cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    load1 = os.getloadavg()
    await asyncio.sleep(1.0)  # the last captions' stragglers

    producer.cancel()
    for v in viewers:
        v.cancel()
    await asyncio.gather(producer, *viewers, return_exceptions=True)
    server.should_exit = True
    await serving
    return {
        "offered": total,
        "offered_rate": total / offered_s,
        "accepted": statuses.get(202, 0),
        "rate_limited": statuses.get(429, 0),
        "duplicates": statuses.get(409, 0),
        "other": {k: v for k, v in statuses.items() if k not in (202, 409, 429)},
        "submit_ms": {p: pct(latency, p) for p in (50, 95, 99)},
        "submit_mean_ms": statistics.fmean(latency),
        "caption_ms": {ph: {p: pct(v, p) for p in (50, 95, 99)} for ph, v in captions.latency.items()},
        "caption_count": {ph: len(v) for ph, v in captions.latency.items()},
        "process_cpu_cores": cpu,
        "loadavg_before": load0,
        "loadavg_after": load1,
        "cpus": os.cpu_count(),
        "viewers": args.viewers,
        "duration_s": args.duration,
    }


def table(r: dict[str, Any]) -> str:
    c = r["caption_ms"]
    return "\n".join(
        [
            "| offered (rate) | accepted | rate-limited | duplicates | other | submit p50/p95/p99 ms |"
            " captions p50/p95/p99 ms, no load | captions p50/p95/p99 ms, under load | process CPU (cores) |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {r['offered']} ({r['offered_rate']:.0f}/s) | {r['accepted']} | {r['rate_limited']} | {r['duplicates']}"
            f" | {r['other'] or 0} | {r['submit_ms'][50]:.1f} / {r['submit_ms'][95]:.1f} / {r['submit_ms'][99]:.1f}"
            f" | {c['baseline'][50]:.1f} / {c['baseline'][95]:.1f} / {c['baseline'][99]:.1f}"
            f" | {c['load'][50]:.1f} / {c['load'][95]:.1f} / {c['load'][99]:.1f} | {r['process_cpu_cores']:.2f} |",
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=200.0, help="submissions per second")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of submissions")
    p.add_argument("--baseline", type=float, default=10.0, help="seconds of captions alone first")
    p.add_argument("--viewers", type=int, default=50, help="WebSocket viewers of the live sitting")
    p.add_argument("--addresses", type=int, default=5000, help="distinct well-behaved client addresses")
    p.add_argument("--json", type=Path, help="write the raw results here")
    args = p.parse_args()
    result = asyncio.run(run(args))
    print(table(result))
    print(f"load average before {result['loadavg_before']}, after {result['loadavg_after']}; {result['cpus']} CPUs")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
