"""Transcript search benchmark, SQLite and PostgreSQL: bulk-index rate, index size, query latency, labelled recall,
against a bare FTS5 trigram table and a bare pg_trgm table on the same data.

    .venv/bin/python bench/search.py [--segments 100000] [--sittings 100] [--runs 3] [--queries 100]
        [--backends sqlite,postgres] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
        [--live-sample 20000] [--text-dir ../shared/data/text] [--dir /tmp/...] [--keep] [--json out.json]

A synthetic archive is generated from the legislative texts in `--text-dir` (the 2017 Constitution and the
Acts): `--sittings` sittings spread over four years, each with `--segments / --sittings` caption-sized segments
(40–160 characters cut from random places in the texts), speakers, agenda items and bills; about one segment in
twenty starts with `ส.ว. <name>`, one in ten has its Thai digits written in Arabic, one in fifty carries a
zero-width space (as ASR and PDF copy-paste do). The labelled segments of tests/test_search_sqlite.py are added in
a sitting of their own.

Four indexes are built once each over the same segments:

* **sapha-sqlite**: `archive.search_sqlite` (`index_segments`, the store's own write, in transactions of 10,000,
  then `optimize`);
* **fts5-trigram**: a bare FTS5 `trigram` table over the raw text, the sitting as an UNINDEXED column;
* **sapha-postgres**: `archive.search_postgres` (keyed terms and facets under one GIN index) in a fresh database
  (created on `--postgres`'s server and dropped at the end): binary COPY (`copy_segments`) with the indexes
  dropped, then `ensure_schema` builds them and `VACUUM ANALYZE` gathers the key frequencies the search reads; its
  live path (`index_segments` into the indexed table) is timed on the first `--live-sample` segments beforehand;
* **pg_trgm**: the raw text with a `pg_trgm` GIN index (built after the COPY), in the same database.

Then `--runs` passes of `--queries` varied queries (single words, compounds, short words, phrases, exclusions,
filters, Thai and Arabic digits), each timed once per pass for the first page of 20: `search()` for sapha; for the
references the query's first term as `MATCH '"…"'` / `LIKE '%…%'` on the raw text, `ORDER BY id DESC LIMIT 20`
(no ranking, folding or exclusion; only the sitting filter). The report gives, per index, the median over the
passes of p50 and p95 with their spread (min–max), p95 per query kind, how many queries found nothing, and the
labelled recall (the labelled queries searched within their sitting: every expected segment found?) and the five
slowest queries of the last pass (what to look at first). Index size
is the database files (SQLite) or `pg_total_relation_size` (PostgreSQL). `uptime` is printed before and after
each pass: this is a shared machine.

Then, unless `--live 0`, *live final → searchable*: a real `SqliteStore` whose archive holds `--live-segments`
segments written before search existed (so opening it runs the backfill, whose rate is printed), a `Recorder` on
the in-process broker, and `--live` finals recorded one after another through `Recorder.caption_final`. For each,
a search for a word only that final holds starts the moment `caption_final` has published the event (the earliest
any subscriber can have it) and must find it on its first try; the time from publish to the answer is reported
(p50 / p95 / max), with the time from the call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from archive import search_postgres as pg_idx
from archive import search_sqlite as idx
from archive.search_sqlite import SearchFilters, SegmentDoc

_THAI_DIGITS = str.maketrans("๐๑๒๓๔๕๖๗๘๙", "0123456789")
SPEAKERS = [f"{t}{n}" for t in ("นาย", "นาง", "พลเอก", "นางสาว") for n in ("สมชาย", "สมหญิง", "วิชัย", "ประยุทธ", "สุดา")]
WORDS = [
    "ประชาชน",
    "วุฒิสภา",
    "รัฐธรรมนูญ",
    "คณะรัฐมนตรี",
    "ศาลรัฐธรรมนูญ",
    "พระราชบัญญัติ",
    "สิทธิ",
    "เสรีภาพ",
    "การเลือกตั้ง",
    "กรรมาธิการ",
    "ทุจริต",
    "งบประมาณ",
    "ภาษีอากร",
    "นายกรัฐมนตรี",
    "ผู้ตรวจการแผ่นดิน",
]
COMPOUND_PARTS = ["ประมาณ", "มติ", "บัญญัติ", "ราษฎร", "อำนาจ", "ตรวจสอบ", "กรรม", "ประโยชน์", "คุ้มครอง", "หน้าที่"]
SHORT = ["ปี", "สว", "มี", "ณ", "ใน", "คน", "ศาล", "งบ", "ร่าง", "วัน"]
DIGITS = ["๒๕๖๐", "2560", "๒๕๖๑", "2562", "มาตรา ๒๖๙", "มาตรา 144", "๑๘๐ วัน", "60 วัน"]


# The labelled set of tests/test_search_sqlite.py: segments the bare references miss (short words, Arabic for Thai
# digits, a zero-width space, a space inside a phrase, compounds), each with the queries that must find it.
PLANTED = {
    1: "ส.ว. สมปอง กล่าวว่า ขอบคุณท่านประธาน",
    2: "ในปีงบประมาณ ๒๕๖๘ รัฐบาลตั้งงบไว้",
    3: "ที่ประชุมมีมติเห็นชอบ",
    4: "งบ\u200bประมาณรายจ่ายของกระทรวง",
    5: "ร่าง พระราชบัญญัติ ภาษีที่ดิน",
    6: "สวัสดีครับท่านสมาชิก",
}
LABELLED = {"สว": {1}, "ปี": {2}, "2568": {2}, "งบประมาณ": {2, 4}, "มติ": {3}, '"ร่างพระราชบัญญัติ"': {5}}
LABELLED_SITTING = "sit-labelled"


@dataclass
class Build:
    """One index built over the archive: bulk rate, size on disk, and how it was built."""

    rate: float
    mb: float
    how: str


@dataclass
class QueryRun:
    """One pass of the query set over one index (each query timed once)."""

    p50: float
    p95: float
    by_kind: dict[str, float]
    empty: int
    slowest: list[tuple[float, str, str]]  # (ms, kind, query) of the five slowest, for finding what to fix


def corpus(text_dir: Path) -> str:
    texts = [p.read_text(encoding="utf-8") for p in sorted(text_dir.glob("constitution/*.txt"))]
    texts += [p.read_text(encoding="utf-8") for p in sorted(text_dir.glob("laws/acts/*.txt"))]
    return " ".join(" ".join(t.split()) for t in texts)


def generate(text: str, segments: int, sittings: int, seed: int = 8) -> Iterator[SegmentDoc]:
    rng = random.Random(seed)
    per = max(1, segments // sittings)
    start = datetime(2021, 1, 5, 2, 30, tzinfo=UTC)
    doc = 0
    for s in range(sittings):
        at = (start + timedelta(days=s * 1500 // sittings)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        chamber = "joint" if s % 7 == 0 else "senate"
        for k in range(per):
            doc += 1
            a = rng.randrange(len(text) - 200)
            piece = text[a : a + rng.randint(40, 160)]
            roll = rng.random()
            if roll < 0.05:
                piece = f"ส.ว. {rng.choice(SPEAKERS)} {piece}"
            elif roll < 0.15:
                piece = piece.translate(_THAI_DIGITS)
            elif roll < 0.17:
                cut = len(piece) // 2
                piece = piece[:cut] + "\u200b" + piece[cut:]
            item = k * 8 // per
            yield SegmentDoc(
                doc, f"sit-{s:05d}", k * 4000, piece, at, chamber, SPEAKERS[(s + k // 40) % len(SPEAKERS)],
                s * 8 + item + 1, f"bill-{s % 50}" if item in (2, 3) else None,
            )  # fmt: skip


def queries(text: str, n: int, sittings: int, seed: int = 9) -> list[tuple[str, str, dict[str, str]]]:
    rng = random.Random(seed)
    out: list[tuple[str, str, dict[str, str]]] = []
    phrases = [m.group(0) for m in re.finditer(r"[ก-๙]{4,12} [ก-๙]{4,12}", text[:200_000])]
    kinds = ["word", "compound", "short", "phrase", "exclude", "filter", "digits"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        filters: dict[str, str] = {}
        if kind == "word":
            q = rng.choice(WORDS)
        elif kind == "compound":
            q = rng.choice(COMPOUND_PARTS)
        elif kind == "short":
            q = rng.choice(SHORT)
        elif kind == "phrase":
            q = f'"{rng.choice(phrases)}"'
        elif kind == "exclude":
            q = f"{rng.choice(WORDS)} -{rng.choice(COMPOUND_PARTS)}"
        elif kind == "filter":
            q = rng.choice(WORDS + SHORT)
            filters = rng.choice(
                [
                    {"sitting": f"sit-{rng.randrange(sittings):05d}"},
                    {"from": "2022-01-01", "to": "2022-06-30"},
                    {"chamber": "joint"},
                    {"speaker": rng.choice(SPEAKERS)},
                    {"bill": f"bill-{rng.randrange(50)}"},
                ]
            )
        else:
            q = rng.choice(DIGITS)
        out.append((kind, q, filters))
    return out


def labelled(first_id: int, at: str) -> list[SegmentDoc]:
    """The planted segments, numbered from `first_id`, in a sitting of their own (recall is checked with its filter)."""
    return [
        SegmentDoc(first_id + n, LABELLED_SITTING, n * 4000, text, at, "senate", SPEAKERS[0], None, None)
        for n, text in PLANTED.items()
    ]


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _quantiles(lat: list[float]) -> tuple[float, float]:
    return statistics.median(lat), statistics.quantiles(lat, n=20)[18] if len(lat) > 1 else lat[0]


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# -- building ------------------------------------------------------------------------------------------------------


def build_sqlite(docs: list[SegmentDoc], path: Path) -> tuple[sqlite3.Connection, Build]:
    """sapha on SQLite: `index_segments` (the store's own write, executemany) in transactions of 10,000, `optimize`."""
    conn = _connect(path)
    idx.ensure_schema(conn)
    t0 = time.perf_counter()
    for i in range(0, len(docs), 10_000):
        conn.execute("BEGIN")
        idx.index_segments(conn, docs[i : i + 10_000])
        conn.execute("COMMIT")
    idx.optimize(conn)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rate = len(docs) / (time.perf_counter() - t0)
    return conn, Build(rate, _size_mb(path), "index_segments (the live path too) in 10k transactions + optimize")


def build_fts5_trigram(docs: list[SegmentDoc], path: Path) -> tuple[sqlite3.Connection, Build]:
    """The bare reference: an FTS5 `trigram` table over the raw text, the sitting as an UNINDEXED column."""
    conn = _connect(path)
    conn.execute("CREATE VIRTUAL TABLE ref USING fts5(text, sitting UNINDEXED, tokenize='trigram')")
    t0 = time.perf_counter()
    for i in range(0, len(docs), 10_000):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO ref (rowid, text, sitting) VALUES (?, ?, ?)",
            ((d.segment_id, d.text, d.sitting_id) for d in docs[i : i + 10_000]),
        )
        conn.execute("COMMIT")
    conn.execute("INSERT INTO ref (ref) VALUES ('optimize')")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rate = len(docs) / (time.perf_counter() - t0)
    return conn, Build(rate, _size_mb(path), "executemany in 10k transactions + optimize")


