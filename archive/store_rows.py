"""Rows of the sittings' tables to model objects, for both stores (SQLite and PostgreSQL select the same columns).

A row is anything indexed by column name (``bills_rows.Row``: ``sqlite3.Row`` or psycopg's dict row). The only
difference between the backends is the outbox's ``data``: SQLite keeps JSON text, PostgreSQL a ``jsonb`` the driver
has already decoded, so the caller passes it in.
"""

from __future__ import annotations

from typing import Any

from archive.bills_rows import Row
from archive.models import AgendaItem, OutboxEntry, Segment, Sitting, Speaker, Vote
from common.thai import normalize


def sitting_from(row: Row) -> Sitting:
    return Sitting(
        id=row["id"],
        title=row["title"],
        chamber=row["chamber"],
        status=row["status"],
        scheduled_at=row["scheduled_at"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        reviewed_at=row["reviewed_at"],
    )


def agenda_item_from(row: Row) -> AgendaItem:
    return AgendaItem(
        id=row["id"],
        sitting_id=row["sitting_id"],
        order=row["ord"],
        title=row["title"],
        bill_id=row["bill_id"],
        started_at=row["started_at"],
        media_ms=row["media_ms"],
    )


def speaker_from(row: Row) -> Speaker:
    return Speaker(
        id=row["id"],
        sitting_id=row["sitting_id"],
        name=row["name"],
        role=row["role"],
        started_at=row["started_at"],
        media_ms=row["media_ms"],
    )


def segment_from(row: Row) -> Segment:
    return Segment(
        id=row["id"],
        sitting_id=row["sitting_id"],
        seq=row["seq"],
        start_ms=row["start_ms"],
        end_ms=row["end_ms"],
        wall_time=row["wall_time"],
        text=row["text"],
        agenda_item_id=row["agenda_item_id"],
        speaker_id=row["speaker_id"],
        revision=row["revision"],
        utterance_id=row["utterance_id"],
    )


def vote_from(row: Row) -> Vote:
    return Vote(
        id=row["id"],
        sitting_id=row["sitting_id"],
        motion=row["motion"],
        yes=row["yes"],
        no=row["no"],
        abstain=row["abstain"],
        absent=row["absent"],
        result=row["result"],
        bill_id=row["bill_id"],
        agenda_item_id=row["agenda_item_id"],
        recorded_at=row["recorded_at"],
        seq=row["seq"],
    )


def outbox_entry_from(row: Row, data: dict[str, Any]) -> OutboxEntry:
    target = (row["target_kind"], row["target_id"]) if row["target_kind"] is not None else None
    return OutboxEntry(
        id=row["id"],
        key=row["key"],
        owner=row["owner"],
        channel=row["channel"],
        type=row["type"],
        data=data,
        target=target,
        created_at=row["created_at"],
    )


def optional_text(text: str | None) -> str | None:
    """A nullable text column's value, NFC-normalised like every stored text."""
    return None if text is None else normalize(text)
