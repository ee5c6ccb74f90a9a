"""The bill pages in headless chromium: /bills filters, /bills/{id} with its stage timeline and Senate clock, and
the embeddable tracker /embed/bills?agency=… following a stage change live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from chromium import needs_chromium
from live_server import Running, serve, test_settings
from playwright.async_api import Page, expect

from archive.senate_clock import THAI_TIME

pytestmark = [pytest.mark.browser, needs_chromium]

FINANCE, AGRICULTURE = "กระทรวงการคลัง", "กระทรวงเกษตรและสหกรณ์"


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(test_settings(tmp_path)) as r:
        async with httpx.AsyncClient(base_url=r.url, headers=r.auth) as c:
            for body in [
                {
                    "id": "b-excise",
                    "title": "ร่างพระราชบัญญัติภาษีสรรพสามิต",
                    "short_name": "ภาษีสรรพสามิต",
                    "type": "money",
                    "agencies": [FINANCE],
                    "topics": ["ภาษี"],
                    "stage": "house_first_reading",
                    "on": "2024-06-01",
                },
                {"id": "b-forest", "title": "ร่างพระราชบัญญัติป่าไม้", "type": "ordinary", "agencies": [AGRICULTURE]},
            ]:
                assert (await c.post("/api/bills", json=body)).status_code == 201
            assert (await c.post("/api/sessions", json={"start": "2024-07-03", "end": "2024-10-30"})).status_code == 201
            for stage in ["house_committee", "house_second_reading", "house_third_reading"]:
                await c.post("/api/bills/b-excise/stages", json={"stage": stage, "on": "2024-06-20"})
            r2 = await c.post("/api/bills/b-excise/stages", json={"stage": "senate_first_reading", "on": "2024-07-10"})
            assert r2.status_code == 201
        yield r


async def test_the_list_filters_by_agency_stage_and_text(page: Page, running: Running):
    """/bills lists both bills; the agency field, the stage select and the text narrow it, in the address too."""
    await page.goto(f"{running.url}/bills")
    await expect(page.locator("#results .bill-row")).to_have_count(2)
    await page.get_by_label("หน่วยงาน").fill(AGRICULTURE)
    await page.get_by_label("หน่วยงาน").press("Enter")
    await expect(page.locator("#results .bill-row")).to_have_count(1)
    await expect(page.locator("#results .bill-row")).to_have_attribute("data-bill-id", "b-forest")
    assert "agency=" in page.url and "stage=" not in page.url
    await page.goto(f"{running.url}/bills")
    await page.get_by_label("ขั้นตอน").select_option("senate_first_reading")
    await page.get_by_role("button", name="กรอง").click()
    await expect(page.locator("#results .bill-row")).to_have_count(1)
    await expect(page.locator("#results .bill-stage")).to_have_text("วุฒิสภา วาระที่หนึ่ง (รับหลักการ)")
    await expect(page.locator("#json-twin")).to_have_attribute("href", "/api/bills?stage=senate_first_reading&limit=50")
    await page.goto(f"{running.url}/bills?q=ป่าไม้")
    await expect(page.locator("#results .bill-row")).to_have_count(1)
    await expect(page.locator("#q")).to_have_value("ป่าไม้")


async def test_the_bill_page_shows_the_timeline_and_the_clock(page: Page, running: Running):
    """A money bill at the Senate since 10 Jul: five steps, the last current; day 21 of 30 on 30 Jul, deemed
    approved on 9 Aug 2567 (the Buddhist year)."""
    running.app.state.bills.now = lambda: datetime(2024, 7, 30, 12, tzinfo=THAI_TIME)
    await page.goto(f"{running.url}/bills/b-excise")
    await expect(page.locator("#stages .bill-step")).to_have_count(5)
    await expect(page.locator('#stages .bill-step[aria-current="step"]')).to_have_attribute(
        "data-stage", "senate_first_reading"
    )
    await expect(page.locator("#clock")).to_have_text("วันที่ 21 จาก 30 วันในสมัยประชุม; ถือว่าให้ความเห็นชอบ วันที่ 9 สิงหาคม 2567")
    await expect(page.locator("#clock-card")).to_be_visible()
    await expect(page.locator("#bill-details")).to_contain_text(FINANCE)


async def test_the_embed_shows_an_agencys_bills_and_follows_a_stage_change(page: Page, running: Running):
    """/embed/bills?agency=… shows only that agency's bills; a stage change recorded later updates the row live."""
    await page.goto(f"{running.url}/embed/bills?agency={AGRICULTURE}")
    row = page.locator(".bill-row")
    await expect(row).to_have_count(1)
    await expect(row).to_have_attribute("data-stage", "public_hearing")
    await expect(page.locator("#tracker-title")).to_have_text(f"ร่างกฎหมายที่เกี่ยวกับ{AGRICULTURE}")
    # The tracker's WebSocket subscription to bill:b-forest is in place before the change is made.
    for _ in range(500):
        if running.app.state.hub.subscription_count:
            break
        await asyncio.sleep(0.01)
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth) as c:
        r = await c.post("/api/bills/b-forest/stages", json={"stage": "house_first_reading"})
        assert r.status_code == 201
    await expect(row).to_have_attribute("data-stage", "house_first_reading")
    await expect(row.locator(".bill-stage")).to_have_text("สภาผู้แทนราษฎร วาระที่หนึ่ง (รับหลักการ)")
