"""CORS for endpoints that pages on other sites call: which origins may, and the headers that say so.

A ``CorsPolicy`` is a value (origins, methods, request headers allowed, response headers exposed); it answers
preflights and adds the headers to actual responses. No cookies are involved anywhere (the operator token is a
bearer header), so credentials are never allowed and ``*`` is safe where the endpoint itself is public.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from common.http import json_error

ANY = "*"


def parse_origins(text: str) -> frozenset[str]:
    """A setting's value as a set of origins: comma- or space-separated, ``*`` for any, empty for none.

    Origins are compared as browsers send them (scheme://host[:port], no path); a trailing slash is dropped.
    """
    origins = {item.strip().rstrip("/") for item in text.replace(",", " ").split()}
    for origin in origins - {ANY}:
        scheme, sep, rest = origin.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
            raise ValueError(f"not an origin (scheme://host[:port]): {origin!r}")
    return frozenset(origins)


@dataclass(frozen=True)
class CorsPolicy:
    """Who may call a set of endpoints from another origin, with which methods and headers."""

    origins: frozenset[str]
    methods: tuple[str, ...]
    allow_headers: tuple[str, ...] = ("Content-Type",)
    expose_headers: tuple[str, ...] = ()
    max_age: int = 600  # seconds a browser may cache a preflight's answer

    def allowed(self, origin: str | None) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for a request from ``origin``, or None if not allowed."""
        if origin is None:
            return None
        if ANY in self.origins:
            return ANY
        return origin if origin in self.origins else None

    def headers(self, origin: str | None) -> dict[str, str]:
        """The CORS headers of an actual (not preflight) response to a request from ``origin``."""
        headers = {} if ANY in self.origins or not self.origins else {"Vary": "Origin"}
        allow = self.allowed(origin)
        if allow is not None:
            headers["Access-Control-Allow-Origin"] = allow
            if self.expose_headers:
                headers["Access-Control-Expose-Headers"] = ", ".join(self.expose_headers)
        return headers

    def preflight(self, request: Request) -> Response:
        """The answer to ``OPTIONS``: 204 with what the browser asked about, 403 for an origin not allowed.

        An ``OPTIONS`` that is no CORS preflight (no ``Origin``) just learns the methods from ``Allow``.
        """
        allow_methods = ", ".join((*self.methods, "OPTIONS"))
        origin = request.headers.get("origin")
        if origin is None:
            return Response(status_code=204, headers={"Allow": allow_methods})
        allow = self.allowed(origin)
        if allow is None:
            response = json_error(403, f"origin {origin} may not call this endpoint")
            response.headers.update(self.headers(origin))
            return response
        return Response(
            status_code=204,
            headers={
                **self.headers(origin),
                "Allow": allow_methods,
                "Access-Control-Allow-Methods": ", ".join(self.methods),
                "Access-Control-Allow-Headers": ", ".join(self.allow_headers),
                "Access-Control-Max-Age": str(self.max_age),
            },
        )

    def apply(self, request: Request, response: Response) -> Response:
        """``response`` with the CORS headers for ``request``'s origin added."""
        for name, value in self.headers(request.headers.get("origin")).items():
            response.headers[name] = value
        return response
