"""What an ``HlsWriter``'s one worker thread does with each item from its backlog: the thin driver that joins the
writer's parts. Media goes through ``Tracks`` (remux, encode or title card) into the ``Segmenter``; each segment
it completes is listed by the ``PlaylistWriter`` and handed to the ``CaptionTrack``, whose due caption segments the
``PlaylistWriter`` writes. Everything it knows of the writer is its ``HlsLayout``. Not thread-safe: only ever
called from that worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import av

from stream.hls_captions import CaptionTrack
from stream.hls_items import Barrier, Epoch, FinalUntil, Input, Out, Raw, Remux
from stream.hls_layout import HlsLayout
from stream.hls_playlist import Cue
from stream.hls_playlist_writer import PlaylistWriter
from stream.hls_segmenter import Closed, Segmenter
from stream.hls_tracks import Tracks


class Worker:
    """Handles backlog items in order; ``next_deadline`` says how long it may wait for the next one."""

    def __init__(self, layout: HlsLayout) -> None:
        self.tracks = Tracks(layout)
        self.segmenter = Segmenter(layout, self.tracks)
        self.captions = CaptionTrack(layout.caption_wait_s)
        self.playlists = PlaylistWriter(layout)

    def handle(self, item: object) -> None:
        match item:
            case Remux():
                self._segment(self.tracks.remux(item))
            case Raw(frame=av.VideoFrame() as frame):
                self._segment(self.tracks.video_frame(frame, item.pts))
            case Raw(frame=av.AudioFrame() as frame):
                self._segment(self.tracks.audio_frame(frame, item.pts))
            case Input():
                self.tracks.begin_input(item)
                self.segmenter.begin_input()
            case Cue():
                self.captions.add(item)
            case FinalUntil():
                self.captions.final_until(item.t)
            case Epoch():
                self.tracks.epoch = self.segmenter.epoch = item.at
            case Barrier():
                item.reached.set()

    def next_deadline(self) -> float | None:
        """Seconds until a caption segment must be written even without final captions; ``None``: no such wait."""
        return self.captions.next_deadline(time.monotonic())

    def write_due_captions(self, *, closing: bool = False) -> None:
        """Write, in order, every caption segment whose captions are final (or that has waited long enough)."""
        written = self.captions.due(time.monotonic(), closing=closing)
        self.playlists.add_captions(written, self.captions.delay())

    def finish(self) -> None:
        """Flush the encoders, close the last segment, write every caption segment and the closed playlists."""
        self._segment(self.tracks.flush())
        self._segmented(self.segmenter.finish())
        self.write_due_captions(closing=True)
        self.playlists.finish()

    def _segment(self, outs: Sequence[Out]) -> None:
        for out in outs:
            self._segmented(self.segmenter.push(out))

    def _segmented(self, closed: Sequence[Closed]) -> None:
        for done in closed:
            self.playlists.add_segment(done.segment, done.variant)
            self.captions.segment_closed(done.segment)
