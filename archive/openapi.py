"""The OpenAPI document served at ``/openapi.json``, written out by hand so it says what the code does."""

from __future__ import annotations

from typing import Any

_ERR = {"$ref": "#/components/responses/Error"}
_ID = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"}
_SITTING_PARAM = {"name": "sitting_id", "in": "path", "required": True, "schema": _ID}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def _op(
    summary: str,
    *,
    operator: bool = False,
    body: dict[str, Any] | None = None,
    ok: int = 200,
    params: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {str(ok): _json('Success: {"ok": true, ...}')}
    if operator:
        responses.update({"401": _ERR, "404": _ERR, "422": _ERR})
    responses.update(extra or {})
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if operator:
        op["security"] = [{"operatorToken": []}]
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props, "additionalProperties": False}


_STR = {"type": "string"}
_COUNT = {"type": "integer", "minimum": 0}


def openapi_document() -> dict[str, Any]:
    since = {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sapha",
            "version": "0.1.0",
            "description": "Live Thai legislative sittings: events, transcripts, operator API. See docs/api.md.",
        },
        "paths": {
            "/healthz": {"get": _op("Liveness and dependency health")},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
            "/api/sittings": {
                "get": _op(
                    "List sittings, newest first",
                    params=[
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 500}},
                        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    ],
                ),
                "post": _op(
                    "Create a sitting",
                    operator=True,
                    ok=201,
                    extra={"409": _ERR},
                    body=_obj(
                        ["title", "chamber"],
                        id=_ID,
                        title=_STR,
                        chamber={"enum": ["senate", "joint", "committee"]},
                        scheduled_at={"type": "string", "format": "date-time"},
                    ),
                ),
            },
            "/api/sittings/{sitting_id}": {
                "get": _op(
                    "A sitting's state (agenda, speaker, votes) and its channel position",
                    params=[_SITTING_PARAM],
                    extra={"404": _ERR},
                )
            },
            "/api/sittings/{sitting_id}/transcript": {
                "get": _op(
                    "The transcript of final captions",
                    params=[
                        _SITTING_PARAM,
                        {"name": "format", "in": "query", "schema": {"enum": ["json", "txt", "vtt", "srt"]}},
                    ],
                    extra={"400": _ERR, "404": _ERR},
                )
            },
            "/api/sittings/{sitting_id}/status": {
                "post": _op(
                    "Set the sitting's status",
                    operator=True,
                    params=[_SITTING_PARAM],
                    body=_obj(["status"], status={"enum": ["scheduled", "live", "adjourned"]}, reason=_STR),
                )
            },
            "/api/sittings/{sitting_id}/agenda": {
                "post": _op(
                    "Move to an agenda item",
                    operator=True,
                    ok=201,
                    params=[_SITTING_PARAM],
                    body=_obj(["title"], title=_STR, bill_id=_ID, order={"type": "integer", "minimum": 1}),
                )
            },
            "/api/sittings/{sitting_id}/votes": {
                "post": _op(
                    "Record a vote result",
                    operator=True,
                    ok=201,
                    params=[_SITTING_PARAM],
                    body=_obj(
                        ["motion", "yes", "no", "abstain", "absent", "result"],
                        motion=_STR,
                        yes=_COUNT,
                        no=_COUNT,
                        abstain=_COUNT,
                        absent=_COUNT,
                        result={"enum": ["passed", "rejected"]},
                        bill_id=_ID,
                    ),
                )
            },
            "/api/sittings/{sitting_id}/speaker": {
                "post": _op(
                    "Set the current speaker",
                    operator=True,
                    ok=201,
                    params=[_SITTING_PARAM],
                    body=_obj(["name"], name=_STR, role=_STR),
                )
            },
            "/api/bills/{bill_id}": {
                "get": _op(
                    "A bill",
                    params=[{"name": "bill_id", "in": "path", "required": True, "schema": _ID}],
                    extra={"404": _ERR},
                ),
                "post": _op(
                    "Create or update a bill and announce its status",
                    operator=True,
                    params=[{"name": "bill_id", "in": "path", "required": True, "schema": _ID}],
                    body=_obj(["title"], title=_STR, status=_STR),
                ),
            },
            "/api/channels/{channel}/events": {
                "get": {
                    "summary": "Server-Sent Events of a channel; id is the seq; honours Last-Event-ID and ?since=",
                    "parameters": [
                        {"name": "channel", "in": "path", "required": True, "schema": {"type": "string"}},
                        since,
                    ],
                    "responses": {"200": {"description": "text/event-stream"}, "400": _ERR},
                }
            },
        },
        "components": {
            "securitySchemes": {"operatorToken": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": _json(
                    "Error",
                    {
                        "type": "object",
                        "required": ["ok", "status", "error"],
                        "properties": {
                            "ok": {"const": False},
                            "status": {"type": "integer"},
                            "error": _STR,
                            "field": _STR,
                        },
                    },
                )
            },
        },
    }
