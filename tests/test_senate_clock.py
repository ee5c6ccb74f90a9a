"""The sec. 136 Senate clock against calendars worked by hand (the working is in each test's comments).

The calendar: the first session of the year 2024 (B.E. 2567) runs 3 Jul – 30 Oct, the second 12 Dec 2024 –
10 Apr 2025. Day 1 is the arrival day when it is in session (see archive/senate_clock.py).
"""

from __future__ import annotations

from datetime import date, datetime
from functools import partial

import pytest

from archive.bill_stages import BillType
from archive.senate_clock import (
    THAI_TIME,
    ClockError,
    ClockEvent,
    ClockState,
    CourtPause,
    Extension,
    SessionPeriod,
    counted_days,
    senate_clock,
    thai_today,
)

pytestmark = pytest.mark.fast

FIRST = SessionPeriod(date(2024, 7, 3), date(2024, 10, 30))
SECOND = SessionPeriod(date(2024, 12, 12), date(2025, 4, 10))
SESSIONS = [SECOND, FIRST]  # out of order on purpose: the clock sorts them


def test_ordinary_bill_in_one_session():
    """An ordinary bill gets 60 days in session with the arrival day as day 1."""
    # Arrives Wed 10 Jul 2024. Jul 10..31 = 22 days (day 22 = 31 Jul); Aug 1..31 → day 53 = 31 Aug;
    # Sep 1..7 → day 60 = 7 Sep. Deemed approved when 7 Sep ends: 8 Sep.
    # On 20 Aug: counted before today = 22 (Jul) + 19 (Aug 1..19) = 41, so today is day 42 and
    # 60 - 41 = 19 days are left (Aug 20..31 = 12, Sep 1..7 = 7).
    r = senate_clock(
        arrived_on=date(2024, 7, 10), bill_type=BillType.ORDINARY, sessions=SESSIONS, today=date(2024, 8, 20)
    )
    assert (r.state, r.day, r.limit, r.days_left) == (ClockState.RUNNING, 42, 60, 19)
    assert r.last_day == date(2024, 9, 7)
    assert r.deemed_approved_on == date(2024, 9, 8)
    # 7 days left on day 54 (54..60 is seven days): 53 = 31 Aug, so 1 Sep.
    assert r.seven_days_left_on == date(2024, 9, 1)


def test_money_bill_gets_thirty_days():
    """A money bill gets 30 days; on its last day 1 day is left, the day after it is deemed approved."""
    # Arrives Thu 1 Aug 2024: day 30 = 30 Aug, deemed approved 31 Aug; 7 days left on day 24 = 24 Aug.
    clock = partial(senate_clock, arrived_on=date(2024, 8, 1), bill_type=BillType.MONEY, sessions=SESSIONS)
    last = clock(today=date(2024, 8, 30))
    assert (last.state, last.day, last.limit, last.days_left) == (ClockState.RUNNING, 30, 30, 1)
    assert last.last_day == date(2024, 8, 30)
    assert last.seven_days_left_on == date(2024, 8, 24)
    after = clock(today=date(2024, 8, 31))
    assert (after.state, after.day, after.days_left) == (ClockState.EXPIRED, 30, 0)
    assert after.deemed_approved_on == date(2024, 8, 31)


def test_events_are_due_at_thai_midnight():
    """The "7 days left" and "deadline passed" events are due at 00:00 Thai time of their days."""
    # Money bill of 1 Aug (above): 7 days left on 24 Aug, deemed approved on 31 Aug.
    r = senate_clock(arrived_on=date(2024, 8, 1), bill_type=BillType.MONEY, sessions=SESSIONS, today=date(2024, 8, 2))
    events = {e.kind: e.at for e in r.events()}
    assert events == {
        ClockEvent.SEVEN_DAYS_LEFT: datetime(2024, 8, 24, tzinfo=THAI_TIME),
        ClockEvent.DEADLINE_PASSED: datetime(2024, 8, 31, tzinfo=THAI_TIME),
    }
    assert events[ClockEvent.DEADLINE_PASSED].isoformat() == "2024-08-31T00:00:00+07:00"
    # 17:30 UTC on 30 Aug is already 00:30 on 31 Aug in Bangkok.
    assert thai_today(datetime.fromisoformat("2024-08-30T17:30:00+00:00")) == date(2024, 8, 31)


