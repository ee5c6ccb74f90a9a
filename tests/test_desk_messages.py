"""The public's messages: validation, plain text, sealed contact data, tracking codes, workflow, retention,
export/erasure, and the abuse guards. Pure-logic tests carry ``fast``; store tests run on a real SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desk import audit
from desk import messages as msg
from desk.accounts import Principal
from desk.accounts_sqlite import Forbidden
from desk.attachments import AttachmentMeta
from desk.messages import InvalidMessage, InvalidTransition, SubmissionLimits
from desk.messages_sqlite import Duplicate, MessageStore, PushTarget
from desk.ratelimit import BucketPolicy, TokenBuckets
from desk.sealing import Keyring, SealError, new_setting_entry

EMAIL = "somchai.secret@example.co.th"
PHONE = "0812345678"
XSS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(document.cookie)",
    "<svg/onload=alert(1)>",
    "{{constructor.constructor('alert(1)')()}}",
    "</textarea><iframe srcdoc='<script>alert(1)</script>'>",
]
MODERATOR = Principal(account_id=1, username="mod", roles=frozenset({"moderator"}), via="session")
OPERATOR = Principal(account_id=2, username="op", roles=frozenset({"operator"}), via="session")


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def form(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "kind": "complaint",
        "subject": "ถนนหน้าบ้านชำรุด",
        "text": "ขอให้ช่วยติดตามการซ่อมถนน\nซอย 5",
        "email": EMAIL,
        "phone": PHONE,
        "consent": True,
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.from_setting(new_setting_entry("k1"))


@pytest.fixture
def store(tmp_path: Path, keyring: Keyring, clock: Clock) -> Iterator[MessageStore]:
    s = MessageStore(tmp_path / "desk.db", keyring=keyring, clock=clock, retention_days=30)
    yield s
    s.close()


# ---- validation -----------------------------------------------------------------------------------------------


@pytest.mark.fast
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", None),
        ("kind", "praise"),
        ("kind", ["complaint"]),
        ("subject", None),
        ("subject", ""),
        ("subject", "   \n\t "),
        ("subject", "ก" * (msg.SUBJECT_MAX + 1)),
        ("subject", "x" * 1_000_000),
        ("subject", 42),
        ("text", None),
        ("text", "\u0000\u0007"),
        ("text", "ข" * (msg.TEXT_MAX + 1)),
        ("text", {"$gt": ""}),
        ("email", "not-an-email"),
        ("email", "a@b"),
        ("email", "a@@example.com"),
        ("email", "a b@example.com"),
        ("email", "<script>@example.com"),
        ("email", "x" * 65 + "@example.com"),
        ("email", "a@" + "d" * 250 + ".com"),
        ("email", "a@-bad-.com"),
        ("email", "a@example.com\nBcc: victim@example.com"),
        ("email", 7),
        ("phone", "12345"),
        ("phone", "08123456789012345678"),
        ("phone", "call me"),
        ("phone", "+0123456789"),
        ("consent", None),
        ("consent", False),
        ("consent", "no"),
    ],
)
def test_every_field_refuses_bad_input_by_name(field: str, value: Any) -> None:
    """Empty, over-long, wrongly-typed or malformed input is refused, naming exactly the field at fault."""
    with pytest.raises(InvalidMessage) as err:
        msg.validate_submission(form(**{field: value}) if value is not None else form(**{field: None}))
    assert set(err.value.fields) == {field}


@pytest.mark.fast
def test_contact_is_required_except_for_suggestions() -> None:
    """A complaint or question needs an email or phone to answer; a suggestion may be anonymous."""
    for kind in ("complaint", "question"):
        with pytest.raises(InvalidMessage) as err:
            msg.validate_submission(form(kind=kind, email=None, phone=None))
        assert set(err.value.fields) == {"email"}
    assert msg.validate_submission(form(kind="suggestion", email="", phone=None)).contact is None
    assert msg.validate_submission(form(email=None)).contact == msg.Contact(phone=PHONE)


@pytest.mark.fast
def test_all_wrong_fields_are_reported_together() -> None:
    """A form with several mistakes hears about all of them at once (one error per field)."""
    with pytest.raises(InvalidMessage) as err:
        msg.validate_submission({"kind": "x", "email": "bad", "phone": "bad"})
    assert set(err.value.fields) == {"kind", "subject", "text", "email", "phone", "consent"}


@pytest.mark.fast
@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("+66 81-234-5678", "0812345678"),
        ("๐๘๑ ๒๓๔ ๕๖๗๘", "0812345678"),
        ("02 (123) 4567", "021234567"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_phone_numbers_are_normalised(given: str, stored: str) -> None:
    """Thai and international numbers are accepted with separators or Thai digits and stored in one form."""
    assert msg.parse_phone(given) == stored


@pytest.mark.fast
def test_email_domains_are_lowercased_and_internationalised_domains_kept_as_punycode() -> None:
    """The domain is case-folded; a Thai domain is stored in its ASCII form; the local part is kept."""
    assert msg.parse_email("Somchai@Example.CO.TH") == "Somchai@example.co.th"
    assert msg.parse_email("a@ตัวอย่าง.ไทย").startswith("a@xn--")


@pytest.mark.fast
@pytest.mark.parametrize("payload", XSS)
def test_markup_is_kept_as_plain_text_not_escaped_or_stripped(payload: str) -> None:
    """What a sender writes is stored exactly as text (no escaping, no stripping): pages set it as text."""
    sub = msg.validate_submission(form(subject=payload, text=payload))
    assert sub.subject == payload.replace("\n", " ") and sub.text == payload


@pytest.mark.fast
def test_control_characters_go_but_line_breaks_stay() -> None:
    """Control characters are dropped; the text keeps its lines (CRLF becomes LF); the subject is one line."""
    sub = msg.validate_submission(form(subject="หัว\r\nเรื่อง\u0000", text="บรรทัด 1\r\nบรรทัด\u0008 2\t."))
    assert sub.subject == "หัว เรื่อง" and sub.text == "บรรทัด 1\nบรรทัด 2\t."


@pytest.mark.fast
def test_filled_honeypot_marks_the_submission_trapped() -> None:
    """A bot that fills the hidden ``website`` field gets a valid-looking submission flagged as trapped."""
    assert msg.validate_submission(form(website="http://spam.example")).trapped
    assert not msg.validate_submission(form(website="")).trapped


@pytest.mark.fast
def test_duplicate_fingerprint_ignores_case_spacing_and_invisible_characters() -> None:
    """Texts that differ only in case, whitespace or zero-width characters share a fingerprint."""
    assert msg.fingerprint("Road  Broken", "ถนน\u200bชำรุด ") == msg.fingerprint("road broken", "ถนนชำรุด")
    assert msg.fingerprint("Road", "ถนนชำรุด") != msg.fingerprint("Road", "ถนนชำรุดมาก")


# ---- tracking codes and the workflow ------------------------------------------------------------------------------


@pytest.mark.fast
def test_tracking_codes_are_long_random_and_read_back_in_any_spelling() -> None:
    """16 characters (80 bits) of an unambiguous alphabet; lower case and missing dashes read back the same."""
    codes = {msg.new_tracking_code() for _ in range(2000)}
    assert len(codes) == 2000
    code = next(iter(codes))
    raw = code.replace("-", "")
    assert len(raw) == 16 and set(raw) <= set(msg.CODE_ALPHABET) and not set("01IO") & set(msg.CODE_ALPHABET)
    assert msg.code_digest(code) == msg.code_digest(raw.lower()) == msg.code_digest(" ".join(raw))
    for bad in ("", raw[:-1], raw + "2", raw[:-1] + "0", "x" * 10_000):
        assert msg.canonical_code(bad) is None


@pytest.mark.fast
def test_workflow_allows_only_its_transitions() -> None:
    """received → in review → forwarded → answered → closed; closed is final; spam can go back to review."""
    for current, new in [
        ("received", "in_review"),
        ("in_review", "forwarded"),
        ("forwarded", "answered"),
        ("answered", "closed"),
        ("received", "spam"),
        ("spam", "in_review"),
    ]:
        msg.check_transition(current, new)
    for current, new in [
        ("received", "answered"),
        ("closed", "in_review"),
        ("spam", "closed"),
        ("answered", "forwarded"),
        ("received", "deleted"),
    ]:
        with pytest.raises(InvalidTransition):
            msg.check_transition(current, new)


# ---- rate limits ---------------------------------------------------------------------------------------------------


@pytest.mark.fast
def test_token_bucket_allows_a_burst_then_refills_at_its_rate() -> None:
    """Capacity in a burst; then refused with the exact wait; a refused take spends nothing."""
    clock = Clock(0)
    buckets = TokenBuckets(BucketPolicy(capacity=3, per_s=0.5), clock=clock)
    assert [buckets.take("ip") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("ip") == 2.0
    assert buckets.take("ip") == 2.0
    clock.advance(2)
    assert buckets.take("ip") == 0
    assert buckets.take("other") == 0


@pytest.mark.fast
def test_token_buckets_hold_at_most_max_keys() -> None:
    """Many distinct addresses cannot grow the limiter's memory past its bound."""
    buckets = TokenBuckets(BucketPolicy(capacity=1, per_s=1), clock=Clock(0), max_keys=50)
    for n in range(1000):
        buckets.take(f"10.0.{n // 256}.{n % 256}")
    assert len(buckets) == 50


