"""The public HTTP surface: security headers on every answer, CORS on reads only, Allow on 405, capped bodies."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from chromium import needs_chromium
from live_server import Running, serve, test_settings
from playwright.async_api import Browser, Frame, Page, expect
from starlette.requests import Request
from test_player_browser import write_hls

from common.http import BodyTooLarge, read_body_capped

STATIC = Path(__file__).resolve().parent.parent / "static"


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(test_settings(tmp_path)) as r:
        async with httpx.AsyncClient(base_url=r.url, headers=r.auth) as c:
            created = await c.post("/api/sittings", json={"id": "s-1", "title": "การประชุม", "chamber": "senate"})
            assert created.status_code == 201
        yield r


@pytest.fixture
async def client(running: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running.url) as c:
        yield c


@pytest.mark.parametrize(
    "path", ["/", "/watch/s-1", "/api/sittings", "/openapi.json", "/static/app.css", "/healthz", "/api/nothing"]
)
async def test_every_answer_carries_the_security_headers(client: httpx.AsyncClient, path: str):
    """Pages, API answers, static files and 404s all carry CSP (no framing), nosniff and a referrer policy."""
    r = await client.get(path)
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert r.headers["x-frame-options"] == "DENY"


async def test_only_the_embed_may_be_framed_by_other_sites(client: httpx.AsyncClient):
    """/embed/{id} answers frame-ancestors * and no X-Frame-Options; the example host page may frame other origins."""
    embed = await client.get("/embed/s-1")
    assert embed.status_code == 200
    assert "frame-ancestors *" in embed.headers["content-security-policy"]
    assert "x-frame-options" not in embed.headers
    example = await client.get("/static/embed-example.html")
    assert "frame-src 'self' http: https:" in example.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in example.headers["content-security-policy"]


class _InlineFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style>")
        self.found += [f"{name}= on <{tag}>" for name in names if name == "style" or name.startswith("on")]


@pytest.mark.fast
@pytest.mark.parametrize("page", sorted(p.name for p in STATIC.glob("*.html")))
def test_pages_have_nothing_inline_that_the_policy_would_block(page: str):
    """No static page has an inline script, style element, style attribute or on* handler."""
    finder = _InlineFinder()
    finder.feed((STATIC / page).read_text())
    assert finder.found == []


# ---- CORS ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/sittings", "/api/sittings/s-1", "/openapi.json", "/api/bills/none"])
async def test_public_reads_are_readable_from_any_origin(client: httpx.AsyncClient, path: str):
    """GETs of the public read API (errors included) carry Access-Control-Allow-Origin: * by default."""
    r = await client.get(path, headers={"Origin": "https://news.example"})
    assert r.headers["access-control-allow-origin"] == "*"


async def test_the_event_stream_is_readable_from_any_origin(client: httpx.AsyncClient):
    """The SSE stream of a channel carries the CORS grant too."""
    async with client.stream(
        "GET", "/api/channels/sitting:s-1/events", headers={"Origin": "https://news.example"}
    ) as r:
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "*"


async def test_a_read_preflight_is_granted(client: httpx.AsyncClient):
    """OPTIONS with Origin and Access-Control-Request-Method: GET answers 204 with the grant, never a 405."""
    r = await client.options(
        "/api/channels/sitting:s-1/events",
        headers={"Origin": "https://news.example", "Access-Control-Request-Method": "GET"},
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    assert "GET" in r.headers["access-control-allow-methods"]
    assert "Last-Event-ID" in r.headers["access-control-allow-headers"]


async def test_operator_calls_get_no_cors_grant(client: httpx.AsyncClient, running: Running):
    """A preflight for an operator POST is not granted, and the POST's answer carries no CORS header."""
    pre = await client.options(
        "/api/sittings",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert pre.status_code == 204 and "access-control-allow-origin" not in pre.headers
    post = await client.post(
        "/api/sittings/s-1/status",
        json={"status": "live"},
        headers={**running.auth, "Origin": "https://evil.example"},
    )
    assert post.status_code == 200 and "access-control-allow-origin" not in post.headers


async def test_configured_origins_are_the_only_ones_granted(tmp_path: Path):
    """With CORS_ORIGINS set, a listed origin is echoed (Vary: Origin) and any other gets no grant."""
    settings = dataclasses.replace(test_settings(tmp_path), cors_origins=("https://senate.example",))
    async with serve(settings) as r, httpx.AsyncClient(base_url=r.url) as c:
        ok = await c.get("/api/sittings", headers={"Origin": "https://senate.example"})
        assert ok.headers["access-control-allow-origin"] == "https://senate.example"
        assert "Origin" in ok.headers["vary"]
        other = await c.get("/api/sittings", headers={"Origin": "https://other.example"})
        assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


# ---- methods ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/sittings", "GET, HEAD, OPTIONS, POST"),
        ("PUT", "/api/bills/b-1", "GET, HEAD, OPTIONS, PATCH, POST"),
        ("POST", "/api/sittings/s-1/transcript", "GET, HEAD, OPTIONS"),
        ("GET", "/api/sittings/s-1/votes", "OPTIONS, POST"),
        ("PATCH", "/openapi.json", "GET, HEAD, OPTIONS"),
    ],
)
async def test_every_405_names_all_the_allowed_methods(client: httpx.AsyncClient, method: str, path: str, allow: str):
    """A wrong method gets 405 in the error shape with Allow listing every method the path serves."""
    r = await client.request(method, path)
    assert r.status_code == 405 and r.json()["ok"] is False
    assert r.headers["allow"] == allow


