"""SqliteStore against a real SQLite file: every method, errors, durability and concurrency."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from archive.models import Sitting
from archive.store import Conflict, NotFound, Store
from archive.store_sqlite import SCHEMA_VERSION, SqliteStore

# A real-style Thai bill title; repeated below to pass 500 characters as long agenda items do.
BILL_TITLE = (
    "ร่างพระราชบัญญัติแก้ไขเพิ่มเติมประมวลกฎหมายอาญา (ฉบับที่ ..) พ.ศ. .... ซึ่งคณะรัฐมนตรีเป็นผู้เสนอ และสภาผู้แทนราษฎรลงมติเห็นชอบแล้ว"
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "archive.sqlite3"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(db_path)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def _sitting(store: Store, id: str = "s1") -> Sitting:
    return await store.create_sitting(id, "การประชุมวุฒิสภา ครั้งที่ ๑", "senate", "2026-05-01T09:30:00Z")


async def test_open_creates_parent_dirs_wal_and_schema(store: SqliteStore, db_path: Path) -> None:
    """Opening creates missing parent dirs, a WAL-mode file and the current schema version."""
    assert db_path.is_file()
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


async def test_sitting_round_trip(store: SqliteStore) -> None:
    """A created sitting reads back identically, scheduled, with UTC 'Z' timestamps."""
    created = await _sitting(store)
    assert created.status == "scheduled"
    assert created.created_at.endswith("Z")
    assert created.started_at is None and created.ended_at is None
    assert await store.get_sitting("s1") == created
    assert created.to_dict()["scheduled_at"] == "2026-05-01T09:30:00Z"


async def test_missing_sitting_is_none(store: SqliteStore) -> None:
    """Getting an unknown sitting returns None rather than raising."""
    assert await store.get_sitting("nope") is None


async def test_duplicate_sitting_conflicts(store: SqliteStore) -> None:
    """Creating a sitting with an existing id raises Conflict and leaves the original alone."""
    original = await _sitting(store)
    with pytest.raises(Conflict):
        await store.create_sitting("s1", "other", "joint", None)
    assert await store.get_sitting("s1") == original


async def test_invalid_chamber_rejected(store: SqliteStore) -> None:
    """A chamber outside senate/joint/committee raises ValueError."""
    with pytest.raises(ValueError):
        await store.create_sitting("s1", "t", "house", None)


async def test_list_sittings_newest_first_with_paging(store: SqliteStore) -> None:
    """Sittings list newest first and limit/offset page through them."""
    for i in range(5):
        await store.create_sitting(f"s{i}", f"sitting {i}", "committee", None)
    listed = await store.list_sittings()
    assert [s.id for s in listed] == ["s4", "s3", "s2", "s1", "s0"]
    page = await store.list_sittings(limit=2, offset=1)
    assert [s.id for s in page] == ["s3", "s2"]


async def test_status_timestamps(store: SqliteStore) -> None:
    """Going live sets started_at once; adjourning sets ended_at; resuming clears ended_at."""
    await _sitting(store)
    live = await store.set_sitting_status("s1", "live")
    assert live.status == "live" and live.started_at is not None and live.ended_at is None
    adjourned = await store.set_sitting_status("s1", "adjourned")
    assert adjourned.status == "adjourned"
    assert adjourned.started_at == live.started_at
    assert adjourned.ended_at is not None and adjourned.ended_at >= live.started_at
    resumed = await store.set_sitting_status("s1", "live")
    assert resumed.started_at == live.started_at and resumed.ended_at is None
    assert await store.get_sitting("s1") == resumed


async def test_status_of_unknown_sitting_not_found(store: SqliteStore) -> None:
    """Changing the status of a missing sitting raises NotFound."""
    with pytest.raises(NotFound):
        await store.set_sitting_status("nope", "live")


async def test_invalid_status_rejected(store: SqliteStore) -> None:
    """A status outside scheduled/live/adjourned raises ValueError."""
    await _sitting(store)
    with pytest.raises(ValueError):
        await store.set_sitting_status("s1", "paused")


async def test_agenda_order_and_current_item(store: SqliteStore) -> None:
    """Order defaults to the next number, agenda sorts by order, current is the latest added."""
    await _sitting(store)
    first = await store.add_agenda_item("s1", "เรื่องที่ประธานแจ้งต่อที่ประชุม", None, None, 0)
    second = await store.add_agenda_item("s1", "รับรองรายงานการประชุม", None, None, 60_000)
    tenth = await store.add_agenda_item("s1", BILL_TITLE, "bill-1", 10, 120_000)
    eleventh = await store.add_agenda_item("s1", "เรื่องอื่น ๆ", None, None, None)
    late_first = await store.add_agenda_item("s1", "ย้อนกลับ", None, 1, 180_000)
    assert [first.order, second.order, tenth.order, eleventh.order] == [1, 2, 10, 11]
    assert tenth.bill_id == "bill-1" and tenth.media_ms == 120_000 and eleventh.media_ms is None
    agenda = await store.agenda("s1")
    assert agenda == [first, late_first, second, tenth, eleventh]
    assert await store.current_agenda_item("s1") == late_first


async def test_empty_sitting_has_no_current_items(store: SqliteStore) -> None:
    """A sitting with no agenda or speakers has no current item or speaker."""
    await _sitting(store)
    assert await store.agenda("s1") == []
    assert await store.current_agenda_item("s1") is None
    assert await store.current_speaker("s1") is None


async def test_long_thai_title_round_trips_exactly(store: SqliteStore) -> None:
    """A 500+ character Thai agenda title comes back whole, equal to its NFC form."""
    title = " ".join([BILL_TITLE] * 5)
    assert len(title) > 500
    await _sitting(store)
    item = await store.add_agenda_item("s1", title, None, None, None)
    (stored,) = await store.agenda("s1")
    assert stored.title == unicodedata.normalize("NFC", title) == item.title
    assert len(stored.title) == len(title)


async def test_text_is_normalised_on_write(store: SqliteStore) -> None:
    """Zero-width characters are stripped, whitespace collapsed and text NFC on the way in."""
    await _sitting(store)
    dirty = "\ufeff  ท่าน\u200bประธาน   ที่เคารพ\u2060 " + unicodedata.normalize("NFD", "é")
    segment = await store.add_segment("s1", 0, 1000, dirty, None, None)
    assert segment.text == "ท่านประธาน ที่เคารพ é"
    speaker = await store.add_speaker("s1", "นาย\u200cสมชาย  ใจดี", " ประธาน\u200d ", None)
    assert (speaker.name, speaker.role) == ("นายสมชาย ใจดี", "ประธาน")


async def test_speakers_and_current_speaker(store: SqliteStore) -> None:
    """Speakers round-trip and the current speaker is the most recently added."""
    await _sitting(store)
    a = await store.add_speaker("s1", "นายสมชาย ใจดี", "ประธานวุฒิสภา", 0)
    assert await store.current_speaker("s1") == a
    b = await store.add_speaker("s1", "นางสาวสมหญิง รักชาติ", None, 5_000)
    assert b.role is None and b.media_ms == 5_000 and b.started_at.endswith("Z")
    assert await store.current_speaker("s1") == b


async def test_segments_order_paging_and_seq(store: SqliteStore) -> None:
    """Segments sort by start_ms then id, page by after_id/limit and take their seq later."""
    await _sitting(store)
    item = await store.add_agenda_item("s1", "วาระที่ ๑", None, None, 0)
    speaker = await store.add_speaker("s1", "ประธาน", None, 0)
    late = await store.add_segment("s1", 5_000, 6_000, "สาม", item.id, speaker.id)
    early = await store.add_segment("s1", 1_000, 2_000, "หนึ่ง", item.id, None)
    tie = await store.add_segment("s1", 1_000, 1_500, "สอง", None, speaker.id)
    assert (early.revision, early.seq) == (1, None)
    assert early.wall_time.endswith("Z")
    assert [s.id for s in await store.segments("s1")] == [early.id, tie.id, late.id]
    assert [s.id for s in await store.segments("s1", after_id=late.id)] == [early.id, tie.id]
    assert [s.id for s in await store.segments("s1", limit=1)] == [early.id]
    await store.set_segment_seq(early.id, 42)
    (first, *_) = await store.segments("s1")
    assert first.seq == 42 and first.agenda_item_id == item.id and first.speaker_id is None


async def test_segment_seq_of_unknown_segment_not_found(store: SqliteStore) -> None:
    """Setting the seq of a missing segment raises NotFound."""
    with pytest.raises(NotFound):
        await store.set_segment_seq(999, 1)


async def test_segment_with_unknown_agenda_item_not_found(store: SqliteStore) -> None:
    """A segment pointing at a missing agenda item raises NotFound and is not stored."""
    await _sitting(store)
    with pytest.raises(NotFound):
        await store.add_segment("s1", 0, 10, "x", 12345, None)
    assert await store.segments("s1") == []


async def test_votes_round_trip_and_seq(store: SqliteStore) -> None:
    """Votes round-trip with their counts and take their seq after publishing."""
    await _sitting(store)
    item = await store.add_agenda_item("s1", BILL_TITLE, "bill-7", None, None)
    vote = await store.add_vote("s1", "รับหลักการ", 150, 20, 5, 25, "passed", "bill-7", item.id)
    assert (vote.yes, vote.no, vote.abstain, vote.absent, vote.result) == (150, 20, 5, 25, "passed")
    assert vote.seq is None and vote.recorded_at.endswith("Z")
    other = await store.add_vote("s1", "แปรญัตติ", 10, 180, 0, 10, "rejected", None, None)
    await store.set_vote_seq(vote.id, 7)
    votes = await store.votes("s1")
    assert [v.id for v in votes] == [vote.id, other.id]
    assert votes[0].seq == 7 and votes[0].bill_id == "bill-7" and votes[0].agenda_item_id == item.id


async def test_vote_validation(store: SqliteStore) -> None:
    """An unknown result or negative count is rejected; an unknown vote's seq is NotFound."""
    await _sitting(store)
    with pytest.raises(ValueError):
        await store.add_vote("s1", "m", 1, 0, 0, 0, "tied", None, None)
    with pytest.raises(ValueError):
        await store.add_vote("s1", "m", -1, 0, 0, 0, "passed", None, None)
    with pytest.raises(NotFound):
        await store.set_vote_seq(999, 1)


