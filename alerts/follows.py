"""Follows: what someone follows (a target) and how they want to be told (a channel). Validation and tokens, sans-I/O
except for the URL policy's address check.

A follow needs no account. It is one target and one channel:

* targets — ``bill:<id>``, ``topic:<name>`` and ``agency:<name>`` (every bill carrying that topic or agency),
  ``keyword:<query>`` (a saved search over live caption finals and agenda titles, parsed and matched with
  ``archive.search``'s folding and term rules, at most ``MAX_KEYWORD_CHARS`` characters), ``speaker:<id>`` and
  ``sittings:<chamber>`` (a sitting of that chamber starts);
* channels — ``webhook`` (a URL passing ``alerts.url_policy``; a ``whsec_`` secret is made and shown once),
  ``push`` (a browser ``PushSubscription``: https endpoint, ``keys.p256dh`` a 65-byte P-256 point and ``keys.auth``
  16 bytes, base64url) and ``email`` (double opt-in: the follow stays ``pending`` and nothing but the confirmation
  message is sent until the confirmation token comes back; ``digest`` ``immediate`` or ``daily``).

Each follow gets a management token (``mt_`` + 256 random bits) shown once and stored only as its SHA-256: it
unsubscribes the follow (``/api/follows/unsubscribe?token=…``). Emails carry a signed unsubscribe token instead
(``unsubscribe_token``: the follow id and an HMAC under the deployment's link key), since the token shown at creation
went to whoever filled in the form, not necessarily the mailbox's owner.

Bad input raises ``FollowError`` naming the field (``target.kind``, ``target.value``, ``channel.url``,
``channel.subscription.keys.p256dh``, ``channel.email`` …) with the HTTP status to answer. A request is first checked
against the documented shape (``common.alert_schemas.new_follow``, the same model ``/openapi.json`` shows): what
breaks it is a 422. What fits it and is still refused is refused for a reason no schema can say, and is a 409: a
webhook or push host that does not resolve to public addresses, a ``p256dh`` that is no point on P-256, an http
push endpoint where only https is allowed (and, in the store, a duplicate).

How it is meant to be wired (issue 9): ``POST /api/follows`` with ``{"target": {"kind", "value"}, "channel":
{"type": "webhook", "url"} | {"type": "push", "subscription": {...}} | {"type": "email", "email", "digest"}}`` runs
``request = await parse_follow_request(body, allow_private=settings.webhook_allow_private)``, then
``created = await store.create_follow(request, now=time.time())`` (``alerts.store_sqlite.AlertStore``) and answers
201 with ``created.public()`` (the secret and management token appear only there); ``FollowError`` becomes
``json_error(err.status, str(err), field=err.field)``. ``POST /api/follows/unsubscribe?token=…`` calls
``store.unsubscribe(token)``; ``GET /api/follows/confirm?token=…`` calls ``store.confirm_email(token)``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from alerts.push import PushSubscription, SubscriptionError, parse_subscription
from alerts.url_policy import Resolver, UrlRefused, check_url, resolve
from archive.search import QUERY_REGEX, QueryError, fold, parse_query
from common.alert_schemas import (
    CHAMBERS,
    EMAIL_REGEX,
    FOLLOW_ID_REGEX,
    MAX_EMAIL_CHARS,
    MAX_ID_CHARS,
    MAX_KEYWORD_CHARS,
    MAX_NAME_CHARS,
    first_problem,
    fullmatch,
    new_follow,
)
from common.thai import normalize

TOKEN_PREFIX = "mt_"
_ID = fullmatch(FOLLOW_ID_REGEX)
_EMAIL = fullmatch(EMAIL_REGEX)
REFUSED = 409  # the request fits the schema; the world (DNS, the key's curve, the deployment) says no


class FollowError(ValueError):
    """A follow request that cannot be honoured: ``field`` names the offending part, ``status`` the HTTP answer."""

    def __init__(self, message: str, field: str, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


class TargetKind(StrEnum):
    BILL = "bill"
    TOPIC = "topic"
    AGENCY = "agency"
    KEYWORD = "keyword"
    SPEAKER = "speaker"
    SITTINGS = "sittings"


class ChannelType(StrEnum):
    WEBHOOK = "webhook"
    PUSH = "push"
    EMAIL = "email"


class Digest(StrEnum):
    IMMEDIATE = "immediate"
    DAILY = "daily"


@dataclass(frozen=True)
class Target:
    """What is followed. ``key`` (``bill:42``) is what events are matched on; for a keyword it holds the folded
    query so that equal searches share one key, and ``value`` keeps the words as written."""

    kind: TargetKind
    value: str

    @property
    def key(self) -> str:
        value = fold(self.value) if self.kind is TargetKind.KEYWORD else self.value
        return f"{self.kind.value}:{value}"


@dataclass(frozen=True)
class WebhookChannel:
    url: str


@dataclass(frozen=True)
class PushChannel:
    subscription: PushSubscription


@dataclass(frozen=True)
class EmailChannel:
    address: str
    digest: Digest = Digest.IMMEDIATE


Channel = WebhookChannel | PushChannel | EmailChannel


@dataclass(frozen=True)
class FollowRequest:
    target: Target
    channel: Channel

    @property
    def channel_type(self) -> ChannelType:
        if isinstance(self.channel, WebhookChannel):
            return ChannelType.WEBHOOK
        if isinstance(self.channel, PushChannel):
            return ChannelType.PUSH
        return ChannelType.EMAIL


def _text(value: object, field: str, limit: int, *, keep: bool = False) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FollowError(f"{field} must be a non-empty string", field)
    # Counted as sent (code points, as JSON Schema's maxLength counts): NFC may lengthen a few characters.
    if len(value) > limit:
        raise FollowError(f"{field} must be at most {limit} characters", field)
    return value if keep else normalize(value)


def parse_target(value: object) -> Target:
    """A ``{"kind", "value"}`` object as a ``Target``, or ``FollowError`` naming ``target.kind``/``target.value``."""
    if not isinstance(value, dict):
        raise FollowError("target must be an object with kind and value", "target")
    kinds = ", ".join(k.value for k in TargetKind)
    try:
        kind = TargetKind(str(value.get("kind")))
    except ValueError:
        raise FollowError(f"target.kind must be one of {kinds}", "target.kind") from None
    raw = value.get("value")
    field = "target.value"
    if kind is TargetKind.KEYWORD:
        # Spaces and NFC only, not normalize(): it deletes controls the search grammar counts as spaces (U+001C)
        # or that stand before a "-" ("\x01-a" would become the exclusion "-a"), and the query kept must be the one
        # the documented pattern checked.
        text = " ".join(unicodedata.normalize("NFC", _text(raw, field, MAX_KEYWORD_CHARS, keep=True)).split())
        try:
            parse_query(text)
        except QueryError as exc:
            raise FollowError(f"{field}: {exc.message}", field) from None
        return Target(kind, text)
    if kind is TargetKind.SITTINGS:
        if raw not in CHAMBERS:
            raise FollowError(f"{field} must be one of {', '.join(CHAMBERS)} for sittings", field)
        assert isinstance(raw, str)
        return Target(kind, raw)
    if kind in (TargetKind.TOPIC, TargetKind.AGENCY):
        return Target(kind, _text(raw, field, MAX_NAME_CHARS))
    text = _text(raw, field, MAX_ID_CHARS)
    if not _ID.fullmatch(text):
        raise FollowError(f"{field} must be an id (letters, digits, . _ : -)", field)
    return Target(kind, text)


def parse_email(value: object, field: str = "channel.email") -> str:
    """A plausible email address, lower-cased domain, or ``FollowError``. Only the confirmation proves it."""
    if not isinstance(value, str) or not value or len(value) > MAX_EMAIL_CHARS or not _EMAIL.fullmatch(value):
        raise FollowError(f"{field} must be an email address", field)
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def check_shape(body: object) -> None:
    """``FollowError`` (422) naming the first field of ``body`` that breaks the documented request shape."""
    problem = first_problem(new_follow(QUERY_REGEX), body)
    if problem is not None:
        raise FollowError(problem[1], problem[0])


async def parse_follow_request(
    body: object, *, allow_private: bool = False, resolver: Resolver = resolve
) -> FollowRequest:
    """Validate a follow request (module docstring): the target, then the channel, URLs through the URL policy
    (``allow_private`` also lets a push endpoint be plain http, for a loopback push service in tests)."""
    check_shape(body)
    assert isinstance(body, dict)
    target = parse_target(body.get("target"))
    channel = body.get("channel")
    if not isinstance(channel, dict):
        raise FollowError("channel must be an object with a type", "channel")
    kind = channel.get("type")
    if kind == ChannelType.WEBHOOK:
        try:
            await check_url(channel.get("url"), allow_private=allow_private, field="channel.url", resolver=resolver)
        except UrlRefused as exc:
            raise FollowError(str(exc), exc.field, REFUSED) from None
        url = channel["url"]
        assert isinstance(url, str)
        return FollowRequest(target, WebhookChannel(url))
    if kind == ChannelType.PUSH:
        try:
            sub = parse_subscription(channel.get("subscription"), allow_http=allow_private)
        except SubscriptionError as exc:
            field = "channel.subscription" + ("" if exc.field == "subscription" else f".{exc.field}")
            raise FollowError(str(exc), field, REFUSED) from None
        try:
            schemes = ("https", "http") if allow_private else ("https",)
            await check_url(
                sub.endpoint,
                allow_private=allow_private,
                field="channel.subscription.endpoint",
                schemes=schemes,
                resolver=resolver,
            )
        except UrlRefused as exc:
            raise FollowError(str(exc), exc.field, REFUSED) from None
        return FollowRequest(target, PushChannel(sub))
    if kind == ChannelType.EMAIL:
        address = parse_email(channel.get("email"))
        try:
            digest = Digest(channel.get("digest", Digest.IMMEDIATE))
        except ValueError:
            raise FollowError("channel.digest must be immediate or daily", "channel.digest") from None
        return FollowRequest(target, EmailChannel(address, digest))
    raise FollowError(f"channel.type must be one of {', '.join(c.value for c in ChannelType)}", "channel.type")


# -- tokens -------------------------------------------------------------------------------------------------------


def new_follow_id() -> str:
    """A public follow id: ``fol_`` and 96 random bits (not a secret: it appears in webhook bodies and links)."""
    return "fol_" + secrets.token_hex(12)


def new_token(prefix: str = TOKEN_PREFIX) -> str:
    """An unguessable token (256 bits), shown once; only ``token_hash`` of it is stored."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored for a token: SHA-256 hex (a fast hash is enough for 256 random bits)."""
    return hashlib.sha256(token.encode()).hexdigest()


def unsubscribe_token(link_key: bytes, follow_id: str) -> str:
    """``u1.<follow id>.<HMAC>``: an unsubscribe link for an email, which the server can make again at any time."""
    mac = hmac.new(link_key, f"unsubscribe:{follow_id}".encode(), hashlib.sha256).digest()[:18]
    return f"u1.{follow_id}.{base64.urlsafe_b64encode(mac).decode()}"


def follow_id_from_unsubscribe(link_key: bytes, token: str) -> str | None:
    """The follow id a signed unsubscribe token names, or None when it is not one of ours."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != "u1":
        return None
    return parts[1] if hmac.compare_digest(unsubscribe_token(link_key, parts[1]), token) else None


@dataclass(frozen=True)
class CreatedFollow:
    """A new follow as the API answers it once: the management token and, for a webhook, the secret."""

    id: str
    target: Target
    channel: ChannelType
    state: str  # active, or pending (an email awaiting confirmation)
    token: str
    secret: str | None = None

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "target": {"kind": self.target.kind.value, "value": self.target.value},
            "channel": self.channel.value,
            "state": self.state,
            "token": self.token,
        }
        if self.secret is not None:
            out["secret"] = self.secret
        return out
