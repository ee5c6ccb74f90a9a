"""The staff API: sign-in, sessions, accounts, API tokens, the audit log, and the authoriser every staff route uses.

``StaffAPI(accounts, operator_token=...)`` serves ``/api/staff/...`` (``routes()``) and gives the rest of the
app two callables, which ``server.py`` injects into ``ArchiveAPI`` (archive may not import desk):

* ``authorise(request, permission)`` → the ``Principal`` or an error answer. Credentials, in this order:
  ``Authorization: Bearer`` (a per-account API token, or ``OPERATOR_TOKEN`` while no admin account exists),
  else the session cookie; a cookie-authenticated POST, PUT, PATCH or DELETE must also carry ``X-CSRF-Token``.
  None → 401; a forged or missing CSRF token, or a role without ``permission`` → 403; ``permission=None`` asks
  only for a signed-in principal (your own tokens, ``/me``).
* ``audit(principal, action, target, before, after)``: one entry in the append-only log (``desk/audit.py``).

The session cookie is ``__Host-sapha_session``: Secure, HttpOnly, SameSite=Strict, Path=/. Browsers keep a Secure
cookie only from a secure context: HTTPS, or plain HTTP on loopback (``127.0.0.1``, ``localhost``), which Chromium
and Firefox count as secure, so the local console and the browser tests need no other name. Anywhere else the
console must be served over HTTPS (a TLS-terminating proxy in front), or the browser drops the cookie.

The CSRF token is an HMAC of the session id (``desk.accounts.csrf_token``): ``GET /api/staff/me`` can give it
again to a reloaded page, and only the holder of the HttpOnly cookie can get it. SameSite=Strict already keeps the
cookie off cross-site requests; the token is the second lock.

Every ``AccountStore`` call blocks (SQLite, Argon2), so each runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from common.http import JSONUnicodeResponse, json_error, read_body_capped
from common.staff_schemas import AccountPatch, AuditQuery, Login, NewAccount, NewToken
from desk import audit
from desk.accounts import (
    ALL_PERMISSIONS,
    SESSION_COOKIE,
    AccountConflict,
    AccountError,
    Principal,
    csrf_token,
    session_cookie,
)
from desk.accounts_sqlite import AccountStore, BadCredentials, Forbidden, NotFound, Throttled
from desk.ratelimit import retry_after_header

M = TypeVar("M", bound=BaseModel)
Authorise = Callable[[Request, str | None], Awaitable["Principal | Response"]]

BODY_LIMIT = 16 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
# test_api.py and every client written before accounts read this prefix.
UNAUTHENTICATED = "operator token required"
_ID_DIGITS = 19  # 2**63 - 1 has 19 digits
_ID_MAX = 2**63 - 1  # SQLite's largest integer


class _Invalid(Exception):
    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def ok(payload: Mapping[str, Any], status: int = 200) -> JSONResponse:
    return JSONUnicodeResponse({"ok": True, **payload}, status_code=status)


def principal_json(principal: Principal) -> dict[str, Any]:
    return {
        "username": principal.username,
        "account_id": principal.account_id,
        "roles": sorted(principal.roles),
        "permissions": sorted(p for p in ALL_PERMISSIONS if principal.can(p)),
        "via": principal.via,
    }


def _field_error(model: type[BaseModel], exc: ValidationError, status: int) -> _Invalid:
    error = exc.errors()[0]
    if error["type"] == "json_invalid":
        return _Invalid(status, "body", "must be valid JSON")
    if not error["loc"]:
        return _Invalid(status, "body", "must be a JSON object")
    field = str(error["loc"][0])
    if error["type"] == "missing":
        return _Invalid(status, field, "is required")
    if error["type"] == "extra_forbidden":
        return _Invalid(status, field, f"unknown field; allowed: {', '.join(sorted(model.model_fields))}")
    info = model.model_fields.get(field)
    described = info.description if info is not None else None
    return _Invalid(status, field, f"must be {described}" if described else str(error["msg"]))


async def _body(request: Request, model: type[M]) -> M:
    raw = await read_body_capped(request, BODY_LIMIT)  # BodyTooLarge: the app's handler answers 413
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _field_error(model, exc, 422) from None


def _query(request: Request, model: type[M]) -> M:
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        raw = request.query_params.get(name)
        if raw is None:
            continue
        if info.annotation in (int, int | None):
            if not (raw.isascii() and raw.isdigit() and len(raw) <= _ID_DIGITS):
                raise _Invalid(400, name, f"must be {info.description}")
            data[name] = int(raw)
        else:
            data[name] = raw
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _field_error(model, exc, 400) from None


def _path_id(request: Request, name: str) -> int:
    """A positive 63-bit id from the path; anything else names nothing (404)."""
    raw = request.path_params.get(name, "")
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= _ID_DIGITS):
        raise NotFound(f"no such {name.removesuffix('_id')}")
    if not 1 <= int(raw) <= _ID_MAX:
        raise NotFound(f"no such {name.removesuffix('_id')}")
    return int(raw)


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class StaffAPI:
    """The staff routes over one ``AccountStore``, given now or by ``open`` (the server's lifespan opens it)."""

    def __init__(self, accounts: AccountStore | None = None, *, operator_token: str) -> None:
        self._accounts = accounts
        self._operator_token = operator_token

    @property
    def accounts(self) -> AccountStore:
        if self._accounts is None:
            raise RuntimeError("the staff account store is not open (the app's lifespan opens it)")
        return self._accounts

    def open(self, accounts: AccountStore) -> None:
        self._accounts = accounts

    # ---- who is asking -----------------------------------------------------------------------------------------

    async def authorise(self, request: Request, permission: str | None) -> Principal | Response:
        """The request's principal, holding ``permission`` (None: any signed-in principal), or the error answer."""
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, given = header.partition(" ")
            principal = None
            if scheme.lower() == "bearer" and given.strip():
                principal = await asyncio.to_thread(
                    self.accounts.principal_for_bearer, given.strip(), self._operator_token
                )
            if principal is None:
                return json_error(401, f"{UNAUTHENTICATED}: this bearer token is unknown, revoked or retired")
        else:
            session_id = request.cookies.get(SESSION_COOKIE)
            principal = await asyncio.to_thread(self.accounts.session, session_id) if session_id else None
            if principal is None or session_id is None:
                said = "the session has ended; sign in again" if session_id else "sign in, or send a bearer token"
                return json_error(401, f"{UNAUTHENTICATED}: {said}")
            if request.method not in SAFE_METHODS:
                given_csrf = request.headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(csrf_token(session_id).encode(), given_csrf.encode("utf-8", "replace")):
                    return json_error(403, f"missing or wrong {CSRF_HEADER} header", field=CSRF_HEADER)
        if permission is not None and not principal.can(permission):
            roles = ", ".join(sorted(principal.roles))
            return json_error(403, f"{principal.username} ({roles}) may not do this: it needs {permission}")
        request.state.principal = principal
        return principal

    async def audit(
        self, principal: Any, action: str, target: str | None, before: Any = None, after: Any = None
    ) -> None:
        """Record a staff action done elsewhere (the archive's operator calls)."""
        await asyncio.to_thread(self.accounts.record, principal, action, target, before=before, after=after)

    def guarded(
        self, permission: str | None, handler: Callable[[Request, Principal], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """``handler(request, principal)`` behind ``authorise``, with the store's errors mapped to answers."""

        async def endpoint(request: Request) -> Response:
            principal = await self.authorise(request, permission)
            if isinstance(principal, Response):
                return principal
            try:
                return await handler(request, principal)
            except _Invalid as exc:
                return json_error(exc.status, exc.message, field=exc.field)
            except AccountConflict as exc:
                return json_error(409, str(exc), field=exc.field)
            except AccountError as exc:
                return json_error(422, str(exc), field=exc.field)
            except Forbidden as exc:
                return json_error(403, str(exc))
            except NotFound as exc:
                return json_error(404, str(exc).strip("'\""))
            except BadCredentials as exc:
                return json_error(403, str(exc), field="current_password")

        endpoint.__name__ = handler.__name__
        return endpoint

    # ---- sessions ----------------------------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        try:
            body = await _body(request, Login)
        except _Invalid as exc:
            return json_error(exc.status, exc.message, field=exc.field)
        try:
            session = await asyncio.to_thread(self.accounts.login, body.username, body.password, _client_ip(request))
        except Throttled as exc:
            throttled = json_error(429, str(exc), retry_after=int(retry_after_header(exc.retry_after)))
            throttled.headers["Retry-After"] = retry_after_header(exc.retry_after)
            return throttled
        except BadCredentials:
            return json_error(401, "wrong username or password")
        principal = Principal(session.account.id, session.account.username, session.account.roles, "session")
        response = ok(
            {
                "account": session.account.to_json(),
                "principal": principal_json(principal),
                "csrf": session.csrf,
                "expires_at": audit.iso(session.expires_s),
            }
        )
        response.set_cookie(**session_cookie(session.id, self.accounts.policy))
        return response

    async def logout(self, request: Request) -> Response:
        """Ends the cookie's session (CSRF-checked, so another site cannot sign staff out) and clears the cookie."""
        session_id = request.cookies.get(SESSION_COOKIE)
        live = session_id is not None and await asyncio.to_thread(self.accounts.session, session_id) is not None
        if live and session_id is not None:
            given = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(csrf_token(session_id).encode(), given.encode("utf-8", "replace")):
                return json_error(403, f"missing or wrong {CSRF_HEADER} header", field=CSRF_HEADER)
            await asyncio.to_thread(self.accounts.logout, session_id)
        response = ok({"signed_out": live})
        response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return response

    async def me(self, request: Request, principal: Principal) -> Response:
        account = None
        if principal.account_id is not None:
            account = (await asyncio.to_thread(self.accounts.account, principal.account_id)).to_json()
        session_id = request.cookies.get(SESSION_COOKIE) if principal.via == "session" else None
        return ok(
            {
                "principal": principal_json(principal),
                "account": account,
                "csrf": csrf_token(session_id) if session_id else None,
            }
        )

    # ---- accounts ----------------------------------------------------------------------------------------------

    async def list_accounts(self, request: Request, principal: Principal) -> Response:
        found = await asyncio.to_thread(self.accounts.accounts, principal)
        return ok({"accounts": [a.to_json() for a in found]})

    async def create_account(self, request: Request, principal: Principal) -> Response:
        body = await _body(request, NewAccount)
        account = await asyncio.to_thread(
            self.accounts.create_account, principal, body.username, body.password, body.roles, body.display_name
        )
        return ok({"account": account.to_json()}, status=201)

    async def update_account(self, request: Request, principal: Principal) -> Response:
        account_id = _path_id(request, "account_id")
        body = await _body(request, AccountPatch)
        own = principal.account_id == account_id
        if not principal.can("account.manage") and not (
            own and body.model_fields_set <= {"password", "current_password"}
        ):
            raise Forbidden(f"{principal.username} may not change this account")
        await asyncio.to_thread(self.accounts.account, account_id)  # 404 before any other answer
        if body.password is not None:
            await asyncio.to_thread(
                self.accounts.set_password,
                principal,
                account_id,
                body.password,
                current_password=body.current_password,
            )
        if {"roles", "disabled", "display_name"} & body.model_fields_set:
            account = await asyncio.to_thread(
                self.accounts.update_account,
                principal,
                account_id,
                roles=body.roles,
                disabled=body.disabled,
                display_name=body.display_name,
            )
        else:
            account = await asyncio.to_thread(self.accounts.account, account_id)
        return ok({"account": account.to_json()})

    # ---- API tokens --------------------------------------------------------------------------------------------

    async def list_tokens(self, request: Request, principal: Principal) -> Response:
        account_id = _path_id(request, "account_id")
        if principal.account_id != account_id and not principal.can("account.manage"):
            raise Forbidden(f"{principal.username} may not see another account's tokens")
        await asyncio.to_thread(self.accounts.account, account_id)
        tokens = await asyncio.to_thread(self.accounts.api_tokens, principal, account_id)
        return ok({"tokens": [t.to_json() for t in tokens]})

    async def create_token(self, request: Request, principal: Principal) -> Response:
        account_id = _path_id(request, "account_id")
        body = await _body(request, NewToken)
        token, record = await asyncio.to_thread(self.accounts.create_api_token, principal, account_id, body.label)
        return ok({"token": token, "api_token": record.to_json()}, status=201)

    async def revoke_token(self, request: Request, principal: Principal) -> Response:
        token_id = _path_id(request, "token_id")
        record = await asyncio.to_thread(self.accounts.revoke_api_token, principal, token_id)
        return ok({"api_token": record.to_json()})

    # ---- the audit log -----------------------------------------------------------------------------------------

    async def audit_log(self, request: Request, principal: Principal) -> Response:
        query = _query(request, AuditQuery)
        entries = await asyncio.to_thread(
            self.accounts.audit_log, principal, before_id=query.before, limit=query.limit, action=query.action
        )
        more = len(entries) == query.limit and entries[-1].id > 1
        return ok({"entries": [e.to_json() for e in entries], "next_before": entries[-1].id if more else None})

    def routes(self) -> list[Route]:
        g = self.guarded
        return [
            Route("/api/staff/login", self.login, methods=["POST"]),
            Route("/api/staff/logout", self.logout, methods=["POST"]),
            Route("/api/staff/me", g(None, self.me), methods=["GET"]),
            Route("/api/staff/accounts", g("account.manage", self.list_accounts), methods=["GET"]),
            Route("/api/staff/accounts", g("account.manage", self.create_account), methods=["POST"]),
            Route("/api/staff/accounts/{account_id}", g(None, self.update_account), methods=["PATCH"]),
            Route("/api/staff/accounts/{account_id}/tokens", g(None, self.list_tokens), methods=["GET"]),
            Route("/api/staff/accounts/{account_id}/tokens", g(None, self.create_token), methods=["POST"]),
            Route("/api/staff/tokens/{token_id}", g(None, self.revoke_token), methods=["DELETE"]),
            Route("/api/staff/audit", g("audit.read", self.audit_log), methods=["GET"]),
        ]
