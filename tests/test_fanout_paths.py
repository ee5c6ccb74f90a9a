"""The two WebSocket delivery paths: pre-built frames written straight to idle connections, and the outbox with an
on-demand writer for connections that are behind; plus the cut of a client that stops reading."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from pathlib import Path
from typing import Any

import pytest
import websockets
from live_server import Running, serve, test_settings

from broadcast import closecodes
from broadcast.broker_memory import MemoryBroker
from broadcast.envelope import Event
from broadcast.hub import FANOUT_SLICE, FANOUT_STEP_S, Hub
from broadcast.outbox import Frame, Outbox
from broadcast.ws_protocol import _Flag, _Inbox, text_frame

CHANNEL = "sitting:s1"
# ~12 KB of UTF-8 per event: a client that does not read fills its socket buffers within a few hundred events.
BIG = "ก" * 4000


def _event(seq: int) -> Event:
    return Event(CHANNEL, seq, "e1", "caption.partial", "2026-01-01T00:00:00.000Z", {"text": f"คำ {seq}"})


# ---- the outbox's hooks, without I/O ---------------------------------------------------------------------------


class _Transport:
    """Accepts frames while ``open``; records what it wrote and how often the outbox asked for a writer."""

    def __init__(self) -> None:
        self.open = True
        self.written: list[Frame] = []
        self.backlogs = 0

    def write(self, frame: Frame) -> bool:
        if self.open:
            self.written.append(frame)
        return self.open

    def backlog(self) -> None:
        self.backlogs += 1


@pytest.mark.fast
def test_an_idle_outbox_hands_each_frame_to_the_transport_and_queues_nothing():
    """While the transport accepts, put() writes every frame at once and the queue stays empty."""
    t = _Transport()
    outbox = Outbox(4, write=t.write, on_backlog=t.backlog)
    frames = [_event(i) for i in range(1, 11)]
    for frame in frames:
        outbox.put(frame)
    assert t.written == frames and len(outbox) == 0 and t.backlogs == 0


@pytest.mark.fast
def test_once_a_frame_is_queued_later_frames_queue_behind_it_in_order():
    """A declined frame is queued (asking once for a writer) and no later frame overtakes it."""
    t = _Transport()
    outbox = Outbox(10, write=t.write, on_backlog=t.backlog)
    outbox.put(_event(1))
    t.open = False
    outbox.put(_event(2))
    t.open = True
    outbox.put(_event(3))
    outbox.put(_event(4))
    assert t.written == [_event(1)] and t.backlogs == 1
    assert outbox.take_now() == [_event(2), _event(3), _event(4)]
    # Drained: the next frame goes straight out again.
    outbox.put(_event(5))
    assert t.written == [_event(1), _event(5)] and len(outbox) == 0


@pytest.mark.fast
def test_a_backlog_past_the_limit_overflows_once_and_drops_the_queue():
    """Queued frames beyond the limit overflow the outbox, call on_overflow once and are no longer kept."""
    t = _Transport()
    t.open = False
    cut: list[bool] = []
    outbox = Outbox(3, lambda: cut.append(True), write=t.write, on_backlog=t.backlog)
    for i in range(1, 8):
        outbox.put(_event(i))
    assert outbox.overflowed and cut == [True] and len(outbox) == 0 and t.written == []


@pytest.mark.fast
def test_text_frame_is_the_frame_websockets_itself_would_send():
    """The pre-built frame parses back, with the websockets library's parser, to the same text."""
    from websockets.frames import Frame as WsFrame
    from websockets.frames import Opcode
    from websockets.streams import StreamReader

    for text in ("{}", json.dumps({"t": "ข" * 50}, ensure_ascii=False), "x" * 70_000):
        reader = StreamReader()
        reader.feed_data(text_frame(text))
        parser = WsFrame.parse(reader.read_exact, mask=False)
        with pytest.raises(StopIteration) as parsed:
            next(parser)
        frame = parsed.value.value
        assert frame.opcode is Opcode.TEXT and frame.fin and frame.data.decode() == text


@pytest.mark.fast
async def test_inbox_keeps_order_and_a_cancelled_get_loses_nothing():
    """The protocol's inbox hands messages out in order; a get() cancelled while waiting leaves the next one queued."""
    inbox = _Inbox()
    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    inbox.put_nowait("a")
    inbox.put_nowait("b")
    assert [await inbox.get(), await inbox.get()] == ["a", "b"] and inbox.empty()


@pytest.mark.fast
async def test_flag_wakes_every_waiter_when_set():
    """Writers waiting for a paused transport all resume when it drains."""
    flag = _Flag()
    flag.clear()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    await asyncio.gather(*waiters)
    assert flag.is_set()


