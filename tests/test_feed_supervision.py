"""A live feed's supervision: failing parts are reported and restarted while the source (and so HLS) keeps going.

The logic tests drive ``LiveFeed`` with a scripted source and engine over the real recorder, SQLite store and
in-memory broker; ``test_a_database_outage_*`` runs the real server with the real model, audio and HLS writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

from archive.recorder import Recorder
from archive.store_sqlite import SqliteStore
from broadcast.broker_memory import MemoryBroker
from broadcast.hub import Hub
from broadcast.metrics import Metrics
from live.feed import VOCABULARY_REFRESH_S, LiveFeed, hls_directory
from live.supervisor import Backoff
from server import FeedSpec, create_app, parse_args, uvicorn_config
from stream.source import AudioChunk, SourceGap
from stream.uri import redact_url, redact_urls
from tests.live_server import TOKEN, test_settings
from transcribe.caption import Caption
from transcribe.engine import EngineStats
from transcribe.model import load_model

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "stream" / "media" / "demo_th.flac"
QUICK = Backoff(base=0.001, cap=0.01)
CHUNK = np.zeros(8000, dtype=np.float32)


# ---- scripted parts -------------------------------------------------------------------------------------------


class ScriptedSource:
    """``n`` half-second chunks; counts how many were taken, as the HLS writer behind a real source would."""

    uri = "rtsp://operator:secret@cam.example:554/live?token=abc"
    hls = None

    def __init__(self, n: int, before: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.n = n
        self.taken = 0
        self._before = before

    async def probe(self) -> None:
        return None

    def __aiter__(self) -> AsyncIterator[AudioChunk | SourceGap]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[AudioChunk | SourceGap]:
        for i in range(self.n):
            if self._before is not None:
                await self._before(i)
            self.taken += 1
            yield AudioChunk(CHUNK, i * 0.5)
            await asyncio.sleep(0)


class ScriptedEngine:
    """Emits one final per chunk fed; raises on the chunks listed in ``fail_at`` (counted over all engines)."""

    def __init__(self, on_caption: Callable[[Caption], Awaitable[None]], log: EngineLog) -> None:
        self._on_caption = on_caption
        self._log = log
        self.vocabulary: list[str] = []
        log.engines.append(self)

    async def feed(self, samples: np.ndarray, start: float) -> None:
        self._log.fed += 1
        if self._log.fed in self._log.fail_at:
            raise RuntimeError(f"decoder crashed at chunk {self._log.fed}")
        if self._log.emit:
            await self._on_caption(
                Caption("final", f"ข้อความ {start}", start, start + 0.5, f"e{len(self._log.engines)}-{start}")
            )

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        self._log.closed += 1

    def set_vocabulary(self, terms: list[str]) -> None:
        self.vocabulary = terms

    def stats(self) -> EngineStats:
        return EngineStats()


@dataclasses.dataclass
class EngineLog:
    fail_at: set[int] = dataclasses.field(default_factory=set)
    emit: bool = True
    engines: list[ScriptedEngine] = dataclasses.field(default_factory=list)
    fed: int = 0
    closed: int = 0

    def factory(self) -> Callable[[Callable[[Caption], Awaitable[None]]], ScriptedEngine]:
        return lambda on_caption: ScriptedEngine(on_caption, self)


class FlakyStore:
    """A real SQLite store whose segment writes fail while ``failing`` is set, and which counts its reads."""

    def __init__(self, inner: SqliteStore) -> None:
        self.inner = inner
        self.failing = False
        self.failed_writes = 0
        self.speaker_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def add_segment(self, *args: Any, **kwargs: Any) -> Any:
        if self.failing:
            self.failed_writes += 1
            raise OSError("disk I/O error (injected)")
        return await self.inner.add_segment(*args, **kwargs)

    async def current_speaker(self, sitting_id: str) -> Any:
        self.speaker_reads += 1
        return await self.inner.current_speaker(sitting_id)


@dataclasses.dataclass
class Parts:
    store: FlakyStore
    broker: MemoryBroker
    recorder: Recorder

    async def statuses(self, sitting_id: str) -> list[dict[str, Any]]:
        events, _, _ = await self.broker.history(f"sitting:{sitting_id}", 0, 10_000)
        return [e.data for e in events if e.type == "sitting.status"]


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    store = FlakyStore(SqliteStore(str(tmp_path / "sapha.db")))
    broker = MemoryBroker()
    hub = Hub(broker)
    await store.open()
    await hub.start()
    recorder = Recorder(store, hub, Metrics())  # type: ignore[arg-type]
    await recorder.create_sitting("s1", "การประชุม", "senate")
    try:
        yield Parts(store, broker, recorder)
    finally:
        await hub.close()
        await store.close()


# ---- logic --------------------------------------------------------------------------------------------------------


@pytest.mark.fast
async def test_a_failing_engine_is_replaced_while_the_source_is_read_to_the_end(parts: Parts) -> None:
    """An engine that raises is logged, reported and replaced; every chunk is still read and the feed ends."""
    engines = EngineLog(fail_at={3})
    source = ScriptedSource(10)
    feed = LiveFeed("s1", source, engines.factory(), parts.recorder, Metrics(), backoff=QUICK)
    await feed.run()
    assert source.taken == 10
    assert len(engines.engines) == 2 and engines.closed == 2
    state = feed.state.to_dict()
    assert state["state"] == "ended" and state["captions"] == {"state": "stopped", "restarts": 1, "error": None}
    reasons = [s.get("reason") for s in await parts.statuses("s1")]
    assert "captions interrupted: decoder crashed at chunk 3" in reasons
    assert reasons.index("captions resumed") > reasons.index("captions interrupted: decoder crashed at chunk 3")
    assert (await parts.statuses("s1"))[-1]["status"] == "adjourned"
    segments = await parts.store.segments("s1")
    assert len(segments) == 9  # one per chunk fed, less the one the crashed engine never heard


@pytest.mark.fast
async def test_finals_that_fail_to_archive_are_retried_in_order(parts: Parts) -> None:
    """While segment writes fail the archive part shows the error; afterwards every final is archived, in order."""
    seen: list[dict[str, object]] = []

    async def outage(i: int) -> None:
        if i == 2:
            parts.store.failing = True
        if i == 6:
            while parts.store.failed_writes < 3:  # the archive loop has retried while the source read on
                await asyncio.sleep(0.001)
            seen.append(feed.state.to_dict()["archive"])  # type: ignore[arg-type]
            parts.store.failing = False

    engines = EngineLog()
    feed = LiveFeed("s1", ScriptedSource(10, outage), engines.factory(), parts.recorder, Metrics(), backoff=QUICK)
    await feed.run()
    assert seen[0]["state"] == "restarting" and "disk I/O error" in str(seen[0]["error"])
    assert feed.state.archive.state == "stopped" and feed.state.archive.error is None
    segments = await parts.store.segments("s1")
    assert [s.start_ms for s in segments] == [i * 500 for i in range(10)]
    assert [s.id for s in segments] == sorted(s.id for s in segments)  # archived in the order spoken
    reasons = [s.get("reason") for s in await parts.statuses("s1")]
    assert "captions are not being archived: disk I/O error (injected)" in reasons
    assert "captions are being archived again" in reasons


@pytest.mark.fast
async def test_the_vocabulary_follows_the_store_at_most_once_a_second(parts: Parts) -> None:
    """The agenda and speaker are read once per VOCABULARY_REFRESH_S, not per chunk, and changes reach the engine."""
    now = [0.0]

    async def before(i: int) -> None:
        if i == 5:
            while engines.fed < 5:  # the captions loop has read the vocabulary for what came before
                await asyncio.sleep(0.001)
            # As if another server process handled the operator's call: straight into the shared store.
            await parts.store.inner.add_speaker("s1", "นายสมชาย ใจดี", None, None)
            now[0] += VOCABULARY_REFRESH_S

    engines = EngineLog(emit=False)  # no finals: filing them reads the store too
    feed = LiveFeed(
        "s1",
        ScriptedSource(10, before),
        engines.factory(),
        parts.recorder,
        Metrics(),
        backoff=QUICK,
        now=lambda: now[0],
    )
    await feed.run()
    assert parts.store.speaker_reads == 2
    assert engines.engines[0].vocabulary == ["นายสมชาย ใจดี"] and feed.state.vocabulary == ["นายสมชาย ใจดี"]


@pytest.mark.fast
async def test_stopping_a_feed_still_flushes_and_archives_what_was_heard(parts: Parts) -> None:
    """Cancelling a running feed closes its engine, and the final the close commits is archived before it ends."""

    class HoldingEngine(ScriptedEngine):
        async def close(self) -> None:
            await self._on_caption(Caption("final", "คำสุดท้าย", 99.0, 99.5, "last"))

    engines = EngineLog(emit=False)

    async def never_ends(i: int) -> None:
        if i == 3:
            await asyncio.Event().wait()

    feed = LiveFeed(
        "s1",
        ScriptedSource(10, never_ends),
        lambda on_caption: HoldingEngine(on_caption, engines),
        parts.recorder,
        Metrics(),
        backoff=QUICK,
    )
    task = asyncio.create_task(feed.run())
    while engines.fed < 3:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [s.text for s in await parts.store.segments("s1")] == ["คำสุดท้าย"]


@pytest.mark.fast
async def test_the_source_url_is_shown_as_scheme_and_host(parts: Parts) -> None:
    """The feed's state shows its source as scheme and host: no user, password, path or token."""
    feed = LiveFeed("s1", ScriptedSource(0), EngineLog().factory(), parts.recorder, Metrics(), backoff=QUICK)
    assert feed.state.to_dict()["source"] == "rtsp://cam.example:554"


