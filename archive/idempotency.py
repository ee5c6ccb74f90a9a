"""Idempotency-Key for operator POSTs: a retried request gets the first answer, and changes nothing again.

An operator whose vote POST timed out, or got a 503, cannot know whether the vote was recorded. Sent again with
the same ``Idempotency-Key`` header, the request is not run a second time: the first answer (status and body) comes
back, marked ``Idempotent-Replayed: true``. Keys are scoped to the caller (``scope``: the staff account, or
the operator token for the bootstrap), so two accounts using the same key never see each other's answers; kept
in the archive (so every server process sees them) for ``ttl`` seconds (24 h by default) and then purged. The
key is bound to the request it first came with: the same key with another method, path or body is a 422.

Answers with a 5xx status are not kept: the request recorded nothing (the database failed), so a retry must run.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from archive.store import Store
from common.http import json_error, read_body_capped

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
KEY_MAX = 200
DEFAULT_TTL_S = 24 * 3600.0
# A claim never answered (its process died mid-request) is dropped after this, so the key becomes usable again.
CLAIM_TTL_S = 120.0

Answer = Callable[[Request], Awaitable[Response]]


def valid_key(key: str) -> bool:
    """1 to KEY_MAX visible ASCII characters (a UUID, a ULID, any client-made token)."""
    return 0 < len(key) <= KEY_MAX and all("!" <= c <= "~" for c in key)


class Idempotency:
    """Runs a request at most once per key; see the module docstring for the rules."""

    def __init__(
        self,
        store: Store,
        token: bytes,
        *,
        body_limit: int,
        ttl: float = DEFAULT_TTL_S,
        claim_ttl: float = CLAIM_TTL_S,
    ) -> None:
        self.store = store
        # Keys are stored hashed with the token: two tokens never share a key, and the raw keys stay out of the file.
        self._scope = hashlib.sha256(b"idempotency\0" + token).digest()
        self._body_limit = body_limit
        self._ttl = ttl
        self._claim_ttl = claim_ttl

    async def run(self, request: Request, key: str, answer: Answer, scope: str = "") -> Response:
        """Answer ``request`` at most once per (``scope``, ``key``): ``scope`` names the caller, e.g. an account."""
        if not valid_key(key):
            return json_error(400, f"must be 1 to {KEY_MAX} visible ASCII characters", field=HEADER)
        raw = await read_body_capped(request, self._body_limit)
        # The handler reads the body again; Starlette serves it from here instead of the (consumed) stream.
        request._body = raw
        stored_key = hashlib.sha256(self._scope + scope.encode() + b"\0" + key.encode()).hexdigest()
        fingerprint = hashlib.sha256(
            b"\0".join([request.method.encode(), request.url.path.encode(), request.url.query.encode(), raw])
        ).hexdigest()

        stored = await self.store.answer_claim(stored_key, fingerprint, self._ttl, self._claim_ttl)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                return json_error(422, "this Idempotency-Key was used with a different request", field=HEADER)
            if stored.status is None or stored.body is None:
                busy = json_error(409, "a request with this Idempotency-Key is still in progress", field=HEADER)
                busy.headers["Retry-After"] = "1"
                return busy
            return Response(
                stored.body,
                status_code=stored.status,
                media_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )

        try:
            response = await answer(request)
        except BaseException:
            await self._release(stored_key)
            raise
        if response.status_code >= 500:
            await self._release(stored_key)
            return response
        try:
            await self.store.answer_store(stored_key, response.status_code, bytes(response.body).decode())
        except Exception as exc:
            # The request itself succeeded; the claim lapses after claim_ttl, and until then a retry gets a 409.
            log.warning("could not store the answer for an Idempotency-Key: %s", exc)
        return response

    async def _release(self, stored_key: str) -> None:
        try:
            await self.store.answer_release(stored_key)
        except Exception as exc:
            log.warning("could not release an Idempotency-Key claim (it lapses in %g s): %s", self._claim_ttl, exc)
