"""A sitting's feed as live HLS: MPEG-TS segments, a sliding live playlist, and the Thai captions as WebVTT.

Files, all directly in ``out_dir`` (one directory per sitting), named by a run id so that a restarted feed never
overwrites what an earlier run wrote (segments are served as immutable)::

    index.m3u8                  master playlist: one variant plus the "ไทย" SUBTITLES rendition (latest run)
    media-<run>.m3u8            media playlist: live, the last ``window`` segments; at close, all, with ENDLIST
    subs-<run>.m3u8             subtitle playlist: the same segments as WebVTT, trailing while captions settle
    <run>-00000.ts, ...         media segments (H.264 + AAC in MPEG-TS)
    <run>-00000.vtt, ...        caption segments, one per media segment, same sequence numbers and durations

One clock: media time, seconds since the start of the sitting's feed, as ``AudioSource`` stamps its chunks and the
caption engine stamps captions. Media time ``t`` is written as MPEG-TS timestamp ``TS_ORIGIN + t * 90 000``, and
every WebVTT segment carries ``X-TIMESTAMP-MAP=MPEGTS:<TS_ORIGIN>,LOCAL:00:00:00.000`` with cue times in media
time, so players put a caption on the picture it was spoken over.

Video is copied as is when it is H.264 (4:2:0) and audio when it is AAC; anything else is re-encoded (libx264
ultrafast/zerolatency at most ``MAX_WIDTH`` x ``MAX_HEIGHT`` with a keyframe every segment; AAC at 48 kHz).
An audio-only feed gets the writer's ``TitleCard`` as its picture when it has one.

All PyAV output work runs on one worker thread per writer, fed through a ``Backlog``: the ``add_*`` calls never
block unless asked to, video is dropped (and counted) when the worker falls behind, audio never is.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import io
import logging
import math
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
from av.audio.resampler import AudioResampler
from av.container import OutputContainer
from av.stream import Stream
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

from archive.exports import cues as caption_cues
from archive.models import Segment as TranscriptPiece
from stream.titlecard import TitleCard
from transcribe.caption import Caption

log = logging.getLogger(__name__)

MPEGTS_HZ = 90_000
# Media time 0 is written as this MPEG-TS timestamp: the headroom keeps B-frame decode times and AAC priming,
# which start a little before the first picture, positive as MPEG-TS requires.
TS_ORIGIN = 10 * MPEGTS_HZ
TIMESTAMP_MAP = f"X-TIMESTAMP-MAP=MPEGTS:{TS_ORIGIN},LOCAL:00:00:00.000"
MASTER_NAME = "index.m3u8"
SUBTITLE_NAME = "ไทย"
MAX_WIDTH, MAX_HEIGHT = 854, 480
MAX_FPS = 30
AUDIO_RATE = 48_000
X264_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency", "crf": "26", "maxrate": "1200k", "bufsize": "2400k"}

# How many items of each class may wait for the worker. Raw frames are the memory-hungry kind (a 1080p frame is
# 3 MB), so only about a second of them; compressed packets are small and arrive in bursts (a whole segment at
# once from an HLS input), so half a minute of them. Audio is never dropped for being slow: only a writer stuck
# for minutes fills its limit, and that is logged.
BACKLOG_LIMITS = {"frame": 30, "packet": 900, "audio": 6000, "control": 10_000}

Kind = Literal["video", "audio"]
Mode = Literal["remux", "encode", "picture"]


def ticks(seconds: float) -> int:
    """Media time in MPEG-TS clock ticks (1/90 000 s)."""
    return round(seconds * MPEGTS_HZ)


def can_remux(stream: Stream) -> bool:
    """Whether HLS can carry ``stream`` as is: H.264 4:2:0 video or AAC audio."""
    name = stream.codec_context.name
    if stream.type == "audio":
        return name == "aac"
    if stream.type != "video" or name != "h264":
        return False
    # 4:2:2 and 10-bit H.264 (studio feeds) play in no browser: those are re-encoded.
    return stream.codec_context.pix_fmt in (None, "yuv420p", "yuvj420p")


def avc_codec(data: bytes | None) -> str | None:
    """The RFC 6381 ``avc1.PPCCLL`` string from an avcC record or an Annex B stream holding an SPS."""
    if not data:
        return None
    if data[0] == 1 and len(data) >= 4:
        return f"avc1.{data[1]:02x}{data[2]:02x}{data[3]:02x}"
    start = 0
    while (found := data.find(b"\x00\x00\x01", start)) >= 0:
        nal = data[found + 3 : found + 7]
        if len(nal) == 4 and nal[0] & 0x1F == 7:
            return f"avc1.{nal[1]:02x}{nal[2]:02x}{nal[3]:02x}"
        start = found + 3
    return None


def aac_codec(profile: str | None) -> str:
    """The RFC 6381 string for an AAC profile name as FFmpeg gives it."""
    return {"HE-AAC": "mp4a.40.5", "HE-AACv2": "mp4a.40.29"}.get(profile or "", "mp4a.40.2")


def fit(width: int, height: int) -> tuple[int, int]:
    """The largest even size within ``MAX_WIDTH`` x ``MAX_HEIGHT`` with the same shape, never upscaled."""
    scale = min(MAX_WIDTH / width, MAX_HEIGHT / height, 1.0)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


# ---- the inbox ---------------------------------------------------------------------------------------------------


class Backlog:
    """A FIFO between producers and the writer's worker, bounded per class of item (``BACKLOG_LIMITS``' keys).

    ``offer`` of a class at its limit drops the item (and counts it) or, with ``block``, waits for room: only
    producers that are themselves worker threads reading media faster than real time should block.
    """

    def __init__(self, limits: dict[str, int]) -> None:
        self._cond = threading.Condition()
        self._items: deque[tuple[str, object]] = deque()
        self._limits = dict(limits)
        self._queued = dict.fromkeys(limits, 0)
        self._dropped = dict.fromkeys(limits, 0)
        self._shut = False

    def offer(self, item: object, cls: str, *, block: bool = False, force: bool = False) -> bool:
        """Queue ``item``; ``False`` when it was dropped or the backlog is shut. ``force`` ignores the limit."""
        with self._cond:
            while not force and not self._shut and self._queued[cls] >= self._limits[cls]:
                if not block:
                    self._dropped[cls] += 1
                    return False
                self._cond.wait()
            if self._shut:
                return False
            self._items.append((cls, item))
            self._queued[cls] += 1
            self._cond.notify_all()
            return True

    def take(self, timeout: float | None = None) -> object | None:
        """The oldest item, waiting up to ``timeout`` seconds (forever if ``None``); ``None`` if there was none."""
        with self._cond:
            if not self._items:
                self._cond.wait_for(lambda: bool(self._items), timeout)
            if not self._items:
                return None
            cls, item = self._items.popleft()
            self._queued[cls] -= 1
            self._cond.notify_all()
            return item

    def shut(self) -> None:
        """Refuse new items from now on (queued ones stay for the worker) and release blocked producers."""
        with self._cond:
            self._shut = True
            self._cond.notify_all()

    def abandon(self) -> list[object]:
        """Shut and empty the backlog: the worker is gone. Returns what was queued."""
        with self._cond:
            self._shut = True
            items = [item for _, item in self._items]
            self._items.clear()
            self._queued = dict.fromkeys(self._queued, 0)
            self._cond.notify_all()
            return items

    def dropped(self, cls: str) -> int:
        return self._dropped[cls]

    def __len__(self) -> int:
        return len(self._items)


# ---- what travels through the backlog ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Input:
    video: Stream | bool  # a parameter copy of the stream to remux, True to encode frames, False for none
    audio: Stream | bool


@dataclass
class _Remux:
    kind: Kind
    packet: av.Packet
    pts: int  # media ticks
    dts: int
    duration: int
    key: bool


@dataclass(frozen=True)
class _Raw:
    kind: Kind
    frame: av.VideoFrame | av.AudioFrame
    pts: int  # media ticks


@dataclass(frozen=True)
class _Cue:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class _FinalUntil:
    t: float


@dataclass(frozen=True)
class _Barrier:
    reached: threading.Event


class _Close:
    pass


# ---- stats and records --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HlsStats:
    segments: int
    subtitle_segments: int
    video_dropped: int  # video packets or frames not written because the worker was behind
    audio_dropped: int  # only ever non-zero when the worker was stuck
    late_captions: int  # captions that came after their WebVTT segments had been written
    encoders_opened: int  # 0 for a pure remux
    mux_errors: int
    failed: str | None


@dataclass(frozen=True)
class _Segment:
    seq: int
    name: str
    start: int  # media ticks
    duration: int  # ticks
    discontinuity: bool
    date: str  # EXT-X-PROGRAM-DATE-TIME
    size: int  # bytes
    closed_at: float  # time.monotonic() when it was written

    @property
    def end(self) -> int:
        return self.start + self.duration

    def vtt_name(self) -> str:
        return self.name.removesuffix(".ts") + ".vtt"


@dataclass(frozen=True)
class _Variant:
    codecs: str
    resolution: tuple[int, int] | None


# ---- playlists and WebVTT (pure) --------------------------------------------------------------------------------


def target_duration(longest: float) -> int:
    """EXT-X-TARGETDURATION for segments up to ``longest`` seconds long."""
    # RFC 8216: every EXTINF, rounded to the nearest integer, must be at most the target duration.
    return max(1, math.floor(longest + 0.5))


def render_media_playlist(
    segments: Sequence[_Segment], *, target: int, ended: bool, discontinuities_before: int, subtitles: bool = False
) -> str:
    """A media playlist listing ``segments`` (their .ts, or with ``subtitles`` their .vtt)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}"]
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{segments[0].seq if segments else 0}")
    if discontinuities_before:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuities_before}")
    for segment in segments:
        if segment.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{segment.date}")
        lines.append(f"#EXTINF:{segment.duration / MPEGTS_HZ:.3f},")
        lines.append(segment.vtt_name() if subtitles else segment.name)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def render_master_playlist(
    variant: _Variant, *, bandwidth: int, average: int, media_uri: str, subtitles_uri: str
) -> str:
    """The master playlist: one variant, with the captions as a default WebVTT SUBTITLES rendition."""
    subs = (
        f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="{SUBTITLE_NAME}",LANGUAGE="th",'
        f'DEFAULT=YES,AUTOSELECT=YES,FORCED=NO,URI="{subtitles_uri}"'
    )
    attributes = [f"BANDWIDTH={bandwidth}", f"AVERAGE-BANDWIDTH={average}", f'CODECS="{variant.codecs}"']
    if variant.resolution is not None:
        attributes.append(f"RESOLUTION={variant.resolution[0]}x{variant.resolution[1]}")
    attributes += ['SUBTITLES="subs"', "CLOSED-CAPTIONS=NONE"]
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS", subs]
    lines += ["#EXT-X-STREAM-INF:" + ",".join(attributes), media_uri]
    return "\n".join(lines) + "\n"


