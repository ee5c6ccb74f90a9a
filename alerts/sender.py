"""One bounded POST to a receiver: the only network I/O the alert cores share (webhooks and Web Push).

``post_once`` never raises for the receiver's faults and never takes longer than ``timeout`` seconds, connection to
status line, so a receiver that hangs, trickles or resets costs one worker slot for at most that long and never
delays other deliveries. The response body is read and dropped, up to ``MAX_DRAIN_BYTES``, only so that the
connection can carry the next request (an unread body closes it: a new TCP connection per delivery halved the
benchmark's throughput); a longer body closes the connection. Redirects are not followed (a 3xx is a failure):
following one could lead the request to an address the URL policy refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx

from alerts.schedule import AttemptResult

DEFAULT_TIMEOUT_S = 10.0
MAX_DRAIN_BYTES = 64 * 1024


async def post_once(
    client: httpx.AsyncClient, url: str, headers: Mapping[str, str], body: bytes, *, timeout: float = DEFAULT_TIMEOUT_S
) -> AttemptResult:
    """POST ``body`` to ``url``; the status and ``Retry-After``, or status None with the reason when no answer."""
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
