"""The one whisper model of the process, shared by every live feed, run off the event loop.

One CTranslate2 model uses all the cores it is given, so two decodes at once would only fight
for them: every call goes through a single worker thread, and feeds take turns.

Decoding is done here rather than through `WhisperModel.transcribe`, whose seek loop re-decodes
the tail of a window after word alignment (a second full pass for every live update) and always
pads the encoder input to 30 s. A live buffer is a few seconds long, so the encoder gets the
buffer plus a silence tail (at least 10 s in all), which costs a fraction of a 30 s window.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens
from faster_whisper.vad import get_vad_model

from transcribe.model_files import (
    DEFAULT_CACHE_DIR,
    ModelError,
    assemble_model,
    check_explicit_dir,
)
from transcribe.text import TimedPiece, has_thai, segment_units
from transcribe.transcriber import TranscribedWord, Transcript, compression_ratio

__all__ = [
    "ModelError",
    "ModelSettings",
    "SharedModel",
    "Transcript",
    "TranscribedWord",
    "compression_ratio",
    "load_model",
]

SAMPLE_RATE = 16_000
_HOP = 160
# The encoder halves the frame rate; inputs are padded to a multiple of this many frames.
_FRAME_QUANTUM = 100
_MAX_FRAMES = 3000
_MAX_LENGTH = 448
_TOKENS_PER_SECOND = 50
# The encoder gets the audio plus at least this much silence, and never less than
# _MIN_FRAMES (10 s). Whisper was trained on 30 s windows padded with silence; cut to a
# shorter input it tends to loop on its output or say the whole utterance again. On the
# development clips (Thai and English, cut mid-speech and with forced prefixes) a 0.5 s tail gave
# loops in 7 of 38 buffers, a 2 s tail none of those, and a 10 s floor removed the remaining
# whole-utterance repeats (5 of 120 prefix-forced passes with no floor, 0 at 10 s) for about
# 10% more compute; a full 30 s window costs 3-4x more.
_TAIL_PAD_S = 2.0
_MIN_FRAMES = 1000


def default_cpu_threads() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Where the model comes from and how it runs.

    Env: WHISPER_MODEL (a faster-whisper model directory to use instead of the bundled
    whisper-base; no checksum), WHISPER_CACHE_DIR (where whisper-base is assembled, default
    ./var/models/whisper-base), WHISPER_CPU_THREADS (default: all cores), WHISPER_COMPUTE_TYPE
    (default int8).
    """

    model_dir: Path | None = None
    cache_dir: Path = DEFAULT_CACHE_DIR
    cpu_threads: int = field(default_factory=default_cpu_threads)
    compute_type: str = "int8"
    device: str = "cpu"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ModelSettings:
        """Settings from environment variables (see the class docstring)."""
        env = os.environ if environ is None else environ
        threads = env.get("WHISPER_CPU_THREADS", "").strip()
        try:
            cpu_threads = int(threads) if threads else default_cpu_threads()
        except ValueError:
            raise ModelError(f"WHISPER_CPU_THREADS={threads!r} is not a whole number; set it to e.g. 2.") from None
        return cls(
            model_dir=Path(env["WHISPER_MODEL"]) if env.get("WHISPER_MODEL") else None,
            cache_dir=Path(env.get("WHISPER_CACHE_DIR") or DEFAULT_CACHE_DIR),
            cpu_threads=max(1, cpu_threads),
            compute_type=env.get("WHISPER_COMPUTE_TYPE") or "int8",
        )


def resolve_model_dir(settings: ModelSettings) -> Path:
    """The verified model directory for `settings` (assembling whisper-base if needed)."""
    if settings.model_dir is not None:
        return check_explicit_dir(settings.model_dir)
    return assemble_model(settings.cache_dir)


def generation_max_length(context: int, prefix: int, new_tokens: int) -> int:
    """CTranslate2 `max_length` that lets whisper produce `prefix` + `new_tokens` tokens.

    Measured on ctranslate2 4.8: a Whisper generation returns min(max_length / 2,
    max_length - context + 1) tokens, counting the forced prefix, where `context` is every
    prompt token before the prefix (previous text and the start sequence).
    """
    wanted = prefix + new_tokens
    return min(_MAX_LENGTH, max(2 * wanted, wanted + context - 1))