async def test_bill_upsert(store: SqliteStore) -> None:
    """Upserting a bill inserts it, then replaces title and status in place."""
    assert await store.get_bill("bill-1") is None
    first = await store.upsert_bill("bill-1", BILL_TITLE, None)
    assert await store.get_bill("bill-1") == first
    updated = await store.upsert_bill("bill-1", BILL_TITLE + " (แก้ไข)", "วาระที่ ๒")
    assert updated.status == "วาระที่ ๒" and updated.updated_at >= first.updated_at
    assert await store.get_bill("bill-1") == updated


@pytest.mark.parametrize("write", ["agenda", "speaker", "segment", "vote"])
async def test_writes_to_unknown_sitting_not_found(store: SqliteStore, write: str) -> None:
    """Adding anything under a sitting that does not exist raises NotFound."""
    with pytest.raises(NotFound):
        if write == "agenda":
            await store.add_agenda_item("ghost", "t", None, None, None)
        elif write == "speaker":
            await store.add_speaker("ghost", "n", None, None)
        elif write == "segment":
            await store.add_segment("ghost", 0, 1, "t", None, None)
        else:
            await store.add_vote("ghost", "m", 1, 0, 0, 0, "passed", None, None)


async def test_closed_store_refuses_work(db_path: Path) -> None:
    """Using a store before open or after close raises RuntimeError instead of hanging."""
    s = SqliteStore(db_path)
    with pytest.raises(RuntimeError):
        await s.get_sitting("s1")
    await s.open()
    await s.close()
    with pytest.raises(RuntimeError):
        await _sitting(s)


