"""Atom feeds, parsed back by feedparser: stable ids, newest first, plain text, and the alerts' own words."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import feedparser
import pytest

from alerts.atom import (
    MAX_ENTRIES,
    FeedEntry,
    all_bills_feed,
    bill_feed,
    entry_from_alert,
    keyword_feed,
    render,
    speaker_feed,
    tag_uri,
)
from alerts.messages import (
    BillRef,
    caption_mention,
    clock_line,
    debating_now,
    plain,
    senate_clock,
    stage_changed,
    thai_date,
    vote_result,
)
from archive.bill_stages import BillType, Stage
from archive.senate_clock import ClockEvent, SessionPeriod
from archive.senate_clock import senate_clock as read_clock

pytestmark = pytest.mark.fast

BASE = "https://app.senate.example"
BILL = BillRef("42", "ร่าง พ.ร.บ. ภาษีสรรพสามิต", "ร่างพระราชบัญญัติภาษีสรรพสามิต (ฉบับที่ ..) พ.ศ. ....")
T0 = datetime(2024, 9, 1, 3, 0, tzinfo=UTC)


def feed_of(spec, entries, now=T0):
    return feedparser.parse(render(spec, entries, base_url=BASE, authority="app.senate.example", year=2025, now=now))


def changes() -> list[FeedEntry]:
    a = stage_changed(BILL, Stage.SENATE_FIRST_READING, Stage.SENATE_COMMITTEE, date(2024, 9, 1))
    b = vote_result(
        BILL, motion="วาระที่สาม", yes=180, no=12, abstain=3, not_voting=5, passed=True, sitting_id="7", offset_s=3723.4
    )
    return [entry_from_alert(a, "bill/42/change/17", T0), entry_from_alert(b, "bill/42/vote/9", T0 + timedelta(days=3))]


def test_bill_feed_parses_with_stable_ids_newest_first():
    """feedparser reads the bill's feed: its id, self link, and entries newest first with tag-URI ids."""
    parsed = feed_of(bill_feed("42", BILL.short_name), changes())
    assert not parsed.bozo
    assert parsed.feed.id == "tag:app.senate.example,2025:feeds/bill/42"
    assert parsed.feed.title == "ความคืบหน้า: ร่าง พ.ร.บ. ภาษีสรรพสามิต"
    assert {link.rel: link.href for link in parsed.feed.links}["self"] == BASE + "/bills/42/feed.atom"
    ids = [e.id for e in parsed.entries]
    assert ids == ["tag:app.senate.example,2025:bill/42/vote/9", "tag:app.senate.example,2025:bill/42/change/17"]
    vote = parsed.entries[0]
    assert vote.link == BASE + "/watch/7?t=3723"
    assert "เห็นด้วย 180 ไม่เห็นด้วย 12 งดออกเสียง 3 ไม่ลงคะแนน 5" in vote.summary


def test_ids_do_not_change_between_renders():
    """Rendering again later, with a new entry, keeps the earlier entries' ids."""
    first = feed_of(all_bills_feed(), changes()[:1])
    later = feed_of(all_bills_feed(), changes(), now=T0 + timedelta(days=10))
    assert first.entries[0].id in {e.id for e in later.entries}
    assert first.feed.id == later.feed.id


def test_text_stays_text():
    """Markup in a title or caption is shown as text: the entry is type text and keeps the characters."""
    entry = FeedEntry("caption/1", "<b>ภาษี</b> & ค่าธรรมเนียม", "a <script>x</script> b", "/watch/7?t=1", T0)
    parsed = feed_of(keyword_feed("ภาษี"), [entry])
    assert not parsed.bozo
    (e,) = parsed.entries
    assert e.summary_detail.type == "text/plain"
    assert e.summary == "a <script>x</script> b"
    assert e.title == "<b>ภาษี</b> & ค่าธรรมเนียม"


def test_characters_xml_cannot_carry_are_dropped():
    """A control character in a caption does not break the feed."""
    parsed = feed_of(speaker_feed("s1", "นาย ก"), [FeedEntry("caption/2", "ข\x00้อ\x1bความ", "x\x07y", "/", T0)])
    assert not parsed.bozo
    assert parsed.entries[0].title == "ข้อความ" and parsed.entries[0].summary == "xy"


def test_feed_keeps_only_the_newest_entries():
    """At most MAX_ENTRIES entries, the newest ones; an empty feed is valid and dated now."""
    many = [FeedEntry(f"bill/1/change/{i}", f"{i}", "s", "/bills/1", T0 + timedelta(minutes=i)) for i in range(80)]
    parsed = feed_of(all_bills_feed(), many)
    assert len(parsed.entries) == MAX_ENTRIES
    assert parsed.entries[0].title == "79" and parsed.entries[-1].title == str(80 - MAX_ENTRIES)
    empty = feed_of(all_bills_feed(), [])
    assert not empty.bozo and empty.entries == [] and empty.feed.updated.startswith("2024-09-01")


