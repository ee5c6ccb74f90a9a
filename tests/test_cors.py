"""CORS policy logic: origins parsed from settings, preflight answers, headers on actual answers."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from common.cors import CorsPolicy, parse_origins
from server import Settings

pytestmark = pytest.mark.fast

POLICY = dict(methods=("POST", "DELETE"), allow_headers=("Content-Type",), expose_headers=("Location",))


def request(method: str, **headers: str) -> Request:
    raw = [(name.replace("_", "-").lower().encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": method, "path": "/whep/s1", "headers": raw, "query_string": b""})


def test_origins_are_parsed_from_commas_or_spaces_and_bad_ones_refused():
    """A setting lists origins by commas or spaces, drops trailing slashes, and refuses anything not an origin."""
    assert parse_origins("") == frozenset()
    assert parse_origins("*") == {"*"}
    assert parse_origins("https://a.example, http://b.example:8080/ https://c.example") == {
        "https://a.example",
        "http://b.example:8080",
        "https://c.example",
    }
    for bad in ("a.example", "ftp://a.example", "https://a.example/path", "https://"):
        with pytest.raises(ValueError, match="not an origin"):
            parse_origins(bad)


def test_settings_read_the_webrtc_origins():
    """WHEP is open to any origin by default, WHIP to none; both are read from the environment."""
    assert Settings.from_env({}).whep_cors_origins == ("*",)
    assert Settings.from_env({}).whip_cors_origins == ()
    env = {"WHEP_CORS_ORIGINS": "https://player.example", "WHIP_CORS_ORIGINS": "https://studio.example"}
    settings = Settings.from_env(env)
    assert settings.whep_cors_origins == ("https://player.example",)
    assert settings.whip_cors_origins == ("https://studio.example",)


def test_any_origin_gets_a_star_and_the_exposed_headers():
    """With ``*`` every origin is allowed with ``*`` (no Vary needed); no Origin, no CORS headers."""
    policy = CorsPolicy(frozenset({"*"}), **POLICY)
    assert policy.headers("https://x.example") == {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "Location",
    }
    assert policy.headers(None) == {}


def test_named_origins_are_echoed_with_vary_and_others_get_nothing():
    """Named origins are echoed back with ``Vary: Origin``; an origin not named gets no allow header."""
    policy = CorsPolicy(frozenset({"https://a.example"}), **POLICY)
    assert policy.headers("https://a.example")["Access-Control-Allow-Origin"] == "https://a.example"
    assert policy.headers("https://evil.example") == {"Vary": "Origin"}


def test_preflights_are_answered_204_or_403():
    """An allowed preflight gets 204 with methods, headers and max age; a refused one 403; a plain OPTIONS 204."""
    policy = CorsPolicy(frozenset({"https://a.example"}), **POLICY)
    ok = policy.preflight(request("OPTIONS", origin="https://a.example", access_control_request_method="POST"))
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-methods"] == "POST, DELETE"
    assert ok.headers["access-control-allow-headers"] == "Content-Type"
    assert ok.headers["access-control-max-age"] == "600"
    refused = policy.preflight(request("OPTIONS", origin="https://evil.example"))
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    plain = policy.preflight(request("OPTIONS"))
    assert plain.status_code == 204 and plain.headers["allow"] == "POST, DELETE, OPTIONS"
    assert (
        CorsPolicy(frozenset(), **POLICY).preflight(request("OPTIONS", origin="https://a.example")).status_code == 403
    )
