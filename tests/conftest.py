"""Shared fixtures. Each area keeps its fixtures in its own delimited section."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from chromium import CHROMIUM, CHROMIUM_ARGS
from playwright.async_api import Browser, Page, async_playwright

# ---- redis fixtures (owner: broker) --------------------------------------------------------------------------
# A Redis that already answers on 127.0.0.1:6379 is used as is; otherwise the session starts a private,
# non-persistent redis-server on a free port. Tests skip only when there is no redis-server binary at all.
# SAPHA_TEST_REDIS overrides: a redis:// URL to use that server, or "private" to always start one.
# Every test gets its own key prefix and its keys are deleted afterwards, so a shared server stays clean.

DEFAULT_REDIS = ("127.0.0.1", 6379)


def redis_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something at host:port replies +PONG to an inline PING."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_private_redis(binary: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start a throwaway redis-server (no RDB, no AOF) and wait until it answers; returns it and its URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not redis_answers("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"private redis-server on port {port} did not come up")
        time.sleep(0.02)
    return proc, f"redis://127.0.0.1:{port}/0"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Redis for this test session: the local one if it answers, else a private one."""
    override = os.environ.get("SAPHA_TEST_REDIS", "")
    if override.startswith(("redis://", "rediss://", "unix://")):
        yield override
        return
    if override != "private" and redis_answers(*DEFAULT_REDIS):
        yield f"redis://{DEFAULT_REDIS[0]}:{DEFAULT_REDIS[1]}/0"
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no Redis answers on 127.0.0.1:6379 and no redis-server binary to start one")
    proc, url = start_private_redis(binary, tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; every key under it is deleted when the test ends."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# ---- end of redis fixtures ------------------------------------------------------------------------------------


# ---- browser fixtures --------------------------------------------------------------------------------------------


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian chromium (tests using it carry ``needs_chromium``)."""
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh page; the test fails if the page threw an uncaught JavaScript error."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        await context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"
