"""The bill writes and reads of :class:`archive.store_postgres.PostgresStore`, as functions of one connection.

Write functions run inside the store's write transaction, under its ``WRITE_LOCK``: a stage change's check of the
current stage, its history row and the bill's new stage are one atomic step across every process. Mirrors
archive/bills_sqlite.py statement for statement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow

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

Conn = AsyncConnection[DictRow]


async def _one(conn: Conn, query: Any, params: Any) -> DictRow | None:
    cur = await conn.execute(query, params)
    return await cur.fetchone()


async def _bill_row(conn: Conn, bill_id: str) -> DictRow:
    row = await _one(conn, "SELECT * FROM bills WHERE id = %s", (bill_id,))
    if row is None:
        raise NotFound(f"bill {bill_id}")
    return row


async def _insert_change(conn: Conn, change: StageChange) -> StageChange:
    sitting_id = change.sitting_id
    for field, table, value in stage_links(change):
        row = await _one(
            conn, sql.SQL("SELECT sitting_id FROM {} WHERE id = %s").format(sql.Identifier(table)), (value,)
        )
        sitting_id = linked_sitting(field, table, value, row, sitting_id)
    if (
        sitting_id is not None
        and await _one(conn, "SELECT 1 AS found FROM sittings WHERE id = %s", (sitting_id,)) is None
    ):
        raise UnknownReference("sitting_id", f"no sitting {sitting_id}")
    row = await _one(
        conn,
        "INSERT INTO bill_stages (bill_id, from_stage, stage, on_date, recorded_at, sitting_id, agenda_item_id,"
        " vote_id, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
        stage_values(change, sitting_id),
    )
    assert row is not None
    return stage_change_from(row)


async def save_bill(conn: Conn, bill: Bill, first: StageChange | None) -> Bill:
    existing = await _one(conn, "SELECT type FROM bills WHERE id = %s", (bill.id,))
    if existing is not None and existing["type"] is not None:
        raise Conflict(f"bill {bill.id} already exists")
    values = bill_values(bill)
    query = sql.SQL("INSERT INTO bills ({}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {} RETURNING *").format(
        sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.Placeholder(c) for c in values),
        sql.SQL(", ").join(
            sql.SQL("{} = excluded.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in values if c != "id"
        ),
    )
    row = await _one(conn, query, values)
    assert row is not None
    if first is not None:
        await _insert_change(conn, replace(first, bill_id=bill.id, from_stage=None))
    return bill_from(row)


async def update_bill(conn: Conn, bill_id: str, changes: dict[str, object]) -> Bill:
    await _bill_row(conn, bill_id)
    values = detail_values(changes)
    query = sql.SQL("UPDATE bills SET {} WHERE id = {} RETURNING *").format(
        sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in values),
        sql.Placeholder("bill_id"),
    )
    row = await _one(conn, query, {**values, "bill_id": bill_id})
    assert row is not None
    return bill_from(row)


async def change_stage(
    conn: Conn, bill_id: str, check: Callable[[Bill], None], change: StageChange
) -> tuple[Bill, StageChange]:
    current = bill_from(await _bill_row(conn, bill_id))
    check(current)
    stored = await _insert_change(conn, replace(change, bill_id=bill_id, from_stage=current.stage))
    row = await _one(
        conn,
        "UPDATE bills SET stage = %s, updated_at = %s WHERE id = %s RETURNING *",
        (change.stage, utc_now(), bill_id),
    )
    assert row is not None
    return bill_from(row), stored


async def bill_stages(conn: Conn, bill_id: str) -> list[StageChange]:
    cur = await conn.execute("SELECT * FROM bill_stages WHERE bill_id = %s ORDER BY id", (bill_id,))
    return [stage_change_from(r) for r in await cur.fetchall()]


async def find_bills(conn: Conn, filters: BillFilters, limit: int, offset: int) -> tuple[list[Bill], int]:
    where, params = bill_conditions(
        filters,
        mark="%({name})s",
        holds="({column}::jsonb) ? {value}",
        finds="strpos(lower({column}), lower({value})) > 0",
    )
    params |= {"limit": limit, "offset": offset}
    clause = " AND ".join(["TRUE", *where])
    total = await _one(conn, f"SELECT COUNT(*) AS n FROM bills WHERE {clause}", params)
    cur = await conn.execute(
        f"SELECT * FROM bills WHERE {clause} ORDER BY updated_at DESC, id LIMIT %(limit)s OFFSET %(offset)s",
        params,
    )
    rows = await cur.fetchall()
    return [bill_from(r) for r in rows], int(total["n"]) if total is not None else 0


async def clock_inputs(conn: Conn, bill_id: str) -> BillClockInputs:
    row = await _one(
        conn, "SELECT extension_days, extension_resolved_on, court_pauses FROM bills WHERE id = %s", (bill_id,)
    )
    return BillClockInputs() if row is None else clock_inputs_from(row)


async def set_clock_inputs(conn: Conn, bill_id: str, inputs: BillClockInputs) -> BillClockInputs:
    await _bill_row(conn, bill_id)
    row = await _one(
        conn,
        "UPDATE bills SET extension_days = %s, extension_resolved_on = %s, court_pauses = %s, updated_at = %s"
        " WHERE id = %s RETURNING extension_days, extension_resolved_on, court_pauses",
        (inputs.extension_days, inputs.extension_resolved_on, pauses_json(inputs), utc_now(), bill_id),
    )
    assert row is not None
    return clock_inputs_from(row)


async def add_session(conn: Conn, start: str, end: str, kind: str, title: str | None) -> SessionPeriodRecord:
    if end < start:
        raise ValueError(f"end: the session ends ({end}) before it starts ({start})")
    clash = await _one(
        conn, "SELECT start_date, end_date FROM session_periods WHERE start_date <= %s AND end_date >= %s", (end, start)
    )
    if clash is not None:
        raise Conflict(f"the session overlaps the one from {clash['start_date']} to {clash['end_date']}")
    row = await _one(
        conn,
        "INSERT INTO session_periods (start_date, end_date, kind, title, created_at) VALUES (%s, %s, %s, %s, %s)"
        " RETURNING *",
        (start, end, kind, title, utc_now()),
    )
    assert row is not None
    return session_from(row)


async def sessions(conn: Conn) -> list[SessionPeriodRecord]:
    cur = await conn.execute("SELECT * FROM session_periods ORDER BY start_date")
    return [session_from(r) for r in await cur.fetchall()]


async def claim_clock_event(conn: Conn, bill_id: str, kind: str, due: str) -> bool:
    cur = await conn.execute(
        "INSERT INTO bill_clock_events (bill_id, kind, due, created_at) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (bill_id, kind, due) DO NOTHING",
        (bill_id, kind, due, utc_now()),
    )
    return cur.rowcount == 1
