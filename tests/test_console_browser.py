"""The staff console in headless Debian chromium, against the real server: an operator signs in, starts a sitting,
sets the agenda and the speaker with one tap, records a vote and corrects a live caption, while a viewer's /watch
page in another tab shows each change; an operator moves a bill's stage (linked to the sitting's agenda item) and the
bill's public page shows it; a signed-out browser gets nothing, and a moderator cannot move a stage."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import console_helpers
import httpx
import pytest
from chromium import needs_chromium
from console_helpers import PASSWORD, staff_accounts, tablet_context
from live_server import Running, serve, test_settings
from playwright.async_api import Browser, BrowserContext, Page, expect
from test_a11y_browser import axe_violations, describe

from desk import accounts as acc
from desk.accounts import SESSION_COOKIE
from desk.accounts_sqlite import AccountStore

pytestmark = [pytest.mark.browser, needs_chromium]

TITLE = "การประชุมวุฒิสภา ครั้งที่ ๑๕"


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[AccountStore]:
    store = staff_accounts(
        tmp_path / "staff.db",
        ("somchai", ["operator"], "สมชาย ผู้ควบคุม"),
        ("malee", ["moderator"], None),
    )
    yield store
    store.close()


@pytest.fixture
async def running(tmp_path: Path, accounts: AccountStore) -> AsyncIterator[Running]:
    async with serve(test_settings(tmp_path), accounts=accounts) as r:
        yield r


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    async with tablet_context(browser) as ctx:
        yield ctx


async def sign_in(page: Page, url: str, username: str = "somchai") -> None:
    await console_helpers.sign_in(page, url, username)


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


BILL_TITLE = "ร่างพระราชบัญญัติการศึกษาแห่งชาติ พ.ศ. ...."
SITTING = "การประชุมสภาผู้แทนราษฎร ครั้งที่ ๓"


async def furnish_bill(running: Running) -> dict[str, Any]:
    """A bill at its House first reading (entered 1 Feb 2026), and a sitting whose current agenda item is that bill;
    returns the API's view of the bill (its next stages among it)."""
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth) as http:
        bill = {"id": "bill-edu", "title": BILL_TITLE, "type": "ordinary", "stage": "house_first_reading"}
        assert (await http.post("/api/bills", json={**bill, "on": "2026-02-01"})).status_code == 201
        sitting = {"id": "s-edu", "title": SITTING, "chamber": "joint"}
        assert (await http.post("/api/sittings", json=sitting)).status_code == 201
        item = {"title": "ร่าง พ.ร.บ. การศึกษา", "bill_id": "bill-edu", "order": 1}
        assert (await http.post("/api/sittings/s-edu/agenda", json=item)).status_code in (200, 201)
        return dict((await http.get("/api/bills/bill-edu")).json())


async def test_an_operator_moves_a_bills_stage_and_its_public_page_shows_it(running: Running, context: BrowserContext):
    """Find the bill by name, see its stage, pick one of the stages that may follow, link it to the chosen sitting's
    current agenda item and submit: the console and the public API and page show the new stage. A date before the
    last change is refused by the API and the message is tied to the date field."""
    before = await furnish_bill(running)
    allowed = before["next_stages"]
    assert allowed
    target = allowed[0]

    console = await context.new_page()
    await sign_in(console, running.url)
    await console.locator("#sitting-list").get_by_role("button", name=SITTING).click()
    await expect(console.locator("#control-title")).to_have_text(SITTING)

    await console.get_by_label("ค้นหาร่างกฎหมาย (ชื่อหรือรหัส)").fill("การศึกษาแห่งชาติ")
    await console.get_by_role("button", name="ค้นหา", exact=True).click()
    await console.locator("#bill-list").get_by_role("button", name=BILL_TITLE).click()
    await expect(console.locator("#bill-title")).to_have_text(BILL_TITLE)
    await expect(console.locator("#bill-stage")).to_have_attribute("data-stage", "house_first_reading")
    await expect(console.locator("#stage-choices input[type=radio]")).to_have_count(len(allowed))

    # Refused by the API: the date is before the bill's last change; the message sits by the date, which is marked.
    date = console.get_by_label("วันที่ (เว้นว่างคือวันนี้)")
    await console.get_by_label(target["label"], exact=True).check()
    await date.fill("2026-01-15")
    await console.get_by_role("button", name="บันทึกขั้นตอนใหม่").click()
    await expect(console.locator("#stage-on-error")).to_contain_text("2026-02-01")
    await expect(date).to_have_attribute("aria-invalid", "true")
    await expect(date).to_be_focused()
    await expect(console.locator("#bill-stage")).to_have_attribute("data-stage", "house_first_reading")
    # The bill panel, its choices and an error shown, passes axe's WCAG 2.2 AA rules (as /console does signed in).
    assert describe(await axe_violations(console)) == ""

    await date.fill("2026-03-10")
    await console.get_by_label("วาระปัจจุบัน: ร่าง พ.ร.บ. การศึกษา").check()
    await console.get_by_label("หมายเหตุ (ถ้ามี)").fill("มติที่ประชุมรับหลักการ")
    await console.get_by_role("button", name="บันทึกขั้นตอนใหม่").click()
    await expect(console.locator("#notice")).to_have_text(f"ย้ายร่างไปขั้นตอน: {target['label']}")
    await expect(console.locator("#bill-stage")).to_have_attribute("data-stage", target["stage"])
    await expect(console.locator("#stage-on-error")).to_have_text("")

    async with httpx.AsyncClient(base_url=running.url) as http:
        after = (await http.get("/api/bills/bill-edu")).json()
    assert after["bill"]["stage"] == target["stage"]
    last = after["stages"][-1]
    assert last["on"] == "2026-03-10" and last["sitting_id"] == "s-edu" and last["agenda_item_id"] is not None
    assert last["note"] == "มติที่ประชุมรับหลักการ"
    public = await context.new_page()
    await public.goto(f"{running.url}/bills/bill-edu")
    await expect(public.locator("#stages li").last).to_have_attribute("data-stage", target["stage"])
    await expect(public.locator("#stages li").last).to_contain_text(target["label"])


