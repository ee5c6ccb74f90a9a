"""WHIP from a real encoder stack: GStreamer's webrtcbin (RSA DTLS certificate, H.264 + Opus) publishing to the app.

The publisher is ``tests/gst_whip_publisher.py``, run by Debian's python3 with python3-gi (``make test`` installs
GStreamer through ``make system-deps``); these tests skip only where it is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import av
import httpx
import pytest
import uvicorn
import websockets
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from live_server import TOKEN, Running, test_settings
from test_webrtc import JFK, Heard, eventually, needs_jfk, serve_webrtc, wav_16k

from server import Settings, create_app, uvicorn_config
from stream.hls import HlsWriter
from transcribe.model import SharedModel, load_model

SYSTEM_PYTHON = Path("/usr/bin/python3")
PUBLISHER = Path(__file__).resolve().parent / "gst_whip_publisher.py"
ELEMENTS = ("webrtcbin", "nicesrc", "x264enc", "opusenc", "rtph264pay", "rtpopuspay", "wavparse", "audiomixer")
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@functools.cache
def gstreamer_missing() -> str | None:
    """Why the GStreamer publisher cannot run here, or None when it can."""
    if not SYSTEM_PYTHON.exists() or shutil.which("gst-inspect-1.0") is None:
        return "no /usr/bin/python3 or gst-inspect-1.0"
    for element in ELEMENTS:
        if subprocess.run(["gst-inspect-1.0", element], capture_output=True).returncode != 0:
            return f"no GStreamer element {element}"
    probe = "import gi; gi.require_version('GstWebRTC', '1.0'); from gi.repository import GstWebRTC"
    if subprocess.run([str(SYSTEM_PYTHON), "-c", probe], capture_output=True).returncode != 0:
        return "no python3-gi with GstWebRTC"
    return None


@pytest.fixture(scope="module")
def gstreamer() -> None:
    missing = gstreamer_missing()
    if missing:
        pytest.skip(f"needs GStreamer webrtcbin, x264, Opus and python3-gi (make system-deps installs them): {missing}")


@pytest.fixture
def jfk_wav(tmp_path: Path) -> Path:
    return wav_16k(JFK, tmp_path / "jfk.wav")


class GstPublisher:
    """The publisher subprocess, read as the JSON events it prints."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log
        self.events: list[dict] = []

    async def until(self, event: str, **match: object) -> dict:
        """The next event named ``event`` with the given fields; fails if the publisher errs or exits first."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(60):  # a deadline against hanging, not a speed claim
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise AssertionError(f"the publisher exited; events {self.events}; log:\n{self.log.read_text()}")
                got = json.loads(line)
                self.events.append(got)
                if got["event"] == "error":
                    raise AssertionError(f"the publisher failed: {got}")
                if got["event"] == event and all(got.get(k) == v for k, v in match.items()):
                    return got

    async def leave(self) -> int:
        """Ask it to DELETE its session and exit; the DELETE's status."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"stop\n")
        await self.proc.stdin.drain()
        deleted = await self.until("deleted")
        return int(deleted["status"])


@contextlib.asynccontextmanager
async def gst_publisher(url: str, wav: Path, tmp_path: Path) -> AsyncIterator[GstPublisher]:
    """webrtcbin publishing a test picture and ``wav`` to the WHIP endpoint ``url``; stopped and reaped on exit."""
    log = tmp_path / "gst-publisher.log"
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            str(SYSTEM_PYTHON),
            str(PUBLISHER),
            url,
            TOKEN,
            "--wav",
            str(wav),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    try:
        yield GstPublisher(proc, log)
    finally:
        if proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()  # end of input: it DELETEs its session and quits
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def is_rsa(pem: str) -> bool:
    return isinstance(x509.load_pem_x509_certificate(pem.encode()).public_key(), rsa.RSAPublicKey)


def probe_segment(path: Path) -> dict[str, tuple[str, int, int]]:
    """Each stream of an MPEG-TS segment: kind → (codec, width, height), with decoded video proving the picture."""
    found = {}
    with av.open(str(path)) as ts:
        for stream in ts.streams:
            ctx = stream.codec_context
            found[stream.type] = (ctx.name, getattr(ctx, "width", 0), getattr(ctx, "height", 0))
        pictures = [f for f in ts.decode(video=0)] if ts.streams.video else []
    assert not ts.streams.video or pictures, f"{path.name} has a video stream but no picture decodes"
    return found


# ---- the gateway alone: DTLS with an RSA peer, media into HLS ------------------------------------------------


