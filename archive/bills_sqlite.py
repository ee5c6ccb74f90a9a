"""The bill writes and reads of :class:`archive.store_sqlite.SqliteStore`, as functions of one connection.

Each write function runs inside the store's single writer transaction (``BEGIN IMMEDIATE``), so a stage change's
check of the current stage, its history row and the bill's new stage are one atomic step however many requests
race; reads run on a reader connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace

from archive.bills_rows import (
    bill_conditions,
    bill_from,
    bill_values,
    clock_inputs_from,
    detail_values,
    linked_sitting,
    pauses_json,
    session_from,
    stage_change_from,
    stage_links,
    stage_values,
)
from archive.models import Bill, BillClockInputs, BillFilters, SessionPeriodRecord, StageChange, utc_now
from archive.store import Conflict, NotFound, UnknownReference


def _bill_row(conn: sqlite3.Connection, bill_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM bills WHERE id = ?", (bill_id,)).fetchone()
    if row is None:
        raise NotFound(f"bill {bill_id}")
    return row


def _insert_change(conn: sqlite3.Connection, change: StageChange) -> StageChange:
    """Append ``change`` to the history, checking and completing its links; returns it as stored."""
    sitting_id = change.sitting_id
    for field, table, value in stage_links(change):
        row = conn.execute(f"SELECT sitting_id FROM {table} WHERE id = ?", (value,)).fetchone()
        sitting_id = linked_sitting(field, table, value, row, sitting_id)
    if sitting_id is not None and conn.execute("SELECT 1 FROM sittings WHERE id = ?", (sitting_id,)).fetchone() is None:
        raise UnknownReference("sitting_id", f"no sitting {sitting_id}")
    row = conn.execute(
        "INSERT INTO bill_stages (bill_id, from_stage, stage, on_date, recorded_at, sitting_id, agenda_item_id,"
        " vote_id, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
        stage_values(change, sitting_id),
    ).fetchone()
    return stage_change_from(row)


def save_bill(conn: sqlite3.Connection, bill: Bill, first: StageChange | None) -> Bill:
    existing = conn.execute("SELECT type FROM bills WHERE id = ?", (bill.id,)).fetchone()
    if existing is not None and existing["type"] is not None:
        raise Conflict(f"bill {bill.id} already exists")
    values = bill_values(bill)
    columns = ", ".join(values)
    row = conn.execute(
        f"INSERT INTO bills ({columns}) VALUES ({', '.join(':' + c for c in values)})"
        f" ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in values if c != 'id')}"
        " RETURNING *",
        values,
    ).fetchone()
    if first is not None:
        _insert_change(conn, replace(first, bill_id=bill.id, from_stage=None))
    return bill_from(row)


def update_bill(conn: sqlite3.Connection, bill_id: str, changes: dict[str, object]) -> Bill:
    _bill_row(conn, bill_id)
    values = detail_values(changes)
    sets = ", ".join(f"{c} = :{c}" for c in values)
    return bill_from(
        conn.execute(f"UPDATE bills SET {sets} WHERE id = :id RETURNING *", {**values, "id": bill_id}).fetchone()
    )


def change_stage(
    conn: sqlite3.Connection, bill_id: str, check: Callable[[Bill], None], change: StageChange
) -> tuple[Bill, StageChange]:
    current = bill_from(_bill_row(conn, bill_id))
    check(current)
    stored = _insert_change(conn, replace(change, bill_id=bill_id, from_stage=current.stage))
    row = conn.execute(
        "UPDATE bills SET stage = ?, updated_at = ? WHERE id = ? RETURNING *", (change.stage, utc_now(), bill_id)
    ).fetchone()
    return bill_from(row), stored


def bill_stages(conn: sqlite3.Connection, bill_id: str) -> list[StageChange]:
    rows = conn.execute("SELECT * FROM bill_stages WHERE bill_id = ? ORDER BY id", (bill_id,)).fetchall()
    return [stage_change_from(r) for r in rows]


def find_bills(conn: sqlite3.Connection, filters: BillFilters, limit: int, offset: int) -> tuple[list[Bill], int]:
    where, params = bill_conditions(
        filters,
        mark=":{name}",
        holds="EXISTS (SELECT 1 FROM json_each(bills.{column}) WHERE json_each.value = {value})",
        finds="instr(lower({column}), lower({value}))",
    )
    params |= {"limit": limit, "offset": offset}
    clause = " AND ".join(["1 = 1", *where])
    # One read transaction, so the page and the total agree.
    conn.execute("BEGIN")
    try:
        total = conn.execute(f"SELECT COUNT(*) FROM bills WHERE {clause}", params).fetchone()[0]
        rows = conn.execute(
            f"SELECT * FROM bills WHERE {clause} ORDER BY updated_at DESC, id LIMIT :limit OFFSET :offset", params
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    return [bill_from(r) for r in rows], int(total)


def clock_inputs(conn: sqlite3.Connection, bill_id: str) -> BillClockInputs:
    row = conn.execute(
        "SELECT extension_days, extension_resolved_on, court_pauses FROM bills WHERE id = ?", (bill_id,)
    ).fetchone()
    return BillClockInputs() if row is None else clock_inputs_from(row)


def set_clock_inputs(conn: sqlite3.Connection, bill_id: str, inputs: BillClockInputs) -> BillClockInputs:
    _bill_row(conn, bill_id)
    row = conn.execute(
        "UPDATE bills SET extension_days = ?, extension_resolved_on = ?, court_pauses = ?, updated_at = ?"
        " WHERE id = ? RETURNING extension_days, extension_resolved_on, court_pauses",
        (inputs.extension_days, inputs.extension_resolved_on, pauses_json(inputs), utc_now(), bill_id),
    ).fetchone()
    return clock_inputs_from(row)


def add_session(conn: sqlite3.Connection, start: str, end: str, kind: str, title: str | None) -> SessionPeriodRecord:
    if end < start:
        raise ValueError(f"end: the session ends ({end}) before it starts ({start})")
    clash = conn.execute(
        "SELECT start_date, end_date FROM session_periods WHERE start_date <= ? AND end_date >= ?", (end, start)
    ).fetchone()
    if clash is not None:
        raise Conflict(f"the session overlaps the one from {clash['start_date']} to {clash['end_date']}")
    row = conn.execute(
        "INSERT INTO session_periods (start_date, end_date, kind, title, created_at) VALUES (?, ?, ?, ?, ?)"
        " RETURNING *",
        (start, end, kind, title, utc_now()),
    ).fetchone()
    return session_from(row)


def sessions(conn: sqlite3.Connection) -> list[SessionPeriodRecord]:
    return [session_from(r) for r in conn.execute("SELECT * FROM session_periods ORDER BY start_date").fetchall()]


def claim_clock_event(conn: sqlite3.Connection, bill_id: str, kind: str, due: str) -> bool:
    cur = conn.execute(
        "INSERT INTO bill_clock_events (bill_id, kind, due, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (bill_id, kind, due) DO NOTHING",
        (bill_id, kind, due, utc_now()),
    )
    return cur.rowcount == 1
