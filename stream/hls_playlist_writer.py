"""The HLS writer's text files: the media, subtitle and master playlists and the WebVTT caption segments, each put
in place atomically so that readers (the HTTP handler, a CDN) never see half of one.

The media playlist is rewritten as each segment closes: live, the last ``window`` segments; at the end, all of them
with EXT-X-ENDLIST. The subtitle playlist lists the caption segments written so far, in step with the media one and
trailing it while captions settle. The master is rewritten only when what it announces changes (bandwidth,
codecs, the captions' delay).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from stream.hls_clock import MPEGTS_HZ, ticks
from stream.hls_layout import HlsLayout
from stream.hls_playlist import (
    Cue,
    Segment,
    Variant,
    render_master_playlist,
    render_media_playlist,
    render_vtt,
    target_duration,
)

# The master's bandwidths are rounded up to this, so that it is not rewritten for every wobble in segment size.
BANDWIDTH_STEP = 50_000


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    part = path.with_name(path.name + ".tmp")
    part.write_text(text, encoding="utf-8")
    os.replace(part, path)


class PlaylistWriter:
    """Keeps one run's playlists up to date with the segments written. Not thread-safe: the worker owns it."""

    def __init__(self, layout: HlsLayout) -> None:
        self._layout = layout
        self.segments: list[Segment] = []
        self.captioned = 0  # caption segments written: always the first ones of ``segments``
        # Running figures, so that each segment costs the same to announce at hour ten as at minute one.
        self._discontinuities = [0]  # [n]: discontinuities among the first n segments
        self._longest = layout.segment_s
        self._bytes = 0
        self._ticks = 0
        self._peak = 0.0
        self._variant: Variant | None = None
        self._master_text = ""
        self._caption_delay: float | None = None

    def add_segment(self, segment: Segment, variant: Variant) -> None:
        """A media segment is in place: list it, and announce what it holds."""
        self.segments.append(segment)
        self._discontinuities.append(self._discontinuities[-1] + segment.discontinuity)
        self._longest = max(self._longest, segment.duration / MPEGTS_HZ)
        self._bytes += segment.size
        self._ticks += segment.duration
        if segment.duration >= ticks(self._layout.segment_s) // 2:
            # A short last-of-input segment says little about the bit rate.
            self._peak = max(self._peak, segment.size * 8 * MPEGTS_HZ / segment.duration)
        self._variant = variant
        self._write_media(ended=False)
        if self.captioned == 0:
            # Players load the subtitle playlist with the master: it exists, empty, until captions settle.
            self._write_subtitles(ended=False)
        self._write_master()

    def add_captions(self, written: Sequence[tuple[Segment, Sequence[Cue]]], delay: float | None = None) -> None:
        """Write the next caption segments (in order, each of a listed media segment) and list them; ``delay`` is
        the captions' measured delay behind live (``CaptionTrack.delay``), announced in the master."""
        for segment, cues in written:
            assert segment is self.segments[self.captioned], "caption segments are written in order"
            write_atomically(self._layout.out_dir / segment.vtt_name(), render_vtt(cues))
            self.captioned += 1
        if written:
            self._write_subtitles(ended=False)
        if delay != self._caption_delay:
            self._caption_delay = delay
            self._write_master()

    def finish(self) -> None:
        """The run is over: both playlists list everything and end; the master names them."""
        if not self.segments:
            return
        self._write_media(ended=True)
        self._write_subtitles(ended=True)
        self._write_master()

    def _render(self, count: int, *, ended: bool, subtitles: bool) -> str:
        """The playlist of the first ``count`` segments: all of them once ended, else the last ``window``."""
        first = 0 if ended else max(0, count - self._layout.window)
        return render_media_playlist(
            self.segments[first:count],
            target=target_duration(self._longest),
            ended=ended,
            discontinuities_before=self._discontinuities[first],
            subtitles=subtitles,
        )

    def _write_media(self, *, ended: bool) -> None:
        write_atomically(self._layout.media_playlist, self._render(len(self.segments), ended=ended, subtitles=False))

    def _write_subtitles(self, *, ended: bool) -> None:
        write_atomically(self._layout.subtitle_playlist, self._render(self.captioned, ended=ended, subtitles=True))

    def _write_master(self) -> None:
        if self._variant is None or not self._ticks:
            return
        average = self._bytes * 8 * MPEGTS_HZ / self._ticks
        peak = max(self._peak, average)
        text = render_master_playlist(
            self._variant,
            bandwidth=math.ceil(peak / BANDWIDTH_STEP) * BANDWIDTH_STEP,
            average=math.ceil(average / BANDWIDTH_STEP) * BANDWIDTH_STEP,
            media_uri=self._layout.media_playlist.name,
            subtitles_uri=self._layout.subtitle_playlist.name,
            caption_delay=self._caption_delay,
        )
        if text != self._master_text:
            write_atomically(self._layout.master_playlist, text)
            self._master_text = text
