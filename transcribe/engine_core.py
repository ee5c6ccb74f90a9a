"""The decisions of a live caption engine, sans I/O: audio and speech spans in, decode requests
out, decode results in, captions out. No asyncio, threads or clocks: `engine.CaptionEngine` runs
the VAD and the model and moves data in and out; tests drive this with scripted spans and
transcripts.

Audio is appended to a buffer that starts near the current utterance. Asked for work
(`next_request`), the core picks the most urgent piece, with at most one decode in flight (audio
that arrives meanwhile is simply part of the next pass):

* an utterance that the VAD closed becomes final: if the last partial pass already heard all of
  it, its hypothesis is committed as is, otherwise a final pass (beam 3) decodes it;
* ongoing speech gets a partial pass once enough new audio has arrived (`first_pass_s` of speech
  for the first, then every `min_step_s` or `step_per_compute` times the recent pass cost,
  whichever is longer): once a pass covers `min_commit_window_s` of audio, LocalAgreement-2
  makes the stable start of the hypothesis final (shorter windows only show partials), words
  still unsettled `max_pending_s` after they were spoken are made final anyway, and the rest is
  shown as a partial;
* silence gets no pass at all.

Words already committed for audio still in the buffer are forced as the decoder prefix, so a
pass only generates what is new and cannot repeat them. When the buffer grows long it is cut at a
committed word; if nothing agrees for too long, words are committed by time so the buffer (and
all state) stays bounded.

When the machine falls behind live, partial passes first go greedy, then are skipped, and final
passes go greedy; final passes themselves are never skipped.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from transcribe.buffer import SAMPLE_RATE, AudioBuffer, committed_cut, forced_cut
from transcribe.caption import Caption
from transcribe.guards import GuardConfig, collapse_loops, rejection_reason
from transcribe.policy import CommitPolicy, PolicyConfig
from transcribe.text import TimedPiece, Unit, clean, join_units, segment_units
from transcribe.transcriber import Transcript, compression_ratio
from transcribe.vad import SpeechSpan, VadConfig

__all__ = ["DecodeRequest", "EngineConfig", "EngineCore", "EngineStats", "Placement", "PassKind"]

log = logging.getLogger(__name__)

# Buffer cuts are rounded to samples; a word that starts exactly at the cut must still count.
_EPSILON_S = 0.02

PassKind = Literal["partial", "final", "forced"]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Tunables of a caption engine (seconds unless stated)."""

    # Speech needed before the first partial pass of an utterance...
    first_pass_s: float = 0.5
    # ...and new audio needed before each further one (one 0.5 s source chunk)...
    min_step_s: float = 0.5
    # ...and at least this multiple of the recent pass cost, so a feed never asks for more decoder
    # time than real time passes (whatever the machine; beyond that the lag rules below degrade).
    # Agreement needs two passes after a word, so the step sets most of the final latency: on the
    # Thai benchmark clips under moderate load 1.0 s / 1.5x gave final p50 2.1 s at RTF 0.27,
    # 0.5 s / 1.0x 1.5-1.7 s at RTF 0.44, with a more variable CER (docs/benchmarks.md). Chunks
    # arrive every 0.5 s, so a step between 0.5 and 1.0 s acts as 1.0 s.
    step_per_compute: float = 1.0
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
    # A partial pass over less audio than this (the window, pre-roll included) commits nothing by
    # agreement; it only shows a partial. Whisper-base mishears the first words of an utterance
    # from a window of a second or so, two such passes 0.5 s apart often agree on the mishearing,
    # and once final the word is forced as the prefix of every later pass, so it cannot be
    # corrected: on the Thai benchmark clips "เรื่อง" became "รึง" (and "เมือง" "หรือง") in most
    # runs. At 2.0 s only an utterance's first words wait (final p50 about 0.2 s later on the
    # benchmark's virtual clock) and streamed CER stays within a point of offline (docs/benchmarks.md).
    min_commit_window_s: float = 2.0
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
    # Where the decoder's time goes: seconds of audio decoded over all passes (a second of speech
    # is decoded this many times over, divided by audio_s), forced passes, context characters sent
    # before the start token and committed characters forced as prefix, and time spent in the VAD.
    window_s: float = 0.0
    forced_passes: int = 0
    prompt_chars: int = 0
    prefix_chars: int = 0
    vad_s: float = 0.0

    @property
    def rtf(self) -> float:
        """Decoder compute time per second of audio received (below 1 keeps up with live)."""
        return self.decode_s / self.audio_s if self.audio_s else 0.0


