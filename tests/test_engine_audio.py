"""CaptionEngine end to end on real audio with the real model, fed as fast as possible."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from faster_whisper import decode_audio

from transcribe.engine import Caption, CaptionEngine, EngineStats
from transcribe.model import ModelSettings, SharedModel, load_model
from transcribe.model_files import DEFAULT_CACHE_DIR
from transcribe.text import clean, has_thai, join_text

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/data")
SAMPLE_RATE = 16_000


@pytest.fixture(scope="session")
def shared_model() -> Iterator[SharedModel]:
    """One whisper model for the whole test session, as in the service."""
    settings = ModelSettings.from_env()
    if settings.model_dir is None and settings.cache_dir == DEFAULT_CACHE_DIR:
        settings = dataclasses.replace(settings, cache_dir=REPO / DEFAULT_CACHE_DIR)
    model = load_model(settings)
    yield model
    model.close()


async def caption(
    model: SharedModel, audio: np.ndarray, language: str, *, start: float = 0.0, chunk_s: float = 0.5
) -> tuple[list[Caption], EngineStats]:
    """Feed `audio` in `chunk_s` chunks without pacing, flush, and return every caption and the stats."""
    captions: list[Caption] = []

    async def collect(c: Caption) -> None:
        captions.append(c)

    engine = CaptionEngine(model, language=language, on_caption=collect, segment_prefix="t-")
    step = int(chunk_s * SAMPLE_RATE)
    for i in range(0, len(audio), step):
        await engine.feed(audio[i : i + step], start + i / SAMPLE_RATE)
    await engine.close()
    return captions, engine.stats()


def finals(captions: list[Caption]) -> str:
    """The final captions joined as a viewer would read them."""
    text = ""
    for c in captions:
        if c.kind == "final":
            text = join_text(text, c.text)
    return text


def words_only(text: str) -> str:
    """Lowercase words separated by single spaces, punctuation dropped."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def assert_well_formed(captions: list[Caption], duration: float, start: float = 0.0) -> None:
    """Partials come before finals; finals move forward in time inside the audio; text is clean."""
    kinds = [c.kind for c in captions]
    assert "partial" in kinds and "final" in kinds
    assert kinds.index("partial") < kinds.index("final")
    last_end = start
    for c in captions:
        assert c.text == clean(c.text)
        assert start <= c.start <= c.end <= start + duration + 1e-6
        if c.kind == "final":
            assert c.text
            assert c.start >= last_end - 1e-6
            last_end = c.end


async def test_english_speech_gives_the_spoken_words_as_finals(shared_model: SharedModel) -> None:
    """The JFK clip yields partials, then finals containing "ask not what your country can do for you"."""
    audio = decode_audio(str(DATA / "audio/en/jfk.flac"))
    captions, stats = await caption(shared_model, audio, "en")
    assert "ask not what your country can do for you" in words_only(finals(captions))
    assert_well_formed(captions, len(audio) / SAMPLE_RATE)
    # Fed far faster than real time: passes were coalesced, and the engine said it degraded.
    assert stats.passes < len(audio) / (0.5 * SAMPLE_RATE)
    assert stats.greedy_passes + stats.partials_skipped > 0
    assert stats.lag_s == 0.0 and stats.errors == 0


async def test_thai_speech_gives_thai_finals(shared_model: SharedModel) -> None:
    """A real Thai Common Voice clip yields Thai partials and finals."""
    audio = decode_audio(str(DATA / "audio/th/cv7_th_25686161.wav"))
    captions, _ = await caption(shared_model, audio, "th")
    assert has_thai(finals(captions))
    assert_well_formed(captions, len(audio) / SAMPLE_RATE)


async def test_resampled_stereo_thai_keeps_media_times(shared_model: SharedModel) -> None:
    """A resampled 22.05 kHz stereo clip fed from media time 100 s gets Thai finals timed inside it."""
    audio = decode_audio(str(DATA / "audio/th_provenance_uncertain/f5th_ref_gen_2.wav"))
    captions, _ = await caption(shared_model, audio, "th", start=100.0)
    assert has_thai(finals(captions))
    assert_well_formed(captions, len(audio) / SAMPLE_RATE, start=100.0)


async def test_silence_gives_no_caption(shared_model: SharedModel) -> None:
    """Ten seconds of digital silence produce no caption at all and no decoding pass."""
    captions, stats = await caption(shared_model, np.zeros(10 * SAMPLE_RATE, dtype=np.float32), "th")
    assert captions == []
    assert stats.passes == 0


async def test_white_noise_gives_no_caption(shared_model: SharedModel) -> None:
    """Ten seconds of loud white noise produce no caption at all."""
    noise = np.random.default_rng(0).normal(0.0, 0.2, 10 * SAMPLE_RATE).astype(np.float32)
    captions, _ = await caption(shared_model, noise, "th")
    assert captions == []


async def test_chimes_give_no_caption(shared_model: SharedModel) -> None:
    """A session bell (decaying 880 Hz chimes every two seconds) produces no caption at all."""
    t = np.arange(10 * SAMPLE_RATE) / SAMPLE_RATE
    since = t % 2.0
    tones = sum(a * np.sin(2 * np.pi * f * since) for a, f in ((1.0, 880), (0.5, 1320), (0.3, 1760)))
    chimes = (0.3 * np.exp(-3 * since) * tones).astype(np.float32)
    captions, _ = await caption(shared_model, chimes, "th")
    assert captions == []


async def test_a_jump_in_the_timeline_closes_the_utterance(shared_model: SharedModel) -> None:
    """Audio resuming 60 s later finalises what came before and times the rest from the new media time."""
    audio = decode_audio(str(DATA / "audio/en/jfk.flac"))
    captions: list[Caption] = []

    async def collect(c: Caption) -> None:
        captions.append(c)

    engine = CaptionEngine(shared_model, language="en", on_caption=collect)
    await engine.feed(audio[: 3 * SAMPLE_RATE], 0.0)
    await engine.feed(audio[3 * SAMPLE_RATE :], 63.0)
    await engine.close()
    before = [c for c in captions if c.kind == "final" and c.end <= 3.0]
    after = [c for c in captions if c.kind == "final" and c.start >= 63.0]
    assert "fellow americans" in words_only(" ".join(c.text for c in before))
    assert "what you can do for your country" in words_only(" ".join(c.text for c in after))


def test_vocabulary_is_bounded_and_clean(shared_model: SharedModel) -> None:
    """Agenda terms are cleaned, de-duplicated and cut at a term boundary to the configured size."""

    async def ignore(c: Caption) -> None:
        return None

    engine = CaptionEngine(shared_model, on_caption=ignore)
    terms = ["ร่าง\u200bพระราชบัญญัติงบประมาณ", "ร่างพระราชบัญญัติงบประมาณ", *[f"มาตรา {i}" for i in range(100)]]
    engine.set_vocabulary(terms)
    assert engine.vocabulary.startswith("ร่างพระราชบัญญัติงบประมาณ, มาตรา 0, ")
    assert engine.vocabulary.count("ร่างพระราชบัญญัติ") == 1
    assert len(engine.vocabulary) <= 160
    assert engine.vocabulary.endswith(tuple("0123456789"))
