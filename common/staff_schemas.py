"""The staff API's shapes, defined once: ``desk/api.py`` validates with them, ``archive/schemas.py`` documents them.

They live in ``common`` because both of those read them and neither may import the other. Strict pydantic models,
as in ``archive/schemas.py``: what ``/openapi.json`` says is valid is what the server accepts. Each field's
``description`` completes "``<field>`` must be …".

The rules of ``desk/accounts.py`` (username, password length, roles, display name) are written here as patterns
and lengths too, so a request the document calls valid is not refused for its form; what depends on the state
(a taken name, the last admin, a password that contains the username) is a 409 or a 422 with ``field``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Mirrors desk.accounts (USERNAME, MIN/MAX_PASSWORD, MAX_DISPLAY_NAME, ROLES); tests/test_staff_api.py checks it.
USERNAME_REGEX = "^[A-Za-z0-9][A-Za-z0-9._-]{2,31}$"
PASSWORD_MIN = 12
PASSWORD_MAX = 256
DISPLAY_NAME_MAX = 100
TOKEN_LABEL_MAX = 100
AUDIT_LIMIT_MAX = 200
ACTION_MAX = 64
SEQ_MAX = 2**63 - 1
Role = Literal["operator", "editor", "moderator", "admin"]
_ROLES = "a list of one or more of operator, editor, moderator, admin"
# Printable: no C0 control characters (a display name is shown on pages and in the audit log).
_PRINTABLE = "^[^\\x00-\\x1f\\x7f]*$"

_STRICT = ConfigDict(strict=True, extra="forbid", regex_engine="python-re")


# ---- requests ------------------------------------------------------------------------------------------------


class Login(BaseModel):
    model_config = _STRICT
    # Any text up to the limits: a login never says whether a name exists, so it does not check its form either.
    username: str = Field(min_length=1, max_length=64, description="text of 1 to 64 characters")
    password: str = Field(min_length=1, max_length=PASSWORD_MAX, description=f"text of 1 to {PASSWORD_MAX} characters")


class NewAccount(BaseModel):
    model_config = _STRICT
    username: str = Field(
        pattern=USERNAME_REGEX,
        description="3-32 characters: letters, digits, '.', '_', '-', starting with a letter or digit",
    )
    password: str = Field(
        min_length=PASSWORD_MIN,
        max_length=PASSWORD_MAX,
        description=f"{PASSWORD_MIN} to {PASSWORD_MAX} characters, not containing the username",
    )
    roles: list[Role] = Field(min_length=1, max_length=4, description=_ROLES)
    display_name: str = Field(
        "",
        max_length=DISPLAY_NAME_MAX,
        pattern=_PRINTABLE,
        description=f"at most {DISPLAY_NAME_MAX} printable characters",
    )


class AccountPatch(BaseModel):
    """Any of: new roles, disabled or enabled, a new display name, a new password (which ends its sessions)."""

    model_config = _STRICT
    roles: list[Role] | None = Field(None, min_length=1, max_length=4, description=_ROLES)
    disabled: bool | None = Field(None, description="true (sign-in refused, sessions ended) or false")
    display_name: str | None = Field(
        None,
        max_length=DISPLAY_NAME_MAX,
        pattern=_PRINTABLE,
        description=f"at most {DISPLAY_NAME_MAX} printable characters",
    )
    password: str | None = Field(
        None,
        min_length=PASSWORD_MIN,
        max_length=PASSWORD_MAX,
        description=f"{PASSWORD_MIN} to {PASSWORD_MAX} characters, not containing the username",
    )
    current_password: str | None = Field(
        None, max_length=PASSWORD_MAX, description="your current password (changing your own without admin)"
    )


class NewToken(BaseModel):
    model_config = _STRICT
    label: str = Field("", max_length=TOKEN_LABEL_MAX, description=f"text of at most {TOKEN_LABEL_MAX} characters")


class AccountPath(BaseModel):
    model_config = ConfigDict(strict=True)
    account_id: int = Field(ge=1, le=SEQ_MAX, description=f"an account id, 1 to {SEQ_MAX}")


class TokenPath(BaseModel):
    model_config = ConfigDict(strict=True)
    token_id: int = Field(ge=1, le=SEQ_MAX, description=f"a token id, 1 to {SEQ_MAX}")


class AuditQuery(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")
    before: int | None = Field(None, ge=1, le=SEQ_MAX, description="an entry id: only older entries (paging)")
    limit: int = Field(50, ge=1, le=AUDIT_LIMIT_MAX, description=f"an integer from 1 to {AUDIT_LIMIT_MAX}")
    action: str | None = Field(
        None,
        max_length=ACTION_MAX,
        pattern="^[a-z_.]+$",
        description="an action name such as vote.record or account.create",
    )


# ---- responses -----------------------------------------------------------------------------------------------


class _Ok(BaseModel):
    ok: Literal[True]


class AccountOut(BaseModel):
    id: int
    username: str
    display_name: str
    roles: list[str]
    disabled: bool
    created_at: str


class PrincipalOut(BaseModel):
    username: str
    account_id: int | None
    roles: list[str]
    permissions: list[str]
    via: Literal["session", "token", "bootstrap"]


class ApiTokenOut(BaseModel):
    id: int
    account_id: int
    prefix: str
    label: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class AuditEntryOut(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    target: str | None
    before: Any
    after: Any


class LoginOut(_Ok):
    account: AccountOut
    principal: PrincipalOut
    csrf: str = Field(description="send it back as the X-CSRF-Token header on every POST, PATCH and DELETE")
    expires_at: str


class LogoutOut(_Ok):
    signed_out: bool


class MeOut(_Ok):
    principal: PrincipalOut
    account: AccountOut | None
    csrf: str | None = Field(description="the session's CSRF token; null for a bearer token")


class AccountList(_Ok):
    accounts: list[AccountOut]


class AccountOne(_Ok):
    account: AccountOut


class TokenList(_Ok):
    tokens: list[ApiTokenOut]


class TokenCreated(_Ok):
    token: str = Field(description="the API token itself: shown in this answer only, never again")
    api_token: ApiTokenOut


class TokenOne(_Ok):
    api_token: ApiTokenOut


class AuditOut(_Ok):
    entries: list[AuditEntryOut]
    next_before: int | None = Field(description="pass as ?before= for the next (older) page; null on the last")


class FeedsOut(_Ok):
    broker: Literal["ok", "down"]
    subscriptions: int
    viewers: dict[str, int] = Field(description="open WebSocket and SSE connections, by transport")
    feeds: list[dict[str, Any]] = Field(description="each live feed's /healthz state with lag_s")