def _vtt_time(ms: int) -> str:
    seconds = ms // 1000
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{ms % 1000:03d}"


def render_vtt(captions: Iterable[_Cue]) -> str:
    """A WebVTT segment: cue times are media time, mapped onto the MPEG-TS clock by ``TIMESTAMP_MAP``."""
    pieces = [
        TranscriptPiece(
            id=n,
            sitting_id="",
            seq=None,
            start_ms=round(c.start * 1000),
            end_ms=round(c.end * 1000),
            wall_time="",
            text=c.text,
            agenda_item_id=None,
            speaker_id=None,
            revision=0,
        )
        for n, c in enumerate(captions)
    ]
    blocks = [f"WEBVTT\n{TIMESTAMP_MAP}"]
    for cue in caption_cues(pieces):
        text = "\n".join(line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for line in cue.lines)
        blocks.append(f"{_vtt_time(cue.start_ms)} --> {_vtt_time(cue.end_ms)}\n{text}")
    return "\n\n".join(blocks) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    # Readers (the HTTP handler, a CDN) must never see half a playlist.
    part = path.with_name(path.name + ".tmp")
    part.write_text(text, encoding="utf-8")
    os.replace(part, path)


def _date(epoch: float, media_ticks: int) -> str:
    moment = datetime.fromtimestamp(epoch + media_ticks / MPEGTS_HZ, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- encoders -----------------------------------------------------------------------------------------------------


def _holder() -> OutputContainer:
    # A never-written container whose streams hold codec parameters (or an open encoder) that each segment's
    # container copies: PyAV creates output streams from templates, and input streams die with their input.
    return av.open(io.BytesIO(), "w", format="mpegts")


class _VideoEncoder:
    """libx264 at a fixed size; the caller decides which frames are keyframes."""

    def __init__(self, width: int, height: int) -> None:
        self.size = (width, height)
        self._holder = _holder()
        stream = self._holder.add_stream("libx264", rate=MAX_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, MPEGTS_HZ)
        # Without a global header x264 repeats SPS/PPS at every IDR: each segment decodes on its own.
        stream.codec_context.options = {**X264_OPTIONS, "forced-idr": "1", "x264-params": "scenecut=0:keyint=600"}
        stream.codec_context.thread_count = 1  # cheap at this size; leaves the other cores to captioning
        self._holder.start_encoding()
        self.template: Stream = stream
        self._scaler = VideoReformatter()
        self.last_pts: int | None = None
        self.next_key: int | None = None

    def encode(self, frame: av.VideoFrame, pts: int, key: bool) -> list[av.Packet]:
        width, height = self.size
        if (frame.width, frame.height, frame.format.name) != (width, height, "yuv420p"):
            frame = self._scaler.reformat(frame, width=width, height=height, format="yuv420p", interpolation="BILINEAR")
        frame.pts = pts
        frame.time_base = Fraction(1, MPEGTS_HZ)
        frame.pict_type = PictureType.I if key else PictureType.NONE
        self.last_pts = pts
        return list(self.template.encode(frame))

    def flush(self) -> list[av.Packet]:
        return list(self.template.encode(None))


class _AudioEncoder:
    """AAC-LC at 48 kHz, mono or stereo as the first input was, on a sample clock anchored to media time."""

    def __init__(self, channels: int) -> None:
        self._layout = "mono" if channels == 1 else "stereo"
        self._holder = _holder()
        stream = self._holder.add_stream("aac", rate=AUDIO_RATE)
        stream.layout = self._layout
        stream.bit_rate = 64_000 if channels == 1 else 128_000
        stream.codec_context.time_base = Fraction(1, AUDIO_RATE)
        self._holder.start_encoding()
        self.template: Stream = stream
        self._frame_size = stream.codec_context.frame_size
        self._resampler: AudioResampler | None = None
        self._input: tuple[str, str, int] | None = None
        self._next: int | None = None  # sample clock position of the next output sample

    def encode(self, frame: av.AudioFrame, pts: int) -> list[av.Packet]:
        start = round(pts * AUDIO_RATE / MPEGTS_HZ)
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        packets: list[av.Packet] = []
        # A jump of more than 0.1 s (a reconnect) re-anchors the clock; the resampler's own delay is far less.
        if self._next is None or shape != self._input or abs(start - self._next) > AUDIO_RATE // 10:
            packets += self._finish_frames()
            self._next = start if self._next is None else max(start, self._next)
            self._resampler = AudioResampler(
                format="fltp", layout=self._layout, rate=AUDIO_RATE, frame_size=self._frame_size
            )
            self._input = shape
        assert self._resampler is not None
        for out in self._resampler.resample(frame):
            packets += self._encode(out)
        return packets

    def flush(self) -> list[av.Packet]:
        return self._finish_frames() + list(self.template.encode(None))

    def _encode(self, frame: av.AudioFrame) -> list[av.Packet]:
        assert self._next is not None
        frame.pts = self._next
        frame.time_base = Fraction(1, AUDIO_RATE)
        self._next += frame.samples
        return list(self.template.encode(frame))

    def _finish_frames(self) -> list[av.Packet]:
        """Encode what the resampler holds, padded with silence to a whole AAC frame (AAC takes no short ones)."""
        if self._resampler is None:
            return []
        packets: list[av.Packet] = []
        for out in self._resampler.resample(None):
            if out.samples < self._frame_size:
                planes = out.to_ndarray()
                padded = np.zeros((planes.shape[0], self._frame_size), dtype=planes.dtype)
                padded[:, : out.samples] = planes
                out = av.AudioFrame.from_ndarray(padded, format="fltp", layout=self._layout)
                out.sample_rate = AUDIO_RATE
            packets += self._encode(out)
        self._resampler = None
        return packets


# ---- one segment file ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Out:
    """A packet on its way into a segment, with timestamps in media ticks."""

    kind: Kind
    packet: av.Packet
    pts: int
    dts: int
    duration: int
    key: bool


class _SegmentFile:
    """One MPEG-TS segment being written (to ``<name>.part``, renamed when complete)."""

    def __init__(self, path: Path, templates: dict[Kind, Stream], start: int, discontinuity: bool) -> None:
        self.path = path
        self.start = start
        self.discontinuity = discontinuity  # timestamps or codec parameters do not follow on from the last one
        self.end = start  # end of the content written so far
        self._part = path.with_name(path.name + ".part")
        # copyts: the muxer must write our timestamps as they are, or captions would no longer line up.
        self._container = av.open(str(self._part), "w", format="mpegts", container_options={"mpegts_copyts": "1"})
        order: tuple[Kind, ...] = ("video", "audio")
        self.streams = {
            kind: self._container.add_stream_from_template(templates[kind]) for kind in order if kind in templates
        }
        self.errors = 0

    def mux(self, out: _Out) -> None:
        packet = out.packet
        packet.pts = TS_ORIGIN + out.pts
        packet.dts = TS_ORIGIN + out.dts
        packet.duration = out.duration
        packet.time_base = Fraction(1, MPEGTS_HZ)
        packet.stream = self.streams[out.kind]
        try:
            self._container.mux(packet)
        except av.error.FFmpegError as exc:
            # One bad packet costs a glitch, not the sitting's video.
            self.errors += 1
            log.warning("HLS segment %s: dropped a %s packet: %s", self.path.name, out.kind, exc)
            return
        self.end = max(self.end, out.pts + out.duration)

    def close(self) -> int:
        """Finish the file and put it in place; returns its size in bytes."""
        self._container.close()
        os.replace(self._part, self.path)
        return self.path.stat().st_size


# ---- the worker ---------------------------------------------------------------------------------------------------


class _Muxer:
    """Everything the worker thread does: encoding, segmenting, captions and playlists. Single-threaded."""

    def __init__(self, writer: HlsWriter) -> None:
        self._w = writer
        self._segment = ticks(writer.segment_s)
        self._tolerance = self._segment // 10  # a GOP a little short of the target still ends a segment
        self._cap = max(ticks(10.0), 5 * self._segment)  # cut even without a keyframe past this
        self._gap = ticks(0.5)  # a jump in time this big between inputs is a discontinuity
        self._modes: dict[Kind, Mode] = {}
        self._remux_templates: dict[Kind, Stream] = {}
        self._codecs: dict[Kind, str] = {}
        self._video_enc: _VideoEncoder | None = None
        self._audio_enc: _AudioEncoder | None = None
        self._last_dts: dict[Kind, int] = {}
        self._last_pts: dict[Kind, int] = {}
        self._interval: dict[Kind, int] = {}
        self._nudge: dict[Kind, int] = {}
        self._picture_origin: int | None = None
        self._picture_count = 0
        self._fresh_input = False
        self._seg: _SegmentFile | None = None
        self._seg_signature: tuple[object, ...] = ()
        self._pending: list[_Out] = []
        self._prev: tuple[int, tuple[object, ...]] | None = None  # (end, signature) of the last closed segment
        self.segments: list[_Segment] = []
        # Running figures, so that each segment costs the same to announce at hour ten as at minute one.
        self._discontinuities = [0]  # [n]: discontinuities among the first n segments
        self._longest = writer.segment_s
        self._bytes = 0
        self._ticks = 0
        self._peak = 0.0
        self._variant: _Variant | None = None
        self._master_text = ""
        # captions
        self._captions: list[tuple[float, float, str]] = []
        self._final_until = -math.inf
        self.vtt_written = 0
        self.late_captions = 0
        self.encoders_opened = 0
        self.mux_errors = 0

    # -- items --------------------------------------------------------------------------------------------------

    def handle(self, item: object) -> None:
        match item:
            case _Remux():
                self._remux(item)
            case _Raw(kind="video"):
                self._video_frame(item.frame, item.pts)  # type: ignore[arg-type]
            case _Raw():
                self._audio_frame(item.frame, item.pts)  # type: ignore[arg-type]
            case _Input():
                self._begin_input(item)
            case _Cue():
                self._add_caption(item)
            case _FinalUntil():
                self._final_until = max(self._final_until, item.t)
            case _Barrier():
                item.reached.set()

    def _begin_input(self, item: _Input) -> None:
        self._modes = {}
        self._remux_templates = {}
        for kind, spec in (("video", item.video), ("audio", item.audio)):
            if isinstance(spec, Stream):
                self._modes[kind] = "remux"
                self._remux_templates[kind] = spec
                if kind == "video":
                    self._codecs["video"] = avc_codec(spec.codec_context.extradata) or self._codecs.get("video", "")
                else:
                    self._codecs["audio"] = aac_codec(spec.codec_context.profile)
            elif spec:
                self._modes[kind] = "encode"
        if "video" not in self._modes and self._w.picture is not None and "audio" in self._modes:
            self._modes["video"] = "picture"
        self._nudge = {}
        self._fresh_input = True

    def _template(self, kind: Kind) -> Stream | None:
        mode = self._modes.get(kind)
        if mode == "remux":
            return self._remux_templates[kind]
        encoder = self._video_enc if kind == "video" else self._audio_enc
        return encoder.template if encoder is not None and mode is not None else None

    def _remux(self, item: _Remux) -> None:
        if self._modes.get(item.kind) != "remux":
            return  # a packet for a stream the input did not declare
        if item.kind == "audio":
            self._draw_picture(item.pts, item.pts + item.duration)
        self._emit(_Out(item.kind, item.packet, item.pts, item.dts, item.duration, item.key))

    def _video_frame(self, frame: av.VideoFrame, pts: int) -> None:
        if self._modes.get("video") == "picture":
            self._modes["video"] = "encode"  # real pictures arrived after all: they replace the card
        if self._modes.get("video") != "encode":
            return
        self._encode_video(frame, pts)

    def _audio_frame(self, frame: av.AudioFrame, pts: int) -> None:
        if self._modes.get("audio") != "encode":
            return
        self._draw_picture(pts, pts + ticks(frame.samples / frame.sample_rate))
        if self._audio_enc is None:
            self._audio_enc = _AudioEncoder(frame.layout.nb_channels)
            self.encoders_opened += 1
            self._codecs["audio"] = aac_codec("LC")
        for packet in self._audio_enc.encode(frame, pts):
            self._emit_encoded("audio", packet)

    def _encode_video(self, frame: av.VideoFrame, pts: int) -> None:
        encoder = self._video_enc
        if encoder is None:
            encoder = self._video_enc = _VideoEncoder(*fit(frame.width, frame.height))
            self.encoders_opened += 1
        if encoder.last_pts is not None and pts - encoder.last_pts < MPEGTS_HZ // MAX_FPS:
            return  # x264 needs rising timestamps, and more than MAX_FPS is wasted on a sitting
        if encoder.last_pts is not None and pts - encoder.last_pts > self._gap:
            encoder.next_key = None  # after a gap a new segment starts: it must start with a keyframe
        key = encoder.next_key is None or pts >= encoder.next_key - ticks(0.001)
        if key:
            encoder.next_key = pts if encoder.next_key is None else encoder.next_key
            while encoder.next_key <= pts + ticks(0.001):
                encoder.next_key += self._segment
        for packet in encoder.encode(frame, pts, key):
            if "video" not in self._codecs or not self._codecs["video"]:
                self._codecs["video"] = avc_codec(bytes(packet)) or ""
            self._emit_encoded("video", packet)

    def _emit_encoded(self, kind: Kind, packet: av.Packet) -> None:
        tb = packet.time_base
        pts = round(packet.pts * tb * MPEGTS_HZ)
        dts = round(packet.dts * tb * MPEGTS_HZ) if packet.dts is not None else pts
        duration = round(packet.duration * tb * MPEGTS_HZ) if packet.duration else 0
        self._emit(_Out(kind, packet, pts, dts, duration, kind == "audio" or packet.is_keyframe))

    def _draw_picture(self, start: int, until: int) -> None:
        """Encode title-card frames for audio from ``start`` to ``until`` (ticks), at the card's frame rate."""
        card = self._w.picture
        if card is None or self._modes.get("video") != "picture":
            return
        if self._picture_origin is None or start - self._next_picture() > self._gap:
            self._picture_origin, self._picture_count = start, 0
        epoch = self._w.epoch or time.time()
        while (at := self._next_picture()) < until:
            self._picture_count += 1
            frame = card.frame(at / MPEGTS_HZ, datetime.fromtimestamp(epoch + at / MPEGTS_HZ, UTC))
            self._encode_video(frame, at)

    def _next_picture(self) -> int:
        card = self._w.picture
        assert card is not None and self._picture_origin is not None
        return self._picture_origin + round(self._picture_count * MPEGTS_HZ / card.fps)

    # -- segmenting ---------------------------------------------------------------------------------------------

    def _emit(self, out: _Out) -> None:
        kind = out.kind
        # A looped file or a reconnect may start a hair before the previous input ended: shift this input's
        # packets of that track just enough that its timestamps never go back.
        last = self._last_dts.get(kind)
        nudge = self._nudge.get(kind, 0)
        if last is not None and out.dts + nudge <= last:
            nudge = self._nudge[kind] = last + 1 - out.dts
        pts, dts = out.pts + nudge, out.dts + nudge
        previous = self._last_pts.get(kind)
        if previous is not None and 0 < pts - previous < self._segment:
            self._interval[kind] = pts - previous
        self._last_dts[kind], self._last_pts[kind] = dts, pts
        out = _Out(kind, out.packet, pts, dts, out.duration or self._interval.get(kind, 0), out.key)

        if self._fresh_input:
            self._fresh_input = False
            if self._seg is not None and (
                self._signature() != self._seg_signature or abs(pts - self._seg.end) > self._gap
            ):
                self._close_segment(self._seg.end)
        seg = self._seg
        if seg is None:
            self._pending.append(out)
            self._open_from_pending(force=False)
            return
        if kind not in seg.streams:
            if out.key and self._template(kind) is not None:
                # A track that showed up late (video after audio): a fresh segment carries both from here.
                self._close_segment(pts)
                self._pending.append(out)
                self._open_from_pending(force=False)
            return
        elapsed = pts - seg.start
        leader: Kind = "video" if "video" in seg.streams else "audio"
        if (kind == leader and out.key and elapsed >= self._segment - self._tolerance) or (
            kind == "audio" and elapsed >= self._cap
        ):
            self._close_segment(pts)
            self._open_segment(list(seg.streams), pts)
        assert self._seg is not None
        self._seg.mux(out)

    def _signature(self) -> tuple[object, ...]:
        parts: list[object] = []
        for kind in ("audio", "video"):
            template = self._template(kind)  # type: ignore[arg-type]
            if template is not None:
                ctx = template.codec_context
                size = (ctx.width, ctx.height) if kind == "video" else (ctx.sample_rate, ctx.channels)
                parts.append((kind, ctx.name, ctx.extradata, size))
        return tuple(parts)

    def _open_from_pending(self, *, force: bool) -> None:
        """Start an input's first segment once every expected track has output (or a segment's worth waited)."""
        if not self._pending:
            return
        present = {o.kind for o in self._pending if self._template(o.kind) is not None}
        waiting = [k for k in self._modes if k not in present]
        span = max(o.pts for o in self._pending) - min(o.pts for o in self._pending)
        if waiting and span < self._segment and not force:
            return
        pending, self._pending = self._pending, []
        if not present:
            return
        kinds: list[Kind] = [kind for kind in ("video", "audio") if kind in present]
        if "video" in present:
            # A segment must open on a keyframe: earlier video cannot be decoded.
            first_key = next((o for o in pending if o.kind == "video" and o.key), None)
            pending = [o for o in pending if o.kind != "video" or (first_key is not None and o.dts >= first_key.dts)]
        self._open_segment(kinds, min(o.pts for o in pending if o.kind in present))
        assert self._seg is not None
        for out in pending:
            if out.kind in self._seg.streams:
                self._seg.mux(out)

    def _open_segment(self, kinds: list[Kind], start: int) -> None:
        templates = {kind: t for kind in kinds if (t := self._template(kind)) is not None}
        signature = self._signature()
        jump = self._prev is not None and (signature != self._prev[1] or abs(start - self._prev[0]) > self._gap)
        self._w.out_dir.mkdir(parents=True, exist_ok=True)
        seq = len(self.segments)
        self._seg = _SegmentFile(self._w.out_dir / f"{self._w.run_id}-{seq:05d}.ts", templates, start, jump)
        self._seg_signature = signature
        codecs = [self._codecs.get(kind) for kind in ("video", "audio") if kind in templates]
        video = templates.get("video")
        size = (video.codec_context.width, video.codec_context.height) if video is not None else None
        self._variant = _Variant(",".join(c for c in codecs if c), size)

    def _close_segment(self, end: int) -> None:
        seg = self._seg
        if seg is None:
            return
        self._seg = None
        size = seg.close()
        self.mux_errors += seg.errors
        duration = end - seg.start if end > seg.start else max(1, seg.end - seg.start)
        epoch = self._w.epoch or time.time()
        record = _Segment(
            seq=len(self.segments),
            name=seg.path.name,
            start=seg.start,
            duration=duration,
            discontinuity=seg.discontinuity,
            date=_date(epoch, seg.start),
            size=size,
            closed_at=time.monotonic(),
        )
        self.segments.append(record)
        self._discontinuities.append(self._discontinuities[-1] + record.discontinuity)
        self._longest = max(self._longest, duration / MPEGTS_HZ)
        self._bytes += size
        self._ticks += duration
        if duration >= self._segment // 2:  # a short last-of-input segment says little about the bit rate
            self._peak = max(self._peak, size * 8 * MPEGTS_HZ / duration)
        self._prev = (seg.start + duration, self._seg_signature)
        self._write_media_playlist(ended=False)
        if self.vtt_written == 0:
            # Players load the subtitle playlist with the master: it exists, empty, until captions settle.
            self._write_subtitle_playlist(ended=False)
        self._write_master()

    # -- captions -----------------------------------------------------------------------------------------------

    def _written_until(self) -> float:
        """Media time before which every caption segment has been written already."""
        if self.vtt_written < len(self.segments):
            return self.segments[self.vtt_written].start / MPEGTS_HZ
        if self.segments:
            return self.segments[-1].end / MPEGTS_HZ
        return -math.inf

    def _add_caption(self, cue: _Cue) -> None:
        if cue.end <= self._written_until():
            self.late_captions += 1
            return
        bisect.insort(self._captions, (cue.start, cue.end, cue.text))

    def next_deadline(self) -> float | None:
        """Seconds until an unwritten caption segment must be written even without final captions."""
        if self.vtt_written >= len(self.segments):
            return None
        due = self.segments[self.vtt_written].closed_at + self._w.caption_wait_s
        return max(0.0, due - time.monotonic())

    def write_due_captions(self, *, closing: bool = False) -> None:
        """Write, in order, every caption segment whose captions are final (or that has waited long enough)."""
        wrote = False
        now = time.monotonic()
        while self.vtt_written < len(self.segments):
            segment = self.segments[self.vtt_written]
            ready = closing or self._final_until >= segment.end / MPEGTS_HZ
            if not ready and now < segment.closed_at + self._w.caption_wait_s:
                break
            start, end = segment.start / MPEGTS_HZ, segment.end / MPEGTS_HZ
            cues = [_Cue(s, e, text) for s, e, text in self._captions if s < end and max(e, s + 0.001) > start]
            _write_atomically(self._w.out_dir / segment.vtt_name(), render_vtt(cues))
            self.vtt_written += 1
            wrote = True
        if wrote:
            boundary = self._written_until()
            self._captions = [c for c in self._captions if c[1] > boundary]
            self._write_subtitle_playlist(ended=False)

    # -- playlists ----------------------------------------------------------------------------------------------

    def _render(self, count: int, *, ended: bool, subtitles: bool) -> str:
        """The playlist of the first ``count`` segments: all of them once ended, else the last ``window``."""
        first = 0 if ended else max(0, count - self._w.window)
        return render_media_playlist(
            self.segments[first:count],
            target=target_duration(self._longest),
            ended=ended,
            discontinuities_before=self._discontinuities[first],
            subtitles=subtitles,
        )

    def _write_media_playlist(self, *, ended: bool) -> None:
        _write_atomically(self._w.media_playlist, self._render(len(self.segments), ended=ended, subtitles=False))

    def _write_subtitle_playlist(self, *, ended: bool) -> None:
        _write_atomically(self._w.subtitle_playlist, self._render(self.vtt_written, ended=ended, subtitles=True))

    def _write_master(self) -> None:
        if self._variant is None or not self._ticks:
            return
        average = self._bytes * 8 * MPEGTS_HZ / self._ticks
        peak = max(self._peak, average)
        # Rounded up to 50 kbit/s so the master is not rewritten for every wobble in segment size.
        step = 50_000
        text = render_master_playlist(
            self._variant,
            bandwidth=math.ceil(peak / step) * step,
            average=math.ceil(average / step) * step,
            media_uri=self._w.media_playlist.name,
            subtitles_uri=self._w.subtitle_playlist.name,
        )
        if text != self._master_text:
            _write_atomically(self._w.master_playlist, text)
            self._master_text = text

    # -- the end --------------------------------------------------------------------------------------------------

    def finish(self) -> None:
        """Flush the encoders, close the last segment, write every caption segment and the closed playlists."""
        if self._video_enc is not None and self._modes.get("video") in ("encode", "picture"):
            for packet in self._video_enc.flush():
                self._emit_encoded("video", packet)
        if self._audio_enc is not None and self._modes.get("audio") == "encode":
            for packet in self._audio_enc.flush():
                self._emit_encoded("audio", packet)
        self._open_from_pending(force=True)
        if self._seg is not None:
            self._close_segment(self._seg.end)
        if not self.segments:
            return
        self.write_due_captions(closing=True)
        self._write_media_playlist(ended=True)
        self._write_subtitle_playlist(ended=True)
        self._write_master()


# ---- the public writer --------------------------------------------------------------------------------------------


class HlsWriter:
    """Writes one sitting's feed as HLS into ``out_dir``; see the module docstring for the files.

    Producers: one ingest at a time calls ``begin_input`` then ``add_packet`` (remux) and ``add_video_frame`` /
    ``add_audio_frame`` (re-encode) from any single thread, the event loop included: none of them blocks unless
    given ``block=True`` (for ingest threads that read files faster than real time). Frames and packets handed
    over belong to the writer from then on. ``add_caption`` and ``captions_final_until`` may come from any thread.
    ``close()`` ends the sitting's HLS: the playlists are rewritten whole with ``EXT-X-ENDLIST``.
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        segment_s: float = 2.0,
        window: int = 8,
        picture: TitleCard | None = None,
        caption_wait_s: float = 10.0,
    ) -> None:
        if not segment_s >= 0.5:
            raise ValueError(f"segment_s must be at least 0.5, not {segment_s}")
        if window < 3:
            raise ValueError(f"window must be at least 3 segments, not {window}")
        if not caption_wait_s >= 0:
            raise ValueError(f"caption_wait_s must not be negative, not {caption_wait_s}")
        self.out_dir = Path(out_dir)
        self.segment_s = segment_s
        self.window = window
        self.picture = picture
        self.caption_wait_s = caption_wait_s
        self.run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"
        self.epoch: float | None = None  # Unix time at media time 0: the live moment the clock counts from
        self._backlog = Backlog(BACKLOG_LIMITS)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._muxer = _Muxer(self)
        self._kinds: dict[int, Kind] = {}  # input stream index -> track, for add_packet
        self._video_resync = False  # waiting for a keyframe after dropping remuxed video
        self._resync_dropped = 0
        self._failed: str | None = None

    @property
    def master_playlist(self) -> Path:
        return self.out_dir / MASTER_NAME

    @property
    def media_playlist(self) -> Path:
        return self.out_dir / f"media-{self.run_id}.m3u8"

    @property
    def subtitle_playlist(self) -> Path:
        return self.out_dir / f"subs-{self.run_id}.m3u8"

    # -- producers --------------------------------------------------------------------------------------------------

    def begin_input(self, *, video: Stream | bool, audio: Stream | bool = True, block: bool = False) -> None:
        """A (re)opened input: which streams follow, as packets to remux (the input's ``Stream``), as frames to
        encode (``True``), or not at all (``False``; an audio-only input then shows the title card).

        Call it on the thread that owns the input, while it is open: remuxed streams' parameters are copied here.
        Without it the writer expects frames for both video and audio.
        """
        copies: dict[Kind, Stream | bool] = {"video": video, "audio": audio}
        self._kinds = {}
        for kind, spec in list(copies.items()):
            if isinstance(spec, Stream):
                self._kinds[spec.index] = kind  # type: ignore[assignment]
                copies[kind] = _holder().add_stream_from_template(spec)
        self._video_resync = isinstance(video, Stream)
        self._offer(_Input(video=copies["video"], audio=copies["audio"]), "control", block=block)

    def add_packet(self, packet: av.Packet, shift: float, *, block: bool = False) -> bool:
        """Remux a demuxed packet of a stream given to ``begin_input``; media time = packet time + ``shift``.

        Returns ``False`` when it was dropped (video behind a slow worker, or waiting for the next keyframe).
        """
        kind = self._kinds.get(packet.stream_index)
        stamp = packet.pts if packet.pts is not None else packet.dts
        if self._closed or kind is None or not packet.size or stamp is None or packet.time_base is None:
            return False
        tb = packet.time_base
        pts = ticks(float(stamp * tb) + shift)
        dts = ticks(float(packet.dts * tb) + shift) if packet.dts is not None else pts
        duration = ticks(float(packet.duration * tb)) if packet.duration else 0
        key = kind == "audio" or packet.is_keyframe
        if kind == "video" and self._video_resync and not key:
            self._resync_dropped += 1
            return False
        item = _Remux(kind, packet, pts, dts, duration, key)
        accepted = self._offer(item, "packet" if kind == "video" else "audio", block=block, at=pts)
        if kind == "video":
            self._video_resync = not accepted
        return accepted

    def add_video_frame(self, frame: av.VideoFrame, t: float, *, block: bool = False) -> bool:
        """Encode a decoded picture shown at media time ``t``; ``False`` if dropped because the worker is behind."""
        return self._offer(_Raw("video", frame, ticks(t)), "frame", block=block, at=ticks(t))

    def add_audio_frame(self, frame: av.AudioFrame, t: float, *, block: bool = False) -> bool:
        """Encode decoded audio starting at media time ``t``. Audio is never dropped for being slow."""
        return self._offer(_Raw("audio", frame, ticks(t)), "audio", block=block, at=ticks(t))

    can_remux = staticmethod(can_remux)

    def add_caption(self, start: float, end: float, text: str) -> None:
        """A final caption, in media seconds, for the WebVTT rendition."""
        if text.strip():
            self._offer(_Cue(start, max(start, end), text), "control")

    def captions_final_until(self, t: float) -> None:
        """Every caption ending before media time ``t`` has been added: caption segments up to ``t`` can be written."""
        self._offer(_FinalUntil(t), "control")

    def _offer(self, item: object, cls: str, *, block: bool = False, at: int | None = None) -> bool:
        with self._lock:
            if self._closed or self._failed is not None:
                return False
            if at is not None and self.epoch is None:
                self.epoch = time.time() - at / MPEGTS_HZ
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"hls {self.out_dir.name}", daemon=True)
                self._thread.start()
        return self._backlog.offer(item, cls, block=block)

    # -- lifecycle --------------------------------------------------------------------------------------------------

    def sync(self, timeout: float | None = None) -> bool:
        """Block until everything offered before this call has been written. For threads and tests."""
        reached = threading.Event()
        if not self._offer(_Barrier(reached), "control"):
            return self._thread is None or not self._thread.is_alive()
        return reached.wait(timeout)

    def close(self) -> None:
        """End the HLS (idempotent, returns at once): the worker finishes the files, then exits."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._thread is None:
                return
        self._backlog.offer(_Close(), "control", force=True)
        self._backlog.shut()

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until the worker has finished after ``close()``; ``False`` on timeout."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    async def aclose(self) -> None:
        """``close()``, then wait (off the event loop) until the closed playlists are written."""
        self.close()
        if self._thread is not None:
            await asyncio.to_thread(self.wait_closed)

    def stats(self) -> HlsStats:
        m = self._muxer
        return HlsStats(
            segments=len(m.segments),
            subtitle_segments=m.vtt_written,
            video_dropped=self._backlog.dropped("frame") + self._backlog.dropped("packet") + self._resync_dropped,
            audio_dropped=self._backlog.dropped("audio"),
            late_captions=m.late_captions,
            encoders_opened=m.encoders_opened,
            mux_errors=m.mux_errors,
            failed=self._failed,
        )

    def _run(self) -> None:
        muxer = self._muxer
        try:
            while True:
                item = self._backlog.take(muxer.next_deadline())
                if isinstance(item, _Close):
                    muxer.finish()
                    return
                if item is not None:
                    muxer.handle(item)
                muxer.write_due_captions()
        except Exception as exc:  # the feed's captions and archive must go on without its video
            log.exception("HLS writer for %s failed", self.out_dir)
            self._failed = repr(exc)
            for left in self._backlog.abandon():
                if isinstance(left, _Barrier):
                    left.reached.set()
        finally:
            with contextlib.suppress(Exception):
                self._backlog.shut()


class CaptionHorizon:
    """How far captions are final: the engine's settled time, held back while an utterance is still partial.

    The engine's lag counts audio decoded for partials as settled, but their words may still become finals;
    a caption segment written before then would miss them.
    """

    def __init__(self) -> None:
        self._open: dict[str, float] = {}  # segment id -> start of its pending partial

    def observe(self, caption: Caption) -> None:
        if caption.kind == "partial" and caption.text.strip():
            self._open[caption.segment_id] = caption.start
        else:
            self._open.pop(caption.segment_id, None)

    def until(self, settled: float) -> float:
        return min([settled, *self._open.values()])
