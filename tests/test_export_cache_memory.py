"""The transcript export cache during a live sitting: one render per sitting and format is kept, not one per
version (the whole-service soak's memory creep; docs/benchmarks.md, "Soak (whole service)")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archive.export_cache import ByteLRU, TranscriptExports
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
