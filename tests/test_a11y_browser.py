"""Accessibility of every page, in headless Debian chromium: axe-core's WCAG 2.2 AA rules and keyboard use.

axe-core is vendored under tests/vendor/axe-core (never served by the app) and injected into each page through
Playwright with ``bypass_csp``, so the pages' Content-Security-Policy need not allow it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chromium import needs_chromium
from live_server import Running, serve, test_settings
from playwright.async_api import Browser, Page, ViewportSize, expect
from test_documents_browser import SHARED, small_data
from test_player_browser import write_hls

from archive.documents import FULL_2560, load
from desk.accounts import bootstrap_principal

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
# The rule tags of WCAG 2.2 level AA: axe tags each rule with the WCAG version and level that introduced it.
WCAG22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}

STAFF, STAFF_PASSWORD = "a11y-staff", "correct horse battery"
SITTING = "senate-a11y"  # no video: the player shows its "no video yet" notice
VIDEO_SITTING = "senate-a11y-video"  # a short closed recording: the player shows the video and its controls
SITTING_TITLE = "การประชุมวุฒิสภา ครั้งที่ ๑๒ (สมัยประชุมสามัญประจำปีครั้งที่หนึ่ง)"
AGENDA_TITLE = "ร่างพระราชบัญญัติแก้ไขเพิ่มเติมประมวลกฎหมายแพ่งและพาณิชย์ (ฉบับที่ ..) พ.ศ. .... ว่าด้วยการสมรสเท่าเทียม"
# (segment id, text, start): the last is a second piece of the same utterance, shown as a continuation.
FINALS = [
    ("seg-0", "ท่านสมาชิกที่เคารพ บัดนี้สมาชิกมาครบองค์ประชุมแล้ว ผมขอเปิดการประชุม", 0.0),
    ("seg-1", "ขอให้ที่ประชุมพิจารณาระเบียบวาระที่หนึ่ง เรื่องที่ประธานจะแจ้งต่อที่ประชุม", 10.0),
    ("seg-2", "ที่ประชุมรับทราบ", 20.0),
    ("seg-2", "และให้ดำเนินการต่อไป", 24.0),
]


@dataclasses.dataclass
class Site:
    running: Running
    hls_root: Path

    @property
    def url(self) -> str:
        return self.running.url


async def furnish(running: Running, sitting_id: str) -> None:
    """A live sitting with what the watch page shows: agenda, speaker, a vote, a transcript with a continuation."""
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth) as client:
        r = await client.post("/api/sittings", json={"id": sitting_id, "title": SITTING_TITLE, "chamber": "senate"})
        assert r.status_code == 201, r.text
        for path, body in [
            ("status", {"status": "live"}),
            ("agenda", {"title": AGENDA_TITLE, "bill_id": "B2568-01", "order": 3}),
            ("speaker", {"name": "นายมงคล สุระสัจจะ", "role": "ประธานวุฒิสภา"}),
            (
                "votes",
                {"motion": "เห็นชอบในวาระที่สาม", "yes": 130, "no": 4, "abstain": 18, "absent": 48, "result": "passed"},
            ),
        ]:
            r = await client.post(f"/api/sittings/{sitting_id}/{path}", json=body)
            assert r.status_code in (200, 201), r.text
    recorder = running.app.state.recorder
    for segment_id, text, start in FINALS:
        await recorder.caption_final(sitting_id, segment_id, text, start, start + 4)


NEWS_TITLE = "วุฒิสภาเห็นชอบร่างพระราชบัญญัติงบประมาณรายจ่ายประจำปี"


async def furnish_news(running: Running) -> None:
    """A published article with every Markdown feature, and a publication with its PDF (before any admin account
    exists, while the bootstrap token still holds the editor's role)."""
    body = (
        "## ผลการลงมติ\n\nที่ประชุม**เห็นชอบ** _ด้วยคะแนน_ ๑๓๐ เสียง\n\n- วาระที่หนึ่ง\n- วาระที่สอง\n\n"
        "> คำกล่าวของประธาน\n\n| วาระ | ผล |\n|---|---|\n| ๓ | เห็นชอบ |\n\n[วุฒิสภา](https://www.senate.go.th)"
    )
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth, timeout=60) as client:
        r = await client.post("/api/news", json={"title": NEWS_TITLE, "body": body, "topics": ["งบประมาณ"]})
        assert r.status_code == 201, r.text
        assert (await client.post(f"/api/news/{r.json()['item']['slug']}/publish")).status_code == 200
        publication = {
            "title": "รายงานการศึกษางบประมาณแผ่นดิน",
            "authors": ["สำนักงบประมาณของรัฐสภา"],
            "year": 2025,
            "abstract": "รายงานวิเคราะห์ปีงบประมาณ ๒๕๖๘",
            "kind": "report",
            "topics": ["งบประมาณ"],
        }
        r = await client.post("/api/publications", json=publication)
        assert r.status_code == 201, r.text
        assert (await client.put(f"/api/publications/{r.json()['publication']['id']}/file", content=pdf)).is_success


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    root = tmp_path / "hls"
    async with serve(test_settings(tmp_path, hls_dir=str(root))) as running:
        await furnish(running, SITTING)
        await furnish(running, VIDEO_SITTING)
        await furnish_news(running)
        async with httpx.AsyncClient(base_url=running.url, headers=running.auth) as client:
            bill = {"id": "a11y-bill", "title": AGENDA_TITLE, "type": "ordinary", "agencies": ["กระทรวงยุติธรรม"]}
            assert (await client.post("/api/bills", json=bill)).status_code == 201
        if (SHARED / FULL_2560).is_file():  # the constitution pages, when ../shared/data is here
            await load(running.app.state.store, small_data(tmp_path / "documents"))
        await asyncio.to_thread(
            write_hls, root / VIDEO_SITTING, seconds=3.0, captions=[(0.2, 2.5, FINALS[0][1])], close=True
        )
        # A staff account for the signed-in console (admin too, so every part of it shows).
        await asyncio.to_thread(
            running.app.state.staff.accounts.create_account,
            bootstrap_principal(),
            STAFF,
            STAFF_PASSWORD,
            ["operator", "admin"],
            "ผู้ควบคุมการประชุม",
        )
        yield Site(running, root)


