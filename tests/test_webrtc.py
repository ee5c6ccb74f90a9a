"""WHIP ingest and WHEP playback on the real app: Chromium publishes, aiortc watches, the real model captions."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aioice.ice
import av
import httpx
import numpy as np
import pytest
import uvicorn
import websockets
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack, VideoStreamTrack
from aiortc.rtcdtlstransport import RTCCertificate
from chromium import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from live_server import TOKEN, test_settings
from playwright.async_api import Page, async_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route
from test_dtls import rsa_certificate

from archive.models import Sitting
from common.http import json_error
from live.feed import LiveFeed
from live.webrtc import MAX_SDP_BYTES, PublishHandler, SinkFactory, WebRtcGateway, media_start
from server import create_app, uvicorn_config
from stream.hls import HlsWriter
from stream.source import AudioChunk, SourceGap
from stream.whip import MediaSink, WhipAudioSource
from transcribe.caption import Caption
from transcribe.engine import CaptionEngine
from transcribe.model import SharedModel, load_model

ROOT = Path(__file__).resolve().parent.parent
JFK = ROOT.parent / "shared" / "data" / "audio" / "en" / "jfk.flac"
PUBLISHER_PAGE = Path(__file__).resolve().parent / "webrtc_publisher.html"
VIEWER_PAGE = Path(__file__).resolve().parent / "webrtc_viewer.html"
WEBRTC_ARGS = [
    *CHROMIUM_ARGS,
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # Loopback candidates, and real addresses instead of mDNS names, keep ICE on 127.0.0.1 with no multicast.
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SDP = {"Content-Type": "application/sdp"}

needs_jfk = pytest.mark.skipif(not JFK.exists(), reason="../shared/data is not beside the checkout")


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gather ICE candidates on 127.0.0.1 only: these tests never touch any other address."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


# ---- the app under test ------------------------------------------------------------------------------------------


class RecordingSink:
    """A media sink that keeps what it was given, standing in for the HLS writer."""

    def __init__(self) -> None:
        self.video: list[tuple[tuple[int, int], float]] = []
        self.audio: list[float] = []
        self.closed = False

    def add_video_frame(self, frame: av.VideoFrame, t: float) -> None:
        self.video.append(((frame.width, frame.height), t))

    def add_audio_frame(self, frame: av.AudioFrame, t: float) -> None:
        self.audio.append(t)

    def close(self) -> None:
        self.closed = True


@dataclass
class Heard:
    """What an ``on_publish`` consumer got from a publisher's audio."""

    chunks: list[AudioChunk] = field(default_factory=list)
    gaps: list[SourceGap] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def consume(self, sitting_id: str, audio: WhipAudioSource) -> None:
        try:
            await audio.probe()
            async for item in audio:
                if isinstance(item, SourceGap):
                    self.gaps.append(item)
                else:
                    self.chunks.append(item)
        finally:
            self.ended.set()

    @property
    def loudest(self) -> float:
        return max((float(np.abs(c.samples).max()) for c in self.chunks if c.samples.size), default=0.0)


@dataclass
class App:
    url: str
    gateway: WebRtcGateway
    app: Starlette
    sinks: dict[str, RecordingSink]
    pages: str  # the origin of the test pages: another site than the app's

    async def create_sitting(self, sitting_id: str) -> None:
        async with httpx.AsyncClient(base_url=self.url, headers=AUTH) as client:
            r = await client.post("/api/sittings", json={"id": sitting_id, "title": "ทดสอบ", "chamber": "senate"})
            assert r.status_code == 201, r.text


async def _operator(request: Request) -> Response | None:
    if request.headers.get("authorization") == f"Bearer {TOKEN}":
        return None
    return json_error(401, "operator token required")


async def _publisher_page(request: Request) -> Response:
    return FileResponse(PUBLISHER_PAGE)


async def _viewer_page(request: Request) -> Response:
    return FileResponse(VIEWER_PAGE)


