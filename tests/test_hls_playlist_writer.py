"""The playlist writer keeps only what its live playlists list; the closing VOD playlists come from its journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.hls_clock import MPEGTS_HZ
from stream.hls_layout import HlsLayout
from stream.hls_playlist import Segment, Variant
from stream.hls_playlist_writer import PlaylistWriter

pytestmark = pytest.mark.fast

VARIANT = Variant("avc1.42c01e,mp4a.40.2", (320, 180))


def _layout(tmp_path: Path, window: int = 4) -> HlsLayout:
    return HlsLayout(tmp_path, "r1", segment_s=1.0, window=window, caption_wait_s=2.0, picture=None)


def _segment(layout: HlsLayout, seq: int, *, discontinuity: bool = False) -> Segment:
    return Segment(
        seq=seq,
        name=layout.segment_path(seq).name,
        start=seq * MPEGTS_HZ,
        duration=MPEGTS_HZ,
        discontinuity=discontinuity,
        date=f"2026-11-26T10:00:{seq % 60:02d}.000Z",
        size=1000,
        closed_at=float(seq),
    )


def _uris(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_a_long_run_keeps_only_the_live_window_and_closes_with_every_segment(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    writer = PlaylistWriter(layout)
    segments = [_segment(layout, seq, discontinuity=seq in (5, 30)) for seq in range(50)]
    for segment in segments:
        writer.add_segment(segment, VARIANT)
        if segment.seq >= 2:  # captions trail the picture by two segments
            writer.add_captions([(segments[segment.seq - 2], [])])
        assert len(writer._recent) <= layout.window + 2  # never the whole run

    live = layout.media_playlist.read_text()
    assert _uris(live) == [s.name for s in segments[-4:]]
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:2" in live  # both discontinuities are before the window
    subtitles = layout.subtitle_playlist.read_text()
    assert _uris(subtitles) == [s.vtt_name() for s in segments[44:48]]
    assert writer.count == 50 and writer.captioned == 48

    writer.add_captions([(segments[48], []), (segments[49], [])])
    writer.finish()
    media = layout.media_playlist.read_text()
    assert _uris(media) == [s.name for s in segments]
    assert media.count("#EXT-X-DISCONTINUITY\n") == 2 and "#EXT-X-DISCONTINUITY-SEQUENCE" not in media
    assert media.rstrip().endswith("#EXT-X-ENDLIST") and "#EXT-X-MEDIA-SEQUENCE:0" in media
    assert "#EXT-X-PROGRAM-DATE-TIME:2026-11-26T10:00:49.000Z" in media
    assert _uris(layout.subtitle_playlist.read_text()) == [s.vtt_name() for s in segments]
    assert not layout.journal.exists()  # the closed playlists now hold what it held


def test_the_window_counts_discontinuities_before_it(tmp_path: Path) -> None:
    layout = _layout(tmp_path, window=3)
    writer = PlaylistWriter(layout)
    segments = [_segment(layout, seq, discontinuity=seq == 4) for seq in range(8)]
    for segment in segments:
        writer.add_segment(segment, VARIANT)
        writer.add_captions([(segment, [])])
        live = layout.media_playlist.read_text()
        # Segment 4 opens a discontinuity: once it has left the window (from segment 7 on) the count says so.
        assert ("#EXT-X-DISCONTINUITY-SEQUENCE:1" in live) == (segment.seq >= 7)
    assert _uris(layout.media_playlist.read_text()) == [s.name for s in segments[5:]]