@contextlib.asynccontextmanager
async def new_page(browser: Browser, viewport: ViewportSize, **options: Any) -> AsyncIterator[Page]:
    """A page in its own context, which bypasses CSP so that axe can be injected however strict the pages' policy
    is; it fails the test if the page threw an uncaught JavaScript error."""
    context = await browser.new_context(viewport=viewport, bypass_csp=True, **options)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        await context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    await page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = await page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        WCAG22_AA,
    )
    return list(result["violations"])


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} — {v['helpUrl']}")
        for node in v["nodes"]:
            lines.append(f"    {node['target']}: {node['failureSummary']}".replace("\n", " "))
    return "\n".join(lines)


def player_status(sitting_id: str) -> str:
    return "ready" if sitting_id == VIDEO_SITTING else "novideo"


async def open_watch(page: Page, site: Site, sitting_id: str = SITTING, fragment: str = "") -> None:
    """/watch for a furnished sitting once everything has arrived, with a partial showing under the finals."""
    await page.goto(f"{site.url}/watch/{sitting_id}{fragment}")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await expect(page.locator("#captions .caption.final")).to_have_count(len(FINALS))
    await expect(page.locator("#captions .caption.final.cont")).to_have_count(1)
    await expect(page.locator("#vote .vote-result")).to_have_attribute("data-result", "passed")
    await expect(page.locator("#player")).to_have_attribute("data-status", player_status(sitting_id))
    # A partial on screen too, with its own (muted, italic) colours.
    await site.running.app.state.recorder.caption_partial(sitting_id, "seg-9", "ต่อไปเป็น", 40.0, 41.0)
    await expect(page.locator("#partials .caption.partial")).to_have_count(1)