@pytest.mark.fast
def test_submissions_are_limited_per_address_and_per_contact() -> None:
    """One address is limited however it varies the contact; one contact however it varies the address."""
    clock = Clock(0)
    limits = SubmissionLimits(
        clock=clock, per_ip=BucketPolicy(capacity=2, per_s=1 / 60), per_contact=BucketPolicy(capacity=2, per_s=1 / 60)
    )
    assert limits.admit("10.0.0.1", msg.Contact(email="a@example.com")) == 0
    assert limits.admit("10.0.0.1", msg.Contact(email="b@example.com")) == 0
    assert limits.admit("10.0.0.1", msg.Contact(email="c@example.com")) > 0
    assert limits.admit("10.0.0.2", msg.Contact(email="A@example.com")) == 0
    assert limits.admit("10.0.0.3", msg.Contact(email="a@example.com")) > 0
    assert limits.admit("10.0.0.4", None) == 0


@pytest.mark.fast
def test_tracking_code_lookups_are_rate_limited_per_address() -> None:
    """Guessing codes runs into the lookup limit long before 80 bits are searched."""
    limits = SubmissionLimits(clock=Clock(0), lookups=BucketPolicy(capacity=5, per_s=1 / 60))
    assert [limits.lookup("10.0.0.1") == 0 for _ in range(6)] == [True] * 5 + [False]


