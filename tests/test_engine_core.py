"""The caption engine's decisions, driven without the model: scripted speech spans and transcripts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from transcribe.caption import Caption
from transcribe.engine import CaptionEngine
from transcribe.engine_core import DecodeRequest, EngineConfig, EngineCore, EngineStats
from transcribe.text import join_text
from transcribe.transcriber import TranscribedWord, Transcript
from transcribe.vad import SpeechSpan, VadConfig

pytestmark = pytest.mark.fast

SR = 16_000
END_SILENCE_S = 0.5


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float


def spoken(start: float, count: int, *, step: float = 0.4, prefix: str = "w") -> list[Word]:
    """`count` words said back to back from media time `start`, each `step` long."""
    names = [a + b for a in "abcdefgh" for b in "abcdefgh"]
    return [Word(f"{prefix}{names[i]}", start + i * step, start + (i + 1) * step - 0.05) for i in range(count)]


class ScriptedSpeech:
    """A transcriber that hears exactly the scripted words inside a window.

    Like whisper with a forced prefix, it returns only what follows the committed words it was
    given, and never a word cut by the end of the audio. `variant` renames the words of the n-th
    pass, to make passes disagree; `text` replaces the whole output.
    """

    def __init__(
        self,
        words: Sequence[Word],
        *,
        avg_logprob: float = -0.2,
        no_speech_prob: float = 0.01,
        compute_s: float = 0.2,
        variant: bool = False,
        text: str | None = None,
    ) -> None:
        self.words = list(words)
        self.avg_logprob = avg_logprob
        self.no_speech_prob = no_speech_prob
        self.compute_s = compute_s
        self.variant = variant
        self.text = text
        self.requests: list[DecodeRequest] = []

    def __call__(self, request: DecodeRequest) -> Transcript:
        self.requests.append(request)
        after = request.prefix_units[-1].end if request.prefix_units else None
        return self.hear(request.start, request.end, after, request.language)

    def hear(self, start: float, end: float, after: float | None, language: str) -> Transcript:
        """The transcript of media time [start, end] after the committed word ending at `after`."""
        after = (after if after is not None else start) - 0.01
        heard = [w for w in self.words if w.start >= after and w.end <= end]
        variant = "pq"[len(self.requests) % 2] if self.variant else ""
        words = tuple(TranscribedWord(f" {variant}{w.text}", w.start - start, w.end - start, 0.9) for w in heard)
        if self.text is not None and heard:
            words = (TranscribedWord(self.text, 0.0, heard[-1].end - start, 0.9),)
        text = "".join(w.text for w in words)
        return Transcript(
            text=text,
            words=words,
            language=language,
            avg_logprob=self.avg_logprob,
            compression_ratio=1.0,
            no_speech_prob=self.no_speech_prob,
            tokens=len(words),
            duration=end - start,
            compute_s=self.compute_s,
        )


class Stream:
    """Feeds an EngineCore silence-valued audio with scripted VAD spans, answering its requests."""

    def __init__(
        self,
        core: EngineCore,
        speech: ScriptedSpeech,
        spans: Sequence[tuple[float, float]],
        *,
        origin: float = 0.0,
    ) -> None:
        self.core = core
        self.speech = speech
        self.spans = list(spans)
        self.now = origin
        self.reported: set[tuple[float, float]] = set()
        self.captions: list[Caption] = []
        self.requests: list[DecodeRequest] = []
        self.by_request: list[tuple[DecodeRequest, list[Caption]]] = []
        core.restart(origin)

    def vad(self) -> tuple[list[SpeechSpan], SpeechSpan | None]:
        closed, ongoing = [], None
        for start, end in self.spans:
            if start > self.now:
                continue
            if end + END_SILENCE_S <= self.now:
                if (start, end) not in self.reported:
                    self.reported.add((start, end))
                    closed.append(SpeechSpan(start, end))
            else:
                ongoing = SpeechSpan(start, None)
        return closed, ongoing

    def advance(self, seconds: float, *, answer: bool = True) -> None:
        """`seconds` more audio arrive; then (with `answer`) every request is decoded at once."""
        self.core.append(np.zeros(round(seconds * SR), dtype=np.float32))
        self.now += seconds
        closed, ongoing = self.vad()
        self.core.observe_vad(closed, ongoing, self.now)
        if answer:
            self.answer()

    def answer(self) -> None:
        while (request := self.core.next_request()) is not None:
            self.requests.append(request)
            self.core.complete(request, self.speech(request))
            captions = self.core.take_captions()
            self.by_request.append((request, captions))
            self.captions.extend(captions)
        self.captions.extend(self.core.take_captions())

    def play(self, until: float, step: float = 0.5) -> None:
        while self.now < until - 1e-9:
            self.advance(step)

    def finish(self) -> None:
        closed, _ = self.vad()
        leftover = [SpeechSpan(s, e) for s, e in self.spans if s <= self.now and (s, e) not in self.reported]
        self.core.end_stream([*closed, *[sp for sp in leftover if sp not in closed]])
        self.answer()


def finals(captions: Sequence[Caption]) -> str:
    text = ""
    for c in captions:
        if c.kind == "final":
            text = join_text(text, c.text)
    return text


def words_text(words: Sequence[Word]) -> str:
    return " ".join(w.text for w in words)


def test_silence_costs_no_pass_and_no_caption() -> None:
    """Ten seconds without speech give no decode request, no caption and no lag."""
    core = EngineCore()
    stream = Stream(core, ScriptedSpeech([]), spans=[])
    stream.play(10.0)
    assert stream.requests == [] and stream.captions == []
    assert core.stats().lag_s == 0.0
    assert core.buffered_s <= EngineConfig().pre_roll_s + 0.5


def test_first_partial_waits_for_enough_speech_then_shows_the_words() -> None:
    """No pass before `first_pass_s` of speech; then a partial pass whose words are shown as a partial."""
    words = spoken(1.0, 10)
    core = EngineCore()
    stream = Stream(core, ScriptedSpeech(words), spans=[(1.0, 5.0)])
    stream.play(1.25, step=0.25)
    assert stream.requests == []
    stream.advance(0.5)
    [request] = stream.requests
    assert request.kind == "partial" and request.beam_size == 3
    assert request.start == pytest.approx(1.0 - EngineConfig().pre_roll_s)
    assert [c.kind for c in stream.captions] == ["partial"]
    assert stream.captions[0].text == "waa wab"


def test_two_agreeing_passes_make_words_final_and_force_them_as_prefix() -> None:
    """Words two passes agree on become final, and the next pass gets them as its forced prefix."""
    words = spoken(1.0, 20)
    core = EngineCore()
    stream = Stream(core, ScriptedSpeech(words), spans=[(1.0, 9.0)])
    stream.play(5.0)
    assert finals(stream.captions).startswith("waa wab")
    last = stream.requests[-1]
    assert last.prefix is not None and last.prefix.startswith("waa wab")
    # The scripted decoder says only what follows the prefix, and nothing is final twice.
    text = finals(stream.captions).split()
    assert len(text) == len(set(text))


def test_passes_over_a_short_window_show_partials_but_commit_nothing() -> None:
    """Below `min_commit_window_s` of audio, agreeing passes only show partials; the first pass
    over a long enough window commits what it shares with the one before. With the rule off, the
    second pass already commits."""
    words = spoken(1.0, 20)
    config = EngineConfig(min_commit_window_s=2.0)
    stream = Stream(EngineCore(config=config), ScriptedSpeech(words), spans=[(1.0, 9.0)])
    stream.play(5.0)
    first_final = next(
        i for i, (_, captions) in enumerate(stream.by_request) if any(c.kind == "final" for c in captions)
    )
    assert first_final >= 2, "no short pass before the first commit"
    for request, captions in stream.by_request[:first_final]:
        assert request.end - request.start < config.min_commit_window_s
        assert [c.kind for c in captions] == ["partial"]
    request, _ = stream.by_request[first_final]
    assert request.end - request.start >= config.min_commit_window_s
    assert finals(stream.captions).startswith("waa wab")

    eager = Stream(EngineCore(config=EngineConfig(min_commit_window_s=0.0)), ScriptedSpeech(words), spans=[(1.0, 9.0)])
    eager.play(5.0)
    assert any(c.kind == "final" for c in eager.by_request[1][1])


def test_a_closed_utterance_heard_by_the_last_partial_becomes_final_without_a_pass() -> None:
    """When the last partial pass already ran past the utterance's end, its words become the final."""
    words = spoken(1.0, 4)  # ends at 2.55
    core = EngineCore(config=EngineConfig(min_step_s=0.5))
    stream = Stream(core, ScriptedSpeech(words), spans=[(1.0, 2.6)])
    stream.play(5.0)
    stats = core.stats()
    assert stats.final_passes == 0 and stats.finals_from_partials == 1
    assert finals(stream.captions) == words_text(words)
    assert stream.captions[-1].kind == "final"


