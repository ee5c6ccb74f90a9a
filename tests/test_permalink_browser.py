"""Permalinks in headless chromium: /watch/{id}?t= opens a closed recording at that moment with its line in view,
"copy link to this moment" puts the permalink on the clipboard, and a correction replaces a line's words live."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from chromium import needs_chromium
from playwright.async_api import Browser, Page, expect
from test_player_browser import MOTION, OPENING, RECORDING_S, VIDEO, Site, create_sitting, site, write_hls

pytestmark = [pytest.mark.browser, needs_chromium]
__all__ = ["site"]  # the stream and the app come from the player tests: one setup for both

LINES = [(float(i), float(i) + 0.9, f"บรรทัดที่ {i}") for i in range(10)]


async def _recording(site: Site, sid: str) -> None:
    await create_sitting(site, sid)
    await asyncio.to_thread(write_hls, site.hls_root / sid, seconds=RECORDING_S, captions=[OPENING, MOTION], close=True)
    recorder = site.running.app.state.recorder
    for i, (start, end, text) in enumerate(LINES):
        await recorder.caption_final(sid, f"u-{i}", text, start, end)
    await recorder.set_status(sid, "adjourned")


@pytest.fixture
async def clip_page(browser: Browser, site: Site):
    """A page whose context may read and write the clipboard (the app's own origin)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        await context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


async def test_a_permalink_opens_the_recording_at_its_moment_with_the_line_in_view(site: Site, page: Page):
    """?t=6.5 seeks the closed recording to media time 6.5 (paused), highlights and scrolls to the line at 6."""
    sid = "senate-permalink"
    await _recording(site, sid)
    await page.set_viewport_size({"width": 1280, "height": 500})  # a short panel, so the line must be scrolled to
    await page.goto(f"{site.url}/watch/{sid}?t=6.5")
    await expect(page.locator("#player")).to_have_attribute("data-status", "ready", timeout=20_000)
    await page.wait_for_function("Math.abs(window.sapha.player.mediaTime() - 6.5) < 0.1")
    assert abs(await page.evaluate(f"{VIDEO}.currentTime") - 6.5) < 0.3
    assert await page.evaluate(f"{VIDEO}.paused")
    target = page.locator("#captions .caption.target")
    await expect(target).to_have_count(1)
    await expect(target.locator(".caption-text")).to_have_text("บรรทัดที่ 6")
    await expect(target).to_be_in_viewport()
    await expect(page.locator("#seek-note")).to_be_hidden()


async def test_a_moment_past_the_end_is_clamped_and_said_so(site: Site, page: Page):
    """?t= beyond the recording opens its end with a note, not an error page."""
    sid = "senate-past-end"
    await _recording(site, sid)
    await page.goto(f"{site.url}/watch/{sid}?t=5000")
    await expect(page.locator("#player")).to_have_attribute("data-status", "ready", timeout=20_000)
    await expect(page.locator("#seek-note")).to_be_visible()
    await expect(page.locator("#seek-note")).to_contain_text("1:23:20")
    await expect(page.locator("#captions .caption.target .caption-text")).to_have_text("บรรทัดที่ 9")
    await page.wait_for_function(
        f"window.sapha.player.mediaTime() > 9 && window.sapha.player.mediaTime() <= {RECORDING_S}"
    )


async def test_copy_link_puts_the_permalink_of_the_line_on_the_clipboard(site: Site, clip_page: Page):
    """Each line's copy button (a named, focusable button) copies /watch/{id}?t=<its start>."""
    sid = "senate-copy"
    await _recording(site, sid)
    await clip_page.goto(f"{site.url}/watch/{sid}")
    button = clip_page.locator('#captions .caption.final[data-segment-id="u-3"] button.caption-copy')
    await expect(button).to_have_accessible_name("คัดลอกลิงก์ไปยังช่วงเวลา 0:00:03 · copy link to this moment")
    await button.focus()
    await clip_page.keyboard.press("Enter")
    await expect(clip_page.locator("#copy-status")).to_contain_text("คัดลอกลิงก์แล้ว")
    assert await clip_page.evaluate("navigator.clipboard.readText()") == f"{site.url}/watch/{sid}?t=3"


async def test_a_correction_replaces_the_line_live_and_marks_it(site: Site, page: Page):
    """A PATCH while the page is open: the line's words change in place and it is marked corrected."""
    sid = "senate-correct"
    await _recording(site, sid)
    await page.goto(f"{site.url}/watch/{sid}")
    line = page.locator('#captions .caption.final[data-segment-id="u-2"]')
    await expect(line.locator(".caption-text")).to_have_text("บรรทัดที่ 2")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    archive_id = await line.get_attribute("data-archive-id")
    async with httpx.AsyncClient(base_url=site.url, headers=site.running.auth) as client:
        r = await client.patch(f"/api/segments/{archive_id}", json={"text": "บรรทัดที่สองที่แก้แล้ว"})
        assert r.status_code == 200, r.text
    await expect(line.locator(".caption-text")).to_have_text("บรรทัดที่สองที่แก้แล้ว")
    await expect(line).to_have_class(re.compile(r"\bcorrected\b"))
