"""Security headers on every HTTP answer: a Content-Security-Policy with no inline script, nosniff, a referrer policy.

A pure ASGI middleware: it adds headers to ``http.response.start`` and touches nothing else, so streaming answers
(SSE, HLS files) pass through unchanged. A header the endpoint set itself is left alone.

The policy is what the pages need and no more: scripts, styles and fonts only from this origin (so every script
and style lives in a file under ``/static``); media and workers also from ``blob:``, which hls.js uses for
MediaSource and its transmuxing worker, and media from ``data:`` (hls.js resets a detached video with one);
fetches and the WebSocket to this origin (WHEP's RTCPeerConnection is no
fetch). No page may be framed by another site, except the embeddable player, which exists to be.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

POLICY = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob: data:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
)
FIXED = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def content_security_policy(*, framable: bool, frames_others: bool = False) -> str:
    """The CSP for one answer: ``framable`` lets any site frame it; ``frames_others`` lets it frame any site."""
    directives = [*POLICY, "frame-ancestors *" if framable else "frame-ancestors 'none'"]
    if frames_others:
        directives.append("frame-src 'self' http: https:")
    return "; ".join(directives)


class SecurityHeaders:
    """``SecurityHeaders(app, framable=("/embed/",), frames_others=("/static/embed-example.html",))``.

    ``framable`` are path prefixes other sites may frame; ``frames_others`` exact paths of pages that frame
    other origins (the example host page of the embed).
    """

    def __init__(self, app: ASGIApp, *, framable: Sequence[str] = (), frames_others: Sequence[str] = ()) -> None:
        self.app = app
        self.framable = tuple(framable)
        self.frames_others = frozenset(frames_others)
        self._closed = {**FIXED, "Content-Security-Policy": content_security_policy(framable=False)}

    def headers_for(self, path: str) -> dict[str, str]:
        framable = path.startswith(self.framable)
        others = path in self.frames_others
        if not framable and not others:
            return self._closed
        return {**FIXED, "Content-Security-Policy": content_security_policy(framable=framable, frames_others=others)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    if name not in headers:
                        headers[name] = value
                if "x-frame-options" not in headers and "frame-ancestors 'none'" in extra["Content-Security-Policy"]:
                    # For browsers that predate frame-ancestors.
                    headers["X-Frame-Options"] = "DENY"
            await send(message)

        await self.app(scope, receive, send_with_headers)
