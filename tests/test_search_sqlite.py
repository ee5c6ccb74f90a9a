"""The SQLite search index on a real database file of Thai transcript segments taken from the 2017 Constitution."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive import search_sqlite as idx
from archive.search import QueryError
from archive.search_sqlite import SearchFilters, SegmentDoc
from common.thai import words

TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "text" / "constitution"
CONSTITUTION = TEXT / "constitution_th_2560_full_krisdika_774606.txt"
SITTINGS = [
    ("s1", "2025-01-10T02:30:00.000Z", "senate"),
    ("s2", "2025-03-05T02:30:00.000Z", "joint"),
    ("s3", "2025-06-20T02:30:00.000Z", "senate"),
]
SPEAKERS = ["นายสมชาย ใจดี", "นางสาวสมหญิง รักชาติ", "พลเอกสมปอง กล้าหาญ"]
# Planted segments, each labelled with the queries that must find it. The bare references miss them (see below).
PLANTED = {
    9001: "ส.ว. สมปอง กล่าวว่า ขอบคุณท่านประธาน",
    9002: "ในปีงบประมาณ ๒๕๖๘ รัฐบาลตั้งงบไว้",
    9003: "ที่ประชุมมีมติเห็นชอบ",
    9004: "งบ\u200bประมาณรายจ่ายของกระทรวง",
    9005: "ร่าง พระราชบัญญัติ ภาษีที่ดิน",
    9006: "สวัสดีครับท่านสมาชิก",
}
LABELLED = {
    "สว": {9001},
    "ปี": {9002},
    "2568": {9002},
    "งบประมาณ": {9002, 9004},
    "มติ": {9003},
    '"ร่างพระราชบัญญัติ"': {9005},
}


def corpus_lines(limit: int) -> list[str]:
    """Pieces of the constitution the length of caption segments (40–160 characters)."""
    if not CONSTITUTION.exists():
        pytest.skip(f"{CONSTITUTION} is missing")
    out: list[str] = []
    for line in CONSTITUTION.read_text(encoding="utf-8").splitlines():
        line = " ".join(line.split())
        while len(line) >= 40 and len(out) < limit:
            out.append(line[:160])
            line = line[160:]
    return out


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(tmp_path / "archive.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    idx.ensure_schema(conn)
    idx.ensure_schema(conn)  # idempotent
    docs = []
    for n, text in enumerate(corpus_lines(360), start=1):
        sitting, at, chamber = SITTINGS[n % 3]
        item = (n % 3) * 2 + n % 2 + 1
        docs.append(
            SegmentDoc(n, sitting, n * 5000, text, at, chamber, SPEAKERS[n % 3], item, "bill-a" if item == 2 else None)
        )
    for n, text in PLANTED.items():
        docs.append(SegmentDoc(n, "s3", n, text, SITTINGS[2][1], "senate", SPEAKERS[0], 5, "bill-b"))
    conn.execute("BEGIN")
    idx.index_segments(conn, docs)
    conn.execute("COMMIT")
    yield conn
    conn.close()


def all_ids(conn: sqlite3.Connection, q: str, filters: SearchFilters | None = None, **kw: int) -> list[int]:
    ids: list[int] = []
    cursor = None
    while True:
        page = idx.search(conn, q, filters, cursor, **kw)
        ids += [h.segment_id for h in page.hits]
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def test_recall_on_labelled_queries_where_bare_references_miss(db: sqlite3.Connection) -> None:
    """Every labelled query finds all its segments; a bare FTS5 trigram index and a newmm word index each miss some."""
    db.execute("CREATE VIRTUAL TABLE ref_trigram USING fts5(text, tokenize='trigram')")
    db.executemany("INSERT INTO ref_trigram (rowid, text) VALUES (?, ?)", list(PLANTED.items()))
    trigram_missed, words_missed = set(), set()
    for q, expected in LABELLED.items():
        found = set(all_ids(db, q))
        assert expected <= found, q
        bare = q.strip('"')
        trigram = {r[0] for r in db.execute("SELECT rowid FROM ref_trigram WHERE ref_trigram MATCH ?", (f'"{bare}"',))}
        trigram_missed |= {(q, i) for i in expected - trigram}
        word_index = {i for i, text in PLANTED.items() if bare in words(text)}
        words_missed |= {(q, i) for i in expected - word_index}
    # Short words, Arabic for Thai digits, a zero-width space and a space inside a phrase defeat bare trigrams;
    # compounds (ปีงบประมาณ, มีมติ) defeat the word index.
    assert {("สว", 9001), ("ปี", 9002), ("2568", 9002), ("งบประมาณ", 9004)} <= trigram_missed
    assert ('"ร่างพระราชบัญญัติ"', 9005) in trigram_missed
    assert {("งบประมาณ", 9002), ("มติ", 9003)} <= words_missed
    assert 9006 not in all_ids(db, "สว")  # สว is not inside สวัสดี


def test_every_result_contains_the_query(db: sqlite3.Connection) -> None:
    """Results over the corpus are exactly the segments whose folded text holds the term (checked by brute force)."""
    from archive.search import fold, parse_query, score

    for q in ["ประชาชน", "สิทธิ", "มาตรา ๒๖", "วุฒิสภา -สภาผู้แทนราษฎร", "ปี"]:
        query = parse_query(q)
        expected = {
            r[0] for r in db.execute("SELECT doc, text FROM search_docs") if score(query, fold(r[1])) is not None
        }
        found = all_ids(db, q)
        assert len(found) == len(set(found))
        assert set(found) == expected and expected, q


def test_filters(db: sqlite3.Connection) -> None:
    """Each filter narrows to segments with that sitting, date, chamber, speaker, bill or agenda item."""
    rows = {
        r[0]: r
        for r in db.execute("SELECT doc, sitting_id, day, chamber, speaker, bill_id, agenda_item_id FROM search_docs")
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
        ids = all_ids(db, "ประชาชน", SearchFilters.from_params({key: value}))
        assert ids, key
        for i in ids:
            cell = rows[i][column]
            if key == "from":
                assert cell >= value
            elif key == "to":
                assert cell <= value
            else:
                assert str(cell) == value, key
    both = SearchFilters.from_params({"from": "2025-03-01", "to": "2025-03-31", "chamber": "joint"})
    assert {rows[i][1] for i in all_ids(db, "ประชาชน", both)} == {"s2"}
    # A range that ends before it starts is empty, not an error.
    assert all_ids(db, "ประชาชน", SearchFilters.from_params({"from": "2025-05-01", "to": "2025-01-01"})) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sitter": "s1"}, "sitter"),
        ({"from": "2025-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"chamber": "house"}, "chamber"),
        ({"agenda_item": "two"}, "agenda_item"),
        ({"speaker": ""}, "speaker"),
    ],
)
def test_bad_filters_name_the_field(params: dict[str, str], field: str) -> None:
    """An unknown filter or a bad value raises QueryError naming that parameter."""
    with pytest.raises(QueryError) as err:
        SearchFilters.from_params(params)
    assert err.value.field == field


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
def test_filters_through_the_index_window_match_the_filtered_scan(
    db: sqlite3.Connection, params: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Filters tested by index probes on the FTS5 candidates, with the candidate cap cutting windows short, find
    exactly what a scan of every filtered document finds."""
    filters = SearchFilters.from_params(params)
    for factor in (idx.CANDIDATE_FACTOR, 2):
        monkeypatch.setattr(idx, "CANDIDATE_FACTOR", factor)
        for q in ("ประชาชน", "ใน", "งบประมาณ"):
            assert sorted(all_ids(db, q, filters, window=7)) == sorted(all_ids(db, q, filters, window=5000))


