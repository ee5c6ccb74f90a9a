"""Streaming voice activity detection with the Silero VAD that ships inside faster-whisper.

Silence, applause and chimes must cost no decoding passes and produce no captions, and a pause
after speech is the most reliable moment to make a caption final. faster-whisper's
`get_speech_timestamps` only works on a whole file, so this runs the same ONNX model window by
window, carrying its LSTM state and 64-sample context across calls (which gives exactly the
probabilities of a whole-file run), with the same hysteresis as faster-whisper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import get_vad_model

SAMPLE_RATE = 16_000
WINDOW = 512
_CONTEXT = 64
_STATE_SHAPE = (1, 1, 128)


@dataclass(frozen=True, slots=True)
class VadConfig:
    """Thresholds of the streaming VAD (probabilities, seconds)."""

    threshold: float = 0.5
    # Below this a window counts as silence; between the two thresholds speech just continues.
    neg_threshold: float = 0.35
    # Bursts shorter than this (clicks, a gavel, a cough) are not speech.
    min_speech_s: float = 0.25
    # Silence after speech that ends an utterance (and makes its caption final).
    end_silence_s: float = 0.5


@dataclass(frozen=True, slots=True)
class SpeechSpan:
    """Speech between `start` and `end` (media seconds); `end` is None while it goes on."""

    start: float
    end: float | None


def speech_probabilities(
    model_session: object, windows: np.ndarray, context: np.ndarray, h: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run Silero on consecutive 512-sample `windows`; return (probs, h, c) for the next call."""
    previous = np.concatenate([context[None, :], windows[:-1, -_CONTEXT:]], axis=0)
    batch = np.concatenate([previous, windows], axis=1)
    probs, h, c = model_session.run(None, {"input": batch, "h": h, "c": c})  # type: ignore[attr-defined]
    return np.asarray(probs, dtype=np.float32).reshape(-1), h, c


class StreamingVad:
    """Feed audio in any chunk sizes; read back closed utterances and whether speech is going on.

    Times are media seconds: `origin` is the media time of the first sample fed.
    """

    def __init__(self, config: VadConfig = VadConfig(), *, origin: float = 0.0) -> None:
        self._config = config
        self._session = get_vad_model().session
        self._pending = np.zeros(0, dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._h = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._origin = origin
        self._windows_done = 0
        self._speech_start: float | None = None
        self._silence_start: float | None = None
        self._closed: list[SpeechSpan] = []

    @property
    def processed_until(self) -> float:
        """Media time up to which audio has been classified."""
        return self._origin + self._windows_done * WINDOW / SAMPLE_RATE

    @property
    def ongoing(self) -> SpeechSpan | None:
        """The utterance in progress, if any."""
        if self._speech_start is None:
            return None
        return SpeechSpan(self._speech_start, None)

    @property
    def last_voiced(self) -> float | None:
        """End of the last window above the speech threshold in the ongoing utterance."""
        if self._speech_start is None:
            return None
        return self._silence_start if self._silence_start is not None else self.processed_until

    def take_closed(self) -> list[SpeechSpan]:
        """Utterances that ended (by `end_silence_s` of silence) since the last call, oldest first."""
        closed, self._closed = self._closed, []
        return closed

    def close(self) -> list[SpeechSpan]:
        """End of stream: close the ongoing utterance at the last voiced time; return all closed."""
        if self._speech_start is not None:
            end = self.last_voiced or self.processed_until
            self._finish(end)
        return self.take_closed()

    def accept(self, samples: np.ndarray) -> None:
        """Classify `samples` (16 kHz mono float32) that follow the audio fed so far."""
        audio = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        usable = len(audio) - len(audio) % WINDOW
        self._pending = audio[usable:].copy()
        if not usable:
            return
        windows = audio[:usable].reshape(-1, WINDOW)
        probs, self._h, self._c = speech_probabilities(self._session, windows, self._context, self._h, self._c)
        self._context = windows[-1, -_CONTEXT:].copy()
        for prob in probs:
            self._step(float(prob))

    def _step(self, prob: float) -> None:
        cfg = self._config
        t = self._origin + self._windows_done * WINDOW / SAMPLE_RATE
        self._windows_done += 1
        t_end = t + WINDOW / SAMPLE_RATE
        if self._speech_start is None:
            if prob >= cfg.threshold:
                self._speech_start = t
                self._silence_start = None
            return
        if prob >= cfg.threshold:
            self._silence_start = None
        elif prob < cfg.neg_threshold:
            if self._silence_start is None:
                self._silence_start = t
            if t_end - self._silence_start >= cfg.end_silence_s:
                self._finish(self._silence_start)

    def _finish(self, end: float) -> None:
        start = self._speech_start
        self._speech_start = None
        self._silence_start = None
        if start is not None and end - start >= self._config.min_speech_s:
            self._closed.append(SpeechSpan(start, end))