async def _pg_mb(conn: pg_idx.Conn, table: str) -> float:
    cur = await conn.execute("SELECT pg_total_relation_size(%s)", (table,))
    row = await cur.fetchone()
    assert row is not None
    return float(row[0]) / 2**20


async def build_postgres(docs: list[SegmentDoc], conn: pg_idx.Conn, live_sample: int) -> tuple[Build, float]:
    """sapha on PostgreSQL: COPY into the bare table, then `ensure_schema` builds the indexes; and the live rate.

    The live path (`index_segments`, one INSERT … ON CONFLICT per segment into the indexed table, in transactions
    of 1,000) is timed first on `live_sample` segments, then the table is emptied for the bulk load.
    """
    await pg_idx.ensure_schema(conn)
    t0 = time.perf_counter()
    sample = docs[:live_sample]
    for i in range(0, len(sample), 1000):
        async with conn.transaction():
            await pg_idx.index_segments(conn, sample[i : i + 1000])
    live_rate = len(sample) / (time.perf_counter() - t0) if sample else 0.0
    await conn.execute("TRUNCATE search_docs")
    t0 = time.perf_counter()
    await pg_idx.drop_indexes(conn)
    for i in range(0, len(docs), 50_000):
        async with conn.transaction():
            await pg_idx.copy_segments(conn, docs[i : i + 50_000])
    await pg_idx.ensure_schema(conn)
    await conn.execute("VACUUM ANALYZE search_docs")
    rate = len(docs) / (time.perf_counter() - t0)
    how = "COPY (copy_segments) in 50k transactions, then ensure_schema builds the indexes, VACUUM ANALYZE"
    return Build(rate, await _pg_mb(conn, "search_docs"), how), live_rate