def test_bad_limit_and_cursor_name_the_field(db: sqlite3.Connection) -> None:
    """A limit out of range or a cursor that is not one is refused, naming the field."""
    for limit in (0, 101):
        with pytest.raises(QueryError) as err:
            idx.search(db, "ประชาชน", limit=limit)
        assert err.value.field == "limit"
    with pytest.raises(QueryError) as err:
        idx.search(db, "ประชาชน", cursor="eyJ0b3AiOjF9")
    assert err.value.field == "cursor"


def test_ranking_relevance_then_recency(db: sqlite3.Connection) -> None:
    """More occurrences rank first; among equals the more recent sitting comes first."""
    conn = db
    conn.execute("BEGIN")
    idx.index_segment(conn, 9101, "s1", 0, "ภาษีอากร ภาษีอากร ภาษีอากร", sitting_at=SITTINGS[0][1])
    idx.index_segment(conn, 9102, "s1", 0, "ภาษีอากรหนึ่งครั้ง", sitting_at=SITTINGS[0][1])
    idx.index_segment(conn, 9103, "s3", 0, "ภาษีอากรอีกครั้ง", sitting_at=SITTINGS[2][1])
    conn.execute("COMMIT")
    hits = idx.search(conn, "ภาษีอากร").hits
    top = [h.segment_id for h in hits if h.segment_id > 9100]
    assert top == [9101, 9103, 9102]
    three = next(h for h in hits if h.segment_id == 9101)
    assert [s.text for s in three.snippet if s.hit] == ["ภาษีอากร"] * 3
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("window", [idx.SEGMENT_WINDOW, 40])
def test_pagination_is_complete_and_stable(db: sqlite3.Connection, window: int) -> None:
    """Pages add up to the full result without repeats, across index windows too; new segments do not shift them."""
    full = all_ids(db, "ใน", limit=100, window=window)
    assert len(full) > 30
    pages: list[int] = []
    page = idx.search(db, "ใน", limit=7, window=window)
    db.execute("BEGIN")
    idx.index_segment(db, 99999, "s3", 0, "ในปีใหม่", sitting_at=SITTINGS[2][1])  # arrives while a reader pages
    db.execute("COMMIT")
    while True:
        pages += [h.segment_id for h in page.hits]
        if page.next_cursor is None:
            break
        page = idx.search(db, "ใน", cursor=page.next_cursor, limit=7, window=window)
    assert sorted(pages) == sorted(full) and len(pages) == len(set(pages))
    assert 99999 not in pages
    assert 99999 in all_ids(db, "ในปีใหม่", window=window)
    if window == 40:
        assert idx.search(db, "ใน", window=window).exhaustive is False
        # Within the filtered scan (one sitting) the ranking is complete.
        assert idx.search(db, "ใน", SearchFilters(sitting="s1"), window=window * 5).exhaustive is True


