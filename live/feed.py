"""One live feed of a sitting: source → HLS and caption engine → recorder (archive, then bus), supervised.

The feed owns the sitting's live status: it marks the sitting live when audio starts, reports source drops and
recoveries as ``sitting.status`` events with a reason, and adjourns the sitting when a finite source ends. It
also keeps the engine's vocabulary in step with the agenda item and speaker the operator sets, so bill names
and speakers' names are spelled right.

Design: three loops joined by queues that never block the one before, so a failing part stops only itself::

    source loop ──► (the source's decoder thread writes HLS video and audio)
        │ put, never waits
        ▼
    audio queue (bounded, oldest dropped) ──► captions loop ──► engine ──► on_caption ──► HLS subtitles
                                                                               │ put, never waits
                                                                               ▼
                                            caption queue (bounded) ──► archive loop ──► recorder

* The **source loop** only reads the source and hands audio on. It must never stop for anything downstream:
  ``AudioSource``'s decoder thread, which also writes the HLS, blocks when nobody reads it. The source reconnects
  by itself (``stream.source``); a ``SourceError`` it raises is final, and ends the feed as ``failed``.
* The **captions loop** feeds the engine and keeps its vocabulary current. When it raises, it is restarted with a
  new engine (and new segment ids) after a backoff; audio that arrives meanwhile waits in the audio queue, and
  the oldest is dropped (and counted) when that fills.
* The **archive loop** records captions in order. A final that fails to record (the database or the broker is
  down) is retried with backoff and kept until it is recorded, up to ``CAPTION_BACKLOG``; a partial that failed,
  or that something newer has already overtaken, is dropped, as viewers only ever see the latest.
* Status reports go through ``live.supervisor.StatusReporter``, which publishes them from its own task.

Each part's health (``running``/``restarting``/``stopped``, restarts, last error) is in ``FeedState``, which
``/healthz`` shows; failures and recoveries are logged and published as ``sitting.status`` reasons. Source URLs
are shown as scheme and host only. On shutdown the engine is still closed, so what was heard is flushed and
archived (for at most ``SHUTDOWN_DRAIN_S``).

Across processes: the agenda item and speaker are read from the store (``Recorder.current``), at most once per
``VOCABULARY_REFRESH_S``, since another server process may have handled the operator's call. Finals are filed
by the recorder, which reads them from the store as it writes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from archive.recorder import Recorder
from broadcast.envelope import ID_PATTERN
from broadcast.metrics import Metrics
from common.thai import words
from live.supervisor import Backoff, DropOldest, Part, StatusReporter, spawn
from stream.source import AudioChunk, Source, SourceError, SourceGap
from stream.uri import redact_url, redact_urls
from transcribe.caption import Caption
from transcribe.engine import EngineStats

log = logging.getLogger(__name__)

# Captions further behind live than this are announced to viewers (the engine degrades well before).
LAG_WARNING_S = 8.0
# Agenda titles run to hundreds of characters; the decoder's hint budget is smaller, so only the head goes in.
VOCABULARY_TITLE_CHARS = 100
# How often the agenda item and speaker are read from the store for the engine's vocabulary: often enough that
# a change reaches the next utterance, rarely enough that the store sees one read a second, not one per chunk.
VOCABULARY_REFRESH_S = 1.0
# Audio chunks (about half a second each) held for a captions loop that is restarting: about a minute.
AUDIO_BACKLOG = 120
# Captions held for an archive that is failing: at a final every two or three seconds, over half an hour.
CAPTION_BACKLOG = 1000
# How long shutdown waits for the last captions to be archived and the last status to be published.
SHUTDOWN_DRAIN_S = 5.0
# How long a failed engine may take to close before it is abandoned.
_ENGINE_CLOSE_S = 10.0

_SITTING_ID = re.compile(ID_PATTERN)
# Errors that say a caption or the code is wrong, not that the archive or broker is out: retried, they would
# fail forever and hold up every caption after them.
_BUGS = (TypeError, ValueError, AttributeError, KeyError, AssertionError)


class Engine(Protocol):
    """What the feed needs of a caption engine (``transcribe.engine.CaptionEngine``).

    ``feed`` returns soon (decoding runs in the background) and captions reach the ``on_caption`` callback the
    engine was made with; ``flush`` makes everything heard final; ``close`` flushes, then stops.
    """

    async def feed(self, samples: np.ndarray, start: float) -> None: ...

    async def flush(self) -> None: ...

    async def close(self) -> None: ...

    def set_vocabulary(self, terms: list[str]) -> None: ...

    def stats(self) -> EngineStats: ...


EngineFactory = Callable[[Callable[[Caption], Awaitable[None]]], Engine]


def hls_directory(root: Path, sitting_id: str) -> Path:
    """The folder of a sitting's HLS under ``root``; ``ValueError`` for an id that could leave it (``../x``)."""
    if not _SITTING_ID.fullmatch(sitting_id):
        raise ValueError(f"invalid sitting id {sitting_id!r}: use letters, digits, '_', '-' and '.'")
    directory = root / sitting_id
    if not directory.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"sitting id {sitting_id!r} would write outside {root}")
    return directory


