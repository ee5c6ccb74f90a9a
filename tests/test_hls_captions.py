"""The HLS caption track without media: which cues go into which WebVTT segment, when a segment is due, roll-up."""

from __future__ import annotations

import pytest

from common.cues import LINE_WIDTH
from stream.hls_captions import DELAY_WINDOW, ROLL_UP_UTTERANCES, CaptionTrack
from stream.hls_clock import ticks
from stream.hls_playlist import Cue, Segment

pytestmark = pytest.mark.fast


def segment(seq: int, start: float, duration: float = 2.0, closed_at: float = 100.0) -> Segment:
    return Segment(seq, f"run-{seq:05d}.ts", ticks(start), ticks(duration), False, "", 0, closed_at)


def closed(track: CaptionTrack, *segments: Segment) -> list[Segment]:
    for s in segments:
        track.segment_closed(s)
    return list(segments)


def texts(due: list[tuple[Segment, list[Cue]]]) -> list[list[str]]:
    return [[cue.text for cue in cues] for _, cues in due]


def test_each_segment_gets_every_cue_that_overlaps_it_and_only_those() -> None:
    """A cue across a segment boundary is in both segments; a zero-length cue is in the one it starts in."""
    track = CaptionTrack(wait_s=10.0)
    closed(track, segment(0, 0.0), segment(1, 2.0), segment(2, 4.0))
    track.add(Cue(0.5, 1.5, "หนึ่ง"))
    track.add(Cue(1.5, 2.5, "ข้าม"))
    track.add(Cue(4.0, 4.0, "ศูนย์"))
    track.final_until(6.0)
    assert texts(track.due(now=100.0)) == [["หนึ่ง", "ข้าม"], ["ข้าม"], ["ศูนย์"]]


def test_cues_come_out_in_time_order_whatever_order_they_came_in() -> None:
    """Captions added out of order are listed by start time within a segment."""
    track = CaptionTrack(wait_s=10.0)
    closed(track, segment(0, 0.0))
    track.add(Cue(1.0, 1.5, "สอง"))
    track.add(Cue(0.2, 0.8, "หนึ่ง"))
    (_, cues), *_ = track.due(now=100.0, closing=True)
    assert cues == [Cue(0.2, 0.8, "หนึ่ง"), Cue(1.0, 1.5, "สอง")]


def test_a_segment_is_due_once_captions_are_final_past_its_end() -> None:
    """Finals up to the middle of a segment release only the segments before it; the rest wait, in order."""
    track = CaptionTrack(wait_s=10.0)
    segments = closed(track, segment(0, 0.0), segment(1, 2.0), segment(2, 4.0))
    assert track.due(now=100.0) == []
    track.final_until(3.0)
    assert [s for s, _ in track.due(now=100.0)] == segments[:1]
    track.final_until(2.5)  # final_until never goes back
    track.final_until(6.0)
    assert [s for s, _ in track.due(now=100.0)] == segments[1:]
    assert track.written == 3 and track.due(now=100.0) == []


def test_without_final_captions_a_segment_is_due_wait_s_after_it_closed() -> None:
    """A stalled caption engine delays each caption segment by ``wait_s``, never more, and never stops them."""
    track = CaptionTrack(wait_s=10.0)
    assert track.next_deadline(now=0.0) is None
    first, second = closed(track, segment(0, 0.0, closed_at=100.0), segment(1, 2.0, closed_at=102.0))
    assert track.next_deadline(now=104.0) == pytest.approx(6.0)
    assert track.due(now=109.9) == []
    assert [s for s, _ in track.due(now=110.0)] == [first]
    assert track.next_deadline(now=110.0) == pytest.approx(2.0)
    assert track.next_deadline(now=150.0) == 0.0  # overdue: write it now
    assert [s for s, _ in track.due(now=150.0)] == [second]
    assert track.next_deadline(now=150.0) is None


def test_closing_makes_every_waiting_segment_due() -> None:
    """At the end of a sitting every caption segment is written, final or not."""
    track = CaptionTrack(wait_s=3600.0)
    segments = closed(track, segment(0, 0.0), segment(1, 2.0))
    track.add(Cue(3.0, 3.5, "ท้าย"))
    assert texts(track.due(now=100.0, closing=True)) == [[], ["ท้าย"]]
    assert track.written == len(segments)


def test_a_caption_for_segments_already_written_is_late_and_counted() -> None:
    """A caption ending inside the written segments is dropped and counted; one reaching past them is kept."""
    track = CaptionTrack(wait_s=10.0)
    closed(track, segment(0, 0.0), segment(1, 2.0))
    track.final_until(2.0)
    assert len(track.due(now=100.0)) == 1
    assert track.add(Cue(1.0, 1.2, "มาช้า")) is False
    assert track.add(Cue(1.8, 2.4, "ทัน")) is True
    assert track.late == 1
    assert texts(track.due(now=100.0, closing=True)) == [["ทัน"]]


def test_a_caption_before_any_segment_is_kept_for_the_first_one() -> None:
    """Before the first segment closes nothing is late: captions wait for their segment."""
    track = CaptionTrack(wait_s=10.0)
    assert track.add(Cue(0.1, 0.4, "ก่อน"))
    closed(track, segment(0, 0.0))
    assert texts(track.due(now=100.0, closing=True)) == [["ก่อน"]]
    assert track.late == 0


