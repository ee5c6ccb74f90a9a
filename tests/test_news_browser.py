"""News in headless Debian chromium against the real app: an editor publishes through the API, the /news list,
the article and the home page show it, and XSS in its Markdown, title and topics stays inert under the CSP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from chromium import needs_chromium
from live_server import Running, serve, test_settings
from playwright.async_api import Browser, Page, expect

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]

XSS_TITLE = '<img src=x onerror="window.__xss=1">ข่าว<script>window.__xss=1</script>'
XSS_TOPIC = "<svg onload=window.__xss=1>"
XSS_BODY = (
    "วุฒิสภา**เห็นชอบ**ร่างพระราชบัญญัติ\n\n<script>window.__xss=1</script>\n\n<img src=x onerror=window.__xss=1>\n\n"
    "[คลิก](javascript:window.__xss=1) ![ภาพ](https://evil.example/p.png) ![ภาพ](x onerror=window.__xss=1)\n\n"
    '<a href="javascript:window.__xss=1">a</a> <iframe src="javascript:window.__xss=1"></iframe>'
)
# Records every CSP violation and every alert/XSS flag the page could raise, from before its first script runs.
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});
"""


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(test_settings(tmp_path)) as r:
        yield r


@pytest.fixture
async def watched(browser: Browser) -> AsyncIterator[tuple[Page, list[str]]]:
    """A page that records console CSP reports, dialogs and uncaught errors (all must stay empty)."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.add_init_script(WATCH)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda exc: problems.append(f"error: {exc}"))

    async def dialog(d: Any) -> None:
        problems.append(f"dialog: {d.message}")
        await d.dismiss()

    page.on("dialog", dialog)
    try:
        yield page, problems
    finally:
        await context.close()


async def publish(running: Running, title: str, body: str, topics: list[str]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth, timeout=60) as client:
        r = await client.post("/api/news", json={"title": title, "body": body, "topics": topics})
        assert r.status_code == 201, r.text
        slug = r.json()["item"]["slug"]
        r = await client.post(f"/api/news/{slug}/publish")
        assert r.status_code == 200, r.text
        return dict(r.json()["item"])


async def assert_inert(page: Page, problems: list[str]) -> None:
    assert await page.evaluate("window.__xss") is None
    assert await page.evaluate("window.__csp") == []
    assert problems == []


async def test_an_article_published_through_the_api_shows_on_news_the_article_page_and_home(
    running: Running, watched: tuple[Page, list[str]]
):
    """After an editor publishes, /news lists it, its link opens the article with the body rendered, and the
    home page's latest news shows it; no CSP violation on the way."""
    page, problems = watched
    item = await publish(running, "วุฒิสภาเห็นชอบร่างงบประมาณ", "ที่ประชุม**เห็นชอบ**\n\n- หนึ่ง\n- สอง", ["งบประมาณ"])

    await page.goto(f"{running.url}/news")
    card = page.locator(f'.news-card[data-slug="{item["slug"]}"]')
    await expect(card).to_have_count(1)
    await expect(card.locator("h2 a")).to_have_text("วุฒิสภาเห็นชอบร่างงบประมาณ")
    await expect(card.locator(".topic")).to_have_text(["งบประมาณ"])
    await card.locator("h2 a").click()
    await expect(page).to_have_url(f"{running.url}/news/{quote(item['slug'])}")
    await expect(page.locator("h1#title")).to_have_text("วุฒิสภาเห็นชอบร่างงบประมาณ")
    await expect(page.locator("#article-body strong")).to_have_text("เห็นชอบ")
    await expect(page.locator("#article-body li")).to_have_count(2)
    await expect(page.locator("#json-twin")).to_have_attribute("href", f"/api/news/{quote(item['slug'])}")

    await page.goto(f"{running.url}/news?topic=งบประมาณ")
    await expect(page.locator(".news-card")).to_have_count(1)
    await page.goto(f"{running.url}/news?topic=อื่น")
    await expect(page.locator("#news-empty")).to_be_visible()

    await page.goto(f"{running.url}/")
    latest = page.locator("#latest-news .news-card")
    await expect(latest).to_have_count(1)
    await expect(latest.locator("h3 a")).to_have_attribute("href", f"/news/{item['slug']}")
    await expect(page.locator("#live-empty")).to_be_visible()
    await expect(page.locator('a[href="/write"]').first).to_be_visible()
    await assert_inert(page, problems)


async def test_xss_in_an_article_stays_inert_with_no_csp_violation(running: Running, watched: tuple[Page, list[str]]):
    """Script, event handlers, javascript: links and foreign images in the Markdown, title and topics run nothing
    on /news, the article page or the home page, and the CSP reports no violation (nothing was even tried)."""
    page, problems = watched
    item = await publish(running, XSS_TITLE, XSS_BODY, [XSS_TOPIC])
    for path in ("/news", f"/news/{item['slug']}", "/"):
        await page.goto(f"{running.url}{path}")
        await expect(page.locator("main")).not_to_have_attribute("aria-busy", "true")
        await expect(page.get_by_text(XSS_TITLE, exact=True)).to_have_count(1)  # the title, as text
        await assert_inert(page, problems)
    await page.goto(f"{running.url}/news/{item['slug']}")
    await expect(page.locator("#article-body strong")).to_have_text("เห็นชอบ")
    assert await page.locator("#article-body script, #article-body iframe, #article-body [onerror]").count() == 0
    assert await page.locator('#article-body a[href^="javascript"]').count() == 0
    assert await page.locator("#article-body img[src]").count() == 0
    await expect(page.locator(".topic")).to_have_text([XSS_TOPIC])
    await assert_inert(page, problems)
