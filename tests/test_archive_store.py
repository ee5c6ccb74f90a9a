"""The one Store suite, run against SqliteStore on a real file and PostgresStore on a real database: every method,
errors, durability and concurrency. Checks that only make sense for one backend (WAL mode, the schema_version
table, what PostgreSQL does when a connection dies) are in their own modules' tests."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import textwrap
import unicodedata
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from archive.models import Sitting
from archive.search import QueryError
from archive.store import Conflict, NotFound, Store
from archive.store_postgres import WRITE_LOCK, PostgresStore
from archive.store_sqlite import SCHEMA_VERSION, SqliteStore

# A real-style Thai bill title; repeated below to pass 500 characters as long agenda items do.
BILL_TITLE = (
    "ร่างพระราชบัญญัติแก้ไขเพิ่มเติมประมวลกฎหมายอาญา (ฉบับที่ ..) พ.ศ. .... ซึ่งคณะรัฐมนตรีเป็นผู้เสนอ และสภาผู้แทนราษฎรลงมติเห็นชอบแล้ว"
)


@dataclass(frozen=True)
class Backend:
    """Where one backend's archive lives, and how to open a store on it."""

    name: str
    location: str  # the SQLite file's path, or the PostgreSQL database's URL

    def store(self) -> Store:
        if self.name == "sqlite":
            return SqliteStore(self.location)
        return PostgresStore(self.location)

    def constructor(self) -> str:
        """Python source that builds the same store, for a subprocess."""
        if self.name == "sqlite":
            return f"__import__('archive.store_sqlite').store_sqlite.SqliteStore({self.location!r})"
        return f"__import__('archive.store_postgres').store_postgres.PostgresStore({self.location!r})"

    @contextlib.contextmanager
    def writes_blocked(self) -> Iterator[None]:
        """Hold the database's write lock from outside the store (as another process would) until the block ends."""
        if self.name == "sqlite":
            blocker = sqlite3.connect(self.location, isolation_level=None)
            try:
                blocker.execute("BEGIN IMMEDIATE")
                yield
                blocker.execute("COMMIT")
            finally:
                blocker.close()
        else:
            with psycopg.connect(self.location, autocommit=True) as conn:
                conn.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))
                yield
                conn.execute("SELECT pg_advisory_unlock(%s)", (WRITE_LOCK,))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", str(tmp_path / "nested" / "dir" / "archive.sqlite3"))
    return Backend("postgres", request.getfixturevalue("postgres_url"))


@contextlib.asynccontextmanager
async def opened(backend: Backend) -> AsyncIterator[Store]:
    s = backend.store()
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    async with opened(backend) as s:
        yield s


async def _sitting(store: Store, id: str = "s1") -> Sitting:
    return await store.create_sitting(id, "การประชุมวุฒิสภา ครั้งที่ ๑", "senate", "2026-05-01T09:30:00Z")


async def test_sqlite_open_creates_parent_dirs_wal_and_schema(tmp_path: Path) -> None:
    """Opening a SQLite store creates missing parent dirs, a WAL-mode file and the current schema version."""
    db_path = tmp_path / "nested" / "dir" / "archive.sqlite3"
    async with opened(Backend("sqlite", str(db_path))):
        assert db_path.is_file()
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


async def test_sitting_round_trip(store: Store) -> None:
    """A created sitting reads back identically, scheduled, with UTC 'Z' timestamps."""
    created = await _sitting(store)
    assert created.status == "scheduled"
    assert created.created_at.endswith("Z")
    assert created.started_at is None and created.ended_at is None
    assert await store.get_sitting("s1") == created
    assert created.to_dict()["scheduled_at"] == "2026-05-01T09:30:00Z"


async def test_missing_sitting_is_none(store: Store) -> None:
    """Getting an unknown sitting returns None rather than raising."""
    assert await store.get_sitting("nope") is None


