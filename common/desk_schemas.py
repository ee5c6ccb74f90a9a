"""The public messages API's shapes, defined once: ``archive/schemas.py`` documents them in ``/openapi.json``, and
``desk/messages_api.py`` answers in them (both read them, neither may import the other, so they live in ``common``).

The sender's form is validated by ``desk.messages.validate_submission``, which also reads what no JSON Schema
can say (an email's internationalised domain, a phone number typed with spaces, dashes or Thai digits). These
models state the canonical spellings of the same rules, as a subset of what that function accepts: a request the
document calls valid is never refused for its form, and ``tests/test_messages_api.py`` checks the limits and the
blank set against ``desk.messages`` and ``desk.text.clean_text``. Each ``description`` completes the sentence
"``<field>`` must be …".

Contact data is the sender's: it appears only in the export (``GET /api/messages/{code}/export``, for the code's
holder) and in the moderators' ``/contact`` answer, never in a listing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from common.alert_schemas import PushSubscriptionIn

# Mirrors desk.messages (KINDS, STATUSES, the *_MAX lengths, CODE_ALPHABET); tests/test_messages_api.py checks it.
SUBJECT_MAX = 200
TEXT_MAX = 5000
ANSWER_MAX = 5000
COMMITTEE_MAX = 200
NOTE_MAX = 1000
EMAIL_MAX = 254
PHONE_MAX = 16
USERNAME_MAX = 32
PAGE_MAX = 100
Kind = Literal["complaint", "suggestion", "question"]
Status = Literal["received", "in_review", "forwarded", "answered", "closed", "spam"]

# What desk.text.clean_text drops or trims away: control characters (Cc) and whitespace (str.isspace). A text must
# hold one character outside this set, so that it is not empty once cleaned.
BLANK_CHARS = "\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
NOT_BLANK = f"[^{BLANK_CHARS}]"
# What str.strip() removes: an email or phone of only these is no contact at all (desk.messages reads it as absent).
SPACE_CHARS = "\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
_ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = "[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?"
# An ASCII address, spelt so that every match is within parse_email's limits (a local part of at most 64
# characters, 254 in all): up to four dot-separated atoms, up to four domain labels of 32. desk.messages.parse_email
# takes more (longer labels, an internationalised domain, which it stores in punycode).
EMAIL_REGEX = (
    f"({_ATEXT}{{1,15}}\\.){{0,3}}{_ATEXT}{{1,16}}@({_LABEL}\\.){{1,3}}[A-Za-z]([A-Za-z0-9-]{{0,30}}[A-Za-z0-9])?"
)
# A Thai number (0 and 8-9 digits, or +66 without the 0) or another country's (+ and 8-15 digits), digits only.
PHONE_REGEX = "0[1-9][0-9]{7,8}|\\+66[1-9][0-9]{7,8}|\\+([1-57-9][0-9]|6[0-57-9])[0-9]{6,13}"
# desk.messages.CODE_ALPHABET in four groups of four, dashes optional.
CODE_REGEX = "^[2-9A-HJ-NP-Z]{4}(-?[2-9A-HJ-NP-Z]{4}){3}$"
MESSAGE_ID_REGEX = "^[0-9a-f]{16}$"
ATTACHMENT_NAME_REGEX = "^[0-9a-f]{32}$"
PUBLISHED_AT_REGEX = "^[0-9TZ:.-]{10,30}$"

_EMAIL_DESCRIPTION = (
    f"an email address of at most {EMAIL_MAX} characters, or empty (an internationalised domain is accepted too)"
)
_PHONE_DESCRIPTION = (
    "a phone number, 0812345678 or +66812345678 (spaces, dashes, brackets and Thai digits are accepted too), or empty"
)
_YES = "true (JSON), or the text true, on, 1 or yes (a form's checkbox)"
_BODY_DOC = (
    "A complaint or question needs an email or a phone number to be answered; a suggestion may come without. "
    "The honeypot `website` is for robots: a request that fills it is answered 202 and stored nowhere."
)


def _text(max_len: int) -> Any:
    return Field(max_length=max_len, pattern=NOT_BLANK, description=f"text of at most {max_len} characters, not blank")


def _optional_text(max_len: int) -> Any:
    # Blank text (after the desk drops control characters) counts as not given: desk/messages_sqlite.py.
    return Field(None, max_length=max_len, description=f"text of at most {max_len} characters, or null")


# A complaint or a question must say how to answer it: an email or a phone that is not blank.
_CONTACT_NEEDED: dict[str, Any] = {
    "if": {"required": ["kind"], "properties": {"kind": {"enum": ["complaint", "question"]}}},
    "then": {
        "anyOf": [
            {"required": ["email"], "properties": {"email": {"type": "string", "pattern": f"[^{SPACE_CHARS}]"}}},
            {"required": ["phone"], "properties": {"phone": {"type": "string", "pattern": f"[^{SPACE_CHARS}]"}}},
        ]
    },
}


def _contact(regex: str, max_len: int, description: str, *, nullable: bool) -> WithJsonSchema:
    """A contact field: blank (then absent, whatever its length), or one canonical spelling within ``max_len``."""
    kinds: list[dict[str, Any]] = [
        {"type": "string", "pattern": f"^[{SPACE_CHARS}]*$"},
        {"type": "string", "maxLength": max_len, "pattern": f"^({regex})$"},
    ]
    return WithJsonSchema({"anyOf": kinds + ([{"type": "null"}] if nullable else []), "description": description})


# ---- requests ------------------------------------------------------------------------------------------------


class NewMessage(BaseModel):
    """``POST /api/messages`` as JSON. (Fields not named here are ignored, but the document names them all.)"""

    model_config = ConfigDict(
        extra="forbid", regex_engine="python-re", json_schema_extra={**_CONTACT_NEEDED, "description": _BODY_DOC}
    )
    kind: Kind = Field(description="one of complaint, suggestion, question")
    subject: str = _text(SUBJECT_MAX)
    text: str = _text(TEXT_MAX)
    email: Annotated[str | None, _contact(EMAIL_REGEX, EMAIL_MAX, _EMAIL_DESCRIPTION, nullable=True)] = None
    phone: Annotated[str | None, _contact(PHONE_REGEX, PHONE_MAX, _PHONE_DESCRIPTION, nullable=True)] = None
    consent: Literal[True, "true", "on", "1", "yes"] = Field(
        description=f"{_YES}: the sender agrees to the privacy notice (/privacy)"
    )
    publish_ok: Any = Field(
        None, description=f"{_YES} to let an answered suggestion be published anonymised; anything else: not"
    )
    website: Any = Field(None, description="absent or empty (the honeypot)")


class MessageForm(BaseModel):
    """``POST /api/messages`` as a urlencoded form: the same fields, each as text."""

    model_config = ConfigDict(
        extra="forbid", regex_engine="python-re", json_schema_extra={**_CONTACT_NEEDED, "description": _BODY_DOC}
    )
    kind: Kind = Field(description="one of complaint, suggestion, question")
    subject: str = _text(SUBJECT_MAX)
    text: str = _text(TEXT_MAX)
    email: Annotated[str, _contact(EMAIL_REGEX, EMAIL_MAX, _EMAIL_DESCRIPTION, nullable=False)] = ""
    phone: Annotated[str, _contact(PHONE_REGEX, PHONE_MAX, _PHONE_DESCRIPTION, nullable=False)] = ""
    consent: Literal["true", "on", "1", "yes"] = Field(description="true, on, 1 or yes: consent to the privacy notice")
    publish_ok: str = Field("", description="true, on, 1 or yes to allow publishing; anything else: not")
    website: str = Field("", description="empty (the honeypot)")


class MessageMultipart(MessageForm):
    """``POST /api/messages`` as ``multipart/form-data`` (the /write page): the form's fields and up to five files."""

    # One file per part; the part repeats for more (OpenAPI has no array of files that the fuzzer can send).
    attachments: Annotated[
        bytes,
        WithJsonSchema(
            {
                "type": "string",
                "format": "binary",
                "description": "a file, PNG, JPEG, WebP or PDF as its bytes show, at most 5 MB; the part may repeat,"
                " up to 5 files and 15 MB in all",
            }
        ),
    ] = b""


