"""The documents collection end to end: loaded at start-up from real texts into a temporary archive (SQLite, and
PostgreSQL when one answers), searched and read over HTTP, and compared across constitutions."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import Running, serve, test_settings

from archive.documents import ACTS, FULL_2560, WEVIS, default_data_dir, load
from archive.schemas import CompareOut, DocumentOut, DocumentSearchOut, DocumentsOut, SectionOut

SHARED = default_data_dir()
needs_data = pytest.mark.skipif(not (SHARED / FULL_2560).is_file(), reason="no ../shared/data/text here")
# Two Acts: one in force, one repealed (by the Organic Act of 2560), to filter on.
ACT_IDS = ("320522", "322497")


def data_folder(root: Path) -> Path:
    """A data folder with the 2017 Constitution, the 20 constitutions' sections and two Acts."""
    for name in (FULL_2560, WEVIS):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED / name, root / name)
    acts = root / ACTS
    acts.mkdir(parents=True)
    lines = (SHARED / ACTS / "INDEX.tsv").read_text(encoding="utf-8").splitlines()
    (acts / "INDEX.tsv").write_text(
        "\n".join([lines[0], *(line for line in lines[1:] if line.split("\t")[1] in ACT_IDS)]) + "\n",
        encoding="utf-8",
    )
    for sysid in ACT_IDS:
        shutil.copyfile(SHARED / ACTS / f"{sysid}.txt", acts / f"{sysid}.txt")
    return root


@pytest.fixture(params=["sqlite", "postgres"])
async def site(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    """A server that loaded the documents itself at start-up (its collection was empty)."""
    overrides: dict[str, Any] = {"documents_data": str(data_folder(tmp_path / "data"))}
    if request.param == "postgres":
        overrides["database_url"] = request.getfixturevalue("postgres_url")
    async with serve(test_settings(tmp_path, **overrides)) as running:
        async with httpx.AsyncClient(base_url=running.url) as client:
            for _ in range(600):
                listed = (await client.get("/api/documents")).json()["documents"]
                if len(listed) == 22:
                    break
                await asyncio.sleep(0.1)
        yield running


async def get(running: Running, path: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=running.url) as client:
        # Without params, a URL's own query string (a `next` link) is kept as is.
        return await client.get(path, params=params) if params else await client.get(path)


def keys(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["document"]["slug"], r["section"]["key"]) for r in body["results"]]


@needs_data
async def test_loaded_at_start_up_and_reloading_changes_nothing(site: Running, tmp_path: Path):
    """An empty collection is filled at start-up; `load` again finds every document unchanged."""
    body = (await get(site, "/api/documents")).json()
    DocumentsOut.model_validate(body)
    docs = {d["slug"]: d for d in body["documents"]}
    assert len(docs) == 22 and body["documents"][0]["slug"] == "constitution-2560"
    assert docs["constitution-2560"] | {"sections": 279} == docs["constitution-2560"]
    assert docs["constitution-2560"]["in_force"] and docs["constitution-2560"]["complete"]
    assert (docs["constitution-2475"]["year_ce"], docs["constitution-2475"]["in_force"]) == (1932, False)
    assert not docs["act-322497"]["in_force"] and docs["act-320522"]["in_force"]
    counts = await load(site.app.state.store, tmp_path / "data")
    assert counts == {"loaded": 0, "unchanged": 22, "sections": 0}


@needs_data
async def test_search_words_short_words_digits_filters_and_pages(site: Running):
    """Thai words inside unspaced text, a two-letter word, Thai = Arabic digits, every filter, cursor pages."""
    body = (await get(site, "/api/documents/search", q="วุฒิสภา", document="constitution-2560", limit=5)).json()
    DocumentSearchOut.model_validate(body)
    assert len(body["results"]) == 5 and {s for s, _ in keys(body)} == {"constitution-2560"}
    assert any(span["hit"] and span["text"] == "วุฒิสภา" for span in body["results"][0]["snippet"])
    assert body["results"][0]["url"].startswith("/documents/constitution-2560/sections/")

    # Pages follow one another without repeats until the last.
    seen: list[tuple[str, str]] = keys(body)
    next_url = body["next"]
    while next_url:
        page = (await get(site, next_url)).json()
        seen += keys(page)
        next_url = page["next"]
    assert len(seen) == len(set(seen)) > 50

    short = (await get(site, "/api/documents/search", q="ปี", document="constitution-2560", limit=3)).json()
    assert len(short["results"]) == 3
    thai = (await get(site, "/api/documents/search", q="๒๕๔๒", limit=50)).json()
    arabic = (await get(site, "/api/documents/search", q="2542", limit=50)).json()
    assert keys(thai) == keys(arabic) and ("act-322497", "1") in keys(thai)

    repealed = (await get(site, "/api/documents/search", q="กรรมการ", in_force="false", limit=50)).json()
    assert repealed["results"] and {r["document"]["in_force"] for r in repealed["results"]} == {False}
    acts = (await get(site, "/api/documents/search", q="กรรมการ", kind="act", limit=50)).json()
    assert {r["document"]["kind"] for r in acts["results"]} == {"act"}
    be = (await get(site, "/api/documents/search", q="สมาชิกวุฒิสภา", year_from=2489, year_to=2492)).json()
    ce = (await get(site, "/api/documents/search", q="สมาชิกวุฒิสภา", year_from=1946, year_to=1949)).json()
    assert keys(be) == keys(ce) and {r["document"]["year_be"] for r in be["results"]} <= {2489, 2490, 2492}