# The test pages live on a site of their own, as a real player or publisher page would: another origin (host name
# and port) than the app's, and none of the app's headers (its CSP allows no inline script, nor calls elsewhere).
TEST_PAGES = Starlette(
    routes=[Route("/test/publisher.html", _publisher_page), Route("/test/viewer.html", _viewer_page)]
)


@contextlib.asynccontextmanager
async def uvicorn_on_free_port(config: uvicorn.Config) -> AsyncIterator[int]:
    """Uvicorn serving ``config`` (on port 0: a free one) inside the test's event loop; yields the port."""
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def serve_webrtc(
    tmp_path: Path,
    on_publish: Callable[[Starlette], PublishHandler] | None = None,
    *,
    max_viewers: int = 20,
    media_sink: SinkFactory | None = None,
    **options: Any,
) -> AsyncIterator[App]:
    """The real app (store, recorder, hub) plus the gateway's routes under uvicorn, and the test pages on a second
    origin, ``App.pages``, which may call WHIP and WHEP.

    Publishers' frames go to a ``RecordingSink`` per sitting unless ``media_sink`` says otherwise."""
    settings = test_settings(tmp_path)
    app = create_app(settings)
    sinks: dict[str, RecordingSink] = {}

    def recording_sink(sitting_id: str, video: bool) -> MediaSink:
        sinks[sitting_id] = RecordingSink()
        return sinks[sitting_id]

    pages_config = uvicorn.Config(TEST_PAGES, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    async with uvicorn_on_free_port(pages_config) as pages_port:
        pages = f"http://localhost:{pages_port}"
        gateway = WebRtcGateway(
            app.state.store,
            operator_auth=_operator,
            on_publish=on_publish(app) if on_publish else None,
            media_sink=media_sink or recording_sink,
            max_viewers=max_viewers,
            connect_timeout=20.0,
            **{"whip_origins": (pages,), **options},
        )
        app.router.routes[0:0] = gateway.routes()
        async with uvicorn_on_free_port(uvicorn_config(app, settings)) as port:
            try:
                yield App(f"http://127.0.0.1:{port}", gateway, app, sinks, pages)
            finally:
                await gateway.close()
    assert gateway.peer_count == 0


# ---- peers -------------------------------------------------------------------------------------------------------


@pytest.fixture
def jfk_wav(tmp_path: Path) -> Path:
    """JFK's clip as the 16-bit PCM WAV Chromium's fake microphone plays (and loops)."""
    return wav_16k(JFK, tmp_path / "jfk.wav")


def wav_16k(audio: Path, out: Path) -> Path:
    """``audio`` as a 16 kHz mono 16-bit PCM WAV file at ``out``."""
    with av.open(str(audio)) as src, av.open(str(out), "w") as dst:
        stream = dst.add_stream("pcm_s16le", rate=16000, layout="mono")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
        for frame in src.decode(audio=0):
            for converted in resampler.resample(frame):
                dst.mux(stream.encode(converted))
        for converted in resampler.resample(None):
            dst.mux(stream.encode(converted))
        dst.mux(stream.encode(None))
    return out


@contextlib.asynccontextmanager
async def chromium_publisher(app: App, sitting_id: str, wav: Path, *, video: bool) -> AsyncIterator[Page]:
    """Headless Chromium publishing ``wav`` as its microphone (and its fake camera) over WHIP until it leaves."""
    args = [*WEBRTC_ARGS, f"--use-file-for-fake-audio-capture={wav}"]
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            page = await browser.new_page()
            query = f"whip={app.url}/whip/{sitting_id}&token={TOKEN}&video={int(video)}"
            await page.goto(f"{app.pages}/test/publisher.html?{query}")
            await page.wait_for_function("['connected', 'error', 'failed'].includes(window.whip.state)")
            state = await page.evaluate("window.whip")
            assert state["state"] == "connected", state
            yield page
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def aiortc_publisher(
    app: App, sitting_id: str, *, video: bool = False, certificate: RTCCertificate | None = None
) -> AsyncIterator[str]:
    """An aiortc peer publishing silence (and a green picture) over WHIP; yields the session's Location.

    ``certificate``: the DTLS certificate it presents instead of aiortc's own ECDSA one."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if certificate is not None:
        pc._RTCPeerConnection__certificates[0] = certificate  # type: ignore[attr-defined]
    tracks: list[MediaStreamTrack] = [AudioStreamTrack(), *([VideoStreamTrack()] if video else [])]
    try:
        for track in tracks:
            pc.addTransceiver(track, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        async with httpx.AsyncClient(base_url=app.url) as client:
            r = await client.post(f"/whip/{sitting_id}", content=pc.localDescription.sdp, headers={**SDP, **AUTH})
            assert r.status_code == 201, r.text
            await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
            yield r.headers["location"]
    finally:
        for track in tracks:
            track.stop()
        await pc.close()


@dataclass
class Watcher:
    """A recvonly WHEP viewer built on aiortc, counting the frames it receives per kind."""

    pc: RTCPeerConnection
    frames: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    def on_track(self, track: MediaStreamTrack) -> None:
        self.readers.append(asyncio.create_task(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return
            self.frames[track.kind] += 1

    async def close(self) -> None:
        await self.pc.close()
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


def whep_offer_pc(kinds: tuple[str, ...] = ("audio", "video")) -> RTCPeerConnection:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for kind in kinds:
        pc.addTransceiver(kind, direction="recvonly")
    return pc


@contextlib.asynccontextmanager
async def watcher(app: App, sitting_id: str) -> AsyncIterator[tuple[Watcher, httpx.Response]]:
    """A WHEP viewer of ``sitting_id``; yields it with the server's answer to its POST (201 or otherwise)."""
    viewer = Watcher(whep_offer_pc())
    viewer.pc.on("track", viewer.on_track)
    try:
        await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
        async with httpx.AsyncClient(base_url=app.url) as client:
            r = await client.post(f"/whep/{sitting_id}", content=viewer.pc.localDescription.sdp, headers=SDP)
        if r.status_code == 201:
            await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        yield viewer, r
    finally:
        await viewer.close()


async def eventually(check: Callable[[], bool], deadline: float = 20.0) -> None:
    """Wait for ``check()`` to hold: a deadline against hanging, not a timing claim."""
    async with asyncio.timeout(deadline):
        while not check():
            await asyncio.sleep(0.05)


# ---- WHIP from a browser, WHEP to an aiortc viewer -----------------------------------------------------------


@pytest.mark.browser
@needs_chromium
@needs_jfk
async def test_chromium_publishes_over_whip_and_an_aiortc_viewer_watches_over_whep(tmp_path: Path, jfk_wav: Path):
    """Chromium's WHIP audio and video reach the audio consumer, the sink and a WHEP viewer; DELETE ends it all."""
    heard = Heard()
    async with serve_webrtc(tmp_path, lambda app: heard.consume) as app:
        await app.create_sitting("whip-1")
        async with chromium_publisher(app, "whip-1", jfk_wav, video=True) as page:
            publication = app.gateway.publication("whip-1")
            assert publication is not None
            async with watcher(app, "whip-1") as (viewer, answer):
                assert answer.status_code == 201, answer.text
                assert answer.headers["content-type"] == "application/sdp"
                assert answer.headers["location"].startswith("/whep/whip-1/")
                await eventually(lambda: viewer.frames["audio"] >= 25 and viewer.frames["video"] >= 5)
                assert app.gateway.peer_count == 2
                await eventually(lambda: sum(c.duration for c in heard.chunks) >= 2.0)
                await eventually(lambda: len(app.sinks["whip-1"].video) >= 5)

                await page.evaluate("window.stopPublishing()")
                assert await page.evaluate("window.whip.deleted") == 200
                # The viewer's tracks end with the publisher's.
                await eventually(lambda: all(reader.done() for reader in viewer.readers))
            await eventually(heard.ended.is_set)
            await eventually(lambda: app.gateway.peer_count == 0)

    stats = publication.stats()
    assert stats.audio_frames > 0 and stats.video_frames > 0
    chunks = heard.chunks
    assert chunks[0].start == 0.0
    assert all(c.samples.dtype == np.float32 for c in chunks)
    # Contiguous media time: each chunk starts where the one before ended.
    assert all(abs(b.start - a.end) < 1e-6 for a, b in zip(chunks, chunks[1:], strict=False))
    assert heard.loudest > 0.05, "the JFK speech should come through, not silence"
    assert heard.gaps == []  # a publisher that says goodbye (DELETE) leaves no outage behind
    sink = app.sinks["whip-1"]
    assert sink.closed
    times = [t for _, t in sink.video]
    assert times == sorted(times) and sink.audio == sorted(sink.audio)


# ---- captions from WHIP audio ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> Iterator[SharedModel]:
    shared = load_model()
    try:
        yield shared
    finally:
        shared.close()


def captioning(model: SharedModel) -> Callable[[Starlette], PublishHandler]:
    """An ``on_publish`` that captions the publisher's audio in English with a ``LiveFeed``, as the server does."""

    def bind(app: Starlette) -> PublishHandler:
        state = app.state

        async def on_publish(sitting_id: str, audio: WhipAudioSource) -> None:
            def make_engine(on_caption: Callable[[Caption], Awaitable[None]]) -> CaptionEngine:
                return CaptionEngine(model, language="en", on_caption=on_caption)

            feed = LiveFeed(sitting_id, audio, make_engine, state.recorder, state.metrics, adjourn_at_end=False)
            await feed.run()

        return on_publish

    return bind


@pytest.mark.browser
@pytest.mark.model
@needs_chromium
@needs_jfk
async def test_whip_audio_from_chromium_is_captioned_on_the_sitting_channel(
    tmp_path: Path, jfk_wav: Path, model: SharedModel
):
    """JFK's speech sent over WHIP comes back as caption.final events on the sitting's channel, in the archive."""
    async with serve_webrtc(tmp_path, captioning(model)) as app:
        await app.create_sitting("whip-cap")
        ws_url = app.url.replace("http://", "ws://") + "/ws"
        async with websockets.connect(ws_url) as ws:
            await ws.send(json.dumps({"op": "subscribe", "channel": "sitting:whip-cap", "since": 0}))
            async with chromium_publisher(app, "whip-cap", jfk_wav, video=False) as page:
                finals: list[dict] = []
                statuses: list[str] = []
                async with asyncio.timeout(90):  # a deadline against hanging, not a speed claim
                    while not any("country" in f["text"].lower() for f in finals):
                        frame = json.loads(await ws.recv())
                        if frame.get("type") == "caption.final":
                            finals.append(frame["data"])
                        elif frame.get("type") == "sitting.status":
                            statuses.append(frame["data"]["status"])
                await page.evaluate("window.stopPublishing()")
        async with httpx.AsyncClient(base_url=app.url) as client:
            transcript = (await client.get("/api/sittings/whip-cap/transcript?format=txt")).text
    assert "live" in statuses  # the feed put the sitting live when the audio started
    assert all(0.0 <= f["start"] <= f["end"] for f in finals)
    assert any(word in transcript.lower() for word in ("country", "americans", "ask not"))


# ---- refusals, and nothing left behind ----------------------------------------------------------------------


async def _settled(app: App, baseline: int) -> None:
    """No peer connection open, and no more tasks than before the requests."""
    await eventually(lambda: app.gateway.peer_count == 0 and len(asyncio.all_tasks()) <= baseline)


async def _offer(kinds: tuple[str, ...] = ("audio",), direction: str = "sendonly") -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        for kind in kinds:
            pc.addTransceiver(kind, direction=direction)
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


async def test_bad_whip_and_whep_requests_are_refused_and_leave_nothing_behind(tmp_path: Path):
    """Bad WHIP/WHEP requests (invalid sitting ids included) get 401/404/415/400/503 JSON errors and leave no peer
    connection or task behind."""
    offer = await _offer()
    async with serve_webrtc(tmp_path) as app, httpx.AsyncClient(base_url=app.url) as client:
        await app.create_sitting("s1")
        assert (await client.get("/healthz")).status_code == 200
        baseline = len(asyncio.all_tasks())
        cases: list[tuple[str, str, dict[str, str], str, int]] = [
            ("POST", "/whip/s1", SDP, offer, 401),
            ("POST", "/whip/s1", {**SDP, "Authorization": "Bearer wrong"}, offer, 401),
            ("POST", "/whip/nope", {**SDP, **AUTH}, offer, 404),
            ("POST", "/whip/s1", {"Content-Type": "text/plain", **AUTH}, offer, 415),
            ("POST", "/whip/s1", {**SDP, **AUTH}, "this is not SDP", 400),
            ("POST", "/whip/s1", {**SDP, **AUTH}, "v=0\r\nm=audio x\r\n", 400),
            ("POST", "/whip/s1", {**SDP, **AUTH}, offer.replace("a=ice-ufrag", "a=x-ufrag"), 400),
            ("POST", "/whip/s1", {**SDP, **AUTH}, await _offer(("video",)), 400),
            ("POST", "/whip/s1", {**SDP, **AUTH}, await _offer(direction="recvonly"), 400),
            ("DELETE", "/whip/s1/no-such-session", AUTH, "", 404),
            ("DELETE", "/whip/s1/no-such-session", {}, "", 401),
            ("POST", "/whep/nope", SDP, await _offer(direction="recvonly"), 404),
            ("POST", "/whep/bad%20id", SDP, await _offer(direction="recvonly"), 404),
            ("POST", "/whip/" + "x" * 65, {**SDP, **AUTH}, offer, 404),
            ("POST", "/whip/.hidden", {**SDP, **AUTH}, offer, 404),
            ("POST", "/whep/s1", SDP, "garbage", 400),
            ("POST", "/whep/s1", SDP, offer, 400),
            ("DELETE", "/whep/s1/no-such-session", {}, "", 404),
        ]
        for method, path, headers, body, status in cases:
            r = await client.request(method, path, headers=headers, content=body)
            assert r.status_code == status, (method, path, headers, r.text)
            assert r.json()["ok"] is False and r.json()["status"] == status
        r = await client.post("/whep/s1", headers=SDP, content=await _offer(direction="recvonly"))
        assert r.status_code == 503
        assert r.json() == {"ok": False, "status": 503, "error": r.json()["error"], "hls": "/live/s1/index.m3u8"}
        await _settled(app, baseline)


async def test_one_publisher_per_sitting_and_the_viewer_cap_points_to_hls(tmp_path: Path):
    """A second publisher gets 409, a viewer over the cap 503 with the HLS URL, a leaving viewer frees its place."""
    async with serve_webrtc(tmp_path, max_viewers=1) as app, httpx.AsyncClient(base_url=app.url) as client:
        await app.create_sitting("s1")
        assert (await client.get("/healthz")).status_code == 200
        baseline = len(asyncio.all_tasks())
        async with aiortc_publisher(app, "s1") as location:
            r = await client.post("/whip/s1", headers={**SDP, **AUTH}, content=await _offer())
            assert r.status_code == 409, r.text
            async with watcher(app, "s1") as (first, answer):
                assert answer.status_code == 201, answer.text
                await eventually(lambda: first.frames["audio"] > 0)
                async with watcher(app, "s1") as (_, refused):
                    assert refused.status_code == 503
                    assert refused.json()["hls"] == "/live/s1/index.m3u8"
                r = await client.delete(answer.headers["location"])
                assert r.status_code == 200
                assert app.gateway.viewer_count == 0
            async with watcher(app, "s1") as (second, answer):
                assert answer.status_code == 201, answer.text
                await eventually(lambda: second.frames["audio"] > 0)
            r = await client.delete(location, headers=AUTH)
            assert r.status_code == 200
            r = await client.delete(location, headers=AUTH)
            assert r.status_code == 404
        await _settled(app, baseline)


async def test_a_publisher_that_vanishes_leaves_a_gap_and_frees_the_sitting(tmp_path: Path):
    """A publisher that drops without DELETE ends its audio with a SourceGap and frees the sitting at once."""
    heard = Heard()
    async with serve_webrtc(tmp_path, lambda app: heard.consume) as app:
        await app.create_sitting("s1")
        async with aiortc_publisher(app, "s1"):
            await eventually(lambda: len(heard.chunks) >= 2)
        await eventually(heard.ended.is_set)
        assert [gap.duration for gap in heard.gaps] == [None]
        assert heard.gaps[0].at == heard.chunks[-1].end
        assert app.gateway.publication("s1") is None
        await eventually(lambda: app.gateway.peer_count == 0)
        async with aiortc_publisher(app, "s1"):
            assert app.gateway.publication("s1") is not None


def test_media_time_continues_from_when_the_sitting_first_went_live():
    """A publisher joining a sitting that went live 90 s ago starts at media time 90; one that never did, at 0."""
    from datetime import UTC, datetime

    def sitting(started_at: str | None) -> Sitting:
        return Sitting("s1", "t", "senate", "live", None, "2025-01-01T09:00:00.000Z", started_at, None)

    now = datetime(2025, 1, 1, 10, 1, 30, tzinfo=UTC)
    assert media_start(sitting("2025-01-01T10:00:00.000Z"), now) == 90.0
    assert media_start(sitting(None), now) == 0.0


async def test_whip_media_is_written_to_the_sittings_hls(tmp_path: Path):
    """A WHIP publisher's media becomes closed H.264 + AAC HLS segments; its audio source names the same writer."""
    writers: dict[str, HlsWriter] = {}
    named: list[HlsWriter | None] = []

    def hls_sink(sitting_id: str, video: bool) -> HlsWriter:
        writer = writers[sitting_id] = HlsWriter(tmp_path / "live" / sitting_id, segment_s=0.5, window=3)
        writer.begin_input(video=video, audio=True)
        return writer

    async def drain(sitting_id: str, audio: WhipAudioSource) -> None:
        named.append(audio.hls)
        async for _ in audio:
            pass

    async with (
        serve_webrtc(tmp_path, lambda app: drain, media_sink=hls_sink) as app,
        httpx.AsyncClient(base_url=app.url) as client,
    ):
        await app.create_sitting("s1")
        async with aiortc_publisher(app, "s1", video=True) as location:
            writer = writers["s1"]
            await eventually(lambda: writer.stats().segments >= 2)
            assert (await client.delete(location, headers=AUTH)).status_code == 200
        assert await asyncio.to_thread(writer.wait_closed, 20)
    assert named == [writer]
    stats = writer.stats()
    assert stats.failed is None and stats.mux_errors == 0
    playlist = writer.media_playlist.read_text()
    assert "#EXT-X-ENDLIST" in playlist
    segments = [line for line in playlist.splitlines() if line.endswith(".ts")]
    assert len(segments) >= 2
    with av.open(str(writer.out_dir / segments[0])) as ts:
        assert {s.type for s in ts.streams} == {"video", "audio"}
        assert ts.streams.video[0].codec_context.name == "h264"


# ---- real encoders' certificates, other origins, abuse -------------------------------------------------------


async def test_a_publisher_presenting_an_rsa_certificate_completes_dtls(tmp_path: Path):
    """A WHIP publisher whose DTLS certificate is RSA (as GStreamer's webrtcbin's is) connects and its audio flows."""
    heard = Heard()
    async with serve_webrtc(tmp_path, lambda app: heard.consume) as app:
        await app.create_sitting("s1")
        async with aiortc_publisher(app, "s1", certificate=rsa_certificate()):
            publication = app.gateway.publication("s1")
            assert publication is not None
            await eventually(lambda: publication.connected and len(heard.chunks) >= 2)


async def test_whep_and_whip_answer_cors_preflights_for_their_allowed_origins(tmp_path: Path):
    """WHEP serves any origin, WHIP only its configured ones; preflights get 204 (403 for an origin not allowed),
    and every answer, errors included, carries the origin and exposes Location."""
    player, studio = "http://player.example", "http://studio.example"
    preflight = {
        "Origin": player,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    async with serve_webrtc(tmp_path, whip_origins=(studio,)) as app, httpx.AsyncClient(base_url=app.url) as client:
        await app.create_sitting("s1")
        for path in ("/whep/s1", "/whep/s1/a-session"):
            r = await client.options(path, headers=preflight)
            assert r.status_code == 204, (path, r.text)
            assert r.headers["access-control-allow-origin"] == "*"
            assert r.headers["access-control-allow-methods"] == "POST, DELETE"
            assert "Content-Type" in r.headers["access-control-allow-headers"]
        r = await client.options("/whip/s1", headers=preflight)
        assert r.status_code == 403 and r.json()["status"] == 403
        assert "access-control-allow-origin" not in r.headers
        r = await client.options("/whip/s1/a-session", headers={**preflight, "Origin": studio})
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == studio and r.headers["vary"] == "Origin"
        assert "Authorization" in r.headers["access-control-allow-headers"]
        r = await client.options("/whep/s1")  # no Origin: not a preflight, just the methods
        assert r.status_code == 204 and r.headers["allow"] == "POST, DELETE, OPTIONS"

        cross = {**SDP, "Origin": player}
        r = await client.post("/whep/s1", headers=cross, content=await _offer(direction="recvonly"))
        assert r.status_code == 503 and r.json()["hls"] == "/live/s1/index.m3u8"
        assert r.headers["access-control-allow-origin"] == "*"
        async with aiortc_publisher(app, "s1"):
            r = await client.post("/whep/s1", headers=cross, content=await _offer(direction="recvonly"))
            assert r.status_code == 201, r.text
            assert r.headers["access-control-allow-origin"] == "*"
            assert r.headers["access-control-expose-headers"] == "Location"
            r = await client.delete(r.headers["location"], headers={"Origin": player})
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
        r = await client.post("/whip/s1", headers={**cross, **AUTH}, content=await _offer())
        assert "access-control-allow-origin" not in r.headers


@pytest.mark.browser
@needs_chromium
async def test_a_player_on_another_origin_watches_over_whep(tmp_path: Path):
    """A page from another origin (another host name and port) POSTs its WHEP offer, reads Location, shows the
    video, and DELETEs its session, all through CORS."""
    async with serve_webrtc(tmp_path) as app:
        await app.create_sitting("s1")
        async with aiortc_publisher(app, "s1", video=True):
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=WEBRTC_ARGS)
                try:
                    page = await browser.new_page()
                    await page.goto(f"{app.pages}/test/viewer.html?whep={app.url}/whep/s1")
                    assert await page.evaluate("location.origin") == app.pages != app.url
                    await page.wait_for_function("window.whep.frames >= 5 || window.whep.state === 'error'")
                    state = await page.evaluate("window.whep")
                    assert state["error"] is None, state
                    assert state["location"].startswith("/whep/s1/") and state["width"] > 0
                    assert app.gateway.viewer_count == 1
                    await page.evaluate("window.stopWatching()")
                    assert await page.evaluate("window.whep.deleted") == 200
                finally:
                    await browser.close()
            assert app.gateway.viewer_count == 0


class CountedBody:
    """A request body of ``total`` bytes sent in 64 KiB chunks, counting how much of it the server took."""

    CHUNK = 64 * 1024

    def __init__(self, total: int) -> None:
        self.total = total
        self.taken = 0

    def __aiter__(self) -> CountedBody:
        return self

    async def __anext__(self) -> bytes:
        if self.taken >= self.total:
            raise StopAsyncIteration
        self.taken += self.CHUNK
        return b"v" * self.CHUNK


async def test_a_huge_chunked_offer_is_refused_with_413_without_being_read(tmp_path: Path):
    """A 10 MB chunked body to WHEP or WHIP gets 413 once the cap is passed: the rest is never read."""
    app = create_app(test_settings(tmp_path))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://sapha.test") as client,
    ):
        r = await client.post("/api/sittings", headers=AUTH, json={"id": "s1", "title": "t", "chamber": "senate"})
        assert r.status_code == 201, r.text
        for path, headers in (("/whep/s1", SDP), ("/whip/s1", {**SDP, **AUTH})):
            body = CountedBody(10 * 1024 * 1024)
            r = await client.post(path, headers=headers, content=body)
            assert r.status_code == 413, r.text
            assert r.json()["ok"] is False and r.json()["status"] == 413
            assert body.taken <= MAX_SDP_BYTES + CountedBody.CHUNK


