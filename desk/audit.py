"""The staff audit log: who did what, when, to which target, with the state before and after. Append-only.

One table, ``desk_audit``, written in the same transaction as the change it records (so a change and its entry
commit or fail together). Triggers refuse UPDATE and DELETE, so the log cannot be edited through SQL either; only
the retention of the whole file (a backup policy) ends an entry's life.

Entries never hold secrets (password hashes, tokens, session ids) or contact data: ``before``/``after`` are
what an admin may read. Actors are account usernames, ``bootstrap`` (the ``OPERATOR_TOKEN`` admin of a fresh
install) or ``system`` (jobs such as the retention of contact data).

Wiring: both desk stores call ``append`` inside their transactions and ``ensure_schema`` when they open; the
admins' read is ``GET /api/audit?before=<id>&limit=<n>`` (permission ``audit.read``) → ``read(conn, ...)`` through
``AccountStore.audit_log``; any other staff action (votes, corrections, stages) records itself with
``AccountStore.record``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SYSTEM = "system"
MAX_LIMIT = 200
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE desk_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        before TEXT,
        after TEXT
    );
    CREATE TRIGGER desk_audit_no_update BEFORE UPDATE ON desk_audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER desk_audit_no_delete BEFORE DELETE ON desk_audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    target: str | None
    before: Any
    after: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "before": self.before,
            "after": self.after,
        }


def iso(at_s: float) -> str:
    """Epoch seconds as the archive writes times: UTC ISO 8601 with milliseconds and ``Z``."""
    return datetime.fromtimestamp(at_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def append(
    conn: sqlite3.Connection,
    *,
    at_s: float,
    actor: str,
    action: str,
    target: str | None = None,
    before: Any = None,
    after: Any = None,
) -> int:
    """Add one entry (call inside the transaction of the change it records); returns its id."""
    cur = conn.execute(
        "INSERT INTO desk_audit (at, actor, action, target, before, after) VALUES (?, ?, ?, ?, ?, ?)",
        (iso(at_s), actor, action, target, _dump(before), _dump(after)),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def read(
    conn: sqlite3.Connection, *, before_id: int | None = None, limit: int = 50, action: str | None = None
) -> list[AuditEntry]:
    """Newest first, ``limit`` (1..MAX_LIMIT) entries with ids below ``before_id``; optionally one action only."""
    limit = max(1, min(limit, MAX_LIMIT))
    rows = conn.execute(
        "SELECT * FROM desk_audit WHERE (? IS NULL OR id < ?) AND (? IS NULL OR action = ?) ORDER BY id DESC LIMIT ?",
        (before_id, before_id, action, action, limit),
    ).fetchall()
    return [
        AuditEntry(
            id=r["id"],
            at=r["at"],
            actor=r["actor"],
            action=r["action"],
            target=r["target"],
            before=None if r["before"] is None else json.loads(r["before"]),
            after=None if r["after"] is None else json.loads(r["after"]),
        )
        for r in rows
    ]