async def build_pg_trgm(docs: list[SegmentDoc], conn: pg_idx.Conn) -> Build:
    """The bare reference: the raw text with a `pg_trgm` GIN index, built after a COPY."""
    await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    await conn.execute("CREATE TABLE ref (id BIGINT PRIMARY KEY, sitting TEXT NOT NULL, text TEXT NOT NULL)")
    t0 = time.perf_counter()
    for i in range(0, len(docs), 50_000):
        async with conn.transaction(), conn.cursor() as cur, cur.copy("COPY ref (id, sitting, text) FROM STDIN") as cp:
            for d in docs[i : i + 50_000]:
                await cp.write_row((d.segment_id, d.sitting_id, d.text))
    await conn.execute("CREATE INDEX ref_trgm ON ref USING gin (text gin_trgm_ops)")
    await conn.execute("CREATE INDEX ref_sitting ON ref (sitting, id)")
    await conn.execute("VACUUM ANALYZE ref")
    rate = len(docs) / (time.perf_counter() - t0)
    return Build(rate, await _pg_mb(conn, "ref"), "COPY, then the GIN and sitting indexes, VACUUM ANALYZE")


# -- querying ------------------------------------------------------------------------------------------------------

Search = Callable[[str, dict[str, str]], Awaitable[int]]


