"""The PostgreSQL (pg_trgm) search index on a real database, with the corpus and labelled queries of
tests/test_search_sqlite.py: the same results, filters, ranking and paging as the SQLite index."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest
from test_search_sqlite import LABELLED, PLANTED, SITTINGS, SPEAKERS, corpus_lines

from archive import search_postgres as idx
from archive.search import QueryError, fold, parse_query, score
from archive.search_postgres import SearchFilters, SegmentDoc
from archive.store_postgres import PostgresStore

Conn = psycopg.AsyncConnection


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[Conn]:
    conn = await psycopg.AsyncConnection.connect(postgres_url, autocommit=True)
    try:
        await idx.ensure_schema(conn)
        await idx.ensure_schema(conn)  # idempotent
        docs = []
        for n, text in enumerate(corpus_lines(360), start=1):
            sitting, at, chamber = SITTINGS[n % 3]
            item = (n % 3) * 2 + n % 2 + 1
            bill = "bill-a" if item == 2 else None
            docs.append(SegmentDoc(n, sitting, n * 5000, text, at, chamber, SPEAKERS[n % 3], item, bill))
        for n, text in PLANTED.items():
            docs.append(SegmentDoc(n, "s3", n, text, SITTINGS[2][1], "senate", SPEAKERS[0], 5, "bill-b"))
        async with conn.transaction():
            await idx.index_segments(conn, docs)
        yield conn
    finally:
        await conn.close()


async def all_ids(conn: Conn, q: str, filters: SearchFilters | None = None, **kw: int) -> list[int]:
    ids: list[int] = []
    cursor = None
    while True:
        page = await idx.search(conn, q, filters, cursor, **kw)
        ids += [h.segment_id for h in page.hits]
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


async def _column(conn: Conn, query: str) -> list[tuple[object, ...]]:
    cur = await conn.execute(query)
    return list(await cur.fetchall())


async def test_recall_on_labelled_queries_where_a_bare_trigram_search_misses(db: Conn) -> None:
    """Every labelled query finds all its segments; a bare pg_trgm search (LIKE on the raw text) misses some."""
    bare_missed = set()
    for q, expected in LABELLED.items():
        found = set(await all_ids(db, q))
        assert expected <= found, q
        bare = q.strip('"')
        cur = await db.execute("SELECT doc FROM search_docs WHERE text LIKE %s", (f"%{bare}%",))
        bare_found = {r[0] for r in await cur.fetchall()}
        bare_missed |= {(q, i) for i in expected - bare_found}
    # Dots inside an abbreviation, Arabic for Thai digits, a zero-width space and a space inside a phrase.
    assert {("สว", 9001), ("2568", 9002), ("งบประมาณ", 9004), ('"ร่างพระราชบัญญัติ"', 9005)} <= bare_missed
    assert 9006 not in await all_ids(db, "สว")  # สว is not inside สวัสดี


async def test_every_result_contains_the_query(db: Conn) -> None:
    """Results over the corpus are exactly the segments whose folded text holds the term (checked by brute force)."""
    texts = await _column(db, "SELECT doc, text FROM search_docs")
    for q in ["ประชาชน", "สิทธิ", "มาตรา ๒๖", "วุฒิสภา -สภาผู้แทนราษฎร", "ปี"]:
        query = parse_query(q)
        expected = {doc for doc, text in texts if score(query, fold(str(text))) is not None}
        found = await all_ids(db, q)
        assert len(found) == len(set(found))
        assert set(found) == expected and expected, q


async def test_filters(db: Conn) -> None:
    """Each filter narrows to segments with that sitting, date, chamber, speaker, bill or agenda item."""
    rows = {
        r[0]: r
        for r in await _column(
            db, "SELECT doc, sitting_id, day, chamber, speaker, bill_id, agenda_item_id FROM search_docs"
        )
    }
    cases = {
        "sitting": ("s2", 1),
        "from": ("2025-03-05", 2),
        "to": ("2025-03-05", 2),
        "chamber": ("joint", 3),
        "speaker": (SPEAKERS[1], 4),
        "bill": ("bill-a", 5),
        "agenda_item": ("2", 6),
    }
    for key, (value, column) in cases.items():
        ids = await all_ids(db, "ประชาชน", SearchFilters.from_params({key: value}))
        assert ids, key
        for i in ids:
            cell = str(rows[i][column])
            if key == "from":
                assert cell >= value
            elif key == "to":
                assert cell <= value
            else:
                assert cell == value, key
    both = SearchFilters.from_params({"from": "2025-03-01", "to": "2025-03-31", "chamber": "joint"})
    assert {rows[i][1] for i in await all_ids(db, "ประชาชน", both)} == {"s2"}
    assert await all_ids(db, "ประชาชน", SearchFilters.from_params({"from": "2025-05-01", "to": "2025-01-01"})) == []


@pytest.mark.parametrize(
    "params",
    [
        {"sitting": "s2"},
        {"from": "2025-03-01", "to": "2025-06-30"},
        {"from": "2025-03-05"},
        {"chamber": "joint"},
        {"speaker": SPEAKERS[1]},
        {"bill": "bill-a"},
        {"agenda_item": "2"},
        {"chamber": "senate", "speaker": SPEAKERS[0], "from": "2025-01-01", "to": "2025-12-31"},
        {"from": "2025-05-01", "to": "2025-01-01"},
    ],
)
async def test_filters_through_the_index_window_match_the_filtered_scan(db: Conn, params: dict[str, str]) -> None:
    """Filters applied in the GIN scan (facet keys, month keys, id spans) find exactly what a scan of every
    filtered document finds, window after window."""
    filters = SearchFilters.from_params(params)
    for q in ("ประชาชน", "ใน", "งบประมาณ"):
        assert sorted(await all_ids(db, q, filters, window=7)) == sorted(await all_ids(db, q, filters, window=5000))


async def test_sitting_time_moves_the_month_a_date_filter_finds(db: Conn) -> None:
    """set_sitting_time rewrites a sitting's month key: a date filter served by the index finds the moved sitting
    under its new date and not its old one."""
    march = SearchFilters.from_params({"from": "2025-03-01", "to": "2025-03-31"})
    before = await all_ids(db, "ใน", march, window=7)
    assert before
    await idx.set_sitting_time(db, "s2", "2025-09-01T02:30:00.000Z")
    assert await all_ids(db, "ใน", march, window=7) == []
    september = SearchFilters.from_params({"from": "2025-09-01", "to": "2025-09-30"})
    assert sorted(await all_ids(db, "ใน", september, window=7)) == sorted(before)


async def test_an_index_from_before_migration_7_is_keyed_by_backfill(db: Conn) -> None:
    """Rows written before keyed terms (no terms, no facets) are found once backfill has keyed them, in batches."""
    expected = {q: sorted(await all_ids(db, q, window=7)) for q in LABELLED}
    await db.execute("UPDATE search_docs SET terms = NULL, facets = NULL")
    assert await all_ids(db, "งบประมาณ", window=7) == []  # the index window needs keys
    # (366 rows; the store's loop calls it until 0, which a database without the archive's tables cannot reach)
    assert [await idx.backfill(db, limit=100) for _ in range(4)] == [100, 100, 100, 66]
    assert {q: sorted(await all_ids(db, q, window=7)) for q in LABELLED} == expected


async def test_bad_limit_and_cursor_name_the_field(db: Conn) -> None:
    """A limit out of range or a cursor that is not one is refused, naming the field."""
    for limit in (0, 101):
        with pytest.raises(QueryError) as err:
            await idx.search(db, "ประชาชน", limit=limit)
        assert err.value.field == "limit"
    with pytest.raises(QueryError) as err:
        await idx.search(db, "ประชาชน", cursor="eyJ0b3AiOjF9")
    assert err.value.field == "cursor"


async def test_like_characters_in_a_query_are_no_wildcards(db: Conn) -> None:
    """% and _ in a query never act as LIKE wildcards in the index window: a_b does not find axb."""
    async with db.transaction():
        await idx.index_segment(db, 9201, "s1", 0, "อัตรา 50% ของ a_b", sitting_at=SITTINGS[0][1])
        await idx.index_segment(db, 9202, "s1", 0, "อัตรา 5 ของ axb", sitting_at=SITTINGS[0][1])
    assert await all_ids(db, "a_b", window=10) == [9201]
    assert await all_ids(db, "50%", window=10) == [9201]


async def test_ranking_relevance_then_recency(db: Conn) -> None:
    """More occurrences rank first; among equals the more recent sitting comes first."""
    async with db.transaction():
        await idx.index_segment(db, 9101, "s1", 0, "ภาษีอากร ภาษีอากร ภาษีอากร", sitting_at=SITTINGS[0][1])
        await idx.index_segment(db, 9102, "s1", 0, "ภาษีอากรหนึ่งครั้ง", sitting_at=SITTINGS[0][1])
        await idx.index_segment(db, 9103, "s3", 0, "ภาษีอากรอีกครั้ง", sitting_at=SITTINGS[2][1])
    hits = (await idx.search(db, "ภาษีอากร")).hits
    assert [h.segment_id for h in hits if h.segment_id > 9100] == [9101, 9103, 9102]
    three = next(h for h in hits if h.segment_id == 9101)
    assert [s.text for s in three.snippet if s.hit] == ["ภาษีอากร"] * 3
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("window", [idx.SEGMENT_WINDOW, 40])
async def test_pagination_is_complete_and_stable(db: Conn, window: int) -> None:
    """Pages add up to the full result without repeats, across index windows too; new segments do not shift them."""
    full = await all_ids(db, "ใน", limit=100, window=window)
    assert len(full) > 30
    pages: list[int] = []
    page = await idx.search(db, "ใน", limit=7, window=window)
    async with db.transaction():
        await idx.index_segment(db, 99999, "s3", 0, "ในปีใหม่", sitting_at=SITTINGS[2][1])  # arrives while paging
    while True:
        pages += [h.segment_id for h in page.hits]
        if page.next_cursor is None:
            break
        page = await idx.search(db, "ใน", cursor=page.next_cursor, limit=7, window=window)
    assert sorted(pages) == sorted(full) and len(pages) == len(set(pages))
    assert 99999 not in pages
    assert 99999 in await all_ids(db, "ในปีใหม่", window=window)
    if window == 40:
        assert (await idx.search(db, "ใน", window=window)).exhaustive is False
        assert (await idx.search(db, "ใน", SearchFilters(sitting="s1"), window=window * 5)).exhaustive is True


async def test_new_revision_replaces_the_old_text(db: Conn) -> None:
    """After reindex the corrected text is found and the machine draft's words are not; unknown segments say so."""
    assert 9003 in await all_ids(db, "มติ")
    async with db.transaction():
        assert await idx.reindex(db, 9003, "ที่ประชุมลงคะแนนเห็นชอบ")
        assert not await idx.reindex(db, 123456, "ไม่มี")
    assert 9003 not in await all_ids(db, "มติ")
    assert 9003 in await all_ids(db, "ลงคะแนน")
    assert (await idx.search(db, "ลงคะแนน", SearchFilters(bill="bill-b"))).hits[0].segment_id == 9003
    async with db.transaction():
        assert await idx.unindex(db, 9003)
        assert not await idx.unindex(db, 9003)
    assert 9003 not in await all_ids(db, "ลงคะแนน")


