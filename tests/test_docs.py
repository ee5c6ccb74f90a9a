"""The docs name every route, op, event type and close code the code has; a new one fails here until documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from live_server import test_settings

from broadcast import closecodes, envelope
from server import Settings, create_app

DOCS = Path(__file__).resolve().parent.parent / "docs"
README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_http_route_is_in_the_api_doc(tmp_path: Path):
    """docs/api.md has a heading for every HTTP route the app serves."""
    text = (DOCS / "api.md").read_text()
    app = create_app(test_settings(tmp_path))
    for route in app.routes:
        path = getattr(route, "path", "")
        if path.startswith(("/api/", "/healthz", "/metrics", "/openapi.json", "/ws", "/live/", "/whip/", "/whep/")):
            for method in sorted(getattr(route, "methods", None) or {"GET"}):
                if method == "HEAD":
                    continue
                assert f"### {method} {path}" in text, f"{method} {path} is not documented in docs/api.md"


@pytest.mark.parametrize("name", sorted(envelope.EVENT_TYPES))
def test_every_event_type_is_in_the_websocket_doc(name: str):
    """docs/websocket.md documents each event type."""
    assert f"`{name}`" in (DOCS / "websocket.md").read_text()


@pytest.mark.parametrize("code", [v for k, v in vars(closecodes).items() if k.isupper() and isinstance(v, int)])
def test_every_close_code_is_in_the_websocket_doc(code: int):
    """docs/websocket.md lists each close code the server uses."""
    assert str(code) in (DOCS / "websocket.md").read_text()


@pytest.mark.parametrize("op", ["subscribe", "unsubscribe", "ping", "pong", "subscribed", "unsubscribed", "error"])
def test_every_op_is_in_the_websocket_doc(op: str):
    """docs/websocket.md documents each client and server op."""
    assert f'"op": "{op}"' in (DOCS / "websocket.md").read_text().replace('"op":"', '"op": "')


def test_every_setting_is_in_the_readme():
    """Each environment variable Settings reads is listed in the README's configuration table."""
    import inspect

    source = inspect.getsource(Settings.from_env)
    readme = README.read_text()
    for name in [part.split('"')[1] for part in source.split("env.get(")[1:]]:
        assert f"`{name}`" in readme, f"{name} missing from the README"
