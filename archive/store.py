"""The archive's storage contract, independent of any database."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from archive.documents import Candidate, Document, DocumentFilters, DocumentPage, Section, SectionView
from archive.models import (
    AgendaItem,
    Announcement,
    Bill,
    BillClockInputs,
    BillFilters,
    BillRecord,
    OutboxEntry,
    Segment,
    SegmentRevision,
    SessionPeriodRecord,
    Sitting,
    Speaker,
    StageChange,
    StoredAnswer,
    Vote,
)
from archive.search import SearchFilters, SearchPage

CHAMBERS = frozenset({"senate", "joint", "committee"})
SITTING_STATUSES = frozenset({"scheduled", "live", "adjourned"})
VOTE_RESULTS = frozenset({"passed", "rejected"})


class NotFound(LookupError):
    """The sitting, segment or vote named does not exist."""


class Conflict(Exception):
    """A record with that id already exists."""


class UnknownReference(ValueError):
    """A write names a row that does not exist in a field where that is the caller's mistake (a 422 naming
    ``field``), such as the sitting or vote a stage change links to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class StoreUnavailable(Exception):
    """The database did not answer in time or could not write (disk full, I/O error, read-only): nothing was
    recorded by the failed call, and the store stays usable for the next one.

    A call that times out before the database started on it is cancelled; one the database had started may still
    complete after the timeout, so a caller that retries should be idempotent.
    """


R = TypeVar("R")
# Builds the events a write announces from the row it wrote; called inside the write's transaction, so it must be
# pure and quick.
Announce = Callable[[R], Sequence[Announcement]]