@dataclass(frozen=True, slots=True)
class DecodeRequest:
    """One decoding pass the core wants: the `Transcriber` arguments, plus what the core needs to
    read the result (the window on the media timeline and the committed words forced as prefix).
    """

    kind: PassKind
    start: float
    end: float
    audio: np.ndarray = field(repr=False)
    language: str
    initial_prompt: str | None
    hotwords: str | None
    prefix: str | None
    beam_size: int
    max_new_tokens: int
    prefix_units: tuple[Unit, ...] = ()
    end_of_utterance: bool = False
    # Forced pass: commit by this media time, then cut the buffer.
    commit_until: float | None = None
    settle_before: float | None = None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a chunk goes on the timeline: `samples` follow the audio held (overlap dropped,
    a short gap filled with silence); `restart` says the timeline must restart at the chunk's
    start (first chunk, or a jump): finish the stream, then `restart(start)` before appending."""

    samples: np.ndarray
    restart: bool


class EngineCore:
    """The state machine of one feed's captions (see module docstring).

    Use: `place` each chunk, `append` it, and `observe_vad` what the VAD made of it (any order
    between the two: the buffer and the VAD are read together only in `next_request`). Then call
    `next_request` until it returns None, passing each request's transcript to `complete` (or
    calling `fail`) before asking again. `take_captions` drains the captions produced so far. At
    end of stream, `end_stream` with the VAD's last spans, then drain requests as above.
    """

    def __init__(
        self,
        *,
        language: str = "th",
        segment_prefix: str = "",
        config: EngineConfig = EngineConfig(),
        vad_config: VadConfig = VadConfig(),
        guard_config: GuardConfig = GuardConfig(),
        policy_config: PolicyConfig = PolicyConfig(),
    ) -> None:
        self._language = language
        self._config = config
        self._min_speech_s = vad_config.min_speech_s
        self._guard_config = guard_config
        self._policy = CommitPolicy(segment_prefix=segment_prefix, config=policy_config)
        self._vocabulary = ""
        self._buffer = AudioBuffer()
        self._started = False
        self._closed: deque[SpeechSpan] = deque()
        self._ongoing: SpeechSpan | None = None
        self._vad_until = 0.0
        self._ending = False
        self._in_flight: DecodeRequest | None = None
        self._outbox: list[Caption] = []
        # Media time up to which every sample is either decoded or known to be silence.
        self._settled_until = 0.0
        self._last_window_end = 0.0
        # Window end of the partial pass whose hypothesis the policy holds as pending.
        self._pending_heard_until: float | None = None
        self._recent_compute = 0.0
        self._stats = EngineStats()

    # -- state ----------------------------------------------------------------------------------

    @property
    def language(self) -> str:
        """Decoding language (whisper code)."""
        return self._language

    @property
    def started(self) -> bool:
        """Whether a timeline has been started (`restart` called at least once)."""
        return self._started

    @property
    def fed_until(self) -> float:
        """Media time of the end of the audio received."""
        return self._buffer.end

    @property
    def buffered_s(self) -> float:
        """Seconds of audio held for the next pass (bounded by the trimming rules)."""
        return self._buffer.duration

    @property
    def buffer_start(self) -> float:
        """Media time of the first sample held."""
        return self._buffer.start

    @property
    def in_flight(self) -> DecodeRequest | None:
        """The request handed out and not yet completed or failed."""
        return self._in_flight

    def stats(self) -> EngineStats:
        """A snapshot of the counters; `lag_s` is how far captions are behind live."""
        return replace(self._stats, lag_s=max(0.0, self.fed_until - self._settled_until))

    def add_vad_time(self, seconds: float) -> None:
        """Count time the driver spent running the VAD (the core has no clock)."""
        self._stats = replace(self._stats, vad_s=self._stats.vad_s + seconds)

    def count_error(self) -> None:
        """Count a failure outside a decode (the driver's own)."""
        self._stats = replace(self._stats, errors=self._stats.errors + 1)

    @property
    def vocabulary(self) -> str:
        """The hotwords currently passed to the decoder."""
        return self._vocabulary

    def set_vocabulary(self, terms: Sequence[str]) -> None:
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

    # -- input ----------------------------------------------------------------------------------

    def place(self, samples: np.ndarray, start: float) -> Placement:
        """Fit a chunk whose first sample is at media time `start` to the timeline held."""
        chunk = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not self._started:
            return Placement(chunk, restart=True)
        gap = start - self.fed_until
        cfg = self._config
        if abs(gap) <= cfg.timeline_tolerance_s:
            return Placement(chunk, restart=False)
        if gap < 0:
            # Overlap (a re-sent chunk): keep only the new part.
            return Placement(chunk[min(len(chunk), round(-gap * SAMPLE_RATE)) :], restart=False)
        if gap <= cfg.max_gap_fill_s:
            silence = np.zeros(round(gap * SAMPLE_RATE), dtype=np.float32)
            return Placement(np.concatenate([silence, chunk]), restart=False)
        return Placement(chunk, restart=True)

    def restart(self, start: float) -> None:
        """Start a new timeline at media time `start` (after the previous one was ended)."""
        self._buffer.reset(start)
        self._settled_until = start
        self._last_window_end = start
        self._vad_until = start
        self._ongoing = None
        self._closed.clear()
        self._started = True

    def append(self, samples: np.ndarray) -> None:
        """Add samples that follow the audio held (as placed by `place`)."""
        chunk = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not len(chunk):
            return
        self._buffer.append(chunk)
        self._stats = replace(self._stats, audio_s=self._stats.audio_s + len(chunk) / SAMPLE_RATE)

    def observe_vad(self, closed: Sequence[SpeechSpan], ongoing: SpeechSpan | None, processed_until: float) -> None:
        """What the VAD knows now: utterances closed since the last call (oldest first), the one
        going on, and the media time up to which audio has been classified."""
        self._closed.extend(closed)
        self._ongoing = ongoing
        self._vad_until = processed_until

    def end_stream(self, closed: Sequence[SpeechSpan]) -> None:
        """End of stream (or of a timeline): `closed` are the VAD's last spans (the ongoing one
        closed at its last voiced moment). The requests that follow make everything final."""
        self._closed.extend(closed)
        self._ongoing = None
        self._ending = True

    # -- output ---------------------------------------------------------------------------------

    def take_captions(self) -> list[Caption]:
        """Captions produced since the last call, in order."""
        out, self._outbox = self._outbox, []
        return out

    def next_request(self) -> DecodeRequest | None:
        """The most urgent decoding pass, or None when nothing needs one until more audio arrives.

        Work that needs no decode (a final from the last partial, settling silence) is done on the
        way and leaves captions in the outbox. Raises RuntimeError while a request is in flight.
        """
        if self._in_flight is not None:
            raise RuntimeError("a decode request is already in flight")
        if not self._started:
            return None
        request = self._choose()
        self._in_flight = request
        return request

    def complete(self, request: DecodeRequest, transcript: Transcript) -> None:
        """Take the result of `request` (which must be the one in flight)."""
        self._land(request)
        self._record_pass(request, transcript)
        self._last_window_end = request.end
        self._settled_until = max(self._settled_until, request.end)
        if request.kind == "final":
            self._closed.popleft()
        units = self._accepted_units(transcript, request)
        if units is None:
            if request.end_of_utterance:
                self._emit(self._policy.end_utterance())
            elif request.commit_until is not None:
                self._buffer.trim_before(request.commit_until)
        else:
            self._observe(request, units)
        if request.kind == "final":
            self._buffer.trim_before(request.end)

    def fail(self, request: DecodeRequest, *, error: bool = True) -> None:
        """`request` could not be decoded: count the error (unless `error` is False: the driver
        was cancelled) and move on so the same work is not retried at once (a final drops the
        utterance's pending words, a forced pass cuts the buffer anyway, a partial waits for the
        next step)."""
        self._land(request)
        self._stats = replace(self._stats, errors=self._stats.errors + error)
        self._last_window_end = max(self._last_window_end, request.end)
        if request.kind == "final":
            self._closed.popleft()
            self._emit(self._policy.end_utterance())
            self._pending_heard_until = None
            self._buffer.trim_before(request.end)
            self._settled_until = max(self._settled_until, request.end)
        elif request.commit_until is not None:
            self._buffer.trim_before(request.commit_until)

    # -- choosing the next pass -----------------------------------------------------------------

    def _choose(self) -> DecodeRequest | None:
        cfg = self._config
        while self._closed:
            span = self._closed[0]
            end = min(self.fed_until, (span.end if span.end is not None else self.fed_until) + cfg.end_pad_s)
            if self._pending_heard_all(span, end):
                self._closed.popleft()
                self._stats = replace(self._stats, finals_from_partials=self._stats.finals_from_partials + 1)
                self._emit(self._policy.observe(self._policy.pending, end_of_utterance=True))
                self._pending_heard_until = None
                self._buffer.trim_before(end)
                self._settled_until = max(self._settled_until, end)
                continue
            # Silence before the utterance is not worth encoding (and may still be buffered when
            # the utterance started and ended between two looks at it).
            self._buffer.trim_before(min(span.start - cfg.pre_roll_s, self._first_commit_start()))
            if end - self._buffer.start > cfg.max_window_s:
                return self._forced(end)
            if end > self._buffer.start:
                beam = self._beam(self.fed_until - self._settled_until, final=True)
                return self._request("final", self._buffer.start, end, beam, end_of_utterance=True)
            self._closed.popleft()
            self._emit(self._policy.end_utterance())
            self._buffer.trim_before(end)
            self._settled_until = max(self._settled_until, end)
        if self._ending:
            self._ending = False
            self._emit(self._policy.end_utterance())
            self._settle_silence(self.fed_until)
            return None
        return self._partial_or_none()

    def _partial_or_none(self) -> DecodeRequest | None:
        cfg = self._config
        ongoing = self._ongoing
        if ongoing is None:
            self._settle_silence(self._vad_until)
            return None
        if self._vad_until - ongoing.start < self._min_speech_s:
            return None
        self._buffer.trim_before(ongoing.start - cfg.pre_roll_s)
        end = self.fed_until
        if self._last_window_end <= ongoing.start:
            if self._vad_until - ongoing.start < cfg.first_pass_s:
                return None
        elif end - self._last_window_end < self._step_s():
            return None
        uncommitted = end - max(self._buffer.start, self._policy.last_final_end)
        if uncommitted >= cfg.max_buffer_s:
            return self._forced(end)
        lag = end - self._settled_until
        if lag > cfg.degrade_lag_s:
            self._last_window_end = end
            self._stats = replace(self._stats, partials_skipped=self._stats.partials_skipped + 1)
            return None
        beam = self._beam(lag, final=False)
        return self._request("partial", self._buffer.start, end, beam, settle_before=end - cfg.max_pending_s)

    def _forced(self, end: float) -> DecodeRequest:
        """Too much audio without agreement: commit by time so the buffer can be cut."""
        end = min(end, self._buffer.start + self._config.max_window_s)
        return self._request("forced", self._buffer.start, end, 1, commit_until=end - self._config.force_margin_s)

    def _request(
        self,
        kind: PassKind,
        start: float,
        end: float,
        beam_size: int,
        *,
        end_of_utterance: bool = False,
        commit_until: float | None = None,
        settle_before: float | None = None,
    ) -> DecodeRequest:
        cfg = self._config
        prefix_units = self._policy.committed_since(start - _EPSILON_S)
        uncommitted = end - max(start, self._policy.last_final_end)
        budget = int(cfg.tokens_per_s * max(0.0, uncommitted)) + cfg.min_new_tokens
        context = self._policy.context_before(start - _EPSILON_S, cfg.prompt_chars, cfg.prompt_reset_s)
        prefix = join_units(prefix_units)
        return DecodeRequest(
            kind=kind,
            start=start,
            end=end,
            audio=self._buffer.window(start, end),
            language=self._language,
            initial_prompt=context or None,
            hotwords=self._vocabulary or None,
            prefix=prefix or None,
            beam_size=beam_size,
            max_new_tokens=min(cfg.max_new_tokens, budget),
            prefix_units=prefix_units,
            end_of_utterance=end_of_utterance,
            commit_until=commit_until,
            settle_before=settle_before,
        )

    def _step_s(self) -> float:
        return max(self._config.min_step_s, self._config.step_per_compute * self._recent_compute)

    def _beam(self, lag: float, *, final: bool) -> int:
        """Beam size for a pass at this lag; counts passes made greedy to catch up."""
        cfg = self._config
        wanted, limit = (cfg.final_beam_size, cfg.degrade_lag_s) if final else (cfg.beam_size, cfg.greedy_lag_s)
        if wanted > 1 and lag > limit:
            self._stats = replace(self._stats, greedy_passes=self._stats.greedy_passes + 1)
            return 1
        return wanted

    def _pending_heard_all(self, span: SpeechSpan, end: float) -> bool:
        """Whether the last partial pass already decoded the whole utterance (and nothing after it)."""
        heard = self._pending_heard_until
        pending = self._policy.pending
        return (
            heard is not None
            and span.end is not None
            and heard >= span.end + self._config.reuse_tail_s
            and len(self._closed) == 1
            and (not pending or pending[-1].end <= end)
        )

    def _first_commit_start(self) -> float:
        commits = self._policy.utterance_commits()
        return commits[0].start if commits else float("inf")

    # -- reading a result -----------------------------------------------------------------------

    def _land(self, request: DecodeRequest) -> None:
        if request is not self._in_flight:
            raise RuntimeError("not the request in flight")
        self._in_flight = None

    def _observe(self, request: DecodeRequest, units: tuple[Unit, ...]) -> None:
        cfg = self._config
        committed_before = self._policy.last_final_end
        forced = request.commit_until is not None
        self._pending_heard_until = None if request.end_of_utterance or forced else request.end
        self._emit(
            self._policy.observe(
                units,
                end_of_utterance=request.end_of_utterance,
                commit_until=request.commit_until,
                follows_commit=bool(request.prefix_units),
                audio_end=request.end,
                settle_before=request.settle_before,
                agree=request.kind != "partial" or request.end - request.start >= cfg.min_commit_window_s,
            )
        )
        if request.commit_until is not None:
            cut = forced_cut(
                self._policy.utterance_commits(),
                buffer_start=self._buffer.start,
                last_final_end=self._policy.last_final_end,
                committed_before=committed_before,
                pending=self._policy.pending,
                window_end=request.end,
                commit_until=request.commit_until,
                keep_committed_s=cfg.keep_committed_s,
            )
            self._buffer.trim_before(cut)
        elif not request.end_of_utterance:
            self._trim_committed()

    def _accepted_units(self, transcript: Transcript, request: DecodeRequest) -> tuple[Unit, ...] | None:
        """The pass's words on the media timeline, or None when the guards reject the pass."""
        pieces = [
            TimedPiece(w.text, min(request.end, request.start + w.start), min(request.end, request.start + w.end))
            for w in transcript.words
        ]
        units = collapse_loops(segment_units(pieces), self._guard_config, context=request.prefix_units)
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

    def _record_pass(self, request: DecodeRequest, transcript: Transcript) -> None:
        s = self._stats
        # Smoothed cost of a pass sets the partial cadence.
        self._recent_compute = (
            transcript.compute_s if not s.passes else 0.7 * self._recent_compute + 0.3 * transcript.compute_s
        )
        self._stats = replace(
            s,
            passes=s.passes + 1,
            partial_passes=s.partial_passes + (request.kind == "partial"),
            final_passes=s.final_passes + (request.kind == "final"),
            forced_passes=s.forced_passes + (request.kind == "forced"),
            decode_s=s.decode_s + transcript.compute_s,
            last_pass_s=transcript.compute_s,
            window_s=s.window_s + (request.end - request.start),
            prompt_chars=s.prompt_chars + len(request.initial_prompt or "") + len(request.hotwords or ""),
            prefix_chars=s.prefix_chars + len(request.prefix or ""),
        )

    def _emit(self, captions: list[Caption]) -> None:
        for caption in captions:
            s = self._stats
            self._stats = replace(
                s,
                partials_emitted=s.partials_emitted + (caption.kind == "partial"),
                finals_emitted=s.finals_emitted + (caption.kind == "final"),
            )
        self._outbox.extend(captions)

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
