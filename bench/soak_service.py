"""Whole-service soak: does ``server.py`` stay flat (memory, CPU, caption lag) over hours of a real Thai feed at 1x?

Starts ``server.py --source <Thai speech> --sitting soak --loop`` as a subprocess on a private port, with its own
SQLite file and HLS folder under a temporary directory (in-process bus), connects ``--viewers`` WebSocket viewers
to ``sitting:soak`` that count events and resume exactly on any drop, and once a minute writes one JSON line:
server RSS and CPU (from /proc), caption lag, RTF and caption latency (from ``/metrics``), events the viewers
received, segments archived and the HLS folder's size. At the end it prints first-10-minutes vs last-10-minutes
medians and a least-squares slope of RSS per hour. Not a test: see docs/benchmarks.md ("Soak").

    .venv/bin/python bench/soak_service.py --minutes 120 --out soak.jsonl

The default source is the bundled demo sitting (``stream/media/demo_th.flac``: three real Thai Common Voice clips,
CC0), looped by the server as if live. CPU and lag are noisy on a shared box; what matters is the trend.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = ROOT / "stream" / "media" / "demo_th.flac"
SITTING = "soak"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_split(pid: int) -> dict[str, float]:
    """Resident MiB by kind of mapping (``/proc/<pid>/smaps``), to tell where a growth of RSS lives: the main
    ``[heap]`` (brk), anonymous maps of 32 MiB or more of address space (glibc's per-thread arenas reserve 64 MiB;
    CTranslate2's big buffers), smaller anonymous maps (pymalloc arenas, mmap'd blocks, thread stacks) and
    file-backed pages (libraries, the model, SQLite's mmap)."""
    split = {"heap_mib": 0.0, "anon_big_mib": 0.0, "anon_small_mib": 0.0, "file_mib": 0.0}
    key, size_kib = "", 0
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            head = line.split(None, 1)[0]
            if "-" in head and not head.endswith(":"):  # a header: "start-end perms offset dev inode [path]"
                fields = line.split()
                start, end = (int(x, 16) for x in fields[0].split("-"))
                size_kib = (end - start) // 1024
                path = fields[5] if len(fields) > 5 else ""
                if path == "[heap]":
                    key = "heap_mib"
                elif path.startswith("/"):
                    key = "file_mib"
                elif path == "":
                    key = "anon_big_mib" if size_kib >= 32 * 1024 else "anon_small_mib"
                else:
                    key = ""  # [stack], [vdso], ...
            elif head == "Rss:" and key:
                split[key] += int(line.split()[1]) / 1024
    return {k: round(v, 1) for k, v in split.items()}


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (its threads included), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name may contain spaces; fields after the closing parenthesis are fixed.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def dir_mib(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:  # HLS segments are deleted as the window slides
                pass
    return total / (1024 * 1024)


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format to ``{"name{labels}": value}``; enough for the handful of series read here."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out


def series(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k.startswith(prefix)}


def latency_window(now: dict[str, float], before: dict[str, float], kind: str) -> tuple[float, float, int]:
    """Mean and approximate p95 (bucket upper bound) of ``caption.<kind>`` latency observed between two scrapes."""
    base = "sapha_caption_latency_seconds"
    label = f'kind="{kind}"'
    count = sum(v for k, v in now.items() if k.startswith(base + "_count") and label in k) - sum(
        v for k, v in before.items() if k.startswith(base + "_count") and label in k
    )
    total = sum(v for k, v in now.items() if k.startswith(base + "_sum") and label in k) - sum(
        v for k, v in before.items() if k.startswith(base + "_sum") and label in k
    )
    if count <= 0:
        return float("nan"), float("nan"), 0
    buckets: list[tuple[float, float]] = []
    for key, value in now.items():
        if key.startswith(base + "_bucket") and label in key:
            le = key.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets.append((bound, value - before.get(key, 0.0)))
    buckets.sort()
    p95 = float("nan")
    for bound, cumulative in buckets:
        if cumulative >= 0.95 * count:
            p95 = bound
            break
    return total / count, p95, int(count)


@dataclass
class Viewers:
    """WebSocket viewers on ``sitting:soak`` that count events and resume from their last ``(epoch, seq)``."""

    url: str
    channel: str
    events: int = 0
    finals: int = 0
    reconnects: int = 0
    resets: int = 0
    gaps: int = 0
    errors: list[str] = field(default_factory=list)

    async def viewer(self, stop: asyncio.Event) -> None:
        epoch: str | None = None
        seq: int | None = None
        first = True
        while not stop.is_set():
            try:
                async with websockets.connect(self.url, max_size=2**22, open_timeout=30) as ws:
                    request: dict[str, Any] = {"op": "subscribe", "channel": self.channel}
                    if seq is not None:
                        request.update(since=seq, epoch=epoch or "")
                    await ws.send(json.dumps(request))
                    if not first:
                        self.reconnects += 1
                    first = False
                    async for raw in ws:
                        frame = json.loads(raw)
                        if frame.get("op") == "subscribed":
                            if not frame["recovered"]:
                                self.resets += 1
                                epoch, seq = frame["epoch"], frame["seq"]
                            elif seq is None:
                                epoch, seq = frame["epoch"], frame["seq"]
                            continue
                        if "op" in frame:
                            if frame["op"] == "error":
                                self.errors.append(str(frame))
                            continue
                        if frame["epoch"] != epoch:
                            # A new epoch from (epoch, 0): the channel's first history; take it from its start.
                            epoch, seq = frame["epoch"], 0
                        if seq is not None and frame["seq"] <= seq:
                            continue  # replay overlap after a reset: already counted
                        if seq is not None and frame["seq"] != seq + 1:
                            self.gaps += 1
                        seq = frame["seq"]
                        self.events += 1
                        if frame["type"] == "caption.final":
                            self.finals += 1
                        if stop.is_set():
                            return
            except (TimeoutError, OSError, websockets.WebSocketException) as exc:
                if stop.is_set():
                    return
                self.errors.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if v == v]
    return statistics.median(clean) if clean else float("nan")


def slope_per_hour(xs_min: Sequence[float], ys: Sequence[float]) -> float:
    pairs = [(x, y) for x, y in zip(xs_min, ys, strict=True) if y == y]
    if len(pairs) < 2:
        return float("nan")
    mx = statistics.fmean(p[0] for p in pairs)
    my = statistics.fmean(p[1] for p in pairs)
    den = sum((x - mx) ** 2 for x, _ in pairs)
    if den == 0:
        return float("nan")
    return sum((x - mx) * (y - my) for x, y in pairs) / den * 60.0


async def wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if (await client.get(f"/api/sittings/{SITTING}")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(1.0)
    raise RuntimeError("server did not become ready")


async def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="sapha-soak-"))
    port = free_port()
    env = dict(os.environ)
    env.update(
        PORT=str(port),
        HOST="127.0.0.1",
        DATABASE_URL=f"sqlite:///{workdir / 'soak.db'}",
        HLS_DIR=str(workdir / "hls"),
        STAFF_DB=str(workdir / "staff.db"),
        ATTACHMENTS_DIR=str(workdir / "attachments"),
        LOG_LEVEL=env.get("LOG_LEVEL", "WARNING"),
    )
    env.update(dict(item.split("=", 1) for item in args.env))
    env.pop("REDIS_URL", None)  # the in-process bus: one process, nothing shared with other runs
    log_path = workdir / "server.log"
    log = open(log_path, "wb")
    cmd = [sys.executable, str(ROOT / "server.py"), "--source", str(args.source), "--sitting", SITTING, "--loop"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    out = open(args.out, "w")
    rows: list[dict[str, Any]] = []
    stop = asyncio.Event()
    viewers = Viewers(url=f"ws://127.0.0.1:{port}/ws", channel=f"sitting:{SITTING}")
    tasks: list[asyncio.Task[None]] = []
    print(f"soak: server pid {proc.pid} on port {port}, workdir {workdir}, source {args.source}", flush=True)
    # Stopped early (SIGTERM), a soak still stops its server (its own session: it would outlive us) and summarises.
    current = asyncio.current_task()
    assert current is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, current.cancel)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            await wait_ready(client, proc, timeout=300)
            tasks = [asyncio.create_task(viewers.viewer(stop)) for _ in range(args.viewers)]
            started = time.monotonic()
            last_cpu, last_t = cpu_seconds(proc.pid), started
            last_metrics = parse_metrics((await client.get("/metrics")).text)
            for minute in range(1, int(args.minutes) + 1):
                await asyncio.sleep(max(0.0, started + minute * args.interval - time.monotonic()))
                if proc.poll() is not None:
                    print(f"soak: server exited with {proc.returncode}; see {log_path}", flush=True)
                    break
                now_t, now_cpu = time.monotonic(), cpu_seconds(proc.pid)
                metrics = parse_metrics((await client.get("/metrics")).text)
                lag = series(metrics, "sapha_lag_seconds")
                rtf = series(metrics, "sapha_realtime_factor")
                final_mean, final_p95, finals = latency_window(metrics, last_metrics, "final")
                partial_mean, _, _ = latency_window(metrics, last_metrics, "partial")
                transcript = await client.get(f"/api/sittings/{SITTING}/transcript", params={"format": "json"})
                segments = len(transcript.json().get("segments", [])) if transcript.status_code == 200 else -1
                row = {
                    "minute": minute,
                    "wall_s": round(now_t - started, 1),
                    "rss_mib": round(rss_mib(proc.pid), 1),
                    **memory_split(proc.pid),
                    "cpu_pct": round(100.0 * (now_cpu - last_cpu) / (now_t - last_t), 1),
                    "lag_s": max(lag.values(), default=float("nan")),
                    "rtf": max(rtf.values(), default=float("nan")),
                    "final_latency_mean_s": round(final_mean, 3),
                    "final_latency_p95_s": final_p95,
                    "partial_latency_mean_s": round(partial_mean, 3),
                    "finals_this_min": finals,
                    "viewer_events": viewers.events,
                    "viewer_finals": viewers.finals,
                    "viewer_reconnects": viewers.reconnects,
                    "viewer_gaps": viewers.gaps,
                    "viewer_resets": viewers.resets,
                    "viewer_errors": len(viewers.errors),
                    "segments": segments,
                    "hls_mib": round(dir_mib(workdir / "hls"), 2),
                }
                rows.append(row)
                out.write(json.dumps(row) + "\n")
                out.flush()
                print(json.dumps(row), flush=True)
                last_cpu, last_t, last_metrics = now_cpu, now_t, metrics
    except asyncio.CancelledError:
        print(f"soak: stopped after {len(rows)} samples", flush=True)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        out.close()
        errors = [ln for ln in log_path.read_text(errors="replace").splitlines() if "Traceback" in ln or "ERROR" in ln]
        if args.keep:
            print(f"soak: kept {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    summarise(rows, viewers, errors)
    return 0


def summarise(rows: list[dict[str, Any]], viewers: Viewers, log_errors: list[str]) -> None:
    if not rows:
        print("soak: no samples")
        return
    head, tail = rows[:10], rows[-10:]
    print(f"\n## soak summary ({len(rows)} samples)\n")
    print("| metric | first 10 min (median) | last 10 min (median) |")
    print("|---|---:|---:|")
    for key in ("rss_mib", "cpu_pct", "lag_s", "rtf", "final_latency_mean_s"):
        print(f"| {key} | {median([r[key] for r in head]):.3f} | {median([r[key] for r in tail]):.3f} |")
    rss_slope = slope_per_hour([r["minute"] for r in rows], [r["rss_mib"] for r in rows])
    # The first minutes include loading the model and warming caches: the slope after them is the leak signal.
    steady = rows[5:] if len(rows) > 15 else rows
    steady_slope = slope_per_hour([r["minute"] for r in steady], [r["rss_mib"] for r in steady])
    # Bounded caches (the bus history: HISTORY_SIZE events, about 40 minutes of this feed) fill in the first half;
    # growth that goes on in the second half is what a long sitting would keep adding.
    late = rows[len(rows) // 2 :] if len(rows) > 30 else steady
    late_slope = slope_per_hour([r["minute"] for r in late], [r["rss_mib"] for r in late])
    print(
        f"\nRSS slope: {rss_slope:+.2f} MiB/h over all samples, {steady_slope:+.2f} MiB/h from minute 6, "
        f"{late_slope:+.2f} MiB/h over the second half (from minute {late[0]['minute']:.0f})"
    )
    last = rows[-1]
    print(
        f"viewers: {last['viewer_events']} events, {last['viewer_finals']} finals, {viewers.reconnects} reconnects, "
        f"{viewers.gaps} gaps, {viewers.resets} resets, {len(viewers.errors)} errors; "
        f"segments archived: {last['segments']}; HLS {last['hls_mib']} MiB; server log ERROR/Traceback lines: "
        f"{len(log_errors)}"
    )
    for line in log_errors[:5]:
        print("  log:", line)
    for line in viewers.errors[:5]:
        print("  viewer:", line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=120, help="how long to run (samples, one per interval)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between samples (default 60)")
    parser.add_argument("--viewers", type=int, default=20, help="WebSocket viewers on sitting:soak")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="Thai speech file the server loops")
    parser.add_argument("--out", type=Path, default=Path("soak.jsonl"), help="one JSON line per sample")
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment for the server (repeatable)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (database, HLS, server log)")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
