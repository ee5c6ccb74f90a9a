"""PostgresStore's own behaviour on a real PostgreSQL (the shared Store suite is tests/test_archive_store.py):
migrations, timeouts and lost connections, ordering under concurrency, the relay on it, and the whole app on it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from live_server import TOKEN, test_settings

from archive.idempotency import HEADER
from archive.models import Announcement, Segment
from archive.recorder import Recorder
from archive.relay import Relay
from archive.store import StoreUnavailable
from archive.store_postgres import _MIGRATIONS, SCHEMA_VERSION, WRITE_LOCK, PostgresStore
from archive.store_sqlite import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from broadcast.broker_memory import MemoryBroker
from broadcast.envelope import Event, sitting_channel
from broadcast.hub import Hub
from broadcast.metrics import Metrics
from server import create_app, make_store

THAI = ["ท่านประธานที่เคารพ", "ขอเปิดการประชุม", "ระเบียบวาระที่ ๑", "เรื่องที่ประธานแจ้ง", "ขอบคุณครับ"]


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(postgres_url)
    await s.open()
    try:
        await s.create_sitting("s1", "การประชุมวุฒิสภา", "senate")
        yield s
    finally:
        await s.close()


def _versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]


async def _until(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


# ---- migrations -------------------------------------------------------------------------------------------------


async def test_migrations_apply_once_even_when_processes_start_together(postgres_url: str) -> None:
    """Stores opening the same empty database at once apply each migration exactly once; reopening applies none."""
    stores = [PostgresStore(postgres_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    for s in stores:
        await s.close()
    assert _versions(postgres_url) == list(range(1, SCHEMA_VERSION + 1))
    async with PostgresStore(postgres_url) as again:
        assert await again.list_sittings() == []
    assert _versions(postgres_url) == list(range(1, SCHEMA_VERSION + 1))


@pytest.mark.fast
def test_both_backends_have_the_same_schema_versions() -> None:
    """Version N names the same schema on both backends: the migration lists have the same length."""
    assert SCHEMA_VERSION == len(_MIGRATIONS) == SQLITE_SCHEMA_VERSION


async def test_a_newer_schema_is_refused(postgres_url: str) -> None:
    """A database migrated by newer code is not opened (nor changed) by older code."""
    async with PostgresStore(postgres_url):
        pass
    with psycopg.connect(postgres_url) as conn:
        conn.execute("INSERT INTO schema_version VALUES (%s, 'later')", (SCHEMA_VERSION + 1,))
    with pytest.raises(RuntimeError, match="newer"):
        await PostgresStore(postgres_url).open()
    assert _versions(postgres_url)[-1] == SCHEMA_VERSION + 1


# ---- failures ---------------------------------------------------------------------------------------------------


async def test_no_server_is_store_unavailable() -> None:
    """Opening a store on a port where no PostgreSQL listens raises StoreUnavailable after the timeout."""
    with pytest.raises(StoreUnavailable, match="cannot open"):
        await PostgresStore("postgresql://postgres@127.0.0.1:1/none", timeout=0.5).open()


async def test_a_held_write_lock_times_out_and_the_store_recovers(postgres_url: str) -> None:
    """A write stuck behind another session's write lock raises StoreUnavailable after the store's timeout and
    leaves nothing behind; reads go on meanwhile, and writes work again once the lock is released."""
    async with PostgresStore(postgres_url, timeout=0.5) as store:
        with psycopg.connect(postgres_url, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))
            with pytest.raises(StoreUnavailable, match="did not finish"):
                await store.create_sitting("s1", "การประชุม", "senate")
            assert await store.get_sitting("s1") is None
            other.execute("SELECT pg_advisory_unlock(%s)", (WRITE_LOCK,))
        assert await store.get_sitting("s1") is None
        assert (await store.create_sitting("s2", "การประชุม", "senate")).id == "s2"


async def test_a_read_only_database_is_unavailable_and_dropped_connections_are_replaced(
    store: PostgresStore, postgres_url: str, postgres_admin_url: str
) -> None:
    """When the server ends every session of the store (a restart, an admin), no call fails for it; a write the
    database refuses (read-only) raises StoreUnavailable and records nothing; the next write after that works."""
    name = postgres_url.rsplit("/", 1)[1]

    def admin(statement: str) -> None:
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute(statement)

    kill = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    admin(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
    admin(kill)
    with pytest.raises(StoreUnavailable, match="read-only"):
        await store.add_segment("s1", 0, 1000, "ขอเปิดการประชุม")
    admin(f"ALTER DATABASE {name} RESET default_transaction_read_only")
    admin(kill)
    segment = await store.add_segment("s1", 0, 1000, "ขอเปิดการประชุม")
    assert [s.id for s in await store.segments("s1")] == [segment.id]


# ---- ordering under concurrency --------------------------------------------------------------------------------


async def test_outbox_ids_rise_in_commit_order_under_concurrent_writes(store: PostgresStore) -> None:
    """With many writers on the pool at once, a reader of the outbox never sees an entry appear below one it has
    already seen, and the entries' order is the order of the rows they announce: the relay can trust id order."""

    def announce(segment: Segment) -> list[Announcement]:
        data = {"archive_id": segment.id}
        return [Announcement(f"seg-{segment.id}", "me", "sitting:s1", "caption.final", data, ("segment", segment.id))]

    stop = False
    late: list[int] = []

    async def watch() -> None:
        seen: set[int] = set()
        while not stop:
            ids = {e.id for e in await store.outbox_pending("me", 1000)}
            # Nothing is marked sent here, so each read holds the last; what is new must lie above all of it.
            late.extend(i for i in ids - seen if i < max(seen, default=0))
            seen = ids

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(store.add_segment("s1", i, i + 1, THAI[i % 5], announce=announce) for i in range(200)))
    stop = True
    await watcher
    assert late == []
    entries = await store.outbox_pending("me", 1000)
    assert [e.target for e in entries] == [("segment", s.id) for s in sorted(await store.segments("s1"), key=_id)]
    assert [e.id for e in entries] == sorted(e.id for e in entries)


