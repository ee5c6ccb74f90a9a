"""The follow button in headless Debian chromium: it registers the service worker and posts a push subscription.

The browser's own push service (Google's FCM for Chromium) is outside this network, so the page's
``PushManager.prototype.subscribe`` is replaced (Playwright ``add_init_script``) by one that returns a subscription
whose endpoint is a push service on loopback, with keys this test holds: everything else — the service worker's
registration at ``/sw.js``, fetching the VAPID key, the POST, the server encrypting and sending the vote's alert —
is real, and the loopback service decrypts what arrives.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from alerts_receiver import receiver
from chromium import needs_chromium
from live_server import serve, test_settings
from playwright.async_api import Browser, expect
from test_alerts_wiring import Browser as PushKeys
from test_alerts_wiring import until

pytestmark = [pytest.mark.browser, needs_chromium]

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


async def test_follow_button_registers_the_worker_and_subscribes(tmp_path: Path, browser: Browser):
    """Pressing "ติดตาม" registers /sw.js for the whole site, subscribes with the server's VAPID key, posts the
    subscription, says so in its status line, and a vote on the bill then reaches that subscription."""
    keys = PushKeys()
    settings = test_settings(tmp_path, webhook_allow_private=True)
    async with receiver() as push, serve(settings) as app:
        async with httpx.AsyncClient(base_url=app.url, headers=app.auth) as http:
            await http.post("/api/sittings", json={"id": "s1", "title": "ประชุม", "chamber": "senate"})
            await http.post("/api/sittings/s1/agenda", json={"title": "ร่าง พ.ร.บ. ภาษี", "bill_id": "b42"})
            vapid = (await http.get("/api/push/vapid")).json()["key"]
        context = await browser.new_context()
        await context.add_init_script(FAKE_SUBSCRIBE % json.dumps(keys.subscription(f"{push.url}/push/1")))
        page = await context.new_page()
        await page.goto(f"{app.url}/bills/b42")
        button = page.get_by_role("button", name="ติดตาม · Follow")
        await button.click()
        status = page.locator(".follow-status")
        await expect(status).to_contain_text("ติดตามแล้ว")
        await expect(page.get_by_role("button", name="เลิกติดตาม · Unfollow")).to_have_attribute("aria-pressed", "true")
        scope = await page.evaluate("navigator.serviceWorker.getRegistration().then(r => r && r.scope)")
        assert scope == f"{app.url}/"
        sent_key = await page.evaluate("window.__subscribeKey")
        assert sent_key.rstrip("=").replace("+", "-").replace("/", "_") == vapid
        await page.get_by_text("อีเมล · ฟีด").click()
        feed = page.get_by_role("link", name="ฟีด Atom")
        assert await feed.get_attribute("href") == "/feeds/bills/b42.atom"
        await context.close()

        async with httpx.AsyncClient(base_url=app.url, headers=app.auth) as http:
            vote = {"motion": "รับหลักการ", "yes": 150, "no": 20, "abstain": 5, "absent": 3, "result": "passed"}
            assert (await http.post("/api/sittings/s1/votes", json={**vote, "bill_id": "b42"})).status_code == 201
        await until(lambda: len(push.received) == 1, "the pushed vote")
        assert "150" in keys.decrypt(push.received[0].body)["body"]
