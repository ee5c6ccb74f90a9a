"""HLS output against real media: files made here with PyAV, fed through AudioSource or the writer, read back."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from chromium import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from playwright.async_api import Route as BrowserRoute
from playwright.async_api import async_playwright
from starlette.applications import Starlette
from starlette.routing import Route

from archive.recorder import Recorder
from archive.store_sqlite import SqliteStore
from broadcast.broker_memory import MemoryBroker
from broadcast.hub import Hub
from broadcast.metrics import Metrics
from live.feed import CaptionHorizon, LiveFeed
from live.hls_http import HlsFiles
from stream.hls import CAPTION_DELAY_ID, MPEGTS_HZ, TIMESTAMP_MAP, TS_ORIGIN, Backlog, HlsWriter, avc_codec
from stream.source import AudioChunk, AudioSource
from stream.titlecard import FALLBACK_TITLE, TitleCard
from transcribe.caption import Caption
from transcribe.engine import EngineStats

SOURCE_SECONDS = 6.0
SOURCE_FPS = 25
ROOT = Path(__file__).resolve().parent.parent

# ---- media made for the tests ------------------------------------------------------------------------------------


def _picture(index: int, width: int, height: int) -> av.VideoFrame:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : (index * 7) % width] = (40 + index * 5) % 256
    image[..., 1] = 90
    return av.VideoFrame.from_ndarray(image, format="rgb24")


def _tone(start: int, count: int, rate: int, channels: int) -> np.ndarray:
    t = (np.arange(count) + start) / rate
    return np.tile((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), (channels, 1))


def h264_aac_mp4(path: Path, *, seconds: float = SOURCE_SECONDS, fps: int = SOURCE_FPS) -> Path:
    """H.264 High with B-frames and a keyframe every second, AAC-LC 44.1 kHz: what a chamber encoder sends."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 320, 180, "yuv420p"
        video.codec_context.options = {
            "preset": "veryfast",
            "x264-params": f"keyint={fps}:min-keyint={fps}:scenecut=0:bframes=2",
        }
        audio = out.add_stream("aac", rate=44_100)
        audio.layout = "mono"
        sent = 0
        for index in range(round(seconds * fps)):
            frame = _picture(index, 320, 180)
            frame.pts, frame.time_base = index, Fraction(1, fps)
            out.mux(video.encode(frame))
            while sent < (index + 1) * 44_100 // fps:
                chunk = av.AudioFrame.from_ndarray(_tone(sent, 1024, 44_100, 1), format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 44_100, sent
                sent += 1024
                out.mux(audio.encode(chunk))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path


def mpeg4_mp2_mkv(path: Path, *, seconds: float = 4.0, fps: int = 10) -> Path:
    """MPEG-4 part 2 video at 1280x720 with MP2 audio: neither can go into HLS as it is."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = 1280, 720, "yuv420p"
        audio = out.add_stream("mp2", rate=48_000)
        audio.layout = "stereo"
        sent = 0
        for index in range(round(seconds * fps)):
            frame = _picture(index, 1280, 720)
            frame.pts, frame.time_base = index, Fraction(1, fps)
            out.mux(video.encode(frame))
            while sent < (index + 1) * 48_000 // fps:
                chunk = av.AudioFrame.from_ndarray(_tone(sent, 1152, 48_000, 2), format="fltp", layout="stereo")
                chunk.sample_rate, chunk.pts = 48_000, sent
                sent += 1152
                out.mux(audio.encode(chunk))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path


def tone_wav(path: Path, seconds: float = 3.0, rate: int = 22_050) -> Path:
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        samples = (_tone(0, round(seconds * rate), rate, 1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def audio_frame(start: int, count: int = 1024, rate: int = 16_000) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(_tone(start, count, rate, 1), format="fltp", layout="mono")
    frame.sample_rate = rate
    return frame


def small_card() -> TitleCard:
    return TitleCard("การประชุมวุฒิสภา", width=320, height=180, fps=5)


# ---- a strict playlist parser ------------------------------------------------------------------------------------

_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"\r\n]*"|[^",\s]+)')


def attributes(text: str) -> dict[str, str]:
    """An RFC 8216 attribute list; quoted values keep their quotes off. Anything malformed fails."""
    found: dict[str, str] = {}
    at = 0
    while at < len(text):
        match = _ATTRIBUTE.match(text, at)
        assert match, f"malformed attribute list at {text[at:]!r}"
        name, value = match.groups()
        assert name not in found, f"attribute {name} twice"
        found[name] = value.strip('"')
        at = match.end()
        if at < len(text):
            assert text[at] == ",", f"expected a comma at {text[at:]!r}"
            at += 1
    return found


@dataclass
class Entry:
    uri: str
    duration: float
    date: datetime
    discontinuity: bool


@dataclass
class MediaPlaylist:
    target: int
    sequence: int
    entries: list[Entry]
    ended: bool
    server_control: dict[str, str] | None = None  # EXT-X-SERVER-CONTROL's attributes (live playlists)

    @property
    def total(self) -> float:
        return sum(e.duration for e in self.entries)


_DISCONTINUITY_SEQUENCE = "#EXT-X-DISCONTINUITY-SEQUENCE"


def parse_media(text: str) -> MediaPlaylist:
    lines = text.split("\n")
    assert lines[0] == "#EXTM3U" and lines[-1] == "", "a playlist starts with #EXTM3U and ends with a newline"
    header: dict[str, int] = {}
    entries: list[Entry] = []
    pending: dict[str, object] = {}
    ended = False
    control: dict[str, str] | None = None
    for line in lines[1:-1]:
        assert not ended, "nothing may follow EXT-X-ENDLIST"
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-SERVER-CONTROL":
            assert not entries and control is None, "EXT-X-SERVER-CONTROL out of place"
            control = dict(pair.split("=", 1) for pair in value.split(","))
        elif tag in ("#EXT-X-VERSION", "#EXT-X-TARGETDURATION", "#EXT-X-MEDIA-SEQUENCE", _DISCONTINUITY_SEQUENCE):
            assert not entries and not pending and tag not in header, f"{tag} out of place"
            header[tag] = int(value)
        elif tag == "#EXT-X-PROGRAM-DATE-TIME":
            pending["date"] = datetime.fromisoformat(value)
        elif line == "#EXT-X-DISCONTINUITY":
            pending["discontinuity"] = True
        elif tag == "#EXTINF":
            match = re.fullmatch(r"(\d+(?:\.\d+)?),", value)
            assert match, f"bad EXTINF {line!r}"
            pending["duration"] = float(match.group(1))
        elif line == "#EXT-X-ENDLIST":
            assert not pending
            ended = True
        else:
            assert line and not line.startswith("#"), f"unexpected line {line!r}"
            assert "duration" in pending and "date" in pending, f"{line} lacks EXTINF or PROGRAM-DATE-TIME"
            entries.append(Entry(line, pending["duration"], pending["date"], bool(pending.get("discontinuity"))))  # type: ignore[arg-type]
            pending = {}
    assert not pending, "tags after the last segment"
    assert {"#EXT-X-VERSION", "#EXT-X-TARGETDURATION", "#EXT-X-MEDIA-SEQUENCE"} <= set(header)
    target = header["#EXT-X-TARGETDURATION"]
    assert all(math.floor(e.duration + 0.5) <= target for e in entries), "an EXTINF exceeds the target duration"
    # Live playlists offer blocking reload, with the HOLD-BACK RFC 8216bis asks for; a recording is a plain VOD.
    if ended:
        assert control is None, "a closed playlist is plain VOD"
    else:
        assert control is not None and control["CAN-BLOCK-RELOAD"] == "YES"
        assert float(control["HOLD-BACK"]) >= 3 * target
    return MediaPlaylist(target, header["#EXT-X-MEDIA-SEQUENCE"], entries, ended, control)


@dataclass
class Master:
    media: list[dict[str, str]]
    variants: list[tuple[dict[str, str], str]]
    session_data: dict[str, str] = field(default_factory=dict)  # DATA-ID -> VALUE


def parse_master(text: str) -> Master:
    lines = text.split("\n")
    assert lines[0] == "#EXTM3U" and lines[-1] == ""
    master = Master([], [])
    stream: dict[str, str] | None = None
    for line in lines[1:-1]:
        tag, _, value = line.partition(":")
        if stream is not None:
            assert line and not line.startswith("#"), "EXT-X-STREAM-INF must be followed by its URI"
            master.variants.append((stream, line))
            stream = None
        elif tag == "#EXT-X-VERSION":
            int(value)
        elif line == "#EXT-X-INDEPENDENT-SEGMENTS":
            pass
        elif tag == "#EXT-X-MEDIA":
            master.media.append(attributes(value))
        elif tag == "#EXT-X-SESSION-DATA":
            data = attributes(value)
            assert data["DATA-ID"] not in master.session_data, "one EXT-X-SESSION-DATA per DATA-ID"
            master.session_data[data["DATA-ID"]] = data["VALUE"]
        elif tag == "#EXT-X-STREAM-INF":
            stream = attributes(value)
        else:
            raise AssertionError(f"unexpected line in a master playlist: {line!r}")
    assert stream is None
    return master


def read_media(path: Path) -> MediaPlaylist:
    return parse_media(path.read_text(encoding="utf-8"))


# ---- reading segments back ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TsPacket:
    kind: str
    pts: int
    dts: int
    key: bool


def ts_packets(path: Path) -> list[TsPacket]:
    with av.open(str(path)) as container:
        return [
            TsPacket(p.stream.type, p.pts, p.dts, p.is_keyframe)
            for p in container.demux()
            if p.size and p.pts is not None and p.dts is not None
        ]


def decoded_pictures(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray() for frame in container.decode(video=0)]


def assert_plays_in_order(directory: Path, playlist: MediaPlaylist) -> dict[str, list[TsPacket]]:
    """Demux every segment in playlist order: each opens on a video keyframe, and decode times only rise."""
    by_kind: dict[str, list[TsPacket]] = {}
    for entry in playlist.entries:
        packets = ts_packets(directory / entry.uri)
        video = [p for p in packets if p.kind == "video"]
        assert not video or video[0].key, f"{entry.uri} does not open on a keyframe"
        for packet in packets:
            by_kind.setdefault(packet.kind, []).append(packet)
    for kind, packets in by_kind.items():
        dts = [p.dts for p in packets]
        assert all(b > a for a, b in zip(dts, dts[1:], strict=False)), f"{kind} decode times go back"
    return by_kind


def segment_starts(playlist: MediaPlaylist, first: float) -> list[float]:
    """Media time each segment starts at, by the playlist: the first one's start plus the EXTINFs before it."""
    starts = [first]
    for entry in playlist.entries[:-1]:
        starts.append(starts[-1] + entry.duration)
    return starts


@dataclass(frozen=True)
class VttCue:
    start: float
    end: float
    text: str


def parse_vtt(text: str) -> tuple[str, list[VttCue]]:
    """(the X-TIMESTAMP-MAP line, the cues) of a WebVTT segment."""
    blocks = text.strip("\n").split("\n\n")
    header = blocks[0].split("\n")
    assert header[0] == "WEBVTT" and len(header) == 2
    cues = []
    for block in blocks[1:]:
        timing, *lines = block.split("\n")
        start, end = (_vtt_seconds(t) for t in timing.split(" --> "))
        cues.append(VttCue(start, end, "".join(lines)))
    return header[1], cues


def _vtt_seconds(stamp: str) -> float:
    hours, minutes, seconds = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


async def run_source(source: AudioSource, until: float | None = None) -> None:
    async with contextlib.aclosing(source.chunks()) as chunks:  # type: ignore[type-var]
        async for item in chunks:
            if until is not None and isinstance(item, AudioChunk) and item.end >= until:
                return


# ---- the remux path -----------------------------------------------------------------------------------------------


@dataclass
class Remuxed:
    source: Path
    writer: HlsWriter

    @property
    def directory(self) -> Path:
        return self.writer.out_dir


@pytest.fixture(scope="module")
def remuxed(tmp_path_factory: pytest.TempPathFactory) -> Remuxed:
    """A 6 s H.264/AAC file read (as fast as possible) into HLS, with two captions, then closed."""
    base = tmp_path_factory.mktemp("remux")
    source = h264_aac_mp4(base / "sitting.mp4")
    writer = HlsWriter(base / "live" / "sitting-1", segment_s=2.0, caption_wait_s=60.0)

    async def run() -> None:
        await run_source(AudioSource(str(source), hls=writer))
        writer.add_caption(0.5, 1.5, "ท่านประธานที่เคารพ")
        writer.add_caption(3.5, 4.5, "ขอเสนอญัตติ")
        await writer.aclose()

    asyncio.run(run())
    return Remuxed(source, writer)


def test_remux_copies_h264_and_aac_without_reencoding(remuxed: Remuxed) -> None:
    """An H.264/AAC source is remuxed: no encoder is opened and every decoded picture is identical to the source's."""
    stats = remuxed.writer.stats()
    assert stats.encoders_opened == 0 and stats.video_dropped == 0 and stats.audio_dropped == 0
    assert stats.failed is None and stats.mux_errors == 0
    playlist = read_media(remuxed.writer.media_playlist)
    pictures = [p for entry in playlist.entries for p in decoded_pictures(remuxed.directory / entry.uri)]
    original = decoded_pictures(remuxed.source)
    assert len(pictures) == len(original) == SOURCE_SECONDS * SOURCE_FPS
    assert all(np.array_equal(a, b) for a, b in zip(pictures, original, strict=True))
    with av.open(str(remuxed.source)) as container:
        expected_codec = avc_codec(container.streams.video[0].codec_context.extradata)
    master = parse_master(remuxed.writer.master_playlist.read_text(encoding="utf-8"))
    ((variant, uri),) = master.variants
    assert variant["CODECS"] == f"{expected_codec},mp4a.40.2" and variant["RESOLUTION"] == "320x180"
    assert uri == remuxed.writer.media_playlist.name


def test_master_playlist_offers_thai_subtitles_as_the_default_rendition(remuxed: Remuxed) -> None:
    """index.m3u8 has a default Thai WebVTT SUBTITLES rendition, and the variant names it with bandwidth figures."""
    master = parse_master(remuxed.writer.master_playlist.read_text(encoding="utf-8"))
    (subtitles,) = master.media
    assert subtitles == {
        "TYPE": "SUBTITLES",
        "GROUP-ID": "subs",
        "NAME": "ไทย",
        "LANGUAGE": "th",
        "DEFAULT": "YES",
        "AUTOSELECT": "YES",
        "FORCED": "NO",
        "URI": remuxed.writer.subtitle_playlist.name,
    }
    ((variant, _),) = master.variants
    assert variant["SUBTITLES"] == "subs"
    assert int(variant["BANDWIDTH"]) >= int(variant["AVERAGE-BANDWIDTH"]) > 0


def test_a_closed_playlist_lists_every_segment_and_plays_from_start_to_end(remuxed: Remuxed) -> None:
    """After close the playlist has ENDLIST, lists every segment from 0 with dated 2 s EXTINFs, and plays in order."""
    playlist = read_media(remuxed.writer.media_playlist)
    assert playlist.ended and playlist.sequence == 0 and playlist.target == 2
    on_disk = sorted(p.name for p in remuxed.directory.glob("*.ts"))
    assert [e.uri for e in playlist.entries] == on_disk and len(on_disk) == 3
    assert all(e.duration == pytest.approx(2.0, abs=0.05) for e in playlist.entries)
    assert playlist.total == pytest.approx(SOURCE_SECONDS, abs=0.05)
    for before, after in zip(playlist.entries, playlist.entries[1:], strict=False):
        assert (after.date - before.date).total_seconds() == pytest.approx(before.duration, abs=0.002)
    packets = assert_plays_in_order(remuxed.directory, playlist)
    video = packets["video"]
    assert min(p.pts for p in video) == TS_ORIGIN  # media time 0 is the MPEG-TS origin
    assert (max(p.pts for p in video) - TS_ORIGIN) / MPEGTS_HZ == pytest.approx(SOURCE_SECONDS - 1 / SOURCE_FPS)


def test_caption_segments_match_media_segments_and_map_onto_ts_time(remuxed: Remuxed) -> None:
    """Each media segment has a WebVTT twin of the same duration, whose timestamp map puts its cues on the TS clock."""
    media = read_media(remuxed.writer.media_playlist)
    subs = read_media(remuxed.writer.subtitle_playlist)
    assert subs.ended and [e.duration for e in subs.entries] == [e.duration for e in media.entries]
    assert [e.uri.removesuffix(".vtt") for e in subs.entries] == [e.uri.removesuffix(".ts") for e in media.entries]
    first_pts = [min(p.pts for p in ts_packets(remuxed.directory / e.uri)) for e in media.entries]
    starts = segment_starts(media, (first_pts[0] - TS_ORIGIN) / MPEGTS_HZ)
    found: dict[str, list[int]] = {}
    for index, entry in enumerate(subs.entries):
        timestamp_map, cues = parse_vtt((remuxed.directory / entry.uri).read_text(encoding="utf-8"))
        assert timestamp_map == TIMESTAMP_MAP == f"X-TIMESTAMP-MAP=MPEGTS:{TS_ORIGIN},LOCAL:00:00:00.000"
        # Where this segment's pictures start on the TS clock, mapped back through the VTT map, is where the
        # playlist says the segment starts: cue times and picture times are one clock.
        video_pts = min(p.pts for p in ts_packets(remuxed.directory / media.entries[index].uri) if p.kind == "video")
        assert (video_pts - TS_ORIGIN) / MPEGTS_HZ == pytest.approx(starts[index], abs=0.05)
        for cue in cues:
            found.setdefault(cue.text, []).append(index)
            assert cue.start < starts[index] + entry.duration and cue.end > starts[index]
    assert found == {"ท่านประธานที่เคารพ": [0], "ขอเสนอญัตติ": [1, 2]}


# ---- live behaviour -----------------------------------------------------------------------------------------------


def hls_client(root: Path) -> httpx.AsyncClient:
    files = HlsFiles(root)
    app = Starlette(routes=[Route("/live/{sitting_id}/{name:path}", files.handle)])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sapha.test")


async def test_the_live_playlist_slides_and_the_closed_one_keeps_everything(tmp_path: Path) -> None:
    """Live, the playlist shows only the last `window` segments (short cache); closed, all of them (long cache)."""
    source = h264_aac_mp4(tmp_path / "sitting.mp4")
    writer = HlsWriter(tmp_path / "live" / "s1", segment_s=1.0, window=3)
    await run_source(AudioSource(str(source), hls=writer), until=5.0)
    assert await asyncio.to_thread(writer.sync, 10.0)
    live = read_media(writer.media_playlist)
    written = sorted(p.name for p in writer.out_dir.glob("*.ts"))
    assert not live.ended and len(live.entries) == 3 and len(written) > 3
    assert [e.uri for e in live.entries] == written[-3:] and live.sequence == len(written) - 3
    async with hls_client(tmp_path / "live") as client:
        response = await client.get(f"/live/s1/{writer.media_playlist.name}")
        assert response.headers["cache-control"] == "public, max-age=1"
        await writer.aclose()
        closed = read_media(writer.media_playlist)
        assert closed.ended and closed.sequence == 0
        assert [e.uri for e in closed.entries] == sorted(p.name for p in writer.out_dir.glob("*.ts"))
        assert [e.uri for e in closed.entries][: len(written)] == written
        response = await client.get(f"/live/s1/{writer.media_playlist.name}")
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"


async def test_non_h264_video_is_reencoded_with_a_keyframe_every_segment(tmp_path: Path) -> None:
    """MPEG-4 part 2 video and MP2 audio are re-encoded to H.264 within 854x480 and AAC, one GOP per 2 s segment."""
    source = mpeg4_mp2_mkv(tmp_path / "sitting.mkv")
    writer = HlsWriter(tmp_path / "s2", segment_s=2.0)
    await run_source(AudioSource(str(source), hls=writer))
    await writer.aclose()
    assert writer.stats().encoders_opened == 2 and writer.stats().video_dropped == 0
    playlist = read_media(writer.media_playlist)
    assert playlist.ended and len(playlist.entries) == 2
    assert all(e.duration == pytest.approx(2.0, abs=0.05) for e in playlist.entries)
    packets = assert_plays_in_order(writer.out_dir, playlist)
    assert sum(1 for p in packets["video"] if p.key) == 2  # one keyframe per segment, at its start
    with av.open(str(writer.out_dir / playlist.entries[0].uri)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, video.codec_context.width, video.codec_context.height) == ("h264", 854, 480)
        assert (audio.codec_context.name, audio.codec_context.sample_rate) == ("aac", 48_000)
        assert len(list(container.decode(video=0))) == 20
    ((variant, _),) = parse_master(writer.master_playlist.read_text(encoding="utf-8")).variants
    assert variant["RESOLUTION"] == "854x480" and variant["CODECS"].startswith("avc1.42")


async def test_a_looped_audio_file_gets_a_title_card_and_timestamps_keep_rising(tmp_path: Path) -> None:
    """A 3 s WAV looped to 9 s becomes H.264 (title card) + AAC whose timestamps rise across loops, with no gaps."""
    writer = HlsWriter(tmp_path / "s3", segment_s=2.0, picture=small_card())
    await run_source(AudioSource(str(tone_wav(tmp_path / "tone.wav")), loop=True, hls=writer), until=9.0)
    await writer.aclose()
    media, subs = read_media(writer.media_playlist), read_media(writer.subtitle_playlist)
    assert not any(e.discontinuity for e in media.entries)
    assert media.total >= 8.0 and subs.total == pytest.approx(media.total)
    packets = assert_plays_in_order(writer.out_dir, media)
    for kind in ("video", "audio"):
        pts = sorted(p.pts for p in packets[kind])
        # Continuous across the loop seams: no step longer than a card frame (0.2 s at 5 fps).
        assert max(b - a for a, b in zip(pts, pts[1:], strict=False)) <= 0.2 * MPEGTS_HZ + 1
    with av.open(str(writer.out_dir / media.entries[0].uri)) as container:
        picture = next(container.decode(video=0))
        assert (picture.width, picture.height) == (320, 180)


async def test_caption_segments_wait_for_final_captions_then_hold_each_cue_where_it_overlaps(tmp_path: Path) -> None:
    """A WebVTT segment is written only once captions are final past its end; a late caption is counted, not lost."""
    writer = HlsWriter(tmp_path / "s4", segment_s=2.0, picture=small_card(), caption_wait_s=3600.0)
    writer.begin_input(video=False, audio=True)
    for n in range(8 * 16_000 // 1024):
        writer.add_audio_frame(audio_frame(n * 1024), n * 1024 / 16_000, block=True)
    writer.add_caption(0.5, 1.5, "หนึ่ง")
    writer.add_caption(3.5, 4.5, "สอง")
    assert await asyncio.to_thread(writer.sync, 10.0)
    assert len(read_media(writer.media_playlist).entries) == 3
    assert read_media(writer.subtitle_playlist).entries == []  # captions are not final anywhere yet
    writer.captions_final_until(4.0)
    assert await asyncio.to_thread(writer.sync, 10.0)
    assert [e.duration for e in read_media(writer.subtitle_playlist).entries] == pytest.approx([2.021, 2.0], abs=0.01)
    writer.add_caption(1.0, 1.2, "มาช้า")  # its segment is already written
    writer.add_caption(7.0, 7.5, "สาม")
    await writer.aclose()
    assert writer.stats().late_captions == 1
    media, subs = read_media(writer.media_playlist), read_media(writer.subtitle_playlist)
    assert len(subs.entries) == len(media.entries) == 4
    cues = [parse_vtt((writer.out_dir / e.uri).read_text(encoding="utf-8"))[1] for e in subs.entries]
    assert cues[0] == [VttCue(0.5, 1.5, "หนึ่ง")]
    assert cues[1] == cues[2] == [VttCue(3.5, 4.5, "สอง")]
    assert cues[3] == [VttCue(7.0, 7.5, "สาม")]


async def test_pieces_of_one_utterance_roll_up_into_one_growing_cue(tmp_path: Path) -> None:
    """Each final piece of an utterance is shown with the pieces before it, its last two lines, as live TV does."""
    writer = HlsWriter(tmp_path / "s8", segment_s=2.0, picture=small_card())
    writer.begin_input(video=False, audio=True)
    for n in range(2 * 16_000 // 1024 + 1):
        writer.add_audio_frame(audio_frame(n * 1024), n * 1024 / 16_000, block=True)
    pieces = [(0.2, 0.6, "ขอบคุณ"), (0.6, 1.2, "ท่านประธาน"), (1.2, 1.9, "ที่ให้โอกาสกระผมได้อภิปรายในร่างพระราชบัญญัติฉบับนี้")]
    for start, end, text in pieces:
        writer.add_caption(start, end, text, utterance="u1")
    writer.add_caption(1.9, 2.0, "Hello", utterance="u2")
    await writer.aclose()
    first = read_media(writer.subtitle_playlist).entries[0]
    _, cues = parse_vtt((writer.out_dir / first.uri).read_text(encoding="utf-8"))
    assert [c.text for c in cues] == [
        "ขอบคุณ",
        "ขอบคุณท่านประธาน",
        "ขอบคุณท่านประธานที่ให้โอกาสกระผมได้อภิปรายในร่างพระราชบัญญัติฉบับนี้",  # two lines, joined by the parser
        "Hello",
    ]


async def test_an_input_that_resumes_after_an_outage_starts_a_discontinuity(tmp_path: Path) -> None:
    """Audio that comes back 7 s later (a reconnect) starts a new segment marked EXT-X-DISCONTINUITY, dated 7 s on."""
    writer = HlsWriter(tmp_path / "s7", segment_s=2.0, picture=small_card())
    for offset in (0.0, 10.0):
        writer.begin_input(video=False, audio=True)
        for n in range(3 * 16_000 // 1024):
            writer.add_audio_frame(audio_frame(n * 1024), offset + n * 1024 / 16_000, block=True)
    await writer.aclose()
    playlist = read_media(writer.media_playlist)
    jumps = [index for index, entry in enumerate(playlist.entries) if entry.discontinuity]
    assert len(jumps) == 1 and 0 < jumps[0] < len(playlist.entries)
    before, after = playlist.entries[jumps[0] - 1], playlist.entries[jumps[0]]
    gap = (after.date - before.date).total_seconds() - before.duration
    assert gap == pytest.approx(7.0, abs=0.1)  # audio stopped at 2.94 s (the last card frame ran to 3.0 s)
    assert_plays_in_order(writer.out_dir, playlist)


class GatedCard(TitleCard):
    """A title card whose first picture waits for the test: it holds the writer's worker still."""

    def __init__(self) -> None:
        super().__init__("Gate", width=320, height=180)
        self.entered = threading.Event()
        self.release = threading.Event()

    def frame(self, media_time: float, wall: datetime) -> av.VideoFrame:
        self.entered.set()
        self.release.wait(30)
        return super().frame(media_time, wall)


async def test_a_stalled_writer_drops_video_frames_but_keeps_every_audio_frame(tmp_path: Path) -> None:
    """With the worker stalled, video frames beyond the backlog are dropped and counted; no audio is dropped."""
    card = GatedCard()
    writer = HlsWriter(tmp_path / "s5", segment_s=2.0, picture=card)
    writer.begin_input(video=False, audio=True)
    writer.add_audio_frame(audio_frame(0), 0.0)
    assert await asyncio.to_thread(card.entered.wait, 10.0)
    picture = _picture(0, 640, 360).reformat(format="yuv420p")
    accepted = [writer.add_video_frame(picture, 0.5 + n / 25) for n in range(50)]
    frames = 4 * 16_000 // 1024
    assert all(writer.add_audio_frame(audio_frame(n * 1024), n * 1024 / 16_000) for n in range(1, frames))
    card.release.set()
    await writer.aclose()
    stats = writer.stats()
    assert accepted.count(False) == stats.video_dropped == 50 - 30 and stats.audio_dropped == 0
    playlist = read_media(writer.media_playlist)
    audio = [p for e in playlist.entries for p in ts_packets(writer.out_dir / e.uri) if p.kind == "audio"]
    # Every audio frame came out: the AAC covers the 4 s that went in (less the last partial frame's padding).
    assert len(audio) * 1024 / 48_000 == pytest.approx(frames * 1024 / 16_000, abs=0.05)


def test_the_backlog_bounds_each_class_of_item_separately() -> None:
    """A full class of items is dropped (and counted) without blocking the others; taking an item frees a place."""
    backlog = Backlog({"frame": 2, "audio": 3})
    assert [backlog.offer(n, "frame") for n in range(3)] == [True, True, False]
    assert [backlog.offer(n, "audio") for n in range(3)] == [True, True, True]
    assert backlog.dropped("frame") == 1 and backlog.dropped("audio") == 0
    assert backlog.take(0) == 0 and backlog.offer(9, "frame")
    backlog.shut()
    assert not backlog.offer(10, "audio") and len(backlog) == 5


# ---- feed wiring --------------------------------------------------------------------------------------------------


class EchoEngine:
    """A caption engine stand-in: a final caption per chunk it is fed, with a fixed lag."""

    def __init__(self, on_caption: Callable[[Caption], Awaitable[None]]) -> None:
        self._on_caption = on_caption
        self._fed = 0.0
        self.closed = False

    async def feed(self, samples: np.ndarray, start: float) -> None:
        self._fed = start + len(samples) / 16_000
        await self._on_caption(Caption("final", f"ช่วงที่ {round(start)}", start, self._fed, f"u{round(start)}"))

    async def flush(self) -> None:
        pass

    async def close(self) -> None:
        self.closed = True

    def set_vocabulary(self, terms: list[str]) -> None:
        pass

    def stats(self) -> EngineStats:
        return EngineStats(lag_s=0.5)


@pytest.fixture
async def recorder(tmp_path: Path) -> AsyncIterator[Recorder]:
    store = SqliteStore(tmp_path / "sapha.db")
    await store.open()
    hub = Hub(MemoryBroker())
    await hub.start()
    try:
        yield Recorder(store, hub, Metrics())
    finally:
        await hub.close()
        await store.close()


async def test_a_live_feed_sends_final_captions_to_hls_and_closes_it_at_the_end(
    tmp_path: Path, recorder: Recorder
) -> None:
    """LiveFeed forwards its finals to the source's HLS writer and closes the writer (ENDLIST) when the feed ends."""
    await recorder.create_sitting("s6", "ทดสอบ", "senate")
    writer = HlsWriter(tmp_path / "s6", segment_s=2.0, picture=small_card(), caption_wait_s=3600.0)
    source = AudioSource(str(tone_wav(tmp_path / "tone.wav", seconds=4.0)), chunk_seconds=1.0, hls=writer)
    await LiveFeed("s6", source, EchoEngine, recorder, Metrics()).run()
    subs = read_media(writer.subtitle_playlist)
    assert subs.ended and len(subs.entries) == 2
    texts = [c.text for e in subs.entries for c in parse_vtt((writer.out_dir / e.uri).read_text("utf-8"))[1]]
    assert texts == ["ช่วงที่ 0", "ช่วงที่ 1", "ช่วงที่ 2", "ช่วงที่ 3"]


def test_the_caption_horizon_holds_back_while_an_utterance_is_partial() -> None:
    """Captions count as final up to the engine's settled time, but never past the start of a pending partial."""
    horizon = CaptionHorizon()
    assert horizon.until(10.0) == 10.0
    horizon.observe(Caption("partial", "กำลังพูด", 6.0, 9.5, "u1"))
    assert horizon.until(10.0) == 6.0
    horizon.observe(Caption("final", "กำลังพูด", 6.0, 9.5, "u1"))
    assert horizon.until(10.0) == 10.0


# ---- serving ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "content_type", "cache"),
    [
        ("index.m3u8", "application/vnd.apple.mpegurl", "public, max-age=1"),
        ("media", "application/vnd.apple.mpegurl", "public, max-age=31536000, immutable"),
        (".ts", "video/mp2t", "public, max-age=31536000, immutable"),
        (".vtt", "text/vtt; charset=utf-8", "public, max-age=31536000, immutable"),
    ],
)
async def test_hls_files_are_served_with_their_type_cache_headers_and_cors(
    remuxed: Remuxed, suffix: str, content_type: str, cache: str
) -> None:
    """Playlists, segments and captions come with their content type, CDN cache headers and an open CORS header."""
    directory = remuxed.directory
    if suffix == "media":
        name = remuxed.writer.media_playlist.name
    elif suffix == "index.m3u8":
        name = suffix
    else:
        name = sorted(p.name for p in directory.glob(f"*{suffix}"))[0]
    async with hls_client(directory.parent) as client:
        response = await client.get(f"/live/{directory.name}/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"] == cache
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.content == (directory / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/live/sitting-1/missing.ts",
        "/live/sitting-1/..%2Fsitting.mp4",
        "/live/%2E%2E/sitting.mp4",
        "/live/sitting-1/%2E%2E%2Fsitting.mp4",
        "/live/..%2F..%2Fetc/passwd.ts",
        "/live/sitting-1/sub%2Findex.m3u8",
        "/live/sitting-1/.hidden.ts",
        "/live/sitting-1/index.m3u8.tmp",
        "/live/nope/index.m3u8",
    ],
)
async def test_unknown_or_unsafe_names_are_a_404_json_error(remuxed: Remuxed, path: str) -> None:
    """Unknown files, other extensions and any path escape answer 404 in the API's JSON error shape."""
    (remuxed.directory.parent / "sitting.mp4").write_bytes(b"not for the public")
    async with hls_client(remuxed.directory.parent) as client:
        response = await client.get(path)
    assert response.status_code == 404
    body = response.json()
    assert body["ok"] is False and body["status"] == 404 and body["error"]
    assert response.headers["cache-control"] == "no-store"


# ---- low latency: 1 s segments, blocking reload, the announced caption delay ---------------------------------------


def feed_audio(writer: HlsWriter, start: float, end: float, rate: int = 16_000) -> None:
    """Title-card HLS from audio alone: media seconds ``start`` to ``end`` (the card draws the picture)."""
    for n in range(round(start * rate) // 1024, round(end * rate) // 1024):
        writer.add_audio_frame(audio_frame(n * 1024), n * 1024 / rate, block=True)


def live_writer(directory: Path) -> HlsWriter:
    writer = HlsWriter(directory, picture=small_card(), caption_wait_s=3600.0)
    writer.begin_input(video=False, audio=True)
    return writer


def last_msn(playlist: MediaPlaylist) -> int:
    return playlist.sequence + len(playlist.entries) - 1


async def test_a_live_stream_has_1_s_segments_offers_blocking_reload_and_announces_its_caption_delay(
    tmp_path: Path,
) -> None:
    """Live: 1 s segments that decode, SERVER-CONTROL on both playlists, and, once captions are written,
    their measured delay in the master (EXT-X-SESSION-DATA); closed, plain VOD playlists."""
    writer = live_writer(tmp_path / "ll")
    await asyncio.to_thread(feed_audio, writer, 0.0, 5.0)
    assert await asyncio.to_thread(writer.sync, 10.0)
    media = read_media(writer.media_playlist)  # parse_media checks SERVER-CONTROL on live playlists
    assert media.target == 1 and all(e.duration == pytest.approx(1.0, abs=0.1) for e in media.entries)
    assert read_media(writer.subtitle_playlist).server_control == media.server_control
    master = parse_master(writer.master_playlist.read_text(encoding="utf-8"))
    assert master.session_data == {}  # no caption segment written yet: nothing measured
    writer.add_caption(0.5, 1.5, "ท่านประธาน")
    writer.captions_final_until(3.0)
    assert await asyncio.to_thread(writer.sync, 10.0)
    master = parse_master(writer.master_playlist.read_text(encoding="utf-8"))
    delay = float(master.session_data[CAPTION_DELAY_ID])
    assert delay >= 1.0 and delay == writer.stats().caption_delay  # at least the segment's own length

    # Every listed segment decodes, in order, with rising timestamps (PyAV: FFmpeg's decoders).
    await asyncio.to_thread(assert_plays_in_order, writer.out_dir, read_media(writer.media_playlist))
    await writer.aclose()
    assert read_media(writer.media_playlist).server_control is None  # the recording is a plain VOD
    assert read_media(writer.subtitle_playlist).server_control is None


def hls_app(root: Path) -> tuple[HlsFiles, httpx.AsyncClient]:
    files = HlsFiles(root)
    app = Starlette(routes=[Route("/live/{sitting_id}/{name:path}", files.handle)])
    return files, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sapha.test")


async def test_a_blocking_reload_is_answered_when_the_segment_it_asks_for_is_listed(tmp_path: Path) -> None:
    """``_HLS_msn=N`` on the media or subtitle playlist waits until segment N is listed, then gets that playlist."""
    writer = live_writer(tmp_path / "live" / "s1")
    await asyncio.to_thread(feed_audio, writer, 0.0, 4.0)
    assert await asyncio.to_thread(writer.sync, 10.0)
    files, client = hls_app(tmp_path / "live")
    async with client:
        media_msn = last_msn(read_media(writer.media_playlist)) + 1
        subs_msn = 0  # captions are not final anywhere yet: the subtitle playlist lists nothing
        media = asyncio.create_task(client.get(f"/live/s1/{writer.media_playlist.name}?_HLS_msn={media_msn}"))
        subs = asyncio.create_task(client.get(f"/live/s1/{writer.subtitle_playlist.name}?_HLS_msn={subs_msn}"))
        await asyncio.sleep(0.3)
        assert not media.done() and not subs.done()  # held: neither playlist has changed
        assert len(files.watch) == 2
        await asyncio.to_thread(feed_audio, writer, 4.0, 6.0)
        response = await media
        assert response.status_code == 200 and response.headers["cache-control"] == "public, max-age=1"
        assert last_msn(parse_media(response.text)) >= media_msn
        assert not subs.done()
        writer.captions_final_until(2.0)
        response = await subs
        assert response.status_code == 200 and last_msn(parse_media(response.text)) >= subs_msn
        # A segment already listed is answered at once, and a part of it too (no parts are published).
        response = await client.get(f"/live/s1/{writer.media_playlist.name}?_HLS_msn={media_msn}&_HLS_part=3")
        assert response.status_code == 200 and last_msn(parse_media(response.text)) >= media_msn
    assert len(files.watch) == 0  # nothing waits: nothing is watched
    await writer.aclose()


async def test_a_blocking_reload_that_is_not_satisfied_times_out_with_the_current_playlist(tmp_path: Path) -> None:
    """After three target durations without the segment, the player gets the playlist as it is (200), not an error."""
    writer = live_writer(tmp_path / "live" / "s1")
    await asyncio.to_thread(feed_audio, writer, 0.0, 3.0)
    assert await asyncio.to_thread(writer.sync, 10.0)
    files, client = hls_app(tmp_path / "live")
    async with client:
        current = writer.media_playlist.read_text(encoding="utf-8")
        msn = last_msn(parse_media(current)) + 1
        response = await client.get(f"/live/s1/{writer.media_playlist.name}?_HLS_msn={msn}")
        assert response.status_code == 200 and response.text == current
    assert len(files.watch) == 0
    await writer.aclose()


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("_HLS_msn=99", "more than two segments beyond"),
        ("_HLS_msn=abc", "non-negative integers"),
        ("_HLS_msn=-1", "non-negative integers"),
        ("_HLS_msn=1&_HLS_part=x", "non-negative integers"),
        ("_HLS_part=1", "needs _HLS_msn"),
        ("_HLS_msn=99999999999", "non-negative integers"),
    ],
)
async def test_bad_blocking_reload_requests_are_a_400_json_error(tmp_path: Path, query: str, error: str) -> None:
    """Directives that are not numbers, a part without a segment, or a segment too far ahead: 400, JSON shape."""
    writer = live_writer(tmp_path / "live" / "s1")
    await asyncio.to_thread(feed_audio, writer, 0.0, 3.0)
    assert await asyncio.to_thread(writer.sync, 10.0)
    files, client = hls_app(tmp_path / "live")
    async with client:
        response = await client.get(f"/live/s1/{writer.media_playlist.name}?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["ok"] is False and body["status"] == 400 and error in body["error"]
    assert response.headers["cache-control"] == "no-store" and response.headers["access-control-allow-origin"] == "*"
    assert len(files.watch) == 0
    await writer.aclose()


async def test_a_closed_playlist_or_the_master_answers_a_blocking_reload_at_once(remuxed: Remuxed) -> None:
    """A recording will list nothing more, so any _HLS_msn gets it straight away; the master ignores directives."""
    files, client = hls_app(remuxed.directory.parent)
    async with client:
        name = remuxed.writer.media_playlist.name
        response = await client.get(f"/live/{remuxed.directory.name}/{name}?_HLS_msn=1000")
        assert response.status_code == 200 and parse_media(response.text).ended
        response = await client.get(f"/live/{remuxed.directory.name}/index.m3u8?_HLS_msn=1000")
        assert response.status_code == 200 and response.text.startswith("#EXTM3U")


# ---- the title card -----------------------------------------------------------------------------------------------


def test_the_title_card_redraws_only_when_its_clock_text_changes() -> None:
    """Frames within the same second are one reused picture; a new second draws a new one, at the card's size."""
    card = small_card()
    wall = datetime.fromisoformat("2024-05-01T03:00:00+00:00")
    first = card.frame(0.0, wall)
    assert card.frame(0.4, wall) is first and card.renders == 1
    assert card.frame(1.0, wall.replace(second=1)) is not first and card.renders == 2
    assert (first.width, first.height, first.format.name) == (320, 180, "yuv420p")


def test_the_title_card_falls_back_to_latin_text_without_a_thai_font(tmp_path: Path) -> None:
    """With no Thai font the card still renders, with a Latin title instead of the Thai one."""
    card = TitleCard("การประชุมวุฒิสภา", width=320, height=180, font_dir=tmp_path)
    assert not card.thai and card.title == FALLBACK_TITLE
    assert card.frame(5.0, datetime.fromisoformat("2024-05-01T03:00:00+00:00")).width == 320


# ---- a real player ------------------------------------------------------------------------------------------------

PLAYER_PAGE = """<!doctype html><meta charset="utf-8"><video id="v" muted playsinline></video>
<script src="/hls.min.js"></script>
<script>
  const video = document.getElementById("v");
  const hls = new Hls();
  window.errors = [];
  // Only fatal errors count: a busy test machine may stall the buffer for a moment, which hls.js recovers from.
  hls.on(Hls.Events.ERROR, (_, data) => data.fatal && window.errors.push(data.details));
  hls.loadSource(location.hash.slice(1));
  hls.attachMedia(video);
  video.playbackRate = 2;
  video.play();
</script>"""

PLAYER_STATE = """() => {
  const video = document.getElementById("v");
  const track = video.textTracks[0];
  return {
    ended: video.ended,
    start: video.buffered.length ? video.buffered.start(0) : null,
    track: track && {label: track.label, language: track.language, mode: track.mode},
    cues: track && track.cues ? [...track.cues].map(c => [c.startTime, c.endTime, c.text]) : [],
    errors: window.errors,
  };
}"""


@pytest.mark.browser
@needs_chromium
async def test_hls_js_in_chromium_plays_the_sitting_with_thai_captions_in_sync(remuxed: Remuxed) -> None:
    """hls.js, embedded on another origin, plays the recording to the end with the Thai track on and cues in sync."""
    files = hls_client(remuxed.directory.parent)
    player = (ROOT / "static" / "vendor" / "hls.js" / "hls.min.js").read_bytes()

    async def serve(route: BrowserRoute) -> None:
        url = route.request.url
        if url.startswith("http://sapha.test/"):
            response = await files.get(url)
            await route.fulfill(status=response.status_code, headers=dict(response.headers), body=response.content)
        elif url.endswith("/hls.min.js"):
            await route.fulfill(body=player, content_type="text/javascript")
        else:
            await route.fulfill(body=PLAYER_PAGE, content_type="text/html; charset=utf-8")

    async with files, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.route("**/*", serve)
            await page.goto(f"http://embed.test/#http://sapha.test/live/{remuxed.directory.name}/index.m3u8")
            await page.wait_for_function("() => document.getElementById('v').ended", timeout=60_000)
            state = await page.evaluate(PLAYER_STATE)
        finally:
            await browser.close()
    assert state["errors"] == []
    assert state["track"] == {"label": "ไทย", "language": "th", "mode": "showing"}
    # The player's timeline starts where the first picture is; a cue must sit where its media time says.
    cues = sorted((start - state["start"], end - state["start"], text) for start, end, text in state["cues"])
    assert [text for _, _, text in cues] == ["ท่านประธานที่เคารพ", "ขอเสนอญัตติ"]  # the repeated cue shown once
    assert [(start, end) for start, end, _ in cues] == [
        pytest.approx((0.5, 1.5), abs=0.03),
        pytest.approx((3.5, 4.5), abs=0.03),
    ]
