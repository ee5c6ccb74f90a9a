"""The Senate's statutory clock (sec. 136 of the 2017 Constitution): how many days in session a bill has had, and
when the Senate is deemed to have approved it.

Sans-I/O: dates in, a ``ClockReading`` out; no database, no wall clock (the caller passes ``today``).

The text (sec. 136 para. 1-2): the Senate must finish a bill the House sends it within sixty days, thirty for a money
bill, unless it resolves to extend the time "as a special case, by no more than thirty days"; "the days are days in
session (วันในสมัยประชุม), counted from the day the bill reaches the Senate"; "the time before the Constitutional
Court under sec. 139 is not counted". Para. 3 and sec. 137 last para.: a Senate that has not finished in time is
deemed to have approved the bill, which goes on under sec. 81.

How this module reads it — every choice is one place below and is what the tests pin:

* **Days in session** are calendar days inside a session period (ordinary or extraordinary, sec. 121-122), from its
  opening day to its closing day inclusive, whether or not the Senate sits that day: weekends and holidays inside a
  session count, days between sessions do not. The operator enters the periods as the royal decrees set them.
* **The arrival day is day 1** when it is a day in session: the section says counting *starts from* the day the bill
  reaches the Senate ("ให้เริ่มนับแต่วันที่…มาถึงวุฒิสภา"), which displaces the civil-law default of not counting the
  first day. ``count_arrival_day=False`` gives the other reading (day 1 is the next day in session) for a
  secretariat that counts that way.
* **A bill that arrives between sessions** waits: day 1 is the first day of the next session.
* **Constitutional Court time** (sec. 139 referrals, entered as pauses): every day from the day the matter goes to
  the Court to the day of its decision, both inclusive, is not counted. Counting the ends would shorten the Senate's
  time for days on which the bill was before the Court for part of the day; the reading that never deems approval
  early is the safer one. A pause with no end yet stops the clock: the deadline is then unknown.
* **The extension** is one Senate resolution of 1 to 30 more days, and must be passed by the last day of the
  original time: once that day has ended the bill is already deemed approved and there is nothing left to extend.
* **The last day** is the M-th counted day (M = 30 or 60, plus any extension). The Senate may still finish on it;
  the bill is **deemed approved** when it ends, i.e. at 00:00 of the next calendar day (``deemed_approved_on``).
  If the known sessions (or an open court pause) end before M days are counted, both dates are ``None``.
* **Days left** today = counted days from today (inclusive, when today counts) to the last day: 1 on the last day,
  0 once it has passed. "Day N of M" counts days up to and including today.
* **Events**: "7 days left" is due at 00:00 of the counted day on which 7 days are left (day M-6); "deadline passed"
  at 00:00 of ``deemed_approved_on``. Days begin in Thai time (UTC+7; Thailand keeps no summer time).

Not covered: the annual, supplementary and transfer budget bills have their own rule (sec. 143: twenty days from
arrival, no amendment), and organic bills and constitutional amendments are decided in a joint sitting (sec. 132,
256) with no Senate clock; ``senate_clock`` refuses those types.

How it is meant to be wired (issue 9): the archive keeps the session calendar (operator API for ``SessionPeriod``
rows), each bill's arrival date at the Senate (the date of its change into ``senate_first_reading``), its extension
and its court pauses; the bill page and ``/api/bills/{id}`` call ``senate_clock(..., today=<Thai date now>)`` and show
``day``/``limit``/``deemed_approved_on``; a scheduler asks each bill at the Senate for ``events()`` and enqueues an
alert for each one due and not yet sent (keyed by bill, event kind and due time, so a recomputed deadline — a new
pause, an extension — gives a new key and never a duplicate of the old one).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from enum import StrEnum

from archive.bill_stages import BillType

THAI_TIME = timezone(timedelta(hours=7), "ICT")
LIMIT_DAYS = 60  # sec. 136 para. 1
MONEY_LIMIT_DAYS = 30  # sec. 136 para. 1, money bills (sec. 134)
MAX_EXTENSION_DAYS = 30  # sec. 136 para. 1: "ต้องไม่เกินสามสิบวัน"
WARN_DAYS_LEFT = 7


class ClockError(ValueError):
    """Input the clock cannot use (overlapping sessions, an extension too long or too late…); ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class SessionPeriod:
    """One session of Parliament, opening and closing days inclusive (sec. 121-122: set by royal decree)."""

    start: date
    end: date