# ---- sealing -------------------------------------------------------------------------------------------------------


@pytest.mark.fast
def test_sealed_values_open_only_with_their_key_and_their_row() -> None:
    """AES-GCM: the value opens with the same associated data; another row's id or a flipped byte fails."""
    ring = Keyring.from_setting(new_setting_entry("k1"))
    sealed = ring.seal(EMAIL, b"row-1")
    assert sealed.startswith("k1:") and EMAIL not in sealed and ring.seal(EMAIL, b"row-1") != sealed
    assert ring.open(sealed, b"row-1") == EMAIL
    with pytest.raises(SealError):
        ring.open(sealed, b"row-2")
    tampered = sealed[:-2] + ("AA" if not sealed.endswith("AA") else "BB")
    with pytest.raises(SealError):
        ring.open(tampered, b"row-1")
    with pytest.raises(SealError):
        Keyring.from_setting(new_setting_entry("k9")).open(sealed, b"row-1")


@pytest.mark.fast
def test_keys_rotate_new_values_under_the_first_key_old_ones_still_open() -> None:
    """With ``k2,k1`` in the setting, k2 seals and values sealed under k1 still open."""
    k1 = new_setting_entry("k1")
    old = Keyring.from_setting(k1).seal(PHONE, b"r")
    ring = Keyring.from_setting(f"{new_setting_entry('k2')},{k1}")
    assert ring.current == "k2" and ring.open(old, b"r") == PHONE and ring.seal(PHONE, b"r").startswith("k2:")


