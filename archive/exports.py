"""Transcript exports of a sitting: JSON, plain text, WebVTT, SRT and Akoma Ntoso. Pure functions.

Every export says whether it is the machine draft or a transcript an operator has reviewed (``transcript_status``:
``machine-draft`` or ``reviewed``): a JSON field, the text's first line, a WebVTT ``NOTE``, the Akoma Ntoso
``proprietary`` element and preface. SRT has no place for comments, so there the answer's ``Transcript-Status``
header (sent with every format) is the only mark.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from archive import akn
from archive.models import AgendaItem, Bill, Segment, Sitting, Speaker, Vote, utc_now
from common.cues import (
    Cue,
    Utterance,
    UtteranceJoiner,
    clock,
    cues,
    srt_time,
    utterance_cues,
    utterances,
    vtt_cue_block,
)
from common.http import dumps
from common.thai import normalize

__all__ = [
    "FORMATS",
    "RECORD_FORMATS",
    "Cue",
    "DocumentWriter",
    "Transcript",
    "cues",
    "document_writer",
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


class DocumentWriter(Protocol):
    """A transcript document written a page of segments at a time, so that no render holds a whole long sitting
    as objects at once: ``head()``, then ``page(segments)`` for each page in media order (start_ms, then id), each
    continuing the last, then ``tail()``; the pieces joined are the document."""

    def head(self) -> str: ...

    def page(self, segments: Sequence[Segment]) -> str: ...

    def tail(self) -> str: ...


class _JsonWriter:
    """``{"ok": true, **to_json(...), "transcript_status": ...}`` in compact JSON, a segment at a time."""

    def __init__(self, sitting: Sitting) -> None:
        self._sitting = sitting
        self._first = True

    def head(self) -> str:
        return dumps({"ok": True, "sitting": self._sitting.to_dict()})[:-1] + ',"segments":['

    def page(self, segments: Sequence[Segment]) -> str:
        if not segments:
            return ""
        separator = "" if self._first else ","
        self._first = False
        return separator + ",".join(dumps(s.to_dict()) for s in segments)

    def tail(self) -> str:
        return "]," + dumps({"transcript_status": transcript_status(self._sitting)})[1:]


class _TextWriter:
    """One '[HH:MM:SS] text' line per utterance, after ``status`` as a '# ' line when given."""

    def __init__(self, status: str | None) -> None:
        self._status = status
        self._joiner = UtteranceJoiner()

    def head(self) -> str:
        return "" if self._status is None else f"# {_STATUS_LINE[self._status]}\n"

    def page(self, segments: Sequence[Segment]) -> str:
        return self._lines(self._joiner.feed(segments))

    def tail(self) -> str:
        return self._lines(self._joiner.close())

    @staticmethod
    def _lines(done: Iterable[Utterance]) -> str:
        lines = ((u.start_ms, normalize(u.text)) for u in done)
        return "".join(f"[{clock(max(start, 0))}] {text}\n" for start, text in lines if text)


class _CueWriter:
    """WebVTT (cue ids are segment ids, '-N' appended when a segment is split; a NOTE with ``status`` when given)
    or SRT (1-based counters; SRT has no escaping, and the store's normalised text has no newlines, the only thing
    that could break it)."""

    def __init__(self, srt: bool, status: str | None) -> None:
        self._srt = srt
        self._status = status
        self._joiner = UtteranceJoiner()
        self._count = 0

    def head(self) -> str:
        if self._srt:
            return ""
        if self._status is None:
            return "WEBVTT"
        # A NOTE block right after the header: players skip it, people reading the file see it first.
        return f"WEBVTT\n\nNOTE transcript_status: {self._status}\n{_STATUS_LINE[self._status]}"

    def page(self, segments: Sequence[Segment]) -> str:
        return self._blocks(self._joiner.feed(segments))

    def tail(self) -> str:
        text = self._blocks(self._joiner.close())
        return text + ("" if self._srt and not self._count else "\n")

    def _blocks(self, done: Iterable[Utterance]) -> str:
        blocks: list[str] = []
        for cue in (cue for utterance in done for cue in utterance_cues(utterance)):
            self._count += 1
            if self._srt:
                timing = f"{srt_time(cue.start_ms)} --> {srt_time(cue.end_ms)}"
                block = "\n".join([str(self._count), timing, *cue.lines])
                blocks.append(block if self._count == 1 else "\n\n" + block)
            else:
                ident = str(cue.segment_id) if cue.parts == 1 else f"{cue.segment_id}-{cue.part}"
                blocks.append("\n\n" + vtt_cue_block(cue, ident))
        return "".join(blocks)


def document_writer(fmt: str, sitting: Sitting) -> DocumentWriter | None:
    """The page-at-a-time writer of ``fmt`` for ``sitting``; ``None`` for a format rendered whole (Akoma Ntoso,
    which is one XML tree with the agenda, speakers and votes)."""
    status = transcript_status(sitting)
    writers: dict[str, Callable[[], DocumentWriter]] = {
        "json": lambda: _JsonWriter(sitting),
        "txt": lambda: _TextWriter(status),
        "vtt": lambda: _CueWriter(srt=False, status=status),
        "srt": lambda: _CueWriter(srt=True, status=status),
    }
    make = writers.get(fmt)
    return None if make is None else make()


def _whole(writer: DocumentWriter, segments: Iterable[Segment]) -> str:
    """``writer``'s document of ``segments`` (any order) as one page."""
    return writer.head() + writer.page(sorted(segments, key=lambda s: (s.start_ms, s.id))) + writer.tail()


def to_text(sitting: Sitting, segments: Iterable[Segment]) -> str:
    """A readable transcript: one '[HH:MM:SS] text' line per utterance, in media order."""
    return _whole(_TextWriter(None), segments)


def to_webvtt(sitting: Sitting, segments: Iterable[Segment]) -> str:
    """A WebVTT file; cue ids are segment ids, with '-N' appended when a segment is split."""
    return _whole(_CueWriter(srt=False, status=None), segments)


def to_srt(sitting: Sitting, segments: Iterable[Segment]) -> str:
    """An SRT file with 1-based counters."""
    return _whole(_CueWriter(srt=True, status=None), segments)


def _paged_document(fmt: str) -> Callable[[Transcript], str]:
    def render(t: Transcript) -> str:
        writer = document_writer(fmt, t.sitting)
        assert writer is not None
        return _whole(writer, t.segments)

    return render


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


# format -> (media type, renderer of the whole document). Text types get "; charset=utf-8" from the response.
FORMATS: dict[str, tuple[str, Callable[[Transcript], str | bytes]]] = {
    "json": ("application/json", _paged_document("json")),
    "txt": ("text/plain", _paged_document("txt")),
    "vtt": ("text/vtt", _paged_document("vtt")),
    "srt": ("application/x-subrip", _paged_document("srt")),
    "akn": ("application/akn+xml", _akn_document),
}
# Formats that need the agenda, speakers, votes and bills besides the segments.
RECORD_FORMATS = frozenset({"akn"})


def render(fmt: str, transcript: Transcript) -> bytes:
    """The transcript in ``fmt`` (a key of FORMATS) as bytes (UTF-8 text, or XML with its declaration). CPU-bound
    (word segmentation): keep it off the event loop."""
    body = FORMATS[fmt][1](transcript)
    return body if isinstance(body, bytes) else body.encode("utf-8")