def _id(segment: Segment) -> int:
    return segment.id


async def test_concurrent_claims_of_one_key_admit_one_request(store: PostgresStore) -> None:
    """Of many concurrent claims of the same Idempotency-Key, exactly one gets to run the request."""
    claims = await asyncio.gather(*(store.answer_claim("k", "f", 60.0, 60.0) for _ in range(20)))
    assert sum(c is None for c in claims) == 1
    assert all(c.status is None for c in claims if c is not None)


async def test_relay_publishes_a_backlog_in_recorded_order(store: PostgresStore) -> None:
    """On PostgreSQL too, entries recorded while publishing fails go out oldest first once it works, and each
    final's seq is written back to its row."""
    published: list[dict[str, Any]] = []
    failing = True

    async def publish(channel: str, type: str, data: dict[str, Any]) -> Event:
        if failing:
            raise OSError("down")
        published.append(data)
        return Event(channel, len(published), "e1", type, "2026-01-01T00:00:00.000Z", data)

    recorder = Recorder(store, Hub(MemoryBroker()), Metrics())
    recorder.relay = Relay(store, publish, backoff_base=0.01, backoff_cap=0.05)
    for i in range(3):
        assert (await recorder.caption_final("s1", f"u{i}", THAI[i], i, i + 1))[1] is None
    failing = False
    assert (await recorder.caption_final("s1", "u3", THAI[3], 3, 4))[1] is None
    await recorder.relay.start()
    try:

        async def drained() -> bool:
            return not await store.outbox_pending(recorder.relay.owner)

        await _until(drained, "the backlog")
    finally:
        await recorder.relay.stop()
    assert [d["segment_id"] for d in published] == ["u0", "u1", "u2", "u3"]
    assert [s.seq for s in sorted(await store.segments("s1"), key=_id)] == [1, 2, 3, 4]


# ---- the app on PostgreSQL -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_database_url_selects_postgres(scheme: str, tmp_path: Path) -> None:
    """DATABASE_URL=postgresql://… (or postgres://…) builds a PostgresStore."""
    url = f"{scheme}://postgres@127.0.0.1:5432/sapha"
    assert isinstance(make_store(test_settings(tmp_path, database_url=url)), PostgresStore)


async def test_the_app_runs_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    """Through the API on PostgreSQL: a sitting, its agenda and speaker, finals from the recorder, a vote retried
    with its Idempotency-Key (recorded once), and the transcript export, all read back from the database."""
    broker = MemoryBroker(history_size=1000)
    app = create_app(test_settings(tmp_path, database_url=postgres_url), broker=broker)
    async with app.router.lifespan_context(app):
        assert isinstance(app.state.store, PostgresStore)
        transport = httpx.ASGITransport(app=app)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=auth) as client:
            r = await client.post("/api/sittings", json={"id": "pg-1", "title": "การประชุมวุฒิสภา", "chamber": "senate"})
            assert r.status_code == 201, r.text
            r = await client.post("/api/sittings/pg-1/agenda", json={"title": "ร่างพระราชบัญญัติงบประมาณ"})
            assert r.status_code == 201, r.text
            r = await client.post("/api/sittings/pg-1/speaker", json={"name": "นายสมชาย ใจดี", "role": "ประธาน"})
            assert r.status_code == 201, r.text
            recorder = app.state.recorder
            await recorder.caption_final("pg-1", "a1", "สวัสดีครับ ท่านสมาชิกวุฒิสภา", 1.0, 2.5)
            await recorder.caption_final("pg-1", "a2", "ขอเปิดการประชุม", 3.0, 5.25)

            vote = {"motion": "รับหลักการ", "yes": 150, "no": 10, "abstain": 5, "absent": 35, "result": "passed"}
            first = await client.post("/api/sittings/pg-1/votes", json=vote, headers={HEADER: "vote-1"})
            again = await client.post("/api/sittings/pg-1/votes", json=vote, headers={HEADER: "vote-1"})
            assert first.status_code == again.status_code == 201, first.text
            assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"

            body = (await client.get("/api/sittings/pg-1/transcript")).json()
            assert [s["text"] for s in body["segments"]] == ["สวัสดีครับ ท่านสมาชิกวุฒิสภา", "ขอเปิดการประชุม"]
            assert all(s["seq"] is not None for s in body["segments"])
            vtt = await client.get("/api/sittings/pg-1/transcript?format=vtt")
            assert vtt.text.startswith("WEBVTT\n") and "00:00:03.000 --> 00:00:05.250" in vtt.text

    # A new store on the same database sees it all: committed, not cached.
    async with PostgresStore(postgres_url) as other:
        assert [v.motion for v in await other.votes("pg-1")] == ["รับหลักการ"]
        assert len(await other.segments("pg-1")) == 2
        assert (await other.current_speaker("pg-1")) is not None
    history, _, _ = await broker.history(sitting_channel("pg-1"), 0, 100)
    assert [e.type for e in history].count("vote.result") == 1
