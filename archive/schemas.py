"""The HTTP API's shapes, defined once: request validation and ``/openapi.json`` are both derived from here.

Request models are strict pydantic models: what the document says is valid is exactly what the server accepts.
That is why text fields carry a ``pattern`` (a blank title is refused, and the document says so), ids and
timestamps a full-string pattern that the server checks as written, and integer query parameters an explicit
range. Each field's ``description`` completes the sentence "``<field>`` must be …", so the 4xx a client gets for
a bad field reads the same as the document.

Response shapes reuse the archive's record dataclasses, so an answer cannot drift from its schema either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from archive.bill_stages import BillType, Stage
from archive.models import AgendaItem, Bill, Segment, SegmentRevision, Sitting, Speaker, Vote
from archive.search import CURSOR_REGEX, MAX_QUERY_CHARS, QUERY_REGEX
from broadcast.envelope import ID_PATTERN
from common.alert_schemas import (
    BillFeedPath,
    FollowCreated,
    FollowDone,
    FollowOne,
    FollowTokenPath,
    SpeakerFeedPath,
    TokenQuery,
    UnsubscribeForm,
    VapidOut,
    new_follow,
    search_feed_query,
)
from common.desk_schemas import (
    AssignMessage,
    AttachmentPath,
    CodePath,
    ContactOne,
    ErasedOut,
    MessageExportOut,
    MessageForm,
    MessageList,
    MessageMultipart,
    MessageOne,
    MessagePath,
    MessagePushIn,
    MessagePushOut,
    MessageReceipt,
    MessageStatusOut,
    NewMessage,
    PublishMessage,
    SetMessageStatus,
    StaffMessagesQuery,
    SuggestionsOut,
    SuggestionsQuery,
)
from common.news_schemas import (
    ImageCreated,
    NewsCreate,
    NewsList,
    NewsOne,
    NewsPatch,
    NewsPath,
    NewsPublished,
    NewsQuery,
    PublicationCreate,
    PublicationList,
    PublicationOne,
    PublicationPath,
    StaffNewsQuery,
    publication_query,
)
from common.staff_schemas import (
    AccountList,
    AccountOne,
    AccountPatch,
    AccountPath,
    AuditOut,
    AuditQuery,
    FeedsOut,
    Login,
    LoginOut,
    LogoutOut,
    MeOut,
    NewAccount,
    NewToken,
    TokenCreated,
    TokenList,
    TokenOne,
    TokenPath,
)
from common.thai import normalize

TITLE_MAX = 4000  # real Thai bill titles run to several hundred characters; leave room
NAME_MAX = 300
COUNT_MAX = 100_000
LIST_MAX = 500
OFFSET_MAX = 1_000_000_000  # far beyond any archive, well inside SQLite's 64-bit integers
SEQ_MAX = 2**63 - 1

# What `common.thai.normalize` strips or collapses away: Unicode whitespace (exactly what Python's str.isspace
# matches), the zero-width characters and the other C0 controls.
# Spelled out rather than `\s`, whose meaning differs between Python and
# the ECMA-262 regexes of JSON Schema. A text field must hold at least one character outside this set, so that it
# is not empty once normalised (tests/test_openapi_fuzz.py checks the set against normalize).
BLANK_CHARS = "\\x00-\\x20\\x7f\\x85\\xa0\\u1680\\u2000-\\u200d\\u2028\\u2029\\u202f\\u205f\\u2060\\u3000\\ufeff"
NOT_BLANK = f"[^{BLANK_CHARS}]"
# ID_PATTERN, anchored for JSON Schema (whose patterns search); the server checks it with fullmatch, since
# Python's `$` would also accept a trailing newline.
ID_REGEX = f"^{ID_PATTERN}$"
CHANNEL_REGEX = f"^((sitting|bill):{ID_PATTERN}|news)$"
# RFC 3339 date-times as datetime.fromisoformat reads them: real calendar dates from 1900 to 2099, a time to the
# minute, second or microsecond, and a zone (Z or ±HH:MM). Exact, so that a generated valid value always parses.
_DAY = (
    "(19|20)[0-9]{2}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    "|02-(0[1-9]|1[0-9]|2[0-8]))"
    "|(19(0[48]|[2468][048]|[13579][26])|20([02468][048]|[13579][26]))-02-29"
)
DATETIME_REGEX = (
    f"^({_DAY})T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]{{1,6}})?)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)


def _fullmatch(regex: str, description: str) -> AfterValidator:
    compiled = re.compile(regex.removeprefix("^").removesuffix("$"))

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(description)
        return value

    return AfterValidator(check)


def _utc(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_ID_DESCRIPTION = "1-64 characters of A-Z a-z 0-9 _ . - starting with a letter or digit"
_DATETIME_DESCRIPTION = "an ISO-8601 date-time with a time zone offset, e.g. 2026-11-25T09:30:00+07:00 or …Z"

Id = Annotated[str, Field(pattern=ID_REGEX, description=_ID_DESCRIPTION), _fullmatch(ID_REGEX, _ID_DESCRIPTION)]
Channel = Annotated[
    str,
    Field(pattern=CHANNEL_REGEX, description="sitting:<id>, bill:<id> or news"),
    _fullmatch(CHANNEL_REGEX, "sitting:<id>, bill:<id> or news"),
]
Timestamp = Annotated[
    str,
    Field(pattern=DATETIME_REGEX, description=_DATETIME_DESCRIPTION),
    _fullmatch(DATETIME_REGEX, _DATETIME_DESCRIPTION),
    AfterValidator(_utc),
]


def _text(max_len: int) -> Any:
    return Field(max_length=max_len, pattern=NOT_BLANK, description=f"text of at most {max_len} characters, not blank")


# Text fields: at most so many characters as sent, not blank, stored normalised (NFC, spaces collapsed).
Title = Annotated[str, _text(TITLE_MAX), AfterValidator(normalize)]
Name = Annotated[str, _text(NAME_MAX), AfterValidator(normalize)]


def _whole(value: object) -> object:
    # JSON Schema counts 5.0 as an integer, so the server does too; 5.5 and true stay wrong (the models are strict).
    return int(value) if isinstance(value, float) and value.is_integer() else value


Count = Annotated[
    int, Field(ge=0, le=COUNT_MAX, description=f"an integer from 0 to {COUNT_MAX}"), BeforeValidator(_whole)
]
Order = Annotated[
    int, Field(ge=1, le=COUNT_MAX, description=f"an integer from 1 to {COUNT_MAX}"), BeforeValidator(_whole)
]

_STRICT = ConfigDict(strict=True, extra="forbid", regex_engine="python-re")


# ---- requests ------------------------------------------------------------------------------------------------


class CreateSitting(BaseModel):
    model_config = _STRICT
    title: Title
    chamber: Literal["senate", "joint", "committee"] = Field(description="one of senate, joint, committee")
    id: Id | None = None
    scheduled_at: Timestamp | None = None


class SetStatus(BaseModel):
    model_config = _STRICT
    status: Literal["scheduled", "live", "adjourned"] = Field(description="one of scheduled, live, adjourned")
    reason: Name | None = None


class SetAgenda(BaseModel):
    model_config = _STRICT
    title: Title
    bill_id: Id | None = None
    order: Order | None = None


class RecordVote(BaseModel):
    model_config = _STRICT
    motion: Title
    yes: Count
    no: Count
    abstain: Count
    absent: Count
    result: Literal["passed", "rejected"] = Field(description="one of passed, rejected")
    bill_id: Id | None = None


class SetSpeaker(BaseModel):
    model_config = _STRICT
    name: Name
    role: Name | None = None


class SetBill(BaseModel):
    model_config = _STRICT
    title: Title
    status: Name | None = None


class ReviseSegment(BaseModel):
    model_config = _STRICT
    text: Title


class SetReviewed(BaseModel):
    model_config = _STRICT
    reviewed: bool = Field(description="true (the transcript is reviewed) or false (back to a machine draft)")


# Query and path parameters arrive as text; `archive.validate` turns the digits of integer fields into ints before
# these strict models see them.
class ListQuery(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")
    limit: int = Field(100, ge=1, le=LIST_MAX, description=f"an integer from 1 to {LIST_MAX}")
    offset: int = Field(0, ge=0, le=OFFSET_MAX, description=f"an integer from 0 to {OFFSET_MAX}")


class TranscriptQuery(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")
    format: Literal["json", "txt", "vtt", "srt", "akn"] = Field("json", description="one of json, txt, vtt, srt, akn")


NEIGHBOURS_MAX = 20


class SegmentQuery(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")
    context: int = Field(
        3, ge=0, le=NEIGHBOURS_MAX, description=f"an integer from 0 to {NEIGHBOURS_MAX} (segments before and after)"
    )


_QUERY_DESCRIPTION = (
    f'1 to {MAX_QUERY_CHARS} characters: words and "quoted phrases" separated by spaces, each with a Thai'
    ' character, a Latin letter or a digit; -word or -"phrase" excludes; at least one term not excluded'
)
_DATE_REGEX = f"^({_DAY})$"
_DATE_DESCRIPTION = "a date as YYYY-MM-DD (the sitting's date in Bangkok)"
_CURSOR_DESCRIPTION = "next_cursor from the previous page, unchanged"
SEARCH_LIMIT_MAX = 100
SearchDate = Annotated[
    str, Field(pattern=_DATE_REGEX, description=_DATE_DESCRIPTION), _fullmatch(_DATE_REGEX, _DATE_DESCRIPTION)
]


class SearchQuery(BaseModel):
    """``GET /api/search``: exactly these parameters (an unknown one is a 400, unlike the other endpoints)."""

    model_config = ConfigDict(strict=True, regex_engine="python-re")
    q: Annotated[
        str,
        Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=QUERY_REGEX, description=_QUERY_DESCRIPTION),
        _fullmatch(QUERY_REGEX, _QUERY_DESCRIPTION),
    ]
    sitting: Id | None = None
    from_: SearchDate | None = Field(None, alias="from")
    to: SearchDate | None = None
    chamber: Literal["senate", "joint", "committee"] | None = Field(None, description="one of senate, joint, committee")
    speaker: Name | None = None
    bill: Id | None = None
    agenda_item: int | None = Field(None, ge=1, le=SEQ_MAX, description=f"an agenda item id, 1 to {SEQ_MAX}")
    cursor: (
        Annotated[
            str,
            Field(max_length=100, pattern=CURSOR_REGEX, description=_CURSOR_DESCRIPTION),
            _fullmatch(CURSOR_REGEX, _CURSOR_DESCRIPTION),
        ]
        | None
    ) = None
    limit: int = Field(20, ge=1, le=SEARCH_LIMIT_MAX, description=f"an integer from 1 to {SEARCH_LIMIT_MAX}")


class EventsQuery(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")
    since: int | None = Field(None, ge=0, le=SEQ_MAX, description=f"the last seq the client has, 0 to {SEQ_MAX}")
    epoch: str | None = Field(None, description="the epoch that seq counts in")


class SittingPath(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")
    sitting_id: Id


class BillPath(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")
    bill_id: Id


class SegmentPath(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")
    segment_id: int = Field(ge=1, le=SEQ_MAX, description=f"a segment's archive id, 1 to {SEQ_MAX}")


class ChannelPath(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")
    channel: Channel


class HlsPath(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")
    sitting_id: str
    name: str = Field(description="index.m3u8, a media playlist, a .ts segment or a .vtt subtitle segment")


# ---- responses -----------------------------------------------------------------------------------------------


class Error(BaseModel):
    """The one error shape (``common.http.json_error``); ``field`` names the request field at fault."""

    model_config = ConfigDict(extra="allow")
    ok: Literal[False]
    status: int
    error: str
    field: str | None = None


class EventOut(BaseModel):
    channel: str
    seq: int
    epoch: str
    type: str
    ts: str
    data: dict[str, Any]


class PositionOut(BaseModel):
    seq: int
    epoch: str


class _Ok(BaseModel):
    ok: Literal[True]


class SittingList(_Ok):
    sittings: list[Sitting]


class SittingState(_Ok):
    sitting: Sitting
    agenda: list[AgendaItem]
    current_agenda_item: AgendaItem | None
    speaker: Speaker | None
    votes: list[Vote]
    channel: str
    position: PositionOut


class TranscriptOut(_Ok):
    sitting: Sitting
    segments: list[Segment]
    transcript_status: Literal["machine-draft", "reviewed"]


class SegmentOut(_Ok):
    segment: Segment
    sitting: Sitting
    speaker: Speaker | None
    agenda_item: AgendaItem | None
    bill: Bill | None
    mentions: list[Bill]
    before: list[Segment]
    after: list[Segment]
    permalink: str
    transcript_status: Literal["machine-draft", "reviewed"]


class RevisionsOut(_Ok):
    segment_id: int
    revisions: list[SegmentRevision]


class SegmentEvent(_Ok):
    segment: Segment
    event: EventOut


class SearchSpan(BaseModel):
    """A piece of a snippet: plain text (render it as text, never as HTML); ``hit`` marks what the query matched."""

    text: str
    hit: bool


class SearchSitting(BaseModel):
    id: str
    title: str
    chamber: str
    date: str = Field(description="the sitting's date in Bangkok, YYYY-MM-DD")


class SearchResult(BaseModel):
    segment_id: int
    sitting: SearchSitting
    start_ms: int = Field(description="media time of the segment, ms since the start of the sitting's feed")
    t: float = Field(description="the same media time in seconds, as the permalink's ?t= carries it")
    speaker: str | None
    agenda_item_id: int | None
    bill_id: str | None
    score: int
    snippet: list[SearchSpan]
    permalink: str


class SearchOut(_Ok):
    q: str
    results: list[SearchResult]
    next_cursor: str | None
    next: str | None = Field(description="the URL of the next page, or null on the last")
    exhaustive: bool


class ReviewedOut(_Ok):
    sitting: Sitting
    transcript_status: Literal["machine-draft", "reviewed"]


class BillRecordOut(_Ok):
    bill: Bill
    channel: str
    sittings: list[Sitting]
    agenda_items: list[AgendaItem]
    votes: list[Vote]
    segments: list[Segment]


class SittingEvent(_Ok):
    sitting: Sitting
    event: EventOut


class AgendaEvent(_Ok):
    agenda_item: AgendaItem
    event: EventOut


class VoteEvent(_Ok):
    vote: Vote
    event: EventOut


class SpeakerEvent(_Ok):
    speaker: Speaker
    event: EventOut


class BillEvent(_Ok):
    bill: Bill
    event: EventOut


class Health(BaseModel):
    ok: bool
    broker: Literal["ok", "down"]
    subscriptions: int
    feeds: list[dict[str, Any]] = []


# ---- bills: details, stages, the session calendar, the Senate clock (archive/bills_api.py) -------------------

TAG_MAX = 100
TAGS_MAX = 20
PAUSES_MAX = 20
BILLS_LIMIT_MAX = 100
_STAGE_DESCRIPTION = "one of " + ", ".join(Stage)
_TYPE_DESCRIPTION = "one of " + ", ".join(BillType)
_STAGE_REGEX = "^(" + "|".join(Stage) + ")$"
_TYPE_REGEX = "^(" + "|".join(BillType) + ")$"
StageName = Annotated[
    str, Field(pattern=_STAGE_REGEX, description=_STAGE_DESCRIPTION), _fullmatch(_STAGE_REGEX, _STAGE_DESCRIPTION)
]
TypeName = Annotated[
    str, Field(pattern=_TYPE_REGEX, description=_TYPE_DESCRIPTION), _fullmatch(_TYPE_REGEX, _TYPE_DESCRIPTION)
]
Day = Annotated[
    str,
    Field(pattern=_DATE_REGEX, description="a date as YYYY-MM-DD"),
    _fullmatch(_DATE_REGEX, "a date as YYYY-MM-DD"),
]
Tag = Annotated[str, _text(TAG_MAX), AfterValidator(normalize)]
Tags = Annotated[
    list[Tag],
    Field(max_length=TAGS_MAX, description=f"a list of at most {TAGS_MAX} texts of at most {TAG_MAX} characters"),
]
RowId = Annotated[int, Field(ge=1, le=SEQ_MAX, description=f"an archive id, 1 to {SEQ_MAX}"), BeforeValidator(_whole)]


_FIRST_DESCRIPTION = "one of public_hearing, house_first_reading, parliament_first_reading"
_FIRST_REGEX = "^(public_hearing|house_first_reading|parliament_first_reading)$"
FirstStage = Annotated[
    str, Field(pattern=_FIRST_REGEX, description=_FIRST_DESCRIPTION), _fullmatch(_FIRST_REGEX, _FIRST_DESCRIPTION)
]


class CreateBill(BaseModel):
    model_config = _STRICT
    title: Title
    type: TypeName
    id: Id | None = None
    short_name: Name | None = None
    proposer: Name | None = None
    # Where the bill is entered: its hearing or its first reading (which one depends on the type: a 409 otherwise).
    stage: FirstStage | None = None
    on: Day | None = None
    topics: Tags = []
    agencies: Tags = []


_NOT_NULL = ("title", "type", "topics", "agencies")


def _patch_schema(schema: dict[str, Any]) -> None:
    """The document says what the handler enforces: at least one field, and no null for these (absent is fine)."""
    schema["minProperties"] = 1
    for name in _NOT_NULL:
        prop = schema["properties"][name]
        branches = [b for b in prop.pop("anyOf") if b.get("type") != "null"]
        prop.update(branches[0])
        prop.pop("default", None)


class PatchBill(BaseModel):
    """Only the fields given change; title, type and the lists may be absent but not null (a 422 naming them)."""

    model_config = ConfigDict(strict=True, extra="forbid", regex_engine="python-re", json_schema_extra=_patch_schema)
    title: Title | None = None
    type: TypeName | None = None
    short_name: Name | None = None
    proposer: Name | None = None
    topics: Tags | None = None
    agencies: Tags | None = None


class ChangeStage(BaseModel):
    model_config = _STRICT
    stage: StageName
    on: Day | None = None
    sitting_id: Id | None = None
    agenda_item_id: RowId | None = None
    vote_id: RowId | None = None
    note: Name | None = None


class ExtensionIn(BaseModel):
    model_config = _STRICT
    days: Annotated[int, Field(ge=1, le=30, description="an integer from 1 to 30 (sec. 136)"), BeforeValidator(_whole)]
    resolved_on: Day


class PauseIn(BaseModel):
    model_config = _STRICT
    start: Day
    end: Day | None = None


class SetBillClock(BaseModel):
    model_config = _STRICT
    extension: ExtensionIn | None = None
    pauses: list[PauseIn] = Field([], max_length=PAUSES_MAX, description=f"at most {PAUSES_MAX} court pauses")


class CreateSession(BaseModel):
    model_config = _STRICT
    start: Day
    end: Day
    kind: Literal["ordinary", "extraordinary"] = Field("ordinary", description="one of ordinary, extraordinary")
    title: Name | None = None


class BillsQuery(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")
    stage: StageName | None = None
    type: TypeName | None = None
    topic: Tag | None = None
    agency: Tag | None = None
    q: Name | None = None
    limit: int = Field(50, ge=1, le=BILLS_LIMIT_MAX, description=f"an integer from 1 to {BILLS_LIMIT_MAX}")
    offset: int = Field(0, ge=0, le=OFFSET_MAX, description=f"an integer from 0 to {OFFSET_MAX}")


class BillOut(BaseModel):
    """A bill with the Thai names of its stage and type (``null`` while unknown)."""

    id: str
    title: str
    status: str | None
    updated_at: str
    short_name: str | None
    type: str | None
    proposer: str | None
    stage: str | None
    topics: list[str]
    agencies: list[str]
    stage_label: str | None
    type_label: str | None
    channel: str
    url: str


class StageChangeOut(BaseModel):
    id: int
    bill_id: str
    from_stage: str | None
    stage: str
    stage_label: str
    on: str
    recorded_at: str
    sitting_id: str | None
    agenda_item_id: int | None
    vote_id: int | None
    note: str | None
    links: dict[str, str] = Field(description="watch-page links to the sitting, agenda item and vote, when known")


class ClockOut(BaseModel):
    """The sec. 136 clock (archive/senate_clock.py ``ClockReading.as_dict``) and what the operator recorded."""

    model_config = ConfigDict(extra="allow")
    state: str
    day: int
    limit: int
    days_left: int
    deemed_approved_on: str | None


class BillsOut(_Ok):
    bills: list[BillOut]
    total: int
    limit: int
    offset: int
    next: str | None = Field(description="the URL of the next page, or null on the last")
    labels: dict[str, dict[str, str]] = Field(description="Thai names: stages and types by slug")


class BillDocOut(_Ok):
    bill: BillOut
    channel: str
    stages: list[StageChangeOut]
    next_stages: list[dict[str, str]]
    clock: ClockOut | None
    clock_inputs: dict[str, Any]
    sittings: list[Sitting]
    agenda_items: list[AgendaItem]
    votes: list[Vote]
    segments: list[Segment]


class BillChanged(_Ok):
    bill: BillOut
    event: EventOut | None


class StageChanged(_Ok):
    bill: BillOut
    change: StageChangeOut
    event: EventOut | None


class ClockChanged(_Ok):
    bill_id: str
    clock_inputs: dict[str, Any]
    clock: ClockOut | None
    event: EventOut | None


class SessionOut(BaseModel):
    id: int
    start: str
    end: str
    kind: str
    title: str | None
    created_at: str


class SessionsOut(_Ok):
    sessions: list[SessionOut]


class SessionCreated(_Ok):
    session: SessionOut


# ---- documents: constitutions and Acts by section (archive/documents_api.py) ------------------------------------

SLUG_REGEX = "^(constitution-[0-9]{4}(-temp)?|act-[0-9]{1,12})$"
_SLUG_DESCRIPTION = "a document's slug, e.g. constitution-2560 or act-812364"
_KEY_DESCRIPTION = "a section's key, e.g. 109, 6-1 (มาตรา 6/1), 4-bis (มาตรา 4 ทวิ) or preamble"
Slug = Annotated[
    str, Field(pattern=SLUG_REGEX, description=_SLUG_DESCRIPTION), _fullmatch(SLUG_REGEX, _SLUG_DESCRIPTION)
]
YEAR_MIN, YEAR_MAX = 1900, 2700
_YEAR_DESCRIPTION = (
    f"a year from {YEAR_MIN} to {YEAR_MAX}: Buddhist era (B.E.) from 2400 on, else Christian era (C.E.; 1932 = 2475)"
)


class DocumentSearchQuery(BaseModel):
    """``GET /api/documents/search``: exactly these parameters (an unknown one is a 400)."""

    model_config = ConfigDict(strict=True, regex_engine="python-re")
    q: Annotated[
        str,
        Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=QUERY_REGEX, description=_QUERY_DESCRIPTION),
        _fullmatch(QUERY_REGEX, _QUERY_DESCRIPTION),
    ]
    document: Slug | None = None
    kind: Literal["constitution", "act"] | None = Field(None, description="one of constitution, act")
    year_from: int | None = Field(None, ge=YEAR_MIN, le=YEAR_MAX, description=_YEAR_DESCRIPTION)
    year_to: int | None = Field(None, ge=YEAR_MIN, le=YEAR_MAX, description=_YEAR_DESCRIPTION)
    in_force: Literal["true", "false"] | None = Field(None, description="true or false")
    cursor: (
        Annotated[
            str,
            Field(max_length=100, pattern=CURSOR_REGEX, description=_CURSOR_DESCRIPTION),
            _fullmatch(CURSOR_REGEX, _CURSOR_DESCRIPTION),
        ]
        | None
    ) = None
    limit: int = Field(20, ge=1, le=SEARCH_LIMIT_MAX, description=f"an integer from 1 to {SEARCH_LIMIT_MAX}")


class DocumentPath(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")
    doc: str = Field(description=_SLUG_DESCRIPTION)


class SectionPath(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")
    doc: str = Field(description=_SLUG_DESCRIPTION)
    n: str = Field(description=_KEY_DESCRIPTION)


class DocumentMeta(BaseModel):
    slug: str
    title: str
    kind: Literal["constitution", "act"]
    year_be: int
    year_ce: int
    in_force: bool
    complete: bool = Field(description="true: the full text; false: selected sections only")
    source: str
    licence: str
    url: str = Field(description="the document's page")


class DocumentListed(DocumentMeta):
    sections: int


class SectionHead(BaseModel):
    key: str
    label: str = Field(description="the section's number as written, e.g. มาตรา 109")
    chapter: str | None = Field(description="the chapter (หมวด) it is in, with its title")
    part: str | None = Field(description="the part (ส่วน) of the chapter it is in, with its title")
    transitory: bool = Field(description="part of the transitory provisions (บทเฉพาะกาล)")
    url: str


class SectionFull(SectionHead):
    text: str = Field(description="the section's text, lines separated by \\n")


class DocumentsOut(_Ok):
    documents: list[DocumentListed]


class DocumentOut(_Ok):
    document: DocumentMeta
    sections: list[SectionHead]


class SectionOut(_Ok):
    document: DocumentMeta
    section: SectionFull
    prev: str | None = Field(description="the URL of the section before, or null")
    next: str | None = Field(description="the URL of the section after, or null")
    compare: str = Field(description="the URL of the same subject across the constitutions")


class CompareMatch(BaseModel):
    document: DocumentMeta
    section: SectionFull
    similarity: float = Field(description="cosine similarity of the two sections' idf-weighted words, 0 to 1")
    shared: list[str] = Field(description="the shared words that weigh most in the pairing, heaviest first")


class CompareOut(_Ok):
    document: DocumentMeta
    section: SectionHead
    matches: list[CompareMatch]
    method: str


class DocumentHitOut(BaseModel):
    document: DocumentMeta
    section: SectionHead
    score: int
    snippet: list[SearchSpan]
    url: str


class DocumentSearchOut(_Ok):
    q: str
    results: list[DocumentHitOut]
    next_cursor: str | None
    next: str | None = Field(description="the URL of the next page, or null on the last")
    exhaustive: bool


# ---- the operations ------------------------------------------------------------------------------------------

JSON = "application/json"


@dataclass(frozen=True)
class Operation:
    """One method on one route: what it takes, what it answers, and every status it can answer with.

    ``ok`` maps the success status to either a response model (JSON) or a dict of media type → description.
    """

    summary: str
    ok: tuple[int, type[BaseModel] | dict[str, str]]
    errors: tuple[int, ...] = ()
    path: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    operator: bool = False
    # The staff permission the call needs (desk/accounts.py PERMISSIONS); None with operator: any signed-in staff.
    permission: str | None = None
    # Answers that are not JSON, beside the main one: e.g. the transcript's text/vtt.
    alternatives: dict[str, str] = field(default_factory=dict)
    # Headers the request may carry (name → description), such as Last-Event-ID.
    headers: dict[str, str] = field(default_factory=dict)
    # Request bodies in other media types than JSON (media type → model), such as a form with files.
    forms: dict[str, type[BaseModel]] = field(default_factory=dict)
    # What an error status means here, where the general reason (archive.openapi.REASONS) would mislead.
    reasons: dict[int, str] = field(default_factory=dict)
    # Request bodies taken as raw bytes (media type → description), such as an image upload; checked from the bytes.
    raw: dict[str, str] = field(default_factory=dict)


_OPERATOR_ERRORS = (401, 403, 404, 413, 422, 503)
_STAFF_ERRORS = (401, 403)
_LOOKUPS = "Too many tracking code lookups from this address, known codes or not (see Retry-After)"


def _operator(
    summary: str, ok: tuple[int, type[BaseModel]], permission: str, *, also: tuple[int, ...] = (), **more: Any
) -> Operation:
    """An archive write (operator token or staff): the errors every such write can answer with, then ``also``."""
    return Operation(summary, ok, (*_OPERATOR_ERRORS, *also), operator=True, permission=permission, **more)


def _staff(
    summary: str,
    ok: tuple[int, type[BaseModel] | dict[str, str]],
    permission: str | None = None,
    *,
    also: tuple[int, ...] = (),
    **more: Any,
) -> Operation:
    """A staff call: 401 and 403, then ``also``; with no ``permission`` any signed-in staff may make it."""
    return Operation(summary, ok, (*_STAFF_ERRORS, *also), operator=True, permission=permission, **more)


def _lookup(summary: str, ok: tuple[int, type[BaseModel]]) -> Operation:
    """A sender's call by tracking code: an unknown code is 404, and every call spends one of the address's lookups."""
    return Operation(summary, ok, (404, 429), CodePath, reasons={429: _LOOKUPS})


_ATOM = {"application/atom+xml": "an Atom 1.0 feed (RFC 4287), the 50 newest entries, stable tag: ids"}
_PAGE = {"text/html": "a page for a person who opened the link (without Accept: application/json)"}
_ASKED_PAGE = {"text/html": "a page, when the request asks for text/html (a browser's form) and not JSON"}

OPERATIONS: dict[tuple[str, str], Operation] = {
    # ---- follows and feeds (alerts/api.py, docs/alerts.md) ----
    ("POST", "/api/follows"): Operation(
        "Follow a bill, topic, agency, keyword, speaker or chamber by Web Push, webhook or email (no account)",
        (201, FollowCreated),
        errors=(404, 409, 413, 422, 429, 503),
        body=new_follow(QUERY_REGEX),
        reasons={
            404: "No bill with that id is in the archive; `field` is target.value",
            409: "The request fits the schema but cannot be followed; `field` names why: the channel already follows "
            "the target or holds its most follows; the webhook or push host does not resolve to public addresses; "
            "the push endpoint is http where only https is allowed; keys.p256dh is no point on P-256; email alerts "
            "are not configured on this server (no SMTP_URL; `field` is channel.type)",
            422: "The JSON body breaks the schema; `field` names the culprit (`body` for the whole body)",
            429: "Too many follows of this email address await confirmation; confirm them first",
            503: "Too many keyword follows exist on this server; try again later",
        },
    ),
    ("GET", "/api/follows/confirm"): Operation(
        "Confirm an email follow (the link in the confirmation message)",
        (200, FollowDone),
        errors=(400, 404),
        query=TokenQuery,
        alternatives=_PAGE,
        reasons={404: "The confirmation link is unknown, already used or expired (48 hours)"},
    ),
    ("GET", "/api/follows/unsubscribe"): Operation(
        "The unsubscribe page: a button that POSTs the same URL (a GET never unsubscribes)",
        (200, UnsubscribeForm),
        errors=(400,),
        query=TokenQuery,
        alternatives=_PAGE,
    ),
    ("POST", "/api/follows/unsubscribe"): Operation(
        "Unsubscribe (also List-Unsubscribe one-click)",
        (200, FollowDone),
        errors=(400, 404),
        query=TokenQuery,
        alternatives=_ASKED_PAGE,
        reasons={404: "The unsubscribe link is unknown"},
    ),
    ("GET", "/api/follows/{token}"): Operation(
        "The follow a management token names", (200, FollowOne), errors=(404,), path=FollowTokenPath
    ),
    ("DELETE", "/api/follows/{token}"): Operation(
        "End the follow a management token names", (200, FollowDone), errors=(404,), path=FollowTokenPath
    ),
    ("GET", "/api/push/vapid"): Operation("The VAPID public key to subscribe to Web Push with", (200, VapidOut)),
    ("GET", "/feeds/bills.atom"): Operation("Every bill's stage changes and votes", (200, _ATOM), errors=(503,)),
    ("GET", "/feeds/bills/{bill_id}.atom"): Operation(
        "One bill's stage changes and votes", (200, _ATOM), errors=(404, 503), path=BillFeedPath
    ),
    ("GET", "/feeds/speakers/{name}.atom"): Operation(
        "A speaker's turns in the newest sittings", (200, _ATOM), errors=(404, 503), path=SpeakerFeedPath
    ),
    ("GET", "/feeds/search.atom"): Operation(
        "Transcript lines a search finds", (200, _ATOM), errors=(400, 503), query=search_feed_query(QUERY_REGEX)
    ),
    ("GET", "/healthz"): Operation("Liveness and dependency health", (200, Health), errors=(503,)),
    ("GET", "/metrics"): Operation(
        "Prometheus metrics", (200, {"text/plain": "Prometheus text exposition format 0.0.4"})
    ),
    ("GET", "/openapi.json"): Operation("This document", (200, {JSON: "OpenAPI 3.1"})),
    ("GET", "/api/sittings"): Operation(
        "List sittings, newest first", (200, SittingList), errors=(400, 503), query=ListQuery
    ),
    ("POST", "/api/sittings"): _operator(
        "Create a sitting", (201, SittingEvent), "sitting.manage", also=(409,), body=CreateSitting
    ),
    ("GET", "/api/sittings/{sitting_id}"): Operation(
        "A sitting's state (agenda, speaker, votes) and its channel position",
        (200, SittingState),
        errors=(400, 404, 503),
        path=SittingPath,
    ),
    ("GET", "/api/sittings/{sitting_id}/transcript"): Operation(
        "The transcript of final captions: JSON, plain text, WebVTT or SRT",
        (200, TranscriptOut),
        errors=(400, 404, 503),
        path=SittingPath,
        query=TranscriptQuery,
        alternatives={
            "text/plain": "format=txt: one '[HH:MM:SS] text' line per utterance",
            "text/vtt": "format=vtt: WebVTT",
            "application/x-subrip": "format=srt: SubRip",
            "application/akn+xml": "format=akn: an Akoma Ntoso 3.0 debate",
        },
    ),
    ("POST", "/api/sittings/{sitting_id}/status"): _operator(
        "Set the sitting's status", (200, SittingEvent), "sitting.manage", path=SittingPath, body=SetStatus
    ),
    ("POST", "/api/sittings/{sitting_id}/agenda"): _operator(
        "Move to an agenda item", (201, AgendaEvent), "agenda.set", path=SittingPath, body=SetAgenda
    ),
    ("POST", "/api/sittings/{sitting_id}/votes"): _operator(
        "Record a vote result", (201, VoteEvent), "vote.record", path=SittingPath, body=RecordVote
    ),
    ("POST", "/api/sittings/{sitting_id}/speaker"): _operator(
        "Set the current speaker", (201, SpeakerEvent), "speaker.set", path=SittingPath, body=SetSpeaker
    ),
    ("GET", "/api/bills/{bill_id}"): Operation(
        "A bill: details, stage history, the Senate clock, and every sitting, agenda item, vote and transcript"
        " segment about it, newest first",
        (200, BillDocOut),
        errors=(400, 404, 503),
        path=BillPath,
        query=ListQuery,
    ),
    ("GET", "/api/segments/{segment_id}"): Operation(
        "A transcript segment (latest revision) with its neighbours, speaker, agenda item, bills and permalink",
        (200, SegmentOut),
        errors=(400, 404, 503),
        path=SegmentPath,
        query=SegmentQuery,
    ),
    ("PATCH", "/api/segments/{segment_id}"): _operator(
        "Correct a segment's text: a new revision, announced as caption.correction",
        (200, SegmentEvent),
        "caption.correct",
        path=SegmentPath,
        body=ReviseSegment,
    ),
    ("GET", "/api/segments/{segment_id}/revisions"): Operation(
        "Every revision of a segment, the machine draft first",
        (200, RevisionsOut),
        errors=(404, 503),
        path=SegmentPath,
    ),
    ("POST", "/api/sittings/{sitting_id}/reviewed"): _operator(
        "Mark the sitting's transcript reviewed, or back to a machine draft",
        (200, ReviewedOut),
        "caption.correct",
        path=SittingPath,
        body=SetReviewed,
    ),
    ("POST", "/api/bills/{bill_id}"): _operator(
        "Deprecated (use POST /api/bills, PATCH and /stages): create or update a bill's title and free-text status",
        (200, BillEvent),
        "bill.stage",
        path=BillPath,
        body=SetBill,
    ),
    ("GET", "/api/bills"): Operation(
        "Bills, most recently changed first, filtered by stage, type, topic, agency and text; paged",
        (200, BillsOut),
        errors=(400, 503),
        query=BillsQuery,
    ),
    ("POST", "/api/bills"): _operator(
        "Create a bill with its details and first stage; announced as bill.status",
        (201, BillChanged),
        "bill.stage",
        also=(409,),
        body=CreateBill,
    ),
    ("PATCH", "/api/bills/{bill_id}"): _operator(
        "Change a bill's details (title, short name, type, proposer, topics, agencies); announced as bill.status",
        (200, BillChanged),
        "bill.stage",
        also=(409,),
        path=BillPath,
        body=PatchBill,
    ),
    ("POST", "/api/bills/{bill_id}/stages"): _operator(
        "Record a stage change (validated: 409 with the allowed next stages); announced as bill.status",
        (201, StageChanged),
        "bill.stage",
        also=(409,),
        path=BillPath,
        body=ChangeStage,
    ),
    ("PUT", "/api/bills/{bill_id}/clock"): _operator(
        "Set the Senate's extension and the Constitutional Court pauses of a bill; announced as bill.clock",
        (200, ClockChanged),
        "bill.stage",
        also=(409,),
        path=BillPath,
        body=SetBillClock,
    ),
    ("GET", "/api/sessions"): Operation("The session calendar, in date order", (200, SessionsOut), errors=(503,)),
    ("POST", "/api/sessions"): _operator(
        "Add a session period (opening and closing days inclusive)",
        (201, SessionCreated),
        "bill.stage",
        also=(409,),
        body=CreateSession,
    ),
    ("GET", "/api/channels/{channel}/events"): Operation(
        "Server-Sent Events of a channel; id is the seq; honours Last-Event-ID and ?since=",
        (200, {"text/event-stream": "event stream: retry, subscribed, then events with id: <seq>"}),
        errors=(400, 404, 429, 503),
        path=ChannelPath,
        query=EventsQuery,
        headers={"Last-Event-ID": "the last seq received (wins over ?since=)"},
    ),
    ("GET", "/api/search"): Operation(
        "Search transcripts (latest revisions): relevance then recency, filters, cursor pages, snippets, permalinks",
        (200, SearchOut),
        errors=(400, 503),
        query=SearchQuery,
    ),
    ("GET", "/api/documents"): Operation(
        "The constitutions and Acts of the documents collection, with their number of sections",
        (200, DocumentsOut),
        errors=(503,),
    ),
    ("GET", "/api/documents/search"): Operation(
        "Search the constitutions and Acts by section: relevance, then newer document; filters, cursor pages, snippets",
        (200, DocumentSearchOut),
        errors=(400, 503),
        query=DocumentSearchQuery,
    ),
    ("GET", "/api/documents/{doc}"): Operation(
        "A document with its table of contents (chapters, parts, sections)",
        (200, DocumentOut),
        errors=(404, 503),
        path=DocumentPath,
    ),
    ("GET", "/api/documents/{doc}/sections/{n}"): Operation(
        "One section's text with its chapter, part and the sections before and after it",
        (200, SectionOut),
        errors=(404, 503),
        path=SectionPath,
    ),
    ("GET", "/api/documents/{doc}/sections/{n}/compare"): Operation(
        "The same subject across the constitutions: each other constitution's section most like this one",
        (200, CompareOut),
        errors=(404, 503),
        path=SectionPath,
    ),
    # ---- staff: sign-in, accounts, API tokens, audit log, feed health (desk/api.py) ----
    ("POST", "/api/staff/login"): Operation(
        "Sign in: sets the session cookie and answers the CSRF token",
        (200, LoginOut),
        errors=(401, 413, 422, 429),
        body=Login,
    ),
    ("POST", "/api/staff/logout"): Operation(
        "Sign out: ends the cookie's session (X-CSRF-Token required) and clears the cookie",
        (200, LogoutOut),
        errors=(403,),
    ),
    ("GET", "/api/staff/me"): _staff(
        "Who is signed in, their roles and permissions, and the session's CSRF token", (200, MeOut)
    ),
    ("GET", "/api/staff/accounts"): _staff("Every staff account", (200, AccountList), "account.manage"),
    ("POST", "/api/staff/accounts"): _staff(
        "Create a staff account", (201, AccountOne), "account.manage", also=(409, 413, 422), body=NewAccount
    ),
    ("PATCH", "/api/staff/accounts/{account_id}"): _staff(
        "Change an account's roles, name, disabled state or password (your own password with current_password)",
        (200, AccountOne),
        also=(404, 409, 413, 422),
        path=AccountPath,
        body=AccountPatch,
    ),
    ("GET", "/api/staff/accounts/{account_id}/tokens"): _staff(
        "An account's API tokens (prefixes and dates, never the tokens)",
        (200, TokenList),
        also=(404,),
        path=AccountPath,
    ),
    ("POST", "/api/staff/accounts/{account_id}/tokens"): _staff(
        "A new API token for an account: the token is in this answer only",
        (201, TokenCreated),
        also=(404, 409, 413, 422),
        path=AccountPath,
        body=NewToken,
    ),
    ("DELETE", "/api/staff/tokens/{token_id}"): _staff(
        "Revoke an API token", (200, TokenOne), also=(404,), path=TokenPath
    ),
    ("GET", "/api/staff/audit"): _staff(
        "The audit log of staff actions, newest first", (200, AuditOut), "audit.read", also=(400,), query=AuditQuery
    ),
    ("GET", "/api/staff/feeds"): _staff(
        "Feed health, caption lag and viewers, for the console", (200, FeedsOut), "feed.read"
    ),
    # ---- the public's messages and their moderators (desk/messages_api.py) ----
    ("POST", "/api/messages"): Operation(
        "Send a complaint, suggestion or question: the tracking code is in this answer only",
        (202, MessageReceipt),
        errors=(400, 409, 413, 415, 429),
        body=NewMessage,
        forms={"multipart/form-data": MessageMultipart, "application/x-www-form-urlencoded": MessageForm},
        reasons={
            400: "A field is invalid: `field` names the first, `fields` maps each to what is wrong",
            409: "The same subject and text arrived within a day (`duplicate`: the first one went in)",
            413: "The body, or an attachment, is larger than accepted",
            415: "Not JSON, multipart or a urlencoded form; or an attachment that is not PNG, JPEG, WebP or PDF",
            429: "Too many messages from this address or for this contact (see Retry-After)",
        },
    ),
    ("GET", "/api/messages/{code}"): _lookup(
        "The sender's status page as JSON: their message, its history and the answer", (200, MessageStatusOut)
    ),
    ("DELETE", "/api/messages/{code}"): _lookup(
        "Erase the message and everything of it, attachments and contact data included (PDPA)", (200, ErasedOut)
    ),
    ("GET", "/api/messages/{code}/export"): _lookup(
        "Everything stored about the message, contact data included, as a JSON download (PDPA)",
        (200, MessageExportOut),
    ),
    ("POST", "/api/messages/{code}/push"): Operation(
        "Subscribe this browser to Web Push notices of the message's status changes (the status page's button)",
        (201, MessagePushOut),
        errors=(404, 409, 413, 422, 429, 503),
        path=CodePath,
        body=MessagePushIn,
        reasons={
            409: "The subscription fits the schema but cannot be used: keys.p256dh is no point on P-256, or the "
            "endpoint's host does not resolve to public addresses (or is http where only https is allowed)",
            422: "The body is not a subscription: `field` names what is wrong (e.g. subscription.keys.auth)",
            429: _LOOKUPS,
            503: "Web Push is not available on this server",
        },
    ),
    ("GET", "/api/suggestions"): Operation(
        "Answered suggestions published by moderators, anonymised, newest first",
        (200, SuggestionsOut),
        errors=(400,),
        query=SuggestionsQuery,
    ),
    ("GET", "/api/staff/messages"): _staff(
        "The public's messages for moderators, newest first (never their contact data)",
        (200, MessageList),
        "message.read",
        also=(400, 404),
        query=StaffMessagesQuery,
        reasons={404: "`before` names no message"},
    ),
    ("GET", "/api/staff/messages/{message_id}"): _staff(
        "One message with its attachments' metadata", (200, MessageOne), "message.read", also=(404,), path=MessagePath
    ),
    ("GET", "/api/staff/messages/{message_id}/contact"): _staff(
        "The sender's contact data (each opening is in the audit log)",
        (200, ContactOne),
        "message.contact.read",
        also=(404,),
        path=MessagePath,
    ),
    ("POST", "/api/staff/messages/{message_id}/status"): _staff(
        "Move a message along the workflow (in review, forwarded, answered, closed, spam); the sender is told",
        (200, MessageOne),
        "message.triage",
        also=(404, 409, 413, 422),
        path=MessagePath,
        body=SetMessageStatus,
        reasons={409: "The workflow does not allow this change from the message's status"},
    ),
    ("POST", "/api/staff/messages/{message_id}/assign"): _staff(
        "Assign a message to a moderator, or unassign it",
        (200, MessageOne),
        "message.triage",
        also=(404, 413, 422),
        path=MessagePath,
        body=AssignMessage,
    ),
    ("POST", "/api/staff/messages/{message_id}/publish"): _staff(
        "Publish an answered suggestion, anonymised, whose sender agreed; or withdraw it",
        (200, MessageOne),
        "message.triage",
        also=(404, 409, 413, 422),
        path=MessagePath,
        body=PublishMessage,
        reasons={409: "Only an answered suggestion whose sender agreed may be published"},
    ),
    ("GET", "/api/staff/messages/{message_id}/attachments/{name}"): _staff(
        "Download an attachment (Content-Disposition: attachment, never shown inline)",
        (
            200,
            {
                "image/png": "a PNG image",
                "image/jpeg": "a JPEG image",
                "image/webp": "a WebP image",
                "application/pdf": "a PDF document",
            },
        ),
        "attachment.read",
        also=(404,),
        path=AttachmentPath,
    ),
    # ---- news and publications (desk/news_api.py); the raw-bytes uploads are in docs/api.md ----
    ("GET", "/api/news"): Operation(
        "Published news, newest first; topic narrows", (200, NewsList), errors=(400,), query=NewsQuery
    ),
    ("POST", "/api/news"): _staff(
        "Create a news draft (Markdown body, rendered and sanitised)",
        (201, NewsOne),
        "news.write",
        also=(413, 422),
        body=NewsCreate,
    ),
    ("GET", "/api/news/{slug}"): Operation("A published article", (200, NewsOne), errors=(404,), path=NewsPath),
    ("PATCH", "/api/news/{slug}"): _staff(
        "Edit an article's title, body or topics (the slug stays)",
        (200, NewsOne),
        "news.write",
        also=(404, 413, 422),
        path=NewsPath,
        body=NewsPatch,
    ),
    ("POST", "/api/news/{slug}/publish"): _staff(
        "Publish an article: news.published on the news channel",
        (200, NewsPublished),
        "news.publish",
        also=(404,),
        path=NewsPath,
    ),
    ("POST", "/api/news/{slug}/unpublish"): _staff(
        "Take an article back to a draft", (200, NewsOne), "news.publish", also=(404,), path=NewsPath
    ),
    ("GET", "/api/staff/news"): _staff(
        "Every article, drafts included, for editors", (200, NewsList), "news.write", also=(400,), query=StaffNewsQuery
    ),
    ("GET", "/news.atom"): Operation(
        "The Atom feed of published news", (200, {"application/atom+xml": "Atom 1.0, entry ids stable"})
    ),
    ("GET", "/api/publications"): Operation(
        "Publications, newest first; q searches title, authors, topics and abstract as /api/search does",
        (200, PublicationList),
        errors=(400,),
        query=publication_query(QUERY_REGEX, MAX_QUERY_CHARS),
    ),
    ("POST", "/api/publications"): _staff(
        "Add a publication (its PDF follows as the raw body of PUT /api/publications/{id}/file)",
        (201, PublicationOne),
        "document.write",
        also=(413, 422),
        body=PublicationCreate,
    ),
    ("POST", "/api/news/{slug}/images"): _staff(
        "Upload an image for an article (the raw bytes; PNG, JPEG or WebP, checked from the bytes)",
        (201, ImageCreated),
        "news.write",
        also=(400, 404, 413, 415, 422),
        path=NewsPath,
        raw={"image/png": "a PNG image", "image/jpeg": "a JPEG image", "image/webp": "a WebP image"},
    ),
    ("PUT", "/api/publications/{publication_id}/file"): _staff(
        "Upload (or replace) a publication's PDF (the raw bytes, checked from the bytes)",
        (200, PublicationOne),
        "document.write",
        also=(400, 404, 413, 415, 422),
        path=PublicationPath,
        raw={"application/pdf": "a PDF document"},
    ),
    ("GET", "/api/publications/{publication_id}"): Operation(
        "A publication", (200, PublicationOne), errors=(404,), path=PublicationPath
    ),
    ("GET", "/api/publications/{publication_id}/pdf"): Operation(
        "A publication's PDF, as a download",
        (200, {"application/pdf": "the PDF (Content-Disposition: attachment)"}),
        errors=(404, 409),
        path=PublicationPath,
        reasons={409: "The publication has no PDF yet"},
    ),
    ("GET", "/live/{sitting_id}/{name}"): Operation(
        "HLS files of a sitting: playlists, segments and WebVTT subtitles",
        (
            200,
            {
                "application/vnd.apple.mpegurl": "a playlist",
                "video/mp2t": "an MPEG-TS segment",
                "text/vtt": "a WebVTT subtitle segment",
            },
        ),
        errors=(404,),
        path=HlsPath,
    ),
}
