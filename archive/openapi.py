"""``/openapi.json``, built from the app's route table and the models of :mod:`archive.schemas`.

Nothing here is written by hand: a route is in the document when the app serves it and ``OPERATIONS`` describes
it, with the parameters, bodies and answers of the same models that validate its requests. Routes no
``Operation`` describes (pages, static files, the WebSocket, WHIP/WHEP with their SDP bodies) are left out; they
are in docs/api.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.routing import BaseRoute, Route

from archive.schemas import JSON, OPERATIONS, Error, Operation

_REF = "#/components/schemas/{model}"
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")  # Starlette's {name:path} is OpenAPI's {name}

REASONS = {
    400: "A query parameter is invalid; `field` names it",
    401: "No credentials, or wrong ones: a staff session cookie, an API token, or OPERATOR_TOKEN before accounts",
    403: "Signed in without the permission this needs, or a session request without its X-CSRF-Token",
    404: "No such resource (or a malformed id, which names none)",
    409: "A sitting with that id already exists",
    413: "The request body is larger than the endpoint accepts",
    415: "The request body's media type is not one the endpoint accepts",
    422: "The JSON body is invalid; `field` names the culprit (`body` for the whole body)",
    429: "Too many connections, or failed sign-ins, from this address or for this account (see Retry-After)",
    503: "A dependency (the broker or the database) is unavailable",
}


def route_operations(routes: Iterable[BaseRoute]) -> list[tuple[str, str, Operation]]:
    """(method, OpenAPI path, operation) for each method of each route that ``OPERATIONS`` describes."""
    found = []
    for route in routes:
        if not isinstance(route, Route):
            continue
        path = _CONVERTOR.sub(r"{\1}", route.path)
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            operation = OPERATIONS.get((method, path))
            if operation is not None:
                found.append((method, path, operation))
    return found


def _parameters(model: type[BaseModel] | None, where: str) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        # A parameter may be absent; "null" is no value a query string can carry.
        if "anyOf" in prop:
            members = [m for m in prop.pop("anyOf") if m.get("type") != "null"]
            prop = {**prop, **members[0]} if len(members) == 1 else {**prop, "anyOf": members}
        description = prop.pop("description", None)
        param: dict[str, Any] = {"name": name, "in": where, "required": where == "path" or name in required}
        if description:
            param["description"] = f"must be {description}"
        param["schema"] = prop
        params.append(param)
    return params


def _error(status: int, reason: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": reason or REASONS[status],
        "content": {JSON: {"schema": {"$ref": _REF.format(model="Error")}}},
    }
    if status == 429:
        answer["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
    return answer


def openapi_document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``."""
    described = route_operations(routes)
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Error, "serialization")]
    for _, _, op in described:
        if op.body is not None:
            wanted.append((op.body, "validation"))
        wanted.extend((form, "validation") for form in op.forms.values())
        if isinstance(op.ok[1], type):
            wanted.append((op.ok[1], "serialization"))
    refs, definitions = models_json_schema(sorted(set(wanted), key=lambda m: m[0].__name__), ref_template=_REF)

    paths: dict[str, dict[str, Any]] = {}
    for method, path, op in described:
        status, shape = op.ok
        if isinstance(shape, type):
            content = {JSON: {"schema": refs[(shape, "serialization")]}}
            said = ['Success: {"ok": true, ...}']
        else:
            content = {media: {"schema": {"type": "string"}} for media in shape}
            said = [f"{media}: {text}" for media, text in shape.items()]
        content.update({media: {"schema": {"type": "string"}} for media in op.alternatives})
        description = "; ".join(said + [f"{media} ({text})" for media, text in op.alternatives.items()])
        responses: dict[str, Any] = {str(status): {"description": description, "content": content}}
        responses.update({str(code): _error(code, op.reasons.get(code)) for code in sorted(op.errors)})
        operation: dict[str, Any] = {
            "operationId": f"{method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', path).rstrip('_')}",
            "summary": op.summary,
            "responses": responses,
        }
        parameters = _parameters(op.path, "path") + _parameters(op.query, "query")
        parameters += [
            {"name": name, "in": "header", "required": False, "description": text, "schema": {"type": "string"}}
            for name, text in op.headers.items()
        ]
        if parameters:
            operation["parameters"] = parameters
        bodies = {JSON: op.body} if op.body is not None else {}
        bodies.update(op.forms)
        request_content: dict[str, dict[str, Any]] = {
            media: {"schema": refs[(model, "validation")]} for media, model in bodies.items()
        }
        binary = {"type": "string", "format": "binary"}
        request_content.update({media: {"schema": binary, "description": text} for media, text in op.raw.items()})
        if request_content:
            operation["requestBody"] = {"required": True, "content": request_content}
        if op.operator:
            operation["security"] = [{"operatorToken": []}]
        paths.setdefault(path, {})[method.lower()] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sapha",
            "version": "0.1.0",
            "description": "Live Thai legislative sittings: events, transcripts, operator API. See docs/api.md.",
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"operatorToken": {"type": "http", "scheme": "bearer"}},
        },
    }
