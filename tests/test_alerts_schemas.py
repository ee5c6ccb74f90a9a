"""The follow API's documented shapes are its validation: what the document calls valid is never a 422 or 400, the
link tokens and the search feed's ``q`` are checked with the documented patterns, and each path's ``Allow`` lists
exactly its documented methods. (tests/test_openapi_fuzz.py runs schemathesis over all of it.)"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import httpx
import pytest
from live_server import serve, test_settings

from alerts.follows import (
    FollowError,
    check_shape,
    new_token,
    parse_follow_request,
    parse_target,
    unsubscribe_token,
)
from archive import schemas as archive_schemas
from archive.search import QUERY_REGEX, parse_query
from common import alert_schemas
from common.alert_schemas import MANAGE_TOKEN_REGEX, TOKEN_REGEX, first_problem, fullmatch, search_feed_query

WEBHOOK = {"type": "webhook", "url": "https://hooks.example/x"}
TWO_ASTRAL = "\U0001f600\U0001f600"  # two characters above U+FFFF: nothing a search can match


async def public_resolver(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


@pytest.mark.fast
def test_blank_chars_are_the_archives():
    """A follow's name is "not blank" by the same set as every other text field of the document."""
    assert alert_schemas.BLANK_CHARS == archive_schemas.BLANK_CHARS


@pytest.mark.fast
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"channel": WEBHOOK}, "target"),
        ({"target": {"kind": "planet", "value": "x"}, "channel": WEBHOOK}, "target.kind"),
        ({"target": {"kind": "bill", "value": "b42\n"}, "channel": WEBHOOK}, "target.value"),
        ({"target": {"kind": "keyword", "value": TWO_ASTRAL}, "channel": WEBHOOK}, "target.value"),
        ({"target": {"kind": "topic", "value": "\u200b"}, "channel": WEBHOOK}, "target.value"),
        ({"target": {"kind": "bill", "value": "b42"}, "channel": {"type": "fax"}}, "channel.type"),
        ({"target": {"kind": "bill", "value": "b42"}, "channel": {**WEBHOOK, "secret": "x"}}, "channel.secret"),
        (
            {
                "target": {"kind": "bill", "value": "b42"},
                "channel": {"type": "webhook", "url": "https://u:p@h.example/"},
            },
            "channel.url",
        ),
        (
            {
                "target": {"kind": "bill", "value": "b42"},
                "channel": {"type": "push", "subscription": {"endpoint": "https://p.example/1", "keys": {"auth": "x"}}},
            },
            "channel.subscription.keys.p256dh",
        ),
    ],
)
def test_a_body_that_breaks_the_schema_names_the_field(body: object, field: str):
    """The first field that breaks the documented body is named dotted as the request spells it, with a 422."""
    with pytest.raises(FollowError) as err:
        check_shape(body)
    assert (err.value.field, err.value.status) == (field, 422)
    assert err.value.field in str(err.value)


