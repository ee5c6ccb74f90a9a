"""Cutting a stream of samples into fixed-length chunks stamped with their media time."""

from __future__ import annotations

import numpy as np

from stream.resample import SAMPLE_RATE


class Chunker:
    """Buffers 16 kHz samples and hands them out in chunks of ``size`` samples, with each chunk's start time.

    Media time is counted from samples handed out, not from the input's timestamps: it stays contiguous and
    monotonic across file loops, reopens and timestamp resets that live encoders are prone to. Only a
    reconnect moves it on without samples (``skip``), by the length of the outage.
    """

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError(f"chunk size must be positive, not {size}")
        self._size = size
        self._parts: list[np.ndarray] = []
        self._buffered = 0
        self._handed_out = 0
        self._skipped = 0.0

    @property
    def now(self) -> float:
        """Media time, in seconds, of the next sample to be handed out."""
        return self._skipped + self._handed_out / SAMPLE_RATE

    def push(self, samples: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """Add samples; returns each ``(start, samples)`` chunk that is now full."""
        if samples.size:
            self._parts.append(samples)
            self._buffered += samples.size
        chunks: list[tuple[float, np.ndarray]] = []
        if self._buffered < self._size:
            return chunks
        pending = np.concatenate(self._parts)
        whole = len(pending) - len(pending) % self._size
        for offset in range(0, whole, self._size):
            chunks.append(self._hand_out(pending[offset : offset + self._size]))
        rest = pending[whole:]
        self._parts = [rest] if rest.size else []
        self._buffered = rest.size
        return chunks

    def flush(self) -> tuple[float, np.ndarray] | None:
        """The buffered remainder as one short chunk, or ``None`` when nothing is buffered."""
        if not self._buffered:
            return None
        pending = np.concatenate(self._parts)
        self._parts = []
        self._buffered = 0
        return self._hand_out(pending)

    def skip(self, seconds: float) -> None:
        """Move media time on by ``seconds`` with no samples: the length of an outage. Flush first."""
        if self._buffered:
            raise RuntimeError("flush the buffered samples before skipping media time")
        self._skipped += max(0.0, seconds)

    def _hand_out(self, samples: np.ndarray) -> tuple[float, np.ndarray]:
        start = self.now
        self._handed_out += len(samples)
        return start, samples
