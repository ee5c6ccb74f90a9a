"""Decoded audio of any format, layout and rate, as 16 kHz mono float32: what speech recognition reads."""

from __future__ import annotations

import av
import numpy as np

SAMPLE_RATE = 16_000


class MonoResampler:
    """Converts ``av.AudioFrame``s to 16 kHz mono float32 arrays, one resampler per input format.

    ``av.AudioResampler`` refuses frames whose format differs from the first one it saw, and a live feed may
    switch (an encoder restart, an HLS variant change), so a change flushes the old resampler and starts anew.
    """

    def __init__(self) -> None:
        self._resampler: av.AudioResampler | None = None
        self._input: tuple[str, str, int] | None = None

    def convert(self, frame: av.AudioFrame) -> list[np.ndarray]:
        """The 16 kHz mono samples this frame completes; the resampler may hold a few back until ``flush``."""
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        arrays = self.flush() if shape != self._input else []
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            self._input = shape
        arrays.extend(_samples(out) for out in self._resampler.resample(frame))
        return arrays

    def flush(self) -> list[np.ndarray]:
        """The samples still held inside the resampler; the next ``convert`` starts a fresh one."""
        if self._resampler is None:
            return []
        arrays = [_samples(out) for out in self._resampler.resample(None)]
        self._resampler = None
        self._input = None
        return arrays


def _samples(frame: av.AudioFrame) -> np.ndarray:
    # to_ndarray() views the frame's buffer: copy, so the chunk owns its memory once the frame is gone.
    return np.array(frame.to_ndarray()[0], dtype=np.float32, copy=True)
