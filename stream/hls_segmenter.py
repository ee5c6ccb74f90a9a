"""The HLS writer's segmenter: cuts the tracks' packets into MPEG-TS segment files on the media clock.

A segment ends at the first keyframe of its leading track (video if it has video, else audio) at least a segment's
length (less 10 %) in, or, for audio, after ``5 x`` a segment even without a keyframe. A new segment, marked
EXT-X-DISCONTINUITY, starts where timestamps jump on by more than ``JUMP_TICKS`` (a reconnect), where a new input
brings other codec parameters, and where a track shows up late; an input's first segment waits until every
expected track has output (or a segment's worth of one has) and starts on a video keyframe. Timestamps of a new
input that would go back (a looped file starting a hair early) are nudged on, never back.

Segments are written to ``<name>.part`` and renamed when complete, so a segment that is listed is whole. Used on
the writer's worker thread only.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Collection
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
from av.audio.codeccontext import AudioCodecContext
from av.stream import Stream
from av.video.codeccontext import VideoCodecContext

from stream.hls_clock import JUMP_TICKS, MPEGTS_HZ, TS_ORIGIN, ticks
from stream.hls_items import KINDS, Kind, Out
from stream.hls_layout import HlsLayout
from stream.hls_playlist import Segment, Variant, program_date_time

# The writer's logger, not this module's: log settings made for ``stream.hls`` cover the whole writer.
log = logging.getLogger("stream.hls")


class TrackSource(Protocol):
    """What the segmenter asks of the tracks whose packets it is given."""

    def expected(self) -> Collection[Kind]:
        """The tracks the current input will deliver: its first segment waits a while for each of them."""
        ...

    def template(self, kind: Kind) -> Stream | None:
        """The stream whose codec parameters ``kind``'s packets carry now, or ``None`` while there is none (no
        such track, or its encoder not open yet). A change of parameters between inputs starts a new segment."""
        ...

    def codec(self, kind: Kind) -> str:
        """The RFC 6381 codec string of ``kind`` for the master playlist; empty when not known."""
        ...


@dataclass(frozen=True)
class Closed:
    """A segment now in place, with what the master playlist should announce for it."""

    segment: Segment
    variant: Variant


class _SegmentFile:
    """One MPEG-TS segment being written."""

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

    def mux(self, out: Out) -> None:
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


class Segmenter:
    """Writes ``Out`` packets into segment files; ``push`` and ``finish`` return the segments they completed."""

    def __init__(self, layout: HlsLayout, tracks: TrackSource) -> None:
        self._layout = layout
        self._tracks = tracks
        self._segment = ticks(layout.segment_s)
        self._tolerance = self._segment // 10  # a GOP a little short of the target still ends a segment
        self._cap = max(ticks(10.0), 5 * self._segment)  # cut even without a keyframe past this
        self.epoch: float | None = None  # Unix time at media time 0, for EXT-X-PROGRAM-DATE-TIME
        self.mux_errors = 0
        self._after_jump = False  # the open segment was closed by a jump; output older than it is stale
        self._fresh_input = False
        self._last_dts: dict[Kind, int] = {}
        self._last_pts: dict[Kind, int] = {}
        self._interval: dict[Kind, int] = {}
        self._nudge: dict[Kind, int] = {}
        self._seg: _SegmentFile | None = None
        self._seg_signature: tuple[object, ...] = ()
        self._variant = Variant("", None)
        self._pending: list[Out] = []
        self._prev: tuple[int, tuple[object, ...]] | None = None  # (end, signature) of the last closed segment
        self._count = 0
        self._closed: list[Closed] = []

    def begin_input(self) -> None:
        """A new input follows: its timestamps may start anywhere, its codec parameters may differ."""
        self._nudge = {}
        self._fresh_input = True

    def push(self, out: Out) -> list[Closed]:
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
        jumped = out.key and step > max(JUMP_TICKS, 3 * self._interval.get(kind, 0))
        if 0 < step < self._segment:
            self._interval[kind] = step
        self._last_dts[kind], self._last_pts[kind] = dts, pts
        out = Out(kind, out.packet, pts, dts, out.duration or self._interval.get(kind, 0), out.key)
        self._place(out, jumped)
        return self._take_closed()

    def finish(self) -> list[Closed]:
        """Write out what is held back and close the last segment."""
        self._open_from_pending(force=True)
        if self._seg is not None:
            self._close_segment(self._seg.end)
        return self._take_closed()

    def _take_closed(self) -> list[Closed]:
        closed, self._closed = self._closed, []
        return closed

    def _place(self, out: Out, jumped: bool) -> None:
        kind, pts = out.kind, out.pts
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
            if out.key and self._tracks.template(kind) is not None:
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
        """What must stay the same for segments to follow on from each other without a discontinuity."""
        parts: list[object] = []
        for kind in KINDS:
            template = self._tracks.template(kind)
            if template is None:
                continue
            ctx = template.codec_context
            size: tuple[int, int] | None = None
            if isinstance(ctx, VideoCodecContext):
                size = (ctx.width, ctx.height)
            elif isinstance(ctx, AudioCodecContext):
                size = (ctx.sample_rate, ctx.channels)
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
            if self._tracks.template(o.kind) is not None
            and (o.kind != "video" or (first_key is not None and o.dts >= first_key.dts))
        ]
        present = {o.kind for o in usable}
        span = max(o.pts for o in self._pending) - min(o.pts for o in self._pending)
        if any(k not in present for k in self._tracks.expected()) and span < self._segment and not force:
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
        templates = {kind: t for kind in kinds if (t := self._tracks.template(kind)) is not None}
        signature = self._signature()
        jump = self._prev is not None and (signature != self._prev[1] or abs(start - self._prev[0]) > JUMP_TICKS)
        self._after_jump = False
        self._layout.out_dir.mkdir(parents=True, exist_ok=True)
        self._seg = _SegmentFile(self._layout.segment_path(self._count), templates, start, jump)
        self._seg_signature = signature
        codecs = [self._tracks.codec(kind) for kind in KINDS if kind in templates]
        video = templates.get("video")
        ctx = video.codec_context if video is not None else None
        size = (ctx.width, ctx.height) if isinstance(ctx, VideoCodecContext) else None
        self._variant = Variant(",".join(c for c in codecs if c), size)

    def _close_segment(self, end: int) -> None:
        seg = self._seg
        if seg is None:
            return
        self._seg = None
        size = seg.close()
        self.mux_errors += seg.errors
        duration = end - seg.start if end > seg.start else max(1, seg.end - seg.start)
        segment = Segment(
            seq=self._count,
            name=seg.path.name,
            start=seg.start,
            duration=duration,
            discontinuity=seg.discontinuity,
            date=program_date_time(self.epoch or time.time(), seg.start),
            size=size,
            closed_at=time.monotonic(),
        )
        self._count += 1
        self._prev = (seg.start + duration, self._seg_signature)
        self._closed.append(Closed(segment, self._variant))
