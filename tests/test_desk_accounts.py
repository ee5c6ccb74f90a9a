"""Staff accounts: roles, Argon2 passwords, sessions, CSRF, login throttling, API tokens, bootstrap and audit.

Pure-logic tests carry ``fast``; the store tests run on a real SQLite file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import argon2
import pytest

from desk import accounts as acc
from desk.accounts import AccountError, Passwords, Principal, SessionPolicy
from desk.accounts_sqlite import AccountStore, BadCredentials, Forbidden, Throttled
from desk.ratelimit import LoginThrottle, ThrottlePolicy, retry_after_header

PASSWORD = "correct horse battery"
OPERATOR_TOKEN = "bootstrap-secret-token"


class Clock:
    """A settable clock for the sans-I/O parts and the store."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def cheap(time_cost: int = 1) -> Passwords:
    # Argon2 at test strength: the parameters change nothing in the logic under test, only its cost.
    return Passwords(argon2.PasswordHasher(time_cost=time_cost, memory_cost=1024, parallelism=1))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[AccountStore]:
    s = AccountStore(tmp_path / "desk.db", passwords=cheap(), throttle=LoginThrottle(clock=clock), clock=clock)
    yield s
    s.close()


BOOT = acc.bootstrap_principal()


def make(store: AccountStore, name: str, *roles: str) -> int:
    return store.create_account(BOOT, name, PASSWORD, roles).id


def principal(store: AccountStore, name: str) -> Principal:
    session = store.login(name, PASSWORD, "10.0.0.1")
    p = store.session(session.id)
    assert p is not None
    return p


# ---- roles --------------------------------------------------------------------------------------------------


@pytest.mark.fast
@pytest.mark.parametrize(
    ("role", "allowed", "denied"),
    [
        (
            "operator",
            ["sitting.manage", "vote.record", "caption.correct", "bill.stage"],
            ["message.read", "news.write"],
        ),
        ("editor", ["news.write", "news.publish", "document.write"], ["vote.record", "message.contact.read"]),
        ("moderator", ["message.read", "message.contact.read", "attachment.read"], ["vote.record", "audit.read"]),
        ("admin", ["account.manage", "audit.read"], ["vote.record", "message.contact.read", "news.write"]),
    ],
)
def test_each_role_grants_exactly_its_row_of_the_table(role: str, allowed: list[str], denied: list[str]) -> None:
    """A role grants its own permissions and none of another role's (a moderator cannot record a vote)."""
    assert all(acc.can([role], p) for p in allowed)
    assert not any(acc.can([role], p) for p in denied)


@pytest.mark.fast
def test_unknown_permission_is_an_error_not_a_silent_deny() -> None:
    """A misspelt permission in an endpoint raises instead of quietly refusing everyone."""
    with pytest.raises(KeyError):
        acc.can(["admin"], "acount.manage")


@pytest.mark.fast
@pytest.mark.parametrize("bad", ["", "ab", "a" * 33, "Ali Ce", "<script>", "bootstrap", "system", "-lead"])
def test_bad_usernames_are_refused(bad: str) -> None:
    """Usernames are 3-32 lowercase characters; reserved and markup-like names are refused."""
    with pytest.raises(AccountError) as err:
        acc.validate_username(bad)
    assert err.value.field == "username"


@pytest.mark.fast
@pytest.mark.parametrize("bad", ["", "short", "x" * 257, "my-alice-password"])
def test_bad_passwords_are_refused(bad: str) -> None:
    """Passwords are 12-256 characters and must not contain the username."""
    with pytest.raises(AccountError):
        acc.validate_password(bad, "alice")


# ---- passwords ----------------------------------------------------------------------------------------------


@pytest.mark.fast
def test_passwords_are_argon2id_hashes_that_verify_only_the_right_password() -> None:
    """The stored hash is Argon2id, salted (two hashes of one password differ), and verifies only that password."""
    pw = cheap()
    first, second = pw.hash(PASSWORD), pw.hash(PASSWORD)
    assert first.startswith("$argon2id$") and first != second and PASSWORD not in first
    assert pw.verify(first, PASSWORD)
    assert not pw.verify(first, PASSWORD + "!")
    assert not pw.verify("not a hash", PASSWORD)


