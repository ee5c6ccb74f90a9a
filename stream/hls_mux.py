"""The worker side of ``stream.hls``: everything an ``HlsWriter``'s one worker thread does with what comes through
its backlog. ``_Muxer`` chooses per track between remuxing, encoding and drawing the title card, cuts MPEG-TS
segments on keyframes (a new one, marked as a discontinuity, after a jump in time or a change of codec parameters),
rolls captions up per utterance, writes each WebVTT segment once its captions are final (or it has waited long
enough), and keeps the playlists up to date. The items the writer sends through the backlog are defined here too.
Nothing here is thread-safe: it is only ever called from that worker thread.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import av
from av.stream import Stream

from common.cues import last_lines
from common.thai import join_pieces
from stream.hls_clock import MPEGTS_HZ, TS_ORIGIN, ticks
from stream.hls_encode import MAX_FPS, _AudioEncoder, _VideoEncoder, aac_codec, avc_codec, fit
from stream.hls_playlist import (
    _Cue,
    _date,
    _Segment,
    _Variant,
    _write_atomically,
    render_master_playlist,
    render_media_playlist,
    render_vtt,
    target_duration,
)

if TYPE_CHECKING:
    from stream.hls import HlsWriter

# The writer's logger, not this module's: log settings made for ``stream.hls`` cover the whole writer.
log = logging.getLogger("stream.hls")

# Captions of this many recent utterances are kept to roll their later pieces up onto.
ROLL_UP_UTTERANCES = 16

Kind = Literal["video", "audio"]
KINDS: tuple[Kind, ...] = ("video", "audio")  # also the order of the streams in a segment
Mode = Literal["remux", "encode", "picture"]


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
    frame: av.VideoFrame | av.AudioFrame
    pts: int  # media ticks


@dataclass(frozen=True)
class _FinalUntil:
    t: float


@dataclass(frozen=True)
class _Barrier:
    reached: threading.Event


class _Close:
    pass


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
        self.streams = {
            kind: self._container.add_stream_from_template(templates[kind]) for kind in KINDS if kind in templates
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
        # A track whose timestamps jump on by more than this (a reconnect, an RTP outage) starts a new segment
        # marked EXT-X-DISCONTINUITY; shorter holes stay inside a segment, where players step over them.
        self._gap = ticks(1.0)
        self._after_jump = False  # the open segment was closed by a jump; output older than it is stale
        # Until begin_input says otherwise, frames are expected for both tracks (a WHIP-style producer).
        self._modes: dict[Kind, Mode] = {"video": "encode", "audio": "encode"}
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
        self._utterances: dict[str, str] = {}  # utterance id -> its final pieces so far, oldest first
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
            case _Raw(frame=av.VideoFrame() as frame):
                self._video_frame(frame, item.pts)
            case _Raw(frame=av.AudioFrame() as frame):
                self._audio_frame(frame, item.pts)
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
        for kind in KINDS:
            spec = item.video if kind == "video" else item.audio
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
        step = pts - previous if previous is not None else 0
        jumped = out.key and step > max(self._gap, 3 * self._interval.get(kind, 0))
        if 0 < step < self._segment:
            self._interval[kind] = step
        self._last_dts[kind], self._last_pts[kind] = dts, pts
        out = _Out(kind, out.packet, pts, dts, out.duration or self._interval.get(kind, 0), out.key)

        seg = self._seg
        changed = self._fresh_input and seg is not None and self._signature() != self._seg_signature
        self._fresh_input = False
        if seg is not None and (jumped or changed):
            self._close_segment(seg.end)
            self._after_jump = jumped
            seg = None
        if seg is None:
            if self._after_jump and self._prev is not None and pts < self._prev[0]:
                return  # encoder output still due from before the jump (AAC holds a frame back): stale now
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
        for kind in KINDS:
            template = self._template(kind)
            if template is not None:
                ctx = template.codec_context
                size = (ctx.width, ctx.height) if kind == "video" else (ctx.sample_rate, ctx.channels)
                parts.append((kind, ctx.name, ctx.extradata, size))
        return tuple(parts)

    def _open_from_pending(self, *, force: bool) -> None:
        """Start an input's first segment once every expected track has output (or a segment's worth waited)."""
        if not self._pending:
            return
        # A segment must open on a keyframe: video before the first one cannot be decoded.
        first_key = next((o for o in self._pending if o.kind == "video" and o.key), None)
        usable = [
            o
            for o in self._pending
            if self._template(o.kind) is not None
            and (o.kind != "video" or (first_key is not None and o.dts >= first_key.dts))
        ]
        present = {o.kind for o in usable}
        span = max(o.pts for o in self._pending) - min(o.pts for o in self._pending)
        if any(k not in present for k in self._modes) and span < self._segment and not force:
            return
        self._pending = []
        if not usable:
            return
        start = min(o.pts for o in usable)
        if self._prev is not None and not self._after_jump:
            # Carrying on from the last segment (a late track, new codec parameters): start where it ended,
            # even if a packet or two from just before that lands in this one.
            start = max(start, self._prev[0])
        self._open_segment([kind for kind in KINDS if kind in present], start)
        assert self._seg is not None
        for out in usable:
            self._seg.mux(out)

    def _open_segment(self, kinds: list[Kind], start: int) -> None:
        templates = {kind: t for kind in kinds if (t := self._template(kind)) is not None}
        signature = self._signature()
        jump = self._prev is not None and (signature != self._prev[1] or abs(start - self._prev[0]) > self._gap)
        self._after_jump = False
        self._w.out_dir.mkdir(parents=True, exist_ok=True)
        seq = len(self.segments)
        self._seg = _SegmentFile(self._w.out_dir / f"{self._w.run_id}-{seq:05d}.ts", templates, start, jump)
        self._seg_signature = signature
        codecs = [self._codecs.get(kind) for kind in KINDS if kind in templates]
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
        text = cue.text if cue.utterance is None else self._roll_up(cue.utterance, cue.text)
        if cue.end <= self._written_until():
            self.late_captions += 1
            return
        bisect.insort(self._captions, (cue.start, cue.end, text))

    def _roll_up(self, utterance: str, piece: str) -> str:
        """The utterance so far, as the last lines that fit one cue: live pieces of a sentence read as a whole."""
        so_far = join_pieces(self._utterances.pop(utterance, ""), piece)
        self._utterances[utterance] = so_far
        while len(self._utterances) > ROLL_UP_UTTERANCES:
            del self._utterances[next(iter(self._utterances))]
        return last_lines(so_far)

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
