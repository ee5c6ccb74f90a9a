"""The transcript export cache during a live sitting: one render per sitting and format is kept, not one per
version (the whole-service soak's memory creep; docs/benchmarks.md, "Soak (whole service)")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archive import export_cache
from archive.export_cache import ByteLRU, TranscriptExports
from archive.exports import Transcript, render
from archive.models import Segment
from archive.store_sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path):
    store = SqliteStore(tmp_path / "archive.db")
    await store.open()
    await store.create_sitting("live", "การประชุมสด", "senate")
    await store.create_sitting("other", "การประชุมอื่น", "senate")
    try:
        yield store
    finally:
        await store.close()


async def test_a_polled_live_sitting_keeps_one_render_per_format(store: SqliteStore) -> None:
    """A feed polled after every caption: the cache holds only the newest render of each (sitting, format), each
    export has every segment so far, and an unchanged sitting is still served from the cache."""
    exports = TranscriptExports(store)
    other = await store.get_sitting("other")
    assert other is not None
    await store.add_segment("other", 0, 1000, "เปิดประชุม")
    other_vtt = await exports.render(other, "vtt")
    for i in range(30):
        await store.add_segment("live", i * 1000, i * 1000 + 900, f"ข้อความที่ {i}")
        sitting = await store.get_sitting("live")
        assert sitting is not None
        body = await exports.render(sitting, "json")
        assert len(json.loads(body)["segments"]) == i + 1
        vtt = await exports.render(sitting, "vtt")
        assert f"ข้อความที่ {i}" in vtt.decode()
    # Two formats of the live sitting and the other sitting's render; the 58 superseded renders are gone.
    assert len(exports.cache) == 3
    assert exports.cache.size == len(body) + len(vtt) + len(other_vtt)
    assert sitting is not None
    renders = exports.renders
    assert await exports.render(sitting, "json") == body and await exports.render(other, "vtt") == other_vtt
    assert exports.renders == renders


@pytest.mark.fast
def test_discard_where_drops_matching_entries_and_their_bytes() -> None:
    lru = ByteLRU(100)
    lru.put(("a", 1), b"1234")
    lru.put(("a", 2), b"123456")
    lru.put(("b", 1), b"12")
    lru.discard_where(lambda k: k[0] == "a" and k != ("a", 2))  # type: ignore[index]
    assert lru.get(("a", 1)) is None and lru.get(("a", 2)) == b"123456" and lru.get(("b", 1)) == b"12"
    assert len(lru) == 2 and lru.size == 8


@pytest.mark.parametrize("fmt", ["json", "txt", "vtt", "srt"])
async def test_a_render_read_a_page_at_a_time_is_the_whole_document(
    store: SqliteStore, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paged (7 segments a page here) the export is byte for byte the document rendered from every segment at once:
    utterances that span pages are joined, ties in start time stay in id order across a page's edge, SRT counts on."""
    monkeypatch.setattr(export_cache, "PAGE_SEGMENTS", 7)
    texts = ["ขอบคุณท่านประธาน", "ร่างพระราชบัญญัติงบประมาณ", "ปี ๒๕๖๘", "ครับ", "<b>ไม่</b> --> &amp;"]
    for i in range(40):
        start = (i // 3) * 2_000  # three pieces share each start time
        await store.add_segment("live", start, start + 1_500, texts[i % 5] * (1 + i % 4), utterance_id=f"u{i // 5}")
    sitting = await store.get_sitting("live")
    assert sitting is not None
    reads: list[int] = []
    segments_read = store.segments

    async def counted(*args: object, **kwargs: object) -> list[Segment]:
        page = await segments_read(*args, **kwargs)  # type: ignore[arg-type]
        reads.append(len(page))
        return page

    monkeypatch.setattr(store, "segments", counted)
    paged = await TranscriptExports(store).render(sitting, fmt)
    assert reads == [7, 7, 7, 7, 7, 5]
    assert paged == render(fmt, Transcript(sitting, await segments_read("live")))
