"""``server.py --source`` end to end: a real process, the real model, real audio, a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import websockets

ROOT = Path(__file__).resolve().parent.parent
JFK = ROOT.parent / "shared" / "data" / "audio" / "en" / "jfk.flac"
DEMO = ROOT / "stream" / "media" / "demo_th.flac"

pytestmark = pytest.mark.model


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def server_process(
    tmp_path: Path, *args: str, language: str = "th", env: dict[str, str] | None = None, name: str = "server"
) -> AsyncIterator[str]:
    """Start ``python server.py ARGS`` on a free port and yield its base URL once /healthz answers.

    ``env`` adds to (or overrides) the environment; without ``REDIS_URL`` in it the server uses its in-process
    bus. The process's output goes to ``tmp_path / f"{name}.log"``.
    """
    port = _free_port()
    base = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env = {
        **base,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'sapha.db'}",
        "OPERATOR_TOKEN": "t",
        "WHISPER_LANGUAGE": language,
        "LOG_LEVEL": "warning",
        "HLS_DIR": str(tmp_path / "hls"),
        **(env or {}),
    }
    log_path = tmp_path / f"{name}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "server.py"), "--port", str(port), *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                if proc.poll() is not None:
                    raise AssertionError(f"server exited: {log_path.read_text()}")
                try:
                    if (await client.get(f"{url}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def _events_until_adjourned(url: str, sitting: str) -> list[dict]:
    """Subscribe from the start of the channel's history and collect events until the sitting is adjourned."""
    events: list[dict] = []
    ws_url = url.replace("http://", "ws://") + "/ws"
    async with websockets.connect(ws_url) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channel": f"sitting:{sitting}", "since": 0}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 120))
            if frame.get("op"):
                continue
            events.append(frame)
            if frame["type"] == "sitting.status" and frame["data"]["status"] == "adjourned":
                return events


@pytest.mark.skipif(not JFK.exists(), reason="../shared/data is not beside the checkout")
async def test_a_file_source_streams_partials_then_finals_and_archives_them(tmp_path: Path):
    """JFK's clip through server.py: partials then finals in seq order, and the transcript holds the finals."""
    async with server_process(tmp_path, "--source", str(JFK), "--sitting", "jfk", language="en") as url:
        events = await _events_until_adjourned(url, "jfk")
        async with httpx.AsyncClient(base_url=url) as client:
            transcript = (await client.get("/api/sittings/jfk/transcript?format=txt")).text
            vtt = (await client.get("/api/sittings/jfk/transcript?format=vtt")).text
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    types = [e["type"] for e in events]
    assert types[0] == "sitting.status" and types[1] == "sitting.status"  # created, then live
    assert "caption.partial" in types and "caption.final" in types
    assert types.index("caption.partial") < types.index("caption.final")
    finals = [e["data"] for e in events if e["type"] == "caption.final"]
    for caption in finals:
        assert {"text", "start", "end", "segment_id"} <= set(caption) and caption["start"] <= caption["end"]
    spoken = " ".join(c["text"] for c in finals).lower()
    assert "ask not what your country can do for you" in "".join(ch for ch in spoken if ch.isalpha() or ch == " ")
    for caption in finals:
        assert caption["text"] in transcript
    assert vtt.startswith("WEBVTT")


async def test_the_demo_sitting_captions_thai(tmp_path: Path):
    """server.py --demo creates the demo sitting, goes live, and publishes Thai final captions."""
    async with server_process(tmp_path, "--demo") as url:
        ws_url = url.replace("http://", "ws://") + "/ws"
        seen: set[str] = set()
        async with websockets.connect(ws_url) as ws:
            await ws.send(json.dumps({"op": "subscribe", "channel": "sitting:demo", "since": 0}))
            while "caption.final" not in seen:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 120))
                if frame.get("type"):
                    seen.add(frame["type"])
                    if frame["type"] == "caption.final":
                        assert any("\u0e00" <= ch <= "\u0e7f" for ch in frame["data"]["text"])
        assert {"sitting.status", "agenda.item", "speaker"} <= seen


@pytest.mark.parametrize(
    ("make_source", "message"),
    [
        (lambda tmp: str(tmp / "missing.wav"), "not found"),
        (lambda tmp: (tmp / "notes.txt").write_text("not audio") and str(tmp / "notes.txt"), "not a media file"),
        (lambda tmp: f"rtsp://op:s3cret@127.0.0.1:{_free_port()}/live?token=abc", "refused"),
    ],
    ids=["missing-file", "text-file", "refused-url"],
)
async def test_a_bad_source_is_reported_and_the_server_stays_up(tmp_path: Path, make_source, message: str):
    """A missing file, a text file or a refused URL: a clear error on the sitting and in /healthz; still serving.

    The URL's credentials, path and token are shown nowhere: not in /healthz, the status reason or the log.
    """
    source = make_source(tmp_path)
    async with server_process(tmp_path, "--source", source, "--sitting", "bad") as url:
        async with httpx.AsyncClient(base_url=url) as client:
            # A bound on waiting, not a speed requirement: a loaded machine can take a while to load the model.
            for _ in range(1200):
                feeds = (await client.get("/healthz")).json()["feeds"]
                if feeds and feeds[0]["state"] == "failed":
                    break
                await asyncio.sleep(0.1)
            assert feeds[0]["state"] == "failed" and message in feeds[0]["error"]
            ws_url = url.replace("http://", "ws://") + "/ws"
            async with websockets.connect(ws_url) as ws:
                await ws.send(json.dumps({"op": "subscribe", "channel": "sitting:bad", "since": 0}))
                reasons = []
                while not reasons:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    if frame.get("type") == "sitting.status" and frame["data"].get("reason"):
                        reasons.append(frame["data"]["reason"])
            assert reasons[0].startswith("feed error:") and message in reasons[0]
            assert (await client.get("/api/sittings")).status_code == 200
    log = (tmp_path / "server.log").read_text()
    for secret in ("s3cret", "token=abc", "/live"):
        assert secret not in json.dumps(feeds) and secret not in reasons[0] and secret not in log