async def test_duplicate_sitting_conflicts(store: Store) -> None:
    """Creating a sitting with an existing id raises Conflict and leaves the original alone."""
    original = await _sitting(store)
    with pytest.raises(Conflict):
        await store.create_sitting("s1", "other", "joint", None)
    assert await store.get_sitting("s1") == original


async def test_invalid_chamber_rejected(store: Store) -> None:
    """A chamber outside senate/joint/committee raises ValueError."""
    with pytest.raises(ValueError):
        await store.create_sitting("s1", "t", "house", None)


async def test_list_sittings_newest_first_with_paging(store: Store) -> None:
    """Sittings list newest first and limit/offset page through them."""
    for i in range(5):
        await store.create_sitting(f"s{i}", f"sitting {i}", "committee", None)
    listed = await store.list_sittings()
    assert [s.id for s in listed] == ["s4", "s3", "s2", "s1", "s0"]
    page = await store.list_sittings(limit=2, offset=1)
    assert [s.id for s in page] == ["s3", "s2"]


async def test_status_timestamps(store: Store) -> None:
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


async def test_status_of_unknown_sitting_not_found(store: Store) -> None:
    """Changing the status of a missing sitting raises NotFound."""
    with pytest.raises(NotFound):
        await store.set_sitting_status("nope", "live")


async def test_invalid_status_rejected(store: Store) -> None:
    """A status outside scheduled/live/adjourned raises ValueError."""
    await _sitting(store)
    with pytest.raises(ValueError):
        await store.set_sitting_status("s1", "paused")


async def test_agenda_order_and_current_item(store: Store) -> None:
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


async def test_empty_sitting_has_no_current_items(store: Store) -> None:
    """A sitting with no agenda or speakers has no current item or speaker."""
    await _sitting(store)
    assert await store.agenda("s1") == []
    assert await store.current_agenda_item("s1") is None
    assert await store.current_speaker("s1") is None


async def test_long_thai_title_round_trips_exactly(store: Store) -> None:
    """A 500+ character Thai agenda title comes back whole, equal to its NFC form."""
    title = " ".join([BILL_TITLE] * 5)
    assert len(title) > 500
    await _sitting(store)
    item = await store.add_agenda_item("s1", title, None, None, None)
    (stored,) = await store.agenda("s1")
    assert stored.title == unicodedata.normalize("NFC", title) == item.title
    assert len(stored.title) == len(title)


async def test_text_is_normalised_on_write(store: Store) -> None:
    """Zero-width characters are stripped, whitespace collapsed and text NFC on the way in."""
    await _sitting(store)
    dirty = "\ufeff  ท่าน\u200bประธาน   ที่เคารพ\u2060 " + unicodedata.normalize("NFD", "é")
    segment = await store.add_segment("s1", 0, 1000, dirty, None, None)
    assert segment.text == "ท่านประธาน ที่เคารพ é"
    speaker = await store.add_speaker("s1", "นาย\u200cสมชาย  ใจดี", " ประธาน\u200d ", None)
    assert (speaker.name, speaker.role) == ("นายสมชาย ใจดี", "ประธาน")


async def test_speakers_and_current_speaker(store: Store) -> None:
    """Speakers round-trip and the current speaker is the most recently added."""
    await _sitting(store)
    a = await store.add_speaker("s1", "นายสมชาย ใจดี", "ประธานวุฒิสภา", 0)
    assert await store.current_speaker("s1") == a
    b = await store.add_speaker("s1", "นางสาวสมหญิง รักชาติ", None, 5_000)
    assert b.role is None and b.media_ms == 5_000 and b.started_at.endswith("Z")
    assert await store.current_speaker("s1") == b