@pytest.mark.fast
@pytest.mark.parametrize("setting", ["", "k1", "k1:short", "K1:" + "A" * 43, "k1:!!!"])
def test_bad_key_settings_are_refused(setting: str) -> None:
    """A missing, short, malformed or badly named key stops start-up instead of sealing with a weak key."""
    with pytest.raises(SealError):
        Keyring.from_setting(setting)


# ---- the store ------------------------------------------------------------------------------------------------


def submit(store: MessageStore, **overrides: Any) -> tuple[str, str]:
    receipt = store.submit(msg.validate_submission(form(**overrides)))
    return receipt.message_id, receipt.code


def test_contact_data_is_unreadable_in_the_raw_database_file(store: MessageStore, tmp_path: Path) -> None:
    """Neither the email, the phone nor the tracking code appear in the database or WAL bytes; the text does
    (so the scan itself works)."""
    _, code = submit(store)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("desk.db*"))
    assert "ขอให้ช่วยติดตาม".encode() in raw
    for secret in (EMAIL, "somchai.secret", PHONE, code, code.replace("-", "")):
        assert secret.encode() not in raw
    with sqlite3.connect(tmp_path / "desk.db") as conn:
        (sealed,) = conn.execute("SELECT contact_sealed FROM desk_messages").fetchone()
    assert sealed.startswith("k1:")


@pytest.mark.parametrize("payload", XSS)
def test_markup_round_trips_the_store_as_the_same_text(store: MessageStore, payload: str) -> None:
    """An XSS payload in subject and text comes back from status and export exactly as typed."""
    message_id, code = submit(store, subject=payload, text=payload)
    status = store.status(code)
    assert status is not None and status["text"] == payload
    assert store.get(MODERATOR, message_id).text == payload


def test_only_moderators_open_contact_data_and_each_opening_is_audited(store: MessageStore) -> None:
    """Staff views carry no contact; a moderator opens it (audited); an operator is refused."""
    message_id, _ = submit(store)
    message = store.get(MODERATOR, message_id)
    assert message.has_contact and EMAIL not in str(message.to_json())
    with pytest.raises(Forbidden):
        store.contact(OPERATOR, message_id)
    with pytest.raises(Forbidden):
        store.get(OPERATOR, message_id)
    assert store.contact(MODERATOR, message_id) == msg.Contact(email=EMAIL, phone=PHONE)
    with store._db as conn:
        (entry,) = audit.read(conn, action="message.contact.read")
    assert (entry.actor, entry.target) == ("mod", f"message:{message_id}")


def test_status_page_by_code_follows_the_workflow(store: MessageStore) -> None:
    """The sender's code shows each status change and the answer; a wrong move is refused; unknown codes see
    nothing."""
    message_id, code = submit(store)
    store.transition(MODERATOR, message_id, "in_review")
    with pytest.raises(InvalidMessage):
        store.transition(MODERATOR, message_id, "forwarded")
    store.transition(MODERATOR, message_id, "forwarded", committee="คณะกรรมาธิการการคมนาคม")
    store.transition(MODERATOR, message_id, "answered", answer="<b>ส่งเรื่องแล้ว</b>")
    with pytest.raises(InvalidTransition):
        store.transition(MODERATOR, message_id, "received")
    with pytest.raises(Forbidden):
        store.transition(OPERATOR, message_id, "closed")
    status = store.status(code.lower().replace("-", ""))
    assert status is not None
    assert [h["status"] for h in status["history"]] == ["received", "in_review", "forwarded", "answered"]
    assert status["answer"] == "<b>ส่งเรื่องแล้ว</b>" and "email" not in str(status)
    assert store.status(msg.new_tracking_code()) is None
    assert store.status("not a code") is None


def test_duplicates_within_the_window_are_refused(store: MessageStore, clock: Clock) -> None:
    """The same subject and text again (even re-spaced, from another contact) is a duplicate until the window
    passes."""
    submit(store)
    with pytest.raises(Duplicate):
        submit(store, subject="  ถนนหน้าบ้านชำรุด ", email="other@example.com")
    clock.advance(store.duplicate_window_s + 1)
    submit(store)


