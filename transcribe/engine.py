"""Live captions for one feed: VAD-gated decoding passes, commit policy, hallucination guards.

Audio is appended to a buffer that starts near the current utterance. A background task (one
per engine, so at most one decode in flight; audio that arrives meanwhile is simply included in
the next pass) decides what to do next:

* an utterance that the VAD closed (0.5 s of silence) becomes final: if the last partial pass
  already heard all of it, its hypothesis is committed as is, otherwise a final pass (beam 3)
  decodes it;
* ongoing speech gets a partial pass once enough new audio has arrived (0.5 s of speech for the
  first, then every second or 1.5x the recent pass cost, whichever is longer):
  LocalAgreement-2 makes the stable start of the hypothesis final, words still unsettled 2.5 s
  after they were spoken are made final anyway, and the rest is shown as a partial;
* silence gets no pass at all.

Words already committed for audio still in the buffer are forced as the decoder prefix, so a
pass only generates what is new and cannot repeat them. When the buffer grows long it is cut at a
committed word; if nothing agrees for too long, words are committed by time so the buffer (and
all state) stays bounded.

When the machine falls behind live, partial passes first go greedy, then are skipped, and final
passes go greedy; final passes themselves are never skipped.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import numpy as np

from transcribe.buffer import AudioBuffer, committed_cut, forced_cut
from transcribe.caption import Caption, CaptionKind
from transcribe.guards import GuardConfig, collapse_loops, rejection_reason
from transcribe.model import SharedModel, Transcript, compression_ratio
from transcribe.policy import CommitPolicy, PolicyConfig
from transcribe.text import TimedPiece, Unit, clean, join_units, segment_units
from transcribe.vad import SAMPLE_RATE, SpeechSpan, StreamingVad, VadConfig

__all__ = ["Caption", "CaptionEngine", "CaptionKind", "EngineConfig", "EngineStats"]

log = logging.getLogger(__name__)

# Buffer cuts are rounded to samples; a word that starts exactly at the cut must still count.
_EPSILON_S = 0.02


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Tunables of a caption engine (seconds unless stated)."""

    # Speech needed before the first partial pass of an utterance...
    first_pass_s: float = 0.5
    # ...and new audio needed before each further one...
    min_step_s: float = 1.0
    # ...and at least this multiple of the recent pass cost, so passes take a bounded share of
    # the CPU whatever the machine.
    step_per_compute: float = 1.5
    # Beam search for partial and final passes (greedy costs less but, on the Thai benchmark
    # clips, commits about 1.5 points more CER)...
    beam_size: int = 3
    final_beam_size: int = 3
    # ...but partial passes go greedy beyond this lag behind live, and beyond the next one they are
    # skipped and final passes go greedy too. Normal lag at a partial pass is the step plus one
    # pass (1 to 1.5 s).
    greedy_lag_s: float = 2.0
    degrade_lag_s: float = 3.0
    # A buffer longer than this is cut at a committed word, keeping this much committed audio
    # as decoder context.
    trim_after_s: float = 8.0
    keep_committed_s: float = 1.0
    # Words still pending this long after they were spoken are committed even without agreement.
    max_pending_s: float = 2.5
    # Uncommitted audio beyond this is committed by time (the last second stays open).
    max_buffer_s: float = 15.0
    force_margin_s: float = 1.0
    # No pass looks at more than this (whisper's window is 30 s, and a backlog can be longer).
    max_window_s: float = 20.0
    # Audio kept before detected speech, and after it in the final pass.
    pre_roll_s: float = 0.3
    end_pad_s: float = 0.25
    # A partial pass whose audio ran this far past the end of the utterance already heard all
    # of it: its hypothesis is committed as the final without another pass.
    reuse_tail_s: float = 0.1
    # Decoder output budget per second of uncommitted audio (Thai runs about 9 tokens/s).
    tokens_per_s: float = 12.0
    min_new_tokens: int = 8
    max_new_tokens: int = 224
    # Context before the start token: recent transcript and the agenda vocabulary.
    prompt_chars: int = 120
    vocabulary_chars: int = 160
    # The recent transcript is context only back to the last pause longer than this (the same
    # speaker going on): context from before a longer silence gets copied into the new utterance
    # by whisper-base (seen on the benchmark clips, joined by 2 s silences).
    prompt_reset_s: float = 1.5
    # Gaps in the media timeline up to this long are filled with silence; longer ones end the
    # utterance and restart the timeline.
    max_gap_fill_s: float = 10.0
    timeline_tolerance_s: float = 0.1


