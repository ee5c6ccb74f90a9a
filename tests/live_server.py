"""Run the real app under uvicorn on a free port, inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from broadcast.broker import Broker
from desk.accounts_sqlite import AccountStore
from server import Settings, create_app, uvicorn_config

TOKEN = "test-operator-token"


@dataclasses.dataclass
class Running:
    app: Starlette
    url: str

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/ws"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}


def test_settings(tmp_path: Path, **overrides: object) -> Settings:
    base = Settings(
        host="127.0.0.1",
        port=0,
        database_url=f"sqlite:///{tmp_path / 'sapha.db'}",
        hls_dir=str(tmp_path / "hls"),
        operator_token=TOKEN,
        log_level="warning",
        # No documents load in the background of every test server; tests that need them name a folder.
        documents_data="",
    )
    settings = dataclasses.replace(base, **overrides)  # type: ignore[arg-type]
    if not settings.staff_db and not settings.database_url.startswith("sqlite:///"):
        # Staff, messages, alerts and their files live beside the SQLite archive; an archive on PostgreSQL would
        # put them in the repository's var/ (see tests/conftest.py, repo_var_untouched).
        settings = dataclasses.replace(settings, staff_db=str(tmp_path / "staff.db"))
    return settings


@contextlib.asynccontextmanager
async def serve(
    settings: Settings, *, broker: Broker | None = None, accounts: AccountStore | None = None
) -> AsyncIterator[Running]:
    app = create_app(settings, broker=broker, accounts=accounts)
    server = uvicorn.Server(uvicorn_config(app, settings))
    # The test process owns signals; uvicorn must not take Ctrl-C away from pytest.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server exited before starting")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Running(app, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await task


# Imported into test modules by name; without this pytest would collect it as a test.
test_settings.__test__ = False  # type: ignore[attr-defined]