async def test_segments_order_paging_and_seq(store: Store) -> None:
    """Segments sort by start_ms then id, page by (start_ms, id) and limit, and take their seq later."""
    await _sitting(store)
    item = await store.add_agenda_item("s1", "วาระที่ ๑", None, None, 0)
    speaker = await store.add_speaker("s1", "ประธาน", None, 0)
    late = await store.add_segment("s1", 5_000, 6_000, "สาม", item.id, speaker.id)
    early = await store.add_segment("s1", 1_000, 2_000, "หนึ่ง", item.id, None)
    tie = await store.add_segment("s1", 1_000, 1_500, "สอง", None, speaker.id)
    assert (early.revision, early.seq) == (1, None)
    assert early.wall_time.endswith("Z")
    assert [s.id for s in await store.segments("s1")] == [early.id, tie.id, late.id]
    assert [s.id for s in await store.segments("s1", after=(early.start_ms, early.id))] == [tie.id, late.id]
    assert [s.id for s in await store.segments("s1", after=(tie.start_ms, tie.id))] == [late.id]
    assert await store.segments("s1", after=(late.start_ms, late.id)) == []
    assert [s.id for s in await store.segments("s1", limit=1)] == [early.id]
    await store.set_segment_seq(early.id, 42)
    (first, *_) = await store.segments("s1")
    assert first.seq == 42 and first.agenda_item_id == item.id and first.speaker_id is None


async def test_segment_seq_of_unknown_segment_not_found(store: Store) -> None:
    """Setting the seq of a missing segment raises NotFound."""
    with pytest.raises(NotFound):
        await store.set_segment_seq(999, 1)


async def test_segment_with_unknown_agenda_item_not_found(store: Store) -> None:
    """A segment pointing at a missing agenda item raises NotFound and is not stored."""
    await _sitting(store)
    with pytest.raises(NotFound):
        await store.add_segment("s1", 0, 10, "x", 12345, None)
    assert await store.segments("s1") == []


async def test_votes_round_trip_and_seq(store: Store) -> None:
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


async def test_vote_validation(store: Store) -> None:
    """An unknown result or negative count is rejected; an unknown vote's seq is NotFound."""
    await _sitting(store)
    with pytest.raises(ValueError):
        await store.add_vote("s1", "m", 1, 0, 0, 0, "tied", None, None)
    with pytest.raises(ValueError):
        await store.add_vote("s1", "m", -1, 0, 0, 0, "passed", None, None)
    with pytest.raises(NotFound):
        await store.set_vote_seq(999, 1)


async def test_bill_upsert(store: Store) -> None:
    """Upserting a bill inserts it, then replaces title and status in place."""
    assert await store.get_bill("bill-1") is None
    first = await store.upsert_bill("bill-1", BILL_TITLE, None)
    assert await store.get_bill("bill-1") == first
    updated = await store.upsert_bill("bill-1", BILL_TITLE + " (แก้ไข)", "วาระที่ ๒")
    assert updated.status == "วาระที่ ๒" and updated.updated_at >= first.updated_at
    assert await store.get_bill("bill-1") == updated


async def test_corrections_keep_the_draft_and_the_permalink(store: Store) -> None:
    """A correction becomes the segment's text under the same id and seq; the machine draft stays as revision 1."""
    await _sitting(store)
    draft = await store.add_segment("s1", 0, 1_000, "ขอเปิดการประชุน", None, None)
    await store.set_segment_seq(draft.id, 9)
    assert [(r.revision, r.author) for r in await store.segment_revisions(draft.id)] == [(1, "machine")]
    fixed = await store.revise_segment(draft.id, " ขอเปิด\u200bการประชุม ", "บรรณาธิการ")
    assert (fixed.id, fixed.seq, fixed.revision, fixed.text) == (draft.id, 9, 2, "ขอเปิดการประชุม")
    again = await store.revise_segment(draft.id, "ขอเปิดการประชุมครับ", "บรรณาธิการ")
    assert await store.get_segment(draft.id) == again
    revisions = await store.segment_revisions(draft.id)
    assert [(r.revision, r.text, r.author) for r in revisions] == [
        (1, "ขอเปิดการประชุน", "machine"),
        (2, "ขอเปิดการประชุม", "บรรณาธิการ"),
        (3, "ขอเปิดการประชุมครับ", "บรรณาธิการ"),
    ]
    with pytest.raises(ValueError):
        await store.revise_segment(draft.id, " \u200b ", "x")
    with pytest.raises(NotFound):
        await store.revise_segment(999_999, "x", "x")
    assert await store.segment_revisions(999_999) == [] and await store.get_segment(999_999) is None


