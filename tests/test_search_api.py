"""Search end to end: the SQLite store indexes as it writes, ``GET /api/search`` over a real server, a live final."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import given, settings
from hypothesis import strategies as st
from live_server import Running, serve, test_settings

from archive import search_sqlite
from archive.schemas import SearchOut
from archive.search import _KEPT, _SPACE, CURSOR_REGEX, MAX_QUERY_CHARS, QUERY_REGEX, fold, parse_query
from archive.store_sqlite import SqliteStore
from broadcast.envelope import sitting_channel

_QUERY = re.compile(QUERY_REGEX.removeprefix("^").removesuffix("$"))

# (sitting, chamber, title); the speakers and agenda items are set through the operator API below.
SITTINGS = [
    ("senate-s1", "senate", "การประชุมวุฒิสภา ครั้งที่ ๑"),
    ("joint-s2", "joint", "การประชุมร่วมกันของรัฐสภา ครั้งที่ ๒"),
]
SPEAKER = "นายมงคล สุระสัจจะ"
FINALS = {
    "senate-s1": [
        ("ที่ประชุมพิจารณาร่างพระราชบัญญัติงบประมาณรายจ่ายประจำปีงบประมาณ พ.ศ. ๒๕๖๘", 12.5),
        ("สมาชิกวุฒิสภา (ส.ว.) อภิปรายเรื่องภาษีที่ดิน", 30.0),
        ("ที่ประชุมมีมติเห็นชอบ", 61.0),
    ],
    "joint-s2": [
        ("ขอเชิญท่านสมาชิกอภิปรายงบประมาณ 2568 ต่อ", 5.0),
        ("สวัสดีครับท่านประธาน", 9.0),
    ],
}


async def texts_of(running: Running, body: dict[str, Any]) -> list[str]:
    """The full text of each result's segment, in result order."""
    store = running.app.state.store
    texts = {seg.id: seg.text for sitting_id, _, _ in SITTINGS for seg in await store.segments(sitting_id)}
    return [texts[r["segment_id"]] for r in body["results"]]


# ---- the query pattern the document publishes -------------------------------------------------------------------


@pytest.mark.fast
@settings(max_examples=300, deadline=None)
@given(st.from_regex(_QUERY, fullmatch=True).filter(lambda q: len(q) <= MAX_QUERY_CHARS))
def test_every_query_the_pattern_accepts_parses(q: str) -> None:
    """No query the documented pattern accepts is refused by the parser (so none gets a 400 the document denies)."""
    parse_query(q)


@pytest.mark.fast
def test_the_patterns_character_classes_are_what_they_claim() -> None:
    """The pattern's space class is exactly str.isspace, and every character it counts as searchable folds to one."""
    spaces = re.compile(f"[{_SPACE}]")
    kept = re.compile(f"[{_KEPT}]")
    for code in range(0x110000):
        char = chr(code)
        if unicodedata.category(char) == "Cs":
            continue
        assert bool(spaces.fullmatch(char)) == char.isspace(), f"U+{code:04X}"
        if kept.fullmatch(char):
            assert fold(char).strip(), f"U+{code:04X}"


@pytest.mark.fast
@pytest.mark.parametrize(
    ("q", "valid"),
    [
        ("งบประมาณ", True),
        ('ปี -ภาษี "งบ กลาง"', True),
        ("-ภาษี ปี", True),
        ("ส.ว. ๒๕๖๘", True),
        ("", False),
        ("-ภาษี", False),
        ('"งบ', False),
        ('""', False),
        ("a , b", False),
        ('"ab"cd', False),
    ],
)
def test_the_query_pattern(q: str, valid: bool) -> None:
    """Words and phrases separated by spaces, each with something to search for, at least one not excluded."""
    assert bool(_QUERY.fullmatch(q)) is valid


# ---- the store --------------------------------------------------------------------------------------------------