def test_a_closed_utterance_not_fully_heard_gets_a_final_pass() -> None:
    """An utterance that ended after the last partial pass is decoded once more, with the final beam."""
    words = spoken(1.0, 5)  # ends at 2.95
    core = EngineCore(config=EngineConfig(min_step_s=5.0, final_beam_size=4))
    stream = Stream(core, ScriptedSpeech(words), spans=[(1.0, 3.0)])
    stream.play(4.0)
    final = [r for r in stream.requests if r.kind == "final"]
    assert len(final) == 1 and final[0].end_of_utterance and final[0].beam_size == 4
    assert final[0].end == pytest.approx(3.0 + EngineConfig().end_pad_s)
    assert finals(stream.captions) == words_text(words)
    assert core.stats().lag_s == 0.0


def test_partials_go_greedy_then_are_skipped_when_behind_live() -> None:
    """Behind live by more than greedy_lag_s a partial pass is greedy; beyond degrade_lag_s it is skipped."""
    words = spoken(0.0, 20)
    core = EngineCore()
    stream = Stream(core, ScriptedSpeech(words), spans=[(0.0, 8.0)])
    stream.advance(2.5, answer=False)  # 2.5 s unsettled: beyond greedy_lag_s (2.0)
    request = core.next_request()
    assert request is not None and request.kind == "partial" and request.beam_size == 1
    assert core.stats().greedy_passes == 1
    core.fail(request)

    core = EngineCore()
    stream = Stream(core, ScriptedSpeech(words), spans=[(0.0, 8.0)])
    stream.advance(3.5, answer=False)  # beyond degrade_lag_s (3.0)
    assert core.next_request() is None
    assert core.stats().partials_skipped == 1


