"""A property-based fuzzer of ``/ws`` frames against the real server, next to a healthy viewer.

Hypothesis generates sequences of frames (JSON of any shape, ops with wrong or extreme fields, random and very long
text, deep nesting, binary frames, text frames that are not UTF-8) and sends them over a real WebSocket to the app
under uvicorn. Every frame must be answered with exactly one reply frame (an ``error`` with a known code, or the op's
normal answer), or end the connection with the close code the protocol documents for it (1007 not UTF-8, 1009 over
64 KiB); never 1011 and never an ERROR or traceback in the log. Meanwhile a healthy client subscribed to the same
channel receives every event published between examples, in order, and is never dropped.

The server runs on its own event loop in a thread, so Hypothesis drives the fuzzing connection synchronously and
can shrink a failing sequence to its smallest form.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_server import Running, serve, test_settings
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as sync_connect

CHANNEL = "sitting:s1"
MAX_FRAME = 64 * 1024  # uvicorn's ws_max_size in server.uvicorn_config
ERROR_CODES = {
    "bad_json",
    "bad_request",
    "unknown_op",
    "bad_channel",
    "not_subscribed",
    "already_subscribed",
    "too_many_channels",
    "unknown_channel",
}
# What the docs promise for frames the WebSocket layer itself refuses (docs/websocket.md, "Close codes").
CLOSE_NOT_UTF8 = 1007
CLOSE_TOO_BIG = 1009

# ---- strategies ----------------------------------------------------------------------------------------------

# Any text websockets can encode: everything UTF-8 can (no lone surrogates).
texts = st.text(st.characters(codec="utf-8"), max_size=60)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([-1, 0, 2**63 - 1, 2**63, -(2**63), 2**64]),
    st.floats(),
    texts,
)
json_values = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=12
)
channels = st.one_of(
    st.sampled_from(
        [
            CHANNEL,
            "bill:b1",
            "sitting:nope",
            "bill:",
            "sitting:../etc",
            "sitting:" + "a" * 64,
            "sitting:" + "a" * 65,
            "sitting:s1\n",
            "SITTING:s1",
            "",
        ]
    ),
    texts,
    json_values,
)
op_frames = st.fixed_dictionaries(
    {"op": st.one_of(st.sampled_from(["subscribe", "unsubscribe", "ping", "publish", "SUBSCRIBE", ""]), json_values)},
    optional={
        "channel": channels,
        "since": st.one_of(st.integers(), json_values),
        "epoch": st.one_of(texts, st.text(max_size=100).map(lambda t: t * 3), json_values),
        "extra": json_values,
    },
)
json_text = st.tuples(st.one_of(op_frames, json_values), st.booleans()).map(
    lambda pair: json.dumps(pair[0], ensure_ascii=pair[1])
)
# Well-formed ops on real and unknown channels, so subscribe, replay, unsubscribe and double subscribe all happen.
valid_ops = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["subscribe", "unsubscribe", "ping"]),
        "channel": st.sampled_from([CHANNEL, "bill:b1", "sitting:nope", "bill:nope"]),
    },
    optional={"since": st.integers(0, 2**63 - 1), "epoch": st.sampled_from(["", "gone", "a" * 64])},
).map(json.dumps)
long_texts = st.tuples(st.sampled_from(["a", "ก", "{", "[", '"', "9"]), st.integers(1_000, 70_000)).map(
    lambda pair: pair[0] * pair[1]
)
# Both sides of the 64 KiB frame limit, byte-exact (the edge a length check gets wrong).
near_limit = st.integers(MAX_FRAME - 64, MAX_FRAME + 64).map(lambda n: '{"op":"' + "x" * (n - 9) + '"}')
# An integer literal past Python's int/str conversion limit (4300 digits) inside an otherwise valid op.
huge_numbers = st.integers(4_000, 20_000).map(
    lambda n: '{"op":"subscribe","channel":"sitting:s1","since":' + "9" * n + "}"
)
deep_nesting = st.integers(1, 40_000).map(lambda n: '{"op":' + "[" * n + "]" * n + "}")


class Frame:
    """One WebSocket frame: ``kind`` is text, binary, or bad_text (a text frame whose bytes are not UTF-8)."""

    # A plain class, not a dataclass: Hypothesis prints dataclasses field by field, whatever __repr__ says.
    __slots__ = ("kind", "payload")

    def __init__(self, kind: str, payload: str | bytes) -> None:
        self.kind = kind
        self.payload = payload

    def __repr__(self) -> str:
        # Shrunk failures print their frames; a 64 KiB payload would drown the report.
        text = repr(self.payload)
        return f"Frame({self.kind!r}, {text if len(text) <= 200 else text[:200] + '…'}, size={self.size})"

    @property
    def size(self) -> int:
        return len(self.payload.encode() if isinstance(self.payload, str) else self.payload)


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


frames = st.one_of(
    json_text.map(lambda t: Frame("text", t)),
    json_text.map(lambda t: Frame("binary", t.encode())),
    valid_ops.map(lambda t: Frame("text", t)),
    valid_ops.map(lambda t: Frame("binary", t.encode())),
    near_limit.map(lambda t: Frame("text", t)),
    texts.map(lambda t: Frame("text", t)),
    long_texts.map(lambda t: Frame("text", t)),
    huge_numbers.map(lambda t: Frame("text", t)),
    deep_nesting.map(lambda t: Frame("text", t)),
    st.binary(max_size=200).map(lambda b: Frame("binary", b)),
    st.binary(min_size=1, max_size=50).filter(_not_utf8).map(lambda b: Frame("bad_text", b)),
)

# ---- the server in a thread, with a healthy viewer on it -----------------------------------------------------


@dataclass
class Healthy:
    """A viewer subscribed to ``CHANNEL`` from the start, recording the seq of every event it gets."""

    seqs: list[int] = field(default_factory=list)
    dropped: BaseException | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, url: str) -> None:
        try:
            async with websockets.connect(url) as ws:
                await ws.send(json.dumps({"op": "subscribe", "channel": CHANNEL, "since": 0}))
                async for raw in ws:
                    frame = json.loads(raw)
                    if frame.get("op") == "subscribed":
                        self.ready.set()
                    elif "op" not in frame:
                        self.seqs.append(frame["seq"])
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - any end of this connection is the failure being looked for
            self.dropped = exc
        else:
            self.dropped = RuntimeError("the server closed the healthy client's connection")


class ServerThread:
    """The real app under uvicorn on its own loop in a thread, plus the healthy viewer."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.loop = asyncio.new_event_loop()
        self.started: Future[tuple[Running, Healthy]] = Future()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with serve(test_settings(self.tmp_path)) as running:
                await running.app.state.store.create_sitting("s1", "การประชุม", "senate")
                await running.app.state.store.upsert_bill("b1", "ร่างพระราชบัญญัติ")
                healthy = Healthy()
                viewer = asyncio.create_task(healthy.run(running.ws_url))
                await asyncio.wait_for(healthy.ready.wait(), 10)
                self.started.set_result((running, healthy))
                await self._stop.wait()
                viewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await viewer
        except BaseException as exc:
            if not self.started.done():
                self.started.set_exception(exc)
            raise

    def call(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> tuple[Running, Healthy]:
        self._thread.start()
        return self.started.result(30)

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self.loop.close()


@pytest.fixture
def server(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[tuple[ServerThread, Running, Healthy]]:
    caplog.set_level(logging.WARNING)
    thread = ServerThread(tmp_path)
    with thread as (running, healthy):
        # uvicorn's own loggers do not propagate to the root logger, where caplog listens.
        uvicorn_log = logging.getLogger("uvicorn")
        uvicorn_log.addHandler(caplog.handler)
        try:
            yield thread, running, healthy
        finally:
            uvicorn_log.removeHandler(caplog.handler)


# ---- the property --------------------------------------------------------------------------------------------


def _controls(ws: ClientConnection) -> list[dict[str, Any]]:
    """Read until the pong that answers the sentinel ping sent after a frame; return the control frames seen."""
    controls: list[dict[str, Any]] = []
    while True:
        frame = json.loads(ws.recv(timeout=10))
        if "op" not in frame:
            continue  # an event of a channel this connection subscribed to
        controls.append(frame)
        if len(controls) == 2:
            return controls


def _expected_reply(frame: Frame) -> str | None:
    """What the reply's op or error code must be where the frame alone decides it; None where state decides."""
    try:
        text = frame.payload if isinstance(frame.payload, str) else frame.payload.decode("utf-8")
    except UnicodeDecodeError:
        return "bad_json"
    try:
        msg = json.loads(text)
    except RecursionError:
        # Near Python's recursion limit, parsing depends on how deep the parsing thread's stack already is.
        return None
    except ValueError:
        return "bad_json"
    if not isinstance(msg, dict):
        return "bad_request"
    if msg.get("op") == "ping":
        return "pong"
    if msg.get("op") not in ("subscribe", "unsubscribe"):
        return "unknown_op"
    return None


def _send(ws: ClientConnection, frame: Frame) -> None:
    if frame.kind == "binary":
        ws.send(frame.payload if isinstance(frame.payload, bytes) else frame.payload.encode())
    elif frame.kind == "bad_text":
        assert isinstance(frame.payload, bytes)
        ws.send(frame.payload, text=True)  # websockets sends the bytes as they are in a text frame
    else:
        ws.send(frame.payload)


def _fuzz_one_connection(url: str, sequence: list[Frame], vanish: bool) -> None:
    """Send ``sequence`` on one connection, checking each answer; with ``vanish`` the client drops the TCP
    connection right after its last frame, without reading the answer or closing, and the server must clean up
    as quietly as after a polite close."""
    with sync_connect(url, max_size=None, open_timeout=10, close_timeout=5) as ws:
        checked = sequence[:-1] if vanish else sequence
        for frame in checked:
            if not _send_and_check(ws, frame):
                return
        if vanish:
            with contextlib.suppress(OSError):  # the server may have closed already (a 1007 or 1009 frame)
                _send(ws, sequence[-1])
                ws.socket.shutdown(socket.SHUT_RDWR)


def _send_and_check(ws: ClientConnection, frame: Frame) -> bool:
    """Send one frame and check its answer; False once the server has closed the connection, as documented."""
    _send(ws, frame)
    closing = CLOSE_NOT_UTF8 if frame.kind == "bad_text" else CLOSE_TOO_BIG if frame.size > MAX_FRAME else None
    if closing is not None:
        # The protocol allows nothing else here: the WebSocket layer closes with the documented code.
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == closing
        return False
    ws.send(json.dumps({"op": "ping"}))
    reply, sentinel = _controls(ws)
    assert sentinel == {"op": "pong"}, (reply, sentinel)
    assert reply["op"] in ("error", "subscribed", "unsubscribed", "pong"), reply
    if reply["op"] == "error":
        assert reply["code"] in ERROR_CODES, reply
        # Errors quote what the client sent only briefly, never echoing a huge frame back.
        assert isinstance(reply["error"], str) and 0 < len(reply["error"]) < 300, reply
    expected = _expected_reply(frame)
    if expected is not None:
        assert (reply["op"] if reply["op"] != "error" else reply["code"]) == expected, (frame, reply)
    return True


def test_fuzzed_frames_get_error_frames_and_never_disturb_a_healthy_client(
    server: tuple[ServerThread, Running, Healthy], caplog: pytest.LogCaptureFixture
):
    """Random frames get one reply each or their documented close; no server error; the healthy viewer gets all."""
    thread, running, healthy = server
    hub = running.app.state.hub
    published: list[int] = []

    @settings(
        # A quick pass in the suite; SAPHA_WS_FUZZ_EXAMPLES=2000 searches harder (docs/benchmarks.md, Fuzzing).
        max_examples=int(os.environ.get("SAPHA_WS_FUZZ_EXAMPLES", "80")),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(sequence=st.lists(frames, min_size=1, max_size=6), vanish=st.booleans())
    def fuzz(sequence: list[Frame], vanish: bool) -> None:
        _fuzz_one_connection(running.ws_url, sequence, vanish)
        event = thread.call(hub.publish(CHANNEL, "caption.partial", {"text": f"ข้อความ {len(published)}"}))
        published.append(event.seq)

    fuzz()

    async def all_delivered() -> None:
        while len(healthy.seqs) < len(published) and healthy.dropped is None:
            await asyncio.sleep(0.01)

    thread.call(all_delivered())
    assert healthy.dropped is None, healthy.dropped
    assert healthy.seqs == published == list(range(1, len(published) + 1))
    # The fuzzing client's own library logs the connections it was made to drop; only the server's log counts.
    server_records = [r for r in caplog.records if not r.name.startswith("websockets.client")]
    problems = [r for r in server_records if r.levelno >= logging.ERROR or r.exc_info]
    assert not problems, [(r.name, r.getMessage()) for r in problems]
