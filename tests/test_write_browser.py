"""/write and /write/status/{code} in headless Debian chromium, under the app's own CSP: a message with an
attachment goes in, its tracking code leads to the status page, and markup in it stays text; the status page's
"notify me" subscribes the browser to Web Push notices of the message's status."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from alerts_receiver import receiver
from chromium import needs_chromium
from live_server import TOKEN, Running, serve, test_settings
from PIL import Image
from playwright.async_api import Browser, Page, expect
from test_alerts_wiring import Browser as PushKeys
from test_alerts_wiring import until
from test_security_headers import RECORD_VIOLATIONS

from desk.sealing import new_setting_entry

pytestmark = [pytest.mark.browser, needs_chromium]

XSS = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(test_settings(tmp_path, desk_contact_keys=new_setting_entry())) as r:
        yield r


@pytest.fixture
async def strict_page(browser: Browser) -> AsyncIterator[Page]:
    """A page under the app's CSP (not bypassed), recording any violation; fails on uncaught errors."""
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    await context.add_init_script(RECORD_VIOLATIONS)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
        assert await page.evaluate("window.cspViolations") == []
    finally:
        await context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


def png_file(tmp_path: Path) -> Path:
    out = io.BytesIO()
    Image.new("RGB", (20, 10), (10, 120, 40)).save(out, "PNG")
    path = tmp_path / "หลุมบนถนน.png"
    path.write_bytes(out.getvalue())
    return path


