"""HTTP pieces every stage's endpoints share: the one JSON error shape, JSON that keeps Thai readable, bearer auth.

Every error answers ``{"ok": false, "status": <code>, "error": <message>, ...}``; success answers carry
``"ok": true``. Nothing here knows about sittings or channels.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse


def dumps(value: Any) -> str:
    """Compact JSON that keeps Thai readable on the wire (no \\u escapes)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class JSONUnicodeResponse(JSONResponse):
    """JSON that keeps Thai readable (no \\u escapes), for every API answer."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")


def json_error(status: int, error: str, **extra: Any) -> JSONResponse:
    return JSONUnicodeResponse({"ok": False, "status": status, "error": error, **extra}, status_code=status)


def bearer_matches(conn: HTTPConnection, token: bytes) -> bool:
    """True when the request carries ``Authorization: Bearer <token>``, compared in constant time."""
    header = conn.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)


class BodyTooLarge(HTTPException):
    """A request body over its endpoint's cap: a 413 (the app's HTTP error handler gives it the JSON shape)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body must be at most {limit} bytes")
        self.limit = limit

    def response(self) -> JSONResponse:
        return json_error(413, self.detail, limit=self.limit)


async def read_body_capped(request: Request, limit: int) -> bytes:
    """The request body, or ``BodyTooLarge`` as soon as it is known to pass ``limit`` bytes.

    A declared ``Content-Length`` over the cap is refused before anything is read; a chunked body is read chunk by
    chunk and refused at the chunk that crosses the cap, so a client cannot make the server buffer (or even
    receive) more than ``limit`` plus one chunk. The rest is left unread: the server then closes the connection.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit)
    return bytes(body)
