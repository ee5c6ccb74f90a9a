"""Web Push requests (RFC 8030, payload encryption RFC 8291, VAPID RFC 8292) (``cryptography``, ``py_vapid``).

A browser that follows a bill hands us a ``PushSubscription`` (an endpoint URL at its push service and two keys).
To alert it we POST to that endpoint a body encrypted for those keys (``aes128gcm``), signed for our VAPID key,
with headers that matter for a phone that is offline:

* ``TTL`` — how long the push service keeps the message for an offline phone. ``pywebpush``'s default is 0
  ("deliver now or drop"), which loses alerts for every phone that is asleep; we always set it (a day by default,
  less for "being debated now", which is stale once the debate is over).
* ``Topic`` — messages with the same topic replace one another while undelivered (RFC 8030 sec. 5.4): derived from
  the bill (or keyword, speaker…), so a phone back online gets the latest alert about each bill, not a backlog.
* ``Urgency`` — ``high`` wakes the phone ("being debated now"), ``normal`` for most, ``low`` for digests.

Building is sans-I/O (``build_push``); ``send`` is the thin driver. The payload is encrypted here with
``cryptography`` directly (``encrypt``: a fresh ECDH key and salt per message, as RFC 8291 requires; about a third
of ``pywebpush``'s cost, which rebuilds its objects for every message; ``prepare`` does the payload-independent part
ahead of time and ``seal`` the rest, so ``alerts.push_keys`` can keep one such record per subscription ready and a
burst only seals), and the VAPID token is signed once per push
service origin and reused until an hour before its ``exp`` (RFC 8292 sec. 2 allows reuse until then; ``exp`` is
12 h ahead), not signed for every message. The push service's answer is classified by
``alerts.schedule.classify(status, gone=PUSH_GONE)``: 404/410 mean the subscription has expired or been revoked and
must be deleted (RFC 8030 sec. 7.3); 429 and 5xx are retried honouring ``Retry-After``.

VAPID keys: one P-256 key pair per deployment, generated on first start and kept in ``var/vapid_private.pem``
(mode 0600). The browser needs the public half (``application_server_key``) to subscribe; changing it orphans every
subscription, so the file must be kept across deploys (it is in ``var/`` with the archive).

How it is meant to be wired: ``server.py`` calls ``load_or_create_vapid(Path("var/vapid_private.pem"))`` at start and
serves ``application_server_key(...)`` to the viewer; the follow API runs ``parse_subscription(body, allow_http=...)``
then ``url_policy.check_url(sub.endpoint, ...)`` (422 naming the field on error); the delivery worker builds each
attempt with ``build_push`` (``topic=topic_for(f"bill:{id}")``) and sends it with ``send``; on ``Outcome.GONE`` it
deletes the subscription.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import hmac
import os
import re
import struct
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from py_vapid import Vapid02

from alerts.schedule import AttemptResult
from alerts.sender import DEFAULT_TIMEOUT_S, HttpSender, post_once
from alerts.url_policy import UrlRefused, parse_url

Urgency = Literal["very-low", "low", "normal", "high"]
URGENCIES: tuple[str, ...] = ("very-low", "low", "normal", "high")
PUSH_GONE = frozenset({404, 410})
DEFAULT_TTL_S = 24 * 3600
MAX_TTL_S = 28 * 24 * 3600  # push services cap TTL at about four weeks anyway
# One aes128gcm record of at most 4096 bytes (RFC 8291 sec. 4): 86 header bytes, a 16-byte tag and the padding
# delimiter leave 3993 bytes for the message itself.
MAX_PAYLOAD_BYTES = 4096 - 86 - 16 - 1
VAPID_EXPIRY_S = 12 * 3600  # RFC 8292 sec. 2: at most 24 h
VAPID_REFRESH_S = 3600  # a cached token is replaced this long before its exp, so none goes out nearly stale
RECORD_SIZE = 4096
TOPIC_LENGTH = 32  # RFC 8030 sec. 5.4: at most 32 characters of the URL-safe base64 alphabet


class SubscriptionError(ValueError):
    """A push subscription that cannot be used; ``field`` names the offending part (e.g. ``keys.p256dh``)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class PushSubscription:
    """The parts of a browser's ``PushSubscription.toJSON()`` that matter: endpoint and its two keys (base64url)."""

    endpoint: str
    p256dh: str
    auth: str

    def info(self) -> dict[str, Any]:
        """The ``subscription_info`` shape ``pywebpush`` takes."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url, as browsers write push keys."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_subscription(value: object, *, allow_http: bool = False) -> PushSubscription:
    """Check a subscription as the browser sends it, or raise ``SubscriptionError`` naming the field.

    The endpoint must be an https URL (http only when ``allow_http``, for a loopback push service in tests);
    ``keys.p256dh`` a P-256 public point (65 bytes, uncompressed) and ``keys.auth`` 16 bytes. Its addresses are not
    checked here: run ``url_policy.check_url`` on the endpoint too.
    """
    if not isinstance(value, dict):
        raise SubscriptionError("subscription must be an object", "subscription")
    endpoint = value.get("endpoint")
    try:
        parse_url(endpoint, field="endpoint", schemes=("https", "http") if allow_http else ("https",))
    except UrlRefused as exc:
        raise SubscriptionError(str(exc), "endpoint") from None
    keys = value.get("keys")
    if not isinstance(keys, dict):
        raise SubscriptionError("keys must be an object with p256dh and auth", "keys")
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    for name, key, size in (("p256dh", p256dh, 65), ("auth", auth, 16)):
        if not isinstance(key, str) or len(key) > 200:
            raise SubscriptionError(f"keys.{name} must be a base64url string", f"keys.{name}")
        try:
            raw = b64url_decode(key)
        except (binascii.Error, ValueError):
            raise SubscriptionError(f"keys.{name} is not base64url", f"keys.{name}") from None
        if len(raw) != size:
            raise SubscriptionError(f"keys.{name} must be {size} bytes, not {len(raw)}", f"keys.{name}")
    assert isinstance(endpoint, str) and isinstance(p256dh, str) and isinstance(auth, str)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(p256dh))
    except ValueError:
        raise SubscriptionError("keys.p256dh is not a P-256 public key", "keys.p256dh") from None
    return PushSubscription(endpoint, p256dh, auth)


@functools.lru_cache(maxsize=1024)  # one subject per event: computed once, not once per subscription
def topic_for(key: str) -> str:
    """The ``Topic`` for alerts about ``key`` (e.g. ``"bill:42"``): 32 base64url characters of its SHA-256, so
    the same bill always gets the same topic and nothing about it is readable by the push service."""
    return b64url_encode(hashlib.sha256(key.encode()).digest())[:TOPIC_LENGTH]


def load_or_create_vapid(path: Path) -> Vapid02:
    """The deployment's VAPID key from ``path`` (PEM), generated and saved there (mode 0600) on first use.

    Two processes starting together agree: the key is written to a temporary file and hard-linked into place,
    which fails for the second, who then reads the first one's key.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = Vapid02()
        fresh.generate_keys()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(fresh.private_pem())
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return Vapid02.from_pem(path.read_bytes())