def test_login_rehashes_a_hash_made_under_old_parameters(tmp_path: Path, clock: Clock) -> None:
    """When the hashing parameters change, the next successful login replaces the stored hash."""
    old = AccountStore(tmp_path / "d.db", passwords=cheap(time_cost=1), clock=clock)
    make(old, "alice", "operator")
    old.close()
    new = AccountStore(tmp_path / "d.db", passwords=cheap(time_cost=2), clock=clock)
    with new._db as conn:
        before = conn.execute("SELECT password_hash FROM desk_accounts").fetchone()[0]
    new.login("alice", PASSWORD, "10.0.0.1")
    with new._db as conn:
        after = conn.execute("SELECT password_hash FROM desk_accounts").fetchone()[0]
    new.close()
    assert ",t=1," in before and ",t=2," in after


# ---- sessions and CSRF ----------------------------------------------------------------------------------------


@pytest.mark.fast
def test_session_policy_ends_sessions_by_lifetime_and_by_idleness() -> None:
    """A session is valid until its lifetime is up or it has been idle too long."""
    policy = SessionPolicy(lifetime_s=100, idle_s=10)
    assert policy.state(0, 0, 9) == "valid"
    assert policy.state(0, 0, 10) == "idle"
    assert policy.state(0, 95, 100) == "expired"


@pytest.mark.fast
def test_session_cookie_is_host_only_secure_httponly_strict() -> None:
    """The cookie cannot be read by scripts, sent cross-site, or set for another host or path."""
    cookie = acc.session_cookie("sid", SessionPolicy())
    assert cookie["key"].startswith("__Host-")
    assert (cookie["secure"], cookie["httponly"], cookie["samesite"], cookie["path"]) == (True, True, "strict", "/")


def test_login_opens_a_session_with_the_accounts_current_roles(store: AccountStore) -> None:
    """A session authenticates as its account; a role change applies to the live session at once."""
    alice = make(store, "alice", "operator")
    session = store.login("Alice", PASSWORD, "10.0.0.1")
    p = store.session(session.id)
    assert p is not None and p.username == "alice" and p.can("vote.record") and p.via == "session"
    store.update_account(BOOT, alice, roles=["moderator"])
    p = store.session(session.id)
    assert p is not None and not p.can("vote.record") and p.can("message.read")


def test_stored_session_ids_and_csrf_tokens_are_only_digests(store: AccountStore, tmp_path: Path) -> None:
    """The database holds neither the session id nor the CSRF token, so a copy of it signs no one in."""
    make(store, "alice", "operator")
    session = store.login("alice", PASSWORD, "10.0.0.1")
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("desk.db*"))
    assert session.id.encode() not in raw and session.csrf.encode() not in raw


