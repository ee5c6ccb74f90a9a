"""Request-body validation for the operator API: each failure names the field, for a 422 the operator can act on."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from broadcast.envelope import ID_PATTERN
from common.thai import normalize

_ID_RE = re.compile(ID_PATTERN)


class Invalid(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Body:
    """Typed accessors over a decoded JSON object; unknown fields are rejected so typos are not silently lost."""

    def __init__(self, raw: Any, allowed: set[str]) -> None:
        if not isinstance(raw, dict):
            raise Invalid("body", "must be a JSON object")
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise Invalid(unknown[0], f"unknown field; allowed: {', '.join(sorted(allowed))}")
        self.raw = raw

    def text(self, field: str, *, max_len: int, required: bool = True) -> str | None:
        value = self.raw.get(field)
        if value is None:
            if required:
                raise Invalid(field, "is required")
            return None
        if not isinstance(value, str):
            raise Invalid(field, "must be a string")
        value = normalize(value)
        if not value:
            raise Invalid(field, "must not be empty")
        if len(value) > max_len:
            raise Invalid(field, f"must be at most {max_len} characters")
        return value

    def required_text(self, field: str, *, max_len: int) -> str:
        value = self.text(field, max_len=max_len)
        assert value is not None
        return value

    def ident(self, field: str, *, required: bool = False) -> str | None:
        value = self.raw.get(field)
        if value is None:
            if required:
                raise Invalid(field, "is required")
            return None
        if not isinstance(value, str) or not _ID_RE.fullmatch(value):
            raise Invalid(field, "must be 1-64 characters of A-Z a-z 0-9 _ . - starting with a letter or digit")
        return value

    def choice(self, field: str, choices: frozenset[str]) -> str:
        value = self.raw.get(field)
        if value not in choices:
            raise Invalid(field, f"must be one of {', '.join(sorted(choices))}")
        return value

    def count(self, field: str, *, required: bool = True, minimum: int = 0, maximum: int = 100_000) -> int | None:
        value = self.raw.get(field)
        if value is None:
            if required:
                raise Invalid(field, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise Invalid(field, f"must be an integer from {minimum} to {maximum}")
        return value

    def required_count(self, field: str) -> int:
        value = self.count(field)
        assert value is not None
        return value

    def timestamp(self, field: str) -> str | None:
        value = self.raw.get(field)
        if value is None:
            return None
        if not isinstance(value, str):
            raise Invalid(field, "must be an ISO-8601 date-time string")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise Invalid(field, "must be an ISO-8601 date-time, e.g. 2026-11-25T09:30:00+07:00") from None
        if parsed.tzinfo is None:
            raise Invalid(field, "must include a time zone offset, e.g. +07:00 or Z")
        return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