def test_trapped_submissions_are_never_stored(store: MessageStore) -> None:
    """The store refuses a honeypot-flagged submission outright."""
    with pytest.raises(ValueError):
        store.submit(msg.validate_submission(form(website="x")))
    assert store.list_messages(MODERATOR) == []


def test_export_by_code_returns_everything_including_contact(store: MessageStore) -> None:
    """The sender's export holds their text, contact and attachment metadata, and is audited."""
    meta = AttachmentMeta(name="a" * 32, content_type="image/png", size=10, width=1, height=1, sha256="0" * 64)
    receipt = store.submit(msg.validate_submission(form()), [meta])
    data = store.export(receipt.code)
    assert data is not None
    assert data["contact"] == {"email": EMAIL, "phone": PHONE}
    assert data["attachments"] == [meta.to_json()] and data["history"][0]["status"] == "received"
    assert store.export(msg.new_tracking_code()) is None


def test_erasure_by_code_removes_the_message_and_returns_its_files(store: MessageStore, tmp_path: Path) -> None:
    """Erasure deletes the message, its history and attachment rows, returns the file names to delete, leaves an
    audit entry without personal data, and the code then finds nothing."""
    meta = AttachmentMeta(
        name="b" * 32, content_type="application/pdf", size=10, width=None, height=None, sha256="0" * 64
    )
    receipt = store.submit(msg.validate_submission(form()), [meta])
    assert store.erase(receipt.code) == ["b" * 32]
    assert store.status(receipt.code) is None and store.erase(receipt.code) is None
    with store._db as conn:
        counts = [
            conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("desk_messages", "desk_message_events", "desk_message_attachments")
        ]
        (entry,) = audit.read(conn, action="message.erase")
    assert counts == [0, 0, 0]
    assert entry.target == f"message:{receipt.message_id}" and EMAIL not in str(entry.to_json())


def test_retention_erases_old_contact_data_and_audits_each(store: MessageStore, clock: Clock) -> None:
    """Past the retention period contact data is erased (the message stays), each erasure audited by ``system``;
    newer messages keep theirs."""
    old_id, old_code = submit(store)
    clock.advance(20 * 86400)
    new_id, _ = submit(store, subject="อีกเรื่อง")
    clock.advance(11 * 86400)
    assert store.retention() == 1
    assert store.retention() == 0
    old = store.get(MODERATOR, old_id)
    assert not old.has_contact and old.contact_erased_at is not None and old.text
    assert store.contact(MODERATOR, old_id) is None
    assert store.contact(MODERATOR, new_id) is not None
    export = store.export(old_code)
    assert export is not None and export["contact"] is None
    with store._db as conn:
        (entry,) = audit.read(conn, action="message.contact.erase")
    assert (entry.actor, entry.target) == ("system", f"message:{old_id}")
    assert entry.after == {"reason": "retention", "retention_days": 30}


def test_rotate_keys_reseals_old_contacts_under_the_current_key(tmp_path: Path, clock: Clock) -> None:
    """After a new key is put first in the setting, rotation re-seals every contact; the old key can then go."""
    k1, k2 = new_setting_entry("k1"), new_setting_entry("k2")
    first = MessageStore(tmp_path / "d.db", keyring=Keyring.from_setting(k1), clock=clock)
    message_id, _ = submit(first)
    first.close()
    second = MessageStore(tmp_path / "d.db", keyring=Keyring.from_setting(f"{k2},{k1}"), clock=clock)
    assert second.rotate_keys() == 1 and second.rotate_keys() == 0
    second.close()
    third = MessageStore(tmp_path / "d.db", keyring=Keyring.from_setting(k2), clock=clock)
    assert third.contact(MODERATOR, message_id) == msg.Contact(email=EMAIL, phone=PHONE)
    third.close()


# ---- sender notices: the outbox the notice worker drains (alerts/message_notices.py) ---------------------------------

PUSH = PushTarget("https://push.example/p/1", "B" + "x" * 86, "a" * 22)