class SetMessageStatus(BaseModel):
    """A move along the workflow; forwarding names the committee, answering gives the answer."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        regex_engine="python-re",
        json_schema_extra={
            "allOf": [
                {
                    "if": {"required": ["status"], "properties": {"status": {"const": "forwarded"}}},
                    "then": {
                        "required": ["committee"],
                        "properties": {"committee": {"type": "string", "pattern": NOT_BLANK}},
                    },
                },
                {
                    "if": {"required": ["status"], "properties": {"status": {"const": "answered"}}},
                    "then": {
                        "required": ["answer"],
                        "properties": {"answer": {"type": "string", "pattern": NOT_BLANK}},
                    },
                },
            ]
        },
    )
    status: Status = Field(description="one of received, in_review, forwarded, answered, closed, spam")
    note: str | None = _optional_text(NOTE_MAX)
    committee: str | None = _optional_text(COMMITTEE_MAX)
    answer: str | None = _optional_text(ANSWER_MAX)


class AssignMessage(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", regex_engine="python-re")
    assigned_to: str | None = Field(
        min_length=1, max_length=USERNAME_MAX, description="a moderator's username, or null to unassign"
    )


class PublishMessage(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", regex_engine="python-re")
    published: bool = Field(description="true (show the answered suggestion, anonymised) or false (withdraw it)")


class CodePath(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")
    code: str = Field(pattern=CODE_REGEX, description="the tracking code given on submission, e.g. 7K4M-QX2P-9HDR-2WCE")


class MessagePath(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")
    message_id: str = Field(pattern=MESSAGE_ID_REGEX, description="a message id: 16 hexadecimal digits")


class AttachmentPath(MessagePath):
    name: str = Field(pattern=ATTACHMENT_NAME_REGEX, description="an attachment's name: 32 hexadecimal digits")


class SuggestionsQuery(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")
    before: str | None = Field(
        None, pattern=PUBLISHED_AT_REGEX, description="the published_at of the last suggestion seen (paging)"
    )
    limit: int = Field(20, ge=1, le=PAGE_MAX, description=f"an integer from 1 to {PAGE_MAX}")


class StaffMessagesQuery(BaseModel):
    model_config = ConfigDict(strict=True, regex_engine="python-re")
    status: Status | None = Field(None, description="one of received, in_review, forwarded, answered, closed, spam")
    kind: Kind | None = Field(None, description="one of complaint, suggestion, question")
    before: str | None = Field(None, pattern=MESSAGE_ID_REGEX, description="a message id: only older ones (paging)")
    limit: int = Field(50, ge=1, le=PAGE_MAX, description=f"an integer from 1 to {PAGE_MAX}")


# ---- responses -----------------------------------------------------------------------------------------------


class _Ok(BaseModel):
    ok: Literal[True]


class MessageReceipt(_Ok):
    code: str = Field(description="the tracking code: shown in this answer only, never again")
    status: Literal["received"]
    status_url: str = Field(description="the sender's status page")
    api_url: str = Field(description="its JSON twin (GET), and the erasure (DELETE)")


class HistoryEntry(BaseModel):
    at: str
    status: Status


class SenderView(BaseModel):
    """The sender's status page: their message, its history and the answer."""

    kind: Kind
    subject: str
    text: str
    status: Status
    received_at: str
    history: list[HistoryEntry]
    committee: str | None
    answer: str | None


