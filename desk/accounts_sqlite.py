"""Staff accounts in SQLite: accounts, sessions, API tokens and the audit log, with the login flow.

``AccountStore(path)`` opens its own connection (WAL) and creates its tables (``desk_accounts``,
``desk_sessions``, ``desk_api_tokens``, and ``desk_audit`` from ``desk/audit.py``), so it can share the archive's
file or live in its own. Every method is a blocking call: the server runs them with ``asyncio.to_thread``.

Methods that change something take the acting ``Principal``, check its permission themselves (the endpoint
checks too: two locks, one table) and write their audit entry in the same transaction as the change.

Wiring (to do, with the console): ``create_app(..., accounts=None)`` builds ``AccountStore(settings.db_path,
throttle=LoginThrottle(clock=time.monotonic))`` in the lifespan and closes it after; a periodic task calls
``purge_sessions()`` (hourly) so ended sessions do not pile up; routes as in ``desk/accounts.py``, plus
``GET/POST /api/accounts``, ``PATCH /api/accounts/{id}`` (roles, disabled, password), ``GET/POST
/api/accounts/{id}/tokens``, ``DELETE /api/tokens/{id}``, ``GET /api/audit``. ``AccountError`` → 400 with
``field``; ``Forbidden`` → 403; ``NotFound`` → 404; ``BadCredentials`` → 401; ``Throttled`` → 429 with
``Retry-After``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desk import audit, sqlite
from desk.accounts import (
    MAX_PASSWORD,
    AccountConflict,
    AccountError,
    Passwords,
    Principal,
    SessionPolicy,
    api_token_prefix,
    bootstrap_matches,
    bootstrap_principal,
    csrf_token,
    digest,
    new_api_token,
    new_secret,
    secret_matches,
    validate_display_name,
    validate_password,
    validate_roles,
    validate_username,
)
from desk.ratelimit import LoginThrottle

COMPONENT = "accounts"
MAX_TOKENS_PER_ACCOUNT = 20
MAX_TOKEN_LABEL = 100
_TOKEN_TOUCH_S = 60.0
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE desk_accounts (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL DEFAULT '',
        password_hash TEXT NOT NULL,
        roles TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE desk_sessions (
        id_hash TEXT PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES desk_accounts (id) ON DELETE CASCADE,
        csrf_hash TEXT NOT NULL,
        created_s REAL NOT NULL,
        last_seen_s REAL NOT NULL
    );
    CREATE INDEX desk_sessions_account ON desk_sessions (account_id, created_s);
    CREATE TABLE desk_api_tokens (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES desk_accounts (id) ON DELETE CASCADE,
        prefix TEXT NOT NULL UNIQUE,
        digest TEXT NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        last_used_s REAL,
        revoked_at TEXT
    );
    CREATE INDEX desk_api_tokens_account ON desk_api_tokens (account_id, id);
    """,
)


class Forbidden(PermissionError):
    """The acting principal lacks the permission (403)."""


class NotFound(LookupError):
    """No such account or token (404)."""


class BadCredentials(Exception):
    """Wrong username or password; which of the two is never said (401)."""


class Throttled(Exception):
    """Too many failed logins for this account or address (429); ``retry_after`` in seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after:.0f} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    username: str
    display_name: str
    roles: frozenset[str]
    disabled: bool
    created_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "roles": sorted(self.roles),
            "disabled": self.disabled,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class Session:
    """A new session: ``id`` goes in the cookie, ``csrf`` to the page; neither is stored or shown again."""

    id: str
    csrf: str
    account: Account
    expires_s: float


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token's record; the token itself is shown once, by ``create_api_token``."""

    id: int
    account_id: int
    prefix: str
    label: str
    created_at: str
    last_used_s: float | None
    revoked_at: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "prefix": self.prefix,
            "label": self.label,
            "created_at": self.created_at,
            "last_used_at": None if self.last_used_s is None else audit.iso(self.last_used_s),
            "revoked_at": self.revoked_at,
        }


