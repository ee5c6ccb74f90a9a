"""The public's messages (complaints, suggestions, questions), sans-I/O: validation, tracking codes, the status
workflow, duplicate fingerprints and the abuse limits. Storage is ``desk/messages_sqlite.py``.

Everything a sender writes is plain text from the form to the database and back: nothing here escapes or
strips markup, because nothing is ever rendered as HTML. Pages set it with ``textContent`` and JSON carries it
as a string; ``<script>`` typed into a subject comes back as those eight characters.

Wiring (to do): ``POST /api/messages`` (JSON or multipart from ``/write``), in this order:

1. ``validate_submission(fields)`` → 400 ``{"ok": false, "error", "fields": {name: message}}`` (the form ties
   each message to its field with ``aria-describedby``);
2. ``submission.trapped`` (the honeypot ``website`` was filled): answer 202 exactly as a success would, with a
   throwaway ``new_tracking_code()``, and store nothing, so a bot learns nothing;
3. ``SubmissionLimits.admit(ip, submission.contact)`` > 0 → 429 with ``Retry-After``;
4. attachments through ``desk/attachments.py`` (415/413 from there);
5. ``MessageStore.submit`` (``Duplicate`` → 409) → 202 ``{"ok": true, "code", "status": "received"}``.

``GET /api/messages/status?code=`` (and ``/write/status``), ``POST /api/messages/export`` and ``.../erase`` take
the tracking code and first spend ``SubmissionLimits.lookup(ip)`` (429 when empty), so codes cannot be guessed
by brute force: 16 characters of a 32-letter alphabet is 80 bits, and lookups per address are few. Codes are
taken from the body or query, never logged (the access log must drop the query of these routes).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from common.thai import normalize, thai_digits_to_arabic
from desk.ratelimit import BucketPolicy, Clock, TokenBuckets
from desk.text import clean_text

KINDS = ("complaint", "suggestion", "question")
STATUSES = ("received", "in_review", "forwarded", "answered", "closed", "spam")
# Which status may follow which. ``closed`` is final; ``spam`` can be undone (a false positive) by review.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "received": frozenset({"in_review", "closed", "spam"}),
    "in_review": frozenset({"forwarded", "answered", "closed", "spam"}),
    "forwarded": frozenset({"in_review", "answered", "closed"}),
    "answered": frozenset({"in_review", "closed"}),
    "closed": frozenset(),
    "spam": frozenset({"in_review"}),
}
SUBJECT_MAX = 200
TEXT_MAX = 5000
ANSWER_MAX = 5000
COMMITTEE_MAX = 200
NOTE_MAX = 1000
EMAIL_MAX = 254
HONEYPOT = "website"
# 32 letters with no 0/O, 1/I: nothing a reader can mistake when copying a code from a screen.
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_LENGTH = 16
CONTACT_OPTIONAL = frozenset({"suggestion"})

_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
_THAI_PHONE = re.compile(r"0[1-9][0-9]{7,8}")
_INTL_PHONE = re.compile(r"\+[1-9][0-9]{7,14}")
_TRUE = (True, "true", "on", "1", "yes")


class InvalidMessage(ValueError):
    """One or more fields refused (400): ``fields`` maps each field name to what is wrong with it."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = dict(fields)


class InvalidTransition(ValueError):
    """A status change the workflow does not allow (409)."""


@dataclass(frozen=True, slots=True)
class Contact:
    email: str | None = None
    phone: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"email": self.email, "phone": self.phone}


@dataclass(frozen=True, slots=True)
class Submission:
    kind: Literal["complaint", "suggestion", "question"]
    subject: str
    text: str
    contact: Contact | None
    publish_ok: bool
    trapped: bool = False

    def fingerprint(self) -> str:
        return fingerprint(self.subject, self.text)


def parse_email(value: str) -> str:
    """A plausible address (RFC 5321 lengths, dot-atom local part, a domain of at least two labels), domain
    lowercased; internationalised domains are kept in their punycode form."""
    email = value.strip()
    if len(email) > EMAIL_MAX or email.count("@") != 1:
        raise ValueError("is not an email address")
    local, domain = email.split("@")
    if not 1 <= len(local) <= 64 or not _EMAIL_LOCAL.fullmatch(local):
        raise ValueError("is not an email address")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValueError("is not an email address") from exc
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise ValueError("is not an email address")
    return f"{local}@{ascii_domain}"


def parse_phone(value: str) -> str:
    """A Thai number (``0`` + 8-9 digits; ``+66`` becomes ``0``) or an international one (``+`` and 8-15 digits);
    separators and Thai digits accepted."""
    phone = _PHONE_SEPARATORS.sub("", thai_digits_to_arabic(value.strip()))
    if phone.startswith("+66"):
        phone = "0" + phone[3:]
    if len(phone) > 16 or not (_THAI_PHONE.fullmatch(phone) or _INTL_PHONE.fullmatch(phone)):
        raise ValueError("is not a phone number")
    return phone


