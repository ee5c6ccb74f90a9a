"""The HLS writer's text files: the media, subtitle and master playlists and the WebVTT caption segments, each put
in place atomically so that readers (the HTTP handler, a CDN) never see half of one.

The media playlist is rewritten as each segment closes: live, the last ``window`` segments; at the end, all of them
with EXT-X-ENDLIST. The subtitle playlist lists the caption segments written so far, in step with the media one and
trailing it while captions settle. The master is rewritten only when what it announces changes (bandwidth,
codecs, the captions' delay).

Only the segments the live playlists still list are kept in memory. Every segment is also appended, one JSON line
each, to the run's journal (``HlsLayout.journal``) beside the files, from which the closing VOD playlists are
written: a sitting of ten hours would otherwise hold tens of thousands of records for its whole length (the
whole-service soak saw them grow RSS by about 1.7 MiB an hour; docs/benchmarks.md, "Soak (whole service)").
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import astuple
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
        self.count = 0  # media segments listed
        self.captioned = 0  # caption segments written: always the first ones of the media segments
        # The last segments (those a live playlist may still list, and those whose caption segment is not written
        # yet), each with the count of discontinuities before it; the first is number ``_first``.
        self._recent: deque[tuple[Segment, int]] = deque()
        self._discontinuities = 0
        # Running figures, so that each segment costs the same to announce at hour ten as at minute one.
        self._longest = layout.segment_s
        self._bytes = 0
        self._ticks = 0
        self._peak = 0.0
        self._variant: Variant | None = None
        self._master_text = ""
        self._caption_delay: float | None = None

    def add_segment(self, segment: Segment, variant: Variant) -> None:
        """A media segment is in place: list it, and announce what it holds."""
        with self._layout.journal.open("a", encoding="utf-8") as journal:
            journal.write(json.dumps(astuple(segment), ensure_ascii=False) + "\n")
        self._recent.append((segment, self._discontinuities))
        self.count += 1
        self._discontinuities += segment.discontinuity
        self._longest = max(self._longest, segment.duration / MPEGTS_HZ)
        self._bytes += segment.size
        self._ticks += segment.duration
        if segment.duration >= ticks(self._layout.segment_s) // 2:
            # A short last-of-input segment says little about the bit rate.
            self._peak = max(self._peak, segment.size * 8 * MPEGTS_HZ / segment.duration)
        self._variant = variant
        self._write_media()
        if self.captioned == 0:
            # Players load the subtitle playlist with the master: it exists, empty, until captions settle.
            self._write_subtitles()
        self._write_master()
        self._forget()

    def add_captions(self, written: Sequence[tuple[Segment, Sequence[Cue]]], delay: float | None = None) -> None:
        """Write the next caption segments (in order, each of a listed media segment) and list them; ``delay`` is
        the captions' measured delay behind live (``CaptionTrack.delay``), announced in the master."""
        for segment, cues in written:
            assert segment is self._recent[self.captioned - self._first][0], "caption segments are written in order"
            write_atomically(self._layout.out_dir / segment.vtt_name(), render_vtt(cues))
            self.captioned += 1
        if written:
            self._write_subtitles()
            self._forget()
        if delay != self._caption_delay:
            self._caption_delay = delay
            self._write_master()

    def finish(self) -> None:
        """The run is over: both playlists list everything (read back from the journal) and end; the master names
        them."""
        if not self.count:
            return
        target = target_duration(self._longest)
        for path, count, subtitles in (
            (self._layout.media_playlist, self.count, False),
            (self._layout.subtitle_playlist, self.captioned, True),
        ):
            segments = self._journal(count)
            write_atomically(
                path,
                render_media_playlist(
                    segments, target=target, ended=True, discontinuities_before=0, subtitles=subtitles
                ),
            )
        self._write_master()
        self._layout.journal.unlink(missing_ok=True)  # the closed playlists now say all it did

    def _journal(self, count: int) -> list[Segment]:
        """The run's first ``count`` segments, as the journal has them."""
        with self._layout.journal.open(encoding="utf-8") as journal:
            return [Segment(*json.loads(line)) for line in itertools.islice(journal, count)]

    @property
    def _first(self) -> int:
        """The number of the oldest segment held."""
        return self.count - len(self._recent)

    def _forget(self) -> None:
        """Drop the segments neither live playlist lists any more (the caption one trails the media one)."""
        keep_from = max(0, self.captioned - self._layout.window)
        while self._first < keep_from:
            self._recent.popleft()

    def _render(self, count: int, *, subtitles: bool) -> str:
        """The live playlist of the last ``window`` of the first ``count`` segments."""
        first = max(self._first, count - self._layout.window)
        recent = [self._recent[i - self._first] for i in range(first, count)]
        return render_media_playlist(
            [segment for segment, _ in recent],
            target=target_duration(self._longest),
            ended=False,
            discontinuities_before=recent[0][1] if recent else 0,
            subtitles=subtitles,
        )

    def _write_media(self) -> None:
        write_atomically(self._layout.media_playlist, self._render(self.count, subtitles=False))

    def _write_subtitles(self) -> None:
        write_atomically(self._layout.subtitle_playlist, self._render(self.captioned, subtitles=True))

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