def sapha_sqlite(conn: sqlite3.Connection) -> Search:
    async def run(q: str, filters: dict[str, str]) -> int:
        return len(idx.search(conn, q, SearchFilters.from_params(filters), None, 20).hits)

    return run


def fts5_trigram(conn: sqlite3.Connection) -> Search:
    # No folding, ranking or exclusion: the query's first term as one FTS5 phrase, newest first.
    async def run(q: str, filters: dict[str, str]) -> int:
        sql, params = "SELECT rowid, text FROM ref WHERE ref MATCH ?", [f'"{_bare(q)}"']
        if "sitting" in filters:
            sql += " AND sitting = ?"
            params.append(filters["sitting"])
        return len(conn.execute(sql + " ORDER BY rowid DESC LIMIT 20", params).fetchall())

    return run


def sapha_postgres(conn: pg_idx.Conn) -> Search:
    async def run(q: str, filters: dict[str, str]) -> int:
        return len((await pg_idx.search(conn, q, SearchFilters.from_params(filters), None, 20)).hits)

    return run


def pg_trgm(conn: pg_idx.Conn) -> Search:
    # As fts5_trigram: LIKE '%…%' on the raw text, served by the GIN index when the term has a trigram.
    async def run(q: str, filters: dict[str, str]) -> int:
        sql, params = "SELECT id, text FROM ref WHERE text LIKE %s", [pg_idx._contains(_bare(q))]
        if "sitting" in filters:
            sql += " AND sitting = %s"
            params.append(filters["sitting"])
        cur = await conn.execute(sql + " ORDER BY id DESC LIMIT 20", params)
        return len(await cur.fetchall())

    return run