# ---- axe on every page -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", VIEWPORTS)
@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_every_page_passes_axe_wcag22_aa(site: Site, browser: Browser, width: str, scheme: str):
    """The home page, furnished watch and embed pages (with and without video), news, publications, the 404 page and
    the console (signed out and signed in) pass axe's WCAG 2.2 AA."""
    found: dict[str, str] = {}
    async with new_page(browser, VIEWPORTS[width], color_scheme=scheme) as page:
        await visit_every_page(page, site, found)
    report = "\n".join(f"{where}:\n{text}" for where, text in found.items() if text)
    if report:
        pytest.fail(f"axe found WCAG 2.2 AA violations at {width} width, {scheme} scheme:\n{report}", pytrace=False)


async def answered_message(running: Running) -> str:
    """A complaint sent, then answered by a moderator (the status page's every part); its tracking code."""
    fields = {"kind": "complaint", "subject": "ทางเท้าชำรุด", "text": "ขอให้ซ่อม", "phone": "0812345678", "consent": True}
    async with httpx.AsyncClient(base_url=running.url) as client:
        sent = await client.post("/api/messages", json=fields)
    assert sent.status_code == 202, sent.text
    store, moderator = running.app.state.messages_api.messages, bootstrap_principal()
    [message] = await asyncio.to_thread(store.list_messages, moderator)
    await asyncio.to_thread(store.transition, moderator, message.id, "in_review")
    await asyncio.to_thread(store.transition, moderator, message.id, "answered", answer="ส่งเรื่องให้ กทม. แล้ว")
    return str(sent.json()["code"])