class MessageStatusOut(_Ok):
    message: SenderView
    export_url: str


class AttachmentOut(BaseModel):
    name: str
    content_type: Literal["image/png", "image/jpeg", "image/webp", "application/pdf"]
    size: int
    width: int | None
    height: int | None
    sha256: str


class MessageOut(BaseModel):
    """A message as moderators see it: never its contact details."""

    id: str
    kind: Kind
    subject: str
    text: str
    status: Status
    has_contact: bool
    contact_erased_at: str | None
    publish_ok: bool
    assigned_to: str | None
    committee: str | None
    answer: str | None
    created_at: str
    updated_at: str
    attachments: list[AttachmentOut]
    published_at: str | None


class ContactOut(BaseModel):
    email: str | None
    phone: str | None


class MessageExport(MessageOut):
    """Everything stored about the message (the PDPA export), contact data included."""

    contact: ContactOut | None
    history: list[HistoryEntry]
    push_subscriptions: list[PushSubscriptionOut] = Field(
        description="the browsers subscribed on the status page for notices"
    )


class MessageExportOut(_Ok):
    message: MessageExport


class ErasedOut(_Ok):
    erased: Literal[True]


class PushSubscriptionOut(BaseModel):
    endpoint: str = Field(description="the push service's URL the notices go to")
    created_at: str


class MessagePushIn(BaseModel):
    """``POST /api/messages/{code}/push``: this browser's subscription, for notices of the message's status."""

    model_config = ConfigDict(strict=True, extra="forbid", regex_engine="python-re")
    subscription: PushSubscriptionIn = Field(description="the browser's PushSubscription.toJSON()")


class MessagePushOut(_Ok):
    subscribed: Literal[True]
    new: bool = Field(description="false when this browser was already subscribed (its keys are refreshed)")


class SuggestionOut(BaseModel):
    id: str
    subject: str
    text: str
    committee: str | None
    answer: str | None
    published_at: str


class SuggestionsOut(_Ok):
    suggestions: list[SuggestionOut]
    next_before: str | None = Field(description="pass as ?before= for the next page; null on the last")


class MessageList(_Ok):
    messages: list[MessageOut]
    next_before: str | None = Field(description="pass as ?before= for the next page; null on the last")


class MessageOne(_Ok):
    message: MessageOut


class ContactOne(_Ok):
    contact: ContactOut | None = Field(description="the sender's contact data (the opening is audited); null: none")