async def test_searchable_once_the_write_commits(db: Conn, postgres_url: str) -> None:
    """A segment indexed in the recording write is visible to another connection as soon as that write commits."""
    reader = await psycopg.AsyncConnection.connect(postgres_url, autocommit=True)
    try:
        async with db.transaction():
            await idx.index_segment(
                db, 70000, "s3", 1, "ขอให้ที่ประชุมลงมติครับ", sitting_at=SITTINGS[2][1], speaker=SPEAKERS[2]
            )
            assert 70000 not in await all_ids(reader, "ลงมติ")
        hit = (await idx.search(reader, "ลงมติ", SearchFilters(speaker=SPEAKERS[2]))).hits[0]
        assert (hit.segment_id, hit.sitting_id, hit.day) == (70000, "s3", "2025-06-20")
    finally:
        await reader.close()


async def test_backfill_and_sitting_time_follow_the_archive(postgres_url: str) -> None:
    """Segments missing from the index (an archive older than search) are backfilled in bounded batches with their
    context, and at the store's next open; index_archived re-reads one; set_sitting_time moves a sitting's date."""
    async with PostgresStore(postgres_url) as store:
        await store.create_sitting("s1", "การประชุม", "senate", "2025-01-10T02:30:00.000Z")
        item = await store.add_agenda_item("s1", "ร่างพระราชบัญญัติงบประมาณ", "bill-9", None, None)
        speaker = await store.add_speaker("s1", "นายสมชาย ใจดี", None, None)
        ids = [(await store.add_segment("s1", i, i + 1, f"ปีงบประมาณ {i}", item.id, speaker.id)).id for i in range(5)]
    conn = await psycopg.AsyncConnection.connect(postgres_url, autocommit=True)
    try:
        await conn.execute("DELETE FROM search_docs")
        assert [await idx.backfill(conn, limit=3) for _ in range(3)] == [3, 2, 0]
        hits = (await idx.search(conn, "งบประมาณ", SearchFilters(bill="bill-9", speaker="นายสมชาย ใจดี"))).hits
        assert sorted(h.segment_id for h in hits) == ids and {h.day for h in hits} == {"2025-01-10"}
        assert await idx.index_archived(conn, ids[0]) and not await idx.index_archived(conn, 999_999)
        await idx.set_sitting_time(conn, "s1", "2025-02-01T02:30:00.000Z")
        assert {h.day for h in (await idx.search(conn, "งบประมาณ")).hits} == {"2025-02-01"}
        await conn.execute("DELETE FROM search_docs")
    finally:
        await conn.close()
    async with PostgresStore(postgres_url) as store:
        assert sorted(h.segment_id for h in (await store.search("งบประมาณ")).hits) == ids


