"""The moderators' panel of the staff console (static/console-messages.js) in headless Debian chromium, against the
real server and real accounts: a moderator finds a message sent through ``POST /api/messages``, opens it, shows
(and hides) the sender's contact, forwards it to a committee, answers it, and the sender's status page shows the
answer; a suggestion whose sender opted in is published anonymised; spam is marked; the senders' HTML comes back
inert; an operator never sees the panel; and axe finds nothing with the panel open on a phone."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import console_helpers
import httpx
import pytest
from chromium import needs_chromium
from console_helpers import staff_accounts, tablet_context
from live_server import Running, serve, test_settings
from PIL import Image
from playwright.async_api import Browser, BrowserContext, Page, expect
from test_a11y_browser import axe_violations, describe

from desk.accounts_sqlite import AccountStore

pytestmark = [pytest.mark.browser, needs_chromium]

EMAIL = "somsri.sender@example.org"
SUBJECT = "ทางเท้าหน้าสำนักงานเขตชำรุด"
TEXT = "ทางเท้าชำรุดมาสามเดือนแล้ว\nผู้สูงอายุเดินลำบาก ขอให้ส่งเรื่องถึงคณะกรรมาธิการ"
COMMITTEE = "คณะกรรมาธิการการคมนาคม"
ANSWER = "คณะกรรมาธิการได้ประสานกรุงเทพมหานครให้ซ่อมภายในเดือนนี้แล้ว"
XSS_SUBJECT = '<img src=x onerror="window.__xss = 1">หัวข้อ'
XSS_TEXT = '<script>window.__xss = 2</script><b id="xss-b">ตัวหนา</b><a href="javascript:window.__xss=3">ลิงก์</a>'


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[AccountStore]:
    store = staff_accounts(
        tmp_path / "staff.db",
        ("malee", ["moderator"], "มาลี ผู้ดูแลข้อความ"),
        ("wichai", ["moderator"], None),
        ("somchai", ["operator"], "สมชาย ผู้ควบคุม"),
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


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


async def send(running: Running, files: list[tuple[str, tuple[str, bytes, str]]] | None = None, **fields: Any) -> str:
    """A message sent as the public sends it (no credentials); its tracking code."""
    form = {"consent": "true", **{k: str(v) for k, v in fields.items()}}
    async with httpx.AsyncClient(base_url=running.url) as client:
        if files:
            answer = await client.post("/api/messages", data=form, files=files)
        else:
            answer = await client.post("/api/messages", json={**fields, "consent": True})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["code"])


async def sign_in(page: Page, url: str, username: str = "malee") -> None:
    await console_helpers.sign_in(page, url, username)


async def open_message(page: Page, subject: str) -> None:
    await page.locator("#msg-list").get_by_role("button", name=subject).click()
    await expect(page.locator("#msg-subject")).to_have_text(subject)
    await expect(page.locator("#msg-subject")).to_be_focused()


async def move(page: Page, label: str, done: str) -> None:
    form = page.locator("#msg-status-form")
    await form.get_by_label(label, exact=True).check()
    await form.get_by_role("button", name="บันทึกสถานะ").click()
    await expect(page.locator("#notice")).to_have_text(done)


async def test_a_moderator_forwards_and_answers_a_message_and_the_sender_sees_the_answer(
    running: Running, context: BrowserContext
):
    """The message sent by the public is listed; opened, it shows its text and its attachment as a download link to
    the staff API; the contact appears only on "show contact", leaves the page when hidden and after an action;
    forwarding without a committee is refused at the committee field; then forwarded and answered, and the sender's
    status API and page say answered, with the committee and the answer. Closing or signing out leaves nothing of
    the sender's in the page."""
    code = await send(
        running,
        files=[("attachments", ("photo.png", png(), "image/png"))],
        kind="complaint",
        subject=SUBJECT,
        text=TEXT,
        email=EMAIL,
    )
    page = await context.new_page()
    await sign_in(page, running.url)
    await expect(page.locator("#messages-card")).to_be_visible()
    await expect(page.locator(".console-nav a[href='#messages-card']")).to_be_visible()
    row = page.locator("#msg-list li").filter(has_text=SUBJECT)
    await expect(row).to_have_count(1)
    await expect(row.locator(".badge")).to_have_text("ได้รับแล้ว")

    await open_message(page, SUBJECT)
    # The sender's line breaks are kept as text.
    assert await page.locator("#msg-text").evaluate("n => n.textContent") == TEXT
    link = page.locator("#msg-files a")
    await expect(link).to_have_count(1)
    href = await link.get_attribute("href")
    message_id = await page.locator("#msg").get_attribute("data-message-id")
    assert href and message_id and href.startswith(f"/api/staff/messages/{message_id}/attachments/")
    assert await link.get_attribute("download") is not None
    assert await page.locator("#msg img, #msg iframe, #msg object, #msg embed").count() == 0
    download = await page.evaluate("u => fetch(u).then(r => [r.status, r.headers.get('content-disposition')])", href)
    assert download[0] == 200 and download[1].startswith("attachment")

    # No contact in the page until asked for; hidden again, it is gone from the DOM.
    assert EMAIL not in await page.content()
    toggle = page.get_by_role("button", name="แสดงข้อมูลติดต่อ")
    await toggle.click()
    await expect(page.locator("#msg-contact dd")).to_have_text([EMAIL])
    await expect(page.locator("#msg-contact-toggle")).to_have_attribute("aria-expanded", "true")
    await page.get_by_role("button", name="ซ่อนข้อมูลติดต่อ").click()
    await expect(page.locator("#msg-contact dd")).to_have_count(0)
    assert EMAIL not in await page.content()
    await page.get_by_role("button", name="แสดงข้อมูลติดต่อ").click()
    await expect(page.locator("#msg-contact dd")).to_have_text([EMAIL])

    await page.get_by_role("button", name="มอบหมายให้ฉัน").click()
    await expect(page.locator("#notice")).to_have_text("มอบหมายให้ malee แล้ว")
    await expect(page.locator("#msg-assignee")).to_have_text("ผู้รับผิดชอบ: malee")
    # Every action redraws the message without the contact.
    assert EMAIL not in await page.content()
    await expect(row).to_contain_text("ผู้รับผิดชอบ: malee")

    await move(page, "กำลังพิจารณา", "สถานะ: กำลังพิจารณา")
    await expect(page.locator("#msg-state")).to_have_text("กำลังพิจารณา")

    form = page.locator("#msg-status-form")
    await form.get_by_label("ส่งต่อคณะกรรมาธิการ", exact=True).check()
    await form.get_by_role("button", name="บันทึกสถานะ").click()
    committee = form.get_by_label("ชื่อคณะกรรมาธิการ")
    await expect(page.locator("#msg-committee-error")).to_have_text("กรุณาใส่ชื่อคณะกรรมาธิการ")
    await expect(committee).to_be_focused()
    await expect(committee).to_have_attribute("aria-invalid", "true")
    await expect(committee).to_have_attribute("aria-describedby", "msg-committee-error")
    await committee.fill(COMMITTEE)
    await form.get_by_role("button", name="บันทึกสถานะ").click()
    await expect(page.locator("#notice")).to_have_text("สถานะ: ส่งต่อคณะกรรมาธิการแล้ว")
    await expect(page.locator("#msg-committee")).to_have_text(f"คณะกรรมาธิการ: {COMMITTEE}")
    await expect(row.locator(".badge")).to_have_text("ส่งต่อคณะกรรมาธิการแล้ว")

    form = page.locator("#msg-status-form")
    await form.get_by_label("ตอบแล้ว", exact=True).check()
    await form.get_by_label("คำตอบถึงผู้ส่ง").fill(ANSWER)
    await form.get_by_role("button", name="บันทึกสถานะ").click()
    await expect(page.locator("#notice")).to_have_text("สถานะ: ตอบแล้ว")
    await expect(page.locator("#msg-answer")).to_have_text(ANSWER)
    # A complaint is never offered for publishing.
    await expect(page.locator("#msg-publish")).to_have_count(0)

    async with httpx.AsyncClient(base_url=running.url) as client:
        public = (await client.get(f"/api/messages/{code}")).json()["message"]
    assert public["status"] == "answered"
    assert public["committee"] == COMMITTEE and public["answer"] == ANSWER
    assert [h["status"] for h in public["history"]] == ["received", "in_review", "forwarded", "answered"]

    sender = await context.new_page()
    await sender.goto(f"{running.url}/write/status/{code}")
    await expect(sender.locator("#m-status")).to_have_attribute("data-status", "answered")
    await expect(sender.locator("#m-status")).to_have_text("ตอบแล้ว")
    await expect(sender.locator("#m-answer")).to_have_text(ANSWER)

    # Closing the message takes the detail (and any contact) out of the page; focus goes back to its row.
    await page.get_by_role("button", name="แสดงข้อมูลติดต่อ").click()
    await expect(page.locator("#msg-contact dd")).to_have_text([EMAIL])
    await page.get_by_role("button", name="ปิดข้อความ").click()
    await expect(page.locator("#msg")).to_be_hidden()
    assert EMAIL not in await page.content()
    await expect(row.get_by_role("button", name=SUBJECT)).to_be_focused()

    # Signing out leaves nothing of the senders' in the page.
    await open_message(page, SUBJECT)
    await page.get_by_role("button", name="แสดงข้อมูลติดต่อ").click()
    await expect(page.locator("#msg-contact dd")).to_have_text([EMAIL])
    await page.get_by_role("button", name="ออกจากระบบ").click()
    await expect(page.locator("#login-card")).to_be_visible()
    content = await page.content()
    assert EMAIL not in content and SUBJECT not in content


