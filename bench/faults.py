"""Faults while a feed is live and viewers are connected: what each viewer saw, what the archive kept, recovery time.

Two set-ups, every part real and private to the run (removed at the end):

* ``redis``, ``postgres``, ``kill`` run on one service: a private ``redis-server`` with an fsync-always AOF, a
  private PostgreSQL 15 cluster (``initdb`` + ``pg_ctl`` from ``--pg-bin`` in a temporary directory on a free port,
  run as the ``postgres`` user when the bench is root; the shared PostgreSQL is not touched), and
  ``server.py --workers 2 --source <Thai demo audio> --sitting faults --loop`` (the real whisper model).
* ``disk`` runs a single ``server.py`` whose SQLite archive lives on a 20 MiB tmpfs mounted for the run (root only).

Viewers (``--viewers``, default 12) are WebSocket clients in the bench process. Every one resumes with its last
``(epoch, seq)`` whenever its connection drops; half of them also drop and resume on purpose every
``--resume-every`` seconds. Each checks every event against the last one (seq + 1 in the same epoch) and every
``subscribed`` for ``recovered: true``.

The faults, one after another with ``--settle`` seconds between them:

* ``redis``: ``kill -9`` of redis-server, ``--down`` seconds without it, restarted on its AOF;
* ``postgres``: ``pg_ctl stop -m immediate`` (a crash), ``--down`` seconds, ``pg_ctl start``;
* ``kill``: ``kill -9`` of the worker that owns the feed (``/healthz``'s ``owner``);
* ``disk``: a file fills the tmpfs under the archive until ``ENOSPC``, held ``--down`` seconds, then deleted.

Recovery time is from the end of the fault (restart, start, kill, delete) to the first ``caption.final`` archived
after it reaching every viewer. At the end the archive is compared with what the viewers got: every segment
archived while they watched must have reached every viewer exactly once (``lost`` otherwise), every final they got
must be in the archive, no segment may be archived twice; the largest gap in media time between consecutive archived
finals around each fault shows captions not made (audio the new owner never heard after a ``kill -9``, for one).

    .venv/bin/python bench/faults.py                          # all four, about 6-8 minutes
    .venv/bin/python bench/faults.py --faults kill --json /tmp/faults.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from load import PrivateRedis, Server, free_port, loadavg, uptime

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "stream" / "media" / "demo_th.flac"
SITTING = "faults"
CHANNEL = f"sitting:{SITTING}"
FAULTS = ("redis", "postgres", "kill", "disk")


def log(msg: str) -> None:
    print(f"# {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


# -- a private PostgreSQL cluster ---------------------------------------------------------------------------------


class PrivatePostgres:
    """A PostgreSQL cluster of this run alone: initdb in ``workdir``, a free port, stopped and removed at the end."""

    def __init__(self, workdir: Path, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.dir = workdir / "pg"
        self.dir.mkdir()
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0  # initdb and postgres refuse to run as root
        if self.as_postgres:
            shutil.chown(self.dir, "postgres")
            os.chmod(workdir, 0o755)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/sapha"

    def _run(self, *cmd: str, timeout: float = 120) -> None:
        argv = [str(self.bin / cmd[0]), *cmd[1:]]
        if self.as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {done.stderr[-1500:]}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--locale", "C.UTF-8", "--no-sync")  # fmt: skip
        self.start()
        import psycopg

        with psycopg.connect(self.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE sapha")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=100"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")

    def crash(self) -> None:
        """Stop without a clean shutdown (``-m immediate``): recovery replays the WAL on the next start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=60)


# -- viewers ------------------------------------------------------------------------------------------------------


@dataclass
class ViewerReport:
    name: str
    resumer: bool
    events: int = 0
    finals: int = 0
    gaps: int = 0
    missing_seqs: int = 0
    dups: int = 0
    not_recovered: int = 0
    new_epochs: int = 0
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)