@pytest.mark.fast
async def test_schema_valid_follows_refused_by_the_world_are_409():
    """A host that does not resolve and a p256dh of the documented shape but off the curve are 409, not 422."""

    async def nowhere(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    bill = {"kind": "bill", "value": "b42"}
    with pytest.raises(FollowError) as err:
        await parse_follow_request({"target": bill, "channel": WEBHOOK}, resolver=nowhere)
    assert (err.value.status, err.value.field) == (409, "channel.url")
    sub = {"endpoint": "https://p.example/1", "keys": {"p256dh": "B" + "A" * 86, "auth": "A" * 22}}
    channel = {"type": "push", "subscription": sub}
    assert first_problem(alert_schemas.new_follow(QUERY_REGEX), {"target": bill, "channel": channel}) is None
    with pytest.raises(FollowError) as err:
        await parse_follow_request({"target": bill, "channel": channel}, resolver=public_resolver)
    assert (err.value.status, err.value.field) == (409, "channel.subscription.keys.p256dh")


@pytest.mark.fast
async def test_a_keyword_is_counted_and_matched_as_the_document_says():
    """100 code points (astral ones count one each, as in JSON Schema) with a searchable term are a valid keyword;
    101 are not; a keyword of nothing searchable is refused by the schema, not later."""
    value = "ก" + "\U0001f600" * 99
    follow = await parse_follow_request(
        {"target": {"kind": "keyword", "value": value}, "channel": WEBHOOK}, resolver=public_resolver
    )
    assert follow.target.value == value
    assert first_problem(search_feed_query(QUERY_REGEX), {"q": value}) is None
    assert first_problem(search_feed_query(QUERY_REGEX), {"q": value + "ก"}) is not None
    assert first_problem(search_feed_query(QUERY_REGEX), {"q": TWO_ASTRAL}) is not None


@pytest.mark.fast
@pytest.mark.parametrize("value", ['-a\x1c"b c"', "\x01-a b", "-x \u2000e\u0301"])
def test_a_keyword_is_kept_as_the_query_the_pattern_checked(value: str):
    """Characters the search grammar reads as spaces stay spaces and a control before "-" stays put, so a keyword the
    document calls valid is saved with the same included words (normalize() would delete U+001C and U+0001)."""
    assert (
        first_problem(
            alert_schemas.new_follow(QUERY_REGEX), {"target": {"kind": "keyword", "value": value}, "channel": WEBHOOK}
        )
        is None
    )
    kept = parse_target({"kind": "keyword", "value": value}).value
    assert [t.text for t in parse_query(kept).include] == [
        t.text for t in parse_query(unicodedata.normalize("NFC", value)).include
    ]


@pytest.mark.fast
def test_every_token_the_server_makes_has_the_documented_shape():
    """Management, confirmation and signed unsubscribe tokens match the link pattern; only management tokens match
    the {token} path, and the confirm and unsubscribe paths do not."""
    link, manage = fullmatch(TOKEN_REGEX), fullmatch(MANAGE_TOKEN_REGEX)
    made = new_token()
    assert link.fullmatch(made) and manage.fullmatch(made)
    assert link.fullmatch(new_token("ct_")) and not manage.fullmatch(new_token("ct_"))
    assert link.fullmatch(unsubscribe_token(b"k" * 32, "fol_0123456789abcdef01234567"))
    assert not manage.fullmatch("unsubscribe") and not manage.fullmatch("confirm")
    assert not link.fullmatch('"') and not link.fullmatch("a\n")


async def test_the_follow_routes_answer_as_documented(tmp_path: Path):
    """Allow lists the documented methods, bad tokens are 400, email without SMTP is 409 naming channel.type, a
    search of two astral characters is a 400 naming q, and the link pages' HTML is in the document."""
    async with serve(test_settings(tmp_path)) as app, httpx.AsyncClient(base_url=app.url, timeout=30) as http:
        options = await http.options("/api/follows/unsubscribe")
        assert options.headers["allow"] == "GET, HEAD, OPTIONS, POST"
        deleted = await http.delete("/api/follows/unsubscribe?token=mt_x")
        assert deleted.status_code == 405 and "DELETE" not in deleted.headers["allow"]
        for method, path in (
            ("GET", "/api/follows/confirm"),
            ("GET", "/api/follows/unsubscribe"),
            ("POST", "/api/follows/unsubscribe"),
        ):
            bad = await http.request(method, path, params={"token": '"'})
            assert (bad.status_code, bad.json()["field"]) == (400, "token")
        email = {
            "target": {"kind": "sittings", "value": "senate"},
            "channel": {"type": "email", "email": "a@b.example"},
        }
        refused = await http.post("/api/follows", json=email)
        assert (refused.status_code, refused.json()["field"]) == (409, "channel.type")
        search = await http.get("/feeds/search.atom", params={"q": TWO_ASTRAL})
        assert (search.status_code, search.json()["field"]) == (400, "q")
        document = (await http.get("/openapi.json")).json()["paths"]
        assert "text/html" in document["/api/follows/confirm"]["get"]["responses"]["200"]["content"]
        assert "text/html" in document["/api/follows/unsubscribe"]["post"]["responses"]["200"]["content"]
        assert "409" in document["/api/follows"]["post"]["responses"]
        pattern = document["/feeds/search.atom"]["get"]["parameters"][0]["schema"]["pattern"]
        assert pattern == QUERY_REGEX and not re.fullmatch(pattern[1:-1], TWO_ASTRAL)
