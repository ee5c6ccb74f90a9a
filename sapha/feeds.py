"""Live feeds in the server: ``--source``/``--demo`` feeds (leased across processes), WHIP captioning, their health.

``Feeds`` owns what the old closures shared: the feeds running in this process, the leases it watches, and the
whisper model, loaded once (at start-up when there are feeds, else when the first WHIP publisher needs captions).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archive.recorder import Recorder
from broadcast.metrics import Metrics
from live.demo import DEMO_SITTING_ID, prepare_demo_sitting, run_demo_script
from live.feed import LiveFeed, hls_directory
from live.lease import Ownership, RedisLease, hold
from live.supervisor import Backoff, spawn
from sapha.settings import Settings
from stream.hls import HlsWriter
from stream.source import AudioSource
from stream.titlecard import TitleCard
from stream.whip import WhipAudioSource
from transcribe.caption import Caption
from transcribe.engine import CaptionEngine
from transcribe.model import ModelError, ModelSettings, SharedModel, load_model

log = logging.getLogger("sapha")

OnCaption = Callable[[Caption], Awaitable[None]]


@dataclass(frozen=True)
class FeedSpec:
    """A live feed to start with the server: where the audio comes from and which sitting it belongs to."""

    source: str
    sitting_id: str | None = None
    title: str | None = None
    loop: bool = False
    realtime: bool = True
    demo: bool = False


class ModelHolder:
    """The whisper model, loaded at most once per process, on first ``get()`` (or given ready-made by tests)."""

    def __init__(self, model: SharedModel | None = None) -> None:
        self._model = model
        self._lock = asyncio.Lock()

    async def get(self) -> SharedModel:
        """The model; loads it off the event loop on the first call. Raises ``ModelError`` when it cannot."""
        async with self._lock:
            if self._model is None:
                self._model = await asyncio.to_thread(load_model, ModelSettings.from_env())
            return self._model


def engine_factory(model: SharedModel, language: str) -> Callable[[OnCaption], CaptionEngine]:
    """Engines for one feed; a per-engine prefix keeps caption segment ids unique across runs and restarts."""

    def make_engine(on_caption: OnCaption) -> CaptionEngine:
        prefix = f"{secrets.token_hex(3)}-"
        return CaptionEngine(model, language=language, on_caption=on_caption, segment_prefix=prefix)

    return make_engine


async def feed_sitting(recorder: Recorder, spec: FeedSpec, sitting_id: str) -> str:
    """The sitting a feed captions: the demo's, an existing one, or a new one created for it."""
    if spec.demo:
        return await prepare_demo_sitting(recorder)
    if await recorder.store.get_sitting(sitting_id) is not None:
        return sitting_id
    await recorder.create_sitting(sitting_id, spec.title or f"การประชุม {sitting_id}", "senate")
    return sitting_id


def lease_redis(settings: Settings) -> Any:
    """The Redis client feed leases are taken with (live/lease.py); its own, with the bus's timeouts."""
    from redis.asyncio import Redis

    return Redis.from_url(
        settings.redis_url or "",
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_connect_timeout,
    )


