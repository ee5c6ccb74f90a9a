"""Transcript search benchmark (SQLite): bulk-index rate, index size, query latency, against bare FTS5 trigram.

    .venv/bin/python bench/search.py [--segments 100000] [--sittings 100] [--runs 3] [--queries 100]
        [--text-dir ../shared/data/text] [--dir /tmp/sapha-bench-search] [--json out.json]

A synthetic archive is generated from the legislative texts in `--text-dir` (the 2017 Constitution and the
Acts): `--sittings` sittings spread over the last years, each with `--segments / --sittings` caption-sized
segments (40–160 characters cut from random places in the texts), speakers, agenda items and bills; about one
segment in twenty starts with `ส.ว. <name>` and one in ten has its Thai digits written in Arabic, one in fifty
carries a zero-width space (as ASR and PDF copy-paste do).

Each run builds, in fresh files:

* **sapha**: `archive.search_sqlite` (`ensure_schema`, `index_segments` in transactions of 10,000, then
  `optimize`), the way the store indexes a bulk import;
* **reference**: a bare FTS5 `trigram` table over the raw text with the sitting as an UNINDEXED column.

and times `--queries` varied queries (single words, compounds, short words, phrases, exclusions, filters, Thai
and Arabic digits) for the first page of 20: `archive.search_sqlite.search` for sapha, and for the reference
`MATCH '"<query>"' ORDER BY rowid DESC LIMIT 20` (it has no ranking, folding or exclusion; a query under three
characters returns nothing, which is counted). Each query runs 3 times per run and its median is kept. The
figures printed are the median over `--runs` runs. `uptime` is printed at the start and end: this is a shared
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

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


@dataclass
class Run:
    index_rate: float
    index_mb: float
    ref_rate: float
    ref_mb: float
    p50: float
    p95: float
    ref_p50: float
    ref_p95: float
    by_kind: dict[str, float]
    ref_empty: int


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


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def one_run(text: str, args: argparse.Namespace, work: Path) -> Run:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ours_path, ref_path = work / "sapha.db", work / "reference.db"
    docs = list(generate(text, args.segments, args.sittings))

    ours = _connect(ours_path)
    idx.ensure_schema(ours)
    t0 = time.perf_counter()
    for i in range(0, len(docs), 10_000):
        ours.execute("BEGIN")
        idx.index_segments(ours, docs[i : i + 10_000])
        ours.execute("COMMIT")
    idx.optimize(ours)
    ours.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    index_rate = len(docs) / (time.perf_counter() - t0)

    ref = _connect(ref_path)
    ref.execute("CREATE VIRTUAL TABLE ref USING fts5(text, sitting UNINDEXED, tokenize='trigram')")
    t0 = time.perf_counter()
    for i in range(0, len(docs), 10_000):
        ref.execute("BEGIN")
        ref.executemany(
            "INSERT INTO ref (rowid, text, sitting) VALUES (?, ?, ?)",
            ((d.segment_id, d.text, d.sitting_id) for d in docs[i : i + 10_000]),
        )
        ref.execute("COMMIT")
    ref.execute("INSERT INTO ref (ref) VALUES ('optimize')")
    ref.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ref_rate = len(docs) / (time.perf_counter() - t0)

    lat: list[float] = []
    ref_lat: list[float] = []
    by_kind: dict[str, list[float]] = {}
    ref_empty = 0
    for kind, q, filters in queries(text, args.queries, args.sittings):
        parsed = SearchFilters.from_params(filters)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            idx.search(ours, q, parsed, None, 20)
            times.append(time.perf_counter() - t0)
        lat.append(statistics.median(times) * 1000)
        by_kind.setdefault(kind, []).append(lat[-1])
        bare = q.strip('"').split(" -")[0]
        sql = "SELECT rowid, text FROM ref WHERE ref MATCH ?"
        params: list[str] = [f'"{bare}"']
        if "sitting" in filters:
            sql += " AND sitting = ?"
            params.append(filters["sitting"])
        times = []
        rows: list[object] = []
        for _ in range(3):
            t0 = time.perf_counter()
            rows = ref.execute(sql + " ORDER BY rowid DESC LIMIT 20", params).fetchall()
            times.append(time.perf_counter() - t0)
        ref_lat.append(statistics.median(times) * 1000)
        ref_empty += not rows
    ours.close()
    ref.close()
    run = Run(
        index_rate,
        _size_mb(ours_path),
        ref_rate,
        _size_mb(ref_path),
        statistics.median(lat),
        statistics.quantiles(lat, n=20)[18],
        statistics.median(ref_lat),
        statistics.quantiles(ref_lat, n=20)[18],
        {k: statistics.quantiles(v, n=20)[18] if len(v) > 1 else v[0] for k, v in by_kind.items()},
        ref_empty,
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--sittings", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--queries", type=int, default=100)
    default_text = Path(__file__).resolve().parents[2] / "shared" / "data" / "text"
    parser.add_argument("--text-dir", type=Path, default=default_text)
    parser.add_argument("--dir", type=Path, default=Path(f"/tmp/sapha-bench-search-{os.getpid()}"))
    parser.add_argument("--keep", action="store_true", help="keep the database files")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    text = corpus(args.text_dir)
    runs = []
    for n in range(args.runs):
        runs.append(one_run(text, args, args.dir))
        print(f"run {n + 1}: {runs[-1]}", flush=True)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())

    def med(attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs)

    kinds = runs[0].by_kind
    print(f"\n{args.segments:,} segments, {args.sittings} sittings, {args.queries} queries, median of {len(runs)} runs")
    print("| | index rate (seg/s) | size (MiB) | query p50 (ms) | query p95 (ms) |")
    print("|---|---|---|---|---|")
    print(f"| sapha | {med('index_rate'):,.0f} | {med('index_mb'):.0f} | {med('p50'):.1f} | {med('p95'):.1f} |")
    print(f"| bare FTS5 trigram | {med('ref_rate'):,.0f} | {med('ref_mb'):.0f} | {med('ref_p50'):.1f} | "
          f"{med('ref_p95'):.1f} |")  # fmt: skip
    print("\np95 by query kind (sapha, ms): " + ", ".join(
        f"{k} {statistics.median(r.by_kind[k] for r in runs):.1f}" for k in kinds))  # fmt: skip
    print(f"reference queries with no result: {statistics.median(r.ref_empty for r in runs):.0f} of {args.queries}")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in runs], indent=2))


if __name__ == "__main__":
    main()