def _optional_field(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value) > 1000:
        raise ValueError("must be short text")
    return value


def validate_submission(fields: Mapping[str, Any]) -> Submission:
    """The form's fields (JSON object or form data as str) → a ``Submission``, or ``InvalidMessage`` naming
    every field that is wrong: ``kind``, ``subject``, ``text``, ``email``, ``phone``, ``consent``."""
    errors: dict[str, str] = {}
    kind = fields.get("kind")
    if kind not in KINDS:
        errors["kind"] = f"must be one of {', '.join(KINDS)}"
    subject = text = ""
    try:
        subject = clean_text(fields.get("subject"), max_len=SUBJECT_MAX, multiline=False)
    except ValueError as exc:
        errors["subject"] = str(exc)
    try:
        text = clean_text(fields.get("text"), max_len=TEXT_MAX, multiline=True)
    except ValueError as exc:
        errors["text"] = str(exc)
    email = phone = None
    try:
        raw_email = _optional_field(fields, "email")
        email = None if raw_email is None else parse_email(raw_email)
    except ValueError as exc:
        errors["email"] = str(exc)
    try:
        raw_phone = _optional_field(fields, "phone")
        phone = None if raw_phone is None else parse_phone(raw_phone)
    except ValueError as exc:
        errors["phone"] = str(exc)
    contact = Contact(email=email, phone=phone) if email or phone else None
    if contact is None and kind in KINDS and kind not in CONTACT_OPTIONAL and not ({"email", "phone"} & errors.keys()):
        errors["email"] = "an email address or a phone number is needed to answer"
    if fields.get("consent") not in _TRUE:
        errors["consent"] = "consent to the privacy notice is required"
    if errors:
        raise InvalidMessage(errors)
    honeypot = fields.get(HONEYPOT)
    return Submission(
        kind=kind,  # type: ignore[arg-type]  # checked against KINDS above
        subject=subject,
        text=text,
        contact=contact,
        publish_ok=fields.get("publish_ok") in _TRUE,
        trapped=bool(honeypot),
    )


def check_transition(current: str, new: str) -> None:
    if new not in STATUSES:
        raise InvalidTransition(f"unknown status {new!r}; statuses are {', '.join(STATUSES)}")
    if new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (it is final)"
        raise InvalidTransition(f"a {current} message can become {allowed}, not {new}")


def new_tracking_code() -> str:
    """16 random characters of ``CODE_ALPHABET`` (80 bits), shown as four groups: ``7K4M-QX2P-...``."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def canonical_code(given: str) -> str | None:
    """The code as stored (upper case, no dashes or spaces), or None when it cannot be a code."""
    if not isinstance(given, str) or len(given) > 64:
        return None
    code = re.sub(r"[\s-]", "", given).upper()
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        return None
    return code


def display_code(code: str) -> str:
    """The code as the sender was shown it (four groups of four), from any accepted spelling."""
    canonical = canonical_code(code) or code
    return "-".join(canonical[i : i + 4] for i in range(0, len(canonical), 4))


def code_digest(code: str) -> str:
    """What the database keeps of a code (given in any accepted spelling); a code is 80 random bits, so a fast
    hash suffices: a stolen database yields no working codes."""
    canonical = canonical_code(code)
    if canonical is None:
        raise ValueError("not a tracking code")
    return hashlib.sha256(f"sapha-tracking:{canonical}".encode("ascii")).hexdigest()


def fingerprint(subject: str, text: str) -> str:
    """Equal for texts that differ only in case, spacing or invisible characters: the duplicate key."""
    folded = normalize(f"{subject}\n{text}").casefold()
    return hashlib.sha256(folded.encode("utf-8")).hexdigest()


class SubmissionLimits:
    """Per-address and per-contact buckets for submissions, and per-address buckets for code lookups.

    Contacts are keyed by a hash, so the limiter's memory holds no personal data.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        per_ip: BucketPolicy = BucketPolicy(capacity=5, per_s=1 / 300),
        per_contact: BucketPolicy = BucketPolicy(capacity=3, per_s=1 / 3600),
        lookups: BucketPolicy = BucketPolicy(capacity=20, per_s=1 / 30),
        max_keys: int = 100_000,
    ) -> None:
        self._ip = TokenBuckets(per_ip, clock=clock, max_keys=max_keys)
        self._contact = TokenBuckets(per_contact, clock=clock, max_keys=max_keys)
        self._lookups = TokenBuckets(lookups, clock=clock, max_keys=max_keys)

    def admit(self, ip: str, contact: Contact | None) -> float:
        """Seconds to wait before this submission may go in (0.0: it may, and has spent its tokens)."""
        wait = self._ip.take(ip)
        if wait > 0:
            return wait
        for value in (contact.email, contact.phone) if contact else ():
            if value:
                key = hashlib.sha256(value.casefold().encode("utf-8")).hexdigest()
                wait = max(wait, self._contact.take(key))
        return wait

    def lookup(self, ip: str) -> float:
        return self._lookups.take(ip)