async def test_neighbours_review_and_speakers(store: Store) -> None:
    """Neighbours come in media order on each side; review marks and unmarks a sitting; speakers list in order."""
    await _sitting(store)
    segments = [await store.add_segment("s1", i * 1_000, i * 1_000 + 900, f"ข้อ {i}", None, None) for i in range(5)]
    before, after = await store.segment_neighbours(segments[2], 2, 1)
    assert [s.id for s in before] == [segments[0].id, segments[1].id] and [s.id for s in after] == [segments[3].id]
    reviewed = await store.set_sitting_reviewed("s1", True)
    assert reviewed.reviewed_at is not None and (await store.get_sitting("s1")) == reviewed
    assert (await store.set_sitting_reviewed("s1", False)).reviewed_at is None
    with pytest.raises(NotFound):
        await store.set_sitting_reviewed("ghost", True)
    a = await store.add_speaker("s1", "ก", None, None)
    b = await store.add_speaker("s1", "ข", None, None)
    assert await store.speakers("s1") == [a, b]


async def test_bill_record_gathers_agenda_votes_and_mentions(store: Store) -> None:
    """A bill's record holds the sittings, agenda items, votes and linked segments about it, newest first."""
    await _sitting(store)
    await store.create_sitting("s2", "การประชุมวุฒิสภา ครั้งที่ ๒", "senate", "2026-05-08T09:30:00Z")
    bill = await store.upsert_bill("bill-1", BILL_TITLE, None)
    await store.upsert_bill("bill-0", "ร่างอื่น", None)
    item = await store.add_agenda_item("s1", BILL_TITLE, "bill-1", None, None)
    vote = await store.add_vote("s1", "รับหลักการ", 1, 0, 0, 0, "passed", "bill-1", item.id)
    mention = await store.add_segment("s2", 0, 1_000, "ตามร่างพระราชบัญญัติ", None, None)
    await store.link_bills(mention.id, ["bill-1", "bill-1", "bill-0"])
    assert await store.segment_bills(mention.id) == ["bill-0", "bill-1"]
    await store.link_bills(mention.id, ["bill-1"])
    assert await store.segment_bills(mention.id) == ["bill-1"]
    with pytest.raises(NotFound):
        await store.link_bills(999_999, ["bill-1"])
    assert [b.id for b in await store.list_bills()] == ["bill-0", "bill-1"]
    record = await store.bill_record("bill-1")
    assert record is not None and record.bill == bill
    assert [s.id for s in record.sittings] == ["s2", "s1"]
    assert record.agenda_items == [item] and record.votes == [vote] and [s.id for s in record.segments] == [mention.id]
    assert await store.bill_record("nope") is None


async def test_search_follows_recording_and_corrections(store: Store) -> None:
    """A final is searchable once its write returns, inside compounds too; a correction replaces its text; bad
    input is a QueryError naming the field."""
    await _sitting(store)
    speaker = await store.add_speaker("s1", "นายสมชาย ใจดี", None, None)
    segment = await store.add_segment("s1", 0, 1_000, "ในปีงบประมาณ ๒๕๖๘ ที่ประชุมมีมติ", None, speaker.id)
    (hit,) = (await store.search("งบประมาณ 2568")).hits
    assert (hit.segment_id, hit.sitting_id, hit.speaker) == (segment.id, "s1", "นายสมชาย ใจดี")
    await store.revise_segment(segment.id, "ในปีงบประมาณ ๒๕๖๘ ที่ประชุมลงคะแนน", "บรรณาธิการ")
    assert (await store.search("มติ")).hits == []
    assert [h.segment_id for h in (await store.search("ลงคะแนน")).hits] == [segment.id]
    with pytest.raises(QueryError) as err:
        await store.search('"unbalanced')
    assert err.value.field == "q"