def _bare(q: str) -> str:
    return q.strip('"').split(" -")[0]


async def query_run(search: Search, qs: list[tuple[str, str, dict[str, str]]]) -> QueryRun:
    lat: list[float] = []
    by_kind: dict[str, list[float]] = {}
    empty = 0
    timed: list[tuple[float, str, str]] = []
    for kind, q, filters in qs:
        t0 = time.perf_counter()
        found = await search(q, filters)
        lat.append((time.perf_counter() - t0) * 1000)
        by_kind.setdefault(kind, []).append(lat[-1])
        timed.append((round(lat[-1], 1), kind, f"{q} {filters}" if filters else q))
        empty += not found
    p50, p95 = _quantiles(lat)
    slowest = sorted(timed, reverse=True)[:5]
    return QueryRun(p50, p95, {k: _quantiles(v)[1] for k, v in by_kind.items()}, empty, slowest)


async def recall(system: str, conn: object) -> tuple[int, int]:
    """(found, expected) over the labelled set, searched within its own sitting (every page)."""
    found = expected = 0
    for q, want in LABELLED.items():
        ids = set()
        if system in ("sapha-sqlite", "sapha-postgres"):
            cursor = None
            while True:
                f = SearchFilters(sitting=LABELLED_SITTING)
                if system == "sapha-sqlite":
                    page = idx.search(conn, q, f, cursor, 100)  # type: ignore[arg-type]
                else:
                    page = await pg_idx.search(conn, q, f, cursor, 100)  # type: ignore[arg-type]
                ids |= {h.segment_id for h in page.hits}
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
        elif system == "fts5-trigram":
            rows = conn.execute(  # type: ignore[attr-defined]
                "SELECT rowid FROM ref WHERE ref MATCH ? AND sitting = ?", (f'"{_bare(q)}"', LABELLED_SITTING)
            ).fetchall()
            ids = {r[0] for r in rows}
        else:
            cur = await conn.execute(  # type: ignore[attr-defined]
                "SELECT id FROM ref WHERE text LIKE %s AND sitting = %s", (pg_idx._contains(_bare(q)), LABELLED_SITTING)
            )
            ids = {r[0] for r in await cur.fetchall()}
        found += len({planted_id(i) for i in want} & ids)
        expected += len(want)
    return found, expected


_FIRST_PLANTED = 0


def planted_id(n: int) -> int:
    return _FIRST_PLANTED + n


# -- the run -------------------------------------------------------------------------------------------------------