async def visit_every_page(page: Page, site: Site, found: dict[str, str]) -> None:
    """Run axe on each page in turn, filling `found` with each page's violations described (empty when none)."""
    await page.goto(f"{site.url}/")
    await expect(page.locator(".sitting-card")).to_have_count(2)
    await expect(page.locator("#latest-news .news-card")).to_have_count(1)
    await expect(page.locator("#bills .bill-card")).not_to_have_count(0)  # the bills today's agenda named
    found["/"] = describe(await axe_violations(page))

    # News: the list, the article (headings, list, quote, table, link), the library searched, a publication.
    await page.goto(f"{site.url}/news")
    await expect(page.locator(".news-card")).to_have_count(1)
    found["/news"] = describe(await axe_violations(page))
    await page.locator(".news-card h2 a").click()
    await expect(page.locator("#article-body table")).to_have_count(1)
    found["/news/{slug}"] = describe(await axe_violations(page))
    await page.goto(f"{site.url}/publications?q=งบประมาณ")
    await expect(page.locator("#results .search-result mark")).not_to_have_count(0)
    found["/publications"] = describe(await axe_violations(page))
    await page.locator("#results .search-result-title a").click()
    await expect(page.locator("#pdf-row")).to_be_visible()
    found["/publications/{id}"] = describe(await axe_violations(page))

    for sid in (SITTING, VIDEO_SITTING):
        # With the video, a deep link to the continuation: its time on the highlighted (target) background.
        await open_watch(page, site, sid, "#t=24" if sid == VIDEO_SITTING else "")
        if sid == VIDEO_SITTING:
            await expect(page.locator("#captions .caption.target.cont")).to_have_count(1)
        found[f"/watch/{sid}"] = describe(await axe_violations(page))

        await page.goto(f"{site.url}/embed/{sid}")
        await expect(page.locator("#player")).to_have_attribute("data-status", player_status(sid))
        await expect(page.locator("#embed-title")).to_have_text(SITTING_TITLE)
        found[f"/embed/{sid}"] = describe(await axe_violations(page))

    # The bill the furnished agenda names: its sittings, agenda items and votes.
    await page.goto(f"{site.url}/bills/B2568-01")
    await expect(page.locator("#votes .bill-item")).not_to_have_count(0)
    found["/bills/B2568-01"] = describe(await axe_violations(page))

    # Its follow control open (email form, feed link), with a message in its status line.
    await page.locator("#follow-box summary").click()
    await page.locator("#follow-box").get_by_label("อีเมล · Email").fill("reader@example.org")
    await page.locator("#follow-box").get_by_role("button", name="รับทางอีเมล · Email me").click()
    await expect(page.locator("#follow-box .follow-status")).not_to_be_empty()
    found["/bills/B2568-01 (follow)"] = describe(await axe_violations(page))

    # The bill list and an agency's embeddable tracker (the site has a bill with details and a stage).
    await page.goto(f"{site.url}/bills")
    await expect(page.locator("#results .bill-row")).not_to_have_count(0)
    found["/bills"] = describe(await axe_violations(page))
    await page.goto(f"{site.url}/embed/bills?agency=กระทรวงยุติธรรม")
    await expect(page.locator(".bill-row")).to_have_count(1)
    found["/embed/bills?agency=…"] = describe(await axe_violations(page))

    # Search with results (hits marked) and its filters open.
    await page.goto(f"{site.url}/search?q=ที่ประชุม&chamber=senate")
    await expect(page.locator("#results .search-result mark")).not_to_have_count(0)
    found["/search"] = describe(await axe_violations(page))

    # The constitutions: the list with a search, a table of contents, a section with its comparison.
    if await site.running.app.state.store.list_documents():
        await page.goto(f"{site.url}/documents?q=วุฒิสภา")
        await expect(page.locator("#results .search-result mark")).not_to_have_count(0)
        await expect(page.locator("#documents li")).not_to_have_count(0)
        found["/documents"] = describe(await axe_violations(page))
        await page.goto(f"{site.url}/documents/constitution-2560")
        await expect(page.locator("#toc-body a")).not_to_have_count(0)
        found["/documents/{doc}"] = describe(await axe_violations(page))
        await page.goto(f"{site.url}/documents/constitution-2560/sections/109")
        await expect(page.locator("#matches .doc-match")).not_to_have_count(0)
        found["/documents/{doc}/sections/{n}"] = describe(await axe_violations(page))

    # The public's messages: the form with its field errors showing, a message answered, the privacy notice.
    await page.goto(f"{site.url}/write")
    await page.get_by_role("button", name="ส่งข้อความ").click()
    await expect(page.locator("#subject-error")).to_be_visible()
    found["/write"] = describe(await axe_violations(page))
    code = await answered_message(site.running)
    await page.goto(f"{site.url}/write/status/{code}")
    await expect(page.locator("#m-answer")).to_be_visible()
    found["/write/status/{code}"] = describe(await axe_violations(page))
    await page.goto(f"{site.url}/privacy")
    found["/privacy"] = describe(await axe_violations(page))

    response = await page.goto(f"{site.url}/watch/no-such-sitting")
    assert response is not None and response.status == 404
    found["404"] = describe(await axe_violations(page))

    await page.goto(f"{site.url}/console")
    await expect(page.locator("#login-card")).to_be_visible()
    found["/console"] = describe(await axe_violations(page))
    form = page.locator("#login-form")
    await form.get_by_label("ชื่อผู้ใช้").fill(STAFF)
    await form.get_by_label("รหัสผ่าน").fill(STAFF_PASSWORD)
    await form.get_by_role("button", name="เข้าสู่ระบบ").click()
    await page.locator("#sitting-list").get_by_role("button", name=SITTING_TITLE).first.click()
    await expect(page.locator("#agenda-list .console-tap")).to_have_count(1)
    await expect(page.locator("#audit-rows tr").first).to_be_visible()
    await expect(page.locator("#account-list .console-account")).to_have_count(1)
    await expect(page.locator("#health dd")).to_have_count(3)
    found["/console (signed in)"] = describe(await axe_violations(page))


# ---- captions are announced -------------------------------------------------------------------------------------


async def test_live_captions_are_announced_politely(site: Site, browser: Browser):
    """Finals land in a polite live region that announces additions; partials are hidden from screen readers."""
    async with new_page(browser, DESKTOP) as page:
        await open_watch(page, site)
        captions = page.locator("#captions")
        await expect(captions).to_have_attribute("aria-live", "polite")
        await expect(captions).to_have_attribute("aria-relevant", "additions")
        await expect(page.locator("#partials")).to_have_attribute("aria-hidden", "true")
        for region in ("#speaker", "#vote"):
            await expect(page.locator(region)).to_have_attribute("aria-live", "polite")
        await page.goto(f"{site.url}/embed/{SITTING}")
        await expect(page.locator("#embed-caption")).to_have_attribute("aria-live", "polite")


