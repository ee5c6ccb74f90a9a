"""The staff API over a real server: sign-in, sessions and CSRF, throttling, API tokens, the bootstrap admin, the
role of every operator endpoint in ``OPERATIONS``, and the audit log of what staff did."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import argon2
import httpx
import pytest
from live_server import TOKEN, Running, serve, test_settings

from archive.schemas import OPERATIONS
from common import staff_schemas
from desk import accounts as acc
from desk.accounts import ROLES, SESSION_COOKIE, Passwords
from desk.accounts_sqlite import AccountStore
from desk.ratelimit import LoginThrottle

PASSWORD = "correct horse battery"
BOOT = acc.bootstrap_principal()


class Clock:
    """The store's and the throttle's clock, moved by the test (no sleeping, no timing thresholds)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Site:
    running: Running
    store: AccountStore
    clock: Clock

    @property
    def url(self) -> str:
        return self.running.url

    def account(self, name: str, *roles: str) -> int:
        return self.store.create_account(BOOT, name, PASSWORD, roles).id

    def token(self, account_id: int) -> dict[str, str]:
        token, _ = self.store.create_api_token(BOOT, account_id, "test")
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[AccountStore, Clock]]:
    clock = Clock()
    # Argon2 at test strength: the parameters change nothing under test, only the cost.
    cheap = Passwords(argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    s = AccountStore(tmp_path / "staff.db", passwords=cheap, throttle=LoginThrottle(clock=clock), clock=clock)
    yield s, clock
    s.close()


@pytest.fixture
async def site(tmp_path: Path, store: tuple[AccountStore, Clock]) -> AsyncIterator[Site]:
    accounts, clock = store
    async with serve(test_settings(tmp_path), accounts=accounts) as running:
        yield Site(running, accounts, clock)


@pytest.fixture
async def client(site: Site) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=site.url) as c:
        yield c


