"""The viewer pages driven in headless Debian chromium against the real app: live updates, resume, index, 404."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from chromium import needs_chromium
from live_server import Running, serve, test_settings
from playwright.async_api import Page, expect

from server import Settings

# Frames a connection may have queued before the server cuts it off as a slow consumer (close 4008).
OUTBOX = Settings().ws_outbox

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]

SITTING_TITLE = "การประชุมวุฒิสภา ครั้งที่ ๑๒ (สมัยประชุมสามัญประจำปีครั้งที่หนึ่ง)"
AGENDA_TITLE = (
    "ร่างพระราชบัญญัติแก้ไขเพิ่มเติมประมวลกฎหมายแพ่งและพาณิชย์ (ฉบับที่ ..) พ.ศ. .... ว่าด้วยการสมรสเท่าเทียม "
    "เพื่อให้บุคคลทุกเพศสามารถหมั้นและสมรสกันได้โดยมีสิทธิและหน้าที่เท่าเทียมกันตามกฎหมาย รวมถึงการแก้ไขบทบัญญัติ"
    "ที่เกี่ยวข้องกับครอบครัว มรดก และการรับบุตรบุญธรรม ให้สอดคล้องกับหลักความเสมอภาคตามรัฐธรรมนูญแห่งราชอาณาจักรไทย"
)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(test_settings(tmp_path)) as r:
        yield r


async def create_sitting(running: Running, sitting_id: str, *, live: bool = True, title: str = SITTING_TITLE) -> str:
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth) as client:
        r = await client.post("/api/sittings", json={"id": sitting_id, "title": title, "chamber": "senate"})
        assert r.status_code == 201, r.text
        if live:
            r = await client.post(f"/api/sittings/{sitting_id}/status", json={"status": "live"})
            assert r.status_code == 200, r.text
    return sitting_id


async def operator_post(running: Running, path: str, body: dict) -> dict:
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth) as client:
        r = await client.post(path, json=body)
        assert r.status_code in (200, 201), r.text
        return r.json()


async def open_watch(page: Page, running: Running, sitting_id: str) -> None:
    await page.goto(f"{running.url}/watch/{sitting_id}")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")


async def final_texts(page: Page) -> list[str]:
    return await page.locator("#captions .caption.final .caption-text").all_text_contents()


async def test_watch_page_shows_every_kind_of_live_event(running: Running, page: Page):
    """Agenda, speaker, a partial updated in place then replaced by its final, a vote and a status show live."""
    sid = await create_sitting(running, "senate-live")
    recorder = running.app.state.recorder
    await open_watch(page, running, sid)
    await expect(page.locator("#title")).to_have_text(SITTING_TITLE)
    await expect(page.locator("#status")).to_have_attribute("data-status", "live")

    await recorder.set_agenda_item(sid, AGENDA_TITLE, "B2568-01", 3)
    await expect(page.locator("#agenda .agenda-title")).to_have_text(AGENDA_TITLE)
    await expect(page.locator("#agenda .agenda-order")).to_have_text("วาระที่ 3")

    await operator_post(running, f"/api/sittings/{sid}/speaker", {"name": "นายมงคล สุระสัจจะ", "role": "ประธานวุฒิสภา"})
    await expect(page.locator("#speaker .speaker-name")).to_have_text("นายมงคล สุระสัจจะ")
    await expect(page.locator("#speaker .speaker-role")).to_have_text("ประธานวุฒิสภา")

    partial = page.locator('#partials .caption.partial[data-segment-id="seg-1"]')
    await recorder.caption_partial(sid, "seg-1", "ท่านสมาชิกที่เคารพ", 61.0, 62.0)
    await expect(partial.locator(".caption-text")).to_have_text("ท่านสมาชิกที่เคารพ")
    assert await partial.evaluate("el => getComputedStyle(el).fontStyle") == "italic"
    await recorder.caption_partial(sid, "seg-1", "ท่านสมาชิกที่เคารพ บัดนี้ครบองค์ประชุม", 61.0, 63.5)
    await expect(partial.locator(".caption-text")).to_have_text("ท่านสมาชิกที่เคารพ บัดนี้ครบองค์ประชุม")
    await expect(page.locator(".caption.partial")).to_have_count(1)

    final_text = "ท่านสมาชิกที่เคารพ บัดนี้สมาชิกมาครบองค์ประชุมแล้ว ผมขอเปิดการประชุม"
    segment, event = await recorder.caption_final(sid, "seg-1", final_text, 61.0, 64.2)
    final = page.locator('#captions .caption.final[data-segment-id="seg-1"]')
    await expect(final.locator(".caption-text")).to_have_text(final_text)
    await expect(final).to_have_attribute("data-seq", str(event.seq))
    await expect(final).to_have_attribute("data-archive-id", str(segment.id))
    await expect(final.locator("a.caption-time")).to_have_attribute("href", "#t=61")
    await expect(final.locator("a.caption-time")).to_have_text("0:01:01")
    await expect(page.locator(".caption.partial")).to_have_count(0)
    assert await final.evaluate("el => getComputedStyle(el).fontStyle") == "normal"

    await operator_post(
        running,
        f"/api/sittings/{sid}/votes",
        {
            "motion": "เห็นชอบร่างพระราชบัญญัติในวาระที่สาม",
            "yes": 130,
            "no": 4,
            "abstain": 18,
            "absent": 48,
            "result": "passed",
        },
    )
    await expect(page.locator("#vote .vote-result")).to_have_attribute("data-result", "passed")
    await expect(page.locator("#vote .vote-motion")).to_have_text("เห็นชอบร่างพระราชบัญญัติในวาระที่สาม")
    counts = page.locator("#vote dd")
    await expect(counts).to_have_text(["130", "4", "18", "48"])

    await operator_post(running, f"/api/sittings/{sid}/status", {"status": "adjourned", "reason": "พักการประชุม"})
    await expect(page.locator("#status")).to_have_attribute("data-status", "adjourned")
    await expect(page.locator("#status-reason")).to_contain_text("พักการประชุม")
    assert await page.evaluate("document.documentElement.lang") == "th"
    assert await page.locator("#captions").get_attribute("aria-live") == "polite"


async def test_watch_page_loads_the_transcript_and_links_each_final_to_its_media_time(running: Running, page: Page):
    """Finals archived before the page opened are listed from the transcript; #t=<seconds> marks the one spoken then."""
    sid = await create_sitting(running, "senate-archive")
    recorder = running.app.state.recorder
    lines = ["ขอเปิดการประชุม", "ขอให้ที่ประชุมพิจารณาระเบียบวาระที่หนึ่ง", "ที่ประชุมรับทราบ"]
    for i, text in enumerate(lines):
        await recorder.caption_final(sid, f"old-{i}", text, i * 10.0, i * 10.0 + 8)

    await page.goto(f"{running.url}/watch/{sid}#t=12.5")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    assert await final_texts(page) == lines
    await expect(page.locator("#captions .caption.target .caption-text")).to_have_text(lines[1])
    hrefs = await page.locator("#captions a.caption-time").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    )
    assert hrefs == ["#t=0", "#t=10", "#t=20"]

    await recorder.caption_final(sid, "new-1", "ต่อไปเป็นเรื่องด่วน", 30.0, 34.0)
    await expect(page.locator("#captions .caption.final")).to_have_count(4)
    assert await final_texts(page) == [*lines, "ต่อไปเป็นเรื่องด่วน"]


