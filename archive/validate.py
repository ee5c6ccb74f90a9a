"""Requests checked against the models of :mod:`archive.schemas`: each failure names the field, in the one error shape.

Bodies that fail are a 422, query parameters a 400; a body over the cap is a 413 before it is even read whole.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from starlette.requests import Request

from common.http import read_body_capped

MAX_BODY_BYTES = 64 * 1024

M = TypeVar("M", bound=BaseModel)

# Query text that is an integer; anything else in an integer parameter is refused, not guessed at ("1.0", "1_0").
_INTEGER = re.compile(r"-?[0-9]{1,24}")


class Invalid(ValueError):
    """A request field that breaks its model; ``status`` is 422 for bodies, 400 for query parameters."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


@functools.cache
def _descriptions(model: type[BaseModel]) -> dict[str, str]:
    """Each field's description (what it ``must be``), from the model's JSON schema, nullable fields included."""
    found: dict[str, str] = {}
    for name, prop in model.model_json_schema()["properties"].items():
        for candidate in (prop, *prop.get("anyOf", ())):
            if "description" in candidate:
                found[name] = candidate["description"]
                break
    return found


def _invalid(model: type[BaseModel], error: ErrorDetails, status: int) -> Invalid:
    kind, loc = error["type"], error["loc"]
    if kind == "json_invalid":
        return Invalid("body", "must be valid JSON", status)
    if not loc:
        return Invalid("body", "must be a JSON object", status)
    field = str(loc[0])
    if kind == "missing":
        return Invalid(field, "is required", status)
    if kind == "extra_forbidden":
        return Invalid(field, f"unknown field; allowed: {', '.join(sorted(model.model_fields))}", status)
    description = _descriptions(model).get(field)
    return Invalid(field, f"must be {description}" if description else str(error["msg"]), status)


def check(model: type[M], data: Any, *, status: int = 422) -> M:
    """``data`` (already decoded) as ``model``, or :class:`Invalid` naming the first field at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(model, exc.errors()[0], status) from None


async def body(request: Request, model: type[M], *, limit: int = MAX_BODY_BYTES) -> M:
    """The request's JSON body as ``model``: 413 past ``limit`` bytes (``BodyTooLarge``), else 422 naming the field."""
    raw = await read_body_capped(request, limit)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _invalid(model, exc.errors()[0], 422) from None


def query(params: Mapping[str, str], model: type[M]) -> M:
    """Query parameters as ``model`` (unknown ones are ignored), or :class:`Invalid` with status 400."""
    data: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        name = info.alias or field_name  # `from` is a parameter but not a Python name
        raw = params.get(name)
        if raw is None:
            continue
        if info.annotation in (int, int | None):
            if not _INTEGER.fullmatch(raw):
                raise Invalid(name, f"must be {_descriptions(model).get(name, 'an integer')}", 400)
            data[name] = int(raw)
        else:
            data[name] = raw
    return check(model, data, status=400)
