"""Webhooks by the Standard Webhooks specification: secrets, signatures, the event body and the signed POST.

Each delivery is a POST of a JSON body with three headers:

* ``webhook-id`` — the message id, the same on every retry of one delivery, so the receiver can drop duplicates
  (delivery is at-least-once);
* ``webhook-timestamp`` — Unix seconds when this attempt was signed (receivers refuse ones more than 5 minutes off);
* ``webhook-signature`` — ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` with the endpoint's secret, one
  per current secret separated by spaces, so a secret can be rotated: during the overlap both sign and the receiver
  accepts either.

Secrets are ``whsec_`` followed by base64 of 24 to 64 random bytes (we make 32). Any Standard Webhooks library
verifies these messages (``docs/alerts.md`` shows a worked example).

The body follows the specification's shape: ``{"type": "bill.stage_changed", "timestamp": "<ISO 8601>",
"data": {...}}``.

How it is meant to be wired: creating a webhook follow makes a secret with ``new_secret()`` and returns it once;
the endpoint row keeps its current secrets (one, two during a rotation); when an alert fires the outbox row gets
``new_message_id()`` and ``event_body(...)``; the worker signs each attempt afresh with ``build_request(...)`` (a new
timestamp, the same id) and sends it with ``post(...)``, then feeds the ``AttemptResult`` to ``alerts.schedule``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets as _secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from alerts.schedule import AttemptResult
from alerts.sender import DEFAULT_TIMEOUT_S, HttpSender, post_once

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64
USER_AGENT = "Sapha-Webhooks/1"


class SecretError(ValueError):
    """A webhook secret that is not ``whsec_`` + base64 of 24 to 64 bytes."""

    field = "secret"


def new_secret() -> str:
    """A fresh ``whsec_`` secret (32 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(SECRET_BYTES)).decode()


def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_`` secret, or ``SecretError``."""
    if not secret.startswith(SECRET_PREFIX):
        raise SecretError(f"a webhook secret starts with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise SecretError("a webhook secret is base64 after its prefix") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise SecretError(f"a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {len(key)}")
    return key


def new_message_id() -> str:
    """A message id for one delivery (kept across its retries): ``msg_`` and 128 random bits."""
    return "msg_" + _secrets.token_hex(16)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(key, "<msg_id>.<timestamp>.<body>")>``."""
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    digest = hmac.new(decode_secret(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,…`` per secret, space-separated (rotation)."""
    if not secrets:
        raise SecretError("at least one secret is needed to sign")
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets)


def event_body(event_type: str, data: Mapping[str, Any], occurred_at: datetime) -> bytes:
    """The JSON body ``{"type", "timestamp", "data"}``, UTF-8 with Thai kept readable."""
    payload = {
        "type": event_type,
        "timestamp": occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": dict(data),
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class BodyTemplate:
    """``event_body(event_type, {**data, **dict(zip(tail, values))}, occurred_at)`` serialised once but for the
    values of ``tail``: ``render(*values)`` gives the same bytes as that call. A vote's 1,000 webhook bodies differ
    only in the follow's and the event's ids (the last keys of ``data``), so the JSON of the alert is built once per
    event instead of once per delivery."""

    def __init__(
        self, event_type: str, data: Mapping[str, Any], occurred_at: datetime, tail: Sequence[str] = ("follow", "event")
    ) -> None:
        if not data or set(tail) & set(data):
            raise ValueError("a template needs data of its own, without the tail's keys")
        body = event_body(event_type, data, occurred_at)
        if not body.endswith(b"}}"):  # the data object's end, then the body's
            raise ValueError("unexpected event body")
        self._prefix = body[:-2]
        self._keys = [b"," + _json(name) + b":" for name in tail]

    def render(self, *values: str) -> bytes:
        if len(values) != len(self._keys):
            raise ValueError(f"{len(self._keys)} values expected")
        parts = [self._prefix]
        for key, value in zip(self._keys, values, strict=True):
            parts += (key, _json(value))
        parts.append(b"}}")
        return b"".join(parts)


def _json(value: str) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


@dataclass(frozen=True)
class WebhookRequest:
    url: str
    headers: dict[str, str]
    body: bytes


def build_request(url: str, body: bytes, *, msg_id: str, timestamp: int, secrets: Sequence[str]) -> WebhookRequest:
    """One signed attempt: sans-I/O, the caller passes the time (``int(time.time())`` when it sends)."""
    return WebhookRequest(
        url,
        {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
        },
        body,
    )


async def post(
    client: httpx.AsyncClient | HttpSender, request: WebhookRequest, *, timeout: float = DEFAULT_TIMEOUT_S
) -> AttemptResult:
    """Send one attempt (``alerts.sender.post_once``: bounded, never raises, no redirects)."""
    return await post_once(client, request.url, request.headers, request.body, timeout=timeout)
