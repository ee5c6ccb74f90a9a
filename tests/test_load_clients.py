"""The load bench's ``epoll`` viewer (``bench/load_clients.py``) against real servers on loopback: a hand-written
one that sends exactly the frames under test (16- and 64-bit lengths, fragments with a ping between them, frames
split across reads, duplicates and gaps, a close, protocol errors), and the ``websockets`` library's server.

The viewer is a load generator, but its figures are only worth something if it does the protocol for real and
counts what it gets correctly; these tests hold it to that."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from load_clients import BATCH_S, EpollClients, Tally  # noqa: E402  (bench/ is a folder of scripts, not a package)

CHANNEL = "sitting:bench-load"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TS = "2026-11-26T09:00:00.000Z"


def _event(seq: int, k: int, sent: float, name: str = "นายมงคล สุระสัจจะ") -> bytes:
    """A bench event's JSON as the server sends it (field order and compact separators of ``common.http.dumps``)."""
    body = {"channel": CHANNEL, "seq": seq, "epoch": "a1b2c3d4", "type": "speaker", "ts": TS,
            "data": {"name": name, "role": f"bench {k} {sent:.6f}"}}  # fmt: skip
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None) -> bytes:
    """A frame with the shortest length encoding (RFC 6455 §5.2), masked only when ``mask`` is given."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes((b0, m | n))
    elif n < 1 << 16:
        head = bytes((b0, m | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, m | 127)) + n.to_bytes(8, "big")
    if mask:
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


def _read_client_frame(sock: socket.socket) -> tuple[int, bool, bytes]:
    """One frame from the client: (opcode, was it masked, unmasked payload)."""
    b0, b1 = _read_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(_read_exact(sock, 2), "big")
    elif n == 127:
        n = int.from_bytes(_read_exact(sock, 8), "big")
    masked = bool(b1 & 0x80)
    key = _read_exact(sock, 4) if masked else b"\0\0\0\0"
    payload = bytes(b ^ key[i % 4] for i, b in enumerate(_read_exact(sock, n)))
    return b0 & 0x0F, masked, payload


class FrameServer:
    """Accepts connections on loopback; each gets the 101 (with the right accept unless ``bad_accept``), must send
    a masked ``subscribe``, then receives ``script``: in chunks of ``chunks`` bytes (so frames split across reads), or,
    given a list, each part on its own; the server records every frame the client sends back until it closes."""

    def __init__(self, script: bytes | list[bytes], *, chunks: int = 0, bad_accept: bool = False) -> None:
        self.script = script
        self.chunks = chunks
        self.bad_accept = bad_accept
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received: list[list[tuple[int, bool, bytes]]] = []
        self.subscribes: list[tuple[bool, bytes]] = []
        self.threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        got: list[tuple[int, bool, bytes]] = []
        self.received.append(got)
        with sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request = b""
            while b"\r\n\r\n" not in request:
                request += sock.recv(4096)
            key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key:"))  # fmt: skip
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            if self.bad_accept:
                accept = base64.b64encode(os.urandom(20))
            sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")  # fmt: skip
            try:
                opcode, masked, payload = _read_client_frame(sock)
            except ConnectionError:
                return
            self.subscribes.append((masked, payload))
            subscribed = json.dumps({"op": "subscribed", "channel": CHANNEL, "recovered": True, "seq": 0,
                                     "epoch": "a1b2c3d4"}).encode()  # fmt: skip
            if isinstance(self.script, list):
                parts = [_frame(0x1, subscribed), *self.script]
            else:
                data = _frame(0x1, subscribed) + self.script
                step = self.chunks or len(data)
                parts = [data[i : i + step] for i in range(0, len(data), step)]
            for part in parts:
                sock.sendall(part)
                if len(parts) > 1:
                    time.sleep(0.005)  # a read each, most of the time
            sock.settimeout(5)
            try:
                while True:
                    frame = _read_client_frame(sock)
                    got.append(frame)
                    if frame[0] == 0x8:
                        return  # the server ends the TCP connection once the close is answered
            except (ConnectionError, TimeoutError, OSError):
                return

    def close(self) -> None:
        self.listener.close()
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def frame_server() -> Iterator[Callable[..., FrameServer]]:
    made: list[FrameServer] = []

    def make(script: bytes, **kw: object) -> FrameServer:
        made.append(FrameServer(script, **kw))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for server in made:
        server.close()


def _run(clients: EpollClients, until: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "the viewers did not get there in time"
        clients.step(0.02)


def _clients(port: int, n: int = 1, batch_s: float = 0.0) -> EpollClients:
    clients = EpollClients(Tally(CHANNEL), port, "127.0.0.1", batch_s=batch_s)
    clients.connect(n, n, 10)
    return clients


@pytest.mark.fast
def test_every_frame_form_is_parsed_pings_are_answered_and_the_close_is_echoed(frame_server):
    """16-bit and 64-bit lengths, a message in three fragments with a ping between them, a duplicate and a gap,
    all sent a few bytes at a time so frames and headers split across reads; then a close with 1001."""
    now = time.time()
    big = _event(3, 2, now, name="ก" * 30_000)  # > 65,535 bytes: a 64-bit length
    assert len(big) >= 1 << 16
    fragmented = _event(2, 1, now)
    script = (
        _frame(0x1, _event(1, 0, now))
        + _frame(0x1, fragmented[:50], fin=False)
        + _frame(0x9, b"are you there")
        + _frame(0x0, fragmented[50:120], fin=False)
        + _frame(0x0, fragmented[120:])
        + _frame(0x1, big)
        + _frame(0x1, _event(3, 2, now))  # a duplicate seq: counted, not delivered twice
        + _frame(0x1, _event(6, 5, now))  # 4 and 5 missing
        + _frame(0x8, (1001).to_bytes(2, "big") + b"going away")
    )
    server = frame_server(script, chunks=997)
    clients = _clients(server.port)
    tally = clients.tally
    assert clients.errors == {} and len(clients.conns) == 1
    conn = clients.conns[0]
    _run(clients, lambda: not clients.viewers)  # until the server ended the connection

    assert list(tally.event_k) == [0, 1, 2, 5]
    assert conn.last_seq == 6 and conn.count == 4
    assert all(0 <= lat < 10 for lat in tally.latency) and len(tally.fanout) == 4
    counts = tally.counts
    assert (counts["dups"], counts["gaps"], counts["missing_seqs"]) == (1, 1, 2)
    assert (counts["pings"], counts["fragmented"], counts["closed_by_server"], counts["lost"]) == (1, 1, 1, 0)
    assert counts["protocol_errors"] == 0 and tally.close_codes == {1001: 1}
    # What the client sent: a masked subscribe, a masked pong with the ping's payload, a masked close with 1001.
    (sub_masked, sub), (replies) = server.subscribes[0], server.received[0]
    assert sub_masked and json.loads(sub) == {"op": "subscribe", "channel": CHANNEL}
    assert replies == [(0xA, True, b"are you there"), (0x8, True, (1001).to_bytes(2, "big"))]
    clients.close()


@pytest.mark.fast
@pytest.mark.parametrize("batch_s", [0.0, BATCH_S], ids=["no-batching", "batching"])
def test_viewers_of_the_same_event_each_count_it_once(frame_server, batch_s):
    """Four connections get the same bytes (as from the server's pre-built frame): each counts each event once;
    reading a repeated payload from the cache does not mix up events whose bytes differ (seq 10 and 11); waiting
    to serve more sockets per wake-up loses nothing."""
    now = time.time()
    script = b"".join(_frame(0x1, _event(seq, seq, now)) for seq in (10, 11, 12))
    script += _frame(0x8, (1000).to_bytes(2, "big"))
    server = frame_server(script)
    clients = _clients(server.port, 4, batch_s)
    tally = clients.tally
    _run(clients, lambda: not clients.viewers)
    assert sorted(tally.event_k) == [10] * 4 + [11] * 4 + [12] * 4
    assert all(c.last_seq == 12 and c.count == 3 for c in clients.conns)
    assert tally.counts["gaps"] == tally.counts["dups"] == 0 and tally.close_codes == {1000: 4}
    clients.close()


@pytest.mark.fast
def test_a_frame_read_on_its_own_is_counted_per_connection_with_its_seq_checked(frame_server):
    """Each frame in a read of its own, the same bytes to three connections (the path nearly every frame of a
    bench takes): each connection counts each event once, and its own duplicate and gap are still caught."""
    now = time.time()
    frames = [_frame(0x1, _event(seq, seq, now)) for seq in (20, 21, 21, 24, 25)]
    server = frame_server([*frames, _frame(0x8, (1000).to_bytes(2, "big"))])
    clients = _clients(server.port, 3)
    _run(clients, lambda: not clients.viewers)
    tally = clients.tally
    assert sorted(tally.event_k) == sorted([20, 21, 24, 25] * 3)
    assert all(c.last_seq == 25 and c.count == 4 for c in clients.conns)
    counts = tally.counts
    assert (counts["dups"], counts["gaps"], counts["missing_seqs"]) == (3, 3, 6)
    clients.close()


@pytest.mark.fast
@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (_frame(0x1, b"\x81\x00\x81\x00", mask=b"\0\0\0\0"), "the server masked a frame"),
        (_frame(0x0, b"more"), "a continuation frame with nothing to continue"),
        (bytes((0xC1, 2)) + b"{}", "RSV bits set without an extension"),
        (_frame(0x1, b"{}", fin=False) + _frame(0x1, b"{}"), "a new message inside a fragmented one"),
        (_frame(0x3, b""), "unknown opcode 3"),
        (_frame(0x9, b"x" * 126), "a fragmented or oversized control frame"),
        (_frame(0x9, b"", fin=False), "a fragmented or oversized control frame"),
    ],
    ids=["masked", "orphan-continuation", "rsv1", "message-in-fragments", "opcode-3", "long-ping", "ping-no-fin"],
)
def test_a_protocol_error_is_counted_and_the_connection_dropped(frame_server, bad, why):
    now = time.time()
    server = frame_server(_frame(0x1, _event(1, 0, now)) + bad + _frame(0x1, _event(2, 1, now)))
    clients = _clients(server.port)
    _run(clients, lambda: not clients.viewers)
    tally = clients.tally
    assert tally.counts["protocol_errors"] == 1 and clients.failures == {why: 1}
    assert list(tally.event_k) == [0]  # nothing after the bad frame is read
    assert not clients.conns[0].alive
    clients.close()


@pytest.mark.fast
def test_a_wrong_sec_websocket_accept_fails_the_connection(frame_server):
    server = frame_server(b"", bad_accept=True)
    clients = _clients(server.port, 2)
    assert clients.conns == []
    assert clients.errors == {"ConnectionError: bad Sec-WebSocket-Accept or Upgrade in the 101 response": 2}
    clients.close()


@pytest.mark.fast
def test_the_websockets_library_server_interoperates():
    """Against an independent implementation: its handshake, its fragmented message, its ping and its close."""
    from websockets.sync.server import ServerConnection, serve

    now = time.time()
    pong_seen = threading.Event()

    def handler(ws: ServerConnection) -> None:
        assert json.loads(ws.recv()) == {"op": "subscribe", "channel": CHANNEL}
        ws.send(json.dumps({"op": "subscribed", "channel": CHANNEL, "recovered": True, "seq": 0, "epoch": ""}))
        ws.send(_event(1, 0, now).decode())
        text = _event(2, 1, now).decode()
        ws.send([text[:40], text[40:90], text[90:]])  # one message in three fragments
        if ws.ping(b"ping!").wait(5):
            pong_seen.set()
        ws.send(_event(3, 2, now).decode())
        ws.close(1001)

    with serve(handler, "127.0.0.1", 0, compression=None) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        clients = _clients(server.socket.getsockname()[1])
        _run(clients, lambda: not clients.viewers)
        server.shutdown()
    tally = clients.tally
    assert list(tally.event_k) == [0, 1, 2] and clients.conns[0].count == 3
    assert tally.counts["fragmented"] == 1 and tally.counts["pings"] == 1 and pong_seen.is_set()
    assert tally.close_codes == {1001: 1} and tally.counts["protocol_errors"] == 0
    clients.close()
