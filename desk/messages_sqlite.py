"""The public's messages in SQLite, contact data sealed (AES-GCM), with retention, export and erasure.

Tables (own connection, WAL; may share the archive's file): ``desk_messages`` (one row per message; the
tracking code only as its digest; contact details only sealed, in ``contact_sealed``, bound to the row's id),
``desk_message_events`` (the status history the sender sees), ``desk_message_attachments`` (metadata of files in
the ``AttachmentStore``), and the audit log (``desk/audit.py``).

Who sees what: the sender, by tracking code, sees their message, its status history and the answer
(``status``), gets everything they gave including their contact details (``export``), or erases it all
(``erase``). Staff with ``message.read`` list and read messages without contact details; only
``message.contact.read`` (moderators) opens them (``contact``), and each opening is an audit entry.

Notices to the sender (``desk_message_notices``, ``desk_message_push``): ``transition`` writes one notice per
channel, in the change's transaction: email when the contact has one, and one per browser the sender subscribed on
their status page (``subscribe_push``, sealed like the contact under its own associated data). The tracking code
the notices name is kept sealed (``code_sealed``) only for such senders. The notice worker
(``alerts/message_notices.py``) leases due rows (``claim_notices``), then records ``notice_sent`` (only once the
mail server or push service accepted), ``notice_retry`` or ``notice_failed``; ``remove_push`` on a 404/410.

PDPA retention: ``retention()`` erases the contact details of messages older than ``retention_days`` (the
message itself stays, anonymous) — with them the kept code, the push subscriptions and unsent notices — and writes
one audit entry per message erased. Run it daily (wiring: a
lifespan task, ``await asyncio.to_thread(messages.retention)``; setting ``MESSAGES_RETENTION_DAYS``, default 365).

Wiring (to do): ``create_app(..., messages=None)`` builds ``MessageStore(settings.db_path,
keyring=Keyring.from_setting(settings.desk_contact_keys))``; routes in ``desk/messages.py``; moderators'
``GET /api/messages`` (``list_messages``), ``GET /api/messages/{id}`` (``get``), ``GET /api/messages/{id}/contact``,
``POST /api/messages/{id}/status`` ``{"status", "note", "committee", "answer"}`` (``transition``),
``POST /api/messages/{id}/assign``. ``Duplicate`` → 409, ``InvalidTransition`` → 409, ``Forbidden`` → 403,
``NotFound`` → 404, ``InvalidMessage`` → 400.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desk import audit, sqlite
from desk.accounts import Principal
from desk.accounts_sqlite import Forbidden, NotFound
from desk.attachments import AttachmentMeta
from desk.messages import (
    ANSWER_MAX,
    COMMITTEE_MAX,
    NOTE_MAX,
    Contact,
    InvalidMessage,
    InvalidTransition,
    Submission,
    check_transition,
    code_digest,
    display_code,
    new_tracking_code,
)
from desk.sealing import Keyring, SealError
from desk.text import clean_text

COMPONENT = "messages"
SENDER = "sender"
DEFAULT_RETENTION_DAYS = 365
DEFAULT_DUPLICATE_WINDOW_S = 24 * 3600.0
MAX_LIST = 100
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE desk_messages (
        id TEXT PRIMARY KEY,
        code_hash TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('complaint', 'suggestion', 'question')),
        subject TEXT NOT NULL,
        text TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('received', 'in_review', 'forwarded', 'answered', 'closed', 'spam')),
        contact_sealed TEXT,
        contact_erased_at TEXT,
        publish_ok INTEGER NOT NULL DEFAULT 0,
        fingerprint TEXT NOT NULL,
        assigned_to TEXT,
        committee TEXT,
        answer TEXT,
        created_at TEXT NOT NULL,
        created_s REAL NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX desk_messages_fingerprint ON desk_messages (fingerprint, created_s);
    CREATE INDEX desk_messages_created ON desk_messages (created_s);
    CREATE INDEX desk_messages_status ON desk_messages (status, created_s);
    CREATE TABLE desk_message_events (
        id INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL REFERENCES desk_messages (id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        status TEXT NOT NULL
    );
    CREATE INDEX desk_message_events_message ON desk_message_events (message_id, id);
    CREATE TABLE desk_message_attachments (
        name TEXT PRIMARY KEY,
        message_id TEXT NOT NULL REFERENCES desk_messages (id) ON DELETE CASCADE,
        content_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        width INTEGER,
        height INTEGER,
        sha256 TEXT NOT NULL
    );
    CREATE INDEX desk_message_attachments_message ON desk_message_attachments (message_id);
    """,
    # Publishing answered suggestions (anonymised, opt-in) and the outbox of status notices to senders: one row
    # per change for a sender who gave an email, written in the change's transaction, sent by whoever drains it.
    """
    ALTER TABLE desk_messages ADD COLUMN published_at TEXT;
    CREATE INDEX desk_messages_published ON desk_messages (published_at) WHERE published_at IS NOT NULL;
    CREATE TABLE desk_message_notices (
        id INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL REFERENCES desk_messages (id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        at TEXT NOT NULL,
        sent_at TEXT
    );
    CREATE INDEX desk_message_notices_pending ON desk_message_notices (id) WHERE sent_at IS NULL;
    """,
    # Sending the notices (alerts/message_notices.py): by email and by Web Push to subscriptions the sender made on
    # their status page. The tracking code goes in each notice, so it is kept sealed (like the contact, erased with
    # it) for senders who asked for notices; one notice row per channel and subscription, leased while sending,
    # retried with backoff, ``sent_at`` set only once the mail server or push service accepted it.
    """
    ALTER TABLE desk_messages ADD COLUMN code_sealed TEXT;
    CREATE TABLE desk_message_push (
        id INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL REFERENCES desk_messages (id) ON DELETE CASCADE,
        sealed TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX desk_message_push_message ON desk_message_push (message_id, id);
    ALTER TABLE desk_message_notices ADD COLUMN channel TEXT NOT NULL DEFAULT 'email';
    ALTER TABLE desk_message_notices ADD COLUMN push_id INTEGER REFERENCES desk_message_push (id) ON DELETE CASCADE;
    ALTER TABLE desk_message_notices ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE desk_message_notices ADD COLUMN next_s REAL NOT NULL DEFAULT 0;
    ALTER TABLE desk_message_notices ADD COLUMN leased_until_s REAL NOT NULL DEFAULT 0;
    ALTER TABLE desk_message_notices ADD COLUMN failed_at TEXT;
    ALTER TABLE desk_message_notices ADD COLUMN last_error TEXT;
    DROP INDEX desk_message_notices_pending;
    CREATE INDEX desk_message_notices_due ON desk_message_notices (next_s)
        WHERE sent_at IS NULL AND failed_at IS NULL;
    CREATE INDEX desk_message_notices_push ON desk_message_notices (push_id) WHERE push_id IS NOT NULL;
    """,
)
# A sender may ask for notices in a few browsers; a newer subscription beyond this replaces the oldest.
MAX_PUSH_PER_MESSAGE = 5