async def test_options_answers_allow_and_unknown_paths_are_json_404s(client: httpx.AsyncClient):
    """A plain OPTIONS answers 204 with Allow; an unknown path is a JSON 404 whatever the method."""
    r = await client.options("/api/sittings/s-1/speaker")
    assert r.status_code == 204 and r.headers["allow"] == "OPTIONS, POST"
    for method in ("GET", "OPTIONS", "POST"):
        missing = await client.request(method, "/api/nothing-here")
        assert missing.status_code == 404 and missing.json() == {"ok": False, "status": 404, "error": "Not Found"}


# ---- bodies ----------------------------------------------------------------------------------------------------


async def test_a_chunked_body_over_the_cap_is_a_413(client: httpx.AsyncClient, running: Running):
    """A chunked operator body past 64 KiB gets 413 in the error shape, and nothing is written."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(64):
            yield b"x" * 16384

    r = await client.post("/api/sittings/s-1/speaker", content=chunks(), headers=running.auth)
    assert r.status_code == 413 and r.json()["ok"] is False and r.json()["status"] == 413
    state = (await client.get("/api/sittings/s-1")).json()
    assert state["speaker"] is None


@pytest.mark.fast
async def test_read_body_capped_stops_at_the_chunk_that_crosses_the_cap():
    """The capped reader takes no chunk after the one that passes the limit, and refuses a large Content-Length."""
    taken = 0

    async def receive() -> dict[str, object]:
        nonlocal taken
        taken += 1
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    with pytest.raises(BodyTooLarge):
        await read_body_capped(request, 4500)
    assert taken == 5
    declared = Request({"type": "http", "method": "POST", "headers": [(b"content-length", b"99999")]}, receive)
    with pytest.raises(BodyTooLarge):
        await read_body_capped(declared, 4500)
    assert taken == 5


# ---- the pages under the policy, in chromium -----------------------------------------------------------------

# Recorded in every frame, before any page script runs: what the policy blocked.
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener(
  "securitypolicyviolation", e => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


async def _poll(page: Page | Frame, expression: str) -> None:
    # page.evaluate goes through the DevTools protocol, which the policy allows; wait_for_function would need eval.
    for _ in range(600):
        if await page.evaluate(expression):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never true: {expression}")


@pytest.mark.browser
@needs_chromium
async def test_the_pages_run_under_the_policy_without_violations(tmp_path: Path, browser: Browser):
    """Index, watch (hls.js playing a recording), embed and its example host page on another origin: no violation."""
    root = tmp_path / "hls"
    async with serve(test_settings(tmp_path, hls_dir=str(root))) as running:
        async with httpx.AsyncClient(base_url=running.url, headers=running.auth) as c:
            assert (await c.post("/api/sittings", json={"id": "s-1", "title": "ก", "chamber": "senate"})).is_success
        await asyncio.to_thread(write_hls, root / "s-1", seconds=3.0, captions=[(0.2, 2.0, "ท่านประธาน")], close=True)
        context = await browser.new_context()
        await context.add_init_script(RECORD_VIOLATIONS)
        page = await context.new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            await page.goto(f"{running.url}/")
            await expect(page.locator(".sitting-card")).to_have_count(1)
            await page.goto(f"{running.url}/watch/s-1")
            await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
            await expect(page.locator("#player")).to_have_attribute("data-status", "ready")
            await page.evaluate("document.getElementById('video').play()")
            await _poll(page, "document.getElementById('video').currentTime > 0.5")
            assert await page.evaluate("window.cspViolations") == []
            host = running.url.replace("127.0.0.1", "localhost")
            await page.goto(f"{host}/static/embed-example.html?sitting=s-1&server={running.url}")
            await expect(page.locator("#log")).to_contain_text('"type":"ready"')
            frame = next(f for f in page.frames if "/embed/" in f.url)
            await expect(frame.locator("#player")).to_have_attribute("data-status", "ready")
            assert await frame.evaluate("window.cspViolations") == []
            assert await page.evaluate("window.cspViolations") == []
        finally:
            await context.close()
    assert console == [] and errors == []
