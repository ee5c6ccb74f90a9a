"""AudioSource against real media: files made here with PyAV, shared Thai speech, the bundled demo, sockets."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import io
import json
import random
import socket
import threading
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from common.backoff import backoff_delay
from stream.demo_media import DEMO_AUDIO, load_demo_media
from stream.source import SAMPLE_RATE, AudioChunk, AudioSource, SourceError, SourceGap, is_network_uri
from stream.uri import redact_uri

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
THAI_22K = SHARED_DATA / "audio" / "th" / "cv6_th_23657550_trim.wav"


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Write int16 ``samples`` shaped (channels, n) as a PCM WAV file."""
    layout = "mono" if samples.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples.T.reshape(1, -1)), "s16", layout)
        frame.sample_rate = rate
        frame.pts = 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def sine(seconds: float, rate: int, *, hz: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    wave = (0.5 * np.sin(2 * np.pi * hz * t) * 32767).astype(np.int16)
    return np.tile(wave, (channels, 1))


def source_samples(path: Path) -> tuple[int, int]:
    """(sample count per channel, sample rate) of a file, counted by decoding it."""
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].sample_rate
        return sum(frame.samples for frame in container.decode(audio=0)), rate


async def collect(source: AudioSource, limit: int | None = None) -> list[AudioChunk | SourceGap]:
    items: list[AudioChunk | SourceGap] = []
    async with contextlib.aclosing(source.chunks()) as chunks:
        async for item in chunks:
            items.append(item)
            if limit is not None and len(items) >= limit:
                break
    return items


def assert_contiguous(chunks: list[AudioChunk]) -> None:
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.start == pytest.approx(before.start + len(before.samples) / SAMPLE_RATE, abs=1e-9)