def test_finals_go_greedy_when_behind_but_are_never_skipped() -> None:
    """A closed utterance far behind live still gets its final pass, greedy."""
    words = spoken(0.0, 5)
    core = EngineCore()
    stream = Stream(core, ScriptedSpeech(words), spans=[(0.0, 2.0)])
    stream.advance(6.0, answer=False)
    request = core.next_request()
    assert request is not None and request.kind == "final" and request.beam_size == 1
    core.complete(request, stream.speech(request))
    assert finals(core.take_captions()) == words_text(words)


def test_words_pending_too_long_are_committed_without_agreement() -> None:
    """Passes that never agree still make words final once they are max_pending_s old, and only those."""
    words = spoken(1.0, 30)
    config = EngineConfig()
    core = EngineCore(config=config)
    stream = Stream(core, ScriptedSpeech(words, variant=True), spans=[(1.0, 14.0)])
    stream.play(6.0)
    committed = [c for c in stream.captions if c.kind == "final"]
    assert committed, "no word was forced final"
    for request, captions in stream.by_request:
        for caption in captions:
            if caption.kind == "final":
                assert request.settle_before is not None and caption.end <= request.settle_before + 1e-6
    assert max(c.end for c in committed) <= stream.now - config.max_pending_s + 1e-6


def test_a_long_buffer_is_cut_at_a_committed_word_keeping_some_as_context() -> None:
    """Past trim_after_s the buffer starts at the end of a committed word, keep_committed_s before the last final."""
    words = spoken(1.0, 60)
    config = EngineConfig()
    core = EngineCore(config=config)
    stream = Stream(core, ScriptedSpeech(words), spans=[(1.0, 25.0)])
    stream.play(12.0)
    start = core.buffer_start
    assert start > 1.0
    assert any(abs(w.end - start) < 1e-3 for w in words), "cut is not at a word end"
    last_final = max(c.end for c in stream.captions if c.kind == "final")
    assert start <= last_final - config.keep_committed_s + 1e-6
    assert core.buffered_s <= config.trim_after_s + config.min_step_s + 1.0


