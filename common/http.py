"""HTTP pieces every stage's endpoints share: the one JSON error shape, JSON that keeps Thai readable, bearer auth.

Every error answers ``{"ok": false, "status": <code>, "error": <message>, ...}``; success answers carry
``"ok": true``. Nothing here knows about sittings or channels.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.requests import HTTPConnection
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