class Viewer:
    """A WebSocket viewer: resumes from its last (epoch, seq) after every drop and checks what it gets."""

    def __init__(self, ws_url: str, name: str, resume_every: float | None) -> None:
        self.ws_url = ws_url
        self.resume_every = resume_every
        self.report = ViewerReport(name, resume_every is not None)
        self.epoch: str | None = None
        self.seq = 0
        self.final_ids: list[int] = []
        self.final_at: dict[int, float] = {}  # archive_id -> when it arrived
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        import websockets

        rng = random.Random(self.report.name)
        while True:
            try:
                async with websockets.connect(self.ws_url, open_timeout=10, max_size=2**20) as ws:
                    sub: dict[str, Any] = {"op": "subscribe", "channel": CHANNEL}
                    if self.epoch is not None:
                        sub.update(since=self.seq, epoch=self.epoch)
                    await ws.send(json.dumps(sub))
                    until = time.monotonic() + (self.resume_every or 1e9) * rng.uniform(0.7, 1.3)
                    while True:
                        raw = await asyncio.wait_for(ws.recv(), max(0.05, until - time.monotonic()))
                        self._take(json.loads(raw))
            except TimeoutError:
                pass  # a resumer's planned drop
            except (OSError, websockets.ConnectionClosed, websockets.InvalidHandshake) as exc:
                if len(self.report.errors) < 5:
                    self.report.errors.append(f"{type(exc).__name__}: {exc}"[:120])
            self.report.reconnects += 1
            await asyncio.sleep(0.2)

    def _take(self, frame: dict[str, Any]) -> None:
        r = self.report
        if frame.get("op") == "subscribed":
            if self.epoch is not None and not frame.get("recovered"):
                r.not_recovered += 1
            self.subscribed.set()
            return
        if frame.get("op"):
            if frame.get("op") == "error" and len(r.errors) < 5:
                r.errors.append(f"error frame: {frame}"[:120])
            return
        epoch, seq = frame["epoch"], frame["seq"]
        if self.epoch is not None:
            if epoch != self.epoch:
                r.new_epochs += 1
            elif seq <= self.seq:
                r.dups += 1
                return
            elif seq != self.seq + 1:
                r.gaps += 1
                r.missing_seqs += seq - self.seq - 1
        self.epoch, self.seq = epoch, seq
        r.events += 1
        if frame["type"] == "caption.final":
            r.finals += 1
            aid = frame["data"].get("archive_id")
            if aid is not None:
                self.final_ids.append(aid)
                self.final_at.setdefault(aid, time.monotonic())


# -- the run ------------------------------------------------------------------------------------------------------


@dataclass
class FaultReport:
    fault: str
    started: str = ""
    uptime: str = ""
    down_s: float = 0.0
    recover_s: float | None = None  # fault end -> first final archived after it at every viewer
    finals_before: int = 0
    finals_after: int = 0
    finals_during: int = 0  # archived with ids between the last before and the first after the fault's end
    largest_media_gap_s: float | None = None
    normal_media_gap_s: float | None = None
    new_owner: int | None = None
    takeover_s: float | None = None  # kill -9 -> /healthz shows another owner
    old_owner: int | None = None
    viewers: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    load_before: str = ""
    load_after: str = ""


class Service:
    """The server under test, with the HTTP reads the bench needs (any worker answers)."""

    def __init__(self, server: Server) -> None:
        import httpx

        self.server = server
        self.http = httpx.AsyncClient(base_url=server.url, timeout=10)

    async def get(self, path: str) -> Any:
        import httpx

        for _ in range(3):
            try:
                r = await self.http.get(path)
                return r.json() if r.status_code == 200 else None
            except (httpx.TransportError, ValueError):
                await asyncio.sleep(0.2)
        return None

    async def segments(self) -> list[dict[str, Any]] | None:
        body = await self.get(f"/api/sittings/{SITTING}/transcript")
        return body["segments"] if body else None

    async def owner(self) -> int | None:
        body = await self.get("/healthz")
        feed = next((f for f in (body or {}).get("feeds", []) if f.get("sitting_id") == SITTING), None)
        return feed.get("owner") if feed else None

    async def close(self) -> None:
        await self.http.aclose()