@dataclass
class FeedState:
    """What ``/healthz`` shows of a feed: overall state, and the health of each supervised part."""

    sitting_id: str
    source: str  # scheme and host only
    state: str = "starting"  # starting | live | interrupted | ended | failed
    error: str | None = None
    captions: Part = field(default_factory=lambda: Part("captions"))
    archive: Part = field(default_factory=lambda: Part("archive"))
    vocabulary: list[str] = field(default_factory=list)
    audio_dropped: int = 0  # chunks the captions loop never got (it was restarting)
    captions_dropped: int = 0  # captions never archived (the archive was down too long)

    def to_dict(self) -> dict[str, object]:
        return {
            "sitting_id": self.sitting_id,
            "source": self.source,
            "state": self.state,
            "error": self.error,
            "captions": self.captions.to_dict(),
            "archive": self.archive.to_dict(),
            "vocabulary": list(self.vocabulary),
            "audio_dropped": self.audio_dropped,
            "captions_dropped": self.captions_dropped,
        }


class _LiveClock:
    """Maps media time to the wall-clock moment it was live, to measure caption latency from speech."""

    def __init__(self, keep: int = 600) -> None:
        self._marks: deque[tuple[float, float]] = deque(maxlen=keep)  # (media end, monotonic arrival)

    def mark(self, media_end: float) -> None:
        self._marks.append((media_end, time.monotonic()))

    def latency(self, media_time: float) -> float | None:
        for end, arrived in self._marks:
            if end >= media_time:
                # The chunk ending at `end` arrived at `arrived`, so media_time was live (end - media_time) earlier.
                return time.monotonic() - (arrived - (end - media_time))
        return None


def _head(title: str, max_chars: int = VOCABULARY_TITLE_CHARS) -> str:
    """The start of a long agenda title, cut between Thai words: its distinctive words come first."""
    if len(title) <= max_chars:
        return title
    kept = ""
    for word in words(title):
        if len(kept) + len(word) > max_chars:
            break
        kept += word
    return kept.strip()


class CaptionHorizon:
    """How far captions are final: the engine's settled time, held back while an utterance is still partial.

    The engine's lag counts audio decoded for partials as settled, but their words may still become finals;
    a caption segment written before then would miss them.
    """

    def __init__(self) -> None:
        self._open: dict[str, float] = {}  # segment id -> start of its pending partial

    def observe(self, caption: Caption) -> None:
        if caption.kind == "partial" and caption.text.strip():
            self._open[caption.segment_id] = caption.start
        else:
            self._open.pop(caption.segment_id, None)

    def forget(self) -> None:
        """The engine was replaced: its open partials will never become final."""
        self._open.clear()

    def until(self, settled: float) -> float:
        return min([settled, *self._open.values()])


