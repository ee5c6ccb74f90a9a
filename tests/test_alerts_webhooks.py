"""Webhooks: Standard Webhooks signatures checked by the real `standardwebhooks` library on a loopback receiver,
the URL policy, and the retry schedule."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import random
import socket
import time
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
import uvicorn
from alerts_receiver import Received, receiver
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.responses import Response

from alerts.schedule import (
    DISABLE_AFTER_FAILURES,
    DISABLE_AFTER_S,
    MAX_ATTEMPTS,
    RETRY_SCHEDULE_S,
    AttemptResult,
    DeliveryState,
    EndpointHealth,
    Outcome,
    after_attempt,
    classify,
    parse_retry_after,
    retry_delay,
)
from alerts.sender import MAX_DRAIN_BYTES, HttpSender
from alerts.url_policy import UrlRefused, allow_private_from_env, check_url, parse_url, refusal_reason
from alerts.webhooks import (
    BodyTemplate,
    SecretError,
    build_request,
    decode_secret,
    event_body,
    new_message_id,
    new_secret,
    post,
    sign,
)

CLIENTS = pytest.mark.parametrize("kind", ["httpx", "lean"])


def http_client(kind: str) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient | HttpSender]:
    """Either client ``post`` takes: httpx (other callers) or the workers' ``HttpSender``."""
    return httpx.AsyncClient() if kind == "httpx" else contextlib.aclosing(HttpSender())


BODY = event_body(
    "bill.stage_changed",
    {"bill": "42", "title": "ร่างพระราชบัญญัติภาษีสรรพสามิต", "stage": "senate_committee"},
    datetime(2024, 9, 1, 3, 0, tzinfo=UTC),
)


# ---- signatures ----------------------------------------------------------------------------------------------------


@pytest.mark.fast
def test_signature_matches_the_specifications_example():
    """Our signature of the Standard Webhooks example message is the one the specification (and library) gives."""
    # The example from the standard-webhooks repository's test suite.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, ts, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(secret, msg_id, ts, body) == expected
    assert Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), body.decode()) == expected


@CLIENTS
async def test_loopback_receiver_verifies_with_standardwebhooks(kind: str):
    """A signed POST arrives at a real receiver and verifies with the standardwebhooks library, Thai intact."""
    secret = new_secret()
    async with receiver() as rx, http_client(kind) as client:
        request = build_request(
            rx.url + "/hook", BODY, msg_id=new_message_id(), timestamp=int(time.time()), secrets=[secret]
        )
        result = await post(client, request)
    assert result == AttemptResult(204, None)
    (got,) = rx.received
    payload = Webhook(secret).verify(got.body, got.headers)
    assert payload["type"] == "bill.stage_changed"
    assert payload["data"]["title"] == "ร่างพระราชบัญญัติภาษีสรรพสามิต"
    assert payload["timestamp"] == "2024-09-01T03:00:00Z"
    assert got.headers["webhook-id"] == request.headers["webhook-id"]
    assert got.headers["content-type"] == "application/json"


@pytest.mark.fast
@pytest.mark.parametrize(
    ("follow", "event"),
    [("f_0123abcd", "vote:1"), ('f_"quoted"', "bill/42/change/17"), ("ฟ_ไทย", "caption:\u2028\n")],
)
def test_a_body_template_renders_the_same_bytes_as_event_body(follow: str, event: str):
    """The body built once per event and finished per follow (``BodyTemplate``) is byte for byte the body
    ``event_body`` makes with the follow's and event's ids as the last keys of ``data``; ids that need escaping
    included. A template without data of its own, or with the ids' keys in it, is refused."""
    data = {"kind": "bill.vote", "title": "ผลการลงมติ: ร่าง พ.ร.บ. ภาษีสรรพสามิต", "url": "https://app.example/watch/s7"}
    at = datetime(2024, 9, 1, 3, 0, tzinfo=UTC)
    template = BodyTemplate("bill.vote", data, at)
    expected = event_body("bill.vote", {**data, "follow": follow, "event": event}, at)
    assert template.render(follow, event) == expected
    assert json.loads(template.render(follow, event))["data"]["follow"] == follow
    with pytest.raises(ValueError):
        BodyTemplate("bill.vote", {}, at)
    with pytest.raises(ValueError):
        BodyTemplate("bill.vote", {**data, "event": "x"}, at)


@pytest.mark.fast
def test_rotation_signs_with_every_current_secret():
    """During a rotation the message carries one signature per secret and verifies with either, not a third."""
    old, new, other = new_secret(), new_secret(), new_secret()
    request = build_request("https://x.example/", BODY, msg_id="msg_1", timestamp=int(time.time()), secrets=[old, new])
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(request.body, request.headers)["data"]["bill"] == "42"
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(request.body, request.headers)