# ---- the hub's sliced fan-out (a real in-process broker, a tiny slice so a few subscribers need several) --------


async def _sliced_hub(n: int, slice_: int = 10) -> tuple[Hub, MemoryBroker, list[Outbox]]:
    broker = MemoryBroker()
    # A zero time budget: one slice per turn of the loop, so the test can watch the turns.
    hub = Hub(broker, fanout_slice=slice_, fanout_step_s=0.0)
    await hub.start()
    outboxes = [Outbox(100) for _ in range(n)]
    for outbox in outboxes:
        await hub.subscribe(outbox, CHANNEL)
        outbox.take_now()  # the ``subscribed`` frame
    return hub, broker, outboxes


async def _fanned_out(hub: Hub) -> None:
    async with asyncio.timeout(10):
        while hub.fanout_backlog:
            await asyncio.sleep(0)


async def test_a_fan_out_bigger_than_a_slice_lets_other_work_run_and_keeps_every_subscriber_in_order():
    """95 subscribers, slices of 10, 5 events published back to back: other coroutines run before the fan-out ends
    (it is not one synchronous pass), and every subscriber still gets seqs 1..5 once each, in order."""
    hub, broker, outboxes = await _sliced_hub(95)
    try:
        for i in range(5):
            await broker.publish(CHANNEL, "caption.final", {"i": i})
        # Only the first slice of the first event went out inside publish(); the rest is still to come.
        assert hub.fanout_backlog == 5
        assert [len(o) for o in outboxes].count(1) == 10 and sum(len(o) for o in outboxes) == 10
        await asyncio.sleep(0)  # one turn of the loop: this coroutine ran while the fan-out was under way
        assert hub.fanout_backlog > 0
        await _fanned_out(hub)
        for outbox in outboxes:
            assert [f.seq for f in outbox.take_now() if isinstance(f, Event)] == [1, 2, 3, 4, 5]
        # Idle again: a small event goes out inline once more.
        await broker.publish(CHANNEL, "caption.final", {"i": 5})
        assert hub.fanout_backlog == 1  # 95 > 10: sliced again
        await _fanned_out(hub)
        assert all([f.seq for f in o.take_now() if isinstance(f, Event)] == [6] for o in outboxes)
    finally:
        await hub.close()


async def test_a_subscriber_that_leaves_during_a_sliced_fan_out_gets_nothing_more():
    """Unsubscribing between slices: the event it had not reached yet is not delivered after the unsubscribe."""
    hub, broker, outboxes = await _sliced_hub(30)
    try:
        subs = {id(s.outbox): s for s in hub._subs[CHANNEL]}
        await broker.publish(CHANNEL, "caption.final", {"i": 0})
        waiting = [o for o in outboxes if len(o) == 0]
        assert len(waiting) == 20
        await hub.unsubscribe(subs[id(waiting[0])])
        await _fanned_out(hub)
        assert len(waiting[0]) == 0
        assert all(len(o) == 1 for o in outboxes if o is not waiting[0])
    finally:
        await hub.close()


@pytest.mark.fast
async def test_a_small_audience_is_served_inline_without_a_fan_out_task():
    """At most one slice of subscribers: publish() has delivered to all of them when it returns."""
    hub, broker, outboxes = await _sliced_hub(10)
    try:
        await broker.publish(CHANNEL, "caption.final", {"i": 0})
        assert hub.fanout_backlog == 0 and hub._fanout_task is None
        assert all(len(o) == 1 for o in outboxes)
    finally:
        await hub.close()


@pytest.mark.fast
@pytest.mark.parametrize("extra", [0, 1])
async def test_the_server_hub_slices_by_the_module_defaults(extra: int):
    """A hub built as the server builds it (no slicing arguments) serves FANOUT_SLICE subscribers inline and slices
    one more, so the tuned constants are what the service runs with."""
    broker = MemoryBroker()
    hub = Hub(broker)
    assert (hub.fanout_slice, hub.fanout_step_s) == (FANOUT_SLICE, FANOUT_STEP_S)
    await hub.start()
    try:
        outboxes = [Outbox(10) for _ in range(FANOUT_SLICE + extra)]
        for outbox in outboxes:
            await hub.subscribe(outbox, CHANNEL)
            outbox.take_now()
        await broker.publish(CHANNEL, "caption.final", {"i": 0})
        assert hub.fanout_backlog == extra
        assert sum(len(o) for o in outboxes) == FANOUT_SLICE
        await _fanned_out(hub)
        assert all(len(o) == 1 for o in outboxes)
    finally:
        await hub.close()