class SharedModel:
    """A loaded whisper model plus the single worker thread that all inference goes through."""

    def __init__(self, whisper: WhisperModel, *, model_dir: Path, cpu_threads: int) -> None:
        self._whisper = whisper
        self.model_dir = model_dir
        self.cpu_threads = cpu_threads
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")
        self._tokenizers: dict[str, Tokenizer] = {}

    @property
    def whisper(self) -> WhisperModel:
        """The underlying faster-whisper model (for offline use on the caller's thread)."""
        return self._whisper

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
        word_timestamps: bool = True,
        full_window: bool = False,
    ) -> Transcript:
        """Decode `audio` (16 kHz mono float32, at most 30 s) on the model thread.

        Temperature 0 only: live captions cannot afford fallback re-decodes; the caller filters
        bad passes instead. `initial_prompt` (recent transcript) and `hotwords` (agenda terms) go
        before the start token as context; `prefix` forces the start of the output (text already
        committed for this audio) and is not part of the result. `full_window` pads the encoder
        input to 30 s as in offline whisper.
        """
        loop = asyncio.get_running_loop()
        call = partial(
            self.transcribe_sync,
            audio,
            language=language,
            initial_prompt=initial_prompt,
            hotwords=hotwords,
            prefix=prefix,
            beam_size=beam_size,
            max_new_tokens=max_new_tokens,
            word_timestamps=word_timestamps,
            full_window=full_window,
        )
        return await loop.run_in_executor(self._executor, call)

    def transcribe_sync(
        self,
        audio: np.ndarray,
        *,
        language: str = "th",
        initial_prompt: str | None = None,
        hotwords: str | None = None,
        prefix: str | None = None,
        beam_size: int = 1,
        max_new_tokens: int | None = None,
        word_timestamps: bool = True,
        full_window: bool = False,
    ) -> Transcript:
        """`transcribe` on the calling thread (offline tools; never call it from the event loop)."""
        started = time.perf_counter()
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)[: 30 * SAMPLE_RATE]
        duration = len(audio) / SAMPLE_RATE
        tokenizer = self._tokenizer(language)
        features, content_frames = self._features(audio, full_window)
        encoded = self._whisper.encode(features)

        prompt = self._context_tokens(tokenizer, initial_prompt, hotwords)
        prompt += list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
        prefix_tokens = self._prefix_tokens(tokenizer, prefix)
        prompt += prefix_tokens
        budget = _MAX_LENGTH // 2 - len(prefix_tokens)
        new_tokens = budget if max_new_tokens is None else max(1, min(max_new_tokens, budget))
        result = self._whisper.model.generate(
            encoded,
            [prompt],
            beam_size=beam_size,
            max_length=generation_max_length(len(prompt) - len(prefix_tokens), len(prefix_tokens), new_tokens),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        )[0]
        tokens = list(result.sequences_ids[0])
        # CTranslate2 returns the forced prefix as part of the sequence.
        if prefix_tokens and tokens[: len(prefix_tokens)] == prefix_tokens:
            tokens = tokens[len(prefix_tokens) :]
        tokens = [t for t in tokens if t < tokenizer.eot][:new_tokens]
        text = tokenizer.decode(tokens)
        score = result.scores[0] if result.scores else 0.0
        avg_logprob = score * len(tokens) / (len(tokens) + 1) if tokens else 0.0
        words: tuple[TranscribedWord, ...] = ()
        if word_timestamps and tokens:
            words = self._align(tokenizer, encoded, prefix_tokens, tokens, content_frames)
        return Transcript(
            text=text,
            words=words,
            language=language,
            avg_logprob=float(avg_logprob),
            compression_ratio=compression_ratio(text),
            no_speech_prob=float(result.no_speech_prob),
            tokens=len(tokens),
            duration=duration,
            compute_s=time.perf_counter() - started,
        )

    def close(self) -> None:
        """Stop the worker thread (waits for the decode in progress)."""
        self._executor.shutdown(wait=True)

    def _tokenizer(self, language: str) -> Tokenizer:
        tokenizer = self._tokenizers.get(language)
        if tokenizer is None:
            tokenizer = Tokenizer(
                self._whisper.hf_tokenizer,
                self._whisper.model.is_multilingual,
                task="transcribe",
                language=language,
            )
            self._tokenizers[language] = tokenizer
        return tokenizer

    def _features(self, audio: np.ndarray, full_window: bool) -> tuple[np.ndarray, int]:
        content_frames = len(audio) // _HOP
        padded = np.concatenate([audio, np.zeros(int(_TAIL_PAD_S * SAMPLE_RATE), dtype=np.float32)])
        features = self._whisper.feature_extractor(padded)[:, :-1]
        fitted = max(_MIN_FRAMES, -(-features.shape[1] // _FRAME_QUANTUM) * _FRAME_QUANTUM)
        frames = _MAX_FRAMES if full_window else min(_MAX_FRAMES, fitted)
        if features.shape[1] < frames:
            # Log-mel of digital silence is the clip floor, the same value the padded tail has.
            floor = features.min() if features.size else 0.0
            features = np.pad(features, ((0, 0), (0, frames - features.shape[1])), constant_values=floor)
        return np.ascontiguousarray(features[:, :frames]), max(1, content_frames)

    @staticmethod
    def _context_tokens(tokenizer: Tokenizer, initial_prompt: str | None, hotwords: str | None) -> list[int]:
        # Keep the context short: every context token is re-read on every pass, and long prompts
        # make small whisper models copy the prompt instead of listening.
        hot = tokenizer.encode(" " + hotwords.strip())[:48] if hotwords and hotwords.strip() else []
        recent = (
            tokenizer.encode(" " + initial_prompt.strip())[-(96 - len(hot)) :]
            if initial_prompt and initial_prompt.strip()
            else []
        )
        if not hot and not recent:
            return []
        return [tokenizer.sot_prev, *hot, *recent]

    @staticmethod
    def _prefix_tokens(tokenizer: Tokenizer, prefix: str | None) -> list[int]:
        if not prefix or not prefix.strip():
            return []
        text = prefix.strip()
        # Whisper starts Thai output without a space and space-delimited languages with one.
        return tokenizer.encode(text if has_thai(text[0]) else " " + text)[: _MAX_LENGTH // 2]

    def _align(
        self,
        tokenizer: Tokenizer,
        encoded: object,
        prefix_tokens: list[int],
        tokens: list[int],
        content_frames: int,
    ) -> tuple[TranscribedWord, ...]:
        all_tokens = prefix_tokens + tokens
        alignment = self._whisper.model.align(
            encoded, tokenizer.sot_sequence, [all_tokens], content_frames, median_filter_width=7
        )[0]
        pairs = np.asarray(alignment.alignments, dtype=np.int64).reshape(-1, 2)
        if not len(pairs):
            return ()
        jumps = np.pad(np.diff(pairs[:, 0]), (1, 0), constant_values=1).astype(bool)
        times = pairs[:, 1][jumps] / _TOKENS_PER_SECOND
        probs = np.asarray(alignment.text_token_probs, dtype=np.float64)
        pieces, piece_tokens = tokenizer.split_to_word_tokens(tokens + [tokenizer.eot])
        words: list[TranscribedWord] = []
        index = len(prefix_tokens)
        last = len(times) - 1
        for piece, group in zip(pieces, piece_tokens, strict=False):
            if group and group[0] >= tokenizer.eot:
                break
            end_index = index + len(group)
            start = float(times[min(index, last)])
            end = float(times[min(end_index, last)])
            probability = float(np.mean(probs[index:end_index])) if end_index > index else 0.0
            words.append(TranscribedWord(piece, start, max(end, start), probability))
            index = end_index
        return tuple(words)


def load_model(settings: ModelSettings | None = None, *, warm_up: bool = True) -> SharedModel:
    """Locate (assembling and verifying whisper-base if needed) and load the shared model.

    `settings` defaults to `ModelSettings.from_env()`. Raises ModelError, whose message says how
    to fix it, when the model is missing, incomplete, corrupt or unloadable.
    """
    settings = settings or ModelSettings.from_env()
    model_dir = resolve_model_dir(settings)
    try:
        whisper = WhisperModel(
            str(model_dir),
            device=settings.device,
            compute_type=settings.compute_type,
            cpu_threads=settings.cpu_threads,
            local_files_only=True,
        )
    except (RuntimeError, ValueError, OSError) as e:
        raise ModelError(
            f"Cannot load the whisper model in {model_dir}: {e}. To fix it, set WHISPER_MODEL to a "
            "directory containing a CTranslate2 faster-whisper model (model.bin, config.json, "
            "tokenizer.json, vocabulary.txt), or unset WHISPER_MODEL to use the bundled whisper-base."
        ) from e
    model = SharedModel(whisper, model_dir=model_dir, cpu_threads=settings.cpu_threads)
    if warm_up:
        # The first pass pays for memory allocation and kernel selection, the first Thai word
        # segmentation for loading PyThaiNLP's dictionary (half a second), the first VAD call
        # for its ONNX session: pay them all before going live.
        model.transcribe_sync(np.zeros(SAMPLE_RATE, dtype=np.float32), language="en", max_new_tokens=4)
        segment_units([TimedPiece("ทดสอบ", 0.0, 1.0)])
        get_vad_model()
    return model