@pytest.mark.fast
def test_tampered_body_or_stale_timestamp_fails_verification():
    """A changed body, or a timestamp older than the receivers' 5-minute tolerance, does not verify."""
    secret = new_secret()
    request = build_request("https://x.example/", BODY, msg_id="msg_2", timestamp=int(time.time()), secrets=[secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"42", b"43"), request.headers)
    stale = build_request(
        "https://x.example/", BODY, msg_id="msg_2", timestamp=int(time.time()) - 600, secrets=[secret]
    )
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(stale.body, stale.headers)


@pytest.mark.fast
def test_secrets_are_whsec_base64_of_enough_bytes():
    """New secrets hold 32 bytes; secrets without the prefix, not base64, or too short are refused."""
    assert len(decode_secret(new_secret())) == 32
    for bad in (
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"short").decode(),
    ):
        with pytest.raises(SecretError):
            decode_secret(bad)
    with pytest.raises(SecretError):
        build_request("https://x.example/", BODY, msg_id="m", timestamp=1, secrets=[])


# ---- the signed POST -----------------------------------------------------------------------------------------------


@CLIENTS
async def test_post_reports_status_and_retry_after_and_does_not_follow_redirects(kind: str):
    """503 with Retry-After comes back as such; a 302 is a failure and its target is never requested."""
    answers = iter(
        [
            Response(status_code=503, headers={"Retry-After": "120"}),
            Response(status_code=302, headers={"Location": "/elsewhere"}),
            Response(status_code=410),
        ]
    )

    async def handler(_: Received) -> Response:
        return next(answers)

    async with receiver() as rx, http_client(kind) as client:
        rx.handler = handler
        request = build_request(
            rx.url + "/hook", BODY, msg_id="msg_3", timestamp=int(time.time()), secrets=[new_secret()]
        )
        results = [await post(client, request) for _ in range(3)]
    assert [(r.status, r.retry_after) for r in results] == [(503, "120"), (302, None), (410, None)]
    assert [classify(r.status) for r in results] == [Outcome.RETRY, Outcome.RETRY, Outcome.GONE]
    assert [g.path for g in rx.received] == ["/hook"] * 3


@CLIENTS
async def test_hanging_receiver_costs_at_most_the_timeout(kind: str):
    """A receiver that never answers gives a failed attempt (no status) once the timeout passes, not a hang."""
    release = asyncio.Event()

    async def hang(_: Received) -> Response:
        await release.wait()
        return Response(status_code=204)

    async with receiver() as rx, http_client(kind) as client:
        rx.handler = hang
        request = build_request(
            rx.url + "/hook", BODY, msg_id="msg_4", timestamp=int(time.time()), secrets=[new_secret()]
        )
        result = await post(client, request, timeout=0.3)
        release.set()
    assert result.status is None and result.error is not None and "no answer" in result.error