# ---- over a real socket ------------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def running(request: pytest.FixtureRequest, tmp_path: Path):
    """The real server under uvicorn, with an outbox big enough to hold a backlog without cutting it."""
    overrides: dict[str, object] = {"ws_outbox": 2000}
    if request.param == "redis":
        overrides["redis_url"] = request.getfixturevalue("redis_url")
        overrides["redis_prefix"] = request.getfixturevalue("redis_prefix")
    async with serve(test_settings(tmp_path, **overrides)) as r:
        await r.app.state.store.create_sitting("s1", "การประชุม", "senate")
        yield r


async def _recv(ws: websockets.ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def _subscribe(ws: websockets.ClientConnection) -> None:
    await ws.send(json.dumps({"op": "subscribe", "channel": CHANNEL}))
    assert (await _recv(ws))["op"] == "subscribed"


async def _slow_client(running: Running) -> websockets.ClientConnection:
    """A client with a tiny receive window that buffers at most one message until the test calls recv()."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    host, port = running.url.removeprefix("http://").split(":")
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return await websockets.connect(running.ws_url, sock=sock, max_queue=1, max_size=None)


def _outbox(running: Running, nth: int = 0) -> Outbox:
    subs = sorted(running.app.state.hub._subs[CHANNEL], key=id)
    return subs[nth].outbox


async def test_idle_clients_get_the_prebuilt_frame_without_a_queue(running: Running):
    """Every idle subscriber gets each event as the one frame built for it, written directly, nothing queued."""
    sock = running.app.state.socket
    clients = [await websockets.connect(running.ws_url) for _ in range(3)]
    try:
        for ws in clients:
            await _subscribe(ws)
        direct, queued = sock.sent_direct, sock.sent_queued
        for i in range(5):
            event = await running.app.state.hub.publish(CHANNEL, "caption.partial", {"text": f"คำ {i}"})
            for ws in clients:
                assert (await _recv(ws))["seq"] == event.seq
            # The frame on the wire is the one built once for this event.
            assert sock._last_event == event and sock._last_frame == text_frame(event.json)
        assert sock.sent_direct - direct == 15 and sock.sent_queued == queued
    finally:
        for ws in clients:
            await ws.close()


async def test_a_client_that_falls_behind_is_served_from_its_outbox_in_order(running: Running):
    """A client that stops reading for a while gets its backlog through the outbox, every event in order, and
    then goes back to direct writes."""
    sock = running.app.state.socket
    hub = running.app.state.hub
    slow = await _slow_client(running)
    try:
        await _subscribe(slow)
        outbox = _outbox(running)
        published = 0
        # Publish until frames queue: the client's window is shut and the transport has paused.
        while len(outbox) < 5:
            await hub.publish(CHANNEL, "caption.partial", {"text": BIG})
            published += 1
            await asyncio.sleep(0)
            assert published < 1500, "the transport never paused"
        queued = sock.sent_queued
        seqs = [(await _recv(slow))["seq"] for _ in range(published)]
        assert seqs == list(range(1, published + 1))
        assert sock.sent_queued > queued and not outbox.overflowed
        # Caught up: the next event is written directly again.
        direct = sock.sent_direct
        await hub.publish(CHANNEL, "caption.partial", {"text": "ต่อ"})
        assert (await _recv(slow))["seq"] == published + 1
        assert sock.sent_direct == direct + 1
    finally:
        await slow.close()


async def test_a_client_that_stops_reading_is_cut_with_4008_and_released(running: Running):
    """A client that stays behind past its outbox is cut: its subscription goes at once, others are unaffected,
    and when it reads again it finds the events up to the cut in order, then close code 4008."""
    sock = running.app.state.socket
    # Long enough for this client to read up to the close frame, so the test sees the code rather than an abort.
    sock.limits = dataclasses.replace(sock.limits, outbox=50, close_timeout=60.0)
    hub = running.app.state.hub
    async with websockets.connect(running.ws_url, max_size=None) as healthy:
        await _subscribe(healthy)
        slow = await _slow_client(running)
        try:
            await _subscribe(slow)
            published = 0
            while hub.subscription_count > 1:
                await hub.publish(CHANNEL, "caption.partial", {"text": BIG})
                published += 1
                assert (await _recv(healthy))["seq"] == published
                assert published < 5000, "the client was never cut"
            assert "sapha_slow_consumers_total 1.0" in running.app.state.metrics.render().decode()
            got: list[int] = []
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    got.append((await _recv(slow))["seq"])
            assert closed.value.rcvd is not None and closed.value.rcvd.code == closecodes.SLOW_CONSUMER
            assert got == list(range(1, len(got) + 1)) and len(got) < published
        finally:
            await slow.close()
        await hub.publish(CHANNEL, "caption.partial", {"text": "ต่อ"})
        assert (await _recv(healthy))["seq"] == published + 1
