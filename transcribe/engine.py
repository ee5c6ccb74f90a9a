"""Live captions for one feed: the async driver around `engine_core.EngineCore`.

The core decides (see its module docstring); this runs the parts that take time, off the event
loop: the VAD on a worker thread, the model through the `Transcriber` (the shared model's own
worker thread). One background task per engine asks the core for work and runs it, so at most one
decode per feed is in flight; audio fed meanwhile is part of the next pass. Captions go to
`on_caption` in the order the core made them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from transcribe.caption import Caption, CaptionKind
from transcribe.engine_core import DecodeRequest, EngineConfig, EngineCore, EngineStats
from transcribe.guards import GuardConfig
from transcribe.policy import PolicyConfig
from transcribe.transcriber import Transcriber
from transcribe.vad import SpeechSpan, StreamingVad, VadConfig

__all__ = [
    "Caption",
    "CaptionEngine",
    "CaptionKind",
    "EngineConfig",
    "EngineStats",
    "SpeechDetector",
    "Transcriber",
]

log = logging.getLogger(__name__)


class SpeechDetector(Protocol):
    """A streaming VAD (`vad.StreamingVad`): times are media seconds from the origin it was made with.

    Called from one worker thread at a time, never concurrently.
    """

    @property
    def processed_until(self) -> float: ...

    @property
    def ongoing(self) -> SpeechSpan | None: ...

    def accept(self, samples: np.ndarray) -> None: ...

    def take_closed(self) -> list[SpeechSpan]: ...

    def close(self) -> list[SpeechSpan]: ...


DetectorFactory = Callable[[VadConfig, float], SpeechDetector]


def silero_detector(config: VadConfig, origin: float) -> SpeechDetector:
    """The default detector: Silero VAD, streamed."""
    return StreamingVad(config, origin=origin)


@dataclass(frozen=True, slots=True)
class _VadView:
    closed: Sequence[SpeechSpan]
    ongoing: SpeechSpan | None
    processed_until: float
    compute_s: float


def _classify(detector: SpeechDetector, samples: np.ndarray) -> _VadView:
    """Run on a worker thread: classify `samples` and read the detector's state."""
    started = time.perf_counter()
    detector.accept(samples)
    return _VadView(detector.take_closed(), detector.ongoing, detector.processed_until, time.perf_counter() - started)


class CaptionEngine:
    """Turns one feed's audio into partial and final captions (see module docstring)."""

    def __init__(
        self,
        model: Transcriber,
        *,
        language: str = "th",
        on_caption: Callable[[Caption], Awaitable[None]],
        config: EngineConfig = EngineConfig(),
        vad_config: VadConfig = VadConfig(),
        guard_config: GuardConfig = GuardConfig(),
        policy_config: PolicyConfig = PolicyConfig(),
        segment_prefix: str | None = None,
        detector_factory: DetectorFactory = silero_detector,
    ) -> None:
        self._model = model
        self._on_caption = on_caption
        self._vad_config = vad_config
        self._detector_factory = detector_factory
        self._core = EngineCore(
            language=language,
            segment_prefix=segment_prefix if segment_prefix is not None else f"{uuid.uuid4().hex[:8]}-",
            config=config,
            vad_config=vad_config,
            guard_config=guard_config,
            policy_config=policy_config,
        )
        self._detector: SpeechDetector | None = None
        # Order: _feed_lock (the detector and the timeline) before _decode_lock (the core's
        # requests), never the other way round.
        self._feed_lock = asyncio.Lock()
        self._decode_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    @property
    def language(self) -> str:
        """Decoding language (whisper code)."""
        return self._core.language

    @property
    def fed_until(self) -> float:
        """Media time of the end of the audio received."""
        return self._core.fed_until

    @property
    def buffered_s(self) -> float:
        """Seconds of audio held for the next pass (bounded by the trimming rules)."""
        return self._core.buffered_s

    def stats(self) -> EngineStats:
        """A snapshot of the engine's counters; `lag_s` is how far captions are behind live."""
        return self._core.stats()

    @property
    def vocabulary(self) -> str:
        """The hotwords currently passed to the decoder."""
        return self._core.vocabulary

    def set_vocabulary(self, terms: list[str]) -> None:
        """Terms the decoder should spell right, most important first (see `EngineCore.set_vocabulary`)."""
        self._core.set_vocabulary(terms)

    async def feed(self, samples: np.ndarray, start: float) -> None:
        """Add a chunk of 16 kHz mono float32 audio whose first sample is at media time `start`.

        Returns once the VAD has classified it; decoding happens in the background and captions
        go to `on_caption`.
        """
        async with self._feed_lock:
            placement = self._core.place(samples, start)
            if placement.restart:
                if self._detector is not None:
                    await self._finish()
                self._core.restart(start)
                self._detector = self._detector_factory(self._vad_config, start)
            detector = self._detector
            assert detector is not None
            if len(placement.samples):
                view = await asyncio.to_thread(_classify, detector, placement.samples)
                self._core.append(placement.samples)
                self._core.observe_vad(view.closed, view.ongoing, view.processed_until)
                self._core.add_vad_time(view.compute_s)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="caption-engine")
        self._wake.set()
        # Let the worker look at the new audio before the caller feeds more.
        await asyncio.sleep(0)

    async def flush(self) -> None:
        """End of stream: decode what is left and make it final."""
        async with self._feed_lock:
            await self._finish()

    async def close(self) -> None:
        """Flush, then stop the background task."""
        await self.flush()
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None

    async def _finish(self) -> None:
        """Close the detector's utterances and drain every request (caller holds _feed_lock)."""
        detector = self._detector
        if detector is None:
            return
        closed = await asyncio.to_thread(detector.close)
        async with self._decode_lock:
            self._core.end_stream(closed)
            await self._drain()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            async with self._decode_lock:
                await self._drain()

    async def _drain(self) -> None:
        """Run the core's requests until it has none (caller holds _decode_lock)."""
        while True:
            try:
                request = self._core.next_request()
            except Exception:
                # A bug in the core must not end captions for the feed: count it, wait for more audio.
                log.exception("caption engine step failed")
                self._core.count_error()
                request = None
            await self._deliver()
            if request is None:
                return
            await self._decode(request)
            await self._deliver()

    async def _decode(self, request: DecodeRequest) -> None:
        try:
            transcript = await self._model.transcribe(
                request.audio,
                language=request.language,
                initial_prompt=request.initial_prompt,
                hotwords=request.hotwords,
                prefix=request.prefix,
                beam_size=request.beam_size,
                max_new_tokens=request.max_new_tokens,
            )
        except asyncio.CancelledError:
            self._core.fail(request, error=False)
            raise
        except Exception:
            log.exception("caption pass failed")
            self._core.fail(request)
            return
        log.debug(
            "%s pass [%.2f, %.2f] beam=%d context=%r prefix=%r: %r (%.2fs, lp=%.2f, ns=%.2f)",
            request.kind,
            request.start,
            request.end,
            request.beam_size,
            request.initial_prompt,
            request.prefix,
            transcript.text,
            transcript.compute_s,
            transcript.avg_logprob,
            transcript.no_speech_prob,
        )
        try:
            self._core.complete(request, transcript)
        except Exception:
            log.exception("caption pass result could not be used")
            self._core.count_error()

    async def _deliver(self) -> None:
        for caption in self._core.take_captions():
            try:
                await self._on_caption(caption)
            except Exception:
                log.exception("on_caption failed for %s", caption.segment_id)