@CLIENTS
async def test_refused_connection_is_a_failed_attempt(kind: str):
    """Nothing listening: the attempt fails with no status and a reason, and does not raise."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the POST: nothing listens there
    async with http_client(kind) as client:
        request = build_request(f"http://127.0.0.1:{port}/", BODY, msg_id="m", timestamp=1, secrets=[new_secret()])
        result = await post(client, request, timeout=5)
    assert result.status is None and result.error


@contextlib.asynccontextmanager
async def raw_receiver(answer, keep_alive_s: float = 5.0):
    """uvicorn with a bare ASGI app: ``answer(path)`` gives (status, headers, body); records each request's client
    port, so a test can tell which requests shared a TCP connection."""
    ports: list[int] = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        ports.append(scope["client"][1])
        status, headers, body = answer(scope["path"])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    config.timeout_keep_alive = keep_alive_s
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", ports
    finally:
        server.should_exit = True
        await task


async def test_lean_sender_reuses_a_connection_and_opens_another_once_the_receiver_closes_it():
    """Keep-alive: three deliveries share one TCP connection; after the receiver closes the idle connection the next
    delivery still arrives, on a new one."""
    async with raw_receiver(lambda path: (204, [], b""), keep_alive_s=0.3) as (url, ports):
        async with contextlib.aclosing(HttpSender()) as sender:
            results = [await sender.post(url + "/hook", {"x-n": str(i)}, BODY, timeout=5) for i in range(3)]
            await asyncio.sleep(0.8)  # the receiver's keep-alive ends: it closes the connection
            results.append(await sender.post(url + "/hook", {}, BODY, timeout=5))
    assert [r.status for r in results] == [204] * 4
    assert ports[0] == ports[1] == ports[2] != ports[3]


async def test_lean_sender_drops_a_connection_after_a_long_body_or_connection_close():
    """A body longer than the drain limit is not read to its end (the status still counts) and its connection is
    not reused; neither is one the receiver marks ``Connection: close``."""
    answers = {
        "/long": (200, [], b"x" * (MAX_DRAIN_BYTES * 4)),
        "/close": (503, [(b"connection", b"close"), (b"retry-after", b"30")], b"busy"),
        "/ok": (201, [], b"{}"),
    }
    async with raw_receiver(lambda path: answers[path]) as (url, ports):
        async with contextlib.aclosing(HttpSender()) as sender:
            long = await sender.post(url + "/long", {}, BODY, timeout=5)
            ok1 = await sender.post(url + "/ok", {}, BODY, timeout=5)
            closed = await sender.post(url + "/close", {}, BODY, timeout=5)
            ok2 = await sender.post(url + "/ok", {}, BODY, timeout=5)
    assert (long.status, ok1.status, ok2.status) == (200, 201, 201)
    assert (closed.status, closed.retry_after) == (503, "30")
    assert len(set(ports)) == 3 and ports[0] != ports[1] and ports[1] == ports[2] != ports[3]


@pytest.mark.fast
async def test_lean_sender_refuses_header_injection_without_sending():
    """A header value with a line break never reaches the wire: the attempt fails with a reason."""
    async with contextlib.aclosing(HttpSender()) as sender:
        result = await sender.post("http://127.0.0.1:9/", {"x-a": "1\r\nx-b: 2"}, b"{}", timeout=1)
    assert result.status is None and result.error is not None and "header" in result.error


# ---- URL policy ----------------------------------------------------------------------------------------------------


@pytest.mark.fast
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("https://user:pw@example.com/hook", "user name or password"),
        ("https:///hook", "no host"),
        ("https://example.com:99999/", "invalid port"),
        ("https://exa mple.com/", "spaces"),
        ("https://example.com/" + "a" * 2100, "at most 2048"),
        (42, "non-empty string"),
    ],
)
def test_malformed_urls_are_refused(url: object, reason: str):
    """Non-http(s) URLs, credentials, missing hosts, bad ports, spaces and over-long URLs are refused."""
    with pytest.raises(UrlRefused, match=reason) as err:
        parse_url(url)
    assert err.value.field == "url"


@pytest.mark.fast
@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.1.10", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "not globally routable"),
    ],
)
async def test_internal_addresses_are_refused(address: str, reason: str):
    """Loopback, private, link-local, multicast, unspecified and shared addresses are refused, literal or resolved."""
    assert refusal_reason(ipaddress.ip_address(address)) == reason
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(UrlRefused, match=reason):
        await check_url(f"https://{host}/hook")

    async def resolver(_host: str, _port: int) -> list[str]:
        return ["93.184.215.14", address]  # one public address is not enough: every one must be

    with pytest.raises(UrlRefused, match=reason):
        await check_url("https://hooks.example/", resolver=resolver)


async def test_localhost_is_refused_after_real_resolution():
    """``localhost`` resolves (through the system resolver) to loopback and is refused."""
    with pytest.raises(UrlRefused, match="loopback"):
        await check_url("http://localhost:8080/hook")


@pytest.mark.fast
async def test_public_hosts_pass_and_allow_private_lifts_the_address_check():
    """A host resolving only to public addresses passes; WEBHOOK_ALLOW_PRIVATE lets loopback through."""

    async def public(_host: str, _port: int) -> list[str]:
        return ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]

    assert (await check_url("https://hooks.example/x", resolver=public)).hostname == "hooks.example"
    assert (await check_url("http://127.0.0.1:9/hook", allow_private=True)).port == 9
    with pytest.raises(UrlRefused):  # the scheme check stays
        await check_url("file:///etc/passwd", allow_private=True)
    assert allow_private_from_env({"WEBHOOK_ALLOW_PRIVATE": "1"})
    assert allow_private_from_env({"WEBHOOK_ALLOW_PRIVATE": "true"})
    assert not allow_private_from_env({"WEBHOOK_ALLOW_PRIVATE": "0"}) and not allow_private_from_env({})


@pytest.mark.fast
async def test_unresolvable_host_is_refused():
    """A host name that does not resolve is refused with a message naming it."""

    async def fails(host: str, _port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(UrlRefused, match="does not resolve"):
        await check_url("https://nowhere.example/", resolver=fails)


# ---- retry schedule ------------------------------------------------------------------------------------------------


@pytest.mark.fast
def test_retry_schedule_is_the_standard_one_with_jitter():
    """Waits follow 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, each within ±20 %, then none."""
    assert RETRY_SCHEDULE_S == (5, 300, 1800, 7200, 18000, 36000, 36000) and MAX_ATTEMPTS == 8
    rng = random.Random(7)
    for attempts, step in enumerate(RETRY_SCHEDULE_S, start=1):
        for _ in range(50):
            wait = retry_delay(attempts, rng)
            assert wait is not None and 0.8 * step <= wait <= 1.2 * step
    assert retry_delay(8, rng) is None


@pytest.mark.fast
def test_delivery_gives_up_after_eight_attempts():
    """A receiver that always fails gets eight attempts, then the delivery is marked failed."""
    rng, state, now = random.Random(1), DeliveryState(), 1_000.0
    times = []
    while state.next_at is not None:
        now = max(now, state.next_at)
        times.append(now)
        state = after_attempt(state, AttemptResult(500), now=now, rng=rng)
    assert state == DeliveryState(8, None, "failed")
    assert len(times) == 8 and times == sorted(times)


@pytest.mark.fast
def test_retry_after_is_honoured_within_a_day():
    """Retry-After (seconds or HTTP date) delays the next attempt; an absurd one falls back to the schedule."""
    rng, now = random.Random(3), 1_700_000_000.0
    later = after_attempt(DeliveryState(), AttemptResult(429, "600"), now=now, rng=rng)
    assert later.next_at == now + 600  # the schedule says ~5 s; the receiver asked for 10 min
    date_header = format_datetime(datetime.fromtimestamp(now + 3600, UTC), usegmt=True)
    assert parse_retry_after(date_header, now) == pytest.approx(3600)
    by_date = after_attempt(DeliveryState(), AttemptResult(503, date_header), now=now, rng=rng)
    assert by_date.next_at == pytest.approx(now + 3600)
    absurd = after_attempt(DeliveryState(), AttemptResult(503, str(90 * 24 * 3600)), now=now, rng=rng)
    assert absurd.next_at is not None and absurd.next_at - now <= 6
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


@pytest.mark.fast
def test_gone_and_success_finish_the_delivery():
    """410 finishes the delivery as gone, 2xx as delivered; nothing more is scheduled."""
    rng = random.Random(0)
    assert after_attempt(DeliveryState(), AttemptResult(410), now=0, rng=rng) == DeliveryState(1, None, "gone")
    assert after_attempt(DeliveryState(2), AttemptResult(200), now=0, rng=rng) == DeliveryState(3, None, "delivered")


@pytest.mark.fast
def test_endpoint_disabled_after_410_or_a_long_failure_streak():
    """410 disables at once; failures disable only when many and spanning 5 days; a success resets the streak."""
    assert EndpointHealth().record(Outcome.GONE, 0).disabled == "gone"
    health = EndpointHealth()
    for i in range(DISABLE_AFTER_FAILURES * 2):  # many failures within one hour: still enabled
        health = health.record(Outcome.RETRY, i * 60.0)
    assert health.disabled is None
    assert health.record(Outcome.DELIVERED, 4000.0) == EndpointHealth()
    late = health.record(Outcome.RETRY, DISABLE_AFTER_S + 1)
    assert late.disabled == "failing"
    assert late.record(Outcome.DELIVERED, DISABLE_AFTER_S + 2).disabled == "failing"  # stays off until re-enabled


@pytest.mark.fast
def test_event_body_is_the_standard_shape():
    """The body is {"type", "timestamp", "data"} JSON with Thai unescaped."""
    payload = json.loads(BODY)
    assert set(payload) == {"type", "timestamp", "data"}
    assert "ร่างพระราชบัญญัติ".encode() in BODY


@pytest.mark.fast
def test_docs_worked_example_is_correct():
    """The signature in docs/alerts.md's worked example is the right one for its secret, id, timestamp and body."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "alerts.md").read_text()
    secret = re.search(r"The secret `(whsec_[^`]+)`", doc).group(1)  # type: ignore[union-attr]
    body = re.search(r"```json\n(\{\"type\".*\})\n```", doc).group(1).encode()  # type: ignore[union-attr]
    msg_id = re.search(r"webhook-id: (\S+)", doc).group(1)  # type: ignore[union-attr]
    ts = int(re.search(r"webhook-timestamp: (\d+)", doc).group(1))  # type: ignore[union-attr]
    signature = re.search(r"webhook-signature: (\S+)", doc).group(1)  # type: ignore[union-attr]
    assert len(body) == 264
    assert sign(secret, msg_id, ts, body) == signature
    assert Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), body.decode()) == signature