async def test_segments_are_searchable_when_written_and_corrections_replace_them(tmp_path: Path) -> None:
    """add_segment indexes in its own write; a revision replaces the text searched; going live moves the date."""
    async with SqliteStore(tmp_path / "a.db") as store:
        await store.create_sitting("s1", "การประชุม", "senate", scheduled_at="2024-01-02T03:00:00Z")
        segment = await store.add_segment("s1", 1000, 2000, "ร่างพระราชบัญญัติภาษีสรรพสามิต")
        page = await store.search("ภาษี")
        assert [h.segment_id for h in page.hits] == [segment.id] and page.hits[0].day == "2024-01-02"
        await store.revise_segment(segment.id, "ร่างพระราชบัญญัติศุลกากร", "operator")
        assert (await store.search("ภาษี")).hits == []
        assert [h.segment_id for h in (await store.search("ศุลกากร")).hits] == [segment.id]
        await store.set_sitting_status("s1", "live")
        sitting = await store.get_sitting("s1")
        assert sitting is not None and sitting.started_at is not None
        assert (await store.search("ศุลกากร")).hits[0].day == search_sqlite._day(sitting.started_at) != "2024-01-02"


async def test_an_archive_recorded_before_search_is_indexed_at_open(tmp_path: Path) -> None:
    """Opening an archive whose segments were never indexed indexes them all (in batches), with their context."""
    path = tmp_path / "old.db"
    async with SqliteStore(path) as store:
        await store.create_sitting("s1", "การประชุม", "joint")
        speaker = await store.add_speaker("s1", SPEAKER)
        item = await store.add_agenda_item("s1", "ร่างพระราชบัญญัติงบประมาณ", bill_id="B-1")
        for i in range(5):
            await store.add_segment("s1", i * 1000, i * 1000 + 900, f"งบประมาณ ตอนที่ {i}", item.id, speaker.id)
    # As an archive written before search existed: no index tables at all.
    with sqlite3.connect(path) as conn:
        conn.executescript("DROP TABLE search_terms; DROP TABLE search_docs; DROP TABLE search_meta;")
    old_batch = search_sqlite.backfill.__defaults__
    search_sqlite.backfill.__defaults__ = (2,)  # several batches, as a large archive would take
    try:
        async with SqliteStore(path) as store:
            page = await store.search("งบประมาณ", search_sqlite.SearchFilters(chamber="joint", bill="B-1"), limit=10)
            assert len(page.hits) == 5
            assert {(h.speaker, h.agenda_item_id) for h in page.hits} == {(SPEAKER, item.id)}
    finally:
        search_sqlite.backfill.__defaults__ = old_batch


# ---- the API ----------------------------------------------------------------------------------------------------


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(test_settings(tmp_path)) as r:
        yield r


@pytest.fixture
async def client(running: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth) as c:
        yield c


async def furnish(running: Running, client: httpx.AsyncClient) -> dict[str, int]:
    """Both sittings live, a speaker and a bill's agenda item in the first, the finals recorded; agenda item ids."""
    items = {}
    for sitting_id, chamber, title in SITTINGS:
        r = await client.post("/api/sittings", json={"id": sitting_id, "title": title, "chamber": chamber})
        assert r.status_code == 201, r.text
        assert (await client.post(f"/api/sittings/{sitting_id}/status", json={"status": "live"})).status_code == 200
    r = await client.post("/api/sittings/senate-s1/speaker", json={"name": SPEAKER})
    r = await client.post("/api/sittings/senate-s1/agenda", json={"title": "ร่าง พ.ร.บ. งบประมาณ", "bill_id": "B2568"})
    items["senate-s1"] = r.json()["agenda_item"]["id"]
    for sitting_id, finals in FINALS.items():
        for i, (text, start) in enumerate(finals):
            await running.app.state.recorder.caption_final(sitting_id, f"u{i}", text, start, start + 3)
    return items