@dataclass(frozen=True)
class CourtPause:
    """The bill before the Constitutional Court under sec. 139: ``start`` to ``end`` inclusive, ``end`` None while
    the Court has not decided."""

    start: date
    end: date | None = None

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


@dataclass(frozen=True)
class Extension:
    """The Senate's one resolution extending the time (sec. 136 para. 1): ``days`` more, passed on ``resolved_on``."""

    days: int
    resolved_on: date


class ClockState(StrEnum):
    NOT_ARRIVED = "not_arrived"  # today is before the arrival date
    OUT_OF_SESSION = "out_of_session"  # today is not a day in session: the clock waits
    PAUSED = "paused"  # today the bill is before the Constitutional Court
    RUNNING = "running"  # today counts
    EXPIRED = "expired"  # the last day has passed: deemed approved


class ClockEvent(StrEnum):
    SEVEN_DAYS_LEFT = "seven_days_left"
    DEADLINE_PASSED = "deadline_passed"


@dataclass(frozen=True)
class DueEvent:
    kind: ClockEvent
    at: datetime  # aware, Thai time

    @property
    def key(self) -> str:
        """Identifies this event for de-duplication: a moved deadline makes a new key."""
        return f"{self.kind}:{self.at.date().isoformat()}"


@dataclass(frozen=True)
class ClockReading:
    """The clock on ``today``: day ``day`` of ``limit`` in session, ``days_left``, and when it ends."""

    today: date
    arrived_on: date
    state: ClockState
    limit: int  # M: 30 or 60, plus the extension
    extension_days: int
    day: int  # N: counted days up to and including today, at most ``limit``
    days_left: int  # counted days from today (inclusive) to the last day; 0 once passed
    last_day: date | None  # the M-th counted day; None when the calendar does not reach it yet
    deemed_approved_on: date | None  # the day after ``last_day``
    seven_days_left_on: date | None  # the counted day on which 7 days are left (day M-6)

    def events(self) -> list[DueEvent]:
        """The moments the "7 days left" and "deadline passed" alerts are due (some may be in the past)."""
        out: list[DueEvent] = []
        if self.seven_days_left_on is not None:
            out.append(DueEvent(ClockEvent.SEVEN_DAYS_LEFT, start_of(self.seven_days_left_on)))
        if self.deemed_approved_on is not None:
            out.append(DueEvent(ClockEvent.DEADLINE_PASSED, start_of(self.deemed_approved_on)))
        return out

    def as_dict(self) -> dict[str, object]:
        """The JSON shape of the clock in ``/api/bills/{id}``."""

        def iso(d: date | None) -> str | None:
            return d.isoformat() if d is not None else None

        return {
            "state": str(self.state),
            "arrived_on": self.arrived_on.isoformat(),
            "today": self.today.isoformat(),
            "day": self.day,
            "limit": self.limit,
            "extension_days": self.extension_days,
            "days_left": self.days_left,
            "last_day": iso(self.last_day),
            "deemed_approved_on": iso(self.deemed_approved_on),
            "events": [{"kind": str(e.kind), "at": e.at.isoformat()} for e in self.events()],
        }


def start_of(day: date) -> datetime:
    """00:00 of ``day`` in Thai time."""
    return datetime.combine(day, time(0), THAI_TIME)


def thai_today(now: datetime) -> date:
    """The date in Thailand at the aware instant ``now``."""
    return now.astimezone(THAI_TIME).date()


def base_limit(bill_type: BillType) -> int:
    """Sec. 136 para. 1: 30 days in session for a money bill, 60 for any other bill the House sends."""
    if bill_type is BillType.MONEY:
        return MONEY_LIMIT_DAYS
    if bill_type is BillType.ORDINARY:
        return LIMIT_DAYS
    raise ClockError("type", f"a {bill_type} bill is decided in a joint sitting; the sec. 136 clock does not apply")


