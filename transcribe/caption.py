"""The caption record that leaves the transcription engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CaptionKind = Literal["partial", "final"]


@dataclass(frozen=True, slots=True)
class Caption:
    """One caption event for a live feed.

    `segment_id` names an utterance (speech between pauses). Within a segment, finals are
    append-only pieces in order, never retracted or repeated: join them with
    `transcribe.text.join_text`. A partial is the not-yet-committed rest of the same segment and
    replaces the previous partial of that segment; an empty partial clears it, and a final of the
    segment also supersedes it. `start`/`end` are media seconds from the start of the feed.
    """

    kind: CaptionKind
    text: str
    start: float
    end: float
    segment_id: str