def test_new_revision_replaces_the_old_text(db: sqlite3.Connection) -> None:
    """After reindex the corrected text is found and the machine draft's words are not; unknown segments say so."""
    assert 9003 in all_ids(db, "มติ")
    db.execute("BEGIN")
    assert idx.reindex(db, 9003, "ที่ประชุมลงคะแนนเห็นชอบ")
    assert not idx.reindex(db, 123456, "ไม่มี")
    db.execute("COMMIT")
    assert 9003 not in all_ids(db, "มติ")
    assert 9003 in all_ids(db, "ลงคะแนน")
    assert idx.search(db, "ลงคะแนน", SearchFilters(bill="bill-b")).hits[0].segment_id == 9003
    db.execute("BEGIN")
    assert idx.unindex(db, 9003)
    db.execute("COMMIT")
    assert 9003 not in all_ids(db, "ลงคะแนน")
    db.execute("INSERT INTO search_terms (search_terms) VALUES ('integrity-check')")


def test_searchable_once_the_write_commits(tmp_path: Path, db: sqlite3.Connection) -> None:
    """A segment indexed in the recording write is visible to another connection as soon as that write commits."""
    path = db.execute("PRAGMA database_list").fetchone()[2]
    reader = sqlite3.connect(path)
    db.execute("BEGIN")
    idx.index_segment(db, 70000, "s3", 1, "ขอให้ที่ประชุมลงมติครับ", sitting_at=SITTINGS[2][1], speaker=SPEAKERS[2])
    assert 70000 not in all_ids(reader, "ลงมติ")
    db.execute("COMMIT")
    hit = idx.search(reader, "ลงมติ", SearchFilters(speaker=SPEAKERS[2])).hits[0]
    assert (hit.segment_id, hit.sitting_id, hit.day) == (70000, "s3", "2025-06-20")
    reader.close()


async def test_a_store_at_schema_6_with_its_search_index_opens_at_schema_7(tmp_path: Path) -> None:
    """Migration 7 takes over the search tables that ensure_schema created before it: an archive at schema 6 with
    indexed segments opens at schema 7 and finds them as before."""
    from archive.store_sqlite import _MIGRATIONS, SCHEMA_VERSION, SqliteStore

    path = tmp_path / "archive.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for version, sql in enumerate(_MIGRATIONS[:6], start=1):
        conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;")
    idx.ensure_schema(conn)
    docs = [SegmentDoc(n, "s1", n, t, SITTINGS[0][1]) for n, t in enumerate(corpus_lines(60), start=1)]
    conn.execute("BEGIN")
    idx.index_segments(conn, docs)
    conn.execute("COMMIT")
    before = sorted(all_ids(conn, "ใน", window=5))
    conn.close()
    async with SqliteStore(path) as store:
        assert sorted(h.segment_id for h in (await store.search("ใน", limit=100)).hits) == before
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert before and sorted(all_ids(conn, "ใน", window=5)) == before
    finally:
        conn.close()