@pytest.mark.fast
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://user:pass@cam.example:554/live?token=abc", "rtsp://cam.example:554"),
        ("https://cdn.example/live/STREAMKEY/index.m3u8?sig=1", "https://cdn.example"),
        ("srt://[2001:db8::1]:9000?streamid=secret", "srt://[2001:db8::1]:9000"),
        ("rtmp://ingest.example:99999/app/key", "rtmp://ingest.example"),
        ("/srv/media/sitting.flac", "/srv/media/sitting.flac"),
    ],
)
def test_urls_are_redacted_to_scheme_and_host(url: str, shown: str) -> None:
    """redact_url keeps only scheme and host (and port); local paths are shown as they are."""
    assert redact_url(url) == shown


@pytest.mark.fast
def test_urls_inside_messages_are_redacted() -> None:
    """redact_urls rewrites every URL in a message, keeping the sentence's own punctuation."""
    message = "connection to rtsp://u:p@cam.example:554/a?t=1: refused (see https://x.example/k?s=2)."
    assert redact_urls(message) == "connection to rtsp://cam.example:554: refused (see https://x.example)."


@pytest.mark.fast
def test_a_sitting_id_that_is_a_path_is_refused_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    """server.py --sitting ../x exits with a usage error naming the bad id."""
    with pytest.raises(SystemExit) as exited:
        parse_args(["--source", "feed.flac", "--sitting", "../x"])
    assert exited.value.code == 2
    assert "--sitting '../x' is not a sitting id" in capsys.readouterr().err


