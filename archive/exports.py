"""Transcript exports of a sitting: JSON, plain text, WebVTT and SRT. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from archive.models import Segment, Sitting
from archive.thai import join_pieces, normalize, wrap_lines

LINE_WIDTH = 42
LINES_PER_CUE = 2
# A segment whose end is not after its start (clock glitch, zero-length ASR output) still has
# words someone said; show it for a second rather than dropping it or emitting an invalid cue.
# Overlapping the next cue is harmless: both formats allow overlapping cues.
DEGENERATE_CUE_MS = 1000


@dataclass(frozen=True, slots=True)
class Cue:
    """One on-screen caption: at most LINES_PER_CUE lines of at most LINE_WIDTH characters."""

    segment_id: int
    part: int  # 1-based index when a long segment was split into several cues
    parts: int
    start_ms: int
    end_ms: int
    lines: tuple[str, ...]


def to_json(sitting: Sitting, segments: Iterable[Segment]) -> dict[str, Any]:
    """The sitting and its segments as JSON-ready data, segments in media order."""
    return {"sitting": sitting.to_dict(), "segments": [s.to_dict() for s in _ordered(segments)]}


def to_text(sitting: Sitting, segments: Iterable[Segment]) -> str:
    """A readable transcript: one '[HH:MM:SS] text' line per utterance, in media order."""
    lines: list[str] = []
    for segment in utterances(segments):
        text = normalize(segment.text)
        if text:
            lines.append(f"[{_clock(max(segment.start_ms, 0))}] {text}")
    return "".join(line + "\n" for line in lines)


def to_webvtt(sitting: Sitting, segments: Iterable[Segment]) -> str:
    """A WebVTT file; cue ids are segment ids, with '-N' appended when a segment is split."""
    blocks = ["WEBVTT"]
    for cue in cues(segments):
        cue_id = str(cue.segment_id) if cue.parts == 1 else f"{cue.segment_id}-{cue.part}"
        timing = f"{_vtt_time(cue.start_ms)} --> {_vtt_time(cue.end_ms)}"
        blocks.append("\n".join([cue_id, timing, *(_vtt_escape(line) for line in cue.lines)]))
    return "\n\n".join(blocks) + "\n"


def to_srt(sitting: Sitting, segments: Iterable[Segment]) -> str:
    """An SRT file with 1-based counters.

    SRT has no escaping mechanism, so text is written as is; the store's normalised text
    has no newlines, which is the only thing that could break the format.
    """
    blocks = []
    for counter, cue in enumerate(cues(segments), start=1):
        timing = f"{_srt_time(cue.start_ms)} --> {_srt_time(cue.end_ms)}"
        blocks.append("\n".join([str(counter), timing, *cue.lines]))
    return "\n\n".join(blocks) + "\n" if blocks else ""


def cues(segments: Iterable[Segment]) -> list[Cue]:
    """Segments in media order as caption cues, long ones split with time shared by length."""
    result: list[Cue] = []
    for segment in utterances(segments):
        lines = wrap_lines(segment.text, LINE_WIDTH)
        if not lines:
            continue
        groups = [tuple(lines[i : i + LINES_PER_CUE]) for i in range(0, len(lines), LINES_PER_CUE)]
        start = max(segment.start_ms, 0)
        end = segment.end_ms if segment.end_ms > start else start + DEGENERATE_CUE_MS
        # Every split cue needs at least 1 ms of its own.
        end = max(end, start + len(groups))
        bounds = _split_times(start, end, [sum(len(line) for line in group) for group in groups])
        for index, group in enumerate(groups):
            result.append(
                Cue(
                    segment_id=segment.id,
                    part=index + 1,
                    parts=len(groups),
                    start_ms=bounds[index],
                    end_ms=bounds[index + 1],
                    lines=group,
                )
            )
    return result


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


def _ordered(segments: Iterable[Segment]) -> list[Segment]:
    return sorted(segments, key=lambda s: (s.start_ms, s.id))


def utterances(segments: Iterable[Segment]) -> list[Segment]:
    """Segments in media order with the final pieces of each live utterance joined into one.

    The live engine commits an utterance in several pieces so viewers see words quickly; a transcript reads
    better, and its cues time better, with each utterance whole. The merged segment keeps the first piece's id.
    """
    merged: list[Segment] = []
    for segment in _ordered(segments):
        last = merged[-1] if merged else None
        if last is not None and segment.utterance_id is not None and segment.utterance_id == last.utterance_id:
            merged[-1] = replace(
                last, text=join_pieces(last.text, segment.text), end_ms=max(last.end_ms, segment.end_ms)
            )
        else:
            merged.append(segment)
    return merged


def _clock(ms: int) -> str:
    seconds = ms // 1000
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _vtt_time(ms: int) -> str:
    return f"{_clock(ms)}.{ms % 1000:03d}"


def _srt_time(ms: int) -> str:
    return f"{_clock(ms)},{ms % 1000:03d}"


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
