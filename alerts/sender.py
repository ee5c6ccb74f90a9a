"""One bounded POST to a receiver: the only network I/O the alert cores share (webhooks and Web Push).

``post_once`` never raises for the receiver's faults and never takes longer than ``timeout`` seconds, connection to
status line, so a receiver that hangs, trickles or resets costs one worker slot for at most that long and never
delays other deliveries. The response body is read and dropped, up to ``MAX_DRAIN_BYTES``, only so that the
connection can carry the next request (an unread body closes it: a new TCP connection per delivery halved the
benchmark's throughput); a longer body closes the connection. Redirects are not followed (a 3xx is a failure):
following one could lead the request to an address the URL policy refused.

Two clients do it. ``post_once`` takes either an ``httpx.AsyncClient`` (tests, scripts, other callers) or an
``HttpSender``: the delivery workers' own lean HTTP/1.1 client, keep-alive connections pooled per origin, the
response parsed by ``httptools`` (C). A profile of the benchmark showed httpx/httpcore/anyio spending about 1 ms of
CPU per request (connection-pool scans, socket attribute look-ups, sniffio), more than the encryption, the signing
and the outbox together; ``HttpSender`` spends a few tens of microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

import httptools
import httpx

from alerts.schedule import AttemptResult

DEFAULT_TIMEOUT_S = 10.0
MAX_DRAIN_BYTES = 64 * 1024
MAX_TARGETS = 65_536  # URLs whose parsed request line is kept (about 200 bytes each)
MAX_IDLE_PER_ORIGIN = 256  # keep-alive connections kept per origin (a push service is one origin for thousands)
USER_AGENT = "Sapha-Alerts/1"


async def post_once(
    client: httpx.AsyncClient | HttpSender,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> AttemptResult:
    """POST ``body`` to ``url``; the status and ``Retry-After``, or status None with the reason when no answer."""
    if isinstance(client, HttpSender):
        return await client.post(url, headers, body, timeout=timeout)
    try:
        async with asyncio.timeout(timeout):
            async with client.stream(
                "POST", url, content=body, headers=dict(headers), follow_redirects=False
            ) as response:
                drained = 0
                async for chunk in response.aiter_raw():
                    drained += len(chunk)
                    if drained > MAX_DRAIN_BYTES:
                        break
                return AttemptResult(response.status_code, response.headers.get("retry-after"))
    except TimeoutError:
        return AttemptResult(None, error=f"no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return AttemptResult(None, error=f"{type(exc).__name__}: {exc}"[:200])


class _Reply(Exception):
    """Raised inside the parser's callbacks to stop it once the answer is known (a body longer than the drain)."""


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request at a time, the answer parsed by ``httptools``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[AttemptResult] | None = None
        self.reusable = False
        self.lost = False
        self.got_bytes = False
        self._status = 0
        self._retry_after: str | None = None
        self._drained = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except _Reply:
            self.close()
        except httptools.HttpParserError as exc:
            self._resolve(AttemptResult(None, error=f"bad HTTP answer: {exc}"[:200]))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.reusable = False
        if self._status:  # an answer read until the connection closed (no length, not chunked)
            self._resolve(AttemptResult(self._status, self._retry_after))
        else:
            self._resolve(None)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"retry-after":
            self._retry_after = value.decode("latin-1").strip()

    def on_headers_complete(self) -> None:
        self._status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._drained += len(body)
        if self._drained > MAX_DRAIN_BYTES:
            self._resolve(AttemptResult(self._status, self._retry_after))
            raise _Reply

    def on_message_complete(self) -> None:
        self.reusable = self.parser.should_keep_alive() and not self.lost
        self._resolve(AttemptResult(self._status, self._retry_after))

    # ours
    def _resolve(self, result: AttemptResult | None) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            if result is None:
                waiter.set_exception(ConnectionResetError("the receiver closed the connection"))
            else:
                waiter.set_result(result)

    def request(self, data: bytes) -> asyncio.Future[AttemptResult]:
        assert self.transport is not None
        self.reusable = False
        self.got_bytes = False
        self._status, self._retry_after, self._drained = 0, None, 0
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()