@dataclasses.dataclass
class Session:
    cookie: str
    csrf: str
    set_cookie: str

    def headers(self, csrf: str | None = "own") -> dict[str, str]:
        out = {"Cookie": f"{SESSION_COOKIE}={self.cookie}"}
        if csrf is not None:
            out["X-CSRF-Token"] = self.csrf if csrf == "own" else csrf
        return out


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> Session:
    r = await client.post("/api/staff/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    set_cookie = r.headers["set-cookie"]
    # httpx keeps a Secure cookie off plain http (the browser, on loopback, does not): carry it by hand.
    match = re.match(rf"{re.escape(SESSION_COOKIE)}=([^;]+);", set_cookie)
    assert match
    return Session(match.group(1), r.json()["csrf"], set_cookie)


# ---- sessions ----------------------------------------------------------------------------------------------------


async def test_login_sets_a_host_only_secure_httponly_strict_cookie_and_me_gives_the_csrf_token(
    site: Site, client: httpx.AsyncClient
):
    """Signing in sets ``__Host-sapha_session`` (Secure, HttpOnly, SameSite=Strict, Path=/) and answers the CSRF
    token, which ``/api/staff/me`` gives again to a reloaded page."""
    site.account("somchai", "operator")
    session = await login(client, "Somchai")  # names are case-insensitive
    attributes = {a.strip().lower() for a in session.set_cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= attributes
    assert f"max-age={int(site.store.policy.lifetime_s)}" in attributes
    assert not any(a.startswith("domain") for a in attributes)
    me = (await client.get("/api/staff/me", headers=session.headers(csrf=None))).json()
    assert me["csrf"] == session.csrf
    assert me["principal"] == {
        "username": "somchai",
        "account_id": me["account"]["id"],
        "roles": ["operator"],
        "permissions": sorted(acc.PERMISSIONS["operator"]),
        "via": "session",
    }


async def test_wrong_passwords_are_401_then_slowed_with_429_and_retry_after(site: Site, client: httpx.AsyncClient):
    """Wrong passwords answer 401 alike for unknown names; past the free failures the account must wait (429 with
    Retry-After), even with the right password, until the wait is over."""
    site.account("somchai", "operator")
    r = await client.post("/api/staff/login", json={"username": "nobody", "password": PASSWORD})
    assert r.status_code == 401 and r.json()["error"] == "wrong username or password"
    for _ in range(4):
        r = await client.post("/api/staff/login", json={"username": "somchai", "password": "wrong password!"})
        assert r.status_code == 401
    r = await client.post("/api/staff/login", json={"username": "somchai", "password": PASSWORD})
    assert r.status_code == 429 and r.headers["Retry-After"] == "1" and r.json()["retry_after"] == 1
    site.clock.now += 1
    await login(client, "somchai")


async def test_logout_needs_the_csrf_token_and_ends_the_session(site: Site, client: httpx.AsyncClient):
    """Sign-out without the CSRF token is a 403 (another site cannot sign staff out); with it the session ends and
    the cookie is cleared; signing out again is harmless."""
    site.account("somchai", "operator")
    session = await login(client, "somchai")
    assert (await client.post("/api/staff/logout", headers=session.headers(csrf=None))).status_code == 403
    r = await client.post("/api/staff/logout", headers=session.headers())
    assert r.status_code == 200 and r.json()["signed_out"] is True
    assert f'{SESSION_COOKIE}=""' in r.headers["set-cookie"] and "Max-Age=0" in r.headers["set-cookie"]
    r = await client.get("/api/staff/me", headers=session.headers())
    assert r.status_code == 401 and "session has ended" in r.json()["error"]
    r = await client.post("/api/staff/logout", headers=session.headers(csrf=None))
    assert r.status_code == 200 and r.json()["signed_out"] is False


async def test_an_idle_or_old_session_is_401(site: Site, client: httpx.AsyncClient):
    """A session unused for the idle time, or older than its lifetime, no longer authenticates."""
    site.account("somchai", "operator")
    session = await login(client, "somchai")
    site.clock.now += site.store.policy.idle_s - 1
    assert (await client.get("/api/staff/me", headers=session.headers())).status_code == 200
    site.clock.now += site.store.policy.idle_s
    assert (await client.get("/api/staff/me", headers=session.headers())).status_code == 401

    session = await login(client, "somchai")
    for _ in range(int(site.store.policy.lifetime_s // (site.store.policy.idle_s / 2))):
        site.clock.now += site.store.policy.idle_s / 2  # in use all along, but not for ever
        r = await client.get("/api/staff/me", headers=session.headers())
    assert r.status_code == 401


@pytest.mark.parametrize("csrf", [None, "", "forged-token", "ลองดู"])
async def test_a_cookie_request_that_changes_something_needs_its_csrf_token(
    site: Site, client: httpx.AsyncClient, csrf: str | None
):
    """With the session cookie, a POST with no, an empty, a forged or a non-ASCII X-CSRF-Token is a 403 and
    records nothing; reads need no token; with the session's own token the POST goes through."""
    site.account("somchai", "operator")
    session = await login(client, "somchai")
    body = {"id": "senate-csrf", "title": "การประชุม", "chamber": "senate"}
    headers: dict[str, Any] = session.headers(csrf=None)
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf.encode()
    r = await client.post("/api/sittings", json=body, headers=headers)
    assert r.status_code == 403 and r.json()["field"] == "X-CSRF-Token"
    assert (await client.get("/api/sittings/senate-csrf", headers=session.headers(csrf=None))).status_code == 404
    other = await login(client, "somchai")
    assert (await client.post("/api/sittings", json=body, headers=session.headers(other.csrf))).status_code == 403
    assert (await client.post("/api/sittings", json=body, headers=session.headers())).status_code == 201


# ---- tokens and the bootstrap admin --------------------------------------------------------------------------------


async def test_an_api_token_is_shown_once_works_as_bearer_and_stops_when_revoked(site: Site, client: httpx.AsyncClient):
    """An account makes its own token: the answer holds it, the list only its prefix; it authenticates as the
    account (no CSRF needed) until revoked, then 401."""
    site.account("somchai", "operator")
    session = await login(client, "somchai")
    me = (await client.get("/api/staff/me", headers=session.headers())).json()["account"]
    r = await client.post(f"/api/staff/accounts/{me['id']}/tokens", json={"label": "แท็บเล็ต"}, headers=session.headers())
    assert r.status_code == 201
    token, record = r.json()["token"], r.json()["api_token"]
    assert token.startswith(f"sapha_{record['prefix']}_")
    listed = (await client.get(f"/api/staff/accounts/{me['id']}/tokens", headers=session.headers())).json()
    assert token not in str(listed) and listed["tokens"][0]["prefix"] == record["prefix"]

    bearer = {"Authorization": f"Bearer {token}"}
    who = (await client.get("/api/staff/me", headers=bearer)).json()
    assert who["principal"]["via"] == "token" and who["csrf"] is None
    body = {"title": "การประชุม", "chamber": "senate"}
    assert (await client.post("/api/sittings", json=body, headers=bearer)).status_code == 201

    r = await client.delete(f"/api/staff/tokens/{record['id']}", headers=session.headers())
    assert r.status_code == 200 and r.json()["api_token"]["revoked_at"]
    r = await client.post("/api/sittings", json=body, headers=bearer)
    assert r.status_code == 401 and r.json()["error"].startswith("operator token required")


async def test_another_accounts_tokens_are_for_admins_only(site: Site, client: httpx.AsyncClient):
    """An operator cannot list, make or revoke another account's tokens (403); an admin can."""
    other = site.account("wichai", "operator")
    _, record = site.store.create_api_token(BOOT, other)
    op = site.token(site.account("somchai", "operator"))
    admin = site.token(site.account("root", "admin"))
    assert (await client.get(f"/api/staff/accounts/{other}/tokens", headers=op)).status_code == 403
    assert (await client.post(f"/api/staff/accounts/{other}/tokens", json={}, headers=op)).status_code == 403
    assert (await client.delete(f"/api/staff/tokens/{record.id}", headers=op)).status_code == 403
    assert (await client.get(f"/api/staff/accounts/{other}/tokens", headers=admin)).status_code == 200
    assert (await client.delete(f"/api/staff/tokens/{record.id}", headers=admin)).status_code == 200


async def test_operator_token_is_the_bootstrap_admin_until_an_admin_account_exists(
    site: Site, client: httpx.AsyncClient
):
    """On a fresh install OPERATOR_TOKEN creates the first admin (and can run a sitting); from then on it is 401."""
    boot = {"Authorization": f"Bearer {TOKEN}"}
    who = (await client.get("/api/staff/me", headers=boot)).json()["principal"]
    assert who["via"] == "bootstrap" and who["roles"] == sorted(ROLES)
    r = await client.post("/api/sittings", json={"title": "การประชุม", "chamber": "senate"}, headers=boot)
    assert r.status_code == 201
    body = {"username": "root", "password": PASSWORD, "roles": ["admin"], "display_name": "ผู้ดูแล"}
    r = await client.post("/api/staff/accounts", json=body, headers=boot)
    assert r.status_code == 201 and r.json()["account"]["roles"] == ["admin"]
    r = await client.get("/api/staff/accounts", headers=boot)
    assert r.status_code == 401
    await login(client, "root")


# ---- roles -------------------------------------------------------------------------------------------------------

GUARDED = sorted((m, p, op.permission) for (m, p), op in OPERATIONS.items() if op.operator)
IDS = {
    "sitting_id": "senate-roles",
    "bill_id": "B2568-01",
    "segment_id": "1",
    "account_id": "1",
    "token_id": "999999",
    "message_id": "0123456789abcdef",
    "name": "0" * 32,
    "slug": "no-such-news",
    "publication_id": "1",
}


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: IDS[m.group(1)], path)


@pytest.mark.fast
def test_every_operator_operation_names_a_known_permission():
    """Each operator operation in OPERATIONS needs a permission of desk/accounts.py (or only a signed-in principal,
    for your own account and tokens), so that none is left open by a typo."""
    assert GUARDED
    for method, path, permission in GUARDED:
        assert permission is None or permission in acc.ALL_PERMISSIONS, (method, path)
        if not path.startswith("/api/staff/"):
            assert permission is not None, (method, path)


async def test_every_operator_endpoint_checks_its_role(site: Site, client: httpx.AsyncClient):
    """For every operator operation in OPERATIONS: no credentials → 401; each role's API token → 403 exactly when
    the role lacks the operation's permission (a moderator cannot record a vote, an operator cannot read the audit
    log); a role that has it gets past the check."""
    tokens = {role: site.token(site.account(f"{role}-1", role)) for role in ROLES}
    boot = site.token(site.account("setup", "admin", "operator"))
    r = await client.post(
        "/api/sittings", json={"id": IDS["sitting_id"], "title": "x", "chamber": "senate"}, headers=boot
    )
    assert r.status_code == 201
    checked = 0
    for method, path, permission in GUARDED:
        url = _url(path)
        r = await client.request(method, url, json={})
        assert r.status_code == 401 and r.json()["ok"] is False, (method, path, r.text)
        for role, headers in tokens.items():
            r = await client.request(method, url, json={}, headers=headers)
            if permission is None:
                # Any signed-in account; whose account it may touch is the handler's check (tested below).
                assert r.status_code != 401, (method, path, role, r.text)
            elif acc.can([role], permission):
                assert r.status_code not in (401, 403), (method, path, role, r.text)
            else:
                assert r.status_code == 403 and permission in r.json()["error"], (method, path, role, r.text)
            checked += 1
    assert checked == len(GUARDED) * len(ROLES)


async def test_a_moderator_cannot_record_a_vote_and_nothing_is_recorded(site: Site, client: httpx.AsyncClient):
    """The issue's example, end to end: a moderator's vote is a 403 and the sitting has no vote."""
    op = site.token(site.account("somchai", "operator"))
    mod = site.token(site.account("malee", "moderator"))
    await client.post("/api/sittings", json={"id": "s1", "title": "x", "chamber": "senate"}, headers=op)
    vote = {"motion": "เห็นชอบ", "yes": 1, "no": 0, "abstain": 0, "absent": 0, "result": "passed"}
    r = await client.post("/api/sittings/s1/votes", json=vote, headers=mod)
    assert r.status_code == 403 and r.json() == {
        "ok": False,
        "status": 403,
        "error": "malee (moderator) may not do this: it needs vote.record",
    }
    assert (await client.get("/api/sittings/s1")).json()["votes"] == []


# ---- the audit log -------------------------------------------------------------------------------------------------


async def test_the_audit_log_shows_who_did_what_with_before_and_after(site: Site, client: httpx.AsyncClient):
    """Each staff action (sign-in, operator calls, account changes, tokens) is in the log, newest first, with the
    actor, the target and the state before and after; an Idempotency-Key replay adds nothing; only admins read it."""
    site.account("somchai", "operator")
    admin = site.token(site.account("root", "admin"))
    session = await login(client, "somchai")
    h = session.headers()
    await client.post("/api/sittings", json={"id": "s1", "title": "การประชุม", "chamber": "senate"}, headers=h)
    for _ in range(2):
        r = await client.post(
            "/api/sittings/s1/status", json={"status": "live"}, headers={**h, "Idempotency-Key": "k1"}
        )
        assert r.status_code == 200
    await client.post("/api/sittings/s1/speaker", json={"name": "นายสมชาย"}, headers=h)
    me = (await client.get("/api/staff/me", headers=h)).json()["account"]
    r = await client.patch(f"/api/staff/accounts/{me['id']}", json={"roles": ["operator", "editor"]}, headers=admin)
    assert r.status_code == 200

    assert (await client.get("/api/staff/audit", headers=h)).status_code == 403
    r = await client.get("/api/staff/audit", headers=admin)
    entries = r.json()["entries"]
    actions = [e["action"] for e in entries]
    assert actions[:5] == ["account.update", "set_speaker", "set_status", "create_sitting", "session.login"]
    update, speaker, status, create, signin = entries[:5]
    assert update["actor"] == "root" and update["target"] == f"account:{me['id']}"
    assert update["before"]["roles"] == ["operator"] and update["after"]["roles"] == ["editor", "operator"]
    assert {e["actor"] for e in (speaker, status, create, signin)} == {"somchai"}
    assert status["target"] == "sitting_id:s1"
    assert status["before"]["sitting"]["status"] == "scheduled" and status["after"]["sitting"]["status"] == "live"
    assert speaker["before"]["speaker"] is None and speaker["after"]["speaker"]["name"] == "นายสมชาย"
    assert create["before"] is None and create["after"]["sitting"]["id"] == "s1"

    page = (await client.get("/api/staff/audit?limit=2", headers=admin)).json()
    assert [e["action"] for e in page["entries"]] == actions[:2]
    older = (await client.get(f"/api/staff/audit?limit=2&before={page['next_before']}", headers=admin)).json()
    assert [e["action"] for e in older["entries"]] == actions[2:4]
    only = (await client.get("/api/staff/audit?action=set_status", headers=admin)).json()["entries"]
    assert [e["id"] for e in only] == [status["id"]]


# ---- bad input -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("POST", "/api/staff/login", {"username": "a"}, 422, "password"),
        ("POST", "/api/staff/login", {"username": "a", "password": "p" * 257}, 422, "password"),
        ("POST", "/api/staff/login", "not json", 422, "body"),
        ("POST", "/api/staff/login", ["a"], 422, "body"),
        (
            "POST",
            "/api/staff/accounts",
            {"username": "<script>", "password": PASSWORD, "roles": ["admin"]},
            422,
            "username",
        ),
        ("POST", "/api/staff/accounts", {"username": "ab1", "password": "short", "roles": ["admin"]}, 422, "password"),
        ("POST", "/api/staff/accounts", {"username": "abc", "password": PASSWORD, "roles": []}, 422, "roles"),
        ("POST", "/api/staff/accounts", {"username": "abc", "password": PASSWORD, "roles": ["king"]}, 422, "roles"),
        (
            "POST",
            "/api/staff/accounts",
            {"username": "root", "password": PASSWORD, "roles": ["admin"]},
            409,
            "username",
        ),
        (
            "POST",
            "/api/staff/accounts",
            {"username": "abcd", "password": "abcd-and-more-x", "roles": ["admin"]},
            422,
            "password",
        ),
        ("PATCH", "/api/staff/accounts/1", {"roles": ["operator"]}, 409, "roles"),
        ("PATCH", "/api/staff/accounts/1", {"disabled": "yes"}, 422, "disabled"),
        ("PATCH", "/api/staff/accounts/1", {"display_name": "a\u0007b"}, 422, "display_name"),
        ("PATCH", "/api/staff/accounts/99", {"disabled": True}, 404, None),
        ("PATCH", "/api/staff/accounts/x1", {"disabled": True}, 404, None),
        ("POST", "/api/staff/accounts/1/tokens", {"label": "x" * 101}, 422, "label"),
        ("DELETE", "/api/staff/tokens/99999999999999999999", None, 404, None),
        ("DELETE", "/api/staff/tokens/9223372036854775808", None, 404, None),
        ("GET", "/api/staff/audit?before=9223372036854775808", None, 400, "before"),
        ("GET", "/api/staff/audit?limit=0", None, 400, "limit"),
        ("GET", "/api/staff/audit?before=-1", None, 400, "before"),
        ("GET", "/api/staff/audit?action=<b>", None, 400, "action"),
    ],
)
async def test_bad_staff_input_is_a_clear_4xx(
    site: Site, client: httpx.AsyncClient, method: str, path: str, body: Any, status: int, field: str | None
):
    """Empty, over-long, malformed and conflicting input gets its 4xx in the JSON error shape, naming the field."""
    admin = site.token(site.account("root", "admin"))
    kwargs: dict[str, Any] = {"content": body} if isinstance(body, str) else {"json": body}
    r = await client.request(method, path, headers=admin, **({} if body is None else kwargs))
    assert r.status_code == status, r.text
    assert r.json()["ok"] is False and r.json()["status"] == status
    if field is not None:
        assert r.json()["field"] == field


async def test_a_huge_login_body_is_413_before_it_is_read(site: Site, client: httpx.AsyncClient):
    """A sign-in body past 16 KiB is refused with 413, not parsed or hashed."""
    r = await client.post("/api/staff/login", content=b"{" + b" " * 20_000 + b"}")
    assert r.status_code == 413 and r.json()["ok"] is False


async def test_your_own_password_needs_the_current_one_and_ends_your_sessions(site: Site, client: httpx.AsyncClient):
    """An account may change only its own password (403 for roles, 403 for a wrong current password); a change
    ends its sessions, and the new password signs in."""
    me = site.account("somchai", "operator")
    session = await login(client, "somchai")
    h = session.headers()
    assert (await client.patch(f"/api/staff/accounts/{me}", json={"roles": ["admin"]}, headers=h)).status_code == 403
    new = "a new long passphrase"
    r = await client.patch(f"/api/staff/accounts/{me}", json={"password": new, "current_password": "nope"}, headers=h)
    assert r.status_code == 403 and r.json()["field"] == "current_password"
    r = await client.patch(f"/api/staff/accounts/{me}", json={"password": new, "current_password": PASSWORD}, headers=h)
    assert r.status_code == 200
    assert (await client.get("/api/staff/me", headers=h)).status_code == 401
    await login(client, "somchai", new)


@pytest.mark.fast
def test_the_documented_shapes_match_the_account_rules():
    """common/staff_schemas.py states desk/accounts.py's rules, so what the document calls valid is accepted."""
    assert staff_schemas.PASSWORD_MIN == acc.MIN_PASSWORD and staff_schemas.PASSWORD_MAX == acc.MAX_PASSWORD
    assert staff_schemas.DISPLAY_NAME_MAX == acc.MAX_DISPLAY_NAME
    assert set(staff_schemas.Role.__args__) == set(ROLES)  # type: ignore[attr-defined]
    pattern = re.compile(staff_schemas.USERNAME_REGEX)
    for name in ["abc", "Somchai", "a.b_c-d", "x" * 32, "ab", "x" * 33, "-ab", "ab c", "ไทย"]:
        assert bool(pattern.match(name)) == bool(acc.USERNAME.fullmatch(name.casefold())), name
