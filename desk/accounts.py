"""Staff accounts, sans-I/O: roles and their permissions, password hashing, sessions, CSRF and API tokens.

Storage and the login flow are ``desk/accounts_sqlite.py``; failed-login counting is ``desk/ratelimit.py``.

Roles (an account may hold several; ``PERMISSIONS`` is the one table every endpoint checks through ``can``):

* ``operator``: sittings, the agenda, the speaker, votes, caption corrections, bill stages, feed health;
* ``editor``: news and documents (publications);
* ``moderator``: the public's messages, their contact data and attachments;
* ``admin``: accounts (create, roles, disable, passwords, anyone's API tokens) and the audit log.

No role implies another: an admin who also runs sittings holds ``admin`` and ``operator``.

Secrets: session ids, CSRF tokens and API tokens are 256-bit random values; only their SHA-256 digests are
stored (a fast hash is right here: the values are random, not guessable passwords), so a copy of the database
lets no one sign in. Passwords are hashed with Argon2id (``argon2-cffi``); a hash made under older parameters is
replaced at the next successful login.

Wiring (server and console, to do):

* ``POST /api/login`` ``{"username", "password"}`` → ``AccountStore.login``; answer sets the cookie with
  ``session_cookie(session.id, policy)`` (``__Host-`` name, Secure, HttpOnly, SameSite=Strict, Path=/) and returns
  ``{"ok": true, "csrf": session.csrf, "account": ...}``; 401 on a wrong password, 429 + ``Retry-After`` when
  throttled. ``POST /api/logout`` → ``AccountStore.logout``.
* every staff request: the ``Principal`` comes from the session cookie (``AccountStore.session``) or from
  ``Authorization: Bearer`` (``AccountStore.principal_for_bearer``: an API token, or ``OPERATOR_TOKEN`` while no
  admin account exists); a cookie-authenticated unsafe method (POST, PUT, PATCH, DELETE) also needs header
  ``X-CSRF-Token`` matching its session (``AccountStore.csrf_ok``), else 403 — bearer requests carry no ambient
  credential and need none; then ``principal.can(permission)`` or 403; no principal → 401.
* ``OPERATOR_TOKEN`` (docs/api.md, "The bootstrap admin") is the bootstrap admin: on a fresh install, with no
  admin account, it holds every role (it is what ran sittings before there were accounts, and it creates the
  first ones); once an enabled admin account exists it authenticates nothing and machines use per-account API
  tokens.

The HTTP side is ``desk/api.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ROLES = ("operator", "editor", "moderator", "admin")
PERMISSIONS: Mapping[str, frozenset[str]] = {
    "operator": frozenset(
        {
            "sitting.manage",
            "agenda.set",
            "speaker.set",
            "vote.record",
            "caption.correct",
            "bill.stage",
            "feed.read",
        }
    ),
    "editor": frozenset({"news.write", "news.publish", "document.write"}),
    "moderator": frozenset({"message.read", "message.triage", "message.contact.read", "attachment.read"}),
    "admin": frozenset({"account.manage", "audit.read"}),
}
ALL_PERMISSIONS = frozenset().union(*PERMISSIONS.values())
BOOTSTRAP = "bootstrap"

USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,31}")
MIN_PASSWORD = 12
# Argon2 hashes any length, but a megabyte password per login attempt is work an attacker chooses for us.
MAX_PASSWORD = 256
MAX_DISPLAY_NAME = 100
API_TOKEN_PREFIX = "sapha_"
_API_TOKEN = re.compile(r"sapha_([0-9a-f]{8})_[A-Za-z0-9_-]{43}")


class AccountError(ValueError):
    """Input refused (a 422): ``field`` names what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class AccountConflict(AccountError):
    """Well-formed input that the current state refuses (a 409): a taken username, the last admin, too many tokens."""