class Duplicate(Exception):
    """The same subject and text (up to case and spacing) arrived within the duplicate window (409)."""


class ContactErased(Exception):
    """Retention erased the message's contact data: it takes no new contact data, push subscriptions included
    (409 naming ``subscription``); the message itself stays, anonymous."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the sender is told once: the tracking code is not stored and cannot be shown again."""

    message_id: str
    code: str
    status: str


@dataclass(frozen=True, slots=True)
class PushTarget:
    """A browser's Web Push subscription (already validated: ``alerts.message_notices.check_subscription``)."""

    endpoint: str
    p256dh: str
    auth: str

    def to_json(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


@dataclass(frozen=True, slots=True)
class Notice:
    """One status notice due to go out: by ``email`` (to ``email``) or by ``push`` (to ``push``, row ``push_id``).

    ``code`` is the tracking code for the notice's link, None for a message sent before codes were kept, or whose
    kept code no longer opens (the notice then links to the form's page only). ``attempts``: those made before
    this one (this one is already counted in the row)."""

    id: int
    message_id: str
    channel: str
    status: str
    at: str
    attempts: int
    code: str | None
    email: str | None = None
    push_id: int | None = None
    push: PushTarget | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """A message as staff see it: never its contact details (see ``MessageStore.contact``)."""

    id: str
    kind: str
    subject: str
    text: str
    status: str
    has_contact: bool
    contact_erased_at: str | None
    publish_ok: bool
    assigned_to: str | None
    committee: str | None
    answer: str | None
    created_at: str
    updated_at: str
    attachments: tuple[AttachmentMeta, ...]
    published_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "subject": self.subject,
            "text": self.text,
            "status": self.status,
            "has_contact": self.has_contact,
            "contact_erased_at": self.contact_erased_at,
            "publish_ok": self.publish_ok,
            "assigned_to": self.assigned_to,
            "committee": self.committee,
            "answer": self.answer,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "attachments": [a.to_json() for a in self.attachments],
            "published_at": self.published_at,
        }


def _require(actor: Principal, permission: str) -> None:
    if not actor.can(permission):
        raise Forbidden(f"{actor.username} may not {permission}")