@pytest.mark.fast
@pytest.mark.parametrize("sitting_id", ["../x", "..", "a/b", "", "/etc", "x" * 65])
def test_hls_folders_stay_inside_the_hls_root(tmp_path: Path, sitting_id: str) -> None:
    """hls_directory refuses any id that is not a plain sitting id."""
    with pytest.raises(ValueError, match="sitting id"):
        hls_directory(tmp_path, sitting_id)
    assert hls_directory(tmp_path, "senate-2025.1") == tmp_path / "senate-2025.1"


# ---- the real server --------------------------------------------------------------------------------------------


async def _until(check: Callable[[], Awaitable[bool]], what: str, limit_s: float = 120.0) -> None:
    """Poll ``check`` until true; the limit only stops a broken run from hanging, it measures nothing."""
    for _ in range(int(limit_s / 0.2)):
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.model
async def test_a_database_outage_is_reported_and_healed_while_hls_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Segment writes fail mid-feed: /healthz and the log say so, HLS keeps going, then finals archive again."""
    store = FlakyStore(SqliteStore(str(tmp_path / "sapha.db")))
    settings = test_settings(tmp_path, hls_dir=str(tmp_path / "hls"))
    model = await asyncio.to_thread(load_model)
    app = create_app(
        settings,
        store=store,  # type: ignore[arg-type]
        feeds=[FeedSpec(str(DEMO), "flaky", loop=True)],
        model=model,
    )
    server = uvicorn.Server(uvicorn_config(app, settings))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "server exited before starting"
            await asyncio.sleep(0.05)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        segments_dir = tmp_path / "hls" / "flaky"
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:

            async def feed_state() -> dict[str, Any]:
                return (await client.get("/healthz")).json()["feeds"][0]

            async def archived() -> int:
                return len((await client.get("/api/sittings/flaky/transcript")).json()["segments"])

            async def one_archived() -> bool:
                return await archived() > 0

            await _until(one_archived, "a first archived final")
            store.failing = True

            async def archive_failing() -> bool:
                return (await feed_state())["archive"]["state"] == "restarting"

            await _until(archive_failing, "/healthz to report the archive failing")
            state = await feed_state()
            assert "disk I/O error (injected)" in state["archive"]["error"] and state["state"] == "live"
            assert any("captions are not being archived" in r.getMessage() for r in caplog.records)
            during = len(list(segments_dir.glob("*.ts")))

            async def hls_goes_on() -> bool:
                return len(list(segments_dir.glob("*.ts"))) >= during + 2

            await _until(hls_goes_on, "HLS segments written during the outage")
            assert (await feed_state())["archive"]["state"] == "restarting"
            before = await archived()
            store.failing = False

            async def healed() -> bool:
                state = await feed_state()
                return state["archive"]["state"] == "running" and await archived() > before

            await _until(healed, "the archive to recover")
            assert (await feed_state())["captions"]["state"] == "running"
    finally:
        server.should_exit = True
        await task
        model.close()