def test_sessions_expire_when_idle_and_at_end_of_life(store: AccountStore, clock: Clock) -> None:
    """An idle session and one past its lifetime both stop authenticating, even when used again."""
    make(store, "alice", "operator")
    idle = store.login("alice", PASSWORD, "10.0.0.1")
    clock.advance(store.policy.idle_s + 1)
    assert store.session(idle.id) is None
    kept = store.login("alice", PASSWORD, "10.0.0.1")
    for _ in range(int(store.policy.lifetime_s // (store.policy.idle_s / 2)) + 1):
        clock.advance(store.policy.idle_s / 2)
        store.session(kept.id)
    assert store.session(kept.id) is None


def test_csrf_token_must_match_its_own_session(store: AccountStore) -> None:
    """The right token passes; a missing, forged or another session's token is refused."""
    make(store, "alice", "operator")
    make(store, "bob", "operator")
    a = store.login("alice", PASSWORD, "10.0.0.1")
    b = store.login("bob", PASSWORD, "10.0.0.1")
    assert store.csrf_ok(a.id, a.csrf)
    assert not store.csrf_ok(a.id, None)
    assert not store.csrf_ok(a.id, "")
    assert not store.csrf_ok(a.id, a.csrf[:-1] + ("A" if a.csrf[-1] != "A" else "B"))
    assert not store.csrf_ok(a.id, b.csrf)
    assert not store.csrf_ok(None, a.csrf)


def test_logout_and_password_change_end_sessions(store: AccountStore) -> None:
    """Logging out ends that session; a password change ends all of the account's sessions."""
    alice = make(store, "alice", "operator")
    one = store.login("alice", PASSWORD, "10.0.0.1")
    two = store.login("alice", PASSWORD, "10.0.0.1")
    store.logout(one.id)
    assert store.session(one.id) is None and store.session(two.id) is not None
    store.set_password(BOOT, alice, "another long password")
    assert store.session(two.id) is None
    store.login("alice", "another long password", "10.0.0.1")


def test_disabled_accounts_cannot_log_in_and_lose_their_sessions(store: AccountStore) -> None:
    """Disabling an account ends its sessions and refuses its password like a wrong one."""
    alice = make(store, "alice", "operator")
    session = store.login("alice", PASSWORD, "10.0.0.1")
    store.update_account(BOOT, alice, disabled=True)
    assert store.session(session.id) is None
    with pytest.raises(BadCredentials):
        store.login("alice", PASSWORD, "10.0.0.2")


def test_sessions_per_account_are_bounded(tmp_path: Path, clock: Clock) -> None:
    """Logging in over and over keeps at most the policy's number of sessions; the oldest end first."""
    store = AccountStore(tmp_path / "d.db", passwords=cheap(), policy=SessionPolicy(max_per_account=3), clock=clock)
    make(store, "alice", "operator")
    sessions = []
    for _ in range(5):
        clock.advance(1)
        sessions.append(store.login("alice", PASSWORD, "10.0.0.1"))
    alive = [s for s in sessions if store.session(s.id) is not None]
    store.close()
    assert alive == sessions[-3:]


# ---- login throttling -------------------------------------------------------------------------------------------


@pytest.mark.fast
def test_failures_first_cost_nothing_then_double_the_wait_then_lock() -> None:
    """Free failures, then a growing delay capped at the maximum, then a lockout for the lockout window."""
    clock = Clock(0)
    throttle = LoginThrottle(
        clock=clock,
        account=ThrottlePolicy(free_failures=2, base_delay_s=1, max_delay_s=4, lockout_failures=6, lockout_s=600),
    )
    waits: list[float] = []
    for _ in range(5):
        throttle.failed("alice", f"10.0.0.{len(waits)}")
        waits.append(throttle.wait("alice", "10.9.9.9"))
    assert waits == [0, 0, 1, 2, 4]
    throttle.failed("alice", "10.0.0.9")
    assert throttle.wait("alice", "10.9.9.9") == 600
    clock.advance(599)
    assert throttle.wait("ALICE", "10.9.9.9") == 1
    clock.advance(1)
    assert throttle.wait("alice", "10.9.9.9") == 0


@pytest.mark.fast
def test_success_resets_the_account_but_not_the_address() -> None:
    """One right password clears its account's count; the address keeps counting (credential stuffing)."""
    clock = Clock(0)
    throttle = LoginThrottle(clock=clock, ip=ThrottlePolicy(free_failures=1, lockout_failures=100))
    throttle.failed("alice", "10.0.0.1")
    throttle.failed("bob", "10.0.0.1")
    throttle.succeeded("alice")
    assert throttle.accounts.wait("alice") == 0
    assert throttle.wait("carol", "10.0.0.1") > 0


@pytest.mark.fast
def test_failure_counts_are_forgotten_after_the_window_and_memory_is_bounded() -> None:
    """A quiet key starts over; no more than max_keys keys are ever held."""
    clock = Clock(0)
    throttle = LoginThrottle(clock=clock, account=ThrottlePolicy(free_failures=0, window_s=60), max_keys=10)
    throttle.failed("alice", "10.0.0.1")
    assert throttle.wait("alice", "10.0.0.2") > 0
    clock.advance(61)
    assert throttle.wait("alice", "10.0.0.2") == 0
    for n in range(100):
        throttle.failed(f"user{n}", f"10.1.{n}.1")
    assert len(throttle.accounts) <= 10 and len(throttle.addresses) <= 10


@pytest.mark.fast
def test_retry_after_is_whole_seconds_rounded_up() -> None:
    """Retry-After never says 0 and never rounds a wait down."""
    assert [retry_after_header(s) for s in (0.01, 1.0, 1.2, 59.9)] == ["1", "1", "2", "60"]


def test_wrong_passwords_are_counted_slowed_and_locked_before_checking(store: AccountStore, clock: Clock) -> None:
    """Wrong passwords raise BadCredentials until the throttle answers Throttled, which then refuses even the
    right password (a locked account tells a guesser nothing)."""
    make(store, "alice", "operator")
    policy = store.throttle.accounts.policy
    for _ in range(policy.free_failures):
        with pytest.raises(BadCredentials):
            store.login("alice", "wrong password!", "10.0.0.1")
    with pytest.raises(BadCredentials):
        store.login("alice", "wrong password!", "10.0.0.2")
    with pytest.raises(Throttled) as throttled:
        store.login("alice", PASSWORD, "10.0.0.3")
    assert throttled.value.retry_after > 0
    for _ in range(policy.lockout_failures):
        if store.throttle.accounts.locked("alice"):
            break
        clock.advance(policy.max_delay_s)
        with pytest.raises(BadCredentials):
            store.login("alice", "wrong password!", "10.0.0.4")
    assert store.throttle.accounts.locked("alice")
    clock.advance(policy.max_delay_s)
    with pytest.raises(Throttled):
        store.login("alice", PASSWORD, "10.0.0.5")
    clock.advance(policy.lockout_s)
    assert store.login("alice", PASSWORD, "10.0.0.5").account.username == "alice"


def test_unknown_accounts_fail_like_wrong_passwords(store: AccountStore) -> None:
    """An unknown username gets the same BadCredentials as a wrong password, and is counted too."""
    for _ in range(store.throttle.accounts.policy.free_failures + 1):
        with pytest.raises(BadCredentials):
            store.login("nobody", PASSWORD, "10.0.0.1")
    with pytest.raises(Throttled):
        store.login("nobody", PASSWORD, "10.0.0.1")


# ---- API tokens and the bootstrap admin ------------------------------------------------------------------------


def test_api_tokens_are_shown_once_stored_hashed_and_revocable(store: AccountStore, tmp_path: Path) -> None:
    """A token authenticates as its account; only its prefix and digest are stored; lists never show it;
    revoked, it authenticates nothing."""
    alice = make(store, "alice", "operator")
    me = principal(store, "alice")
    token, record = store.create_api_token(me, alice, "encoder in room 1")
    assert token.startswith(f"sapha_{record.prefix}_")
    p = store.principal_for_bearer(token)
    assert p is not None and p.username == "alice" and p.via == "token" and p.can("vote.record")
    listed = store.api_tokens(me, alice)
    assert [t.prefix for t in listed] == [record.prefix] and token not in str([t.to_json() for t in listed])
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("desk.db*"))
    assert token.encode() not in raw
    store.revoke_api_token(me, record.id)
    assert store.principal_for_bearer(token) is None


def test_forged_and_malformed_tokens_authenticate_nothing(store: AccountStore) -> None:
    """A token with a real prefix and a wrong secret, or any garbage, gets no principal."""
    alice = make(store, "alice", "operator")
    token, record = store.create_api_token(BOOT, alice)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in (forged, "", "sapha_", f"sapha_{record.prefix}_x", "Bearer " + token, token + "x"):
        assert store.principal_for_bearer(bad) is None


def test_accounts_manage_only_their_own_tokens(store: AccountStore) -> None:
    """An operator cannot mint or revoke a token for someone else; an admin can."""
    alice, bob = make(store, "alice", "operator"), make(store, "bob", "operator")
    a = principal(store, "alice")
    with pytest.raises(Forbidden):
        store.create_api_token(a, bob)
    _, record = store.create_api_token(BOOT, bob)
    with pytest.raises(Forbidden):
        store.revoke_api_token(a, record.id)
    store.create_api_token(a, alice)


def test_operator_token_is_admin_only_until_an_admin_account_exists(store: AccountStore) -> None:
    """On a fresh install OPERATOR_TOKEN acts as admin (holding every role, as it ran everything before accounts);
    once an admin account exists it stops; an empty setting never matches."""
    p = store.principal_for_bearer(OPERATOR_TOKEN, OPERATOR_TOKEN)
    assert p is not None and p.via == "bootstrap" and p.can("account.manage") and p.can("vote.record")
    assert store.principal_for_bearer("", "") is None
    assert store.principal_for_bearer("wrong", OPERATOR_TOKEN) is None
    make(store, "root", "admin")
    assert store.principal_for_bearer(OPERATOR_TOKEN, OPERATOR_TOKEN) is None


def test_the_last_enabled_admin_cannot_be_removed(store: AccountStore) -> None:
    """Demoting or disabling the only admin is refused, so the install cannot lock itself out."""
    root = make(store, "root", "admin")
    with pytest.raises(AccountError):
        store.update_account(BOOT, root, roles=["operator"])
    with pytest.raises(AccountError):
        store.update_account(BOOT, root, disabled=True)
    make(store, "root2", "admin")
    store.update_account(BOOT, root, disabled=True)


def test_only_admins_manage_accounts_and_read_the_audit_log(store: AccountStore) -> None:
    """An operator may not create accounts, change roles, or read the audit log."""
    make(store, "alice", "operator")
    a = principal(store, "alice")
    with pytest.raises(Forbidden):
        store.create_account(a, "mallory", PASSWORD, ["admin"])
    with pytest.raises(Forbidden):
        store.update_account(a, a.account_id or 0, roles=["admin"])
    with pytest.raises(Forbidden):
        store.audit_log(a)


# ---- audit log --------------------------------------------------------------------------------------------------


def test_staff_actions_are_audited_with_actor_target_before_and_after(store: AccountStore) -> None:
    """Account changes, logins, token changes and recorded actions each leave one entry, newest first, and no
    entry holds a password, hash or token."""
    alice = make(store, "alice", "operator")
    store.update_account(BOOT, alice, roles=["operator", "editor"])
    a = principal(store, "alice")
    token, record = store.create_api_token(a, alice)
    store.revoke_api_token(a, record.id)
    store.record(a, "vote.record", "vote:7", after={"motion": "<b>ร่าง</b>", "yes": 120})
    entries = store.audit_log(BOOT, limit=10)
    assert [e.action for e in entries] == [
        "vote.record",
        "token.revoke",
        "token.create",
        "session.login",
        "account.update",
        "account.create",
    ]
    update = entries[4]
    assert (update.actor, update.target) == ("bootstrap", f"account:{alice}")
    assert update.before["roles"] == ["operator"] and update.after["roles"] == ["editor", "operator"]
    assert entries[0].after == {"motion": "<b>ร่าง</b>", "yes": 120}
    text = str([e.to_json() for e in entries])
    assert PASSWORD not in text and "argon2" not in text and token not in text
    assert [e.action for e in store.audit_log(BOOT, before_id=entries[1].id, limit=2)] == [
        "token.create",
        "session.login",
    ]


def test_audit_log_refuses_update_and_delete(store: AccountStore) -> None:
    """The audit table is append-only even to SQL run on the store's own connection."""
    make(store, "alice", "operator")
    with store._db as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE desk_audit SET actor = 'someone else'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM desk_audit")