class Feeds:
    """This process's feeds: started with the server (``run``), published over WHIP (``caption_whip``)."""

    def __init__(
        self,
        specs: Sequence[FeedSpec],
        recorder: Recorder,
        metrics: Metrics,
        model: ModelHolder,
        *,
        settings: Settings,
    ) -> None:
        self.specs = tuple(specs)
        self.recorder = recorder
        self.metrics = metrics
        self.model = model
        self.language = settings.whisper_language
        self.hls_root = Path(settings.hls_dir)
        self.settings = settings
        self.running: list[LiveFeed] = []
        # With Redis, each --source/--demo feed runs in whichever process holds its lease (live/lease.py).
        self.owners: list[Ownership] = []

    # -- WHIP publishers (live/webrtc.py calls these) ------------------------------------------------------------

    def whip_hls(self, sitting_id: str, video: bool) -> HlsWriter:
        # A publisher that sends sound only (a microphone) still gets a picture for HLS viewers.
        writer = HlsWriter(hls_directory(self.hls_root, sitting_id), picture=TitleCard(sitting_id))
        writer.begin_input(video=video, audio=True)
        return writer

    async def caption_whip(self, sitting_id: str, audio: WhipAudioSource) -> None:
        try:
            shared = await self.model.get()
        except ModelError as exc:
            log.error("sitting %s: WHIP audio will not be captioned: %s", sitting_id, exc)
            return
        feed = LiveFeed(
            sitting_id,
            audio,
            engine_factory(shared, self.language),
            self.recorder,
            self.metrics,
            adjourn_at_end=False,
        )
        self.running.append(feed)
        try:
            await feed.run()
        finally:
            self.running.remove(feed)

    # -- feeds started with the server ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Start the ``specs`` feeds (after loading the model), and stop them on exit."""
        if not self.specs:
            yield
            return
        try:
            shared = await self.model.get()
        except ModelError as exc:
            log.error("%s", exc)
            raise
        redis = lease_redis(self.settings) if self.settings.redis_url else None
        tasks: list[asyncio.Task[None]] = []
        try:
            leased = None
            if redis is not None:
                prefix = self.settings.redis_prefix

                def leased(name: str) -> RedisLease:
                    return RedisLease(redis, prefix, name)

            tasks = await self._start(shared, leased)
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if redis is not None:
                await redis.aclose()

    async def _start(self, model: SharedModel, lease: Callable[[str], RedisLease] | None) -> list[asyncio.Task[None]]:
        """Start each feed: at once, or, with ``lease`` (several processes), whenever this process holds its lease.

        A feed taken over from a process that died starts afresh on the live audio (a new engine, a new HLS run in
        the same folder), its archive times counted from when the sitting's feed first started.
        """
        recorder = self.recorder
        tasks: list[asyncio.Task[None]] = []
        for spec in self.specs:
            sitting_id = DEMO_SITTING_ID if spec.demo else spec.sitting_id or f"feed-{secrets.token_hex(3)}"

            async def start(since: float | None, spec: FeedSpec = spec, sitting_id: str = sitting_id) -> LiveFeed:
                sitting_id = await feed_sitting(recorder, spec, sitting_id)
                sitting = await recorder.store.get_sitting(sitting_id)
                title = sitting.title if sitting else sitting_id
                # Audio-only feeds (the demo, a microphone) get a title card as their picture.
                hls = HlsWriter(hls_directory(self.hls_root, sitting_id), picture=TitleCard(title))
                source = AudioSource(spec.source, realtime=spec.realtime, loop=spec.loop, hls=hls)
                offset = 0.0 if since is None else max(0.0, time.time() - since)
                feed = LiveFeed(
                    sitting_id,
                    source,
                    engine_factory(model, self.language),
                    recorder,
                    self.metrics,
                    adjourn_at_end=not spec.loop,
                    archive_offset_s=offset,
                )
                self.running.append(feed)
                return feed

            async def run(feed: LiveFeed, demo: bool = spec.demo) -> None:
                parts = [spawn(feed.run(), f"feed:{feed.sitting_id}")]
                if demo:
                    parts.append(spawn(run_demo_script(recorder, feed.sitting_id), "demo-script"))
                try:
                    await parts[0]
                finally:
                    for part in parts:
                        part.cancel()
                    await asyncio.gather(*parts, return_exceptions=True)
                    # A leased feed that stops here is shown by whichever process takes it over; one without a
                    # lease stays listed, so that /healthz keeps saying how it ended ("failed" and why, "ended").
                    if lease is not None:
                        self.running.remove(feed)

            async def start_and_run(
                since: float,
                start: Callable[[float | None], Awaitable[LiveFeed]] = start,
                run: Callable[[LiveFeed], Awaitable[None]] = run,
                sitting_id: str = sitting_id,
            ) -> None:
                # Holding the lease, keep trying (the archive may be down): giving up would leave the feed to nobody.
                failures = 0
                while True:
                    try:
                        feed = await start(since)
                        break
                    except Exception as exc:
                        failures += 1
                        log.warning("sitting %s: the feed cannot start yet: %r", sitting_id, exc)
                        await asyncio.sleep(Backoff().delay(failures))
                await run(feed)

            if lease is None:
                # Started before the server answers, so the sitting exists by the time a client asks for it.
                tasks.append(spawn(run(await start(None)), f"feed-run:{sitting_id}"))
            else:
                owner = Ownership(f"feed:{sitting_id}")
                self.owners.append(owner)
                tasks.append(spawn(hold(lease(owner.name), start_and_run, ownership=owner), f"feed-lease:{sitting_id}"))
        return tasks

    # -- health -----------------------------------------------------------------------------------------------

    def health(self) -> list[dict[str, object]]:
        """``/healthz`` feeds: those this process runs (``owner``: its pid), then the ones another process holds."""
        shown: list[dict[str, object]] = [{**feed.state.to_dict(), "owner": os.getpid()} for feed in self.running]
        for owner in self.owners:
            if not owner.here:
                sitting_id = owner.name.removeprefix("feed:")
                shown.append({"sitting_id": sitting_id, "state": "standby", "owner": owner.owner_pid})
        return shown
