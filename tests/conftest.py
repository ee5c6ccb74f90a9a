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
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from chromium import CHROMIUM, CHROMIUM_ARGS
from playwright.async_api import Browser, Page, async_playwright
from psycopg import sql as psql

# ---- the repository stays clean (owner: console and messages) ----------------------------------------------------
# Tests write only under tmp_path: a test app whose settings fall back to a default path (var/staff.db beside a
# PostgreSQL archive, var/hls, var/attachments) would leave databases, keys and files in the checkout. The model
# cache (var/models, filled by `make models`) is the one thing tests may read there.

REPO_VAR = Path(__file__).resolve().parent.parent / "var"


def _var_listing() -> set[str]:
    if not REPO_VAR.exists():
        return set()
    return {
        str(path.relative_to(REPO_VAR))
        for path in REPO_VAR.rglob("*")
        if path.relative_to(REPO_VAR).parts[0] != "models"
    }


@pytest.fixture(scope="session", autouse=True)
def repo_var_untouched() -> Iterator[None]:
    """Fails the session when a test created anything in the repository's var/ (outside the model cache)."""
    before = _var_listing()
    yield
    created = sorted(_var_listing() - before)
    assert not created, f"tests wrote into the repository's var/ (use tmp_path): {created[:20]}"


# ---- end of the clean repository check ---------------------------------------------------------------------------


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


@pytest.fixture(scope="session")
def private_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of this session's own, for tests that hang or pause it (never the shared one)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary to start a private Redis")
    proc, url = start_private_redis(binary, tmp_path_factory.mktemp("private-redis"))
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- end of redis fixtures ------------------------------------------------------------------------------------


# ---- postgres fixtures (owner: archive store) -------------------------------------------------------------------
# A test that needs PostgreSQL gets a database of its own on the server at 127.0.0.1:5432 (user postgres, trust
# auth): created empty for the test, dropped after it. Tests skip only when no PostgreSQL answers there.
# SAPHA_TEST_POSTGRES overrides the server: a postgresql:// URL whose user may CREATE DATABASE.

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """URL of the maintenance database of the PostgreSQL the tests use; skips the test when none answers."""
    url = os.environ.get("SAPHA_TEST_POSTGRES", DEFAULT_POSTGRES)
    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL answers at {url}: {exc}")
    return url


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """URL of a new, empty database for this test alone, dropped (its sessions ended) when the test ends."""
    name = f"sapha_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(psql.SQL("CREATE DATABASE {}").format(psql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(postgres_admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute(psql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psql.Identifier(name)))


# ---- end of postgres fixtures ---------------------------------------------------------------------------------


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
    # bypass_csp: Playwright evaluates string predicates (wait_for_function) with eval, which the app's CSP forbids;
    # tests/test_security_headers.py runs the pages under the policy itself.
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        await context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"