@dataclass(frozen=True, slots=True)
class EngineStats:
    """Counters and gauges of one engine, ready to export as metrics."""

    audio_s: float = 0.0
    decode_s: float = 0.0
    passes: int = 0
    partial_passes: int = 0
    final_passes: int = 0
    partials_skipped: int = 0
    greedy_passes: int = 0
    finals_from_partials: int = 0
    rejected_passes: int = 0
    partials_emitted: int = 0
    finals_emitted: int = 0
    lag_s: float = 0.0
    last_pass_s: float = 0.0
    errors: int = 0

    @property
    def rtf(self) -> float:
        """Decoder compute time per second of audio received (below 1 keeps up with live)."""
        return self.decode_s / self.audio_s if self.audio_s else 0.0


@dataclass(frozen=True, slots=True)
class _Pass:
    kind: CaptionKind
    start: float
    end: float
    beam_size: int
    end_of_utterance: bool = False
    # Forced pass: commit by this media time, then cut the buffer.
    commit_until: float | None = None
    settle_before: float | None = None


class CaptionEngine:
    """Turns one feed's audio into partial and final captions (see module docstring)."""

    def __init__(
        self,
        model: SharedModel,
        *,
        language: str = "th",
        on_caption: Callable[[Caption], Awaitable[None]],
        config: EngineConfig = EngineConfig(),
        vad_config: VadConfig = VadConfig(),
        guard_config: GuardConfig = GuardConfig(),
        policy_config: PolicyConfig = PolicyConfig(),
        segment_prefix: str | None = None,
    ) -> None:
        self._model = model
        self._language = language
        self._on_caption = on_caption
        self._config = config
        self._vad_config = vad_config
        self._guard_config = guard_config
        self._policy = CommitPolicy(
            segment_prefix=segment_prefix if segment_prefix is not None else f"{uuid.uuid4().hex[:8]}-",
            config=policy_config,
        )
        self._vocabulary = ""
        self._buffer = AudioBuffer()
        self._vad: StreamingVad | None = None
        self._closed: deque[SpeechSpan] = deque()
        # Media time up to which every sample is either decoded or known to be silence.
        self._settled_until = 0.0
        self._last_window_end = 0.0
        # Window end of the partial pass whose hypothesis the policy holds as pending.
        self._pending_heard_until: float | None = None
        self._recent_compute = 0.0
        self._stats = EngineStats()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    @property
    def language(self) -> str:
        """Decoding language (whisper code)."""
        return self._language

    @property
    def fed_until(self) -> float:
        """Media time of the end of the audio received."""
        return self._buffer.end

    @property
    def buffered_s(self) -> float:
        """Seconds of audio held for the next pass (bounded by the trimming rules)."""
        return self._buffer.duration

    def stats(self) -> EngineStats:
        """A snapshot of the engine's counters; `lag_s` is how far captions are behind live."""
        return replace(self._stats, lag_s=max(0.0, self.fed_until - self._settled_until))

    @property
    def vocabulary(self) -> str:
        """The hotwords currently passed to the decoder."""
        return self._vocabulary

    def set_vocabulary(self, terms: list[str]) -> None:
        """Terms the decoder should spell right (agenda item, bill names, speaker), most important first.

        They are passed as hotwords before the start token; the list is cut at a term boundary to
        `vocabulary_chars` so it cannot crowd out the audio.
        """
        kept: list[str] = []
        size = 0
        for term in terms:
            term = clean(term)
            if not term or term in kept:
                continue
            if size + len(term) + 2 > self._config.vocabulary_chars:
                break
            kept.append(term)
            size += len(term) + 2
        self._vocabulary = ", ".join(kept)

    async def feed(self, samples: np.ndarray, start: float) -> None:
        """Add a chunk of 16 kHz mono float32 audio whose first sample is at media time `start`.

        Returns at once; decoding happens in the background and captions go to `on_caption`.
        """
        chunk = np.asarray(samples, dtype=np.float32).reshape(-1)
        if self._vad is None:
            self._reset_timeline(start)
        else:
            chunk = await self._fit_timeline(chunk, start)
        if len(chunk):
            self._buffer.append(chunk)
            vad = self._vad
            assert vad is not None
            vad.accept(chunk)
            self._closed.extend(vad.take_closed())
            self._stats = replace(self._stats, audio_s=self._stats.audio_s + len(chunk) / SAMPLE_RATE)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="caption-engine")
        self._wake.set()
        # Let the worker look at the new audio before the caller feeds more.
        await asyncio.sleep(0)

    async def flush(self) -> None:
        """End of stream: decode what is left and make it final."""
        async with self._lock:
            await self._finish_all()

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

    # -- timeline -------------------------------------------------------------------------------

    def _reset_timeline(self, start: float) -> None:
        self._buffer.reset(start)
        self._settled_until = start
        self._last_window_end = start
        self._vad = StreamingVad(self._vad_config, origin=start)

    async def _fit_timeline(self, chunk: np.ndarray, start: float) -> np.ndarray:
        expected = self.fed_until
        gap = start - expected
        if abs(gap) <= self._config.timeline_tolerance_s:
            return chunk
        if gap < 0:
            # Overlap (a re-sent chunk): keep only the new part.
            return chunk[min(len(chunk), round(-gap * SAMPLE_RATE)) :]
        if gap <= self._config.max_gap_fill_s:
            return np.concatenate([np.zeros(round(gap * SAMPLE_RATE), dtype=np.float32), chunk])
        async with self._lock:
            await self._finish_all()
            self._reset_timeline(start)
        return chunk

    # -- worker ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                try:
                    async with self._lock:
                        progressed = await self._step()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("caption pass failed")
                    self._stats = replace(self._stats, errors=self._stats.errors + 1)
                    progressed = False
                if not progressed:
                    break

    async def _step(self) -> bool:
        """Do the most urgent piece of work; False when there is nothing to do until more audio."""
        vad = self._vad
        if vad is None:
            return False
        if self._closed:
            await self._final_pass(self._closed.popleft())
            return True
        ongoing = vad.ongoing
        if ongoing is None:
            self._settle_silence(vad.processed_until)
            return False
        if vad.processed_until - ongoing.start < self._vad_config.min_speech_s:
            return False
        self._buffer.trim_before(ongoing.start - self._config.pre_roll_s)
        end = self.fed_until
        if self._last_window_end <= ongoing.start:
            if vad.processed_until - ongoing.start < self._config.first_pass_s:
                return False
        elif end - self._last_window_end < self._step_s():
            return False
        uncommitted = end - max(self._buffer.start, self._policy.last_final_end)
        if uncommitted >= self._config.max_buffer_s:
            await self._forced_pass(end)
            return True
        lag = end - self._settled_until
        if lag > self._config.degrade_lag_s:
            self._last_window_end = end
            self._stats = replace(self._stats, partials_skipped=self._stats.partials_skipped + 1)
            return False
        settle = end - self._config.max_pending_s
        await self._decode(
            _Pass("partial", self._buffer.start, end, self._beam(lag, final=False), settle_before=settle)
        )
        return True

    def _step_s(self) -> float:
        return max(self._config.min_step_s, self._config.step_per_compute * self._recent_compute)

    def _beam(self, lag: float, *, final: bool) -> int:
        """Beam size for a pass at this lag; counts passes made greedy to catch up."""
        cfg = self._config
        wanted, limit = (
            (cfg.final_beam_size, cfg.degrade_lag_s) if final else (cfg.beam_size, cfg.greedy_lag_s)
        )
        if wanted > 1 and lag > limit:
            self._stats = replace(self._stats, greedy_passes=self._stats.greedy_passes + 1)
            return 1
        return wanted

    async def _forced_pass(self, end: float) -> None:
        """Too much audio without agreement: commit by time so the buffer can be cut."""
        end = min(end, self._buffer.start + self._config.max_window_s)
        await self._decode(
            _Pass(
                "partial",
                self._buffer.start,
                end,
                1,
                commit_until=end - self._config.force_margin_s,
            )
        )

    async def _final_pass(self, span: SpeechSpan) -> None:
        cfg = self._config
        end = min(self.fed_until, (span.end or self.fed_until) + cfg.end_pad_s)
        if self._pending_heard_all(span, end):
            self._stats = replace(self._stats, finals_from_partials=self._stats.finals_from_partials + 1)
            await self._emit(self._policy.observe(self._policy.pending, end_of_utterance=True))
            self._pending_heard_until = None
            self._buffer.trim_before(end)
            self._settled_until = max(self._settled_until, end)
            return
        # Silence before the utterance is not worth encoding (and may still be buffered when
        # the utterance started and ended between two looks at it).
        self._buffer.trim_before(min(span.start - cfg.pre_roll_s, self._first_commit_start()))
        while end - self._buffer.start > cfg.max_window_s:
            await self._forced_pass(end)
        lag = self.fed_until - self._settled_until
        beam = self._beam(lag, final=True)
        if end > self._buffer.start:
            await self._decode(_Pass("final", self._buffer.start, end, beam, end_of_utterance=True))
        else:
            await self._emit(self._policy.end_utterance())
        self._buffer.trim_before(end)
        self._settled_until = max(self._settled_until, end)

    def _pending_heard_all(self, span: SpeechSpan, end: float) -> bool:
        """Whether the last partial pass already decoded the whole utterance (and nothing after it)."""
        heard = self._pending_heard_until
        pending = self._policy.pending
        return (
            heard is not None
            and span.end is not None
            and heard >= span.end + self._config.reuse_tail_s
            and not self._closed
            and (not pending or pending[-1].end <= end)
        )

    def _first_commit_start(self) -> float:
        commits = self._policy.utterance_commits()
        return commits[0].start if commits else float("inf")

    async def _finish_all(self) -> None:
        vad = self._vad
        if vad is None:
            return
        self._closed.extend(vad.close())
        while self._closed:
            await self._final_pass(self._closed.popleft())
        await self._emit(self._policy.end_utterance())
        self._settle_silence(self.fed_until)

    # -- one pass -------------------------------------------------------------------------------

    async def _decode(self, job: _Pass) -> None:
        cfg = self._config
        audio = self._buffer.window(job.start, job.end)
        prefix_units = self._policy.committed_since(job.start - _EPSILON_S)
        uncommitted = job.end - max(job.start, self._policy.last_final_end)
        budget = int(cfg.tokens_per_s * max(0.0, uncommitted)) + cfg.min_new_tokens
        context = self._context_before(job.start)
        transcript = await self._model.transcribe(
            audio,
            language=self._language,
            initial_prompt=context or None,
            hotwords=self._vocabulary or None,
            prefix=join_units(prefix_units) or None,
            beam_size=job.beam_size,
            max_new_tokens=min(cfg.max_new_tokens, budget),
        )
        log.debug(
            "%s pass [%.2f, %.2f] beam=%d context=%r prefix=%r: %r (%.2fs, lp=%.2f, ns=%.2f)",
            job.kind,
            job.start,
            job.end,
            job.beam_size,
            context,
            join_units(prefix_units),
            transcript.text,
            transcript.compute_s,
            transcript.avg_logprob,
            transcript.no_speech_prob,
        )
        self._record_pass(job, transcript)
        self._last_window_end = job.end
        self._settled_until = max(self._settled_until, job.end)
        units = self._accepted_units(transcript, job, prefix_units)
        if units is None:
            if job.end_of_utterance:
                await self._emit(self._policy.end_utterance())
            elif job.commit_until is not None:
                self._buffer.trim_before(job.commit_until)
            return
        committed_before = self._policy.last_final_end
        self._pending_heard_until = None if job.end_of_utterance or job.commit_until is not None else job.end
        captions = self._policy.observe(
            units,
            end_of_utterance=job.end_of_utterance,
            commit_until=job.commit_until,
            follows_commit=bool(prefix_units),
            audio_end=job.end,
            settle_before=job.settle_before,
        )
        await self._emit(captions)
        if job.commit_until is not None:
            cut = forced_cut(
                self._policy.utterance_commits(),
                buffer_start=self._buffer.start,
                last_final_end=self._policy.last_final_end,
                committed_before=committed_before,
                pending=self._policy.pending,
                window_end=job.end,
                commit_until=job.commit_until,
                keep_committed_s=cfg.keep_committed_s,
            )
            self._buffer.trim_before(cut)
        elif not job.end_of_utterance:
            self._trim_committed()

    def _accepted_units(
        self, transcript: Transcript, job: _Pass, prefix: tuple[Unit, ...]
    ) -> tuple[Unit, ...] | None:
        """The pass's words on the media timeline, or None when the guards reject the pass."""
        pieces = [
            TimedPiece(w.text, min(job.end, job.start + w.start), min(job.end, job.start + w.end))
            for w in transcript.words
        ]
        units = collapse_loops(segment_units(pieces), self._guard_config, context=prefix)
        text = clean(join_units(units))
        reason = (
            rejection_reason(
                text,
                avg_logprob=transcript.avg_logprob,
                no_speech_prob=transcript.no_speech_prob,
                compression_ratio=compression_ratio(text),
                config=self._guard_config,
            )
            if units
            else None
        )
        if reason is not None:
            log.debug("rejected pass (%s): %r", reason, text)
            self._stats = replace(self._stats, rejected_passes=self._stats.rejected_passes + 1)
            return None
        return units

    def _record_pass(self, job: _Pass, transcript: Transcript) -> None:
        s = self._stats
        # Smoothed cost of a pass sets the partial cadence.
        self._recent_compute = (
            transcript.compute_s if not s.passes else 0.7 * self._recent_compute + 0.3 * transcript.compute_s
        )
        self._stats = replace(
            s,
            passes=s.passes + 1,
            partial_passes=s.partial_passes + (job.kind == "partial"),
            final_passes=s.final_passes + (job.kind == "final"),
            decode_s=s.decode_s + transcript.compute_s,
            last_pass_s=transcript.compute_s,
        )

    def _context_before(self, start: float) -> str:
        """Recent committed text whose audio is no longer in the window (decoder context)."""
        cfg = self._config
        return self._policy.context_before(start - _EPSILON_S, cfg.prompt_chars, cfg.prompt_reset_s)

    async def _emit(self, captions: list[Caption]) -> None:
        for caption in captions:
            s = self._stats
            self._stats = replace(
                s,
                partials_emitted=s.partials_emitted + (caption.kind == "partial"),
                finals_emitted=s.finals_emitted + (caption.kind == "final"),
            )
            try:
                await self._on_caption(caption)
            except Exception:
                log.exception("on_caption failed for %s", caption.segment_id)

    # -- buffer ---------------------------------------------------------------------------------

    def _settle_silence(self, until: float) -> None:
        """No speech is going on: keep only a little pre-roll and count the audio as handled."""
        self._settled_until = max(self._settled_until, until)
        self._last_window_end = max(self._last_window_end, until)
        self._buffer.trim_before(until - self._config.pre_roll_s)

    def _trim_committed(self) -> None:
        """Cut a long buffer at a committed word, keeping some committed audio as context."""
        cfg = self._config
        if self._buffer.duration <= cfg.trim_after_s:
            return
        cut = committed_cut(
            self._policy.utterance_commits(),
            buffer_start=self._buffer.start,
            last_final_end=self._policy.last_final_end,
            keep_committed_s=cfg.keep_committed_s,
        )
        if cut is not None:
            self._buffer.trim_before(cut)