# ---- keyboard --------------------------------------------------------------------------------------------------

# What has focus now. `own`: the element itself has keyboard focus (it matches :focus-visible), and `ring`: it
# draws an outline or a box-shadow ring. When the video is the active element but not :focus-visible, focus is
# on one of its native controls (play, timeline, volume, ...), inside chromium's closed shadow root, which draws
# its own focus ring.
FOCUSED = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const style = getComputedStyle(el);
    return {
        id: el.id, cls: el.className, href: el.getAttribute("href"),
        own: el.matches(":focus-visible"),
        ring: (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0) || style.boxShadow !== "none",
    };
}"""


async def tab_through(page: Page, limit: int = 80) -> list[dict[str, Any]]:
    """Press Tab from the top of the page until focus comes round again; every stop on the way."""
    stops: list[dict[str, Any]] = []
    for _ in range(limit):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(FOCUSED)
        if focused is None or (stops and focused == stops[0]):
            break
        stops.append(focused)
    return stops


@pytest.mark.parametrize("width", VIEWPORTS)
async def test_tab_reaches_the_player_and_the_transcript_links_with_focus_visible(
    site: Site, browser: Browser, width: str
):
    """From the top of /watch, Tab reaches the video, its native controls and every transcript time link, each
    visibly focused; Enter on the first control plays the video."""
    async with new_page(browser, VIEWPORTS[width]) as page:
        await open_watch(page, site, VIDEO_SITTING)
        stops = await tab_through(page)
        assert stops[0]["cls"] == "skip-link"
        native = [s for s in stops if s["id"] == "video" and not s["own"]]
        own = [s for s in stops if s not in native]
        assert [s for s in own if not s["ring"]] == []
        assert [s["id"] for s in own].count("video") == 1
        assert len(native) >= 2  # at least play and the timeline
        assert [s["href"] for s in own if "caption-time" in s["cls"]] == ["#t=0", "#t=10", "#t=20", "#t=24"]
        assert "caption-scroll" in [s["id"] for s in own]  # the scrolling list itself, for the arrow keys

        await page.focus("#video")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        await page.wait_for_function("!document.getElementById('video').paused")


async def test_the_skip_link_moves_focus_to_the_captions(site: Site, browser: Browser):
    """The first Tab shows the skip link on screen; Enter on it moves focus to the live captions panel."""
    async with new_page(browser, PHONE) as page:
        await open_watch(page, site)
        await page.keyboard.press("Tab")
        skip = page.locator(".skip-link")
        await expect(skip).to_be_focused()
        await expect(skip).to_be_in_viewport()
        await page.keyboard.press("Enter")
        await expect(page.locator("#captions-panel")).to_be_focused()
        await page.keyboard.press("Tab")
        await expect(page.locator("#caption-scroll")).to_be_focused()


# ---- the phone layout ------------------------------------------------------------------------------------------

# Elements whose box reaches past the left or right edge of a viewport `w` wide (the hidden skip link aside).
OUTSIDE = """w => Array.from(document.querySelectorAll("body *"))
    .filter(el => !el.closest(".skip-link"))
    .filter(el => { const r = el.getBoundingClientRect(); return r.width > 0 && (r.right > w + 0.5 || r.left < -0.5); })
    .map(el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + "." + el.className)"""


@pytest.mark.parametrize("width", [390, 320])
async def test_watch_page_fits_a_phone_without_sideways_scrolling(site: Site, browser: Browser, width: int):
    """At 390 px, and at 320 px (WCAG's reflow width), /watch scrolls only vertically and nothing sticks out."""
    async with new_page(browser, {"width": width, "height": 844}) as page:
        await open_watch(page, site, VIDEO_SITTING)
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        assert await page.evaluate(OUTSIDE, width) == []
