"""Web Push: a loopback push service receives our message and decrypts it (http_ece) with the subscription's keys."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from pathlib import Path

import http_ece
import httpx
import pytest
from alerts_receiver import Received, receiver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from starlette.responses import Response

from alerts.push import (
    MAX_PAYLOAD_BYTES,
    PUSH_GONE,
    VAPID_EXPIRY_S,
    VAPID_REFRESH_S,
    PushSubscription,
    SubscriptionError,
    application_server_key,
    b64url_decode,
    build_push,
    encrypt,
    load_or_create_vapid,
    parse_subscription,
    send,
    topic_for,
    vapid_headers,
)
from alerts.schedule import Outcome, classify

SUBJECT = "mailto:webmaster@senate.example"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Browser:
    """What a browser holds for one subscription: its P-256 key pair and 16-byte auth secret."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.p256dh = b64url(public)

    def subscription(self, endpoint: str) -> dict[str, object]:
        return {
            "endpoint": endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth)},
        }

    def decrypt(self, body: bytes) -> bytes:
        return http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth, version="aes128gcm")


async def test_loopback_push_service_decrypts_the_alert(tmp_path: Path):
    """The push service gets an aes128gcm body the subscription's keys decrypt, with TTL, Topic, Urgency and VAPID."""
    browser = Browser()
    vapid = load_or_create_vapid(tmp_path / "var" / "vapid_private.pem")
    payload = json.dumps({"title": "กำลังพิจารณาอยู่ขณะนี้: ร่าง พ.ร.บ. ภาษี", "url": "/watch/7?t=3723"}).encode()
    async with receiver() as push_service, httpx.AsyncClient() as client:

        async def created(_: Received) -> Response:
            return Response(status_code=201)

        push_service.handler = created
        sub = parse_subscription(browser.subscription(push_service.url + "/push/abc"), allow_http=True)
        request = build_push(
            sub,
            payload,
            vapid=vapid,
            subject=SUBJECT,
            now=time.time(),
            ttl=3600,
            urgency="high",
            topic=topic_for("bill:42"),
        )
        result = await send(client, request)
    assert classify(result.status, gone=PUSH_GONE) is Outcome.DELIVERED
    (got,) = push_service.received
    assert got.path == "/push/abc"
    assert browser.decrypt(got.body) == payload
    assert got.headers["ttl"] == "3600"
    assert got.headers["urgency"] == "high"
    assert got.headers["topic"] == topic_for("bill:42")
    assert got.headers["content-encoding"] == "aes128gcm"
    # RFC 8292: "vapid t=<JWT>, k=<public key>", the JWT for this push service's origin, signed by our key.
    assert Vapid02.verify(got.headers["authorization"])
    params = dict(p.strip().split("=", 1) for p in got.headers["authorization"].removeprefix("vapid ").split(","))
    assert params["k"] == application_server_key(vapid)
    claims = json.loads(b64url_decode(params["t"].split(".")[1]))
    assert claims["aud"] == push_service.url and claims["sub"] == SUBJECT
    assert 0 < claims["exp"] - time.time() <= 24 * 3600


async def test_expired_subscription_answers_gone():
    """A push service's 404 or 410 means the subscription is gone and must be deleted."""
    browser = Browser()
    vapid = Vapid02()
    vapid.generate_keys()
    async with receiver() as push_service, httpx.AsyncClient() as client:
        for status in (410, 404):

            async def gone(_: Received, status: int = status) -> Response:
                return Response(status_code=status)

            push_service.handler = gone
            sub = parse_subscription(browser.subscription(push_service.url + "/push/old"), allow_http=True)
            result = await send(client, build_push(sub, b"x", vapid=vapid, subject=SUBJECT, now=time.time()))
            assert classify(result.status, gone=PUSH_GONE) is Outcome.GONE


@pytest.mark.fast
def test_topic_is_stable_per_bill_and_fits_rfc_8030():
    """The same bill always has the same 32-character base64url topic; another bill another topic."""
    topic = topic_for("bill:42")
    assert topic == topic_for("bill:42") != topic_for("bill:43")
    assert len(topic) == 32 and all(c.isalnum() or c in "-_" for c in topic)


@pytest.mark.fast
def test_ttl_is_always_set():
    """Unlike pywebpush's default of 0, a message always carries a TTL (a day unless told)."""
    browser = Browser()
    vapid = Vapid02()
    vapid.generate_keys()
    sub = parse_subscription(browser.subscription("https://push.example/abc"))
    request = build_push(sub, b"hello", vapid=vapid, subject=SUBJECT, now=time.time())
    assert request.headers["ttl"] == str(24 * 3600)
    assert "topic" not in request.headers and request.headers["urgency"] == "normal"
    assert browser.decrypt(request.body) == b"hello"


@pytest.mark.fast
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"payload": b"x" * (MAX_PAYLOAD_BYTES + 1)}, "payload"),
        ({"payload": b""}, "payload"),
        ({"ttl": 0}, "ttl"),
        ({"urgency": "urgent"}, "urgency"),
        ({"topic": "bill:42"}, "topic"),
        ({"topic": "a" * 33}, "topic"),
    ],
)
def test_bad_message_options_are_refused(kwargs: dict[str, object], message: str):
    """Over-long or empty payloads, TTL 0, unknown urgencies and malformed topics are refused before sending."""
    vapid = Vapid02()
    vapid.generate_keys()
    sub = parse_subscription(Browser().subscription("https://push.example/abc"))
    args: dict[str, object] = {"payload": b"hello", **kwargs}
    payload = args.pop("payload")
    assert isinstance(payload, bytes)
    with pytest.raises(ValueError, match=message):
        build_push(sub, payload, vapid=vapid, subject=SUBJECT, now=time.time(), **args)  # type: ignore[arg-type]


