"""Rows of the bill tables (migration 6) as archive records, the same for SQLite and PostgreSQL.

The two backends store a bill's topics, agencies and court pauses as JSON text in its row, and dates as
``YYYY-MM-DD`` text; this module is the one place that reads them back, so both stores answer alike.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from archive.models import Bill, BillClockInputs, SessionPeriodRecord, StageChange

# The columns ``update_bill`` may set, and how each is stored.
DETAIL_FIELDS = ("title", "short_name", "type", "proposer", "topics", "agencies")
LIST_FIELDS = frozenset({"topics", "agencies"})


class Row(Protocol):
    """A result row by column name: sqlite3.Row or psycopg's dict row."""

    def __getitem__(self, key: str, /) -> Any: ...


def bill_from(row: Row) -> Bill:
    return Bill(
        id=row["id"],
        title=row["title"],
        status=row["status"],
        updated_at=row["updated_at"],
        short_name=row["short_name"],
        type=row["type"],
        proposer=row["proposer"],
        stage=row["stage"],
        topics=tuple(json.loads(row["topics"])),
        agencies=tuple(json.loads(row["agencies"])),
    )


def stage_change_from(row: Row) -> StageChange:
    return StageChange(
        id=row["id"],
        bill_id=row["bill_id"],
        from_stage=row["from_stage"],
        stage=row["stage"],
        on=row["on_date"],
        recorded_at=row["recorded_at"],
        sitting_id=row["sitting_id"],
        agenda_item_id=row["agenda_item_id"],
        vote_id=row["vote_id"],
        note=row["note"],
    )


def session_from(row: Row) -> SessionPeriodRecord:
    return SessionPeriodRecord(
        id=row["id"],
        start=row["start_date"],
        end=row["end_date"],
        kind=row["kind"],
        title=row["title"],
        created_at=row["created_at"],
    )


def clock_inputs_from(row: Row) -> BillClockInputs:
    pauses = tuple((p[0], p[1]) for p in json.loads(row["court_pauses"]))
    return BillClockInputs(row["extension_days"], row["extension_resolved_on"], pauses)


def column_value(field: str, value: object) -> object:
    """A detail field's value as its column holds it."""
    if field in LIST_FIELDS:
        return json.dumps(list(value) if isinstance(value, list | tuple) else [], ensure_ascii=False)
    return value


def pauses_json(inputs: BillClockInputs) -> str:
    return json.dumps([list(p) for p in inputs.pauses])