async def test_suggestions_are_published_only_with_consent_and_spam_is_marked(
    running: Running, context: BrowserContext
):
    """A suggestion whose sender opted in is offered for publishing once answered and appears on
    /api/suggestions without its sender; one without consent is never offered; a spam message is marked from the
    console; the status filter lists by status and the kind filter by kind; a refused assignment shows at its field."""
    await send(running, kind="suggestion", subject="ขอให้เพิ่มล่ามภาษามือ", text="ในการถ่ายทอดสด", publish_ok=True)
    await send(running, kind="suggestion", subject="ขอที่จอดจักรยาน", text="หน้ารัฐสภา")
    await send(running, kind="question", subject="ซื้อเหรียญดิจิทัลกำไรสิบเท่า", text="คลิกเลย", phone="0812345678")

    page = await context.new_page()
    await sign_in(page, running.url, "wichai")
    await expect(page.locator("#msg-list li")).to_have_count(3)
    # Newest first.
    await expect(page.locator("#msg-list .console-pick").first).to_have_text("ซื้อเหรียญดิจิทัลกำไรสิบเท่า")

    await open_message(page, "ขอที่จอดจักรยาน")
    await expect(page.locator("#msg")).to_contain_text("ผู้ส่งไม่ได้อนุญาตให้เผยแพร่")
    await expect(page.locator("#msg-publish")).to_have_count(0)
    await expect(page.locator("#msg")).to_contain_text("ผู้ส่งไม่ได้ให้ข้อมูลติดต่อ")

    await open_message(page, "ขอให้เพิ่มล่ามภาษามือ")
    await expect(page.locator("#msg-publish")).to_have_count(0)
    await expect(page.locator("#msg")).to_contain_text("เผยแพร่ได้เมื่อตอบข้อเสนอแนะนี้แล้ว")
    await move(page, "กำลังพิจารณา", "สถานะ: กำลังพิจารณา")
    form = page.locator("#msg-status-form")
    await form.get_by_label("ตอบแล้ว", exact=True).check()
    await form.get_by_label("คำตอบถึงผู้ส่ง").fill("จะจัดล่ามภาษามือตั้งแต่สมัยประชุมหน้า")
    await form.get_by_role("button", name="บันทึกสถานะ").click()
    await expect(page.locator("#notice")).to_have_text("สถานะ: ตอบแล้ว")
    await page.get_by_role("button", name="เผยแพร่แบบไม่ระบุตัวตน").click()
    await expect(page.locator("#notice")).to_have_text("เผยแพร่แบบไม่ระบุตัวตนแล้ว")
    await expect(page.get_by_role("button", name="ถอนการเผยแพร่")).to_be_visible()
    async with httpx.AsyncClient(base_url=running.url) as client:
        published = (await client.get("/api/suggestions")).json()["suggestions"]
    assert [s["subject"] for s in published] == ["ขอให้เพิ่มล่ามภาษามือ"]
    assert set(published[0]) == {"id", "subject", "text", "committee", "answer", "published_at"}

    # An assignment the API refuses (a username too long for it) shows at the field, focused.
    assign = page.get_by_label("มอบหมายให้บัญชี (ชื่อผู้ใช้)")
    await assign.evaluate("n => { n.maxLength = 100; n.value = 'x'.repeat(40); }")
    await page.locator("#msg-assign-form").get_by_role("button", name="มอบหมาย", exact=True).click()
    await expect(page.locator("#msg-assign-error")).to_contain_text("ไม่สำเร็จ")
    await expect(assign).to_be_focused()
    await expect(assign).to_have_attribute("aria-invalid", "true")

    await open_message(page, "ซื้อเหรียญดิจิทัลกำไรสิบเท่า")
    await page.get_by_role("button", name="ทำเครื่องหมายว่าเป็นสแปม").click()
    await expect(page.locator("#notice")).to_have_text("ทำเครื่องหมายสแปมแล้ว")
    await expect(page.locator("#msg-state")).to_have_text("สแปม")

    card = page.locator("#messages-card")
    await card.get_by_label("สถานะ", exact=True).select_option("spam")
    await card.get_by_role("button", name="แสดงข้อความ").click()
    await expect(page.locator("#msg-list .console-pick")).to_have_text(["ซื้อเหรียญดิจิทัลกำไรสิบเท่า"])
    await card.get_by_label("สถานะ", exact=True).select_option("")
    await card.get_by_label("ประเภท", exact=True).select_option("suggestion")
    # The kind filter is the API's (?kind=), not a narrowing of the pages already fetched.
    async with page.expect_request(lambda r: "/api/staff/messages?" in r.url) as asked:
        await card.get_by_role("button", name="แสดงข้อความ").click()
    assert "kind=suggestion" in (await asked.value).url
    await expect(page.locator("#msg-list .console-pick")).to_have_text(["ขอที่จอดจักรยาน", "ขอให้เพิ่มล่ามภาษามือ"])
    await card.get_by_label("ประเภท", exact=True).select_option("question")
    await card.get_by_label("สถานะ", exact=True).select_option("received")
    await card.get_by_role("button", name="แสดงข้อความ").click()
    await expect(page.locator("#msg-list li")).to_have_count(0)  # the one question is spam now
    await expect(page.locator("#msg-empty")).to_be_visible()
    await expect(page.locator("#msg-empty")).to_have_text("ไม่มีข้อความ")