def test_keyword_feed_id_quotes_thai():
    """A Thai keyword makes a valid, stable tag URI and self link."""
    spec = keyword_feed("ภาษีที่ดิน")
    parsed = feed_of(spec, [])
    assert parsed.feed.id == tag_uri("app.senate.example", 2025, spec.key)
    assert parsed.feed.id.isascii()
    assert {link.rel: link.href for link in parsed.feed.links}["self"].startswith(BASE + "/feeds/keywords.atom?q=%E0")


# ---- the alerts' words -------------------------------------------------------------------------------------------


def test_debating_now_links_to_the_moment():
    """ "Being debated now" names the bill and links to /watch/{sitting}?t=<seconds> at that moment."""
    alert = debating_now(BILL, agenda_title="ระเบียบวาระที่ 4 ร่างพระราชบัญญัติภาษีสรรพสามิต", sitting_id="7", offset_s=5400.9)
    assert alert.url == "/watch/7?t=5400"
    assert alert.title == "กำลังพิจารณาอยู่ขณะนี้: ร่าง พ.ร.บ. ภาษีสรรพสามิต"
    assert alert.title_en.startswith("Being debated now")
    assert b'"url":"https://app.senate.example/watch/7?t=5400"' in alert.push_payload(BASE)
    assert b'"tag":"bill:42"' in alert.push_payload(BASE)


def test_vote_result_says_how_it_went():
    """The vote alert gives the motion, every count and whether it passed."""
    alert = vote_result(
        BILL, motion="รับหลักการ", yes=10, no=150, abstain=0, not_voting=1, passed=False, sitting_id="3", offset_s=0
    )
    assert alert.title.startswith("ลงมติไม่ผ่าน")
    assert alert.body == "รับหลักการ — เห็นด้วย 10 ไม่เห็นด้วย 150 งดออกเสียง 0 ไม่ลงคะแนน 1 (ไม่ผ่าน)"
    assert alert.body_en == "รับหลักการ — yes 10, no 150, abstain 0, not voting 1 (failed)"


def test_caption_mention_quotes_around_the_match():
    """A final that mentions a keyword is quoted around the match, with the speaker and the moment's link."""
    text = "ก" * 200 + " เรื่องภาษีที่ดินและสิ่งปลูกสร้าง " + "ข" * 200
    alert = caption_mention(
        subject="keyword:ภาษีที่ดิน", matched="ภาษีที่ดิน", text=text, sitting_id="9", offset_s=61, speaker="นาย ก"
    )
    assert alert.url == "/watch/9?t=61"
    assert "ภาษีที่ดิน" in alert.body and alert.body.startswith("นาย ก: “…")
    assert len(alert.body) < 200


def test_senate_clock_alerts_and_page_line():
    """The clock line reads "day N of M in session" with the deemed-approval date; both events have alerts."""
    sessions = [SessionPeriod(date(2024, 7, 3), date(2024, 10, 30))]
    reading = read_clock(
        arrived_on=date(2024, 7, 10), bill_type=BillType.ORDINARY, sessions=sessions, today=date(2024, 8, 19)
    )
    assert clock_line(reading) == "วันที่ 41 จาก 60 วันในสมัยประชุม · ถือว่าวุฒิสภาให้ความเห็นชอบ 8 ก.ย. 2567"
    assert clock_line(reading, "en") == "day 41 of 60 in session; deemed approved on 2024-09-08"
    seven = senate_clock(BILL, reading, ClockEvent.SEVEN_DAYS_LEFT)
    assert seven.title == "วุฒิสภาเหลือเวลา 7 วัน: ร่าง พ.ร.บ. ภาษีสรรพสามิต" and seven.url == "/bills/42"
    passed = senate_clock(BILL, reading, ClockEvent.DEADLINE_PASSED)
    assert "ถือว่าให้ความเห็นชอบ" in passed.body and passed.kind == "bill.clock"


def test_plain_caps_length_without_splitting_thai_marks():
    """Long text is cut with … and never leaves a vowel or tone mark without its consonant; controls are removed."""
    assert thai_date(date(2024, 9, 8)) == "8 ก.ย. 2567"
    text = "กี่" * 10  # each กี่ is a consonant and two marks
    for limit in range(2, 12):
        out = plain(text, limit)
        assert len(out) <= limit and out.endswith("…")
        assert len(out[:-1]) % 3 == 0  # whole clusters only
    assert plain("a\x00b\u200bc  d", 20) == "a bc d"
