"""Caption cue layout and WebVTT/SRT timing and escaping, shared by the transcript exports and the HLS captions.

Input is any timed text (an archived segment, a live final): media times in integer milliseconds, an id, and
optionally the id of the utterance it is a piece of. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from common.thai import join_pieces, wrap_lines

LINE_WIDTH = 42
LINES_PER_CUE = 2
# Timed text whose end is not after its start (clock glitch, zero-length ASR output) still has words someone
# said; show it for a second rather than dropping it or emitting an invalid cue. Overlapping the next cue is
# harmless: both formats allow overlapping cues.
DEGENERATE_CUE_MS = 1000


class TimedText(Protocol):
    """What a cue is made from (``archive.models.Segment`` is one)."""

    @property
    def id(self) -> int: ...
    @property
    def start_ms(self) -> int: ...
    @property
    def end_ms(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def utterance_id(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Utterance:
    """One utterance, its final pieces joined: ``id`` is its first piece's."""

    id: int
    start_ms: int
    end_ms: int
    text: str
    utterance_id: str | None = None


@dataclass(frozen=True, slots=True)
class Cue:
    """One on-screen caption: at most LINES_PER_CUE lines of at most LINE_WIDTH characters."""

    segment_id: int
    part: int  # 1-based index when a long segment was split into several cues
    parts: int
    start_ms: int
    end_ms: int
    lines: tuple[str, ...]


class UtteranceJoiner:
    """``utterances`` for pieces that come a page at a time, already in media order (start_ms, then id): each
    utterance is given out once no later piece can add to it, so a transcript never needs all its pieces at once."""

    def __init__(self) -> None:
        self._open: Utterance | None = None

    def feed(self, pieces: Iterable[TimedText]) -> list[Utterance]:
        """The utterances these pieces complete (the last one stays open: the next page may continue it)."""
        done: list[Utterance] = []
        for piece in pieces:
            last = self._open
            if last is not None and piece.utterance_id is not None and piece.utterance_id == last.utterance_id:
                self._open = Utterance(
                    last.id,
                    last.start_ms,
                    max(last.end_ms, piece.end_ms),
                    join_pieces(last.text, piece.text),
                    last.utterance_id,
                )
                continue
            if last is not None:
                done.append(last)
            self._open = Utterance(piece.id, piece.start_ms, piece.end_ms, piece.text, piece.utterance_id)
        return done

    def close(self) -> list[Utterance]:
        """The utterance still open, if any."""
        last, self._open = self._open, None
        return [] if last is None else [last]


def utterances(pieces: Iterable[TimedText]) -> list[Utterance]:
    """Pieces in media order with the final pieces of each live utterance joined into one.

    The live engine commits an utterance in several pieces so viewers see words quickly; a transcript reads
    better, and its cues time better, with each utterance whole.
    """
    joiner = UtteranceJoiner()
    return joiner.feed(sorted(pieces, key=lambda p: (p.start_ms, p.id))) + joiner.close()


def utterance_cues(utterance: Utterance) -> list[Cue]:
    """One utterance as caption cues: its lines in groups of LINES_PER_CUE, its time shared by length."""
    lines = wrap_lines(utterance.text, LINE_WIDTH)
    if not lines:
        return []
    groups = [tuple(lines[i : i + LINES_PER_CUE]) for i in range(0, len(lines), LINES_PER_CUE)]
    start = max(utterance.start_ms, 0)
    end = utterance.end_ms if utterance.end_ms > start else start + DEGENERATE_CUE_MS
    # Every split cue needs at least 1 ms of its own.
    end = max(end, start + len(groups))
    bounds = _split_times(start, end, [sum(len(line) for line in group) for group in groups])
    return [
        Cue(utterance.id, index + 1, len(groups), bounds[index], bounds[index + 1], group)
        for index, group in enumerate(groups)
    ]


def cues(pieces: Iterable[TimedText]) -> list[Cue]:
    """Timed text in media order as caption cues, long utterances split with time shared by length."""
    return [cue for utterance in utterances(pieces) for cue in utterance_cues(utterance)]


def last_lines(text: str) -> str:
    """The last cue's worth of ``text`` (roll-up captions show the end of an utterance as it grows)."""
    return " ".join(wrap_lines(text, LINE_WIDTH)[-LINES_PER_CUE:])


def _split_times(start: int, end: int, weights: Sequence[int]) -> list[int]:
    """Boundaries start..end cut in proportion to weights, each piece at least 1 ms."""
    total = sum(weights) or 1
    bounds = [start]
    running = 0
    for index, weight in enumerate(weights[:-1]):
        running += weight
        ideal = start + round((end - start) * running / total)
        remaining = len(weights) - index - 1
        bounds.append(min(max(ideal, bounds[-1] + 1), end - remaining))
    bounds.append(end)
    return bounds


def clock(ms: int) -> str:
    """HH:MM:SS of a media time."""
    seconds = ms // 1000
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def vtt_time(ms: int) -> str:
    return f"{clock(ms)}.{ms % 1000:03d}"


def srt_time(ms: int) -> str:
    return f"{clock(ms)},{ms % 1000:03d}"


def vtt_escape(text: str) -> str:
    """Cue text as WebVTT payload: captions are never markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vtt_cue_block(cue: Cue, cue_id: str | None = None) -> str:
    """One WebVTT cue block (no trailing blank line)."""
    timing = f"{vtt_time(cue.start_ms)} --> {vtt_time(cue.end_ms)}"
    head = [cue_id, timing] if cue_id is not None else [timing]
    return "\n".join([*head, *(vtt_escape(line) for line in cue.lines)])