async def test_pieces_of_one_utterance_read_as_one(running: Running, page: Page):
    """Later final pieces of the same utterance are marked as continuations, live and from the transcript alike."""
    sid = await create_sitting(running, "senate-pieces")
    recorder = running.app.state.recorder
    await recorder.caption_final(sid, "u1", "มัน", 1.0, 1.4)
    await recorder.caption_final(sid, "u1", "เป็นเรื่องที่ดี", 1.4, 3.0)
    await open_watch(page, running, sid)
    await recorder.caption_final(sid, "u2", "เราจะออก", 5.0, 6.0)
    await recorder.caption_final(sid, "u2", "นอกเมือง", 6.0, 7.0)
    items = page.locator("#captions .caption.final")
    await expect(items).to_have_count(4)
    classes = await items.evaluate_all("els => els.map(e => e.classList.contains('cont'))")
    assert classes == [False, True, False, True]


AT_BOTTOM = "el => el.scrollHeight - el.scrollTop - el.clientHeight < 2"


async def test_captions_follow_the_newest_line_until_the_reader_scrolls_up(running: Running, page: Page):
    """The caption list keeps the newest final in view, stops following when the reader scrolls up, and jumps back."""
    sid = await create_sitting(running, "senate-scroll")
    recorder = running.app.state.recorder
    await open_watch(page, running, sid)
    for i in range(30):
        await recorder.caption_final(sid, f"s-{i}", f"ประโยคที่ {i} ขอบคุณท่านประธานที่ให้โอกาสอภิปรายในวันนี้", i, i + 1)
    await expect(page.locator("#captions .caption.final")).to_have_count(30)
    scroller = page.locator("#caption-scroll")
    assert await scroller.evaluate(AT_BOTTOM)

    # Scroll to the top and wait until the page has handled that scroll.
    await scroller.evaluate(
        """el => new Promise(done => {
            el.addEventListener("scroll", () => requestAnimationFrame(done), { once: true });
            el.scrollTop = 0;
        })"""
    )
    await recorder.caption_final(sid, "s-30", "ประโยคใหม่ระหว่างอ่านย้อนหลัง", 30, 31)
    await expect(page.locator("#captions .caption.final")).to_have_count(31)
    await expect(page.locator("#jump-latest")).to_be_visible()
    assert await scroller.evaluate("el => el.scrollTop") == 0

    await page.locator("#jump-latest").click()
    await expect(page.locator("#jump-latest")).to_be_hidden()
    assert await scroller.evaluate(AT_BOTTOM)