def test_pieces_of_one_utterance_roll_up_and_other_utterances_stay_apart() -> None:
    """Each piece shows its utterance so far; a piece of another utterance, or of none, shows alone."""
    track = CaptionTrack(wait_s=10.0)
    closed(track, segment(0, 0.0))
    track.add(Cue(0.1, 0.4, "ขอบคุณ", "u1"))
    track.add(Cue(0.4, 0.8, "ท่านประธาน", "u1"))
    track.add(Cue(0.8, 1.0, "Hello", "u2"))
    track.add(Cue(1.0, 1.2, "world", "u2"))
    track.add(Cue(1.2, 1.4, "ครับ"))
    assert texts(track.due(now=100.0, closing=True)) == [["ขอบคุณ", "ขอบคุณท่านประธาน", "Hello", "Hello world", "ครับ"]]


def test_a_long_utterance_rolls_up_to_its_last_two_lines() -> None:
    """Once an utterance outgrows one cue, its cue shows the end of it, not the start."""
    track = CaptionTrack(wait_s=10.0)
    closed(track, segment(0, 0.0))
    words = [f"word{n:02d}" for n in range(30)]
    for n, word in enumerate(words):
        track.add(Cue(n * 0.05, n * 0.05 + 0.05, word, "u1"))
    [[*_, last]] = texts(track.due(now=100.0, closing=True))
    assert last.endswith("word29") and not last.startswith("word00")
    assert len(last) <= 2 * LINE_WIDTH + 1


def test_only_the_most_recent_utterances_are_remembered_for_roll_up() -> None:
    """Past ``ROLL_UP_UTTERANCES`` utterances the oldest is forgotten: a late piece of it starts afresh."""
    track = CaptionTrack(wait_s=10.0)
    closed(track, segment(0, 0.0, duration=60.0))
    track.add(Cue(0.0, 0.1, "แรก", "old"))
    for n in range(ROLL_UP_UTTERANCES):
        track.add(Cue(1.0 + n, 1.5 + n, f"u{n}", f"u{n}"))
    track.add(Cue(40.0, 40.5, "ต่อ", "old"))
    track.add(Cue(41.0, 41.5, "ต่อ", f"u{ROLL_UP_UTTERANCES - 1}"))
    [cues] = texts(track.due(now=100.0, closing=True))
    assert cues[-2:] == ["ต่อ", f"u{ROLL_UP_UTTERANCES - 1} ต่อ"]


# ---- the caption delay that players are told --------------------------------------------------------------------


def test_the_caption_delay_is_how_long_after_its_start_was_listed_a_caption_segment_is_written() -> None:
    """Delay = written - (closed - duration): how far behind the listed media a player must be to have it."""
    track = CaptionTrack(wait_s=10.0)
    assert track.delay() is None  # nothing measured: players use their own default
    closed(track, segment(0, 0.0, 1.0, closed_at=101.0))
    track.final_until(1.0)
    track.due(now=104.0)
    assert track.delay() == 4.0  # 3 s after the segment closed, plus its 1 s


def test_the_caption_delay_is_the_p95_of_recent_segments_rounded_up_to_a_quarter_second() -> None:
    """One slow segment in twenty-one does not move the p95; the figure only ever steps in 0.25 s."""
    track = CaptionTrack(wait_s=10.0)
    for n in range(21):
        closed(track, segment(n, float(n), 1.0, closed_at=100.0 + n))
        track.final_until(n + 1.0)
        track.due(now=100.0 + n + (9.0 if n == 10 else 2.1))
    assert track.delay() == 3.25  # 3.1 s rounded up; the 10 s outlier is the one beyond the p95


def test_only_the_latest_segments_count_towards_the_caption_delay() -> None:
    """After DELAY_WINDOW faster segments, an early slow stretch no longer counts."""
    track = CaptionTrack(wait_s=10.0)
    for n in range(DELAY_WINDOW + 5):
        closed(track, segment(n, float(n), 1.0, closed_at=100.0 + n))
        track.final_until(n + 1.0)
        track.due(now=100.0 + n + (6.0 if n < 5 else 1.0))
    assert track.delay() == 2.0


def test_segments_written_empty_after_waiting_and_those_written_at_close_do_not_count() -> None:
    """A segment that timed out with no cue, or was flushed at the end, says nothing about caption latency."""
    track = CaptionTrack(wait_s=10.0)
    closed(track, segment(0, 0.0, 1.0, closed_at=100.0), segment(1, 1.0, 1.0, closed_at=101.0))
    track.due(now=110.0)  # segment 0 timed out, empty
    assert track.delay() is None
    track.add(Cue(1.2, 1.5, "หนึ่ง"))
    track.due(now=111.0)  # segment 1 timed out, but with a cue: a player 11 s back would have shown it
    assert track.delay() == 11.0
    closed(track, segment(2, 2.0, 1.0, closed_at=102.0))
    track.due(now=500.0, closing=True)
    assert track.delay() == 11.0
