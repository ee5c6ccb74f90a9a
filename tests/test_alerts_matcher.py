"""The matcher: which follows an event concerns, one delivery per follow, keyword search rules, throttling keys."""

from __future__ import annotations

from datetime import date

import pytest

from alerts.matcher import (
    THROTTLE_S,
    AgendaLive,
    BillInfo,
    CaptionFinal,
    ClockDue,
    Event,
    EventDecodeError,
    FollowView,
    SittingStarted,
    StageChanged,
    VoteResult,
    bills_mentioned,
    event_from_json,
    event_to_json,
    exact_targets,
    keyword_matches,
    plan,
    wants_keywords,
)
from alerts.messages import BillRef
from archive.bill_stages import Stage
from archive.senate_clock import ClockEvent, ClockReading, ClockState

pytestmark = pytest.mark.fast

TAX = BillInfo(BillRef("42", "ร่าง พ.ร.บ. ภาษีสรรพสามิต"), topics=("tax",), agencies=("excise",))


def follow(fid: str, target: str, keyword: str | None = None) -> FollowView:
    return FollowView(fid, target, f"ep_{fid}", "webhook", keyword)


def vote() -> VoteResult:
    return VoteResult("vote:9", 100.0, TAX, "รับหลักการ", 150, 20, 5, 25, True, "s7", 3723.4)


def test_bill_topic_and_agency_follows_get_one_alert_each():
    """A vote reaches follows of the bill, its topic and its agency, one delivery each, with counts and the moment."""
    follows = [follow("a", "bill:42"), follow("b", "topic:tax"), follow("c", "agency:excise"), follow("d", "bill:7")]
    out = plan(vote(), follows)
    assert sorted(p.follow_id for p in out) == ["a", "b", "c"]
    assert all(p.event_id == "vote:9" and p.alert.kind == "bill.vote" for p in out)
    assert "150" in out[0].alert.body_en and out[0].alert.url == "/watch/s7?t=3723"
    assert exact_targets(vote()) == ["bill:42", "topic:tax", "agency:excise"]


def test_one_delivery_per_follow_even_when_several_reasons_match():
    """A caption naming the bill and matching the follow's keyword plans the follow once."""
    event = CaptionFinal("cap:1", 1.0, "s7", "ภาษีสรรพสามิต ร่าง พ.ร.บ. ภาษีสรรพสามิต", 10.0, bills=(TAX,))
    follows = [follow("a", "bill:42"), follow("a", "keyword:ภาษี", keyword="ภาษี")]
    assert [p.follow_id for p in plan(event, follows)] == ["a"]


def test_debating_now_links_to_the_moment_with_high_urgency():
    """An agenda item about the bill coming up live is "being debated now", linked to that moment, urgent."""
    event = AgendaLive("ag:3", 1.0, "s7", "ร่าง พ.ร.บ. ภาษีสรรพสามิต (วาระแรก)", 5400.0, bill=TAX)
    (p,) = plan(event, [follow("a", "bill:42")])
    assert (p.alert.kind, p.alert.url, p.urgency, p.throttle_key) == ("bill.debating", "/watch/s7?t=5400", "high", None)


def test_keywords_match_by_the_search_rules_and_are_throttled_per_sitting():
    """Keyword follows match live text exactly when the saved search would (folding, cluster boundaries,
    exclusion), and carry a throttle key per follow and sitting."""
    assert keyword_matches("งบประมาณ", "ปีงบประมาณ ๒๕๖๘")
    assert keyword_matches("2568", "ปีงบประมาณ ๒๕๖๘")
    assert not keyword_matches("สว", "สวัสดีครับ")
    assert not keyword_matches("งบประมาณ -กลาโหม", "งบประมาณกลาโหม")
    event = CaptionFinal("cap:2", 1.0, "s7", "เรื่องงบประมาณปี 2568", 61.0, speaker="นาย ก")
    follows = [follow("k", "keyword:งบประมาณ", keyword="งบประมาณ"), follow("n", "keyword:ภาษี", keyword="ภาษี")]
    (p,) = plan(event, follows)
    assert (p.follow_id, p.alert.kind, p.throttle_key, p.throttle_s) == ("k", "caption.mention", "k|s7", THROTTLE_S)
    assert wants_keywords(event) and not wants_keywords(vote())