def test_extension_adds_its_days():
    """A Senate resolution extending by 30 days moves the last day 30 days in session later."""
    # Ordinary bill of 10 Jul: day 60 = 7 Sep (above). Extended on 5 Sep by 30: limit 90.
    # Sep 8..30 = 23 days → day 83 = 30 Sep; Oct 1..7 → day 90 = 7 Oct; deemed approved 8 Oct.
    # 7 days left on day 84 = 1 Oct.
    r = senate_clock(
        arrived_on=date(2024, 7, 10),
        bill_type=BillType.ORDINARY,
        sessions=SESSIONS,
        today=date(2024, 9, 10),
        extension=Extension(30, date(2024, 9, 5)),
    )
    assert (r.limit, r.extension_days) == (90, 30)
    assert r.last_day == date(2024, 10, 7)
    assert r.deemed_approved_on == date(2024, 10, 8)
    assert r.seven_days_left_on == date(2024, 10, 1)
    # 10 Sep: 60 (to 7 Sep) + 2 (8, 9 Sep) counted before; today is day 63, 90 - 62 = 28 left.
    assert (r.day, r.days_left) == (63, 28)


@pytest.mark.parametrize(
    ("extension", "message"),
    [
        (Extension(31, date(2024, 9, 5)), "1 to 30 days"),
        (Extension(0, date(2024, 9, 5)), "1 to 30 days"),
        # The original last day is 7 Sep; on 8 Sep the bill is already deemed approved.
        (Extension(10, date(2024, 9, 8)), "already deemed approved"),
        (Extension(10, date(2024, 7, 1)), "before the bill arrived"),
    ],
)
def test_extension_out_of_bounds_is_refused(extension: Extension, message: str):
    """An extension of more than 30 days, or passed after the original last day, is an error naming the field."""
    with pytest.raises(ClockError, match=message) as err:
        senate_clock(
            arrived_on=date(2024, 7, 10),
            bill_type=BillType.ORDINARY,
            sessions=SESSIONS,
            today=date(2024, 9, 1),
            extension=extension,
        )
    assert err.value.field == "extension"


def test_court_pause_does_not_count():
    """Days before the Constitutional Court (sec. 139), both ends included, do not count."""
    # Money bill of 1 Aug; before the Court 10..19 Aug (10 days). Counted 1..9 Aug = 9 days;
    # day 10 = 20 Aug; day 30 = 20 Aug + 20 = 9 Sep; deemed approved 10 Sep. 7 days left on day 24 = 3 Sep.
    clock = partial(
        senate_clock,
        arrived_on=date(2024, 8, 1),
        bill_type=BillType.MONEY,
        sessions=SESSIONS,
        pauses=[CourtPause(date(2024, 8, 10), date(2024, 8, 19))],
    )
    during = clock(today=date(2024, 8, 15))
    assert (during.state, during.day, during.days_left) == (ClockState.PAUSED, 9, 21)
    assert during.last_day == date(2024, 9, 9)
    assert during.deemed_approved_on == date(2024, 9, 10)
    assert during.seven_days_left_on == date(2024, 9, 3)
    resumed = clock(today=date(2024, 8, 20))
    assert (resumed.state, resumed.day, resumed.days_left) == (ClockState.RUNNING, 10, 21)


def test_open_court_pause_stops_the_clock():
    """While the Court has not decided, the deadline is unknown and no event is due."""
    # Money bill of 1 Aug; before the Court since 10 Aug: 9 days counted, 21 left, no last day.
    r = senate_clock(
        arrived_on=date(2024, 8, 1),
        bill_type=BillType.MONEY,
        sessions=SESSIONS,
        today=date(2024, 9, 30),
        pauses=[CourtPause(date(2024, 8, 10))],
    )
    assert (r.state, r.day, r.days_left) == (ClockState.PAUSED, 9, 21)
    assert r.last_day is None and r.deemed_approved_on is None
    assert r.events() == []


