"""The staff console in headless Debian chromium, against the real server: an operator signs in, starts a sitting,
sets the agenda and the speaker with one tap, records a vote and corrects a live caption, while a viewer's /watch
page in another tab shows each change; a signed-out browser gets nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import argon2
import pytest
from chromium import needs_chromium
from live_server import Running, serve, test_settings
from playwright.async_api import Browser, BrowserContext, Page, expect

from desk import accounts as acc
from desk.accounts import SESSION_COOKIE, Passwords
from desk.accounts_sqlite import AccountStore

pytestmark = [pytest.mark.browser, needs_chromium]

PASSWORD = "correct horse battery"
TITLE = "การประชุมวุฒิสภา ครั้งที่ ๑๕"


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[AccountStore]:
    cheap = Passwords(argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    store = AccountStore(tmp_path / "staff.db", passwords=cheap)
    boot = acc.bootstrap_principal()
    store.create_account(boot, "somchai", PASSWORD, ["operator"], "สมชาย ผู้ควบคุม")
    store.create_account(boot, "malee", PASSWORD, ["moderator"])
    yield store
    store.close()


@pytest.fixture
async def running(tmp_path: Path, accounts: AccountStore) -> AsyncIterator[Running]:
    async with serve(test_settings(tmp_path), accounts=accounts) as r:
        yield r


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    # A tablet in the chamber; bypass_csp only for Playwright's own evaluations (test_security_headers covers CSP).
    ctx = await browser.new_context(viewport={"width": 1024, "height": 768}, bypass_csp=True)
    errors: list[str] = []
    ctx.on("weberror", lambda e: errors.append(str(e.error)))
    yield ctx
    await ctx.close()
    assert errors == [], f"uncaught errors in the pages: {errors}"


async def sign_in(page: Page, url: str, username: str = "somchai") -> None:
    await page.goto(f"{url}/console")
    form = page.locator("#login-form")
    await form.get_by_label("ชื่อผู้ใช้").fill(username)
    await form.get_by_label("รหัสผ่าน").fill(PASSWORD)
    await form.get_by_role("button", name="เข้าสู่ระบบ").click()
    await expect(page.locator("#desk")).to_be_visible()


async def test_an_operator_runs_a_sitting_from_the_console_and_the_viewer_sees_it(
    running: Running, context: BrowserContext
):
    """Sign in, create and start a sitting, add agenda items and speakers, tap back to an earlier speaker, record a
    vote and correct a live caption: the viewer's page in another tab shows each, and the session cookie is the
    Secure, HttpOnly, SameSite=Strict ``__Host-`` one."""
    console = await context.new_page()
    await sign_in(console, running.url)
    await expect(console.locator("#who")).to_have_text("สมชาย ผู้ควบคุม")
    cookie = next(c for c in await context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # An operator sees no admin parts.
    await expect(console.locator("#accounts-card")).to_be_hidden()
    await expect(console.locator("#audit-card")).to_be_hidden()

    await console.get_by_label("ชื่อการประชุม").fill(TITLE)
    await console.get_by_role("button", name="สร้างการประชุม").click()
    await expect(console.locator("#control-title")).to_have_text(TITLE)
    sitting_id = await console.locator("#control").get_attribute("data-sitting-id")
    assert sitting_id
    await console.get_by_role("button", name="เริ่มประชุม").click()
    await expect(console.locator("#control-status")).to_have_attribute("data-status", "live")

    viewer = await context.new_page()
    await viewer.goto(f"{running.url}/watch/{sitting_id}")
    await expect(viewer.locator("#conn")).to_have_attribute("data-state", "live")
    await expect(viewer.locator("#status")).to_have_attribute("data-status", "live")

    for title, order in [("รับรองรายงานการประชุม", "1"), ("ร่างพระราชบัญญัติงบประมาณ", "2")]:
        await console.get_by_label("วาระใหม่").fill(title)
        await console.get_by_label("ลำดับ").fill(order)
        await console.get_by_role("button", name="เพิ่มและตั้งเป็นวาระปัจจุบัน").click()
        await expect(viewer.locator("#agenda .agenda-title")).to_have_text(title)
        current = console.locator("#agenda-list").get_by_role("button", name=f"{order}. {title}")
        await expect(current).to_have_attribute("aria-pressed", "true")
    await console.locator("#agenda-list").get_by_role("button", name="1. รับรองรายงานการประชุม").click()
    await expect(viewer.locator("#agenda .agenda-title")).to_have_text("รับรองรายงานการประชุม")

    for name, role in [("นายมงคล สุระสัจจะ", "ประธานวุฒิสภา"), ("นางสาวอรพรรณ ใจดี", "สมาชิกวุฒิสภา")]:
        form = console.locator("#speaker-form")
        await form.get_by_label("ชื่อ", exact=True).fill(name)
        await form.get_by_label("ตำแหน่ง (ถ้ามี)").fill(role)
        await console.get_by_role("button", name="เพิ่มและตั้งเป็นผู้อภิปราย").click()
        await expect(viewer.locator("#speaker .speaker-name")).to_have_text(name)
        current = console.locator("#speaker-list").get_by_role("button", name=name)
        await expect(current).to_have_attribute("aria-pressed", "true")
    first = console.locator("#speaker-list").get_by_role("button", name="นายมงคล สุระสัจจะ")
    await first.click()  # one tap
    await expect(viewer.locator("#speaker .speaker-name")).to_have_text("นายมงคล สุระสัจจะ")
    await expect(first).to_have_attribute("aria-pressed", "true")

    await console.get_by_label("ญัตติ").fill("เห็นชอบในวาระที่สาม")
    for label, count in [("เห็นด้วย", "150"), ("ไม่เห็นด้วย", "5"), ("งดออกเสียง", "10"), ("ไม่ลงคะแนน", "35")]:
        await console.get_by_label(label, exact=True).fill(count)
    await console.get_by_role("button", name="บันทึกผลการลงมติ").click()
    await expect(viewer.locator("#vote .vote-result")).to_have_attribute("data-result", "passed")
    await expect(console.locator("#notice")).to_have_text("บันทึกผลการลงมติแล้ว")

    await running.app.state.recorder.caption_final(sitting_id, "u-1", "ท่านสมาชิกที่เคารพ ผมขอเปิดประชม", 0.0, 3.0)
    await expect(viewer.locator("#captions .caption-text")).to_have_text("ท่านสมาชิกที่เคารพ ผมขอเปิดประชม")
    line = console.locator("#caption-list input").first
    await expect(line).to_have_value("ท่านสมาชิกที่เคารพ ผมขอเปิดประชม")
    await line.fill("ท่านสมาชิกที่เคารพ ผมขอเปิดประชุม")
    await line.press("Enter")
    await expect(viewer.locator("#captions .caption-text")).to_have_text("ท่านสมาชิกที่เคารพ ผมขอเปิดประชุม")

    await console.get_by_role("button", name="ปิดประชุม").click()
    await expect(viewer.locator("#status")).to_have_attribute("data-status", "adjourned")

    await console.get_by_role("button", name="ออกจากระบบ").click()
    await expect(console.locator("#login-card")).to_be_visible()
    status = await console.evaluate("fetch('/api/staff/feeds').then(r => r.status)")
    assert status == 401


async def test_a_signed_out_browser_and_a_moderator_get_nothing_to_operate(running: Running, context: BrowserContext):
    """A signed-out browser sees only the sign-in form and its calls get 401; a moderator sees no sitting controls,
    and a vote forced through the API from its page is a 403."""
    page = await context.new_page()
    await page.goto(f"{running.url}/console")
    await expect(page.locator("#login-card")).to_be_visible()
    await expect(page.locator("#desk")).to_be_hidden()
    assert await page.evaluate("fetch('/api/staff/me').then(r => r.status)") == 401

    form = page.locator("#login-form")
    await form.get_by_label("ชื่อผู้ใช้").fill("somchai")
    await form.get_by_label("รหัสผ่าน").fill("not the password")
    await form.get_by_role("button", name="เข้าสู่ระบบ").click()
    await expect(page.locator("#login-error")).to_have_text("ชื่อผู้ใช้หรือรหัสผ่านไม่ถูกต้อง")

    await sign_in(page, running.url, "malee")
    await expect(page.locator("#sitting-form")).to_be_hidden()
    await expect(page.locator("#control-card [data-needs='vote.record']")).to_be_hidden()
    status = await page.evaluate(
        """async () => {
            const me = await (await fetch('/api/staff/me')).json();
            const r = await fetch('/api/sittings', {method: 'POST', headers: {'Content-Type': 'application/json',
                'X-CSRF-Token': me.csrf}, body: JSON.stringify({title: 'x', chamber: 'senate'})});
            return r.status;
        }"""
    )
    assert status == 403


FOCUSED_ID = "() => document.activeElement && document.activeElement.id"


async def tab_to(page: Page, element_id: str, limit: int = 40) -> None:
    """Press Tab until the element has focus (failing after `limit` presses)."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate(FOCUSED_ID) == element_id:
            return
    pytest.fail(f"Tab never reached #{element_id}")


