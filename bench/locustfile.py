"""Locust users for the public read endpoints: sittings, transcripts in every format, segments, search, bills.

Run through ``bench/load_http.py``, which populates an archive, starts the server and passes the ids below in the
environment; or by hand against any server whose archive has sittings:

    BENCH_SITTINGS=s1,s2 BENCH_SEGMENTS=1-5000 .venv/bin/locust -f bench/locustfile.py --headless \
        -u 50 -r 10 -t 60s --host http://127.0.0.1:8000

Each user makes about one request per second (``constant_throughput(1)``), so ``-u N`` offers about N requests/s;
requests are grouped by endpoint (``name=``) so the per-endpoint p95 reads straight from the stats.
"""

from __future__ import annotations

import os
import random

from locust import HttpUser, constant_throughput, task

SITTINGS = [s for s in os.environ.get("BENCH_SITTINGS", "").split(",") if s]
_lo, _, _hi = os.environ.get("BENCH_SEGMENTS", "1-1").partition("-")
SEGMENTS = (int(_lo), int(_hi or _lo))
BILLS = [b for b in os.environ.get("BENCH_BILLS", "").split(",") if b]
# What people search a Senate archive for: words, compounds, names, numbers in Thai and Arabic digits, phrases.
QUERIES = [
    "งบประมาณ",
    "รัฐธรรมนูญ",
    "ประชาชน",
    "คณะรัฐมนตรี",
    "พระราชบัญญัติ",
    "การเลือกตั้ง",
    "ศาลรัฐธรรมนูญ",
    "สิทธิ เสรีภาพ",
    "ทุจริต",
    "กรรมาธิการ",
    "มาตรา ๒๖๙",
    "มาตรา 144",
    "ภาษีอากร",
    '"คณะกรรมการการเลือกตั้ง"',
    "นายกรัฐมนตรี -ศาล",
    "ผู้ตรวจการแผ่นดิน",
]
DOC_QUERIES = ["สิทธิ", "พระมหากษัตริย์", "วุฒิสภา", "ศาลรัฐธรรมนูญ", "งบประมาณ", "มาตรา ๑๔๔"]


class Reader(HttpUser):
    """A member of the public reading the archive."""

    wait_time = constant_throughput(1)

    def _sitting(self) -> str:
        return random.choice(SITTINGS)

    @task(3)
    def sittings(self) -> None:
        self.client.get("/api/sittings", name="/api/sittings")

    @task(4)
    def sitting(self) -> None:
        self.client.get(f"/api/sittings/{self._sitting()}", name="/api/sittings/{id}")

    @task(6)
    def search(self) -> None:
        self.client.get("/api/search", params={"q": random.choice(QUERIES)}, name="/api/search?q=…")

    @task(2)
    def transcript_json(self) -> None:
        self.client.get(f"/api/sittings/{self._sitting()}/transcript", name="/transcript (json)")

    @task(2)
    def transcript_vtt(self) -> None:
        self.client.get(f"/api/sittings/{self._sitting()}/transcript?format=vtt", name="/transcript?format=vtt")

    @task(2)
    def transcript_txt(self) -> None:
        self.client.get(f"/api/sittings/{self._sitting()}/transcript?format=txt", name="/transcript?format=txt")

    @task(1)
    def transcript_akn(self) -> None:
        self.client.get(f"/api/sittings/{self._sitting()}/transcript?format=akn", name="/transcript?format=akn")

    @task(6)
    def segment(self) -> None:
        self.client.get(f"/api/segments/{random.randint(*SEGMENTS)}", name="/api/segments/{id}")

    @task(2)
    def bills(self) -> None:
        self.client.get("/api/bills", name="/api/bills")

    @task(1)
    def bill(self) -> None:
        if BILLS:
            self.client.get(f"/api/bills/{random.choice(BILLS)}", name="/api/bills/{id}")

    @task(2)
    def documents_search(self) -> None:
        self.client.get("/api/documents/search", params={"q": random.choice(DOC_QUERIES)},
                        name="/api/documents/search?q=…")  # fmt: skip
