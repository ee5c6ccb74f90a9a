"""The /search page in headless Debian chromium: a Thai query, highlighted hits, the permalink to the moment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from chromium import needs_chromium
from live_server import Running, serve, test_settings
from playwright.async_api import Browser, Page, expect
from test_security_headers import RECORD_VIOLATIONS

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]

SITTING = "senate-search"
TITLE = "การประชุมวุฒิสภา ครั้งที่ ๘ (สมัยประชุมสามัญประจำปีครั้งที่หนึ่ง)"
FINALS = [
    ("ท่านสมาชิกที่เคารพ บัดนี้สมาชิกมาครบองค์ประชุมแล้ว", 0.0),
    ("ต่อไปเป็นการพิจารณาร่างพระราชบัญญัติงบประมาณรายจ่ายประจำปีงบประมาณ พ.ศ. ๒๕๖๘", 42.5),
    ('ข้อความนี้มี <img src=x onerror="window.pwned=1"> และงบประมาณ', 80.0),
    ("ที่ประชุมมีมติเห็นชอบ", 95.0),
]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(test_settings(tmp_path)) as r:
        async with httpx.AsyncClient(base_url=r.url, headers=r.auth) as client:
            created = await client.post("/api/sittings", json={"id": SITTING, "title": TITLE, "chamber": "senate"})
            assert created.status_code == 201, created.text
            assert (await client.post(f"/api/sittings/{SITTING}/status", json={"status": "live"})).status_code == 200
            r2 = await client.post(f"/api/sittings/{SITTING}/speaker", json={"name": "นายมงคล สุระสัจจะ"})
            assert r2.status_code == 201, r2.text
        for i, (text, start) in enumerate(FINALS):
            await r.app.state.recorder.caption_final(SITTING, f"u{i}", text, start, start + 4)
        yield r


async def test_a_thai_query_finds_highlighted_hits_that_link_to_the_moment(running: Running, page: Page):
    """Typing งบประมาณ and pressing Enter lists the hits with <mark>ed words; a permalink opens that moment."""
    await page.goto(f"{running.url}/search")
    await page.locator("#q").fill("งบประมาณ")
    await page.locator("#q").press("Enter")
    results = page.locator("#results .search-result")
    await expect(results).to_have_count(2)
    await expect(page).to_have_url(
        f"{running.url}/search?q=%E0%B8%87%E0%B8%9A%E0%B8%9B%E0%B8%A3%E0%B8%B0%E0%B8%A1%E0%B8%B2%E0%B8%93"
    )
    first = results.first
    # Two occurrences (one inside ปีงบประมาณ) rank first, each marked.
    await expect(first.locator("mark")).to_have_text(["งบประมาณ", "งบประมาณ"])
    await expect(first.locator(".search-snippet")).to_have_text(FINALS[1][0])
    await expect(first).to_contain_text(TITLE)
    await expect(first).to_contain_text("นายมงคล สุระสัจจะ")
    # Transcript text is shown as text: the markup in a final is neither an element nor run.
    second = results.nth(1)
    await expect(second.locator(".search-snippet")).to_contain_text('<img src=x onerror="window.pwned=1">')
    assert await second.locator("img").count() == 0
    assert await page.evaluate("() => window.pwned === undefined")
    # The JSON twin follows the query.
    twin = page.locator("#json-twin")
    await expect(twin).to_have_attribute(
        "href", "/api/search?q=%E0%B8%87%E0%B8%9A%E0%B8%9B%E0%B8%A3%E0%B8%B0%E0%B8%A1%E0%B8%B2%E0%B8%93"
    )

    permalink = first.locator("a.search-permalink")
    await expect(permalink).to_have_attribute("href", f"/watch/{SITTING}?t=42.5")
    await permalink.click()
    await expect(page).to_have_url(f"{running.url}/watch/{SITTING}?t=42.5")
    await expect(page.locator("#captions .caption.target .caption-text")).to_have_text(FINALS[1][0])


async def test_the_page_reads_its_query_from_the_address_and_says_what_is_wrong(running: Running, page: Page):
    """/search?q=… searches on load (a shareable link); a bad query shows the API's reason, not an empty list."""
    await page.goto(f"{running.url}/search?q=มีมติ&chamber=senate")
    await expect(page.locator("#results .search-result")).to_have_count(1)
    await expect(page.locator("#q")).to_have_value("มีมติ")
    await expect(page.locator("#f-chamber")).to_have_value("senate")
    await expect(page.locator("#search-filters")).to_have_attribute("open", "")
    await expect(page.locator("#search-status")).to_contain_text("พบ")

    await page.locator("#q").fill('"งบประมาณ')
    await page.locator("#q").press("Enter")
    await expect(page.locator("#load-error")).to_be_visible()
    await expect(page.locator("#load-error")).to_contain_text("unbalanced")
    await expect(page.locator("#results .search-result")).to_have_count(0)


async def test_search_works_by_keyboard_on_a_phone_under_the_policy(running: Running, browser: Browser):
    """At 390 px nothing scrolls sideways, Tab goes from the query box to the button and the results, and the page
    runs under the real Content-Security-Policy without a violation."""
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    await context.add_init_script(RECORD_VIOLATIONS)
    page = await context.new_page()
    try:
        await page.goto(f"{running.url}/search")
        await page.locator("#q").focus()
        await page.keyboard.type("ประชุม")
        await page.keyboard.press("Tab")
        await expect(page.locator(".search-submit")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.locator("#results .search-result")).to_have_count(2)
        width = await page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390
        links = page.locator("#results a")
        # Tab order after the form reaches the first result's links.
        for _ in range(12):
            await page.keyboard.press("Tab")
            if await links.first.evaluate("el => el === document.activeElement"):
                break
        await expect(links.first).to_be_focused()
        assert await page.evaluate("window.cspViolations") == []
    finally:
        await context.close()