class Store(Protocol):
    """Durable archive of sittings, agenda, speakers, caption segments, votes and bills.

    Contract:
    - Every write is durable when its awaitable returns: committed and fsynced, so a caption
      a viewer has seen as final survives a crash or power loss.
    - Writes are serialised; concurrent callers never interleave inside one write.
    - Reads never block the event loop (database work happens off the loop thread).
    - Text is stored normalised (NFC, zero-width characters stripped, whitespace collapsed).
    - Writing under an unknown sitting raises NotFound; creating an existing sitting raises Conflict.
    - Times are ISO-8601 UTC strings ending in 'Z'; media times are integer milliseconds.
    - No call waits forever: one the database does not finish within the store's timeout raises StoreUnavailable,
      as does one that fails for the database's own reasons (disk full, I/O error); a failed write is rolled back.
    - Outbox: a write given ``announce`` stores the announcements it returns in the same transaction as the row,
      so an event is never recorded without its row nor a row without its event. Entries stay pending until
      ``outbox_sent``; ``outbox_pending`` returns an owner's entries in the order they were recorded.
    - Idempotency: ``answer_claim`` atomically claims a key for a request; answers older than ``ttl`` seconds count
      as absent and are purged.
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create_sitting(
        self,
        id: str,
        title: str,
        chamber: str,
        scheduled_at: str | None = None,
        *,
        announce: Announce[Sitting] | None = None,
    ) -> Sitting: ...

    async def get_sitting(self, id: str) -> Sitting | None: ...

    async def list_sittings(self, limit: int = 100, offset: int = 0) -> list[Sitting]:
        """Newest first (by created_at)."""
        ...

    async def set_sitting_status(self, id: str, status: str, *, announce: Announce[Sitting] | None = None) -> Sitting:
        """started_at is set the first time a sitting goes live; ended_at when it is adjourned."""
        ...

    async def add_agenda_item(
        self,
        sitting_id: str,
        title: str,
        bill_id: str | None = None,
        order: int | None = None,
        media_ms: int | None = None,
        *,
        announce: Announce[AgendaItem] | None = None,
    ) -> AgendaItem:
        """order=None takes the next number after the sitting's highest."""
        ...

    async def agenda(self, sitting_id: str) -> list[AgendaItem]: ...

    async def current_agenda_item(self, sitting_id: str) -> AgendaItem | None:
        """The most recently added agenda item."""
        ...

    async def add_speaker(
        self,
        sitting_id: str,
        name: str,
        role: str | None = None,
        media_ms: int | None = None,
        *,
        announce: Announce[Speaker] | None = None,
    ) -> Speaker: ...

    async def current_speaker(self, sitting_id: str) -> Speaker | None: ...

    async def add_segment(
        self,
        sitting_id: str,
        start_ms: int,
        end_ms: int,
        text: str,
        agenda_item_id: int | None = None,
        speaker_id: int | None = None,
        utterance_id: str | None = None,
        *,
        announce: Announce[Segment] | None = None,
    ) -> Segment:
        """Revision 1, seq None, wall_time now. ``utterance_id`` groups the final pieces of one utterance."""
        ...

    async def set_segment_seq(self, segment_id: int, seq: int) -> None: ...

    async def segments(
        self, sitting_id: str, after: tuple[int, int] | None = None, limit: int = 10000
    ) -> list[Segment]:
        """Segments in media order (start_ms, then id); with ``after``, only those after that (start_ms, id): the
        last one of the previous page."""
        ...

    async def segments_version(self, sitting_id: str) -> tuple[int, ...]:
        """A cheap value that changes whenever the sitting's segments do (added, revised, given a seq)."""
        ...

    async def add_vote(
        self,
        sitting_id: str,
        motion: str,
        yes: int,
        no: int,
        abstain: int,
        absent: int,
        result: str,
        bill_id: str | None = None,
        agenda_item_id: int | None = None,
        *,
        announce: Announce[Vote] | None = None,
    ) -> Vote: ...

    # -- permalinks, corrections, review (docs/api.md "Segments") --------------------------------------------------

    async def search(
        self, q: str, filters: SearchFilters | None = None, cursor: str | None = None, limit: int = 20
    ) -> SearchPage:
        """One page of segments (latest revision) matching ``q``, best first: relevance, then recency.

        Matching, snippets and cursors are archive/search.py's; a store only finds candidates and verifies them
        with it. A segment is searchable as soon as the write that recorded or revised it returns (the index is
        written in that write's transaction). Only reads. ``QueryError`` (a ValueError whose ``field`` names
        ``q``, ``cursor`` or ``limit``) for input the search cannot run; ``limit`` is 1 to 100.
        """
        ...

    # -- documents: constitutions and Acts by section (archive/documents.py, docs/api.md "Documents") -----------

    async def document_digests(self) -> dict[str, str]:
        """Each stored document's digest, by slug (what `documents.load` compares to skip unchanged ones)."""
        ...

    async def put_document(self, doc: Document, digest: str, terms: Sequence[str]) -> None:
        """Replace the document ``doc.slug`` (row, sections, index) with ``doc`` in one write; ``terms[i]`` is
        ``subject_terms`` of ``doc.sections[i]``. Searchable when it returns."""
        ...

    async def list_documents(self) -> list[tuple[Document, int]]:
        """Every document (without sections) and its number of sections: constitutions, then Acts, newest first."""
        ...

    async def get_document(self, slug: str) -> tuple[Document, list[Section]] | None:
        """The document and its table of contents (its sections in order, text left empty); None if unknown."""
        ...

    async def get_section(self, slug: str, key: str) -> SectionView | None:
        """One section with its document and its neighbours' keys; None if either is unknown."""
        ...

    async def section_candidates(self, kind: str = "constitution") -> list[Candidate]:
        """Every section of the documents of ``kind`` with its subject terms, for ``documents.compare``."""
        ...

    async def search_documents(
        self, q: str, filters: DocumentFilters | None = None, cursor: str | None = None, limit: int = 20
    ) -> DocumentPage:
        """One page of sections matching ``q`` (archive/search.py's language), best first: relevance, then the
        newer document, then document order. Only reads; ``QueryError`` naming the field for bad input."""
        ...

    async def get_segment(self, segment_id: int) -> Segment | None:
        """The segment at its latest revision."""
        ...

    async def segment_neighbours(
        self, segment: Segment, before: int, after: int
    ) -> tuple[list[Segment], list[Segment]]:
        """Up to ``before`` segments of its sitting just before it and ``after`` just after it, in (start_ms, id)
        order, both lists in media order."""
        ...

    async def revise_segment(
        self, segment_id: int, text: str, author: str, *, announce: Announce[Segment] | None = None
    ) -> Segment:
        """Make ``text`` the segment's next revision and return the segment at it; the earlier texts stay (revision
        1 is the machine draft). The segment keeps its id, times, seq and links. NotFound for an unknown segment."""
        ...

    async def segment_revisions(self, segment_id: int) -> list[SegmentRevision]:
        """Every revision of the segment, oldest first (just the draft when never corrected); [] when unknown."""
        ...

    async def set_sitting_reviewed(self, id: str, reviewed: bool) -> Sitting:
        """Mark the transcript reviewed (reviewed_at = now) or back to a machine draft (None); NotFound if unknown."""
        ...

    async def speakers(self, sitting_id: str) -> list[Speaker]:
        """Every speaker of the sitting, in the order they took the floor."""
        ...

    async def set_vote_seq(self, vote_id: int, seq: int) -> None: ...

    async def votes(self, sitting_id: str) -> list[Vote]: ...

    async def upsert_bill(
        self, id: str, title: str, status: str | None = None, *, announce: Announce[Bill] | None = None
    ) -> Bill: ...

    async def get_bill(self, id: str) -> Bill | None: ...

    async def list_bills(self, limit: int = 10000) -> list[Bill]:
        """Bills by id."""
        ...

    async def link_bills(self, segment_id: int, bill_ids: Sequence[str]) -> None:
        """Make ``bill_ids`` the bills the segment's text mentions (replacing earlier links); NotFound if unknown."""
        ...

    async def segment_bills(self, segment_id: int) -> list[str]:
        """The bills the segment mentions, by id."""
        ...

    async def bill_record(self, bill_id: str, limit: int = 100, offset: int = 0) -> BillRecord | None:
        """The bill with its sittings, agenda items, votes and mentioning segments (``limit``/``offset`` page the
        segments), each newest first; None for an unknown bill."""
        ...

    # -- bills: details, stages, the Senate clock (archive/bills_sqlite.py, bills_postgres.py) -------------------

    async def save_bill(self, bill: Bill, first: StageChange | None, *, announce: Announce[Bill] | None = None) -> Bill:
        """Create the bill with its details (``updated_at`` is set here) and, when given, the history's first entry
        (the stage it was entered at; its ``id`` and ``recorded_at`` are set here). A bill only named by an agenda
        item so far (no type) is filled in; Conflict when one with details already exists."""
        ...

    async def update_bill(
        self, bill_id: str, changes: dict[str, object], *, announce: Announce[Bill] | None = None
    ) -> Bill:
        """Set the given detail fields (title, short_name, type, proposer, topics, agencies); NotFound if unknown."""
        ...

    async def change_stage(
        self,
        bill_id: str,
        check: Callable[[Bill], None],
        change: StageChange,
        *,
        announce: Announce[tuple[Bill, StageChange]] | None = None,
    ) -> tuple[Bill, StageChange]:
        """Move the bill to ``change.stage``, atomically: ``check(bill)`` (the current row) runs inside the write
        and may raise to refuse it (nothing is written); then the history entry is appended (``from_stage``, ``id``
        and ``recorded_at`` are set here; a sitting missing from the links is taken from the agenda item or vote)
        and the bill's stage set. NotFound for an unknown bill; UnknownReference for a link to nothing."""
        ...

    async def bill_stages(self, bill_id: str) -> list[StageChange]:
        """The bill's stage history, oldest first."""
        ...

    async def find_bills(self, filters: BillFilters, limit: int = 50, offset: int = 0) -> tuple[list[Bill], int]:
        """One page of the bills matching ``filters``, most recently changed first, and how many match in all."""
        ...

    async def bill_clock_inputs(self, bill_id: str) -> BillClockInputs:
        """The extension and court pauses recorded for the bill (empty when none or unknown)."""
        ...

    async def set_bill_clock_inputs(
        self, bill_id: str, inputs: BillClockInputs, *, announce: Announce[BillClockInputs] | None = None
    ) -> BillClockInputs:
        """Replace the bill's extension and court pauses; NotFound if unknown."""
        ...

    async def add_session(self, start: str, end: str, kind: str, title: str | None) -> SessionPeriodRecord:
        """Record a session period; Conflict when it overlaps one already recorded, ValueError if end < start."""
        ...

    async def sessions(self) -> list[SessionPeriodRecord]:
        """Every session period, in date order."""
        ...

    async def claim_clock_event(
        self, bill_id: str, kind: str, due: str, *, announce: Announce[bool] | None = None
    ) -> bool:
        """Record that the clock event (bill, kind, due date) has been announced, with its announcements, once:
        True the first time; False (and nothing written or announced) for every later call, from any process."""
        ...

    # -- outbox ---------------------------------------------------------------------------------------------------

    async def outbox_pending(self, owner: str, limit: int = 100) -> list[OutboxEntry]:
        """``owner``'s unsent entries, oldest first."""
        ...

    async def outbox_sent(self, entry_id: int, seq: int) -> None:
        """Remove a published entry and write ``seq`` to its target row, atomically (a no-op if already removed)."""
        ...

    async def outbox_adopt(self, owner: str, older_than_s: float) -> int:
        """Make ``owner`` the owner of other owners' entries older than ``older_than_s`` (a process that died or
        stayed cut off from the broker); returns how many."""
        ...

    # -- idempotency ----------------------------------------------------------------------------------------------

    async def answer_claim(self, key: str, fingerprint: str, ttl: float, claim_ttl: float) -> StoredAnswer | None:
        """Claim ``key`` for a new request (None), or return what is stored under it: a finished answer, or one
        still in flight (status None). Answers older than ``ttl`` and claims left unanswered for ``claim_ttl`` (a
        process that died mid-request) are purged on the way."""
        ...

    async def answer_store(self, key: str, status: int, body: str) -> None:
        """Record the answer to a claimed key."""
        ...

    async def answer_release(self, key: str) -> None:
        """Drop a claim whose request recorded nothing, so a retry runs again."""
        ...