async def test_search_answers_hits_with_snippets_sittings_and_permalinks(running: Running, client: httpx.AsyncClient):
    """A Thai word inside a compound is found in both sittings, its hit marked, with the sitting and a permalink."""
    await furnish(running, client)
    r = await client.get("/api/search", params={"q": "งบประมาณ"})
    assert r.status_code == 200, r.text
    body = r.json()
    SearchOut.model_validate(body)  # the shape /openapi.json documents
    assert body["ok"] is True and body["q"] == "งบประมาณ" and body["next_cursor"] is None and body["exhaustive"]
    first = body["results"][0]
    # Two occurrences outrank one: the senate segment names งบประมาณ twice (once inside ปีงบประมาณ).
    date = first["sitting"]["date"]
    assert first["sitting"] == {"id": "senate-s1", "title": SITTINGS[0][2], "chamber": "senate", "date": date}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", date)
    assert (first["start_ms"], first["t"], first["permalink"]) == (12500, 12.5, "/watch/senate-s1?t=12.5")
    assert first["speaker"] == SPEAKER and first["bill_id"] == "B2568" and first["score"] == 2
    assert [s["text"] for s in first["snippet"] if s["hit"]] == ["งบประมาณ", "งบประมาณ"]
    assert "".join(s["text"] for s in first["snippet"]) == FINALS["senate-s1"][0][0]
    assert [x["sitting"]["id"] for x in body["results"]] == ["senate-s1", "joint-s2"]
    # The permalink opens the watch page.
    assert (await client.get(first["permalink"])).status_code == 200


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("2568", {"ที่ประชุมพิจารณา", "ขอเชิญท่าน"}),  # Thai digits match Arabic ones
        ("สว", {"สมาชิกวุฒิสภา"}),  # ส.ว. folds to สว; not inside สวัสดี
        ('"มีมติ"', {"ที่ประชุมมีมติ"}),
        ("อภิปราย -ภาษี", {"ขอเชิญท่าน"}),
        ("ง\u200bบประมาณ", {"ที่ประชุมพิจารณา", "ขอเชิญท่าน"}),  # a zero-width space never breaks a match
    ],
)
async def test_thai_queries(running: Running, client: httpx.AsyncClient, q: str, found: set[str]):
    """Digits, short words, phrases, exclusions and zero-width characters match as a Thai reader expects."""
    await furnish(running, client)
    body = (await client.get("/api/search", params={"q": q})).json()
    texts = await texts_of(running, body)
    assert len(texts) == len(found) and all(any(text.startswith(p) for p in found) for text in texts)
    assert all(any(text.startswith(p) for text in texts) for p in found)


async def test_filters_narrow_the_results(running: Running, client: httpx.AsyncClient):
    """sitting, chamber, speaker, bill, agenda item and the date range each narrow; a range after today is empty."""
    items = await furnish(running, client)
    everything = (await client.get("/api/search", params={"q": "งบประมาณ"})).json()["results"]
    assert len(everything) == 2
    today = everything[0]["sitting"]["date"]
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"sitting": "joint-s2"}, {"joint-s2"}),
        ({"chamber": "senate"}, {"senate-s1"}),
        ({"speaker": SPEAKER}, {"senate-s1"}),
        ({"bill": "B2568"}, {"senate-s1"}),
        ({"agenda_item": str(items["senate-s1"])}, {"senate-s1"}),
        ({"from": today, "to": today}, {"senate-s1", "joint-s2"}),
        ({"from": "2099-01-01"}, set()),
        ({"to": "2000-01-01"}, set()),
        ({"from": "2099-01-01", "to": "2000-01-01"}, set()),
    ]
    for params, sittings in cases:
        r = await client.get("/api/search", params={"q": "งบประมาณ", **params})
        assert r.status_code == 200, (params, r.text)
        assert {x["sitting"]["id"] for x in r.json()["results"]} == sittings, params


async def test_cursor_pages_through_every_hit_once(running: Running, client: httpx.AsyncClient):
    """Following next (limit 2) visits every matching segment exactly once, best first, and ends with null."""
    await furnish(running, client)
    for i in range(7):
        await running.app.state.recorder.caption_final("joint-s2", f"x{i}", f"ที่ประชุม ครั้งที่ {i}", 100 + i, 101 + i)
    every = (await client.get("/api/search", params={"q": "ประชุม", "limit": "100"})).json()["results"]
    seen: list[int] = []
    url: str | None = "/api/search?q=%E0%B8%9B%E0%B8%A3%E0%B8%B0%E0%B8%8A%E0%B8%B8%E0%B8%A1&limit=2"
    while url is not None:
        body = (await client.get(url)).json()
        assert len(body["results"]) <= 2
        seen += [r["segment_id"] for r in body["results"]]
        url = body["next"]
    assert seen == [r["segment_id"] for r in every] and len(seen) == len(set(seen)) == 9


