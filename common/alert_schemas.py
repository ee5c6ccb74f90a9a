"""The follow API's shapes (``alerts/api.py``), documented in ``/openapi.json`` through ``archive/schemas.py``.

They live in ``common`` because ``archive/schemas.py`` lists every operation and may not import ``alerts``. They are
the request validation, not a description of it: ``alerts.follows`` checks a follow request against
:func:`new_follow` first (:func:`first_problem` names the field: ``target.value``,
``channel.subscription.keys.p256dh`` …, a 422), and the API checks its tokens and queries with the same regexes.
So what the document calls valid is never a 422 or 400. What no schema can say is answered otherwise: an unknown
bill is a 404; a webhook or push host that does not resolve to a public address, a ``p256dh`` that is no point on
P-256, a duplicate follow is a 409; an email follow on a server without ``SMTP_URL`` is a 503.

Patterns are written for both dialects (Python ``re`` and the ECMA-262 of JSON Schema): no ``\\s``, no ``\\d``; and
since Python's ``$`` also matches before a final newline, each is checked with ``fullmatch`` as written.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

_STRICT = ConfigDict(strict=True, extra="forbid", regex_engine="python-re")

# What common.thai.normalize strips or collapses away: the same set as archive.schemas.BLANK_CHARS
# (tests/test_alerts_schemas.py checks). A name must hold one character outside it, so it is not empty once normalised.
BLANK_CHARS = "\\x00-\\x20\\x7f\\x85\\xa0\\u1680\\u2000-\\u200d\\u2028\\u2029\\u202f\\u205f\\u2060\\u3000\\ufeff"
MAX_NAME_CHARS = 100  # a topic or agency name
MAX_KEYWORD_CHARS = 100
MAX_ID_CHARS = 64
MAX_URL_CHARS = 2048
MAX_EMAIL_CHARS = 254
CHAMBERS = ("senate", "joint", "committee")

FOLLOW_ID_REGEX = f"^[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_ID_CHARS - 1}}}$"
# An http(s) URL as alerts.url_policy.parse_url accepts it: a host name (no user:password@, no IPv6 literal), a
# port 0-65535, then printable ASCII. Whether the host resolves to a public address is the world's to say (409).
_PORT = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
URL_REGEX = f"^https?://[A-Za-z0-9.-]*[A-Za-z0-9-][A-Za-z0-9.-]*(:{_PORT})?([/?#][!-~]*)?$"
# Browsers write push keys as unpadded base64url: 65 bytes (an uncompressed point, so 0x04 first: "B") and 16.
P256DH_REGEX = "^B[A-Za-z0-9_-]{86}$"
AUTH_REGEX = "^[A-Za-z0-9_-]{22}$"
# Deliberately plain: one @, a dot in the domain, no spaces or angle brackets; the confirmation proves the rest.
EMAIL_REGEX = (
    "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\\.[A-Za-z0-9-]{1,63})+$"
)
# The confirmation (ct_…), management (mt_…) and signed unsubscribe (u1.fol_….…) tokens, all base64url and dots.
TOKEN_REGEX = "^[A-Za-z0-9_.-]{1,200}$"
# A management token alone: what /api/follows/{token} matches, so that …/confirm and …/unsubscribe are no token.
MANAGE_TOKEN_REGEX = "^mt_[A-Za-z0-9_-]{1,197}$"


def fullmatch(regex: str) -> re.Pattern[str]:
    """``regex`` (anchored with ^…$ for JSON Schema) compiled for ``fullmatch``, the way the server checks it."""
    return re.compile(regex.removeprefix("^").removesuffix("$"))


def _full(regex: str, description: str) -> AfterValidator:
    """The check behind ``pattern=regex``: a full match, as JSON Schema's ``^…$`` means it."""
    compiled = fullmatch(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(description)
        return value

    return AfterValidator(check)


_ID_TEXT = f"an id: 1-{MAX_ID_CHARS} of A-Z a-z 0-9 . _ : - starting with a letter or digit"
_ID = Annotated[str, Field(pattern=FOLLOW_ID_REGEX, description=_ID_TEXT), _full(FOLLOW_ID_REGEX, _ID_TEXT)]
_NAME_TEXT = f"a name of 1-{MAX_NAME_CHARS} characters, not blank"
_NAME = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_CHARS, pattern=f"[^{BLANK_CHARS}]", description=_NAME_TEXT)
]
_P256DH_TEXT = "base64url (unpadded) of the 65-byte uncompressed P-256 public key"
_AUTH_TEXT = "base64url (unpadded) of the 16-byte authentication secret"
_ENDPOINT_TEXT = f"the push service's URL (at most {MAX_URL_CHARS} characters; https unless WEBHOOK_ALLOW_PRIVATE)"
_URL_TEXT = (
    f"an http(s) URL of at most {MAX_URL_CHARS} characters with a host name and no user or password; "
    "the host must resolve to public addresses (WEBHOOK_ALLOW_PRIVATE lifts that)"
)
_EMAIL_TEXT = f"an email address of at most {MAX_EMAIL_CHARS} characters (a confirmation message is sent first)"
_TOKEN_TEXT = "the token from the link: 1-200 of A-Z a-z 0-9 _ . -"
_MANAGE_TEXT = "the management token (mt_…) shown when the follow was made"
_QUERY_TEXT = (
    f'a search of 1-{MAX_KEYWORD_CHARS} characters: words and "quoted phrases" separated by spaces, each with a '
    'Thai character, a Latin letter or a digit; -word or -"phrase" excludes'
)