@needs_data
async def test_section_urls_pages_and_the_same_subject_across_constitutions(site: Running):
    """A section has a stable URL, its neighbours and page; the Senate's term and its 60-day review of bills are
    paired with the same provisions of earlier constitutions."""
    doc = (await get(site, "/api/documents/constitution-2560")).json()
    DocumentOut.model_validate(doc)
    assert [s["key"] for s in doc["sections"]][:3] == ["1", "2", "3"] and len(doc["sections"]) == 279
    assert doc["sections"][262]["transitory"] and doc["sections"][262]["chapter"] == "บทเฉพาะกาล"

    body = (await get(site, "/api/documents/constitution-2560/sections/109")).json()
    SectionOut.model_validate(body)
    assert body["section"]["text"].startswith("อายุของวุฒิสภามีกำหนดคราวละห้าปี")
    assert "\n" in body["section"]["text"] and body["section"]["part"] == "ส่วนที่ ๓ วุฒิสภา"
    assert body["prev"].endswith("/sections/108") and body["next"].endswith("/sections/110")
    for path in ("/documents", "/documents/constitution-2560", "/documents/constitution-2560/sections/109"):
        page = await get(site, path)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert (await get(site, "/documents/constitution-2560/sections/999")).status_code == 404

    term = (await get(site, body["compare"])).json()
    CompareOut.model_validate(term)
    pairs = {(m["document"]["slug"], m["section"]["key"]) for m in term["matches"]}
    assert ("constitution-2492", "83") in pairs  # "สมาชิกภาพแห่งสมาชิกวุฒิสภามีกำหนดเวลาคราวละหกปี"
    assert {"วาระ", "คราว"} <= set(next(m for m in term["matches"] if m["section"]["key"] == "83")["shared"])

    review = (await get(site, "/api/documents/constitution-2560/sections/136/compare")).json()
    pairs = {(m["document"]["slug"], m["section"]["key"]) for m in review["matches"]}
    assert {("constitution-2550", "146"), ("constitution-2540", "174"), ("constitution-2534", "140"),
            ("constitution-2521", "127"), ("constitution-2517", "148")} <= pairs  # fmt: skip
    years = [m["document"]["year_be"] for m in review["matches"]]
    assert years == sorted(years)

    act = (await get(site, "/api/documents/act-320522/sections/1/compare")).json()
    assert act["matches"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": ""}, "q"),
        ({"q": '"วุฒิสภา'}, "q"),
        ({"q": "-วุฒิสภา"}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": "วุฒิสภา", "chamber": "senate"}, "chamber"),
        ({"q": "วุฒิสภา", "cursor": "abc"}, "cursor"),
        ({"q": "วุฒิสภา", "year_from": "๒๕๖๐"}, "year_from"),
        ({"q": "วุฒิสภา", "year_to": "99999"}, "year_to"),
        ({"q": "วุฒิสภา", "in_force": "maybe"}, "in_force"),
        ({"q": "วุฒิสภา", "kind": "decree"}, "kind"),
        ({"q": "วุฒิสภา", "document": "../etc"}, "document"),
        ({"q": "วุฒิสภา", "limit": "0"}, "limit"),
    ],
)
async def test_bad_search_input_is_a_400_naming_the_field(tmp_path: Path, params: dict[str, str], field: str):
    """Empty, over-long, unbalanced or only-excluding queries, unknown filters and bad values: 400 with the field."""
    async with serve(test_settings(tmp_path)) as running:
        r = await get(running, "/api/documents/search", **params)
    assert r.status_code == 400, r.text
    assert r.json()["ok"] is False and r.json()["field"] == field


async def test_unknown_documents_and_sections_are_404s_naming_the_field(tmp_path: Path):
    """An unknown or malformed document or section key: a 404 JSON error naming doc or n, and the 404 page."""
    async with serve(test_settings(tmp_path)) as running:
        for path, field in [
            ("/api/documents/constitution-2999", "doc"),
            ("/api/documents/no such doc", "doc"),
            ("/api/documents/constitution-2560/sections/1", "doc"),
            ("/api/documents/constitution-2560/sections/1/compare", "doc"),
        ]:
            r = await get(running, path)
            assert (r.status_code, r.json()["field"]) == (404, field), path
        assert (await get(running, "/documents/constitution-2999")).status_code == 404
        assert (await get(running, "/api/documents")).json()["documents"] == []


async def test_a_server_without_the_data_folder_starts_and_serves_no_documents(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """DOCUMENTS_DATA naming a missing folder: the start-up load logs it and the server goes on, collection empty."""
    async with serve(test_settings(tmp_path, documents_data=str(tmp_path / "missing"))) as running:
        for _ in range(100):
            if "no data folder" in caplog.text:
                break
            await asyncio.sleep(0.05)
        assert "no data folder" in caplog.text
        assert (await get(running, "/api/documents")).json() == {"ok": True, "documents": []}
