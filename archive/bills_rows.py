"""Rows of the bill tables (migration 6) as archive records, the same for SQLite and PostgreSQL.

The two backends store a bill's topics, agencies and court pauses as JSON text in its row, and dates as
``YYYY-MM-DD`` text; this module is the one place that reads them back, so both stores answer alike. It also
holds what the two write alike: the values of a bill's row and of a stage change, the check of a stage change's
links, and the conditions of a bill search (given each dialect's spelling), so the twins differ only in I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from archive.models import Bill, BillClockInputs, BillFilters, SessionPeriodRecord, StageChange, utc_now
from archive.store import UnknownReference

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


def bill_values(bill: Bill) -> dict[str, Any]:
    """The row ``save_bill`` writes for ``bill``, by column."""
    values: dict[str, Any] = {f: column_value(f, getattr(bill, f)) for f in DETAIL_FIELDS}
    return values | {"id": bill.id, "status": bill.status, "stage": bill.stage, "updated_at": utc_now()}


def detail_values(changes: Mapping[str, object]) -> dict[str, Any]:
    """The columns ``update_bill`` sets: the detail fields ``changes`` names, and the time."""
    values: dict[str, Any] = {f: column_value(f, changes[f]) for f in DETAIL_FIELDS if f in changes}
    return values | {"updated_at": utc_now()}


def stage_links(change: StageChange) -> list[tuple[str, str, int]]:
    """The rows a stage change links to, as (field, table, id): its agenda item and its vote, where given."""
    links = (("agenda_item_id", "agenda_items", change.agenda_item_id), ("vote_id", "votes", change.vote_id))
    return [(field, table, value) for field, table, value in links if value is not None]


def linked_sitting(field: str, table: str, value: int, row: Row | None, sitting_id: str | None) -> str | None:
    """The stage change's sitting once its link ``field`` is checked; ``row`` is the linked row (None: missing).

    A link must exist and belong to the change's sitting; a change that names no sitting takes its link's.
    """
    if row is None:
        raise UnknownReference(field, f"no {table.rstrip('s').replace('_', ' ')} {value}")
    if sitting_id is None:
        return row["sitting_id"]
    if row["sitting_id"] != sitting_id:
        raise UnknownReference(field, f"{value} belongs to sitting {row['sitting_id']}, not {sitting_id}")
    return sitting_id


def stage_values(change: StageChange, sitting_id: str | None) -> tuple[object, ...]:
    """A stage change's row: bill_id, from_stage, stage, on_date, recorded_at, sitting_id, agenda_item_id,
    vote_id, note."""
    return (
        change.bill_id,
        change.from_stage,
        change.stage,
        change.on,
        utc_now(),
        sitting_id,
        change.agenda_item_id,
        change.vote_id,
        change.note,
    )


def bill_conditions(filters: BillFilters, *, mark: str, holds: str, finds: str) -> tuple[list[str], dict[str, Any]]:
    """The WHERE conditions of a bill search and their named parameters, in the caller's SQL dialect.

    ``mark`` spells a named parameter (``{name}``); ``holds`` a JSON list column holding a value (``{column}``,
    ``{value}``); ``finds`` a text column holding a value, case-insensitively and as written (``{column}``,
    ``{value}``), never by LIKE, which would make ``%`` and ``_`` in the search wildcards.
    """
    where: list[str] = []
    params: dict[str, Any] = {}
    for field in ("stage", "type"):
        if getattr(filters, field) is not None:
            where.append(f"{field} = {mark.format(name=field)}")
            params[field] = getattr(filters, field)
    for field, column in (("topic", "topics"), ("agency", "agencies")):
        if getattr(filters, field) is not None:
            where.append(holds.format(column=column, value=mark.format(name=field)))
            params[field] = getattr(filters, field)
    if filters.q:
        q = mark.format(name="q")
        columns = ("id", "title", "COALESCE(short_name, '')")
        where.append("(" + " OR ".join(finds.format(column=c, value=q) for c in columns) + ")")
        params["q"] = filters.q
    return where, params