@pytest.fixture
def refusing_port() -> Iterator[socket.socket]:
    """A TCP socket that is bound but not listening: connections to its port are refused, with no race."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class HangUpAfterSending(http.server.BaseHTTPRequestHandler):
    """A live stream that breaks: every request gets the same audio with no length, then the server hangs up."""

    def __init__(self, *args: Any, payload: bytes, **kwargs: Any) -> None:
        self.payload = payload  # set first: the base class handles the request inside __init__
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "audio/aac")
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(sock: socket.socket, handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[None]:
    """Start serving HTTP on an already-bound socket (until now refusing connections)."""
    server = http.server.ThreadingHTTPServer(sock.getsockname(), handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.server_activate()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join()


async def test_real_thai_wav_becomes_contiguous_16k_mono_float32_chunks() -> None:
    """A real 22.05 kHz Thai clip comes out as 16 kHz mono float32 chunks covering exactly its duration."""
    if not THAI_22K.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    n_in, rate_in = source_samples(THAI_22K)
    assert rate_in == 22050
    chunks = await collect(AudioSource(str(THAI_22K), chunk_seconds=0.5))
    assert all(isinstance(c, AudioChunk) for c in chunks)
    audio = [c for c in chunks if isinstance(c, AudioChunk)]
    assert all(c.samples.dtype == np.float32 and c.samples.ndim == 1 for c in audio)
    assert all(len(c.samples) == 8000 for c in audio[:-1])
    assert audio[0].start == 0.0
    assert_contiguous(audio)
    total = sum(len(c.samples) for c in audio)
    assert abs(total - n_in * SAMPLE_RATE / rate_in) <= 4
    assert 0.0 < float(np.abs(np.concatenate([c.samples for c in audio])).max()) <= 1.0


async def test_stereo_48k_sine_comes_out_mono_16k_at_the_same_pitch(tmp_path: Path) -> None:
    """A stereo 48 kHz 440 Hz sine is downmixed to mono and resampled to 16 kHz without changing pitch."""
    path = write_wav(tmp_path / "stereo.wav", sine(1.0, 48_000, channels=2), 48_000)
    chunks = await collect(AudioSource(str(path), chunk_seconds=0.25))
    samples = np.concatenate([c.samples for c in chunks if isinstance(c, AudioChunk)])
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - SAMPLE_RATE) <= 4
    spectrum = np.abs(np.fft.rfft(samples))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(samples)
    assert peak_hz == pytest.approx(440.0, abs=2.0)


async def test_loop_replays_the_file_with_media_time_still_rising(tmp_path: Path) -> None:
    """loop=True yields more audio than the file holds, and media time keeps rising across the loop boundary."""
    path = write_wav(tmp_path / "one_second.wav", sine(1.0, SAMPLE_RATE), SAMPLE_RATE)
    items = await collect(AudioSource(str(path), loop=True, chunk_seconds=0.25), limit=10)
    chunks = [c for c in items if isinstance(c, AudioChunk)]
    assert len(chunks) == 10
    assert sum(len(c.samples) for c in chunks) > SAMPLE_RATE
    assert_contiguous(chunks)
    assert chunks[-1].start > 1.0


async def test_realtime_paces_a_file_at_media_speed(tmp_path: Path) -> None:
    """realtime=True releases a 1.5 s file over about 1.5 s of loop time instead of all at once."""
    path = write_wav(tmp_path / "short.wav", sine(1.5, SAMPLE_RATE), SAMPLE_RATE)
    loop = asyncio.get_running_loop()
    began = loop.time()
    chunks = await collect(AudioSource(str(path), realtime=True, chunk_seconds=0.25))
    elapsed = loop.time() - began
    media = sum(len(c.samples) for c in chunks if isinstance(c, AudioChunk)) / SAMPLE_RATE
    assert media == pytest.approx(1.5, abs=0.01)
    assert elapsed >= media * 0.8


def video_only_mp4(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for index in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), index * 40, np.uint8), format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, 10)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.fixture
def bad_inputs(tmp_path: Path, refusing_port: socket.socket) -> dict[str, str]:
    port = refusing_port.getsockname()[1]
    notes = tmp_path / "minutes.txt"
    notes.write_text("Minutes of the sitting, not audio.\n", encoding="utf-8")
    return {
        "missing": str(tmp_path / "no_such_sitting.wav"),
        "text": str(notes),
        "video_only": str(video_only_mp4(tmp_path / "video_only.mp4")),
        "refused_rtsp": f"rtsp://127.0.0.1:{port}/x",
        "refused_hls": f"http://127.0.0.1:{port}/x.m3u8",
        "unsupported": "sapha-nope://example.org/feed",
    }


EXPECTED_MESSAGES = {
    "missing": "audio file not found",
    "text": "not a media file",
    "video_only": "no audio stream",
    "refused_rtsp": "connection refused",
    "refused_hls": "connection refused",
    "unsupported": "unsupported protocol 'sapha-nope'",
}


@pytest.mark.parametrize("kind", sorted(EXPECTED_MESSAGES))
async def test_probe_explains_why_an_input_cannot_be_used(kind: str, bad_inputs: dict[str, str]) -> None:
    """probe() raises SourceError naming the input (shown as scheme and host only) and the problem, with FFmpeg's
    error chained as its cause."""
    uri = bad_inputs[kind]
    with pytest.raises(SourceError, match=EXPECTED_MESSAGES[kind]) as raised:
        await AudioSource(uri, reconnect=False).probe()
    assert redact_uri(uri) in str(raised.value)
    if kind != "video_only":
        assert isinstance(raised.value.__cause__, av.error.FFmpegError)


@pytest.mark.parametrize("kind", sorted(EXPECTED_MESSAGES))
async def test_iterating_an_unusable_input_raises_on_first_open(kind: str, bad_inputs: dict[str, str]) -> None:
    """Without reconnect, iterating an unusable input raises the same clear SourceError instead of yielding."""
    with pytest.raises(SourceError, match=EXPECTED_MESSAGES[kind]):
        await collect(AudioSource(bad_inputs[kind], reconnect=False))


async def test_an_unsupported_protocol_is_raised_even_with_reconnect() -> None:
    """Reconnecting cannot fix a protocol the FFmpeg build lacks, so it is raised rather than retried."""
    with pytest.raises(SourceError, match="unsupported protocol"):
        await collect(AudioSource("sapha-nope://example.org/feed", reconnect=True, min_backoff=0.01))


async def test_a_refusing_live_source_yields_a_gap_instead_of_raising(refusing_port: socket.socket) -> None:
    """With reconnect, a refused connection is reported as an ongoing SourceGap at media time 0, not raised."""
    port = refusing_port.getsockname()[1]
    source = AudioSource(f"rtsp://127.0.0.1:{port}/sitting", min_backoff=0.01, max_backoff=0.05)
    assert source.reconnect
    async with contextlib.aclosing(source.chunks()) as chunks:
        gap = await anext(chunks)
        source.stop()
        rest = [item async for item in chunks]
    assert isinstance(gap, SourceGap)
    assert gap.at == 0.0 and gap.duration is None and not gap.resumed
    assert "connection refused" in gap.reason
    assert rest == []


async def test_a_source_that_comes_back_closes_the_gap_and_resumes(
    tmp_path: Path, refusing_port: socket.socket
) -> None:
    """When a refused source starts serving, a resumed SourceGap says how long it was out, then audio follows it."""
    write_wav(tmp_path / "feed.wav", sine(1.0, SAMPLE_RATE), SAMPLE_RATE)
    port = refusing_port.getsockname()[1]
    source = AudioSource(f"http://127.0.0.1:{port}/feed.wav", min_backoff=0.01, max_backoff=0.05)
    items: list[AudioChunk | SourceGap] = []
    async with contextlib.aclosing(source.chunks()) as chunks:
        items.append(await anext(chunks))
        with serve(refusing_port, functools.partial(QuietFiles, directory=str(tmp_path))):
            async for item in chunks:
                items.append(item)
                if sum(len(c.samples) for c in items if isinstance(c, AudioChunk)) >= SAMPLE_RATE:
                    break
    down, up, *audio = items
    assert isinstance(down, SourceGap) and down.duration is None
    assert isinstance(up, SourceGap) and up.resumed and up.at == down.at and up.reason == down.reason
    assert up.duration is not None and up.duration > 0
    chunks_after = [c for c in audio if isinstance(c, AudioChunk)]
    assert chunks_after[0].start == pytest.approx(up.at + up.duration)
    assert_contiguous(chunks_after)


def adts_aac(seconds: float) -> bytes:
    """AAC audio in ADTS framing: a format with no duration in its header, as live radio streams send it."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="adts") as out:
        stream = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        wave = sine(seconds, SAMPLE_RATE).astype(np.float32) / 32768
        size = 1024
        for offset in range(0, wave.shape[1] - size + 1, size):
            frame = av.AudioFrame.from_ndarray(wave[:, offset : offset + size], format="fltp", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = offset
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


async def test_a_live_stream_that_drops_is_reported_and_reopened(refusing_port: socket.socket) -> None:
    """A live stream whose server hangs up yields a SourceGap, is reopened, and media time resumes past the gap."""
    handler = functools.partial(HangUpAfterSending, payload=adts_aac(1.0))
    port = refusing_port.getsockname()[1]
    source = AudioSource(f"http://127.0.0.1:{port}/live.aac", min_backoff=0.01, max_backoff=0.05)
    items: list[AudioChunk | SourceGap] = []
    with serve(refusing_port, handler):
        async with contextlib.aclosing(source.chunks()) as chunks:
            async for item in chunks:
                items.append(item)
                gaps = [g for g in items if isinstance(g, SourceGap)]
                if len(gaps) == 2 and isinstance(item, AudioChunk):
                    break
    first = items.index(next(g for g in items if isinstance(g, SourceGap)))
    before = [c for c in items[:first] if isinstance(c, AudioChunk)]
    down, up, after = items[first : first + 3]
    assert isinstance(down, SourceGap) and down.duration is None and source.uri in down.reason
    assert isinstance(up, SourceGap) and up.resumed and up.at == down.at
    assert isinstance(after, AudioChunk) and up.duration is not None
    assert before and before[-1].end == pytest.approx(down.at)
    assert after.start == pytest.approx(up.at + up.duration)
    assert_contiguous(before)


async def test_stop_before_iterating_yields_nothing(tmp_path: Path) -> None:
    """A source stopped before it is iterated ends at once without opening anything."""
    source = AudioSource(str(tmp_path / "never_opened.wav"))
    source.stop()
    assert await collect(source) == []


async def test_the_bundled_demo_decodes_to_its_listed_length() -> None:
    """The bundled demo media exists, decodes as 16 kHz audio of the length its clip list states, ~21 s."""
    demo = load_demo_media()
    assert demo.audio == DEMO_AUDIO and DEMO_AUDIO.exists()
    assert demo.sample_rate == SAMPLE_RATE
    assert demo.duration == pytest.approx(20.85, abs=0.5)
    chunks = await collect(AudioSource(str(DEMO_AUDIO), chunk_seconds=1.0))
    total = sum(len(c.samples) for c in chunks if isinstance(c, AudioChunk))
    assert total == json.loads((DEMO_AUDIO.with_suffix(".json")).read_text(encoding="utf-8"))["samples"]
    assert len(demo.clips) == 3
    assert all(0 < c.start < c.end <= demo.duration and c.text for c in demo.clips)
    assert [c.start for c in demo.clips] == sorted(c.start for c in demo.clips)


@pytest.mark.parametrize(
    ("uri", "network"),
    [
        ("/srv/sittings/2024-05-01.mp4", False),
        ("file:/srv/sitting.wav", False),
        ("file:///srv/sitting.wav", False),
        ("relative/sitting.flac", False),
        ("C://media/sitting.wav", False),
        ("pipe:0", False),
        ("https://tv.parliament.example/live/index.m3u8", True),
        ("http://127.0.0.1:8080/x.mp4", True),
        ("rtsp://camera.local:554/stream", True),
        ("RTMP://ingest.example/live/key", True),
        ("srt://127.0.0.1:9000?mode=caller", True),
    ],
)
def test_is_network_uri_tells_streams_from_files(uri: str, network: bool) -> None:
    """is_network_uri is true for URL schemes read over the network and false for paths and file: URIs."""
    assert is_network_uri(uri) is network


def test_passwords_in_uris_are_masked() -> None:
    """Credentials in a stream URL never reach messages: it is shown as scheme and host only."""
    assert redact_uri("rtsp://admin:s3cret@10.0.0.5:554/live") == "rtsp://10.0.0.5:554"
    assert redact_uri("/srv/a:b@c.wav") == "/srv/a:b@c.wav"


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    """Reconnect delays double per failure from the base, never exceed the cap, and never drop below half a step."""
    rng = random.Random(7)
    delays = [backoff_delay(n, base=1.0, cap=30.0, rng=rng) for n in range(1, 12)]
    steps = [min(30.0, 2.0 ** (n - 1)) for n in range(1, 12)]
    assert all(step / 2 <= delay <= step for delay, step in zip(delays, steps, strict=True))
    assert backoff_delay(10_000, base=1.0, cap=30.0, rng=rng) <= 30.0


async def test_a_refused_url_fails_fast_with_reconnect_off_even_when_iterated(
    refusing_port: socket.socket,
) -> None:
    """reconnect=False on a network URL raises the connection error rather than retrying."""
    port = refusing_port.getsockname()[1]
    source = AudioSource(f"http://127.0.0.1:{port}/x.m3u8", reconnect=False)
    assert not source.reconnect
    with pytest.raises(SourceError, match="connection refused"):
        async for _ in source:
            pass


async def test_async_for_reads_the_whole_file_then_stops(tmp_path: Path) -> None:
    """`async for chunk in source` reads an 8 kHz file to its end as 16 kHz chunks and then stops."""
    path = write_wav(tmp_path / "half.wav", sine(0.5, 8_000), 8_000)
    total = 0
    async for item in AudioSource(str(path), chunk_seconds=0.1):
        assert isinstance(item, AudioChunk)
        total += len(item.samples)
    assert abs(total - SAMPLE_RATE // 2) <= 4


def test_the_head_of_a_long_agenda_title_is_cut_between_thai_words():
    """Vocabulary hints take the start of a long bill title, never cutting inside a Thai word."""
    from common.thai import words
    from live.feed import _head

    title = "ร่างพระราชบัญญัติประกอบรัฐธรรมนูญว่าด้วยการได้มาซึ่งสมาชิกวุฒิสภา " * 5
    head = _head(title, 60)
    assert 0 < len(head) <= 60 and title.startswith(head)
    assert words(head) == words(title)[: len(words(head))]
    assert _head("สั้น", 60) == "สั้น"
