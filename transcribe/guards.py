"""Hallucination guards: decide whether a decoding pass heard speech or invented text.

Whisper fills silence, noise and cut-off audio with fluent text it saw often in training
(subtitle credits, "thank you for watching") and sometimes loops on a phrase until it runs out
of tokens. A caption service must never put those on screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from transcribe.text import Unit, unit_key


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """Thresholds, in whisper's own terms."""

    # Whisper's "no speech" rule: high no-speech probability and low confidence together.
    no_speech_prob: float = 0.6
    no_speech_logprob: float = -1.0
    # Below this mean token log-probability the text is guesswork.
    min_avg_logprob: float = -1.2
    # zlib ratio above which text is a repetition loop (whisper's default).
    max_compression_ratio: float = 2.4
    # The same stretch of up to max_loop_chars characters repeated this many times is a loop...
    loop_repeats: int = 3
    max_loop_chars: int = 60
    # ...and so is a stretch this long said twice in a row (people do not, decoders do).
    long_phrase_chars: int = 16


# Whole-pass texts (as agreement keys) that whisper produces over silence, music or applause.
# Never legitimate in a sitting: always dropped.
ALWAYS_HALLUCINATED: frozenset[str] = frozenset(
    unit_key(t)
    for t in (
        "ขอบคุณที่รับชม",
        "ขอบคุณที่ติดตามชม",
        "ขอบคุณสําหรับการรับชม",
        "ขอบคุณสำหรับการรับชม",
        "ฝากกดติดตามด้วยนะครับ",
        "ฝากกดติดตามด้วยนะคะ",
        "กดติดตาม",
        "ซับไทย",
        "คำบรรยายไทย",
        "โปรดติดตามตอนต่อไป",
        "แล้วพบกันใหม่",
        "Thanks for watching!",
        "Thank you for watching.",
        "Please subscribe.",
        "Subtitles by the Amara.org community",
        "ซับไทยโดย",
    )
)
# Legitimate when said, but also whisper's favourite fillers for silence: dropped only when
# the pass itself doubts there was speech.
SUSPECT_WHEN_UNSURE: frozenset[str] = frozenset(
    unit_key(t) for t in ("ขอบคุณครับ", "ขอบคุณค่ะ", "ขอบคุณ", "Thank you.", "Thank you very much.", "you", "Bye.")
)
_UNSURE_NO_SPEECH = 0.3
_UNSURE_LOGPROB = -0.7


def collapse_loops(
    units: Sequence[Unit], config: GuardConfig = GuardConfig(), *, context: Sequence[Unit] = ()
) -> tuple[Unit, ...]:
    """Keep one copy of any stretch of `units` that repeats back to back like a decoder loop.

    `context` is text already committed just before `units` (the decoder prefix): it is never
    changed, but a loop may start in it, as when the decoder says the prefix again.

    Repetition is found on the characters of the agreement keys, not on words: newmm segments
    a looping Thai fragment differently from copy to copy, or swallows the whole loop as one
    unknown word ("น้อกน้อกน้อก"). A stretch of up to `max_loop_chars` repeated `loop_repeats`
    times or more, or of at least `long_phrase_chars` repeated at all, loses every copy but the
    first. Digits never loop (1,000,000 is not a loop).
    """
    keys = [u.key for u in units]
    offset = sum(len(u.key) for u in context)
    removed = {i for i in _loop_copies("".join(u.key for u in context) + "".join(keys), config) if i >= offset}
    if not removed:
        return tuple(units)
    kept: list[Unit] = []
    for unit, key in zip(units, keys, strict=True):
        span = range(offset, offset + len(key))
        offset += len(key)
        gone = [i for i in span if i in removed]
        if not gone:
            kept.append(unit)
        elif len(gone) < len(key) and unit.text == key:
            text = "".join(ch for i, ch in zip(span, key, strict=True) if i not in removed)
            kept.append(replace(unit, text=text))
        elif len(gone) < len(key):
            kept.append(unit)
    return tuple(kept)


def _loop_copies(text: str, config: GuardConfig) -> set[int]:
    """Offsets in `text` of the characters of every loop copy after the first."""
    removed: set[int] = set()
    at = 0
    while at < len(text):
        found = None
        for period in range(1, min(config.max_loop_chars, (len(text) - at) // 2) + 1):
            block = text[at : at + period]
            if text[at + period : at + 2 * period] != block or block.isdigit():
                continue
            repeats = 2
            while text.startswith(block, at + repeats * period):
                repeats += 1
            if repeats >= config.loop_repeats or period >= config.long_phrase_chars:
                found = (period, repeats)
                break
        if found is None:
            at += 1
            continue
        period, repeats = found
        removed.update(range(at + period, at + repeats * period))
        at += repeats * period
    return removed


def rejection_reason(
    text: str,
    *,
    avg_logprob: float,
    no_speech_prob: float,
    compression_ratio: float,
    config: GuardConfig = GuardConfig(),
) -> str | None:
    """Why a pass with these scores must be discarded, or None when it looks like real speech.

    `compression_ratio` should be measured after `collapse_loops`, so a loop that was cut back to
    one copy does not condemn the words before it.
    """
    if no_speech_prob > config.no_speech_prob and avg_logprob < config.no_speech_logprob:
        return "no_speech"
    if avg_logprob < config.min_avg_logprob:
        return "low_logprob"
    if compression_ratio > config.max_compression_ratio:
        return "repetition"
    key = unit_key(text)
    if not key:
        # Only punctuation or symbols (a lone "♪" over music): nothing was said.
        return "no_words"
    if key in ALWAYS_HALLUCINATED:
        return "known_hallucination"
    if key in SUSPECT_WHEN_UNSURE and (no_speech_prob > _UNSURE_NO_SPEECH or avg_logprob < _UNSURE_LOGPROB):
        return "known_hallucination"
    return None
