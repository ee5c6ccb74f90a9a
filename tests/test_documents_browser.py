"""The documents pages in headless chromium: search from /documents, open a section, read it and its comparison,
by keyboard and at phone width."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chromium import needs_chromium
from live_server import Running, serve, test_settings
from playwright.async_api import Browser, expect

from archive.documents import FULL_2560, WEVIS, default_data_dir, load

pytestmark = [pytest.mark.browser, needs_chromium]

SHARED = default_data_dir()
needs_data = pytest.mark.skipif(not (SHARED / FULL_2560).is_file(), reason="no ../shared/data/text here")


def small_data(root: Path) -> Path:
    """The 2017 Constitution in full and the 1949 one's sections (WeVis): enough to search and compare, quick to
    load."""
    (root / FULL_2560).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SHARED / FULL_2560, root / FULL_2560)
    rows = [line for line in (SHARED / WEVIS).read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [line for line in rows if json.loads(line).get("constitution_id") == "con2492"]
    (root / WEVIS).write_text("\n".join(kept) + "\n", encoding="utf-8")
    return root


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(test_settings(tmp_path)) as running:
        await load(running.app.state.store, small_data(tmp_path / "data"))
        yield running


@needs_data
async def test_search_then_open_a_section_and_its_comparison(site: Running, browser: Browser):
    """Typing a query and Enter lists sections with the hit marked; the first result opens the section with its line
    breaks and the Senate's term in the 1949 Constitution beside it."""
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{site.url}/documents")
    await expect(page.locator("#documents li")).to_have_count(2)
    await page.get_by_label("คำค้น").fill("อายุของวุฒิสภามีกำหนด")
    await page.keyboard.press("Enter")
    first = page.locator("#results .search-result").first
    await expect(first.locator("mark").first).to_have_text("อายุของวุฒิสภามีกำหนด")
    assert "/documents?q=" in page.url  # the search's state is in the address
    await first.locator("h2 a").focus()
    await page.keyboard.press("Enter")

    await expect(page).to_have_url(f"{site.url}/documents/constitution-2560/sections/109")
    await expect(page.locator("#title")).to_have_text("มาตรา 109")
    text = page.locator("#section-text")
    await expect(text).to_contain_text("อายุของวุฒิสภามีกำหนดคราวละห้าปี")
    # The lines stay lines: rendered with textContent, broken by CSS.
    assert "\n" in await text.evaluate("el => el.textContent")
    assert await text.evaluate("el => getComputedStyle(el).whiteSpace") == "pre-line"
    await expect(page.locator("#matches .doc-match a").first).to_have_text(
        "มาตรา 83 — รัฐธรรมนูญแห่งราชอาณาจักรไทย พุทธศักราช ๒๔๙๒"
    )
    await expect(page.locator("#prev")).to_have_attribute("href", "/documents/constitution-2560/sections/108")
    await expect(page.locator("#json-twin")).to_have_attribute("href", "/api/documents/constitution-2560/sections/109")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390

    await page.locator("#doc-link").click()
    await expect(page.locator("#toc-body a")).to_have_count(279)
    await context.close()
    assert errors == []
