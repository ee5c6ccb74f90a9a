"""Transcript exports of a sitting: JSON, plain text, WebVTT, SRT and Akoma Ntoso. Pure functions.

Every export says whether it is the machine draft or a transcript an operator has reviewed (``transcript_status``:
``machine-draft`` or ``reviewed``): a JSON field, the text's first line, a WebVTT ``NOTE``, the Akoma Ntoso
``proprietary`` element and preface. SRT has no place for comments, so there the answer's ``Transcript-Status``
header (sent with every format) is the only mark.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from archive import akn
from archive.models import AgendaItem, Bill, Segment, Sitting, Speaker, Vote, utc_now
from common.cues import Cue, clock, cues, srt_time, utterances, vtt_cue_block
from common.http import dumps
from common.thai import normalize

__all__ = [
    "FORMATS",
    "RECORD_FORMATS",
    "Cue",
    "Transcript",
    "cues",
    "render",
    "to_json",
    "to_srt",
    "to_text",
    "to_webvtt",
    "transcript_status",
    "utterances",
]

DRAFT = "machine-draft"
REVIEWED = "reviewed"
_STATUS_LINE = {
    DRAFT: "ร่างจากการถอดเสียงอัตโนมัติ ยังไม่ได้ตรวจทาน / Machine draft, not yet reviewed",
    REVIEWED: "บันทึกที่ผ่านการตรวจทานแล้ว / Reviewed transcript",
}


def transcript_status(sitting: Sitting) -> str:
    """``reviewed`` once an operator has marked the sitting's transcript so, else ``machine-draft``."""
    return REVIEWED if sitting.reviewed_at is not None else DRAFT


@dataclass(frozen=True, slots=True)
class Transcript:
    """What an export renders: the sitting and its segments (latest revisions); the rest only for ``akn``."""

    sitting: Sitting
    segments: Sequence[Segment]
    agenda: Sequence[AgendaItem] = ()
    speakers: Sequence[Speaker] = ()
    votes: Sequence[Vote] = ()
    bills: Sequence[Bill] = ()
    generated_at: str = ""


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


def _json_document(t: Transcript) -> str:
    """``{"ok", **to_json, "transcript_status"}``, written one segment at a time: building every segment's dict first
    raised the heap's high-water mark with each render of a growing live sitting (docs/benchmarks.md, "Soak (whole
    service)"); the text is the same."""
    ordered = sorted(t.segments, key=lambda s: (s.start_ms, s.id))
    head = dumps({"ok": True, "sitting": t.sitting.to_dict()})[:-1]
    tail = dumps({"transcript_status": transcript_status(t.sitting)})[1:]
    return head + ',"segments":[' + ",".join(dumps(s.to_dict()) for s in ordered) + "]," + tail


def _text_document(t: Transcript) -> str:
    return f"# {_STATUS_LINE[transcript_status(t.sitting)]}\n" + to_text(t.sitting, t.segments)


def _webvtt_document(t: Transcript) -> str:
    # A NOTE block right after the header: players skip it, people reading the file see it first.
    header, _, cues_ = to_webvtt(t.sitting, t.segments).partition("\n\n")
    note = f"NOTE transcript_status: {transcript_status(t.sitting)}\n{_STATUS_LINE[transcript_status(t.sitting)]}"
    return f"{header.rstrip()}\n\n{note}\n\n{cues_}" if cues_ else f"{header.rstrip()}\n\n{note}\n"


def _srt_document(t: Transcript) -> str:
    return to_srt(t.sitting, t.segments)


def _akn_document(t: Transcript) -> bytes:
    record = akn.DebateRecord(
        sitting=t.sitting,
        agenda=t.agenda,
        speakers=t.speakers,
        segments=t.segments,
        votes=t.votes,
        bills=t.bills,
        reviewed=t.sitting.reviewed_at is not None,
        generated_at=t.generated_at or utc_now(),
    )
    return akn.debate_xml(record)


# format -> (media type, renderer). Text types get "; charset=utf-8" from the response.
FORMATS: dict[str, tuple[str, Callable[[Transcript], str | bytes]]] = {
    "json": ("application/json", _json_document),
    "txt": ("text/plain", _text_document),
    "vtt": ("text/vtt", _webvtt_document),
    "srt": ("application/x-subrip", _srt_document),
    "akn": ("application/akn+xml", _akn_document),
}
# Formats that need the agenda, speakers, votes and bills besides the segments.
RECORD_FORMATS = frozenset({"akn"})


def render(fmt: str, transcript: Transcript) -> bytes:
    """The transcript in ``fmt`` (a key of FORMATS) as bytes (UTF-8 text, or XML with its declaration). CPU-bound
    (word segmentation): keep it off the event loop."""
    body = FORMATS[fmt][1](transcript)
    return body if isinstance(body, bytes) else body.encode("utf-8")