async def test_everything_survives_reopen(db_path: Path) -> None:
    """After close, a new store on the same file reads back every record exactly."""
    async with SqliteStore(db_path) as first:
        sitting = await _sitting(first)
        sitting = await first.set_sitting_status(sitting.id, "live")
        item = await first.add_agenda_item("s1", BILL_TITLE * 4, "bill-1", None, 0)
        speaker = await first.add_speaker("s1", "ประธาน", "ประธานวุฒิสภา", 0)
        segment = await first.add_segment("s1", 0, 2_500, "ขอเปิดการประชุม", item.id, speaker.id)
        await first.set_segment_seq(segment.id, 3)
        vote = await first.add_vote("s1", "รับหลักการ", 1, 2, 3, 4, "rejected", "bill-1", item.id)
        bill = await first.upsert_bill("bill-1", BILL_TITLE, "รอพิจารณา")
    async with SqliteStore(db_path) as second:
        assert await second.get_sitting("s1") == sitting
        assert await second.list_sittings() == [sitting]
        assert await second.agenda("s1") == [item]
        assert await second.current_speaker("s1") == speaker
        (stored_segment,) = await second.segments("s1")
        assert stored_segment.seq == 3 and stored_segment.text == segment.text
        assert await second.votes("s1") == [vote]
        assert await second.get_bill("bill-1") == bill