async def test_each_address_gets_a_few_whep_viewers_then_429(tmp_path: Path):
    """Past ``max_viewers_per_ip`` from one address a viewer gets 429 with the HLS URL; a leaving one frees its
    place."""
    async with serve_webrtc(tmp_path, max_viewers=10, max_viewers_per_ip=1) as app:
        await app.create_sitting("s1")
        async with aiortc_publisher(app, "s1"):
            async with watcher(app, "s1") as (first, answer):
                assert answer.status_code == 201, answer.text
                async with watcher(app, "s1") as (_, refused):
                    assert refused.status_code == 429
                    assert refused.json() == {
                        "ok": False,
                        "status": 429,
                        "error": refused.json()["error"],
                        "hls": "/live/s1/index.m3u8",
                    }
                async with httpx.AsyncClient(base_url=app.url) as client:
                    assert (await client.delete(answer.headers["location"])).status_code == 200
            async with watcher(app, "s1") as (_, again):
                assert again.status_code == 201, again.text


async def test_whip_takes_an_operator_accounts_token_and_refuses_a_moderators(tmp_path: Path):
    """On the real app, WHIP accepts an operator account's API token (201) and refuses a moderator's (403)."""
    from live_server import serve

    offer = await _offer()
    async with serve(test_settings(tmp_path)) as running, httpx.AsyncClient(base_url=running.url) as client:
        tokens = {}
        for name, role in (("operator-1", "operator"), ("moderator-1", "moderator")):
            account = await client.post(
                "/api/staff/accounts",
                json={"username": name, "password": "a long enough secret 1", "roles": [role]},
                headers=AUTH,
            )
            account_id = account.json()["account"]["id"]
            made = await client.post(f"/api/staff/accounts/{account_id}/tokens", json={}, headers=AUTH)
            tokens[role] = {"Authorization": f"Bearer {made.json()['token']}"}
        r = await client.post("/api/sittings", json={"id": "s1", "title": "ทดสอบ", "chamber": "senate"}, headers=AUTH)
        assert r.status_code == 201, r.text
        refused = await client.post("/whip/s1", headers={**SDP, **tokens["moderator"]}, content=offer)
        assert refused.status_code == 403 and refused.json()["ok"] is False
        accepted = await client.post("/whip/s1", headers={**SDP, **tokens["operator"]}, content=offer)
        assert accepted.status_code == 201, accepted.text
        assert (await client.delete(accepted.headers["Location"], headers=tokens["operator"])).status_code == 200