def test_agenda_titles_match_keywords():
    """An agenda title matching a keyword plans an agenda.mention."""
    event = AgendaLive("ag:4", 1.0, "s7", "ญัตติเรื่องฝุ่น PM2.5", 30.0)
    (p,) = plan(event, [follow("k", "keyword:pm2 5", keyword="PM2.5")])
    assert p.alert.kind == "agenda.mention"


def test_speakers_sittings_and_stage_changes():
    """A followed speaker's caption, a chamber's sitting starting and a stage change each reach their follows."""
    cap = CaptionFinal("cap:3", 1.0, "s7", "ขอบคุณท่านประธาน", 5.0, speaker_id="sp1", speaker="นาง ข")
    assert [p.alert.kind for p in plan(cap, [follow("a", "speaker:sp1"), follow("b", "speaker:sp2")])] == [
        "speaker.speaking"
    ]
    sit = SittingStarted("sit:1", 1.0, "s8", "senate", "การประชุมวุฒิสภา ครั้งที่ 5")
    assert [p.follow_id for p in plan(sit, [follow("a", "sittings:senate"), follow("b", "sittings:joint")])] == ["a"]
    stage = StageChanged("st:1", 1.0, TAX, Stage.HOUSE_THIRD_READING, Stage.SENATE_FIRST_READING, date(2024, 7, 10))
    (p,) = plan(stage, [follow("a", "bill:42")])
    assert p.alert.kind == "bill.stage_changed" and p.topic == "bill:42"


def test_bills_mentioned_by_their_short_name():
    """A caption names a bill when its folded short name occurs on cluster boundaries."""
    other = BillInfo(BillRef("7", "ร่าง พ.ร.บ. ยา"))
    assert bills_mentioned("ขอพูดถึงร่าง พรบ ภาษีสรรพสามิต ครับ", [TAX, other]) == (TAX,)


READING = ClockReading(
    today=date(2024, 9, 1),
    arrived_on=date(2024, 7, 10),
    state=ClockState.RUNNING,
    limit=60,
    extension_days=0,
    day=54,
    days_left=7,
    last_day=date(2024, 9, 7),
    deemed_approved_on=date(2024, 9, 8),
    seven_days_left_on=None,
)
EVERY_KIND: list[Event] = [
    StageChanged("st:1", 10.5, TAX, None, Stage.SENATE_FIRST_READING, date(2024, 7, 10)),
    StageChanged("st:2", 11.0, TAX, Stage.SENATE_FIRST_READING, Stage.SENATE_COMMITTEE, date(2024, 7, 11)),
    vote(),
    AgendaLive("ag:1", 12.0, "s7", "ร่าง พ.ร.บ. ภาษีสรรพสามิต", 61.0, TAX),
    AgendaLive("ag:2", 12.0, "s7", "ญัตติอื่น", 62.0),
    CaptionFinal("cf:1", 13.0, "s7", 'ภาษีสรรพสามิต "ยาสูบ"', 70.5, "sp9", "นายสมชาย", (TAX,)),
    CaptionFinal("cf:2", 13.0, "s7", "ไม่มีอะไร", 71.0),
    ClockDue("clock:1", 14.0, TAX, READING, ClockEvent.SEVEN_DAYS_LEFT),
    SittingStarted("sitting-started:s7", 15.0, "s7", "senate", "ประชุมวุฒิสภา"),
]


@pytest.mark.parametrize("event", EVERY_KIND, ids=lambda e: e.id)
def test_an_event_survives_its_json_unchanged_and_plans_the_same(event: Event):
    """The sender process expands events it reads back from the store: every kind, with nested bills, stages,
    dates, enums and optional fields, comes back equal, and so plans the same deliveries."""
    back = event_from_json(event_to_json(event))
    assert back == event and type(back) is type(event)
    follows = [
        follow("f1", "bill:42"),
        follow("f2", "topic:tax"),
        follow("f3", "speaker:sp9"),
        follow("f4", "sittings:senate"),
    ]
    follows.append(follow("f5", "keyword:ภาษี", keyword="ภาษี"))
    assert plan(back, follows) == plan(event, follows)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"kind": "Unknown", "event": {}}',
        '{"kind": "VoteResult", "event": {"id": "v"}}',  # fields missing
        event_to_json(vote()).replace('"yes": 150', '"yes": "150"'),  # a mistyped field
        event_to_json(vote()).replace('"passed": true', '"passed": 1'),
    ],
)
def test_stored_text_that_is_no_event_is_refused(text: str):
    with pytest.raises(EventDecodeError):
        event_from_json(text)