class LiveFeed:
    """One sitting's feed (see the module docstring). ``run`` it as a task; cancel the task to stop it."""

    def __init__(
        self,
        sitting_id: str,
        source: Source,
        make_engine: EngineFactory,
        recorder: Recorder,
        metrics: Metrics,
        *,
        adjourn_at_end: bool = True,
        backoff: Backoff | None = None,
        now: Callable[[], float] = time.monotonic,
        archive_offset_s: float = 0.0,
    ) -> None:
        self.sitting_id = sitting_id
        # Added to caption times in the archive (not in HLS, whose run starts its own clock): a feed taken over
        # from another process goes on counting from the start of the sitting's feed (``live.lease``).
        self.archive_offset_s = archive_offset_s
        self.source = source
        self.recorder = recorder
        self.metrics = metrics
        self.adjourn_at_end = adjourn_at_end
        self.state = FeedState(sitting_id, redact_url(source.uri))
        self._make_engine = make_engine
        self._backoff = backoff or Backoff()
        self._now = now
        self._clock = _LiveClock()
        self._status = StatusReporter(recorder, sitting_id, self._backoff)
        self._audio: DropOldest[AudioChunk | SourceGap] = DropOldest(AUDIO_BACKLOG, self._audio_dropped)
        self._captions: DropOldest[Caption] = DropOldest(CAPTION_BACKLOG, self._caption_dropped)
        self._vocabulary_read_at: float | None = None
        self._behind = False
        # The source's HLS writer, if any, gets the final captions for its WebVTT rendition.
        self._hls = source.hls
        self._horizon = CaptionHorizon()

    # ---- lifecycle ------------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until the source ends (or forever, for live and looping sources).

        Never raises ``SourceError``: a source that cannot be read marks the feed ``failed``. Failures of the
        captions and archive loops are logged, shown in ``state`` and retried; they never end the feed.
        """
        try:
            await self._run()
        finally:
            if self._hls is not None:
                # The sitting's HLS ends with the feed: its playlists are closed and kept as the recording.
                await asyncio.shield(self._hls.aclose())

    async def _run(self) -> None:
        try:
            try:
                await self.source.probe()
            except SourceError as exc:
                self._fail(str(exc))
                await self._status.aclose()
                return
            self.state.state = "live"
            self._status.report("live")
            loops = (
                spawn(self._read_source(), f"feed-source:{self.sitting_id}"),
                spawn(self._caption_loop(), f"feed-captions:{self.sitting_id}"),
                spawn(self._archive_loop(), f"feed-archive:{self.sitting_id}"),
            )
        except asyncio.CancelledError:
            self._status.cancel()
            raise
        source, captions, archive = loops
        try:
            # Shielded: a cancelled run stops the loops itself, in order, in _shutdown.
            await asyncio.shield(source)
            await asyncio.shield(captions)
            self._captions.close()
            await asyncio.shield(archive)
            if self.state.state != "failed":
                self.state.state = "ended"
                if self.adjourn_at_end:
                    self._status.report("adjourned", "the feed ended")
            await self._status.aclose()
        except asyncio.CancelledError:
            await asyncio.shield(self._shutdown(source, captions, archive))
            raise

    async def _shutdown(
        self, source: asyncio.Task[None], captions: asyncio.Task[None], archive: asyncio.Task[None]
    ) -> None:
        """Stop reading, flush the engine (so no spoken words are lost), archive what it gave, then stop."""
        source.cancel()
        captions.cancel()
        await asyncio.gather(source, captions, return_exceptions=True)
        self._captions.close()
        try:
            await asyncio.wait_for(archive, SHUTDOWN_DRAIN_S)
        except TimeoutError:
            log.warning("sitting %s: %d captions were not archived at shutdown", self.sitting_id, len(self._captions))
        except Exception:
            pass  # already logged by the task's done-callback
        await self._status.aclose(SHUTDOWN_DRAIN_S)

    # ---- source loop ----------------------------------------------------------------------------------------------

    async def _read_source(self) -> None:
        try:
            async for item in self.source:
                if isinstance(item, SourceGap):
                    self._gap(item)
                else:
                    self._clock.mark(item.end)
                self._audio.put(item)
        except SourceError as exc:
            self._fail(str(exc))
        except Exception as exc:
            # A bug in a source: a new iteration would restart its media clock, so the feed ends here, loudly.
            log.exception("sitting %s: reading %s failed", self.sitting_id, self.state.source)
            self._fail(f"the feed stopped unexpectedly: {exc!r}")
        finally:
            self._audio.close()

    def _gap(self, gap: SourceGap) -> None:
        if gap.duration is None:
            self.state.state = "interrupted"
            reason = f"feed interrupted: {redact_urls(gap.reason)}"
        else:
            self.state.state = "live"
            reason = f"feed resumed after {gap.duration:.1f} s"
        log.warning("sitting %s: %s", self.sitting_id, reason)
        self._status.report("live", reason)

    def _fail(self, message: str) -> None:
        message = redact_urls(message)
        self.state.state = "failed"
        self.state.error = message
        log.error("sitting %s: feed %s failed: %s", self.sitting_id, self.state.source, message)
        self._status.report(None, f"feed error: {message}")

    def _audio_dropped(self, item: AudioChunk | SourceGap) -> None:
        self.state.audio_dropped += 1
        if self.state.audio_dropped % AUDIO_BACKLOG == 1:
            log.warning("sitting %s: captions are not keeping up; audio is skipped for captions", self.sitting_id)

    # ---- captions loop --------------------------------------------------------------------------------------------

    async def _caption_loop(self) -> None:
        """Feed the engine until the source ends; on an error, restart with a new engine after a backoff."""
        part = self.state.captions
        while True:
            engine = self._make_engine(self._on_caption)
            if self.state.vocabulary:
                engine.set_vocabulary(self.state.vocabulary)
            try:
                await self._caption(engine, part)
                await engine.close()
                part.state = "stopped"
                return
            except asyncio.CancelledError:
                # Shutting down: commit what was heard so far, so no spoken words are lost from the transcript.
                await asyncio.shield(engine.close())
                part.state = "stopped"
                raise
            except Exception as exc:
                message = part.failed(exc)
                log.error("sitting %s: captions failed, restarting: %s", self.sitting_id, message, exc_info=exc)
                self._status.report(None, f"captions interrupted: {message}")
                await self._discard(engine)
                self._horizon.forget()
                await asyncio.sleep(self._backoff.delay(part.failures))

    async def _caption(self, engine: Engine, part: Part) -> None:
        while (item := await self._audio.get()) is not None:
            if isinstance(item, SourceGap):
                if item.duration is None:
                    # Words heard before the drop are final now; the engine must not wait for audio not coming.
                    await engine.flush()
                continue
            await self._sync_vocabulary(engine)
            await engine.feed(item.samples, item.start)
            if part.succeeded():
                log.warning("sitting %s: captions resumed", self.sitting_id)
                self._status.report(None, "captions resumed")
            stats = engine.stats()
            self._report(stats)
            if self._hls is not None:
                self._hls.captions_final_until(self._horizon.until(item.end - stats.lag_s))

    async def _discard(self, engine: Engine) -> None:
        """Close a failed engine, keeping what it can still commit; give up on it if that fails too."""
        try:
            await asyncio.wait_for(engine.close(), _ENGINE_CLOSE_S)
        except Exception as exc:
            log.warning("sitting %s: the failed caption engine did not close cleanly: %r", self.sitting_id, exc)

    async def _sync_vocabulary(self, engine: Engine) -> None:
        """Read the current agenda item and speaker (at most once per ``VOCABULARY_REFRESH_S``) into the engine."""
        now = self._now()
        if self._vocabulary_read_at is not None and now - self._vocabulary_read_at < VOCABULARY_REFRESH_S:
            return
        self._vocabulary_read_at = now
        try:
            current = await self.recorder.current(self.sitting_id)
        except Exception as exc:
            # Spelling hints can wait for the store to come back: keep the old ones, try again in a second.
            log.warning("sitting %s: could not read the agenda and speaker: %r", self.sitting_id, exc)
            return
        # The speaker's name first (short, and always worth spelling right), then the head of the agenda title
        # and its bill id: the engine keeps terms in order until its hint budget is spent.
        terms = [
            t
            for t in (
                current.speaker.name if current.speaker else None,
                _head(current.agenda_item.title) if current.agenda_item else None,
                current.agenda_item.bill_id if current.agenda_item else None,
            )
            if t
        ]
        if terms != self.state.vocabulary:
            self.state.vocabulary = terms
            engine.set_vocabulary(terms)

    def _report(self, stats: EngineStats) -> None:
        """Export the engine's lag and speed; tell viewers when captions fall behind and when they catch up."""
        self.metrics.lag.labels(self.sitting_id).set(stats.lag_s)
        self.metrics.realtime_factor.labels(self.sitting_id).set(stats.rtf)
        behind = stats.lag_s > LAG_WARNING_S
        # Hysteresis: announce falling behind at LAG_WARNING_S, catching up only well below it.
        if behind and not self._behind:
            self._behind = True
            self._status.report("live", f"captions are running {stats.lag_s:.0f} s behind live")
        elif self._behind and stats.lag_s < LAG_WARNING_S / 2:
            self._behind = False
            self._status.report("live", "captions have caught up with live")

    async def _on_caption(self, caption: Caption) -> None:
        """From the engine: subtitles for HLS at once (no I/O), the archive through its queue."""
        if self._hls is not None:
            self._horizon.observe(caption)
            if caption.kind == "final":
                self._hls.add_caption(caption.start, caption.end, caption.text, caption.segment_id)
        self._captions.put(caption)

    # ---- archive loop ---------------------------------------------------------------------------------------------

    async def _archive_loop(self) -> None:
        """Record captions in order; retry a final until it is recorded, with backoff."""
        part = self.state.archive
        while await self._captions.wait():
            caption = self._captions.peek()
            assert caption is not None
            if caption.kind == "partial" and len(self._captions) > 1:
                self._captions.pop()  # overtaken by something newer: viewers only need the latest
                continue
            try:
                await self._record(caption)
            except _BUGS:
                # Not an outage but this caption (or our code): retrying cannot help, and would hold up the rest.
                log.exception("sitting %s: caption %s cannot be archived; skipped", self.sitting_id, caption.segment_id)
                self._captions.pop()
                self._caption_dropped(caption)
                continue
            except Exception as exc:
                message = part.failed(exc)
                if part.failures == 1:
                    log.error("sitting %s: captions are not being archived: %s", self.sitting_id, message, exc_info=exc)
                    self._status.report(None, f"captions are not being archived: {message}")
                if caption.kind == "partial" and self._captions.peek() is caption:
                    self._captions.pop()
                await asyncio.sleep(self._backoff.delay(part.failures))
                continue
            if self._captions.peek() is caption:  # not pushed out while it was being recorded
                self._captions.pop()
            if part.succeeded():
                log.warning("sitting %s: captions are being archived again", self.sitting_id)
                self._status.report(None, "captions are being archived again")
        part.state = "stopped"

    async def _record(self, caption: Caption) -> None:
        start, end = caption.start + self.archive_offset_s, caption.end + self.archive_offset_s
        if caption.kind == "final":
            await self.recorder.caption_final(self.sitting_id, caption.segment_id, caption.text, start, end)
        else:
            await self.recorder.caption_partial(self.sitting_id, caption.segment_id, caption.text, start, end)
        latency = self._clock.latency(caption.end)
        if latency is not None:
            self.metrics.caption_latency.labels(caption.kind).observe(max(latency, 0.0))

    def _caption_dropped(self, caption: Caption) -> None:
        if caption.kind == "final":
            self.state.captions_dropped += 1
            log.error("sitting %s: final %s was never archived", self.sitting_id, caption.segment_id)