async def until(check: Any, what: str, limit: float) -> float:
    """Poll ``check`` until true; returns the seconds it took (the limit only stops a broken run)."""
    t0 = time.monotonic()
    while not await check():
        if time.monotonic() - t0 > limit:
            raise TimeoutError(f"timed out after {limit:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)
    return time.monotonic() - t0


def media_gaps(segments: list[dict[str, Any]], lo_id: int, hi_id: int, typical: bool = False) -> float | None:
    """Largest (or with ``typical`` the median) gap in s between consecutive archived finals with ids in [lo, hi]."""
    window = sorted((s for s in segments if lo_id <= s["id"] <= hi_id), key=lambda s: s["start_ms"])
    gaps = [(b["start_ms"] - a["end_ms"]) / 1000 for a, b in zip(window, window[1:], strict=False)]
    if not gaps:
        return None
    return sorted(gaps)[len(gaps) // 2] if typical else max(gaps)


def summarise(viewers: list[Viewer], before: dict[str, dict[str, int]]) -> dict[str, Any]:
    """What the viewers saw since ``before`` (counters per viewer at the fault's start)."""
    keys = ("events", "finals", "gaps", "missing_seqs", "dups", "not_recovered", "new_epochs", "reconnects")
    out: dict[str, Any] = {}
    for k in keys:
        vals = [getattr(v.report, k) - before[v.report.name][k] for v in viewers]
        out[k] = sum(vals) if k not in ("events", "finals", "reconnects") else f"{min(vals)}–{max(vals)}"
    return out


def snapshot(viewers: list[Viewer]) -> dict[str, dict[str, int]]:
    return {v.report.name: {k: v for k, v in asdict(v.report).items() if isinstance(v, int)} for v in viewers}


async def run_fault(
    fault: str, svc: Service, viewers: list[Viewer], args: argparse.Namespace, parts: dict[str, Any]
) -> FaultReport:
    rep = FaultReport(fault, started=time.strftime("%H:%M:%SZ", time.gmtime()), uptime=uptime(), load_before=loadavg())
    segs = await svc.segments() or []
    last_before = max((s["id"] for s in segs), default=0)
    rep.finals_before = len(segs)
    ids_before = {s["id"] for s in segs}
    first_id = min((s["id"] for s in segs), default=0)
    rep.normal_media_gap_s = media_gaps(segs, first_id, last_before, typical=True)
    counters = snapshot(viewers)
    log(f"{fault}: {len(segs)} finals archived; load {loadavg()}")
    t0 = time.monotonic()
    if fault == "redis":
        parts["redis"].kill()
        await asyncio.sleep(args.down)
        parts["redis"].start()
    elif fault == "postgres":
        await asyncio.to_thread(parts["pg"].crash)
        await asyncio.sleep(args.down)
        await asyncio.to_thread(parts["pg"].start)
    elif fault == "kill":
        rep.old_owner = await svc.owner()
        if rep.old_owner is None:
            rep.notes.append("no owner shown in /healthz; nothing killed")
        else:
            os.kill(rep.old_owner, signal.SIGKILL)
            killed = time.monotonic()

            async def taken_over() -> bool:
                return (await svc.owner()) not in (None, rep.old_owner)

            async def watch_takeover() -> None:
                with contextlib.suppress(TimeoutError):
                    await until(taken_over, "another owner", args.recover_limit)
                    rep.takeover_s = time.monotonic() - killed

            takeover = asyncio.create_task(watch_takeover())
    elif fault == "disk":
        filler = parts["disk"] / "filler"
        with open(filler, "wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        rep.notes.append(f"tmpfs filled: {shutil.disk_usage(parts['disk']).free} bytes free")
        await asyncio.sleep(args.down)
        filler.unlink()
    fault_end = time.monotonic()
    rep.down_s = fault_end - t0
    # After a kill -9 nothing more comes from the dead owner but finals it archived just before: recovery counts
    # from the first final beyond what the archive holds now, i.e. the new owner's.
    recover_after = last_before
    if fault == "kill":
        recover_after = max((s["id"] for s in await svc.segments() or []), default=last_before)

    # Recovered: a final archived after the fault's end has reached every viewer.
    async def recovered() -> bool:
        got = [set(v.final_at) for v in viewers]
        fresh = set.intersection(*got) if got else set()
        return any(aid > recover_after and viewers[0].final_at[aid] >= fault_end for aid in fresh)

    try:
        waited = await until(recovered, f"a new final at every viewer after {fault}", args.recover_limit)
        firsts = []
        for v in viewers:
            ts = [t for aid, t in v.final_at.items() if aid > recover_after and t >= fault_end]
            firsts.append(min(ts))
        rep.recover_s = max(firsts) - fault_end if firsts else waited
    except TimeoutError as exc:
        rep.notes.append(str(exc))
    if fault == "kill" and rep.old_owner is not None:
        await takeover
        rep.new_owner = await svc.owner()
    await asyncio.sleep(args.settle)
    segs = await svc.segments() or []
    rep.finals_after = len(segs)
    after_ids = sorted(s["id"] for s in segs if s["id"] > last_before)
    rep.finals_during = len(after_ids)
    rep.largest_media_gap_s = media_gaps(segs, max(first_id, last_before - 3), after_ids[3] if len(after_ids) > 3
                                         else (after_ids[-1] if after_ids else last_before))  # fmt: skip
    gone = ids_before - {s["id"] for s in segs}
    if gone:
        rep.notes.append(f"{len(gone)} segments archived before the fault are gone after it")
    rep.viewers = summarise(viewers, counters)
    rep.load_after = loadavg()
    log(f"{fault}: {json.dumps(asdict(rep), ensure_ascii=False)}")
    return rep


def final_check(
    segments: list[dict[str, Any]], later: list[dict[str, Any]], viewers: list[Viewer], watched_from: int
) -> dict[str, Any]:
    """Archive against viewers: every final archived since ``watched_from`` (``segments``) reached every viewer
    exactly once, and every final a viewer got is in the archive (``later``, read after the viewers stopped)."""
    archived = {s["id"] for s in segments if s["id"] > watched_from}
    archived_later = {s["id"] for s in later if s["id"] > watched_from}
    keys = [(s["start_ms"], s["text"]) for s in segments]
    out: dict[str, Any] = {
        "archived_while_watched": len(archived),
        "archived_twice": len(keys) - len(set(keys)),
        "lost_per_viewer": {},
        "dup_finals_per_viewer": {},
        "not_in_archive": 0,
    }
    for v in viewers:
        got = [i for i in v.final_ids if i > watched_from]
        out["lost_per_viewer"][v.report.name] = len(archived - set(got))
        out["dup_finals_per_viewer"][v.report.name] = len(got) - len(set(got))
        out["not_in_archive"] += len(set(got) - archived_later)
    out["lost_total"] = sum(out["lost_per_viewer"].values())
    return out


async def scenario(faults: list[str], args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    server: Server | None = None
    svc: Service | None = None
    tasks: list[asyncio.Task[None]] = []
    mounted = False
    try:
        redis = PrivateRedis(tmp, aof=True)
        redis.start()
        parts["redis"] = redis
        env = {"REDIS_URL": redis.url, "REDIS_PREFIX": "faults", "WHISPER_LANGUAGE": "th"}
        if "disk" in faults:
            disk = tmp / "disk"
            disk.mkdir()
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.disk_mib}m", "tmpfs", str(disk)],
                                  capture_output=True, text=True)  # fmt: skip
            if done.returncode != 0:
                return {"skipped": f"cannot mount a tmpfs (needs root): {done.stderr.strip()}"}
            mounted = True
            parts["disk"] = disk
            env["DATABASE_URL"] = f"sqlite:///{disk / 'sapha.db'}"
            server_args = ["--source", str(DEMO), "--sitting", SITTING, "--loop"]
        else:
            pg = PrivatePostgres(tmp, Path(args.pg_bin))
            parts["pg"] = pg
            await asyncio.to_thread(pg.init)
            env["DATABASE_URL"] = pg.url
            server_args = ["--workers", str(args.workers), "--source", str(DEMO), "--sitting", SITTING, "--loop"]
        server = Server(tmp, server_args, env, name="disk" if "disk" in faults else "workers")
        await server.ready(timeout=600)
        svc = Service(server)
        log(f"server up ({server_args}); waiting for the first archived final; {uptime()}")

        async def captioning() -> bool:
            return bool(await svc.segments())

        await until(captioning, "the first archived final", 600)
        segs = await svc.segments() or []
        ws_url = server.url.replace("http://", "ws://") + "/ws"
        viewers = [Viewer(ws_url, f"v{i:02d}", args.resume_every if i % 2 else None) for i in range(args.viewers)]
        watched_from = max(s["id"] for s in segs)
        tasks = [asyncio.create_task(v.run()) for v in viewers]
        for v in viewers:
            await asyncio.wait_for(v.subscribed.wait(), 60)

        async def every_viewer_has_a_final() -> bool:
            return all(v.final_ids for v in viewers)

        await until(every_viewer_has_a_final, "a final at every viewer", 300)
        reports = []
        for fault in faults:
            await asyncio.sleep(args.settle)
            reports.append(await run_fault(fault, svc, viewers, args, parts))
        await asyncio.sleep(args.settle)
        # Archived by now must reach every viewer (a resuming one gets a few seconds); what they got by then must
        # be archived by the second read.
        segments = await svc.segments() or []
        await asyncio.sleep(5)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tasks = []
        later = await svc.segments() or segments
        check = final_check(segments, later, viewers, watched_from)
        log_text = server.tail(2_000_000)
        tracebacks = log_text.count("Traceback")
        if args.logs:
            Path(args.logs).mkdir(parents=True, exist_ok=True)
            shutil.copy(server.log_path, Path(args.logs) / f"{'-'.join(faults)}.log")
        kinds: dict[str, int] = {}
        for line in log_text.splitlines():
            if " WARNING " in line or " ERROR " in line:
                kind = re.sub(r"\d+", "N", line.split(" ", 2)[-1])[:150]
                kinds[kind] = kinds.get(kind, 0) + 1
        first_tb = log_text[log_text.find("Traceback") - 300 :][:2500] if tracebacks else ""
        return {
            "set_up": "disk" if "disk" in faults else f"--workers {args.workers}, Redis (AOF), PostgreSQL 15",
            "faults": [asdict(r) for r in reports],
            "check": check,
            "viewers": [asdict(v.report) for v in viewers],
            "server_log_tracebacks": tracebacks,
            "server_log_errors": [ln for ln in log_text.splitlines() if " ERROR " in ln][:5],
            "server_log_kinds": kinds,
            "first_traceback": first_tb,
        }
    finally:
        for t in tasks:
            t.cancel()
        if svc is not None:
            await svc.close()
        if server is not None:
            server.stop()
        if "redis" in parts:
            parts["redis"].kill()
        if "pg" in parts:
            await asyncio.to_thread(parts["pg"].stop)
        if mounted:
            subprocess.run(["umount", "-l", str(tmp / "disk")], check=False)


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    service_faults = [f for f in args.faults if f != "disk"]
    groups = ([service_faults] if service_faults else []) + ([["disk"]] if "disk" in args.faults else [])
    for group in groups:
        with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
            log(f"set-up for {group}: {uptime()}")
            results.append({"group": group, **await scenario(group, args, Path(tmp))})
    return results


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| fault | down s | recovered in s | finals before → after (during) | largest caption gap s (median before) "
        "| viewers: gaps / dups / recovered:false / new epoch | reconnects per viewer | load (1-min) | notes |",
        "|---|---:|---:|---|---:|---|---|---|---|",
    ]
    for res in results:
        for f in res.get("faults", []):
            v = f["viewers"]
            gap = "—" if f["largest_media_gap_s"] is None else f"{f['largest_media_gap_s']:.1f}"
            usual = "—" if f["normal_media_gap_s"] is None else f"{f['normal_media_gap_s']:.1f}"
            rec = "—" if f["recover_s"] is None else f"{f['recover_s']:.1f}"
            notes = "; ".join(f["notes"])
            if f["fault"] == "kill":
                took = "—" if f["takeover_s"] is None else f"{f['takeover_s']:.1f} s"
                notes = f"owner {f['old_owner']} → {f['new_owner']}, taken over in {took}" + (
                    f"; {notes}" if notes else ""
                )
            rows.append(
                f"| {f['fault']} | {f['down_s']:.1f} | {rec} | {f['finals_before']} → {f['finals_after']} "
                f"({f['finals_during']}) | {gap} ({usual}) | {v['gaps']} / {v['dups']} / {v['not_recovered']} / "
                f"{v['new_epochs']} | {v['reconnects']} | {f['load_before'].split()[0]} → "
                f"{f['load_after'].split()[0]} | {notes} |"
            )
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="faults while a feed is live: Redis, PostgreSQL, kill -9, disk full")
    p.add_argument("--faults", default=",".join(FAULTS), help="which, in order (default %(default)s)")
    p.add_argument("--viewers", type=int, default=12, help="WebSocket viewers (default 12, half resuming on purpose)")
    p.add_argument("--resume-every", type=float, default=4.0, help="seconds between a resumer's planned drops")
    p.add_argument("--workers", type=int, default=2, help="server processes for redis/postgres/kill (default 2)")
    p.add_argument("--down", type=float, default=8.0, help="seconds Redis/PostgreSQL stay down, the disk full")
    p.add_argument("--settle", type=float, default=12.0, help="seconds of normal running around each fault")
    p.add_argument("--recover-limit", type=float, default=180.0, help="give up on a recovery after this (s)")
    p.add_argument("--disk-mib", type=int, default=20, help="size of the tmpfs under the SQLite archive (MiB)")
    p.add_argument("--pg-bin", default="/usr/lib/postgresql/15/bin", help="initdb, pg_ctl and postgres are here")
    p.add_argument("--logs", default="/tmp/bench-faults-logs", help="copy the server logs here ('' keeps none)")
    p.add_argument("--json", help="also write the raw results here")
    args = p.parse_args(argv)
    args.faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    for f in args.faults:
        if f not in FAULTS:
            p.error(f"unknown fault {f!r}: one of {', '.join(FAULTS)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    before = uptime()
    results = asyncio.run(run(args))
    print(f"\nfaults: {', '.join(args.faults)}; {args.viewers} viewers; started {started}\n"
          f"uptime before: {before}\nuptime after:  {uptime()}\n")  # fmt: skip
    print(table(results))
    for res in results:
        if "skipped" in res:
            print(f"\n{res['group']}: skipped: {res['skipped']}")
            continue
        c = res["check"]
        print(f"\n{res['group']} ({res['set_up']}): {c['archived_while_watched']} finals archived while watched; "
              f"lost (archived, not received) {c['lost_total']} over all viewers, finals received twice "
              f"{sum(c['dup_finals_per_viewer'].values())}, received but not archived {c['not_in_archive']}, "
              f"archived twice {c['archived_twice']}; server log: {res['server_log_tracebacks']} tracebacks, "
              f"{len(res['server_log_errors'])} ERROR lines")  # fmt: skip
        for kind, n in sorted(res["server_log_kinds"].items(), key=lambda kv: -kv[1]):
            print(f"  log ×{n}: {kind}")
        if res["first_traceback"]:
            print(f"  first traceback:\n{res['first_traceback']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"started": started, "args": vars(args), "results": results}, indent=2,
                                              ensure_ascii=False))  # fmt: skip


if __name__ == "__main__":
    main()