def _target(url: str) -> tuple[tuple[str, str, int], str] | AttemptResult:
    """The origin (scheme, host, port) of ``url`` and the request line and host header of a POST to it; or why no
    request can be made."""
    parts = urlsplit(url)
    scheme, host = parts.scheme, parts.hostname or ""
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return AttemptResult(None, error="invalid port")
    if scheme not in ("http", "https") or not host:
        return AttemptResult(None, error="not an http(s) URL")
    target = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        target += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return (scheme, host, port), f"POST {target} HTTP/1.1\r\nhost: {parts.netloc}"


class HttpSender:
    """The delivery workers' HTTP/1.1 client (module docstring): ``await sender.post(url, headers, body,
    timeout=...)`` with ``post_once``'s contract, keep-alive connections reused per origin (scheme, host, port).

    Only what deliveries need: POST, no redirects, no proxies, no cookies; https verified against the system's CAs
    (``ssl_context`` to change that). A request on a reused connection that the receiver closed before answering
    is sent once more on a fresh one (a keep-alive connection may be closed by the receiver at any moment; the
    message id lets the receiver drop a duplicate)."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, max_idle: int = MAX_IDLE_PER_ORIGIN) -> None:
        self._ssl = ssl_context
        self.max_idle = max_idle
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        # Per URL: its origin and the request line with the host header (each subscription is sent to again at the
        # next alert; parsing and quoting each time was a few microseconds per request).
        self._targets: dict[str, tuple[tuple[str, str, int], str]] = {}
        self._busy: set[_Connection] = set()

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _connect(self, scheme: str, host: str, port: int) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = self._context() if scheme == "https" else None
        _, conn = await loop.create_connection(
            _Connection, host, port, ssl=tls, server_hostname=host if tls is not None else None
        )
        return conn

    async def post(
        self, url: str, headers: Mapping[str, str], body: bytes, *, timeout: float = DEFAULT_TIMEOUT_S
    ) -> AttemptResult:
        parsed = self._targets.get(url)
        if parsed is None:
            fresh = _target(url)
            if isinstance(fresh, AttemptResult):
                return fresh
            if len(self._targets) >= MAX_TARGETS:
                del self._targets[next(iter(self._targets))]  # the oldest: a bound, not a policy
            parsed = self._targets[url] = fresh
        key, head = parsed
        scheme, host, port = key
        lines = [head, f"content-length: {len(body)}"]
        if "user-agent" not in headers:
            lines.append(f"user-agent: {USER_AGENT}")
        for name, value in headers.items():
            if "\r" in name + value or "\n" in name + value or name.lower() in ("host", "content-length"):
                return AttemptResult(None, error=f"bad header {name!r}")
            lines.append(f"{name}: {value}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        key = (scheme, host, port)
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(timeout):
                for _ in range(2):
                    conn, reused = self._take(key), True
                    if conn is None:
                        conn, reused = await self._connect(scheme, host, port), False
                    self._busy.add(conn)
                    try:
                        result = await conn.request(data)
                    except ConnectionError:
                        if reused and not conn.got_bytes:
                            self._busy.discard(conn)
                            conn.close()
                            continue  # the receiver had closed the idle connection: once more, fresh
                        raise
                    self._busy.discard(conn)
                    if conn.reusable:
                        self._give(key, conn)
                    else:
                        conn.close()
                    conn = None
                    return result
                raise ConnectionResetError("the receiver closed the connection")
        except TimeoutError:
            return AttemptResult(None, error=f"no answer within {timeout:g} s")
        except (OSError, ssl.SSLError) as exc:
            return AttemptResult(None, error=f"{type(exc).__name__}: {exc}"[:200])
        finally:
            if conn is not None:  # timed out, failed or cancelled mid-request: the connection cannot carry another
                self._busy.discard(conn)
                conn.close()

    def _take(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.lost and conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    def _give(self, key: tuple[str, str, int], conn: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < self.max_idle:
            idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        """Close every connection (idle or in flight)."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        for conn in list(self._busy):
            with contextlib.suppress(Exception):
                conn.close()
        self._busy.clear()
