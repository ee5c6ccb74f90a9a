"""One live feed of a sitting: audio source → caption engine → recorder (archive, then bus).

The feed owns the sitting's live status: it marks the sitting live when audio starts, reports source drops and
recoveries as ``sitting.status`` events with a reason, and adjourns the sitting when a finite source ends. It
also keeps the engine's vocabulary in step with the agenda item and speaker the operator sets, so bill names
and speakers' names are spelled right.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from archive.recorder import Recorder
from broadcast.metrics import Metrics
from common.thai import words
from stream.source import AudioSource, SourceError, SourceGap
from transcribe.caption import Caption
from transcribe.engine import EngineStats

log = logging.getLogger(__name__)

# Captions further behind live than this are announced to viewers (the engine degrades well before).
LAG_WARNING_S = 8.0
# Agenda titles run to hundreds of characters; the decoder's hint budget is smaller, so only the head goes in.
VOCABULARY_TITLE_CHARS = 100


class Engine(Protocol):
    """What the feed needs of a caption engine (``transcribe.engine.CaptionEngine``)."""

    async def feed(self, samples: np.ndarray, start: float) -> None: ...

    async def flush(self) -> None: ...

    async def close(self) -> None: ...

    def set_vocabulary(self, terms: list[str]) -> None: ...

    def stats(self) -> EngineStats: ...


EngineFactory = Callable[[Callable[[Caption], Awaitable[None]]], Engine]


@dataclass
class FeedState:
    sitting_id: str
    source: str
    state: str = "starting"  # starting | live | interrupted | ended | failed
    error: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"sitting_id": self.sitting_id, "source": self.source, "state": self.state, "error": self.error}


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

    def until(self, settled: float) -> float:
        return min([settled, *self._open.values()])


class LiveFeed:
    def __init__(
        self,
        sitting_id: str,
        source: AudioSource,
        make_engine: EngineFactory,
        recorder: Recorder,
        metrics: Metrics,
        *,
        adjourn_at_end: bool = True,
    ) -> None:
        self.sitting_id = sitting_id
        self.source = source
        self.recorder = recorder
        self.metrics = metrics
        self.adjourn_at_end = adjourn_at_end
        self.state = FeedState(sitting_id, source.uri)
        self._clock = _LiveClock()
        self._engine = make_engine(self._on_caption)
        self._vocabulary: list[str] = []
        self._behind = False
        # The source's HLS writer, if any, gets the final captions for its WebVTT rendition.
        self._hls = source.hls
        self._horizon = CaptionHorizon()

    async def _on_caption(self, caption: Caption) -> None:
        if caption.kind == "final":
            await self.recorder.caption_final(
                self.sitting_id, caption.segment_id, caption.text, caption.start, caption.end
            )
        else:
            await self.recorder.caption_partial(
                self.sitting_id, caption.segment_id, caption.text, caption.start, caption.end
            )
        if self._hls is not None:
            self._horizon.observe(caption)
            if caption.kind == "final":
                self._hls.add_caption(caption.start, caption.end, caption.text, caption.segment_id)
        latency = self._clock.latency(caption.end)
        if latency is not None:
            self.metrics.caption_latency.labels(caption.kind).observe(max(latency, 0.0))

    async def _sync_vocabulary(self) -> None:
        current = await self.recorder.current(self.sitting_id)
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
        if terms != self._vocabulary:
            self._vocabulary = terms
            self._engine.set_vocabulary(terms)

    async def run(self) -> None:
        """Run until the source ends (or forever, for live and looping sources). Never raises SourceError."""
        try:
            await self._run()
        finally:
            if self._hls is not None:
                # The sitting's HLS ends with the feed: its playlists are closed and kept as the recording.
                await asyncio.shield(self._hls.aclose())

    async def _run(self) -> None:
        try:
            await self.source.probe()
        except SourceError as exc:
            await self._fail(str(exc))
            return
        try:
            await self.recorder.set_status(self.sitting_id, "live")
            self.state.state = "live"
            async for item in self.source:
                if isinstance(item, SourceGap):
                    await self._gap(item)
                    continue
                self._clock.mark(item.end)
                await self._sync_vocabulary()
                await self._engine.feed(item.samples, item.start)
                stats = self._engine.stats()
                await self._report(stats)
                if self._hls is not None:
                    self._hls.captions_final_until(self._horizon.until(item.end - stats.lag_s))
            await self._engine.close()
            self.state.state = "ended"
            if self.adjourn_at_end:
                await self.recorder.set_status(self.sitting_id, "adjourned", "the feed ended")
        except SourceError as exc:
            await self._fail(str(exc))
        except asyncio.CancelledError:
            # Shutting down: commit what was heard so far, so no spoken words are lost from the transcript.
            await asyncio.shield(self._engine.close())
            raise

    async def _report(self, stats: EngineStats) -> None:
        """Export the engine's lag and speed; tell viewers when captions fall behind and when they catch up."""
        self.metrics.lag.labels(self.sitting_id).set(stats.lag_s)
        self.metrics.realtime_factor.labels(self.sitting_id).set(stats.rtf)
        behind = stats.lag_s > LAG_WARNING_S
        # Hysteresis: announce falling behind at LAG_WARNING_S, catching up only well below it.
        if behind and not self._behind:
            self._behind = True
            await self.recorder.set_status(
                self.sitting_id, "live", f"captions are running {stats.lag_s:.0f} s behind live"
            )
        elif self._behind and stats.lag_s < LAG_WARNING_S / 2:
            self._behind = False
            await self.recorder.set_status(self.sitting_id, "live", "captions have caught up with live")

    async def _gap(self, gap: SourceGap) -> None:
        if gap.duration is None:
            self.state.state = "interrupted"
            reason = f"feed interrupted: {gap.reason}"
            # Words heard before the drop are final now; the engine must not wait for audio that is not coming.
            await self._engine.flush()
        else:
            self.state.state = "live"
            reason = f"feed resumed after {gap.duration:.1f} s"
        log.warning("sitting %s: %s", self.sitting_id, reason)
        await self.recorder.set_status(self.sitting_id, "live", reason)

    async def _fail(self, message: str) -> None:
        self.state.state = "failed"
        self.state.error = message
        log.error("sitting %s: feed %s failed: %s", self.sitting_id, self.source.uri, message)
        sitting = await self.recorder.store.get_sitting(self.sitting_id)
        if sitting is not None:
            await self.recorder.set_status(self.sitting_id, sitting.status, f"feed error: {message}")