class BillTarget(BaseModel):
    model_config = _STRICT
    kind: Literal["bill"]
    value: _ID


class SpeakerTarget(BaseModel):
    model_config = _STRICT
    kind: Literal["speaker"]
    value: _ID


class TopicTarget(BaseModel):
    model_config = _STRICT
    kind: Literal["topic"]
    value: _NAME


class AgencyTarget(BaseModel):
    model_config = _STRICT
    kind: Literal["agency"]
    value: _NAME


class SittingsTarget(BaseModel):
    model_config = _STRICT
    kind: Literal["sittings"]
    value: Literal["senate", "joint", "committee"] = Field(description="one of " + ", ".join(CHAMBERS))


class PushKeys(BaseModel):
    model_config = _STRICT
    p256dh: Annotated[str, Field(pattern=P256DH_REGEX, description=_P256DH_TEXT), _full(P256DH_REGEX, _P256DH_TEXT)]
    auth: Annotated[str, Field(pattern=AUTH_REGEX, description=_AUTH_TEXT), _full(AUTH_REGEX, _AUTH_TEXT)]


class PushSubscriptionIn(BaseModel):
    model_config = _STRICT
    endpoint: Annotated[
        str,
        Field(max_length=MAX_URL_CHARS, pattern=URL_REGEX, description=_ENDPOINT_TEXT),
        _full(URL_REGEX, _ENDPOINT_TEXT),
    ]
    keys: PushKeys
    # PushSubscription.toJSON() has it; the push service's expiry is learnt from its 404/410, so it is not kept.
    expirationTime: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="when the subscription expires (ms since the epoch), or null"
    )


class WebhookChannelIn(BaseModel):
    model_config = _STRICT
    type: Literal["webhook"]
    url: Annotated[
        str, Field(max_length=MAX_URL_CHARS, pattern=URL_REGEX, description=_URL_TEXT), _full(URL_REGEX, _URL_TEXT)
    ]


class PushChannelIn(BaseModel):
    model_config = _STRICT
    type: Literal["push"]
    subscription: PushSubscriptionIn


class EmailChannelIn(BaseModel):
    model_config = _STRICT
    type: Literal["email"]
    email: Annotated[
        str,
        Field(max_length=MAX_EMAIL_CHARS, pattern=EMAIL_REGEX, description=_EMAIL_TEXT),
        _full(EMAIL_REGEX, _EMAIL_TEXT),
    ]
    digest: Literal["immediate", "daily"] = Field("immediate", description="immediate or daily")


def _query(query_regex: str) -> Any:
    """A keyword in the archive's search grammar, at most MAX_KEYWORD_CHARS code points (as JSON Schema counts)."""
    return Annotated[
        str,
        Field(min_length=1, max_length=MAX_KEYWORD_CHARS, pattern=query_regex, description=_QUERY_TEXT),
        _full(query_regex, _QUERY_TEXT),
    ]


@cache
def new_follow(query_regex: str) -> type[BaseModel]:
    """The ``POST /api/follows`` body; a keyword is written in the archive's search grammar (``query_regex`` is
    ``archive.search.QUERY_REGEX``, passed in since ``common`` may not import ``archive``)."""

    class KeywordTarget(BaseModel):
        model_config = _STRICT
        kind: Literal["keyword"]
        value: _query(query_regex)  # type: ignore[valid-type]

    class NewFollow(BaseModel):
        model_config = _STRICT
        target: BillTarget | SpeakerTarget | TopicTarget | AgencyTarget | KeywordTarget | SittingsTarget = Field(
            discriminator="kind"
        )
        channel: WebhookChannelIn | PushChannelIn | EmailChannelIn = Field(discriminator="type")

    return NewFollow


