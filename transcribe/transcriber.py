"""What a caption engine needs of a speech recogniser, and what one decoding pass returns.

`model.SharedModel` is the real implementation (whisper on a worker thread); tests pass a scripted
one. Kept apart from `model` so the engine's logic can be imported and tested without the model.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["Transcriber", "Transcript", "TranscribedWord", "compression_ratio"]


@dataclass(frozen=True, slots=True)
class TranscribedWord:
    """A decoded word (Thai: a fragment that is complete Unicode) with times in seconds from the
    start of the audio passed in."""

    text: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True, slots=True)
class Transcript:
    """Result of one decoding pass over one window of audio (the continuation after `prefix`)."""

    text: str
    words: tuple[TranscribedWord, ...]
    language: str
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    tokens: int
    duration: float
    compute_s: float


def compression_ratio(text: str) -> float:
    """zlib compression ratio of `text`: high for repetition loops (whisper's own measure)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


class Transcriber(Protocol):
    """Decodes one window of audio; shared by every feed of the process.

    Contract:
    * `audio` is 16 kHz mono float32, at most 30 s; word times in the result are seconds from
      its first sample, within its duration.
    * `prefix` (text already committed for this audio) is forced as the start of the output and is
      not part of the result; `initial_prompt` (recent transcript) and `hotwords` (agenda terms)
      are context before the start token and are never part of the result.
    * At most `max_new_tokens` tokens are generated; `beam_size` 1 is greedy.
    * `compute_s` is the time the pass took: the engine paces partial passes by it.
    * It must not block the event loop (run the model on a worker), and it may raise: the engine
      counts the error and drops that pass.
    """

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
    ) -> Transcript: ...