@needs_jfk
async def test_gstreamer_publisher_with_an_rsa_certificate_is_written_to_hls(
    tmp_path: Path, gstreamer: None, jfk_wav: Path
):
    """webrtcbin, presenting an RSA certificate, gets 201, completes ICE and DTLS, and its H.264 picture and Opus
    speech reach the captions' audio and HLS; DELETE ends it."""
    writers: dict[str, HlsWriter] = {}
    heard = Heard()

    def hls_sink(sitting_id: str, video: bool) -> HlsWriter:
        writer = writers[sitting_id] = HlsWriter(tmp_path / "live" / sitting_id, segment_s=1.0, window=5)
        writer.begin_input(video=video, audio=True)
        return writer

    async with serve_webrtc(tmp_path, lambda app: heard.consume, media_sink=hls_sink) as app:
        await app.create_sitting("gst")
        async with gst_publisher(f"{app.url}/whip/gst", jfk_wav, tmp_path) as publisher:
            answer = await publisher.until("answer")
            assert answer["status"] == 201, answer
            assert answer["location"].startswith(f"{app.url}/whip/gst/")
            connected = await publisher.until("connection", state="connected")
            assert is_rsa(connected["certificate"]), "webrtcbin should present an RSA certificate"
            publication = app.gateway.publication("gst")
            assert publication is not None
            await eventually(lambda: publication.connected)
            writer = writers["gst"]
            await eventually(lambda: writer.stats().segments >= 2 and heard.loudest > 0.05, deadline=40)
            assert await publisher.leave() == 200
        await eventually(heard.ended.is_set)
        assert app.gateway.publication("gst") is None
        assert await asyncio.to_thread(writer.wait_closed, 20)
    stats = publication.stats()
    assert stats.audio_frames > 0 and stats.video_frames > 0
    assert heard.gaps == []  # it said goodbye with DELETE: no outage
    playlist = writer.media_playlist.read_text()
    assert "#EXT-X-ENDLIST" in playlist
    segments = [line for line in playlist.splitlines() if line.endswith(".ts")]
    assert probe_segment(writer.out_dir / segments[1]) == {"video": ("h264", 640, 360), "audio": ("aac", 0, 0)}


# ---- the whole server: captions and HLS from the publisher ----------------------------------------------------


@pytest.fixture(scope="module")
def model(gstreamer: None) -> Iterator[SharedModel]:
    """The whisper model, loaded once, and only where the publisher can run."""
    shared = load_model()
    try:
        yield shared
    finally:
        shared.close()


@contextlib.asynccontextmanager
async def serve_with(settings: Settings, model: SharedModel) -> AsyncIterator[Running]:
    """The whole app under uvicorn, captioning WHIP audio with the test's model (loaded once per module)."""
    app = create_app(settings, model=model)
    server = uvicorn.Server(uvicorn_config(app, settings))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Running(app, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await task


async def _finals_until(ws: websockets.ClientConnection, word: str) -> list[dict]:
    finals: list[dict] = []
    async with asyncio.timeout(120):  # a deadline against hanging, not a speed claim
        while not any(word in f["text"].lower() for f in finals):
            frame = json.loads(await ws.recv())
            if frame.get("type") == "caption.final":
                finals.append(frame["data"])
    return finals


async def _hls_segment(client: httpx.AsyncClient, sitting_id: str, tmp_path: Path) -> Path:
    """The second segment of the sitting's HLS, fetched the way a player does."""
    master = (await client.get(f"/live/{sitting_id}/index.m3u8")).text
    media = next(line for line in master.splitlines() if line and not line.startswith("#"))
    playlist = (await client.get(f"/live/{sitting_id}/{media}")).text
    name = [line for line in playlist.splitlines() if line.endswith(".ts")][1]
    path = tmp_path / name
    path.write_bytes((await client.get(f"/live/{sitting_id}/{name}")).content)
    return path


@pytest.mark.model
@needs_jfk
async def test_gstreamer_publisher_is_captioned_and_in_the_sittings_hls(
    tmp_path: Path, gstreamer: None, jfk_wav: Path, model: SharedModel
):
    """On the real server, a webrtcbin publisher's speech becomes caption.final events and its picture the
    sitting's HLS (H.264 640x360); DELETE ends the publication."""
    settings = test_settings(tmp_path, whisper_language="en", hls_dir=str(tmp_path / "hls"))
    async with serve_with(settings, model) as running, httpx.AsyncClient(base_url=running.url, headers=AUTH) as client:
        r = await client.post("/api/sittings", json={"id": "gst", "title": "ทดสอบ", "chamber": "senate"})
        assert r.status_code == 201, r.text
        async with websockets.connect(running.ws_url) as ws:
            await ws.send(json.dumps({"op": "subscribe", "channel": "sitting:gst", "since": 0}))
            async with gst_publisher(f"{running.url}/whip/gst", jfk_wav, tmp_path) as publisher:
                assert (await publisher.until("answer"))["status"] == 201
                assert is_rsa((await publisher.until("connection", state="connected"))["certificate"])
                finals = await _finals_until(ws, "country")
                segment = await _hls_segment(client, "gst", tmp_path)
                assert await publisher.leave() == 200
        assert all(0.0 <= f["start"] <= f["end"] for f in finals)
        assert probe_segment(segment)["video"] == ("h264", 640, 360)
        assert running.app.state.webrtc.publication("gst") is None
