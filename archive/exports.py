"""Transcript exports of a sitting: JSON, plain text, WebVTT and SRT. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from archive.models import Segment, Sitting
from common.cues import Cue, clock, cues, srt_time, utterances, vtt_cue_block
from common.thai import normalize

__all__ = ["Cue", "cues", "to_json", "to_srt", "to_text", "to_webvtt", "utterances"]


def to_json(sitting: Sitting, segments: Iterable[Segment]) -> dict[str, Any]:
    """The sitting and its segments as JSON-ready data, segments in media order."""
    ordered = sorted(segments, key=lambda s: (s.start_ms, s.id))
    return {"sitting": sitting.to_dict(), "segments": [s.to_dict() for s in ordered]}


def to_text(sitting: Sitting, segments: Iterable[Segment]) -> str:
    """A readable transcript: one '[HH:MM:SS] text' line per utterance, in media order."""
    lines: list[str] = []
    for segment in utterances(segments):
        text = normalize(segment.text)
        if text:
            lines.append(f"[{clock(max(segment.start_ms, 0))}] {text}")
    return "".join(line + "\n" for line in lines)


def to_webvtt(sitting: Sitting, segments: Iterable[Segment]) -> str:
    """A WebVTT file; cue ids are segment ids, with '-N' appended when a segment is split."""
    blocks = ["WEBVTT"]
    for cue in cues(segments):
        blocks.append(vtt_cue_block(cue, str(cue.segment_id) if cue.parts == 1 else f"{cue.segment_id}-{cue.part}"))
    return "\n\n".join(blocks) + "\n"


def to_srt(sitting: Sitting, segments: Iterable[Segment]) -> str:
    """An SRT file with 1-based counters.

    SRT has no escaping mechanism, so text is written as is; the store's normalised text
    has no newlines, which is the only thing that could break the format.
    """
    blocks = []
    for counter, cue in enumerate(cues(segments), start=1):
        timing = f"{srt_time(cue.start_ms)} --> {srt_time(cue.end_ms)}"
        blocks.append("\n".join([str(counter), timing, *cue.lines]))
    return "\n\n".join(blocks) + "\n" if blocks else ""
