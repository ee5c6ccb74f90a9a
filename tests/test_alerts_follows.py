"""Follows: request validation naming the field, tokens, and the store's follow lifecycle and bounds."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from alerts.follows import (
    MAX_KEYWORD_CHARS,
    FollowError,
    FollowRequest,
    Target,
    TargetKind,
    WebhookChannel,
    follow_id_from_unsubscribe,
    parse_follow_request,
    parse_target,
    token_hash,
    unsubscribe_token,
)
from alerts.store_sqlite import MAX_PENDING_PER_ADDRESS, AlertStore


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def p256dh() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return b64url(key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))


async def public_resolver(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


async def field_of(body: object, **kw: object) -> str:
    with pytest.raises(FollowError) as err:
        await parse_follow_request(body, resolver=public_resolver, **kw)  # type: ignore[arg-type]
    return err.value.field


BILL = {"kind": "bill", "value": "42"}


@pytest.mark.fast
@pytest.mark.parametrize(
    ("target", "field"),
    [
        (None, "target"),
        ({"kind": "party", "value": "x"}, "target.kind"),
        ({"kind": "bill", "value": ""}, "target.value"),
        ({"kind": "bill", "value": "42; drop"}, "target.value"),
        ({"kind": "keyword", "value": "ภาษี" * 40}, "target.value"),
        ({"kind": "keyword", "value": '"unbalanced'}, "target.value"),
        ({"kind": "keyword", "value": "-only"}, "target.value"),
        ({"kind": "sittings", "value": "house"}, "target.value"),
        ({"kind": "topic", "value": 7}, "target.value"),
    ],
)
async def test_bad_targets_are_refused_naming_the_field(target: object, field: str):
    """Unknown kinds, empty or malformed ids, over-long or unrunnable keywords, unknown chambers: an error naming
    the field."""
    channel = {"type": "webhook", "url": "https://hooks.example/x"}
    assert await field_of({"target": target, "channel": channel}) == field


@pytest.mark.fast
@pytest.mark.parametrize(
    ("channel", "field"),
    [
        (None, "channel"),
        ({"type": "fax"}, "channel.type"),
        ({"type": "webhook", "url": "ftp://hooks.example/x"}, "channel.url"),
        ({"type": "webhook", "url": "http://127.0.0.1:8080/x"}, "channel.url"),
        ({"type": "webhook", "url": "https://user:pw@hooks.example/"}, "channel.url"),
        ({"type": "push", "subscription": "x"}, "channel.subscription"),
        (
            {
                "type": "push",
                "subscription": {"endpoint": "http://push.example/1", "keys": {"p256dh": p256dh(), "auth": "A" * 22}},
            },
            "channel.subscription.endpoint",
        ),
        ({"type": "push", "subscription": {"endpoint": "https://push.example/1"}}, "channel.subscription.keys"),
        (
            {
                "type": "push",
                "subscription": {"endpoint": "https://push.example/1", "keys": {"p256dh": "AAAA", "auth": "x"}},
            },
            "channel.subscription.keys.p256dh",
        ),
        ({"type": "email", "email": "not an address"}, "channel.email"),
        ({"type": "email", "email": "a@b.example", "digest": "hourly"}, "channel.digest"),
    ],
)
async def test_bad_channels_are_refused_naming_the_field(channel: object, field: str):
    """Non-http(s) or private webhook URLs, malformed push subscriptions (https endpoint, key lengths), bad email
    addresses and digests: an error naming the field."""
    assert await field_of({"target": BILL, "channel": channel}) == field


@pytest.mark.fast
async def test_push_auth_key_must_be_sixteen_bytes():
    """A p256dh of the right shape with a 12-byte auth secret is refused naming keys.auth."""
    sub = {"endpoint": "https://push.example/1", "keys": {"p256dh": p256dh(), "auth": b64url(os.urandom(12))}}
    assert await field_of({"target": BILL, "channel": {"type": "push", "subscription": sub}}) == (
        "channel.subscription.keys.auth"
    )


@pytest.mark.fast
async def test_valid_requests_parse():
    """A keyword, a chamber's sittings, a push subscription and an email with a daily digest are accepted."""
    sub = {"endpoint": "https://push.example/1", "keys": {"p256dh": p256dh(), "auth": b64url(os.urandom(16))}}
    req = await parse_follow_request(
        {"target": {"kind": "keyword", "value": "งบประมาณ"}, "channel": {"type": "push", "subscription": sub}},
        resolver=public_resolver,
    )
    assert req.target.key == "keyword:งบประมาณ" and req.channel_type == "push"
    req = await parse_follow_request(
        {
            "target": {"kind": "sittings", "value": "senate"},
            "channel": {"type": "email", "email": "A@Senate.Example", "digest": "daily"},
        },
        resolver=public_resolver,
    )
    assert req.channel.address == "A@senate.example"  # type: ignore[union-attr]
    assert parse_target({"kind": "keyword", "value": "x" * MAX_KEYWORD_CHARS}).kind is TargetKind.KEYWORD


@pytest.mark.fast
def test_signed_unsubscribe_tokens_verify_only_with_the_key():
    """An email's unsubscribe token names its follow under the link key and is refused when altered."""
    token = unsubscribe_token(b"k" * 32, "fol_1")
    assert follow_id_from_unsubscribe(b"k" * 32, token) == "fol_1"
    assert follow_id_from_unsubscribe(b"j" * 32, token) is None
    assert follow_id_from_unsubscribe(b"k" * 32, token.replace("fol_1", "fol_2")) is None


async def test_store_keeps_only_token_hashes_and_unsubscribes(tmp_path: Path):
    """The management token is shown once, stored hashed, and unsubscribes the follow; a duplicate follow is 409."""
    store = AlertStore(tmp_path / "alerts.sqlite3")
    await store.open()
    try:
        req = FollowRequest(Target(TargetKind.BILL, "42"), WebhookChannel("https://hooks.example/x"))
        created = await store.create_follow(req, now=1000.0)
        assert created.secret is not None and created.secret.startswith("whsec_")
        assert created.public()["token"] == created.token
        raw = (tmp_path / "alerts.sqlite3").read_bytes() + (tmp_path / "alerts.sqlite3-wal").read_bytes()
        assert created.token.encode() not in raw and token_hash(created.token).encode() in raw
        assert await store.unsubscribe("mt_wrong") is None
        assert await store.unsubscribe(created.token) == created.id
        assert await store.follow_state(created.id) == "unsubscribed"
        assert await store.follows_for(["bill:42"], keywords=False) == []
    finally:
        await store.close()


async def test_email_follows_are_bounded_while_unconfirmed(tmp_path: Path):
    """An address gets at most a few unconfirmed follows (each sends a confirmation); then a 429 naming the field."""
    from alerts.follows import EmailChannel

    store = AlertStore(tmp_path / "alerts.sqlite3")
    await store.open()
    try:
        for i in range(MAX_PENDING_PER_ADDRESS):
            await store.create_follow(
                FollowRequest(Target(TargetKind.BILL, str(i)), EmailChannel("a@b.example")), now=1.0
            )
        with pytest.raises(FollowError) as err:
            await store.create_follow(FollowRequest(Target(TargetKind.BILL, "x"), EmailChannel("a@b.example")), now=1.0)
        assert (err.value.status, err.value.field) == (429, "channel.email")
        with pytest.raises(FollowError) as err:
            await store.create_follow(FollowRequest(Target(TargetKind.BILL, "0"), EmailChannel("a@b.example")), now=1.0)
        assert err.value.status in (409, 429)
    finally:
        await store.close()