@pytest.mark.fast
def test_largest_payload_still_encrypts_into_one_record():
    """A payload of exactly MAX_PAYLOAD_BYTES makes a body of at most 4096 bytes that decrypts."""
    browser = Browser()
    vapid = Vapid02()
    vapid.generate_keys()
    sub = parse_subscription(browser.subscription("https://push.example/abc"))
    payload = b"a" * MAX_PAYLOAD_BYTES
    request = build_push(sub, payload, vapid=vapid, subject=SUBJECT, now=time.time())
    assert len(request.body) <= 4096
    assert browser.decrypt(request.body) == payload


@pytest.mark.fast
def test_vapid_key_is_created_once_with_private_permissions(tmp_path: Path):
    """The VAPID key is generated into var/ on first start (mode 0600) and the same key is read back after."""
    path = tmp_path / "var" / "vapid_private.pem"
    first = load_or_create_vapid(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_vapid(path)
    assert application_server_key(first) == application_server_key(again)
    raw = b64url_decode(application_server_key(first))
    assert len(raw) == 65 and raw[0] == 4
    assert [p.name for p in path.parent.iterdir()] == ["vapid_private.pem"]  # no temporary file left


@pytest.mark.fast
@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda s: "not an object", "subscription"),
        (lambda s: {**s, "endpoint": None}, "endpoint"),
        (lambda s: {**s, "endpoint": "http://push.example/abc"}, "endpoint"),  # http only when allowed
        (lambda s: {**s, "endpoint": "ftp://push.example/abc"}, "endpoint"),
        (lambda s: {**s, "keys": "abc"}, "keys"),
        (lambda s: {**s, "keys": {**s["keys"], "p256dh": "AAAA"}}, "keys.p256dh"),
        (lambda s: {**s, "keys": {**s["keys"], "p256dh": b64url(b"\x04" + bytes(64))}}, "keys.p256dh"),  # not a point
        (lambda s: {**s, "keys": {**s["keys"], "p256dh": "!!!"}}, "keys.p256dh"),
        (lambda s: {**s, "keys": {**s["keys"], "auth": b64url(bytes(8))}}, "keys.auth"),
        (lambda s: {**s, "keys": {"p256dh": s["keys"]["p256dh"]}}, "keys.auth"),
    ],
)
def test_malformed_subscriptions_name_the_field(mutate, field: str):
    """A subscription with a bad endpoint or keys is refused with the offending field named."""
    good = Browser().subscription("https://push.example/abc")
    assert isinstance(parse_subscription(good), PushSubscription)
    with pytest.raises(SubscriptionError) as err:
        parse_subscription(mutate(good))
    assert err.value.field == field


def jwt_claims(headers: dict[str, str]) -> dict[str, object]:
    params = dict(p.strip().split("=", 1) for p in headers["Authorization"].removeprefix("vapid ").split(","))
    return dict(json.loads(b64url_decode(params["t"].split(".")[1])))


@pytest.mark.fast
def test_vapid_token_is_reused_per_push_service_until_near_its_expiry():
    """RFC 8292 lets a token serve until its exp: one signature per push service origin, a fresh one an hour before
    exp, another origin gets its own audience; every token verifies."""
    vapid = Vapid02()
    vapid.generate_keys()
    now = 1_800_000_000.0
    sub = PushSubscription("https://fcm.example/send/a", Browser().p256dh, b64url(os.urandom(16)))
    other = PushSubscription("https://push.other.example/b", Browser().p256dh, b64url(os.urandom(16)))
    first = build_push(sub, b"{}", vapid=vapid, subject=SUBJECT, now=now)
    again = build_push(sub, b"{}", vapid=vapid, subject=SUBJECT, now=now + VAPID_EXPIRY_S - VAPID_REFRESH_S - 1)
    assert again.headers["Authorization"] == first.headers["Authorization"]
    later = build_push(sub, b"{}", vapid=vapid, subject=SUBJECT, now=now + VAPID_EXPIRY_S - VAPID_REFRESH_S)
    assert later.headers["Authorization"] != first.headers["Authorization"]
    assert jwt_claims(later.headers)["exp"] == int(now) + 2 * VAPID_EXPIRY_S - VAPID_REFRESH_S
    elsewhere = build_push(other, b"{}", vapid=vapid, subject=SUBJECT, now=now)
    assert jwt_claims(elsewhere.headers)["aud"] == "https://push.other.example"
    assert jwt_claims(first.headers)["aud"] == "https://fcm.example"
    for request in (first, later, elsewhere):
        assert Vapid02.verify(request.headers["Authorization"])
    # A clock that went back never gets a token dated in its future.
    assert vapid_headers(vapid, "https://fcm.example", SUBJECT, now - 10) != first.headers


@pytest.mark.fast
def test_each_message_has_its_own_key_and_salt_and_decrypts():
    """RFC 8291: a fresh ephemeral key and salt per message, so two encryptions of one payload differ, and both
    decrypt with the browser's keys (http_ece)."""
    browser = Browser()
    a = encrypt("ร่าง พ.ร.บ.".encode(), browser.p256dh, b64url(browser.auth))
    b = encrypt("ร่าง พ.ร.บ.".encode(), browser.p256dh, b64url(browser.auth))
    assert a[:16] != b[:16] and a[21:86] != b[21:86]  # salt, then the sender's public key
    assert browser.decrypt(a) == browser.decrypt(b) == "ร่าง พ.ร.บ.".encode()