async def test_the_form_sends_a_message_with_an_attachment_and_the_code_leads_to_its_status(
    running: Running, strict_page: Page, tmp_path: Path
):
    """Chromium fills the form by its labels, attaches a PNG and sends; the tracking code appears once and its
    link opens the status page, where the subject (with markup in it) shows as text and nothing ran."""
    page = strict_page
    await page.goto(f"{running.url}/write")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling on a phone
    await page.get_by_label("ร้องเรียน").check()
    await page.get_by_label("หัวข้อ").fill(f"ถนนชำรุด {XSS}")
    await page.get_by_label("รายละเอียด").fill("หลุมใหญ่หน้าโรงเรียน\nอันตรายมาก")
    await page.get_by_label("อีเมล").fill("somchai@example.com")
    await page.get_by_label("ไฟล์แนบ (ถ้ามี)").set_input_files(png_file(tmp_path))
    await page.get_by_label("ข้าพเจ้าได้อ่านและยอมรับ").check()
    await page.get_by_role("button", name="ส่งข้อความ").click()

    await expect(page.locator("#write-done")).to_be_visible()
    await expect(page.locator("#done-title")).to_be_focused()
    code = (await page.locator("#tracking-code").text_content()) or ""
    assert len(code) == 19
    await page.get_by_role("link", name="ดูสถานะข้อความ").click()
    await page.wait_for_url(f"**/write/status/{code}")
    await expect(page.locator("#m-subject")).to_have_text(f"ถนนชำรุด {XSS}")
    await expect(page.locator("#m-status")).to_have_text("ได้รับแล้ว")
    await expect(page.locator("#m-history li")).to_have_count(1)
    await expect(page.locator("#m-subject img, #m-subject script")).to_have_count(0)
    assert await page.evaluate("window.pwned") is None
    await expect(page.locator("#json-twin")).to_have_attribute("href", f"/api/messages/{code}")

    async with httpx.AsyncClient(base_url=running.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        [message] = (await client.get("/api/staff/messages")).json()["messages"]
        assert len(message["attachments"]) == 1 and message["attachments"][0]["content_type"] == "image/png"
        base = f"/api/staff/messages/{message['id']}/status"
        await client.post(base, json={"status": "in_review"})
        await client.post(base, json={"status": "answered", "answer": f"ซ่อมแล้ว {XSS}"})
    await page.reload()
    await expect(page.locator("#m-answer")).to_have_text(f"ซ่อมแล้ว {XSS}")
    await expect(page.locator("#m-history li")).to_have_count(3)
    await expect(page.locator("#m-answer img")).to_have_count(0)
    assert await page.evaluate("window.pwned") is None


async def test_refused_fields_are_tied_to_their_inputs(running: Running, strict_page: Page):
    """Sending the empty form marks subject, text, email and consent invalid, each described by its own message,
    and moves focus to the first; nothing is sent."""
    page = strict_page
    await page.goto(f"{running.url}/write")
    await page.get_by_role("button", name="ส่งข้อความ").click()
    await expect(page.locator("#form-error")).to_be_visible()
    for name in ("subject", "text", "email", "consent"):
        field = page.locator(f"#{name}")
        await expect(field).to_have_attribute("aria-invalid", "true")
        described = (await field.get_attribute("aria-describedby")) or ""
        assert f"{name}-error" in described.split()
        await expect(page.locator(f"#{name}-error")).to_be_visible()
    await expect(page.locator("#subject")).to_be_focused()


async def test_an_unknown_code_says_so(running: Running, strict_page: Page):
    """A status page for a code that names nothing says it was not found."""
    await strict_page.goto(f"{running.url}/write/status/ABCD-EFGH-JKLM-NPQR")
    await expect(strict_page.locator("#load-error")).to_contain_text("ไม่พบข้อความ")


# Chromium's own push service (FCM) is outside this network, so ``PushManager.prototype.subscribe`` is replaced (as in
# tests/test_follow_browser.py) by one that returns a subscription to a push service on loopback, with keys this test
# holds. Everything else is real: the service worker's registration at /sw.js, the VAPID key fetched, the POST, the
# status change, the server encrypting and sending the notice, and the loopback service decrypting it.
FAKE_SUBSCRIBE = """
(() => {
  const sub = %s;
  window.__subscribeKey = null;
  PushManager.prototype.getSubscription = async function () { return null; };
  PushManager.prototype.subscribe = async function (options) {
    window.__subscribeKey = btoa(String.fromCharCode(...new Uint8Array(options.applicationServerKey)));
    return { endpoint: sub.endpoint, toJSON: () => sub };
  };
})();
"""


async def test_notify_me_on_the_status_page_subscribes_and_a_status_change_is_pushed(tmp_path: Path, browser: Browser):
    """On the status page "แจ้งเตือนฉัน" registers /sw.js, subscribes with the server's VAPID key and posts the
    subscription for this tracking code, says so in its live status line, and the next status change reaches the
    subscription (decrypted: the code, the new status and the page's link), under the app's CSP."""
    keys = PushKeys()
    settings = test_settings(tmp_path, desk_contact_keys=new_setting_entry(), webhook_allow_private=True)
    async with receiver() as push, serve(settings) as app:
        async with httpx.AsyncClient(base_url=app.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            r = await client.post(
                "/api/messages",
                json={"kind": "suggestion", "subject": "เพิ่มคำบรรยาย", "text": "ขอคำบรรยายทุกการประชุม", "consent": True},
            )
            code = r.json()["code"]
            vapid = (await client.get("/api/push/vapid")).json()["key"]
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        await context.add_init_script(RECORD_VIOLATIONS)
        await context.add_init_script(FAKE_SUBSCRIBE % json.dumps(keys.subscription(f"{push.url}/push/me")))
        try:
            page = await context.new_page()
            await page.goto(f"{app.url}/write/status/{code}")
            await expect(page.locator("#m-status")).to_have_text("ได้รับแล้ว")
            await page.get_by_role("button", name="แจ้งเตือนฉัน · Notify me").click()
            await expect(page.locator("#notify-status")).to_contain_text("จะแจ้งเตือนในเบราว์เซอร์นี้")
            scope = await page.evaluate("navigator.serviceWorker.getRegistration().then(r => r && r.scope)")
            assert scope == f"{app.url}/"
            sent_key = await page.evaluate("window.__subscribeKey")
            assert sent_key.rstrip("=").replace("+", "-").replace("/", "_") == vapid
            assert await page.evaluate("window.cspViolations") == []
        finally:
            await context.close()
        assert app.app.state.messages_api.messages.push_count(code) == 1

        async with httpx.AsyncClient(base_url=app.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            [message] = (await client.get("/api/staff/messages")).json()["messages"]
            r = await client.post(f"/api/staff/messages/{message['id']}/status", json={"status": "in_review"})
            assert r.status_code == 200
        await until(lambda: len(push.received) == 1, "the pushed notice")
        notice = keys.decrypt(push.received[0].body)
        # The code opens the message (export, erasure): it rides only in the link, never on a lock screen.
        assert notice["url"] == f"/write/status/{code}" and "กำลังพิจารณา" in notice["body"]
        assert code not in notice["body"] and code not in notice["title"]
