"""The one JSON error shape every HTTP endpoint answers with: ``{"ok": false, "status", "error", ...}``."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class JSONUnicodeResponse(JSONResponse):
    """JSON that keeps Thai readable (no \\u escapes), for every API answer."""

    def render(self, content: Any) -> bytes:
        from broadcast.envelope import dumps

        return dumps(content).encode("utf-8")


def json_error(status: int, error: str, **extra: Any) -> JSONResponse:
    return JSONUnicodeResponse({"ok": False, "status": status, "error": error, **extra}, status_code=status)