def check_sessions(sessions: Sequence[SessionPeriod]) -> list[SessionPeriod]:
    """``sessions`` sorted, or ``ClockError`` when one ends before it starts or two overlap."""
    ordered = sorted(sessions, key=lambda s: s.start)
    for s in ordered:
        if s.end < s.start:
            raise ClockError("sessions", f"the session starting {s.start} ends before it starts ({s.end})")
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.start <= a.end:
            raise ClockError("sessions", f"the sessions starting {a.start} and {b.start} overlap")
    return ordered


def counted_days(
    arrived_on: date,
    sessions: Sequence[SessionPeriod],
    pauses: Sequence[CourtPause] = (),
    *,
    count_arrival_day: bool = True,
) -> Iterator[date]:
    """Every day that counts towards the sec. 136 limit, in order, from the arrival on.

    Stops at the end of the last known session, or at the start of a court pause that has no end yet.
    """
    first = arrived_on if count_arrival_day else arrived_on + timedelta(days=1)
    for period in check_sessions(sessions):
        day = max(period.start, first)
        while day <= period.end:
            pause = next((p for p in pauses if p.covers(day)), None)
            if pause is not None:
                if pause.end is None:
                    return
                day = pause.end + timedelta(days=1)
                continue
            yield day
            day += timedelta(days=1)


def _nth(days: Iterator[date], n: int) -> date | None:
    """The n-th (1-based) item of ``days``, or None when there are fewer."""
    for i, day in enumerate(days, start=1):
        if i == n:
            return day
    return None


def senate_clock(
    *,
    arrived_on: date,
    bill_type: BillType,
    sessions: Sequence[SessionPeriod],
    today: date,
    extension: Extension | None = None,
    pauses: Sequence[CourtPause] = (),
    count_arrival_day: bool = True,
) -> ClockReading:
    """Read the sec. 136 clock of a bill that reached the Senate on ``arrived_on`` (see the module docstring)."""
    base = base_limit(bill_type)
    for p in pauses:
        if p.end is not None and p.end < p.start:
            raise ClockError("pauses", f"the court pause starting {p.start} ends before it starts ({p.end})")

    def days() -> Iterator[date]:
        return counted_days(arrived_on, sessions, pauses, count_arrival_day=count_arrival_day)

    extra = 0
    if extension is not None:
        if not 1 <= extension.days <= MAX_EXTENSION_DAYS:
            raise ClockError(
                "extension", f"the Senate may extend by 1 to {MAX_EXTENSION_DAYS} days, not {extension.days}"
            )
        if extension.resolved_on < arrived_on:
            raise ClockError(
                "extension", f"resolved on {extension.resolved_on}, before the bill arrived ({arrived_on})"
            )
        original_last = _nth(days(), base)
        if original_last is not None and extension.resolved_on > original_last:
            raise ClockError(
                "extension",
                f"resolved on {extension.resolved_on}, after the last day ({original_last}): the bill was already "
                "deemed approved",
            )
        extra = extension.days
    limit = base + extra

    last_day: date | None = None
    seven_on: date | None = None
    before_today = 0  # counted days strictly before today
    today_counts = False
    for i, day in enumerate(days(), start=1):
        if day < today:
            before_today = i
        elif day == today:
            today_counts = True
        if i == limit - WARN_DAYS_LEFT + 1:
            seven_on = day
        if i == limit:
            last_day = day
            break

    n = min(limit, before_today + (1 if today_counts else 0))
    days_left = max(0, limit - before_today)
    if today < arrived_on:
        state = ClockState.NOT_ARRIVED
        n, days_left = 0, limit
    elif last_day is not None and today > last_day:
        state, days_left = ClockState.EXPIRED, 0
    elif today_counts:
        state = ClockState.RUNNING
    elif any(p.covers(today) for p in pauses):
        state = ClockState.PAUSED
    else:
        state = ClockState.OUT_OF_SESSION

    return ClockReading(
        today=today,
        arrived_on=arrived_on,
        state=state,
        limit=limit,
        extension_days=extra,
        day=n,
        days_left=days_left,
        last_day=last_day,
        deemed_approved_on=last_day + timedelta(days=1) if last_day is not None else None,
        seven_days_left_on=seven_on,
    )