def _attachments(conn: sqlite3.Connection, message_id: str) -> tuple[AttachmentMeta, ...]:
    rows = conn.execute(
        "SELECT * FROM desk_message_attachments WHERE message_id = ? ORDER BY rowid", (message_id,)
    ).fetchall()
    return tuple(
        AttachmentMeta(
            name=r["name"],
            content_type=r["content_type"],
            size=r["size"],
            width=r["width"],
            height=r["height"],
            sha256=r["sha256"],
        )
        for r in rows
    )


def _message(conn: sqlite3.Connection, row: sqlite3.Row) -> Message:
    return Message(
        id=row["id"],
        kind=row["kind"],
        subject=row["subject"],
        text=row["text"],
        status=row["status"],
        has_contact=row["contact_sealed"] is not None,
        contact_erased_at=row["contact_erased_at"],
        publish_ok=bool(row["publish_ok"]),
        assigned_to=row["assigned_to"],
        committee=row["committee"],
        answer=row["answer"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        attachments=_attachments(conn, row["id"]),
        published_at=row["published_at"],
    )


def _get(conn: sqlite3.Connection, message_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM desk_messages WHERE id = ?", (message_id,)).fetchone()
    if row is None:
        raise NotFound(f"message {message_id!r}")
    return row


def _by_code(conn: sqlite3.Connection, code: str) -> sqlite3.Row | None:
    try:
        key = code_digest(code)
    except ValueError:
        return None
    return conn.execute("SELECT * FROM desk_messages WHERE code_hash = ?", (key,)).fetchone()


def _optional_text(value: str | None, field: str, max_len: int) -> str | None:
    """Cleaned text, or None when nothing visible is left: an optional field left blank is a field not given."""
    if value is None or not value.strip():
        return None
    try:
        return clean_text(value, max_len=max_len, multiline=True)
    except ValueError as exc:
        if str(exc) == "must not be empty":
            return None
        raise InvalidMessage({field: str(exc)}) from exc


class MessageStore:
    """The public's messages on one SQLite file (see the module docstring). Blocking calls."""

    def __init__(
        self,
        path: str | Path,
        *,
        keyring: Keyring,
        clock: Callable[[], float] = time.time,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        duplicate_window_s: float = DEFAULT_DUPLICATE_WINDOW_S,
    ) -> None:
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        self.keyring = keyring
        self.retention_days = retention_days
        self.duplicate_window_s = duplicate_window_s
        self._clock = clock
        self._db = sqlite.open_store(path, COMPONENT, _MIGRATIONS)

    def close(self) -> None:
        self._db.close()

    def _seal(self, contact: Contact, message_id: str) -> str:
        return self.keyring.seal(json.dumps(contact.to_json(), ensure_ascii=False), message_id.encode("ascii"))

    def _open(self, sealed: str, message_id: str) -> Contact:
        data = json.loads(self.keyring.open(sealed, message_id.encode("ascii")))
        return Contact(email=data.get("email"), phone=data.get("phone"))

    # The tracking code and push subscriptions are sealed under their own associated data, so that none of the
    # three sealed columns of a row opens in place of another.
    def _seal_code(self, code: str, message_id: str) -> str:
        return self.keyring.seal(display_code(code), f"{message_id}:code".encode("ascii"))

    def _open_code(self, sealed: str, message_id: str) -> str:
        return self.keyring.open(sealed, f"{message_id}:code".encode("ascii"))

    def _seal_push(self, target: PushTarget, message_id: str) -> str:
        return self.keyring.seal(json.dumps(target.to_json()), f"{message_id}:push".encode("ascii"))

    def _open_push(self, sealed: str, message_id: str) -> PushTarget:
        data = json.loads(self.keyring.open(sealed, f"{message_id}:push".encode("ascii")))
        return PushTarget(data["endpoint"], data["keys"]["p256dh"], data["keys"]["auth"])

    # -- the sender -------------------------------------------------------------------------------------------

    def submit(self, submission: Submission, attachments: Sequence[AttachmentMeta] = ()) -> Receipt:
        """Store a validated submission (never a ``trapped`` one); ``Duplicate`` if seen within the window."""
        if submission.trapped:
            raise ValueError("a trapped submission is answered, not stored")
        now = self._clock()
        message_id = secrets.token_hex(8)
        code = new_tracking_code()
        sealed = None if submission.contact is None else self._seal(submission.contact, message_id)
        # Kept (sealed) only for a sender who can be sent notices: each notice names the code and links to it.
        wants_notices = submission.contact is not None and bool(submission.contact.email)
        code_sealed = self._seal_code(code, message_id) if wants_notices else None
        fingerprint = submission.fingerprint()

        def work(conn: sqlite3.Connection) -> None:
            seen = conn.execute(
                "SELECT 1 FROM desk_messages WHERE fingerprint = ? AND created_s > ?",
                (fingerprint, now - self.duplicate_window_s),
            ).fetchone()
            if seen:
                raise Duplicate("this message has already been received")
            conn.execute(
                "INSERT INTO desk_messages (id, code_hash, kind, subject, text, status, contact_sealed, code_sealed,"
                " publish_ok, fingerprint, created_at, created_s, updated_at)"
                " VALUES (?, ?, ?, ?, ?, 'received', ?, ?, ?, ?, ?, ?, ?)",
                (
                    message_id,
                    code_digest(code),
                    submission.kind,
                    submission.subject,
                    submission.text,
                    sealed,
                    code_sealed,
                    int(submission.publish_ok),
                    fingerprint,
                    audit.iso(now),
                    now,
                    audit.iso(now),
                ),
            )
            conn.execute(
                "INSERT INTO desk_message_events (message_id, at, status) VALUES (?, ?, 'received')",
                (message_id, audit.iso(now)),
            )
            conn.executemany(
                "INSERT INTO desk_message_attachments (name, message_id, content_type, size, width, height, sha256)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(a.name, message_id, a.content_type, a.size, a.width, a.height, a.sha256) for a in attachments],
            )

        with self._db as conn:
            sqlite.transaction(conn, work)
        return Receipt(message_id=message_id, code=code, status="received")

    def status(self, code: str) -> dict[str, Any] | None:
        """The sender's status page: their message, its history and the answer; None for an unknown code."""
        with self._db as conn:
            row = _by_code(conn, code)
            if row is None:
                return None
            history = conn.execute(
                "SELECT at, status FROM desk_message_events WHERE message_id = ? ORDER BY id", (row["id"],)
            ).fetchall()
            return {
                "kind": row["kind"],
                "subject": row["subject"],
                "text": row["text"],
                "status": row["status"],
                "received_at": row["created_at"],
                "history": [{"at": h["at"], "status": h["status"]} for h in history],
                "committee": row["committee"],
                "answer": row["answer"],
            }

    def export(self, code: str) -> dict[str, Any] | None:
        """Everything stored about the sender's message, contact details included (PDPA access); audited."""
        now = self._clock()

        def work(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = _by_code(conn, code)
            if row is None:
                return None
            message = _message(conn, row)
            contact = None if row["contact_sealed"] is None else self._open(row["contact_sealed"], row["id"])
            audit.append(conn, at_s=now, actor=SENDER, action="message.export", target=f"message:{row['id']}")
            pushes = conn.execute(
                "SELECT sealed, created_at FROM desk_message_push WHERE message_id = ? ORDER BY id", (row["id"],)
            ).fetchall()
            return {
                **message.to_json(),
                "contact": None if contact is None else contact.to_json(),
                "push_subscriptions": [
                    {"endpoint": self._open_push(p["sealed"], row["id"]).endpoint, "created_at": p["created_at"]}
                    for p in pushes
                ],
                "history": [
                    {"at": h["at"], "status": h["status"]}
                    for h in conn.execute(
                        "SELECT at, status FROM desk_message_events WHERE message_id = ? ORDER BY id", (row["id"],)
                    )
                ],
            }

        with self._db as conn:
            return sqlite.transaction(conn, work)

    def erase(self, code: str) -> list[str] | None:
        """Delete the sender's message and everything of it (PDPA erasure); returns the attachment names for
        ``AttachmentStore.delete``, or None for an unknown code. The audit entry names only the message id."""
        now = self._clock()

        def work(conn: sqlite3.Connection) -> list[str] | None:
            row = _by_code(conn, code)
            if row is None:
                return None
            names = [a.name for a in _attachments(conn, row["id"])]
            conn.execute("DELETE FROM desk_messages WHERE id = ?", (row["id"],))
            audit.append(
                conn,
                at_s=now,
                actor=SENDER,
                action="message.erase",
                target=f"message:{row['id']}",
                after={"attachments": len(names)},
            )
            return names

        with self._db as conn:
            return sqlite.transaction(conn, work)

    # -- staff ------------------------------------------------------------------------------------------------

    def list_messages(
        self,
        actor: Principal,
        *,
        status: str | None = None,
        kind: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[Message]:
        """Newest first; ``before`` is a message id (the next page starts below it); ``status`` and ``kind``
        narrow (the caller checks them against STATUSES and KINDS: an unknown one just matches nothing here)."""
        _require(actor, "message.read")
        limit = max(1, min(limit, MAX_LIST))
        with self._db as conn:
            before_s = None
            if before is not None:
                before_s = _get(conn, before)["created_s"]
            # No (kind, created_s) index: a kind is about a third of the messages, so walking desk_messages_created
            # (or desk_messages_status with a status) newest first finds a page after a few times its size.
            rows = conn.execute(
                "SELECT * FROM desk_messages WHERE (? IS NULL OR status = ?) AND (? IS NULL OR kind = ?)"
                " AND (? IS NULL OR created_s < ?) ORDER BY created_s DESC, id LIMIT ?",
                (status, status, kind, kind, before_s, before_s, limit),
            ).fetchall()
            return [_message(conn, r) for r in rows]

    def get(self, actor: Principal, message_id: str) -> Message:
        _require(actor, "message.read")
        with self._db as conn:
            return _message(conn, _get(conn, message_id))

    def contact(self, actor: Principal, message_id: str) -> Contact | None:
        """The sender's contact details, for moderators only; every opening is audited."""
        _require(actor, "message.contact.read")
        now = self._clock()

        def work(conn: sqlite3.Connection) -> Contact | None:
            row = _get(conn, message_id)
            if row["contact_sealed"] is None:
                return None
            audit.append(
                conn, at_s=now, actor=actor.username, action="message.contact.read", target=f"message:{message_id}"
            )
            return self._open(row["contact_sealed"], message_id)

        with self._db as conn:
            return sqlite.transaction(conn, work)

    def transition(
        self,
        actor: Principal,
        message_id: str,
        status: str,
        *,
        note: str | None = None,
        committee: str | None = None,
        answer: str | None = None,
    ) -> Message:
        """Move a message along the workflow; ``forwarded`` needs ``committee``, ``answered`` needs ``answer``."""
        _require(actor, "message.triage")
        note = _optional_text(note, "note", NOTE_MAX)
        committee = _optional_text(committee, "committee", COMMITTEE_MAX)
        answer = _optional_text(answer, "answer", ANSWER_MAX)
        if status == "forwarded" and committee is None:
            raise InvalidMessage({"committee": "forwarding needs the committee's name"})
        if status == "answered" and answer is None:
            raise InvalidMessage({"answer": "an answered message needs the answer"})
        now = self._clock()

        def work(conn: sqlite3.Connection) -> Message:
            before = _message(conn, _get(conn, message_id))
            check_transition(before.status, status)
            conn.execute(
                "UPDATE desk_messages SET status = ?, committee = COALESCE(?, committee),"
                " answer = COALESCE(?, answer), updated_at = ? WHERE id = ?",
                (status, committee, answer, audit.iso(now), message_id),
            )
            conn.execute(
                "INSERT INTO desk_message_events (message_id, at, status) VALUES (?, ?, ?)",
                (message_id, audit.iso(now), status),
            )
            sealed = _get(conn, message_id)["contact_sealed"]
            if sealed is not None and self._open(sealed, message_id).email:
                conn.execute(
                    "INSERT INTO desk_message_notices (message_id, status, at, channel, next_s)"
                    " VALUES (?, ?, ?, 'email', ?)",
                    (message_id, status, audit.iso(now), now),
                )
            conn.execute(
                "INSERT INTO desk_message_notices (message_id, status, at, channel, push_id, next_s)"
                " SELECT message_id, ?, ?, 'push', id, ? FROM desk_message_push WHERE message_id = ?",
                (status, audit.iso(now), now, message_id),
            )
            after = _message(conn, _get(conn, message_id))
            audit.append(
                conn,
                at_s=now,
                actor=actor.username,
                action="message.status",
                target=f"message:{message_id}",
                before={"status": before.status, "committee": before.committee, "answer": before.answer},
                after={"status": after.status, "committee": after.committee, "answer": after.answer, "note": note},
            )
            return after

        with self._db as conn:
            return sqlite.transaction(conn, work)

    def assign(self, actor: Principal, message_id: str, username: str | None) -> Message:
        """Assign the message to a moderator (by username), or unassign with None."""
        _require(actor, "message.triage")
        if username is not None and (not username or len(username) > 32):
            raise InvalidMessage({"assigned_to": "must be a username"})
        now = self._clock()

        def work(conn: sqlite3.Connection) -> Message:
            before = _get(conn, message_id)["assigned_to"]
            conn.execute(
                "UPDATE desk_messages SET assigned_to = ?, updated_at = ? WHERE id = ?",
                (username, audit.iso(now), message_id),
            )
            audit.append(
                conn,
                at_s=now,
                actor=actor.username,
                action="message.assign",
                target=f"message:{message_id}",
                before={"assigned_to": before},
                after={"assigned_to": username},
            )
            return _message(conn, _get(conn, message_id))

        with self._db as conn:
            return sqlite.transaction(conn, work)

    def publish(self, actor: Principal, message_id: str, published: bool) -> Message:
        """Show (or withdraw) an answered suggestion on the public list, anonymised: only its subject, text,
        committee and answer. Only a suggestion whose sender opted in (``publish_ok``) and that has an answer."""
        _require(actor, "message.triage")
        now = self._clock()

        def work(conn: sqlite3.Connection) -> Message:
            before = _message(conn, _get(conn, message_id))
            if published and (before.kind != "suggestion" or not before.publish_ok or before.answer is None):
                raise InvalidTransition("only an answered suggestion whose sender agreed may be published")
            if published and before.status not in ("answered", "closed"):
                raise InvalidTransition(f"a {before.status} suggestion cannot be published; answer it first")
            at = (before.published_at or audit.iso(now)) if published else None
            conn.execute(
                "UPDATE desk_messages SET published_at = ?, updated_at = ? WHERE id = ?",
                (at, audit.iso(now), message_id),
            )
            audit.append(
                conn,
                at_s=now,
                actor=actor.username,
                action="message.publish",
                target=f"message:{message_id}",
                before={"published_at": before.published_at},
                after={"published_at": at},
            )
            return _message(conn, _get(conn, message_id))

        with self._db as conn:
            return sqlite.transaction(conn, work)

    def published(self, *, before: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The public list: published suggestions, newest first, with nothing of their senders; ``before`` is
        the ``published_at`` of the last one seen (the next page starts below it)."""
        limit = max(1, min(limit, MAX_LIST))
        with self._db as conn:
            rows = conn.execute(
                "SELECT id, subject, text, committee, answer, published_at FROM desk_messages"
                " WHERE published_at IS NOT NULL AND (? IS NULL OR published_at < ?)"
                " AND status IN ('answered', 'closed') ORDER BY published_at DESC, id LIMIT ?",
                (before, before, limit),
            ).fetchall()
        return [{k: r[k] for k in ("id", "subject", "text", "committee", "answer", "published_at")} for r in rows]

    def pending_notices(self, *, limit: int = 100) -> list[tuple[int, str, str, Contact]]:
        """Status notices not yet sent, oldest first: (notice id, status, at, the sender's contact); a notice
        whose contact has since been erased is dropped here, never sent."""
        with self._db as conn:
            rows = conn.execute(
                "SELECT n.id, n.message_id, n.status, n.at, m.contact_sealed FROM desk_message_notices n"
                " JOIN desk_messages m ON m.id = n.message_id WHERE n.sent_at IS NULL AND n.failed_at IS NULL"
                " AND n.channel = 'email' AND m.contact_sealed IS NOT NULL ORDER BY n.id LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            (r["id"], r["status"], r["at"], self._open(r["contact_sealed"], r["message_id"]))
            for r in rows
            if r["contact_sealed"] is not None
        ]

    def notice_sent(self, notice_id: int) -> None:
        """The mail server or push service accepted the notice: it is never sent again."""
        with self._db as conn:
            conn.execute(
                "UPDATE desk_message_notices SET sent_at = ?, leased_until_s = 0, last_error = NULL WHERE id = ?",
                (audit.iso(self._clock()), notice_id),
            )

    def notice_retry(self, notice_id: int, *, attempts: int, next_s: float, error: str | None) -> None:
        """The attempt failed: try again at ``next_s`` (the lease ends now)."""
        with self._db as conn:
            conn.execute(
                "UPDATE desk_message_notices SET attempts = ?, next_s = ?, leased_until_s = 0, last_error = ?"
                " WHERE id = ? AND sent_at IS NULL",
                (attempts, next_s, (error or "")[:200] or None, notice_id),
            )

    def notice_failed(self, notice_id: int, *, attempts: int, error: str | None) -> None:
        """Given up (the retry schedule is spent, or the address refused for good): kept for operators to see."""
        now = self._clock()
        with self._db as conn:
            conn.execute(
                "UPDATE desk_message_notices SET attempts = ?, failed_at = ?, leased_until_s = 0, last_error = ?"
                " WHERE id = ? AND sent_at IS NULL",
                (attempts, audit.iso(now), (error or "")[:200] or None, notice_id),
            )

    def claim_notices(self, *, lease_s: float, limit: int = 50, max_attempts: int | None = None) -> list[Notice]:
        """Lease up to ``limit`` due notices to the caller for ``lease_s`` seconds (another process takes none of
        them meanwhile; one that dies leaves them to be claimed again when the lease ends), oldest first.

        Each claim counts an attempt, in the row, before anything is sent: a sender that cannot record its result
        (the lease then runs out and the notice is claimed again) still uses up attempts, and a notice that already
        had ``max_attempts`` is marked failed here instead of being claimed.

        Notices that can no longer go out are settled here, never sent: an email notice whose contact was erased
        (retention) is deleted; one whose contact or subscription no longer opens (its key dropped) is marked
        failed. A kept code that no longer opens only costs the notice its code (``Notice.code`` is None)."""
        now = self._clock()

        def work(conn: sqlite3.Connection) -> list[Notice]:
            rows = conn.execute(
                "SELECT n.id, n.message_id, n.channel, n.status, n.at, n.attempts, n.push_id, m.contact_sealed,"
                " m.code_sealed, p.sealed AS push_sealed FROM desk_message_notices n"
                " JOIN desk_messages m ON m.id = n.message_id"
                " LEFT JOIN desk_message_push p ON p.id = n.push_id"
                " WHERE n.sent_at IS NULL AND n.failed_at IS NULL AND n.next_s <= ? AND n.leased_until_s <= ?"
                " ORDER BY n.next_s, n.id LIMIT ?",
                (now, now, limit),
            ).fetchall()
            claimed: list[Notice] = []
            for r in rows:
                mid = r["message_id"]
                if max_attempts is not None and r["attempts"] >= max_attempts:
                    conn.execute(
                        "UPDATE desk_message_notices SET failed_at = ?, leased_until_s = 0, last_error ="
                        " COALESCE(last_error, 'no result recorded') || ' (attempts used up)' WHERE id = ?",
                        (audit.iso(now), r["id"]),
                    )
                    continue
                try:
                    # The code is only the link's convenience: a notice still goes without it (to /write).
                    code = None if r["code_sealed"] is None else self._open_code(r["code_sealed"], mid)
                except SealError:
                    code = None
                try:
                    if r["channel"] == "email":
                        contact = None if r["contact_sealed"] is None else self._open(r["contact_sealed"], mid)
                        if contact is None or not contact.email:
                            conn.execute("DELETE FROM desk_message_notices WHERE id = ?", (r["id"],))
                            continue
                        notice = Notice(r["id"], mid, "email", r["status"], r["at"], r["attempts"], code, contact.email)
                    else:
                        if r["push_sealed"] is None:
                            conn.execute("DELETE FROM desk_message_notices WHERE id = ?", (r["id"],))
                            continue
                        target = self._open_push(r["push_sealed"], mid)
                        notice = Notice(
                            r["id"], mid, "push", r["status"], r["at"], r["attempts"], code, None, r["push_id"], target
                        )
                except SealError as exc:
                    conn.execute(
                        "UPDATE desk_message_notices SET failed_at = ?, last_error = ? WHERE id = ?",
                        (audit.iso(now), str(exc)[:200], r["id"]),
                    )
                    continue
                conn.execute(
                    "UPDATE desk_message_notices SET leased_until_s = ?, attempts = attempts + 1 WHERE id = ?",
                    (now + lease_s, r["id"]),
                )
                claimed.append(notice)
            return claimed

        with self._db as conn:
            return sqlite.transaction(conn, work)

    def next_notice_s(self) -> float | None:
        """When the earliest pending notice is due (a lease's end counts), or None when none is pending."""
        with self._db as conn:
            row = conn.execute(
                "SELECT MIN(MAX(next_s, leased_until_s)) FROM desk_message_notices"
                " WHERE sent_at IS NULL AND failed_at IS NULL"
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def subscribe_push(self, code: str, target: PushTarget) -> bool | None:
        """Tie a browser's push subscription to the message with this tracking code, for its status notices:
        True when added, False when this browser was already subscribed (its keys are refreshed), None for an
        unknown code (nothing is stored); ``ContactErased`` (nothing stored) once retention erased the message's
        contact data, which a subscription would bring back. Beyond ``MAX_PUSH_PER_MESSAGE`` the oldest
        subscription is dropped."""
        now = self._clock()

        def work(conn: sqlite3.Connection) -> bool | None:
            row = _by_code(conn, code)
            if row is None:
                return None
            if row["contact_erased_at"] is not None:
                raise ContactErased(row["id"])
            mid = row["id"]
            mine = conn.execute(
                "SELECT id, sealed FROM desk_message_push WHERE message_id = ? ORDER BY id", (mid,)
            ).fetchall()
            sealed = self._seal_push(target, mid)
            for p in mine:
                if self._open_push(p["sealed"], mid).endpoint == target.endpoint:
                    conn.execute("UPDATE desk_message_push SET sealed = ? WHERE id = ?", (sealed, p["id"]))
                    return False
            for p in mine[: max(0, len(mine) - MAX_PUSH_PER_MESSAGE + 1)]:
                conn.execute("DELETE FROM desk_message_push WHERE id = ?", (p["id"],))
            conn.execute(
                "INSERT INTO desk_message_push (message_id, sealed, created_at) VALUES (?, ?, ?)",
                (mid, sealed, audit.iso(now)),
            )
            if row["code_sealed"] is None:
                conn.execute("UPDATE desk_messages SET code_sealed = ? WHERE id = ?", (self._seal_code(code, mid), mid))
            audit.append(conn, at_s=now, actor=SENDER, action="message.push.subscribe", target=f"message:{mid}")
            return True

        with self._db as conn:
            return sqlite.transaction(conn, work)

    def remove_push(self, push_id: int) -> None:
        """The push service said the subscription is gone (404/410): forget it and its pending notices."""
        with self._db as conn:
            conn.execute("DELETE FROM desk_message_push WHERE id = ?", (push_id,))

    def push_count(self, code: str) -> int | None:
        """How many push subscriptions the message has (None for an unknown code)."""
        with self._db as conn:
            row = _by_code(conn, code)
            if row is None:
                return None
            return int(
                conn.execute("SELECT COUNT(*) FROM desk_message_push WHERE message_id = ?", (row["id"],)).fetchone()[0]
            )

    # -- jobs -------------------------------------------------------------------------------------------------

    def retention(self, *, batch: int = 1000) -> int:
        """Erase the contact details of messages older than ``retention_days``, up to ``batch`` a call (run
        again while it returns ``batch``); one audit entry per message, by ``system``. Returns how many."""
        now = self._clock()
        cutoff = now - self.retention_days * 86400.0

        def work(conn: sqlite3.Connection) -> int:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM desk_messages WHERE created_s < ? AND (contact_sealed IS NOT NULL"
                    " OR code_sealed IS NOT NULL OR id IN (SELECT message_id FROM desk_message_push))"
                    " ORDER BY created_s LIMIT ?",
                    (cutoff, batch),
                )
            ]
            for message_id in ids:
                conn.execute(
                    "UPDATE desk_messages SET contact_sealed = NULL, code_sealed = NULL, contact_erased_at = ?,"
                    " updated_at = ? WHERE id = ?",
                    (audit.iso(now), audit.iso(now), message_id),
                )
                # The push subscriptions are contact data too; their pending notices go with them.
                conn.execute("DELETE FROM desk_message_push WHERE message_id = ?", (message_id,))
                conn.execute("DELETE FROM desk_message_notices WHERE message_id = ? AND sent_at IS NULL", (message_id,))
                audit.append(
                    conn,
                    at_s=now,
                    actor=audit.SYSTEM,
                    action="message.contact.erase",
                    target=f"message:{message_id}",
                    after={"reason": "retention", "retention_days": self.retention_days},
                )
            return len(ids)

        with self._db as conn:
            return sqlite.transaction(conn, work)

    def rotate_keys(self, *, batch: int = 500) -> int:
        """Re-seal up to ``batch`` contacts sealed under an older key with the current one; returns how many."""

        def work(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "SELECT id, contact_sealed FROM desk_messages"
                " WHERE contact_sealed IS NOT NULL AND contact_sealed NOT LIKE ? LIMIT ?",
                (f"{self.keyring.current}:%", batch),
            ).fetchall()
            for row in rows:
                contact = self._open(row["contact_sealed"], row["id"])
                conn.execute(
                    "UPDATE desk_messages SET contact_sealed = ? WHERE id = ?",
                    (self._seal(contact, row["id"]), row["id"]),
                )
            codes = conn.execute(
                "SELECT id, code_sealed FROM desk_messages WHERE code_sealed IS NOT NULL AND code_sealed NOT LIKE ?"
                " LIMIT ?",
                (f"{self.keyring.current}:%", batch),
            ).fetchall()
            for row in codes:
                code = self._open_code(row["code_sealed"], row["id"])
                conn.execute(
                    "UPDATE desk_messages SET code_sealed = ? WHERE id = ?",
                    (self._seal_code(code, row["id"]), row["id"]),
                )
            pushes = conn.execute(
                "SELECT id, message_id, sealed FROM desk_message_push WHERE sealed NOT LIKE ? LIMIT ?",
                (f"{self.keyring.current}:%", batch),
            ).fetchall()
            for row in pushes:
                target = self._open_push(row["sealed"], row["message_id"])
                conn.execute(
                    "UPDATE desk_message_push SET sealed = ? WHERE id = ?",
                    (self._seal_push(target, row["message_id"]), row["id"]),
                )
            return max(len(rows), len(codes), len(pushes))

        with self._db as conn:
            return sqlite.transaction(conn, work)