def test_a_buffer_that_never_agrees_is_forced_and_cut() -> None:
    """With no words for max_buffer_s, a greedy forced pass commits by time and the buffer shrinks."""
    words = spoken(1.0, 60)
    config = EngineConfig()
    core = EngineCore(config=config)
    speech = ScriptedSpeech(words)
    stream = Stream(core, speech, spans=[(1.0, 30.0)])
    speech.words = []  # the decoder hears nothing: no agreement, no settling
    stream.play(1.0 + config.max_buffer_s - 0.5)
    assert all(r.kind == "partial" for r in stream.requests)
    speech.words = words
    stream.play(1.0 + config.max_buffer_s + 1.0)
    forced = [r for r in stream.requests if r.kind == "forced"]
    assert len(forced) == 1
    assert forced[0].beam_size == 1
    assert forced[0].commit_until == pytest.approx(forced[0].end - config.force_margin_s)
    assert core.buffer_start > forced[0].start
    assert finals(stream.captions).startswith("waa wab")
    assert core.stats().forced_passes == 1


def test_a_hallucinated_pass_is_rejected_and_shows_nothing() -> None:
    """A pass that says a known silence hallucination, or is too unsure, puts nothing on screen."""
    for speech in (
        ScriptedSpeech(spoken(1.0, 5), text=" Thanks for watching!"),
        ScriptedSpeech(spoken(1.0, 5), avg_logprob=-2.0),
        ScriptedSpeech(spoken(1.0, 5), no_speech_prob=0.9, avg_logprob=-1.1),
    ):
        core = EngineCore()
        stream = Stream(core, speech, spans=[(1.0, 3.0)])
        stream.play(5.0)
        stream.finish()
        assert [c for c in stream.captions if c.text] == []
        assert core.stats().rejected_passes == len(stream.requests) > 0


def test_a_decoder_loop_is_cut_to_one_copy() -> None:
    """A pass that loops on a phrase has the repeats removed before anything is shown."""
    core = EngineCore()
    speech = ScriptedSpeech(spoken(1.0, 5), text=" and so on and so on and so on and so on")
    stream = Stream(core, speech, spans=[(1.0, 3.0)])
    stream.play(5.0)
    assert finals(stream.captions) == "and so on"


def test_flush_makes_the_ongoing_utterance_final() -> None:
    """End of stream closes the utterance in progress: a final pass makes every word final, lag returns to 0."""
    words = spoken(1.0, 6)
    core = EngineCore(config=EngineConfig(min_step_s=5.0))
    stream = Stream(core, ScriptedSpeech(words), spans=[(1.0, 3.5)])
    stream.play(3.5)
    assert finals(stream.captions) == ""
    stream.finish()
    assert finals(stream.captions) == words_text(words)
    assert stream.requests[-1].kind == "final"
    assert core.next_request() is None
    assert core.stats().lag_s == 0.0


def test_each_utterance_gets_its_own_segment_and_context_stops_at_a_long_pause() -> None:
    """Two utterances 3 s apart are two segments, and the second pass gets no context from the first."""
    first, second = spoken(1.0, 4, prefix="a"), spoken(6.0, 4, prefix="b")
    core = EngineCore(segment_prefix="s-")
    stream = Stream(core, ScriptedSpeech(first + second), spans=[(1.0, 2.6), (6.0, 7.6)])
    stream.play(10.0)
    segments = {c.segment_id for c in stream.captions if c.kind == "final"}
    assert segments == {"s-0", "s-1"}
    later = [r for r in stream.requests if r.start > 5.0]
    assert later and all(r.initial_prompt is None for r in later)


def test_only_one_request_is_in_flight() -> None:
    """Asking for work while a decode is outstanding is refused."""
    core = EngineCore()
    stream = Stream(core, ScriptedSpeech(spoken(0.0, 5)), spans=[(0.0, 3.0)])
    stream.advance(1.0, answer=False)
    request = core.next_request()
    assert request is not None
    with pytest.raises(RuntimeError):
        core.next_request()
    core.complete(request, stream.speech(request))
    assert core.in_flight is None