@cache
def search_feed_query(query_regex: str) -> type[BaseModel]:
    """The ``GET /feeds/search.atom`` query: the same words a keyword follow takes."""

    class SearchFeedQuery(BaseModel):
        model_config = _STRICT
        q: _query(query_regex)  # type: ignore[valid-type]

    return SearchFeedQuery


def first_problem(model: type[BaseModel], data: object) -> tuple[str, str] | None:
    """The first field of ``data`` that breaks ``model``, dotted as the request spells it
    (``channel.subscription.keys.p256dh``; ``body`` for the whole), and a sentence saying what it must be; None
    when ``data`` fits."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
    else:
        return None
    names, description, choices = _walk(model, error["loc"])
    field = ".".join(names) or "body"
    kind = error["type"]
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        field = f"{field}.{error.get('ctx', {}).get('discriminator', 'type').strip(chr(39))}"
        return field, f"{field} must be one of {', '.join(choices)}"
    if kind == "missing":
        return field, f"{field} is required"
    if kind == "extra_forbidden":
        return field, f"{field} is not a field of this object"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return field, f"{field} must be a JSON object"
    return field, f"{field} must be {description}" if description else f"{field}: {error['msg']}"


def _walk(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[list[str], str | None, list[str]]:
    """The field names along ``loc`` (a discriminated union's tag, which pydantic puts in ``loc``, left out), the
    last field's description, and the tags of the union it holds."""
    names: list[str] = []
    description: str | None = None
    current: type[BaseModel] | None = model
    union: dict[str, type[BaseModel]] | None = None
    for part in loc:
        if union is not None:
            current, union = union.get(str(part)), None
            continue
        names.append(str(part))
        info = current.model_fields.get(str(part)) if current is not None else None
        if info is None:
            current, description = None, None
            continue
        description = info.description or _metadata_description(info.metadata)
        members = [m for m in (get_args(info.annotation) or (info.annotation,)) if _is_model(m)]
        if isinstance(info.discriminator, str):
            key = info.discriminator
            union = {get_args(m.model_fields[key].annotation)[0]: m for m in members}
        else:
            current = members[0] if members else None
    return names, description, sorted(union or {})


def _metadata_description(metadata: list[Any]) -> str | None:
    for item in metadata:
        text = getattr(item, "description", None)
        if isinstance(text, str):
            return text
    return None


def _is_model(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


class TokenQuery(BaseModel):
    model_config = _STRICT
    token: Annotated[str, Field(pattern=TOKEN_REGEX, description=_TOKEN_TEXT), _full(TOKEN_REGEX, _TOKEN_TEXT)]


class FollowTokenPath(BaseModel):
    model_config = _STRICT
    token: Annotated[
        str, Field(pattern=MANAGE_TOKEN_REGEX, description=_MANAGE_TEXT), _full(MANAGE_TOKEN_REGEX, _MANAGE_TEXT)
    ]


class BillFeedPath(BaseModel):
    model_config = _STRICT
    bill_id: str = Field(description="a bill id")


class SpeakerFeedPath(BaseModel):
    model_config = _STRICT
    name: str = Field(description="a speaker's name as the transcript gives it")


class FollowTargetOut(BaseModel):
    kind: Literal["bill", "topic", "agency", "keyword", "speaker", "sittings"]
    value: str


class FollowOut(BaseModel):
    id: str
    target: FollowTargetOut
    channel: Literal["webhook", "push", "email"]
    state: Literal["active", "pending", "unsubscribed", "removed", "expired"]


class FollowCreated(BaseModel):
    ok: Literal[True] = True
    follow: FollowOut
    token: str = Field(description="the management token, shown only here")
    secret: str | None = Field(None, description="a webhook's whsec_ signing secret, shown only here")
    manage: str = Field(description="the follow's management URL (GET shows it, DELETE ends it)")
    unsubscribe: str = Field(description="the unsubscribe link")
    feed: str | None = Field(None, description="the Atom feed of the same target, where there is one")


class FollowOne(BaseModel):
    ok: Literal[True] = True
    follow: FollowOut


class FollowDone(BaseModel):
    ok: Literal[True] = True
    id: str
    state: Literal["active", "unsubscribed"]


class UnsubscribeForm(BaseModel):
    ok: Literal[True] = True
    unsubscribe: str = Field(description="the URL to POST to end the follow")
    method: Literal["POST"]


class VapidOut(BaseModel):
    ok: Literal[True] = True
    key: str = Field(description="the VAPID public key, base64url: pushManager.subscribe's applicationServerKey")
