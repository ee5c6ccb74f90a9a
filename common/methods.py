"""What each path allows, said the same way everywhere: ``OPTIONS`` answered, ``Allow`` on every 405, CORS on reads.

Starlette answers a wrong method on a path served by several routes (one per method) from the first of them, so its
405 lists only that route's methods; this middleware puts the full set in ``Allow``, from the whole route table.

CORS is granted to the public read API only: ``GET``/``HEAD`` on the given path prefixes (REST JSON, SSE,
``/openapi.json``) get ``Access-Control-Allow-Origin`` for an allowed origin, and their preflights are answered.
Operator calls (``POST`` with the bearer token) are never granted: a page on another site cannot make them.
A route that lists ``OPTIONS`` itself (WHIP and WHEP, with their own CORS) answers its own preflights.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.cors import CorsPolicy

READS = frozenset({"GET", "HEAD"})


class Methods:
    """``Methods(app, routes, cors=CorsPolicy(origins, ("GET", "HEAD")), public=("/api/", "/openapi.json"))``."""

    def __init__(
        self, app: ASGIApp, *, routes: Sequence[BaseRoute], cors: CorsPolicy, public: Sequence[str] = ()
    ) -> None:
        self.app = app
        self.routes = routes
        self.cors = cors
        self.public = tuple(public)

    def allowed(self, scope: Scope) -> frozenset[str] | None:
        """The methods the routes serve at this request's path; None when no route has the path (a 404)."""
        methods: set[str] = set()
        found = False
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                found = True
                # A Mount (the static files) has no methods of its own; what it serves is read-only.
                methods |= getattr(route, "methods", None) or READS
        return frozenset(methods) if found else None

    def _is_public_read(self, path: str, methods: frozenset[str]) -> bool:
        return path.startswith(self.public) and "GET" in methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        allowed = self.allowed(scope) if scope["type"] == "http" else None
        if allowed is None or "OPTIONS" in allowed:
            await self.app(scope, receive, send)
            return
        allow = ", ".join(sorted(allowed | {"OPTIONS"}))
        public = self._is_public_read(scope["path"], allowed)
        if scope["method"] == "OPTIONS":
            await self._options(Request(scope), allow, public)(scope, receive, send)
            return
        cors = self.cors.headers(Headers(scope=scope).get("origin")) if public and scope["method"] in READS else {}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if message["status"] == 405:
                    headers["Allow"] = allow
                for name, value in cors.items():
                    if name == "Vary":
                        headers.add_vary_header("Origin")
                    elif name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _options(self, request: Request, allow: str, public: bool) -> Response:
        """A CORS preflight for a read of the public API gets the grant; any other ``OPTIONS`` only ``Allow``."""
        asked = request.headers.get("access-control-request-method")
        if public and asked in READS and "origin" in request.headers:
            response = self.cors.preflight(request)
            response.headers["Allow"] = allow
            return response
        return Response(status_code=204, headers={"Allow": allow})