def test_a_failed_final_pass_is_counted_and_the_next_utterance_still_gets_captions() -> None:
    """A decode error on a final drops that utterance's pending words; the next utterance is captioned."""
    first, second = spoken(1.0, 4, prefix="a"), spoken(6.0, 4, prefix="b")
    core = EngineCore(config=EngineConfig(min_step_s=10.0))
    stream = Stream(core, ScriptedSpeech(first + second), spans=[(1.0, 2.6), (6.0, 7.6)])
    stream.play(1.5)
    stream.advance(2.0, answer=False)
    request = core.next_request()
    while request is not None and request.kind != "final":
        core.complete(request, stream.speech(request))
        request = core.next_request()
    assert request is not None
    core.fail(request)
    assert core.stats().errors == 1
    stream.play(10.0)
    assert finals(stream.captions) == words_text(second)


def test_timeline_overlap_is_dropped_short_gaps_filled_long_jumps_restart() -> None:
    """A re-sent chunk keeps only its new samples; a 1 s gap becomes silence; a 60 s jump asks for a restart."""
    core = EngineCore()
    assert core.place(np.ones(SR, dtype=np.float32), 5.0).restart
    core.restart(5.0)
    core.append(np.ones(SR, dtype=np.float32))
    overlap = core.place(np.ones(SR, dtype=np.float32), 5.5)
    assert not overlap.restart and len(overlap.samples) == SR // 2
    gap = core.place(np.ones(SR, dtype=np.float32), 7.0)
    assert not gap.restart and len(gap.samples) == 2 * SR and not gap.samples[: SR // 2].any()
    assert core.place(np.ones(SR, dtype=np.float32), 66.0).restart


def test_vocabulary_is_bounded_and_clean() -> None:
    """Agenda terms are cleaned, de-duplicated and cut at a term boundary to vocabulary_chars."""
    core = EngineCore()
    terms = ["ร่าง\u200bพระราชบัญญัติงบประมาณ", "ร่างพระราชบัญญัติงบประมาณ", *[f"มาตรา {i}" for i in range(100)]]
    core.set_vocabulary(terms)
    assert core.vocabulary.startswith("ร่างพระราชบัญญัติงบประมาณ, มาตรา 0, ")
    assert core.vocabulary.count("ร่างพระราชบัญญัติ") == 1
    assert len(core.vocabulary) <= EngineConfig().vocabulary_chars


def test_stats_count_where_the_decoder_time_goes() -> None:
    """Passes, decoded audio seconds and compute are counted per pass kind."""
    words = spoken(1.0, 10)
    core = EngineCore()
    stream = Stream(core, ScriptedSpeech(words, compute_s=0.25), spans=[(1.0, 4.9)])
    stream.play(8.0)
    stats = core.stats()
    assert stats.passes == len(stream.requests) == stats.partial_passes + stats.final_passes + stats.forced_passes
    assert stats.decode_s == pytest.approx(0.25 * stats.passes)
    assert stats.window_s == pytest.approx(sum(r.end - r.start for r in stream.requests))
    assert stats.audio_s == pytest.approx(8.0)


# -- the async driver ---------------------------------------------------------------------------


class EnergyDetector:
    """A stand-in VAD: a 512-sample window is speech when its peak is above 0.1; records its threads."""

    def __init__(self, config: VadConfig, origin: float) -> None:
        self.origin, self.done = origin, 0
        self.start: float | None = None
        self.silence: float | None = None
        self.closed: list[SpeechSpan] = []
        self.threads: set[int] = set()
        DETECTORS.append(self)

    @property
    def processed_until(self) -> float:
        return self.origin + self.done * 512 / SR

    @property
    def ongoing(self) -> SpeechSpan | None:
        return None if self.start is None else SpeechSpan(self.start, None)

    def accept(self, samples: np.ndarray) -> None:
        self.threads.add(threading.get_ident())
        for i in range(0, len(samples) - 511, 512):
            t = self.processed_until
            self.done += 1
            loud = float(np.abs(samples[i : i + 512]).max()) > 0.1
            if loud:
                self.silence = None
                if self.start is None:
                    self.start = t
            elif self.start is not None:
                self.silence = t if self.silence is None else self.silence
                if self.processed_until - self.silence >= END_SILENCE_S:
                    self.closed.append(SpeechSpan(self.start, self.silence))
                    self.start = self.silence = None

    def take_closed(self) -> list[SpeechSpan]:
        out, self.closed = self.closed, []
        return out

    def close(self) -> list[SpeechSpan]:
        if self.start is not None:
            self.closed.append(SpeechSpan(self.start, self.silence or self.processed_until))
            self.start = None
        return self.take_closed()


DETECTORS: list[EnergyDetector] = []


class AsyncScript:
    """The Transcriber protocol over a ScriptedSpeech, reading media time from the audio (see `timed_audio`);
    fails the calls listed in `fail_on`."""

    def __init__(self, speech: ScriptedSpeech, fail_on: Sequence[int] = ()) -> None:
        self.speech, self.fail_on, self.calls = speech, set(fail_on), 0

    async def transcribe(
        self,
        audio: np.ndarray,
        *,
        language: str = "th",
        initial_prompt: str | None = None,
        hotwords: str | None = None,
        prefix: str | None = None,
        beam_size: int = 1,
        max_new_tokens: int | None = None,
    ) -> Transcript:
        self.calls += 1
        await asyncio.sleep(0)
        if self.calls in self.fail_on:
            raise RuntimeError("decoder fell over")
        start = media_time(float(audio[0]))
        last = prefix.split()[-1] if prefix else None
        after = next((w.end for w in self.speech.words if w.text == last), None)
        return self.speech.hear(start, start + len(audio) / SR, after, language)


def timed_audio(spans: Sequence[tuple[float, float]], total: float) -> np.ndarray:
    """Audio whose every sample says its media time: t/1000 in silence (far below the detector's
    0.1), 0.5 + t/1000 in speech."""
    t = np.arange(round(total * SR), dtype=np.float64) / SR
    audio = t / 1000
    for start, end in spans:
        audio[round(start * SR) : round(end * SR)] += 0.5
    return audio.astype(np.float32)


def media_time(sample: float) -> float:
    return round((sample - 0.5 if sample >= 0.5 else sample) * 1000, 3)


async def run_engine(
    speech: ScriptedSpeech, audio: np.ndarray, fail_on: Sequence[int] = ()
) -> tuple[list[Caption], EngineStats]:
    """Play `audio` through a CaptionEngine with the stand-in VAD and scripted transcriber, then close it."""
    captions: list[Caption] = []

    async def collect(c: Caption) -> None:
        captions.append(c)

    DETECTORS.clear()
    engine = CaptionEngine(
        AsyncScript(speech, fail_on),
        language="en",
        on_caption=collect,
        segment_prefix="d-",
        detector_factory=EnergyDetector,
    )
    for i in range(0, len(audio), SR // 2):
        await engine.feed(audio[i : i + SR // 2], i / SR)
        await asyncio.sleep(0.001)
    await engine.close()
    return captions, engine.stats()


async def test_driver_runs_the_vad_off_the_event_loop_and_delivers_finals() -> None:
    """The engine classifies audio on a worker thread, decodes through the Transcriber and emits the finals."""
    words = spoken(1.0, 6)
    captions, stats = await run_engine(ScriptedSpeech(words), timed_audio([(1.0, 3.4)], 6.0))
    assert finals(captions) == words_text(words)
    assert {c.segment_id for c in captions} == {"d-0"}
    assert threading.get_ident() not in DETECTORS[0].threads and DETECTORS[0].threads
    assert stats.errors == 0 and stats.passes >= 1


async def test_driver_counts_a_failed_pass_and_keeps_captioning() -> None:
    """A transcriber error is logged and counted; later utterances are still captioned."""
    first, second = spoken(1.0, 4, prefix="a"), spoken(5.0, 4, prefix="b")
    speech = ScriptedSpeech(first + second)
    captions, stats = await run_engine(speech, timed_audio([(1.0, 2.6), (5.0, 6.6)], 9.0), fail_on=[1])
    assert stats.errors == 1
    assert words_text(second) in finals(captions)


def test_stream_helper_sanity() -> None:
    """The scripted VAD reports an utterance closed only after END_SILENCE_S of silence."""
    core = EngineCore()
    stream = Stream(core, ScriptedSpeech([]), spans=[(1.0, 2.0)])
    stream.now = 2.4
    assert stream.vad()[0] == [] and stream.vad()[1] == SpeechSpan(1.0, None)
    stream.now = 2.5
    assert stream.vad()[0] == [SpeechSpan(1.0, 2.0)]