async def test_watch_page_resumes_after_a_drop_without_losing_or_repeating_events(running: Running, page: Page):
    """After a 4008 close while the browser is offline, every event published in the outage shows exactly once."""
    sid = await create_sitting(running, "senate-drop")
    recorder = running.app.state.recorder
    await recorder.caption_final(sid, "f-0", "ก่อนเปิดหน้า", 0.0, 2.0)
    await open_watch(page, running, sid)
    await recorder.caption_final(sid, "f-1", "ระหว่างเชื่อมต่อ", 2.0, 4.0)
    await expect(page.locator("#captions .caption.final")).to_have_count(2)

    await page.context.set_offline(True)
    # The server cuts this viewer off as a slow consumer (its outbox overflows), then partials go on in the outage.
    # (Published first, they would be written straight to the browser's socket, which is still reading.)
    for sub in tuple(running.app.state.hub._subs[f"sitting:{sid}"]):
        sub.outbox.overflow()
    for i in range(OUTBOX + 1):
        await recorder.caption_partial(sid, "f-2", f"ขณะหลุด {i}", 4.0, 5.0 + i)
    await expect(page.locator("#conn")).to_have_attribute("data-state", re.compile("^(reconnecting|offline)$"))
    assert await page.evaluate("window.sapha.client.lastClose.code") == 4008

    outage = ["ขณะหลุด ประโยคที่หนึ่ง", "ขณะหลุด ประโยคที่สอง", "ขณะหลุด ประโยคที่สาม"]
    await recorder.caption_final(sid, "f-2", outage[0], 4.0, 6.0)
    await recorder.set_agenda_item(sid, "ระเบียบวาระที่ ๔ เรื่องด่วน", None, 4)
    await recorder.caption_final(sid, "f-3", outage[1], 6.0, 8.0)
    await recorder.set_speaker(sid, "นางสาวภัทรา วรามิตร", "สมาชิกวุฒิสภา")
    await recorder.record_vote(sid, "เห็นชอบให้เลื่อนระเบียบวาระ", 150, 10, 5, 35, "rejected")
    await recorder.caption_final(sid, "f-4", outage[2], 8.0, 10.0)

    await page.context.set_offline(False)
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await expect(page.locator("#captions .caption.final")).to_have_count(5)
    assert await final_texts(page) == ["ก่อนเปิดหน้า", "ระหว่างเชื่อมต่อ", *outage]
    seqs = [
        int(s)
        for s in await page.locator("#captions .caption.final").evaluate_all("els => els.map(e => e.dataset.seq)")
    ]
    assert seqs == sorted(set(seqs))
    await expect(page.locator(".caption.partial")).to_have_count(0)
    await expect(page.locator("#agenda .agenda-title")).to_have_text("ระเบียบวาระที่ ๔ เรื่องด่วน")
    await expect(page.locator("#speaker .speaker-name")).to_have_text("นางสาวภัทรา วรามิตร")
    await expect(page.locator("#vote .vote-result")).to_have_attribute("data-result", "rejected")

    stats = await page.evaluate("window.sapha.client.stats")
    assert stats["reconnects"] == 1 and stats["resets"] == 0 and stats["gaps"] == 0