def application_server_key(vapid: Vapid02) -> str:
    """The public key the browser passes to ``pushManager.subscribe`` (base64url of the uncompressed point)."""
    raw = vapid.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64url_encode(raw)


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA-256 (RFC 5869) for one block of output (``length`` ≤ 32), which is all RFC 8291 needs."""
    prk = hmac.digest(salt, ikm, "sha256")
    return hmac.digest(prk, info + b"\x01", "sha256")[:length]


@dataclass(frozen=True, slots=True, repr=False)
class Prepared:
    """Everything of one RFC 8291 message that does not depend on its payload, made ahead of time (``prepare``):
    the ``aes128gcm`` header (salt, record size, the ephemeral public key) and the content-encryption key and nonce
    derived from them. Good for exactly ONE message: ``seal`` it once and drop it (``alerts.push_keys`` pops it from
    its pool before use, so a retry never sees it again). ``repr=False``: a key must never reach a log."""

    header: bytes  # salt (16) || rs (4) || idlen (1) || as_public (65): RFC 8188 sec. 2.1
    cek: bytes
    nonce: bytes


def prepare(p256dh: str, auth: str, *, salt: bytes | None = None) -> Prepared:
    """The payload-independent part of ``encrypt`` for a subscription's keys: a NEW ephemeral P-256 key pair, its
    ECDH secret with ``p256dh``, the IKM (RFC 8291 sec. 3.3-3.4), a fresh random salt and from it the CEK and nonce
    (RFC 8188 sec. 2.2-2.3). ``ValueError`` for bad keys.

    Why doing this before the message exists is allowed: RFC 8291 (sec. 2, 3.1) asks that the application server
    generate an ephemeral key pair and a random salt for each message, and lets it discard the pair once the message
    is encrypted; it does not say when the pair must be made. Each ``Prepared`` still belongs to one message only
    (the pool in ``alerts.push_keys`` hands it out once and forgets it), so every message keeps its own key pair and
    salt; only the moment of generation moves to idle time. The ephemeral private key is dropped here at once: it
    is needed for nothing but the ECDH secret."""
    ua_public = b64url_decode(p256dh)
    auth_secret = b64url_decode(auth)
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    as_public = ephemeral.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    shared = ephemeral.exchange(ec.ECDH(), peer)
    ikm = _hkdf(auth_secret, shared, b"WebPush: info\x00" + ua_public + as_public, 32)
    salt = salt if salt is not None else os.urandom(16)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    header = salt + struct.pack("!IB", RECORD_SIZE, len(as_public)) + as_public
    return Prepared(header, cek, nonce)


def seal(payload: bytes, prepared: Prepared) -> bytes:
    """``payload`` encrypted with a ``Prepared`` record: the ``aes128gcm`` body (RFC 8188) of one record; all that
    is left to do at send time (AES-128-GCM and the header in front, a few microseconds)."""
    record = AESGCM(prepared.cek).encrypt(prepared.nonce, payload + b"\x02", None)  # 0x02: the last record, no pad
    return prepared.header + record


def encrypt(payload: bytes, p256dh: str, auth: str, *, salt: bytes | None = None) -> bytes:
    """``payload`` encrypted for a subscription's keys as RFC 8291 says: the ``aes128gcm`` body (RFC 8188) of one
    record, with a fresh ephemeral P-256 key and a fresh salt for every message. ``ValueError`` for bad keys.
    The same bytes as ``seal(payload, prepare(...))``, which it is: the pooled path differs only in when
    ``prepare`` ran."""
    return seal(payload, prepare(p256dh, auth, salt=salt))


# A signed VAPID token per (key, push service origin, subject): (issued at, exp, the Authorization header).
_tokens: weakref.WeakKeyDictionary[Vapid02, dict[tuple[str, str], tuple[float, int, dict[str, str]]]] = (
    weakref.WeakKeyDictionary()
)


def vapid_headers(vapid: Vapid02, audience: str, subject: str, now: float) -> dict[str, str]:
    """``Authorization: vapid t=<JWT>, k=<key>`` for ``audience`` (the push service's origin), reused until
    ``VAPID_REFRESH_S`` before its ``exp`` (module docstring)."""
    cache = _tokens.setdefault(vapid, {})
    hit = cache.get((audience, subject))
    if hit is not None and hit[0] <= now < hit[1] - VAPID_REFRESH_S:
        return hit[2]
    exp = int(now) + VAPID_EXPIRY_S
    headers = dict(vapid.sign({"sub": subject, "aud": audience, "exp": exp}))
    cache[(audience, subject)] = (now, exp, headers)
    return headers


@dataclass(frozen=True)
class PushRequest:
    url: str
    headers: dict[str, str]
    body: bytes


def build_push(
    subscription: PushSubscription,
    payload: bytes,
    *,
    vapid: Vapid02,
    subject: str,
    now: float,
    ttl: int = DEFAULT_TTL_S,
    urgency: Urgency = "normal",
    topic: str | None = None,
    prepared: Prepared | None = None,
) -> PushRequest:
    """One encrypted, VAPID-signed push message for ``subscription``.

    ``subject`` is the operator's contact (``mailto:`` or ``https:``) that push services may use; ``now`` (Unix
    seconds) dates the VAPID token. ``prepared``: a record made ahead for this subscription's keys and never used
    before (``alerts.push_keys.PreparedPool.take``), which makes encryption nearly free; without it the message is
    encrypted in full (``encrypt``); either way the body has the same format. Raises ``ValueError`` for a payload
    over ``MAX_PAYLOAD_BYTES``, a TTL outside 1 s..28 days, an unknown urgency or a malformed topic (a ``prepared``
    record given along is then spent all the same: it is never used again).
    """
    if not payload or len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"a push payload holds 1 to {MAX_PAYLOAD_BYTES} bytes, not {len(payload)}")
    if not 1 <= ttl <= MAX_TTL_S:
        raise ValueError(f"ttl must be 1 to {MAX_TTL_S} seconds, not {ttl}")
    if urgency not in URGENCIES:
        raise ValueError(f"urgency must be one of {', '.join(URGENCIES)}")
    if topic is not None and not (0 < len(topic) <= TOPIC_LENGTH and b64url_safe(topic)):
        raise ValueError("a topic is 1 to 32 characters of the base64url alphabet")
    if prepared is not None:
        body = seal(payload, prepared)
    else:
        body = encrypt(payload, subscription.p256dh, subscription.auth)
    parts = urlsplit(subscription.endpoint)
    headers = {
        **vapid_headers(vapid, f"{parts.scheme}://{parts.netloc}", subject, now),  # vapid t=<JWT>, k=<key>
        "content-encoding": "aes128gcm",
        "content-type": "application/octet-stream",
        "ttl": str(ttl),
        "urgency": urgency,
    }
    if topic is not None:
        headers["topic"] = topic
    return PushRequest(subscription.endpoint, headers, body)


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_safe(text: str) -> bool:
    return _B64URL.fullmatch(text) is not None


async def send(
    client: httpx.AsyncClient | HttpSender, request: PushRequest, *, timeout: float = DEFAULT_TIMEOUT_S
) -> AttemptResult:
    """POST one push message (``alerts.sender.post_once``: bounded, never raises, no redirects)."""
    return await post_once(client, request.url, request.headers, request.body, timeout=timeout)