def test_write_survives_process_death_without_close(db_path: Path) -> None:
    """A write whose awaitable returned is there even if the process dies without closing."""
    script = textwrap.dedent(
        f"""
        import asyncio, os
        from archive.store_sqlite import SqliteStore

        async def main() -> None:
            store = SqliteStore({str(db_path)!r})
            await store.open()
            await store.create_sitting("s1", "t", "joint", None)
            await store.add_segment("s1", 0, 900, "คำบรรยายสุดท้าย", None, None)
            os._exit(0)  # no close, no checkpoint: only the committed WAL is left

        asyncio.run(main())
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).resolve().parents[1])
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute("SELECT sitting_id, text FROM segments").fetchall()
    finally:
        conn.close()
    assert rows == [("s1", "คำบรรยายสุดท้าย")]


async def test_concurrent_writes_all_land(store: SqliteStore) -> None:
    """Hundreds of writes from concurrent tasks are all stored with distinct ids."""
    await _sitting(store)

    async def write(i: int) -> int:
        segment = await store.add_segment("s1", i * 100, i * 100 + 90, f"ข้อความ {i}", None, None)
        await store.set_segment_seq(segment.id, i)
        return segment.id

    ids = await asyncio.gather(*(write(i) for i in range(300)))
    assert len(set(ids)) == 300
    stored = await store.segments("s1")
    assert [s.seq for s in stored] == list(range(300))
    assert [s.text for s in stored] == [f"ข้อความ {i}" for i in range(300)]


async def test_reads_run_concurrently_with_writes(store: SqliteStore) -> None:
    """Interleaved reads and writes from many tasks all complete with consistent results."""
    await _sitting(store)

    async def writer(i: int) -> None:
        await store.add_speaker("s1", f"ผู้พูด {i}", None, i)

    async def reader() -> int:
        return len(await store.segments("s1")) + (await store.get_sitting("s1") is not None)

    results = await asyncio.gather(*(writer(i) for i in range(50)), *(reader() for _ in range(50)))
    assert all(r == 1 for r in results[50:])
    current = await store.current_speaker("s1")
    assert current is not None and current.name.startswith("ผู้พูด")


async def test_blocked_write_leaves_loop_and_reads_free(store: SqliteStore, db_path: Path) -> None:
    """While a write waits on a database lock, the event loop and store reads keep running."""
    await _sitting(store)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # hold the write lock from outside the store
        pending = asyncio.create_task(store.add_speaker("s1", "ผู้พูด", None, None))
        for _ in range(10):
            await asyncio.sleep(0)
        sitting = await store.get_sitting("s1")
        assert sitting is not None and not pending.done()
        blocker.execute("COMMIT")
        speaker = await pending
    finally:
        blocker.close()
    assert await store.current_speaker("s1") == speaker
