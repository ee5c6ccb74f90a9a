"""What the console's browser tests share: staff accounts hashed cheaply, a tablet-sized browser context that fails
the test on any uncaught error in its pages, and signing in through the console's own form."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import argon2
from playwright.async_api import Browser, BrowserContext, Page, expect

from desk import accounts as acc
from desk.accounts import Passwords
from desk.accounts_sqlite import AccountStore

PASSWORD = "correct horse battery"


def staff_accounts(path: Path, *accounts: tuple[str, list[str], str | None]) -> AccountStore:
    """An account store at ``path`` holding (username, roles, display name) accounts, all with ``PASSWORD``; Argon2
    at its cheapest, since these tests are about the console, not hashing."""
    cheap = Passwords(argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    store = AccountStore(path, passwords=cheap)
    boot = acc.bootstrap_principal()
    for username, roles, display_name in accounts:
        if display_name is None:
            store.create_account(boot, username, PASSWORD, roles)
        else:
            store.create_account(boot, username, PASSWORD, roles, display_name)
    return store


@asynccontextmanager
async def tablet_context(browser: Browser) -> AsyncIterator[BrowserContext]:
    # A tablet in the chamber; bypass_csp only for Playwright's own evaluations and axe (test_security_headers
    # covers the pages under their CSP).
    ctx = await browser.new_context(viewport={"width": 1024, "height": 768}, bypass_csp=True)
    errors: list[str] = []
    ctx.on("weberror", lambda e: errors.append(str(e.error)))
    yield ctx
    await ctx.close()
    assert errors == [], f"uncaught errors in the pages: {errors}"


async def sign_in(page: Page, url: str, username: str) -> None:
    await page.goto(f"{url}/console")
    form = page.locator("#login-form")
    await form.get_by_label("ชื่อผู้ใช้").fill(username)
    await form.get_by_label("รหัสผ่าน").fill(PASSWORD)
    await form.get_by_role("button", name="เข้าสู่ระบบ").click()
    await expect(page.locator("#desk")).to_be_visible()