def test_notices_are_leased_retried_and_sent_once(store: MessageStore, clock: Clock) -> None:
    """A change makes one email notice and one per subscribed browser, each carrying the code; a claimed notice is
    leased (not claimed again until the lease ends, as after a crash), a retried one waits for its time, and a sent
    one never comes back."""
    message_id, code = submit(store)
    assert store.subscribe_push(code, PUSH) is True
    assert store.subscribe_push(code, PUSH) is False  # the same browser again: refreshed, not doubled
    store.transition(MODERATOR, message_id, "in_review")
    first = store.claim_notices(lease_s=60)
    by_channel = {n.channel: n for n in first}
    assert set(by_channel) == {"email", "push"} and all(n.code == code for n in first)
    assert by_channel["email"].email == EMAIL and by_channel["push"].push == PUSH
    assert store.claim_notices(lease_s=60) == []
    store.notice_retry(by_channel["email"].id, attempts=1, next_s=clock() + 5, error="451 try later")
    store.notice_sent(by_channel["push"].id)
    assert store.claim_notices(lease_s=60) == []
    assert store.next_notice_s() == clock() + 5
    clock.advance(5)
    [again] = store.claim_notices(lease_s=60)
    assert (again.id, again.attempts) == (by_channel["email"].id, 1)
    store.notice_sent(again.id)
    clock.advance(3600)
    assert store.claim_notices(lease_s=60) == [] and store.next_notice_s() is None

    store.transition(MODERATOR, message_id, "closed")
    leased = store.claim_notices(lease_s=60)
    assert len(leased) == 2
    clock.advance(61)  # the claimer died: its lease ran out
    assert {n.id for n in store.claim_notices(lease_s=60)} == {n.id for n in leased}


def test_a_failed_notice_and_a_removed_subscription_are_not_claimed(store: MessageStore) -> None:
    message_id, code = submit(store)
    store.subscribe_push(code, PUSH)
    store.transition(MODERATOR, message_id, "in_review")
    notices = {n.channel: n for n in store.claim_notices(lease_s=0)}
    store.notice_failed(notices["email"].id, attempts=8, error="550 no such user")
    assert notices["push"].push_id is not None
    store.remove_push(notices["push"].push_id)
    assert store.claim_notices(lease_s=0) == [] and store.push_count(code) == 0
    with store._db as conn:
        rows = conn.execute("SELECT channel, failed_at, last_error FROM desk_message_notices").fetchall()
    assert [(r["channel"], r["failed_at"] is not None, r["last_error"]) for r in rows] == [
        ("email", True, "550 no such user")
    ]


def test_rotate_keys_reseals_the_kept_code_and_push_subscriptions(tmp_path: Path, clock: Clock) -> None:
    """The code kept for notices and the push subscriptions are re-sealed too, so the old key can go."""
    k1, k2 = new_setting_entry("k1"), new_setting_entry("k2")
    first = MessageStore(tmp_path / "d.db", keyring=Keyring.from_setting(k1), clock=clock)
    message_id, code = submit(first)
    first.subscribe_push(code, PUSH)
    first.close()
    second = MessageStore(tmp_path / "d.db", keyring=Keyring.from_setting(f"{k2},{k1}"), clock=clock)
    assert second.rotate_keys() == 1 and second.rotate_keys() == 0
    second.close()
    third = MessageStore(tmp_path / "d.db", keyring=Keyring.from_setting(k2), clock=clock)
    third.transition(MODERATOR, message_id, "in_review")
    claimed = third.claim_notices(lease_s=60)
    assert sorted(n.channel for n in claimed) == ["email", "push"] and {n.code for n in claimed} == {code}
    third.close()


def test_a_push_only_sender_is_erased_by_retention(store: MessageStore, clock: Clock) -> None:
    """A suggestion without contact whose sender subscribed a browser: retention erases the subscription and the
    kept code (an audit entry), and changes after that notify nobody."""
    message_id, code = submit(store, kind="suggestion", email=None, phone=None)
    assert store.subscribe_push(code, PUSH) is True
    clock.advance(31 * 86400)
    assert store.retention() == 1 and store.retention() == 0
    assert store.push_count(code) == 0
    store.transition(MODERATOR, message_id, "in_review")
    assert store.claim_notices(lease_s=60) == []
    with store._db as conn:
        assert conn.execute("SELECT code_sealed FROM desk_messages").fetchone()[0] is None