async def test_watch_page_refetches_everything_after_a_server_restart(tmp_path: Path, page: Page):
    """A restart's new epoch (recovered:false) makes the page refetch state and transcript, each caption once."""
    settings = test_settings(tmp_path)
    async with serve(settings) as first:
        sid = await create_sitting(first, "senate-restart")
        await first.app.state.recorder.caption_final(sid, "r-0", "ก่อนรีสตาร์ต", 0.0, 2.0)
        await open_watch(page, first, sid)
        await first.app.state.recorder.caption_final(sid, "r-1", "ก่อนรีสตาร์ตอีกประโยค", 2.0, 4.0)
        await expect(page.locator("#captions .caption.final")).to_have_count(2)
        port = int(first.url.rsplit(":", 1)[1])
        await page.context.set_offline(True)  # keep the page away until the new server is up
    await expect(page.locator("#conn")).to_have_attribute("data-state", re.compile("^(reconnecting|offline)$"))

    async with serve(dataclasses.replace(settings, port=port)) as second:
        recorder = second.app.state.recorder
        await recorder.set_agenda_item(sid, "ระเบียบวาระหลังรีสตาร์ต", None, 2)
        await recorder.caption_final(sid, "r-2", "หลังรีสตาร์ต", 4.0, 6.0)
        await page.context.set_offline(False)
        await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        await expect(page.locator("#captions .caption.final")).to_have_count(3)
        await recorder.caption_final(sid, "r-3", "หลังเชื่อมต่อใหม่", 6.0, 8.0)
        await expect(page.locator("#captions .caption.final")).to_have_count(4)
        assert await final_texts(page) == ["ก่อนรีสตาร์ต", "ก่อนรีสตาร์ตอีกประโยค", "หลังรีสตาร์ต", "หลังเชื่อมต่อใหม่"]
        await expect(page.locator("#agenda .agenda-title")).to_have_text("ระเบียบวาระหลังรีสตาร์ต")
        stats = await page.evaluate("window.sapha.client.stats")
        assert stats["resets"] == 1


async def test_index_lists_sittings_with_links_to_their_watch_pages(running: Running, page: Page):
    """The index lists every sitting with its chamber and status, links each to /watch/<id>, and links its JSON twin."""
    await create_sitting(running, "senate-a", live=False, title="การประชุมวุฒิสภา ครั้งที่ ๑")
    await create_sitting(running, "senate-b", title="การประชุมวุฒิสภา ครั้งที่ ๒")
    await page.goto(f"{running.url}/")
    cards = page.locator(".sitting-card")
    await expect(cards).to_have_count(2)
    live_card = page.locator('.sitting-card[data-sitting-id="senate-b"]')
    await expect(cards.first).to_have_attribute("data-sitting-id", "senate-b")  # live sittings come first
    await expect(live_card.locator(".badge")).to_have_attribute("data-status", "live")
    await expect(live_card).to_contain_text("วุฒิสภา")
    link = live_card.locator("h3 a")  # under the home page's "live now" section heading
    await expect(link).to_have_text("การประชุมวุฒิสภา ครั้งที่ ๒")
    await expect(link).to_have_attribute("href", "/watch/senate-b")
    await expect(page.locator('a[href="/api/sittings"]').first).to_be_visible()

    await link.click()
    await expect(page).to_have_url(f"{running.url}/watch/senate-b")
    await expect(page.locator("#title")).to_have_text("การประชุมวุฒิสภา ครั้งที่ ๒")


async def test_watch_page_for_an_unknown_sitting_is_a_404_page(running: Running, page: Page):
    """/watch/<unknown id> answers 404 with a Thai 'not found' page that links back to the index."""
    response = await page.goto(f"{running.url}/watch/no-such-sitting")
    assert response is not None and response.status == 404
    await expect(page.locator("h1")).to_have_text("ไม่พบการประชุมนี้")
    await expect(page.locator('main a[href="/"]')).to_be_visible()
    assert await page.evaluate("document.documentElement.lang") == "th"