async def bench(text: str, args: argparse.Namespace) -> dict[str, Any]:
    global _FIRST_PLANTED
    work: Path = args.dir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    docs = list(generate(text, args.segments, args.sittings))
    _FIRST_PLANTED = docs[-1].segment_id
    docs += labelled(_FIRST_PLANTED, docs[-1].sitting_at)
    print(f"generated {len(docs):,} segments in {time.perf_counter() - t0:.0f} s", flush=True)
    qs = queries(text, args.queries, args.sittings)
    builds: dict[str, Build] = {}
    searches: dict[str, Search] = {}
    conns: dict[str, object] = {}
    extra: dict[str, float] = {}
    backends = args.backends.split(",")
    pg_conn = admin = None
    dbname = f"sapha_bench_search_{os.getpid()}"
    try:
        if "sqlite" in backends:
            c, builds["sapha-sqlite"] = build_sqlite(docs, work / "sapha.db")
            conns["sapha-sqlite"], searches["sapha-sqlite"] = c, sapha_sqlite(c)
            print(f"sapha-sqlite: {builds['sapha-sqlite']}", flush=True)
            c, builds["fts5-trigram"] = build_fts5_trigram(docs, work / "reference.db")
            conns["fts5-trigram"], searches["fts5-trigram"] = c, fts5_trigram(c)
            print(f"fts5-trigram: {builds['fts5-trigram']}", flush=True)
        if "postgres" in backends:
            admin = await psycopg.AsyncConnection.connect(args.postgres, autocommit=True)
            await admin.execute(f"CREATE DATABASE {dbname}")
            url = urlunsplit(urlsplit(args.postgres)._replace(path=f"/{dbname}"))
            pg_conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
            await pg_conn.execute("SET maintenance_work_mem = '512MB'")
            # No limit while building (a GIN build over 1M rows takes minutes), a minute a query after.
            await pg_conn.execute("SET statement_timeout = 0")
            builds["sapha-postgres"], extra["postgres_live_rate"] = await build_postgres(
                docs, pg_conn, args.live_sample
            )
            print(f"sapha-postgres: {builds['sapha-postgres']}, live path {extra['postgres_live_rate']:,.0f} seg/s")
            builds["pg_trgm"] = await build_pg_trgm(docs, pg_conn)
            print(f"pg_trgm: {builds['pg_trgm']}", flush=True)
            await pg_conn.execute("SET statement_timeout = '60s'")
            conns["sapha-postgres"] = conns["pg_trgm"] = pg_conn
            searches["sapha-postgres"], searches["pg_trgm"] = sapha_postgres(pg_conn), pg_trgm(pg_conn)
        runs: dict[str, list[QueryRun]] = {name: [] for name in searches}
        uptimes = [_uptime()]
        for n in range(args.runs):
            for name, search in searches.items():
                runs[name].append(await query_run(search, qs))
                r = runs[name][-1]
                print(f"run {n + 1} {name}: p50 {r.p50:.1f} ms, p95 {r.p95:.1f} ms, {r.by_kind}", flush=True)
            uptimes.append(_uptime())
        recalls = {name: await recall(name, conns[name]) for name in searches}
    finally:
        for opened in conns.values():
            if isinstance(opened, sqlite3.Connection):
                opened.close()
        if pg_conn is not None:
            await pg_conn.close()
        if admin is not None:
            if not args.keep:
                await admin.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
            await admin.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return {"builds": builds, "runs": runs, "recall": recalls, "uptime": uptimes, **extra}


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    builds: dict[str, Build] = result["builds"]
    runs: dict[str, list[QueryRun]] = result["runs"]

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"

    print(f"\n{args.segments:,} segments, {args.sittings} sittings, {args.queries} queries, {args.runs} query runs")
    print("| | index rate (seg/s) | size (MiB) | query p50 (ms) | query p95 (ms) | no result | labelled recall |")
    print("|---|---|---|---|---|---|---|")
    for name, rs in runs.items():
        b = builds[name]
        found, expected = result["recall"][name]
        print(
            f"| {name} | {b.rate:,.0f} | {b.mb:,.0f} | {spread([r.p50 for r in rs])} | {spread([r.p95 for r in rs])} "
            f"| {statistics.median(r.empty for r in rs):.0f} | {found}/{expected} |"
        )
    for name, rs in runs.items():
        kinds = rs[0].by_kind
        print(f"p95 by kind, {name} (ms): " + ", ".join(f"{k} {spread([r.by_kind[k] for r in rs])}" for k in kinds))
    for name, rs in runs.items():
        print(f"slowest, last pass, {name}: " + "; ".join(f"{ms} ms {kind} {q}" for ms, kind, q in rs[-1].slowest))
    if "postgres_live_rate" in result:
        print(f"sapha-postgres live path (index_segments): {result['postgres_live_rate']:,.0f} seg/s")
    for u in result["uptime"]:
        print("uptime:", u)