@pytest.mark.parametrize("write", ["agenda", "speaker", "segment", "vote"])
async def test_writes_to_unknown_sitting_not_found(store: Store, write: str) -> None:
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


async def test_closed_store_refuses_work(backend: Backend) -> None:
    """Using a store before open or after close raises RuntimeError instead of hanging."""
    s = backend.store()
    with pytest.raises(RuntimeError):
        await s.get_sitting("s1")
    await s.open()
    await s.close()
    with pytest.raises(RuntimeError):
        await _sitting(s)


async def test_everything_survives_reopen(backend: Backend) -> None:
    """After close, a new store on the same database migrates nothing and reads back every record exactly."""
    async with opened(backend) as first:
        sitting = await _sitting(first)
        sitting = await first.set_sitting_status(sitting.id, "live")
        item = await first.add_agenda_item("s1", BILL_TITLE * 4, "bill-1", None, 0)
        speaker = await first.add_speaker("s1", "ประธาน", "ประธานวุฒิสภา", 0)
        segment = await first.add_segment("s1", 0, 2_500, "ขอเปิดการประชุม", item.id, speaker.id)
        await first.set_segment_seq(segment.id, 3)
        vote = await first.add_vote("s1", "รับหลักการ", 1, 2, 3, 4, "rejected", "bill-1", item.id)
        bill = await first.upsert_bill("bill-1", BILL_TITLE, "รอพิจารณา")
    async with opened(backend) as second:
        assert await second.get_sitting("s1") == sitting
        assert await second.list_sittings() == [sitting]
        assert await second.agenda("s1") == [item]
        assert await second.current_speaker("s1") == speaker
        (stored_segment,) = await second.segments("s1")
        assert stored_segment.seq == 3 and stored_segment.text == segment.text
        assert await second.votes("s1") == [vote]
        assert await second.get_bill("bill-1") == bill


def test_write_survives_process_death_without_close(backend: Backend) -> None:
    """A write whose awaitable returned is there even if the process dies without closing."""
    script = textwrap.dedent(
        f"""
        import asyncio, os

        async def main() -> None:
            store = {backend.constructor()}
            await store.open()
            await store.create_sitting("s1", "t", "joint", None)
            await store.add_segment("s1", 0, 900, "คำบรรยายสุดท้าย", None, None)
            os._exit(0)  # no close, no checkpoint, connections dropped: only what was committed is left

        asyncio.run(main())
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).resolve().parents[1])

    async def read_back() -> list[tuple[str, str]]:
        async with opened(backend) as store:
            return [(s.sitting_id, s.text) for s in await store.segments("s1")]

    assert asyncio.run(read_back()) == [("s1", "คำบรรยายสุดท้าย")]


async def test_concurrent_writes_all_land(store: Store) -> None:
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


async def test_reads_run_concurrently_with_writes(store: Store) -> None:
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


async def test_blocked_write_leaves_loop_and_reads_free(store: Store, backend: Backend) -> None:
    """While a write waits on a database lock, the event loop and store reads keep running."""
    await _sitting(store)
    with backend.writes_blocked():  # hold the write lock from outside the store
        pending = asyncio.create_task(store.add_speaker("s1", "ผู้พูด", None, None))
        for _ in range(10):
            await asyncio.sleep(0)
        sitting = await store.get_sitting("s1")
        assert sitting is not None and not pending.done()
    speaker = await pending
    assert await store.current_speaker("s1") == speaker