async def test_bulk_copy_then_indexes_finds_what_index_segments_finds(db: Conn) -> None:
    """copy_segments into an index whose indexes were dropped, then rebuilt by ensure_schema, answers the same."""
    before = {q: set(await all_ids(db, q)) for q in LABELLED}
    cur = await db.execute("SELECT doc, sitting_id, start_ms, text FROM search_docs ORDER BY doc")
    rows = await cur.fetchall()
    await db.execute("TRUNCATE search_docs")
    await idx.drop_indexes(db)
    async with db.transaction():
        docs = [SegmentDoc(r[0], r[1], r[2], r[3], SITTINGS[2][1], "senate", SPEAKERS[0]) for r in rows]
        assert await idx.copy_segments(db, docs) == len(rows)
    await idx.ensure_schema(db)
    cur = await db.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'search_docs'")
    assert (await cur.fetchone()) == (len(idx._INDEXES) + 1,)  # and the primary key
    assert {q: set(await all_ids(db, q)) for q in LABELLED} == before  # (ranked otherwise: other sittings)


# search_postgres's schema as it was before migration 7 (created by ensure_schema, outside the migrations).
_SCHEMA_6 = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE TABLE search_docs (
    doc BIGINT PRIMARY KEY, sitting_id TEXT NOT NULL, start_ms BIGINT NOT NULL, at BIGINT NOT NULL, day TEXT NOT NULL,
    chamber TEXT, speaker TEXT, agenda_item_id BIGINT, bill_id TEXT, text TEXT NOT NULL, folded TEXT NOT NULL
);
CREATE INDEX search_docs_folded_trgm ON search_docs USING gin (folded gin_trgm_ops);
"""


async def test_a_store_at_schema_6_upgrades_and_keys_its_index(postgres_url: str) -> None:
    """A database at schema 6 with a pg_trgm index opens at schema 7: the trigram index is gone, every indexed row
    is keyed before the store serves, and searches through the index window find them."""
    from archive.store_postgres import _MIGRATIONS, SCHEMA_VERSION

    conn = await psycopg.AsyncConnection.connect(postgres_url, autocommit=True)
    try:
        async with conn.transaction():
            await conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            for version, sql in enumerate(_MIGRATIONS[:6], start=1):
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_version VALUES (%s, '2025-01-01T00:00:00Z')", (version,))
            await conn.execute(_SCHEMA_6)
            rows = [
                (n, "s1", n * 1000, 1_736_476_200_000 + n, "2025-01-10", "senate", None, None, None, t, fold(t))
                for n, t in enumerate(corpus_lines(60), start=1)
            ]
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO search_docs VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows
                )
        expected = sorted(n for n, *_, folded in rows if score(parse_query("ใน"), folded) is not None)
        async with PostgresStore(postgres_url) as store:
            cur = await conn.execute("SELECT max(version) FROM schema_version")
            assert await cur.fetchone() == (SCHEMA_VERSION,)
            cur = await conn.execute("SELECT count(*) FROM search_docs WHERE terms IS NULL OR facets IS NULL")
            assert await cur.fetchone() == (0,)
            cur = await conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'search_docs'")
            assert "search_docs_folded_trgm" not in {r[0] for r in await cur.fetchall()}
            assert expected and sorted(await all_ids(conn, "ใน", window=5)) == expected
            assert (await store.search("ใน", limit=100)).hits
    finally:
        await conn.close()
