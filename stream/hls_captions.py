"""The caption track of the HLS writer, sans I/O: which captions go into which WebVTT segment, and when each
segment is due.

Every media segment gets a caption segment with the same sequence number and times. One is due once the captions
are final past its end (``final_until``) or, failing that, ``wait_s`` after its media segment was closed, so a
stalled caption engine delays the subtitles but never stops them; at the end every one is due. Caption segments
are written in order, so "written" is a prefix of the media segments. A caption that ends inside that prefix is
too late to show and is counted, not kept. Pieces of one utterance roll up: each cue shows the utterance so far,
its last cue's worth of lines, as live television captions do.

How late the captions are matters to players: one that shows the picture of media time ``t`` before the caption
segment holding ``t`` reached it shows that picture without its caption. So the track measures, for each caption
segment written while live, its **delay**: how long after its media segment's start was listed (``closed_at`` less
the segment's duration) it was written. A player that stays at least that far behind the newest listed media (plus
the time to fetch) has every caption in hand before its picture plays. ``delay()`` is the 95th percentile over
the last ``DELAY_WINDOW`` segments. Segments written empty because they had waited ``wait_s`` do not count: a
player further back would find them just as empty (their captions, if any come, are late for HLS whatever it does).

Times in: captions and ``final_until`` in media seconds, segments in media ticks (``Segment``), ``now`` on the
same monotonic clock as ``Segment.closed_at``. The caller writes what ``due`` returns.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

from common.cues import last_lines
from common.thai import join_pieces
from stream.hls_clock import MPEGTS_HZ
from stream.hls_playlist import Cue, Segment

# Captions of this many recent utterances are kept to roll their later pieces up onto.
ROLL_UP_UTTERANCES = 16
# The caption delay is the p95 over this many recent caption segments (two minutes of 1 s segments): recent
# enough to follow a captioner that slows down, long enough that one slow sentence does not move it.
DELAY_WINDOW = 120
DELAY_QUANTILE = 0.95
# The published delay is rounded up to this, so that the master playlist is not rewritten for every wobble.
DELAY_STEP_S = 0.25


class CaptionTrack:
    """Captions waiting for their WebVTT segments. Not thread-safe: the writer's worker owns it."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self.written = 0  # caption segments handed out by ``due``
        self.late = 0  # captions that ended where every caption segment had been written already
        self._captions: list[tuple[float, float, str]] = []  # sorted; only those not yet wholly written
        self._utterances: dict[str, str] = {}  # utterance id -> its pieces so far, oldest first
        self._waiting: deque[Segment] = deque()  # closed media segments without a caption segment yet
        self._written_end = -math.inf  # media time where the last written caption segment ends
        self._final_until = -math.inf
        self._delays: deque[float] = deque(maxlen=DELAY_WINDOW)  # seconds, of recent caption segments

    def add(self, cue: Cue) -> bool:
        """Take a final caption; ``False`` when it came too late for its segments (it is counted in ``late``)."""
        text = cue.text if cue.utterance is None else self._roll_up(cue.utterance, cue.text)
        if cue.end <= self.written_until():
            self.late += 1
            return False
        bisect.insort(self._captions, (cue.start, cue.end, text))
        return True

    def final_until(self, t: float) -> None:
        """Every caption ending before media time ``t`` has been added (it only ever moves on)."""
        self._final_until = max(self._final_until, t)

    def segment_closed(self, segment: Segment) -> None:
        """A media segment is complete: its caption segment will be due."""
        self._waiting.append(segment)

    def written_until(self) -> float:
        """Media time before which every caption segment has been handed out already."""
        return self._waiting[0].start / MPEGTS_HZ if self._waiting else self._written_end

    def next_deadline(self, now: float) -> float | None:
        """Seconds from ``now`` until the oldest waiting segment is due even without final captions."""
        if not self._waiting:
            return None
        return max(0.0, self._waiting[0].closed_at + self.wait_s - now)

    def due(self, now: float, *, closing: bool = False) -> list[tuple[Segment, list[Cue]]]:
        """The caption segments due at ``now``, in order, each with the cues that overlap it; ``closing`` makes
        every waiting one due. They count as written from here on."""
        out: list[tuple[Segment, list[Cue]]] = []
        while self._waiting:
            segment = self._waiting[0]
            start, end = segment.start / MPEGTS_HZ, segment.end / MPEGTS_HZ
            final = closing or self._final_until >= end
            if not final and now < segment.closed_at + self.wait_s:
                break
            # A zero-length cue still shows in the segment it starts in.
            cues = [Cue(s, e, text) for s, e, text in self._captions if s < end and max(e, s + 0.001) > start]
            if not closing and (final or cues):
                self._delays.append(now - segment.closed_at + segment.duration / MPEGTS_HZ)
            out.append((segment, cues))
            self._waiting.popleft()
            self._written_end = end
            self.written += 1
        if out:
            boundary = self.written_until()
            self._captions = [c for c in self._captions if c[1] > boundary]
        return out

    def delay(self) -> float | None:
        """How far behind live a player must stay to have nearly every caption segment (p95 over the last
        ``DELAY_WINDOW``) before its picture, in seconds rounded up to ``DELAY_STEP_S``; ``None`` before any."""
        if not self._delays:
            return None
        ranked = sorted(self._delays)
        p95 = ranked[min(len(ranked) - 1, math.ceil(DELAY_QUANTILE * len(ranked)) - 1)]
        return math.ceil(max(p95, 0.0) / DELAY_STEP_S - 1e-9) * DELAY_STEP_S

    def _roll_up(self, utterance: str, piece: str) -> str:
        """The utterance so far, as the last lines that fit one cue: live pieces of a sentence read as a whole."""
        so_far = join_pieces(self._utterances.pop(utterance, ""), piece)
        self._utterances[utterance] = so_far
        while len(self._utterances) > ROLL_UP_UTTERANCES:
            del self._utterances[next(iter(self._utterances))]
        return last_lines(so_far)