def _account(row: sqlite3.Row) -> Account:
    return Account(
        id=row["id"],
        username=row["username"],
        display_name=row["display_name"],
        roles=frozenset(json.loads(row["roles"])),
        disabled=bool(row["disabled"]),
        created_at=row["created_at"],
    )


def _token(row: sqlite3.Row) -> ApiToken:
    return ApiToken(
        id=row["id"],
        account_id=row["account_id"],
        prefix=row["prefix"],
        label=row["label"],
        created_at=row["created_at"],
        last_used_s=row["last_used_s"],
        revoked_at=row["revoked_at"],
    )


def _require(actor: Principal, permission: str) -> None:
    if not actor.can(permission):
        raise Forbidden(f"{actor.username} may not {permission}")


class AccountStore:
    """Accounts, sessions, API tokens and the audit log on one SQLite file (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        *,
        passwords: Passwords | None = None,
        throttle: LoginThrottle | None = None,
        policy: SessionPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.passwords = passwords or Passwords()
        self.throttle = throttle or LoginThrottle(clock=time.monotonic)
        self.policy = policy or SessionPolicy()
        self._clock = clock
        # Logins run in worker threads; the throttle's counters are plain dicts, so its calls take turns.
        self._throttle_lock = threading.Lock()
        self._db = sqlite.open_store(path, COMPONENT, _MIGRATIONS)

    def close(self) -> None:
        self._db.close()

    # -- accounts ---------------------------------------------------------------------------------------------

    def has_admin(self) -> bool:
        """Whether an enabled account holds ``admin`` (after which ``OPERATOR_TOKEN`` authenticates nothing)."""
        with self._db as conn:
            return _admins(conn) > 0

    def accounts(self, actor: Principal) -> list[Account]:
        _require(actor, "account.manage")
        with self._db as conn:
            return [_account(r) for r in conn.execute("SELECT * FROM desk_accounts ORDER BY username")]

    def account(self, account_id: int) -> Account:
        with self._db as conn:
            return _get_account(conn, account_id)

    def create_account(
        self, actor: Principal, username: str, password: str, roles: Iterable[str], display_name: str = ""
    ) -> Account:
        _require(actor, "account.manage")
        name = validate_username(username)
        validate_password(password, name)
        role_set = validate_roles(roles)
        shown = validate_display_name(display_name)
        hashed = self.passwords.hash(password)
        now = self._clock()

        def work(conn: sqlite3.Connection) -> Account:
            if conn.execute("SELECT 1 FROM desk_accounts WHERE username = ?", (name,)).fetchone():
                raise AccountConflict("username", f"the username {name!r} is taken")
            cur = conn.execute(
                "INSERT INTO desk_accounts (username, display_name, password_hash, roles, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, shown, hashed, json.dumps(sorted(role_set)), audit.iso(now), audit.iso(now)),
            )
            assert cur.lastrowid is not None
            account = _get_account(conn, cur.lastrowid)
            audit.append(
                conn,
                at_s=now,
                actor=actor.username,
                action="account.create",
                target=f"account:{account.id}",
                after=account.to_json(),
            )
            return account

        return self._db.transaction(work)

    def update_account(
        self,
        actor: Principal,
        account_id: int,
        *,
        roles: Iterable[str] | None = None,
        disabled: bool | None = None,
        display_name: str | None = None,
    ) -> Account:
        """Change roles, disable/enable, rename. Refuses to leave no enabled admin. Disabling ends its sessions."""
        _require(actor, "account.manage")
        role_set = None if roles is None else validate_roles(roles)
        shown = None if display_name is None else validate_display_name(display_name)
        now = self._clock()

        def work(conn: sqlite3.Connection) -> Account:
            before = _get_account(conn, account_id)
            had_admin = _admins(conn) > 0
            conn.execute(
                "UPDATE desk_accounts SET roles = COALESCE(?, roles), disabled = COALESCE(?, disabled),"
                " display_name = COALESCE(?, display_name), updated_at = ? WHERE id = ?",
                (
                    None if role_set is None else json.dumps(sorted(role_set)),
                    None if disabled is None else int(disabled),
                    shown,
                    audit.iso(now),
                    account_id,
                ),
            )
            if had_admin and _admins(conn) == 0:
                raise AccountConflict("roles", "at least one enabled admin account must remain")
            after = _get_account(conn, account_id)
            if after.disabled:
                conn.execute("DELETE FROM desk_sessions WHERE account_id = ?", (account_id,))
            audit.append(
                conn,
                at_s=now,
                actor=actor.username,
                action="account.update",
                target=f"account:{account_id}",
                before=before.to_json(),
                after=after.to_json(),
            )
            return after

        return self._db.transaction(work)

    def set_password(
        self, actor: Principal, account_id: int, new_password: str, *, current_password: str | None = None
    ) -> None:
        """An admin sets anyone's password; an account its own with its current one. Ends all its sessions."""
        own = actor.account_id == account_id
        if not actor.can("account.manage") and not own:
            raise Forbidden(f"{actor.username} may not change another account's password")
        now = self._clock()
        with self._db as conn:
            account = _get_account(conn, account_id)
            stored = conn.execute("SELECT password_hash FROM desk_accounts WHERE id = ?", (account_id,)).fetchone()[0]
        validate_password(new_password, account.username)
        if not actor.can("account.manage") and not self.passwords.verify(stored, current_password or ""):
            raise BadCredentials("the current password is wrong")
        hashed = self.passwords.hash(new_password)

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE desk_accounts SET password_hash = ?, updated_at = ? WHERE id = ?",
                (hashed, audit.iso(now), account_id),
            )
            conn.execute("DELETE FROM desk_sessions WHERE account_id = ?", (account_id,))
            audit.append(
                conn, at_s=now, actor=actor.username, action="account.password", target=f"account:{account_id}"
            )

        self._db.transaction(work)

    # -- sessions ---------------------------------------------------------------------------------------------

    def login(self, username: str, password: str, ip: str) -> Session:
        """Check the password (throttled, see ``LoginThrottle``) and open a session; rehash an old-style hash.

        Raises ``Throttled`` before any password check while the account or address must wait, and
        ``BadCredentials`` for an unknown, disabled or wrongly-passworded account alike (same time, same answer).
        """
        with self._throttle_lock:
            wait = self.throttle.wait(username, ip)
        if wait > 0:
            raise Throttled(wait)
        name = username.strip().casefold()
        with self._db as conn:
            row = conn.execute("SELECT * FROM desk_accounts WHERE username = ?", (name,)).fetchone()
        if row is None or len(password) > MAX_PASSWORD:
            self.passwords.burn(password[:MAX_PASSWORD])
            ok = False
        else:
            ok = self.passwords.verify(row["password_hash"], password)
        if not ok or row is None or row["disabled"]:
            with self._throttle_lock:
                self.throttle.failed(username, ip)
            raise BadCredentials("wrong username or password")
        with self._throttle_lock:
            self.throttle.succeeded(username)
        rehashed = self.passwords.hash(password) if self.passwords.needs_rehash(row["password_hash"]) else None
        session_id = new_secret()
        csrf = csrf_token(session_id)
        now = self._clock()
        account = _account(row)

        def work(conn: sqlite3.Connection) -> None:
            if rehashed is not None:
                conn.execute("UPDATE desk_accounts SET password_hash = ? WHERE id = ?", (rehashed, account.id))
            conn.execute(
                "INSERT INTO desk_sessions (id_hash, account_id, csrf_hash, created_s, last_seen_s)"
                " VALUES (?, ?, ?, ?, ?)",
                (digest(session_id), account.id, digest(csrf), now, now),
            )
            # Bounded per account: the oldest sessions beyond the cap end.
            conn.execute(
                "DELETE FROM desk_sessions WHERE account_id = ? AND id_hash NOT IN"
                " (SELECT id_hash FROM desk_sessions WHERE account_id = ? ORDER BY created_s DESC LIMIT ?)",
                (account.id, account.id, self.policy.max_per_account),
            )
            audit.append(conn, at_s=now, actor=account.username, action="session.login", target=f"ip:{ip}")

        self._db.transaction(work)
        return Session(id=session_id, csrf=csrf, account=account, expires_s=now + self.policy.lifetime_s)

    def session(self, session_id: str | None) -> Principal | None:
        """The principal of a live session (its account's current roles), else None; an ended session is deleted."""
        if not session_id:
            return None
        key = digest(session_id)
        now = self._clock()

        def work(conn: sqlite3.Connection) -> Principal | None:
            row = conn.execute(
                "SELECT s.created_s, s.last_seen_s, a.* FROM desk_sessions s"
                " JOIN desk_accounts a ON a.id = s.account_id WHERE s.id_hash = ?",
                (key,),
            ).fetchone()
            if row is None:
                return None
            if row["disabled"] or self.policy.state(row["created_s"], row["last_seen_s"], now) != "valid":
                conn.execute("DELETE FROM desk_sessions WHERE id_hash = ?", (key,))
                return None
            if now - row["last_seen_s"] >= self.policy.touch_every_s:
                conn.execute("UPDATE desk_sessions SET last_seen_s = ? WHERE id_hash = ?", (now, key))
            account = _account(row)
            return Principal(account_id=account.id, username=account.username, roles=account.roles, via="session")

        return self._db.transaction(work)

    def csrf_ok(self, session_id: str | None, token: str | None) -> bool:
        """Does ``token`` (the ``X-CSRF-Token`` header) belong to this session? Constant-time; missing → False."""
        if not session_id or not token:
            return False
        with self._db as conn:
            row = conn.execute(
                "SELECT csrf_hash FROM desk_sessions WHERE id_hash = ?", (digest(session_id),)
            ).fetchone()
        return row is not None and secret_matches(row["csrf_hash"], token)

    def logout(self, session_id: str | None) -> None:
        if not session_id:
            return
        self._db.transaction(lambda c: c.execute("DELETE FROM desk_sessions WHERE id_hash = ?", (digest(session_id),)))

    def purge_sessions(self) -> int:
        """Delete every expired or idle session; returns how many."""
        now = self._clock()
        cur = self._db.transaction(
            lambda c: c.execute(
                "DELETE FROM desk_sessions WHERE created_s <= ? OR last_seen_s <= ?",
                (now - self.policy.lifetime_s, now - self.policy.idle_s),
            )
        )
        return cur.rowcount

    # -- API tokens -------------------------------------------------------------------------------------------

    def create_api_token(self, actor: Principal, account_id: int, label: str = "") -> tuple[str, ApiToken]:
        """A new token for ``account_id`` (its own, or any with ``account.manage``): ``(token, record)``.

        The token is in this answer only; the database keeps its digest and its prefix.
        """
        if actor.account_id != account_id:
            _require(actor, "account.manage")
        label = " ".join(label.split())
        if len(label) > MAX_TOKEN_LABEL:
            raise AccountError("label", f"a token label is at most {MAX_TOKEN_LABEL} characters")
        token, prefix, token_digest = new_api_token()
        now = self._clock()

        def work(conn: sqlite3.Connection) -> ApiToken:
            _get_account(conn, account_id)
            live = conn.execute(
                "SELECT COUNT(*) FROM desk_api_tokens WHERE account_id = ? AND revoked_at IS NULL", (account_id,)
            ).fetchone()[0]
            if live >= MAX_TOKENS_PER_ACCOUNT:
                raise AccountConflict("tokens", f"an account has at most {MAX_TOKENS_PER_ACCOUNT} live tokens")
            cur = conn.execute(
                "INSERT INTO desk_api_tokens (account_id, prefix, digest, label, created_at) VALUES (?, ?, ?, ?, ?)",
                (account_id, prefix, token_digest, label, audit.iso(now)),
            )
            record = _token(conn.execute("SELECT * FROM desk_api_tokens WHERE id = ?", (cur.lastrowid,)).fetchone())
            audit.append(
                conn,
                at_s=now,
                actor=actor.username,
                action="token.create",
                target=f"account:{account_id}",
                after=record.to_json(),
            )
            return record

        return token, self._db.transaction(work)

    def api_tokens(self, actor: Principal, account_id: int) -> list[ApiToken]:
        if actor.account_id != account_id:
            _require(actor, "account.manage")
        with self._db as conn:
            rows = conn.execute("SELECT * FROM desk_api_tokens WHERE account_id = ? ORDER BY id", (account_id,))
            return [_token(r) for r in rows]

    def revoke_api_token(self, actor: Principal, token_id: int) -> ApiToken:
        now = self._clock()

        def work(conn: sqlite3.Connection) -> ApiToken:
            row = conn.execute("SELECT * FROM desk_api_tokens WHERE id = ?", (token_id,)).fetchone()
            if row is None:
                raise NotFound(f"token {token_id}")
            before = _token(row)
            if actor.account_id != before.account_id:
                _require(actor, "account.manage")
            if before.revoked_at is not None:
                return before
            conn.execute("UPDATE desk_api_tokens SET revoked_at = ? WHERE id = ?", (audit.iso(now), token_id))
            after = _token(conn.execute("SELECT * FROM desk_api_tokens WHERE id = ?", (token_id,)).fetchone())
            audit.append(
                conn,
                at_s=now,
                actor=actor.username,
                action="token.revoke",
                target=f"token:{token_id}",
                before=before.to_json(),
                after=after.to_json(),
            )
            return after

        return self._db.transaction(work)

    def principal_for_bearer(self, token: str, operator_token: str = "") -> Principal | None:
        """The principal of ``Authorization: Bearer <token>``: a live API token of an enabled account, or the
        bootstrap admin (``OPERATOR_TOKEN``) while no enabled admin account exists; else None."""
        prefix = api_token_prefix(token)
        if prefix is None:
            if bootstrap_matches(token, operator_token) and not self.has_admin():
                return bootstrap_principal()
            return None
        now = self._clock()

        def work(conn: sqlite3.Connection) -> Principal | None:
            row = conn.execute(
                "SELECT t.id AS token_id, t.digest, t.revoked_at, t.last_used_s, a.* FROM desk_api_tokens t"
                " JOIN desk_accounts a ON a.id = t.account_id WHERE t.prefix = ?",
                (prefix,),
            ).fetchone()
            if row is None or not secret_matches(row["digest"], token) or row["revoked_at"] or row["disabled"]:
                return None
            if row["last_used_s"] is None or now - row["last_used_s"] >= _TOKEN_TOUCH_S:
                conn.execute("UPDATE desk_api_tokens SET last_used_s = ? WHERE id = ?", (now, row["token_id"]))
            account = _account(row)
            return Principal(account_id=account.id, username=account.username, roles=account.roles, via="token")

        return self._db.transaction(work)

    # -- audit ------------------------------------------------------------------------------------------------

    def record(
        self, actor: Principal, action: str, target: str | None = None, *, before: Any = None, after: Any = None
    ) -> int:
        """Add an audit entry for a staff action done elsewhere (a vote, a correction, a stage); returns its id."""
        now = self._clock()
        return self._db.transaction(
            lambda c: audit.append(
                c, at_s=now, actor=actor.username, action=action, target=target, before=before, after=after
            )
        )

    def audit_log(
        self, actor: Principal, *, before_id: int | None = None, limit: int = 50, action: str | None = None
    ) -> list[audit.AuditEntry]:
        _require(actor, "audit.read")
        with self._db as conn:
            return audit.read(conn, before_id=before_id, limit=limit, action=action)


def _get_account(conn: sqlite3.Connection, account_id: int) -> Account:
    row = conn.execute("SELECT * FROM desk_accounts WHERE id = ?", (account_id,)).fetchone()
    if row is None:
        raise NotFound(f"account {account_id}")
    return _account(row)


def _admins(conn: sqlite3.Connection) -> int:
    return int(
        conn.execute(
            "SELECT COUNT(*) FROM desk_accounts, json_each(desk_accounts.roles)"
            " WHERE json_each.value = 'admin' AND disabled = 0"
        ).fetchone()[0]
    )