async def live_finals(text: str, args: argparse.Namespace, work: Path) -> dict[str, float]:
    """Publish → searchable for `--live` finals on a store holding `--live-segments` backfilled segments."""
    from archive.recorder import Recorder
    from archive.store_sqlite import SqliteStore
    from broadcast.broker_memory import MemoryBroker
    from broadcast.hub import Hub
    from broadcast.metrics import Metrics

    shutil.rmtree(work, ignore_errors=True)
    path = work / "live.db"
    async with SqliteStore(path) as store:
        for sitting in range(10):
            await store.create_sitting(f"s{sitting}", f"การประชุม {sitting}", "senate")
    docs = generate(text, args.live_segments, 10)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO segments (sitting_id, start_ms, end_ms, wall_time, text) VALUES (?, ?, ?, ?, ?)",
        ((f"s{int(d.sitting_id[4:]) % 10}", d.start_ms, d.start_ms + 3000, d.sitting_at, d.text) for d in docs),
    )
    conn.execute("COMMIT")
    conn.execute("DROP TABLE search_terms")
    conn.execute("DROP TABLE search_docs")
    conn.execute("DROP TABLE search_meta")
    conn.close()

    store = SqliteStore(path)
    t0 = time.perf_counter()
    await store.open()
    backfill_rate = args.live_segments / (time.perf_counter() - t0)
    hub = Hub(MemoryBroker())
    await hub.start()
    recorder = Recorder(store, hub, Metrics())
    from_publish: list[float] = []
    from_call: list[float] = []
    try:
        await store.set_sitting_status("s0", "live")
        for i in range(args.live):
            # A made-up word (digits spelled in Thai) no other segment has, so the first hit must be this final.
            marker = "รหัส" + str(900_000 + i).translate(str.maketrans("0123456789", "๐๑๒๓๔๕๖๗๘๙"))
            t_call = time.perf_counter()
            segment, event = await recorder.caption_final("s0", f"live-{i}", f"ผู้อภิปราย{marker}ขอบคุณ", i, i + 1)
            t_published = time.perf_counter()
            assert event is not None
            page = await store.search(marker, limit=1)
            t_found = time.perf_counter()
            assert [h.segment_id for h in page.hits] == [segment.id], "a published final was not found"
            from_publish.append((t_found - t_published) * 1000)
            from_call.append((t_found - t_call) * 1000)
    finally:
        await hub.close()
        await store.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    q = statistics.quantiles
    return {
        "backfill_rate": backfill_rate,
        "publish_p50_ms": statistics.median(from_publish),
        "publish_p95_ms": q(from_publish, n=20)[18],
        "publish_max_ms": max(from_publish),
        "call_p50_ms": statistics.median(from_call),
        "call_p95_ms": q(from_call, n=20)[18],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--sittings", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3, help="passes of the query set over each index")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite, postgres or both (comma-separated)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin URL")
    parser.add_argument("--live-sample", type=int, default=20_000, help="segments timed on PostgreSQL's live path")
    default_text = Path(__file__).resolve().parents[2] / "shared" / "data" / "text"
    parser.add_argument("--text-dir", type=Path, default=default_text)
    parser.add_argument("--dir", type=Path, default=Path(f"/tmp/sapha-bench-search-{os.getpid()}"))
    parser.add_argument("--keep", action="store_true", help="keep the database files and the PostgreSQL database")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--live", type=int, default=50, help="live finals to time (0: skip)")
    parser.add_argument("--live-segments", type=int, default=20_000, help="segments in the live store")
    args = parser.parse_args()

    print("uptime:", _uptime(), flush=True)
    text = corpus(args.text_dir)
    result = asyncio.run(bench(text, args))
    report(result, args)
    live = None
    if args.live:
        live = asyncio.run(live_finals(text, args, args.dir))
        print(
            f"\nlive final → searchable ({args.live} finals, store of {args.live_segments:,} segments backfilled at "
            f"{live['backfill_rate']:,.0f} seg/s): from publish p50 {live['publish_p50_ms']:.1f} ms, p95 "
            f"{live['publish_p95_ms']:.1f} ms, max {live['publish_max_ms']:.1f} ms; from the call p50 "
            f"{live['call_p50_ms']:.1f} ms, p95 {live['call_p95_ms']:.1f} ms"
        )
    if args.json:
        out = {k: v for k, v in result.items() if k not in ("builds", "runs")}
        out["builds"] = {k: b.__dict__ for k, b in result["builds"].items()}
        out["runs"] = {k: [r.__dict__ for r in rs] for k, rs in result["runs"].items()}
        args.json.write_text(json.dumps({**out, "live": live}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