async def test_a_moderator_cannot_move_a_bills_stage_and_the_console_says_so(running: Running, context: BrowserContext):
    """A moderator sees the bill and its stage but no stage form, and a note saying the operator role is needed; the
    API answers 403 to a stage change from their session, and the form (forced into view) says why. The bill stays
    where it was."""
    await furnish_bill(running)
    page = await context.new_page()
    await sign_in(page, running.url, "malee")
    await expect(page.locator("#bill-no-right")).to_be_visible()
    await page.locator("#bill-list").get_by_role("button", name=BILL_TITLE).click()
    await expect(page.locator("#bill-stage")).to_have_attribute("data-stage", "house_first_reading")
    await expect(page.locator("#stage-form")).to_be_hidden()
    status = await page.evaluate(
        """async () => {
            const me = await (await fetch('/api/staff/me')).json();
            const r = await fetch('/api/bills/bill-edu/stages', {method: 'POST', headers: {'Content-Type':
                'application/json', 'X-CSRF-Token': me.csrf}, body: JSON.stringify({stage: 'house_committee'})});
            return r.status;
        }"""
    )
    assert status == 403
    await page.evaluate("document.getElementById('stage-form').hidden = false")
    await page.locator("#stage-choices input[type=radio]").first.check()
    await page.get_by_role("button", name="บันทึกขั้นตอนใหม่").click()
    await expect(page.locator("#stage-error")).to_contain_text("ผู้ควบคุมการประชุม")
    async with httpx.AsyncClient(base_url=running.url) as http:
        assert (await http.get("/api/bills/bill-edu")).json()["bill"]["stage"] == "house_first_reading"


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


async def test_an_error_on_a_link_whose_box_was_disabled_meanwhile_focuses_the_nearest_enabled_control(
    running: Running, context: BrowserContext
):
    """The operator links the stage change to the current agenda item; while the request is on its way the agenda
    moves on and the box is disabled. The API's refusal naming ``agenda_item_id`` then focuses the nearest enabled
    box of the links (the sitting), marked invalid and described by the error; with every box disabled, the links'
    group itself, which the error describes."""
    await furnish_bill(running)
    page = await context.new_page()
    await sign_in(page, running.url)
    await page.locator("#sitting-list").get_by_role("button", name=SITTING).click()
    await expect(page.locator("#control-title")).to_have_text(SITTING)
    await page.locator("#bill-list").get_by_role("button", name=BILL_TITLE).click()
    await expect(page.locator("#bill-title")).to_have_text(BILL_TITLE)
    await page.locator("#stage-choices input[type=radio]").first.check()
    await page.get_by_label("วาระปัจจุบัน: ร่าง พ.ร.บ. การศึกษา").check()

    disable = ["stage-link-agenda"]

    async def refused(route: Any) -> None:
        # The console redraws the links meanwhile (the agenda moved on); the API then refuses the item.
        await page.evaluate("ids => ids.forEach(id => { document.getElementById(id).disabled = true; })", disable)
        field = "agenda_item_id" if len(disable) == 1 else "vote_id"
        body = {"ok": False, "status": 409, "error": f"{field}: no longer current", "field": field}
        await route.fulfill(status=409, json=body)

    await page.route("**/api/bills/bill-edu/stages", refused)
    await page.get_by_role("button", name="บันทึกขั้นตอนใหม่").click()
    await expect(page.locator("#stage-link-error")).to_contain_text("no longer current")
    sitting = page.locator("#stage-link-sitting")
    await expect(sitting).to_be_focused()
    await expect(sitting).to_have_attribute("aria-invalid", "true")
    await expect(sitting).to_have_attribute("aria-describedby", re.compile(r"\bstage-link-error\b"))

    disable[:] = ["stage-link-sitting", "stage-link-agenda", "stage-link-vote"]
    await page.get_by_role("button", name="บันทึกขั้นตอนใหม่").click()
    await expect(page.locator("#stage-link-error")).to_contain_text("vote_id")
    focused = await page.evaluate(
        "() => [document.activeElement.tagName, document.activeElement.getAttribute('aria-describedby')]"
    )
    assert focused == ["FIELDSET", "stage-link-error"]