@pytest.mark.parametrize("width", [390, 768])
async def test_the_console_works_by_keyboard_on_a_phone_and_a_tablet_without_sideways_scrolling(
    running: Running, browser: Browser, accounts: AccountStore, width: int
):
    """At 390 px and at tablet width, an admin-operator signs in and starts a sitting by keyboard alone, and the
    signed-in console, every part shown, scrolls only vertically."""
    accounts.create_account(acc.bootstrap_principal(), "root", PASSWORD, ["admin", "operator"])
    ctx = await browser.new_context(viewport={"width": width, "height": 844}, bypass_csp=True)
    try:
        page = await ctx.new_page()
        await page.goto(f"{running.url}/console")
        await tab_to(page, "login-username")
        await page.keyboard.type("root")
        await page.keyboard.press("Tab")
        await page.keyboard.type(PASSWORD)
        await page.keyboard.press("Enter")
        await expect(page.locator("#accounts-card")).to_be_visible()
        await tab_to(page, "sitting-title")
        await page.keyboard.type(TITLE)
        await page.keyboard.press("Enter")
        await expect(page.locator("#control-title")).to_have_text(TITLE)
        await tab_to(page, "start")
        await page.keyboard.press("Enter")
        await expect(page.locator("#control-status")).to_have_attribute("data-status", "live")
        await expect(page.locator("#audit-rows tr").first).to_be_visible()
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        await ctx.close()