def test_session_break_is_skipped():
    """Days between two sessions do not count; the clock resumes on the next session's first day."""
    # Ordinary bill of 1 Oct 2024: Oct 1..30 = 30 days (the first session closes on 30 Oct).
    # Day 31 = 12 Dec (the second session opens); Dec 12..31 = 20 days → day 50 = 31 Dec; Jan 1..10 → day 60 =
    # 10 Jan 2025; deemed approved 11 Jan 2025. 7 days left on day 54 = 4 Jan 2025.
    clock = partial(senate_clock, arrived_on=date(2024, 10, 1), bill_type=BillType.ORDINARY, sessions=SESSIONS)
    gap = clock(today=date(2024, 11, 15))
    assert (gap.state, gap.day, gap.days_left) == (ClockState.OUT_OF_SESSION, 30, 30)
    assert gap.last_day == date(2025, 1, 10)
    assert gap.deemed_approved_on == date(2025, 1, 11)
    assert gap.seven_days_left_on == date(2025, 1, 4)


def test_bill_arriving_between_sessions_waits_for_the_next():
    """A bill that reaches the Senate between sessions starts counting on the next session's first day."""
    # Money bill of 15 Nov 2024 (no session): day 1 = 12 Dec; Dec 12..31 = 20 → day 30 = 10 Jan 2025.
    r = senate_clock(
        arrived_on=date(2024, 11, 15), bill_type=BillType.MONEY, sessions=SESSIONS, today=date(2024, 11, 20)
    )
    assert (r.state, r.day, r.days_left) == (ClockState.OUT_OF_SESSION, 0, 30)
    assert r.last_day == date(2025, 1, 10)
    assert next(counted_days(date(2024, 11, 15), SESSIONS)) == date(2024, 12, 12)


def test_arrival_day_can_be_left_out():
    """With count_arrival_day=False, day 1 is the next day in session."""
    # Money bill of 1 Aug: day 1 = 2 Aug, day 30 = 31 Aug, deemed approved 1 Sep.
    r = senate_clock(
        arrived_on=date(2024, 8, 1),
        bill_type=BillType.MONEY,
        sessions=SESSIONS,
        today=date(2024, 8, 1),
        count_arrival_day=False,
    )
    assert (r.last_day, r.deemed_approved_on, r.day, r.days_left) == (date(2024, 8, 31), date(2024, 9, 1), 0, 30)


def test_unknown_next_session_leaves_the_deadline_open():
    """When the known sessions end before the limit is reached, the last day is None, the count still shows."""
    # Ordinary bill of 1 Oct with only the first session known: 30 of 60 days counted by its close.
    r = senate_clock(
        arrived_on=date(2024, 10, 1), bill_type=BillType.ORDINARY, sessions=[FIRST], today=date(2024, 11, 1)
    )
    assert (r.day, r.days_left, r.last_day, r.deemed_approved_on) == (30, 30, None, None)
    assert r.as_dict()["deemed_approved_on"] is None


def test_before_arrival_nothing_has_counted():
    """Read before the arrival date, the clock is not running yet."""
    r = senate_clock(arrived_on=date(2024, 8, 1), bill_type=BillType.MONEY, sessions=SESSIONS, today=date(2024, 7, 20))
    assert (r.state, r.day, r.days_left) == (ClockState.NOT_ARRIVED, 0, 30)


def test_joint_sitting_bills_have_no_senate_clock():
    """Organic bills and constitutional amendments are refused: the clock does not apply to them."""
    for t in (BillType.ORGANIC, BillType.CONSTITUTIONAL_AMENDMENT):
        with pytest.raises(ClockError) as err:
            senate_clock(arrived_on=date(2024, 8, 1), bill_type=t, sessions=SESSIONS, today=date(2024, 8, 2))
        assert err.value.field == "type"


def test_overlapping_sessions_are_refused():
    """Two session periods that overlap are an error naming the sessions field."""
    bad = [FIRST, SessionPeriod(date(2024, 10, 30), date(2024, 11, 5))]
    with pytest.raises(ClockError, match="overlap") as err:
        senate_clock(arrived_on=date(2024, 8, 1), bill_type=BillType.MONEY, sessions=bad, today=date(2024, 8, 2))
    assert err.value.field == "sessions"