def can(roles: Iterable[str], permission: str) -> bool:
    """True when any of ``roles`` grants ``permission`` (unknown roles grant nothing)."""
    if permission not in ALL_PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")  # a typo in an endpoint must not silently deny
    return any(permission in PERMISSIONS.get(role, ()) for role in roles)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is making a request: an account (by session or API token) or the bootstrap admin."""

    account_id: int | None
    username: str
    roles: frozenset[str]
    via: Literal["session", "token", "bootstrap"]

    def can(self, permission: str) -> bool:
        return can(self.roles, permission)


def bootstrap_principal() -> Principal:
    """The ``OPERATOR_TOKEN`` of a fresh install: every role, since before accounts it ran everything."""
    return Principal(account_id=None, username=BOOTSTRAP, roles=frozenset(ROLES), via="bootstrap")


def validate_username(username: str) -> str:
    name = username.strip().casefold()
    if not USERNAME.fullmatch(name):
        raise AccountError("username", "a username is 3-32 characters: a-z, 0-9, '.', '_', '-', starting alnum")
    if name in (BOOTSTRAP, "system"):
        raise AccountError("username", f"{name!r} is reserved")
    return name


def validate_password(password: str, username: str = "") -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError("password", f"a password is {MIN_PASSWORD}-{MAX_PASSWORD} characters")
    if username and username.casefold() in password.casefold():
        raise AccountError("password", "a password must not contain the username")
    return password


def validate_roles(roles: Iterable[str]) -> frozenset[str]:
    out = frozenset(roles)
    unknown = sorted(out - set(ROLES))
    if unknown:
        raise AccountError("roles", f"unknown roles: {', '.join(unknown)}; roles are {', '.join(ROLES)}")
    if not out:
        raise AccountError("roles", "an account needs at least one role")
    return out


def validate_display_name(name: str) -> str:
    name = " ".join(name.split())
    if len(name) > MAX_DISPLAY_NAME or any(ord(ch) < 32 for ch in name):
        raise AccountError("display_name", f"a display name is at most {MAX_DISPLAY_NAME} printable characters")
    return name


class Passwords:
    """Argon2id hashing; ``verify`` also says whether the stored hash should be replaced (new parameters)."""

    def __init__(self, hasher: argon2.PasswordHasher | None = None) -> None:
        self._hasher = hasher or argon2.PasswordHasher()
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)

    def burn(self, password: str) -> None:
        """Verify against a throwaway hash: an unknown username then costs as long as a wrong password."""
        if self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        self.verify(self._dummy, password)


def digest(secret: str) -> str:
    """SHA-256 hex of a random secret (session id, CSRF token, API token): what the database keeps."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(stored_digest: str | None, given: str | None) -> bool:
    """Constant-time: does ``given`` hash to ``stored_digest``? Missing either side never matches."""
    if not stored_digest or not given:
        return False
    return hmac.compare_digest(digest(given), stored_digest)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def csrf_token(session_id: str) -> str:
    """The CSRF token of a session: an HMAC keyed by the session id, so ``GET /api/staff/me`` can give it again
    to a reloaded page while only the holder of the (HttpOnly) cookie can know it."""
    mac = hmac.new(session_id.encode("utf-8"), b"sapha csrf v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """A session ends ``lifetime_s`` after sign-in, or after ``idle_s`` without a request, whichever comes first."""

    lifetime_s: float = 12 * 3600.0
    idle_s: float = 30 * 60.0
    # last_seen is written at most this often, so reads do not become one write per request.
    touch_every_s: float = 60.0
    max_per_account: int = 20

    def state(self, created_s: float, last_seen_s: float, now: float) -> Literal["valid", "expired", "idle"]:
        if now - created_s >= self.lifetime_s:
            return "expired"
        if now - last_seen_s >= self.idle_s:
            return "idle"
        return "valid"


SESSION_COOKIE = "__Host-sapha_session"


def session_cookie(session_id: str, policy: SessionPolicy) -> dict[str, Any]:
    """Keyword arguments for Starlette's ``Response.set_cookie``: the session cookie and its attributes.

    ``__Host-`` makes browsers refuse it unless Secure, host-only and Path=/; SameSite=Strict keeps it off
    cross-site requests (CSRF's first line; the token is the second); HttpOnly keeps it from scripts.
    """
    return {
        "key": SESSION_COOKIE,
        "value": session_id,
        "max_age": int(policy.lifetime_s),
        "path": "/",
        "secure": True,
        "httponly": True,
        "samesite": "strict",
    }


def new_api_token() -> tuple[str, str, str]:
    """``(token, prefix, digest)``: the token is shown once; the prefix identifies it in lists and logs."""
    prefix = secrets.token_hex(4)
    token = f"{API_TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return token, prefix, digest(token)


def api_token_prefix(token: str) -> str | None:
    """The prefix of a well-formed API token, else None (so garbage is refused without a database read)."""
    match = _API_TOKEN.fullmatch(token)
    return match.group(1) if match else None


def bootstrap_matches(given: str, operator_token: str) -> bool:
    """Constant-time compare with ``OPERATOR_TOKEN``; an unset (empty) setting matches nothing."""
    if not operator_token or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), operator_token.encode("utf-8"))