def _files(path: Path) -> str:
    digest = hashlib.sha256()
    for name in sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name)):
        digest.update(name.name.encode() + name.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "ก" * (MAX_QUERY_CHARS + 1)}, "q"),
        ({"q": '"งบประมาณ'}, "q"),
        ({"q": "-ภาษี"}, "q"),
        ({"q": '-"งบ กลาง" -ภาษี'}, "q"),
        ({"q": "... ,,,"}, "q"),
        ({"q": "งบ", "sitter": "senate-s1"}, "sitter"),
        ({"q": "งบ", "page": "2"}, "page"),
        ({"q": "งบ", "cursor": "not-a-cursor"}, "cursor"),
        ({"q": "งบ", "cursor": "9" * 19}, "cursor"),
        ({"q": "งบ", "cursor": "eyJ0b3AiOjF9"}, "cursor"),
        ({"q": "งบ", "limit": "0"}, "limit"),
        ({"q": "งบ", "limit": "101"}, "limit"),
        ({"q": "งบ", "limit": "ten"}, "limit"),
        ({"q": "งบ", "from": "2025-02-30"}, "from"),
        ({"q": "งบ", "to": "yesterday"}, "to"),
        ({"q": "งบ", "chamber": "house"}, "chamber"),
        ({"q": "งบ", "agenda_item": "0"}, "agenda_item"),
        ({"q": "งบ", "agenda_item": "9" * 30}, "agenda_item"),
        ({"q": "งบ", "speaker": " "}, "speaker"),
        ({"q": "งบ", "sitting": "bad id!"}, "sitting"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(
    running: Running, client: httpx.AsyncClient, params: dict[str, str], field: str
):
    """Each malformed search is a 400 in the error shape naming the parameter; the database files do not change."""
    await furnish(running, client)
    db = Path(running.app.state.settings.database_url.removeprefix("sqlite:///"))
    before = _files(db)
    r = await client.get("/api/search", params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["ok"] is False and body["status"] == 400 and body["field"] == field and body["error"]
    assert (await client.get("/api/search", params={"q": "งบประมาณ"})).status_code == 200
    assert _files(db) == before


async def test_search_is_in_the_openapi_document(client: httpx.AsyncClient):
    """/openapi.json documents /api/search with every parameter, the query and cursor patterns included."""
    doc = (await client.get("/openapi.json")).json()
    op = doc["paths"]["/api/search"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    assert set(params) == {"q", "sitting", "from", "to", "chamber", "speaker", "bill", "agenda_item", "cursor", "limit"}
    assert params["q"]["required"] is True and params["q"]["schema"]["pattern"] == QUERY_REGEX
    assert params["cursor"]["schema"]["pattern"] == CURSOR_REGEX
    assert set(op["responses"]) == {"200", "400", "503"}


# ---- a live final -----------------------------------------------------------------------------------------------


async def test_a_live_final_is_searchable_when_its_event_arrives(running: Running, client: httpx.AsyncClient):
    """A final recorded through the Recorder is found by /api/search as soon as a WebSocket client receives it."""
    await furnish(running, client)
    text = "ร่างพระราชบัญญัติการอำนวยความสะดวกในการพิจารณาอนุญาตของทางราชการ"
    async with websockets.connect(running.ws_url) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channel": sitting_channel("senate-s1")}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["op"] == "subscribed"
        recorded = asyncio.create_task(running.app.state.recorder.caption_final("senate-s1", "live-1", text, 90, 94))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if message.get("type") == "caption.final":
                break
        r = await client.get("/api/search", params={"q": "อำนวยความสะดวก"})
        await recorded
    results = r.json()["results"]
    assert [x["segment_id"] for x in results] == [message["data"]["archive_id"]]
    assert results[0]["permalink"] == "/watch/senate-s1?t=90"
