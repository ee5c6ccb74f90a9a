"""HTTP load on the public read endpoints with locust (headless), against a server with a populated archive.

1. Builds an archive (SQLite by default, or a fresh PostgreSQL database with ``--postgres``): ``--sittings``
   sittings of ``--segments`` Thai caption-sized segments each (40–160 characters cut from the Constitution and
   Acts in ``--text-dir``), with speakers, agenda items, bills and votes; through the store's own methods, so the
   search index is built as in service.
2. Starts ``server.py`` (``--workers N``; more than one brings a private redis-server) on a free port.
3. For each ``--users`` level runs ``locust -f bench/locustfile.py --headless -u N -r N -t DURATION`` (about N
   requests/s: each user makes one request a second) and reads its CSV stats: requests/s achieved, failures, and
   p50/p95/p99 per endpoint; with the server's CPU over the level and the 1-min load average.

    .venv/bin/python bench/load_http.py                            # 10, 25, 50 users × 60 s on SQLite
    .venv/bin/python bench/load_http.py --users 25 --repeat 3      # one level, three times: median and spread
    .venv/bin/python bench/load_http.py --workers 2 --postgres postgresql://postgres@127.0.0.1:5432/postgres

A level "holds" when it has no failures and the achieved rate is within 5 % of the offered one.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from load import PrivateRedis, Server, fresh_database, loadavg, uptime  # noqa: E402  (bench/ is the script's dir)

ROOT = Path(__file__).resolve().parent.parent
SPEAKERS = ["นายมงคล สุระสัจจะ", "นางสาวอรุณี ชำนาญยา", "นายเสรี สุวรรณภานนท์", "พลเอกเลิศรัตน์ รัตนวานิช"]
AGENDA = ["เรื่องที่ประธานแจ้งต่อที่ประชุม", "ร่างพระราชบัญญัติงบประมาณรายจ่ายประจำปี", "ญัตติขอให้วุฒิสภาพิจารณา"]


def corpus(text_dir: Path) -> str:
    files = sorted(text_dir.glob("constitution/*.txt")) + sorted(text_dir.glob("laws/acts/*.txt"))[:40]
    text = " ".join(p.read_text(encoding="utf-8") for p in files)
    text = re.sub(r"\s+", " ", text)
    if len(text) < 10_000:
        raise SystemExit(f"too little text under {text_dir} to make segments from")
    return text


async def populate(database_url: str, text: str, sittings: int, segments: int) -> dict[str, Any]:
    """Fill the archive through the store's methods; returns the ids the locust users pick from."""
    from server import Settings, make_store

    rng = random.Random(11)
    store = make_store(Settings(database_url=database_url))
    await store.open()
    ids: list[str] = []
    bills: list[str] = []
    first_segment = last_segment = 0
    try:
        for b in range(3):
            bill_id = f"bench-bill-{b + 1}"
            await store.upsert_bill(bill_id, f"ร่างพระราชบัญญัติทดสอบ ฉบับที่ {b + 1}", "senate_first_reading")
            bills.append(bill_id)
        for s in range(sittings):
            sid = f"bench-http-{s + 1}"
            await store.create_sitting(sid, f"การประชุมวุฒิสภา ครั้งที่ {s + 1}", "senate")
            await store.set_sitting_status(sid, "live")
            agenda = [await store.add_agenda_item(sid, title, bill_id=bills[i % len(bills)] if i == 1 else None)
                      for i, title in enumerate(AGENDA)]  # fmt: skip
            speakers = [await store.add_speaker(sid, name, "สมาชิกวุฒิสภา") for name in SPEAKERS]
            t = 0
            for i in range(segments):
                length = rng.randint(40, 160)
                at = rng.randrange(0, len(text) - length)
                piece = text[at : at + length].strip() or "ท่านประธานที่เคารพ"
                dur = 1500 + 60 * len(piece)
                seg = await store.add_segment(
                    sid, t, t + dur, piece,
                    agenda_item_id=agenda[i * len(agenda) // segments].id,
                    speaker_id=speakers[(i // 25) % len(speakers)].id,
                    utterance_id=f"u{i // 3}",
                )  # fmt: skip
                first_segment = first_segment or seg.id
                last_segment = seg.id
                t += dur + 300
            await store.add_vote(sid, "เห็นชอบร่างพระราชบัญญัติ", 150, 10, 5, 35, "passed")
            await store.set_sitting_status(sid, "adjourned")
            ids.append(sid)
    finally:
        await store.close()
    return {"sittings": ids, "segments": (first_segment, last_segment), "bills": bills}


def read_stats(prefix: Path) -> list[dict[str, str]]:
    with open(f"{prefix}_stats.csv", newline="") as f:
        return list(csv.DictReader(f))


def run_locust(url: str, users: int, duration: float, ids: dict[str, Any], prefix: Path) -> list[dict[str, str]]:
    env = {
        **os.environ,
        "BENCH_SITTINGS": ",".join(ids["sittings"]),
        "BENCH_SEGMENTS": "{}-{}".format(*ids["segments"]),
        "BENCH_BILLS": ",".join(ids["bills"]),
    }
    cmd = [str(Path(sys.executable).parent / "locust"), "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
           "-u", str(users), "-r", str(users), "-t", f"{int(duration)}s", "--host", url, "--csv", str(prefix),
           "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "10"]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 120)
    if done.returncode not in (0, 1):  # 1: some requests failed, which the table shows
        raise RuntimeError(f"locust failed ({done.returncode}): {done.stderr[-2000:]}")
    return read_stats(prefix)


def ms(row: dict[str, str], col: str) -> str:
    value = row.get(col, "")
    return value if value in ("", "N/A") else f"{float(value):.0f}"


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    levels: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp_name:
        tmp = Path(tmp_name)
        text = corpus(Path(args.text_dir))
        redis = PrivateRedis(tmp) if args.workers > 1 else None
        db_ctx = fresh_database(args.postgres, "http") if args.postgres else None
        db_url = db_ctx.__enter__() if db_ctx else f"sqlite:///{tmp / 'archive.db'}"
        server: Server | None = None
        try:
            t0 = time.monotonic()
            ids = await populate(db_url, text, args.sittings, args.segments)
            print(f"# archive: {len(ids['sittings'])} sittings, segments {ids['segments']}, built in "
                  f"{time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
            env = {"DATABASE_URL": db_url, "DOCUMENTS_DATA": args.documents}
            if redis is not None:
                redis.start()
                env["REDIS_URL"] = redis.url
            server = Server(tmp, ["--workers", str(args.workers)] if args.workers > 1 else [], env)
            await server.ready(timeout=600)
            print(f"# server up at {server.url}; {uptime()}", file=sys.stderr, flush=True)
            plan = [(u, rnd) for rnd in range(1, args.repeat + 1) for u in args.users]
            for users, rnd in plan:
                before, load0 = uptime(), loadavg()
                cpu0, w0 = server.cpu_s(), time.monotonic()
                rows = run_locust(server.url, users, args.duration, ids, tmp / f"u{users}-r{rnd}")
                window = time.monotonic() - w0
                total = next(r for r in rows if r["Name"] == "Aggregated")
                rps = float(total["Requests/s"])
                fails = int(total["Failure Count"])
                level = {
                    "users": users,
                    "round": rnd,
                    "rps": rps,
                    "requests": int(total["Request Count"]),
                    "failures": fails,
                    "holds": fails == 0 and rps >= 0.95 * users,
                    "server_cpu_pct": (server.cpu_s() - cpu0) / window * 100,
                    "load": f"{load0} -> {loadavg()}",
                    "uptime": before,
                    "rows": rows,
                }
                levels.append(level)
                print(f"# {users} users round {rnd}: {rps:.1f} req/s, {fails} failures, p95 {ms(total, '95%')} ms, "
                      f"server CPU {level['server_cpu_pct']:.0f} %, load {level['load']}", file=sys.stderr,
                      flush=True)  # fmt: skip
                time.sleep(args.pause)
            log = server.tail(200_000)
            bad = [line for line in log.splitlines() if "Traceback" in line or " ERROR " in line]
            if bad:
                print(f"# server log: {len(bad)} error lines, first: {bad[:3]}", file=sys.stderr)
        finally:
            if server is not None:
                server.stop()
            if redis is not None:
                redis.kill()
            if db_ctx is not None:
                db_ctx.__exit__(None, None, None)
    return levels


def tables(levels: list[dict[str, Any]]) -> str:
    out = [
        "| users (≈ req/s offered) | round | req/s achieved | requests | failures | holds | p50 ms | p95 ms "
        "| p99 ms | server CPU % | load (1-min) |",
        "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for lv in levels:
        total = next(r for r in lv["rows"] if r["Name"] == "Aggregated")
        out.append(
            f"| {lv['users']} | {lv['round']} | {lv['rps']:.1f} | {lv['requests']} | {lv['failures']} "
            f"| {'yes' if lv['holds'] else 'no'} | {ms(total, '50%')} | {ms(total, '95%')} | {ms(total, '99%')} "
            f"| {lv['server_cpu_pct']:.0f} | {lv['load']} |"
        )
    names = [r["Name"] for r in levels[0]["rows"] if r["Name"] != "Aggregated"] if levels else []
    cols = [f"{lv['users']}u #{lv['round']}" for lv in levels]
    out += ["", "p95 ms per endpoint (requests in parentheses):", "",
            "| endpoint | " + " | ".join(cols) + " | median |", "|---|" + "---:|" * (len(cols) + 1)]  # fmt: skip
    for name in names:
        cells, p95s = [], []
        for lv in levels:
            row = next((r for r in lv["rows"] if r["Name"] == name), None)
            if row is None:
                cells.append("—")
                continue
            cells.append(f"{ms(row, '95%')} ({row['Request Count']})")
            if row.get("95%") not in ("", "N/A", None):
                p95s.append(float(row["95%"]))
        med = f"{median(p95s):.0f}" if p95s else "—"
        out.append(f"| `{name}` | " + " | ".join(cells) + f" | {med} |")
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="locust on the public REST/search/transcript endpoints")
    p.add_argument("--users", default="10,25,50", help="comma-separated locust user counts (≈ req/s)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds per level (default 60)")
    p.add_argument("--repeat", type=int, default=1, help="rounds over the levels (default 1)")
    p.add_argument("--pause", type=float, default=3.0, help="seconds between levels")
    p.add_argument("--sittings", type=int, default=3, help="sittings in the archive (default 3)")
    p.add_argument("--segments", type=int, default=2000, help="segments per sitting (default 2000)")
    p.add_argument("--workers", type=int, default=1, help="server processes (more than 1 uses a private Redis)")
    p.add_argument("--postgres", help="maintenance URL of a PostgreSQL: use a fresh database there, not SQLite")
    p.add_argument("--text-dir", default=str(ROOT.parent / "shared" / "data" / "text"))
    p.add_argument(
        "--documents",
        default=str(ROOT.parent / "shared" / "data" / "text"),
        help="DOCUMENTS_DATA for the server ('' loads none: /api/documents/search then finds nothing)",
    )
    p.add_argument("--json", help="also write the raw results here")
    args = p.parse_args(argv)
    args.users = [int(x) for x in str(args.users).split(",") if x.strip()]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    before = uptime()
    levels = asyncio.run(run(args))
    print(f"\nhttp load: locust, {args.duration:g} s per level, server.py --workers {args.workers} on "
          f"{'PostgreSQL' if args.postgres else 'SQLite'}, {args.sittings} sittings × {args.segments} segments; "
          f"started {started}\nuptime before: {before}\nuptime after:  {uptime()}\n")  # fmt: skip
    print(tables(levels))
    if args.json:
        Path(args.json).write_text(json.dumps({"started": started, "args": vars(args), "levels": levels}, indent=2))


if __name__ == "__main__":
    main()