async def test_the_senders_html_comes_back_inert(running: Running, context: BrowserContext):
    """HTML and script in a subject and text are shown as the characters typed, in the list and the message:
    no element is created from them and no script runs."""
    await send(running, kind="complaint", subject=XSS_SUBJECT, text=XSS_TEXT, email="x@example.org")
    page = await context.new_page()
    await sign_in(page, running.url)
    await expect(page.locator("#msg-list .console-pick")).to_have_text([XSS_SUBJECT])
    await page.locator("#msg-list .console-pick").click()
    await expect(page.locator("#msg-subject")).to_have_text(XSS_SUBJECT)
    assert await page.locator("#msg-text").evaluate("n => n.textContent") == XSS_TEXT
    card = page.locator("#messages-card")
    assert await card.locator("img, script, b, a[href^='javascript']").count() == 0
    assert await page.locator("#xss-b").count() == 0
    assert await page.evaluate("window.__xss") is None


async def test_an_operator_without_message_read_sees_no_panel(running: Running, context: BrowserContext):
    """An operator's console has no messages panel nor its link, nothing of the messages in the page, and the
    API refuses the list (403)."""
    await send(running, kind="complaint", subject=SUBJECT, text=TEXT, email=EMAIL)
    page = await context.new_page()
    await sign_in(page, running.url, "somchai")
    await expect(page.locator("#sittings-card")).to_be_visible()
    await expect(page.locator("#messages-card")).to_be_hidden()
    await expect(page.locator(".console-nav a[href='#messages-card']")).to_be_hidden()
    await expect(page.locator("#msg-list li")).to_have_count(0)
    assert SUBJECT not in await page.content()
    assert await page.evaluate("fetch('/api/staff/messages').then(r => r.status)") == 403


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_the_open_panel_passes_axe_on_a_phone(running: Running, browser: Browser, scheme: str):
    """At 390 px, with a message open, its contact shown, an error at a field and the answer box showing, axe's
    WCAG 2.2 AA rules find nothing."""
    await send(
        running,
        files=[("attachments", ("photo.png", png(), "image/png"))],
        kind="suggestion",
        subject=SUBJECT,
        text=TEXT,
        email=EMAIL,
        publish_ok="true",
    )
    ctx = await browser.new_context(viewport={"width": 390, "height": 844}, bypass_csp=True, color_scheme=scheme)
    try:
        page = await ctx.new_page()
        await sign_in(page, running.url)
        await open_message(page, SUBJECT)
        await page.get_by_role("button", name="แสดงข้อมูลติดต่อ").click()
        await expect(page.locator("#msg-contact dd")).to_have_text([EMAIL])
        await move(page, "กำลังพิจารณา", "สถานะ: กำลังพิจารณา")
        form = page.locator("#msg-status-form")
        await form.get_by_label("ตอบแล้ว", exact=True).check()
        await form.get_by_role("button", name="บันทึกสถานะ").click()
        await expect(page.locator("#msg-answer-error")).to_have_text("กรุณาใส่คำตอบ")
        await page.get_by_role("button", name="แสดงข้อมูลติดต่อ").click()
        await expect(page.locator("#msg-contact dd")).to_have_text([EMAIL])
        await page.locator("#messages-card").scroll_into_view_if_needed()
        found = describe(await axe_violations(page))
        assert found == "", f"axe found WCAG 2.2 AA violations with the messages panel open ({scheme}):\n{found}"
        # Nothing is wider than the phone's screen.
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        await ctx.close()
