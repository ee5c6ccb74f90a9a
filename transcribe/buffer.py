"""The audio a feed's next decoding pass will see, and where it may be cut.

Kept apart from the engine so that the rule that bounds memory (cut at committed words) can be
checked over long simulated sittings without a model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from transcribe.text import Unit

SAMPLE_RATE = 16_000


class AudioBuffer:
    """Contiguous 16 kHz mono audio from media time `start` to `end`."""

    def __init__(self, start: float = 0.0) -> None:
        self._samples = np.zeros(0, dtype=np.float32)
        self._start = start

    @property
    def start(self) -> float:
        """Media time of the first buffered sample."""
        return self._start

    @property
    def end(self) -> float:
        """Media time just after the last buffered sample."""
        return self._start + len(self._samples) / SAMPLE_RATE

    @property
    def duration(self) -> float:
        """Seconds of audio held."""
        return len(self._samples) / SAMPLE_RATE

    def reset(self, start: float) -> None:
        """Drop everything; the next sample appended is at media time `start`."""
        self._samples = np.zeros(0, dtype=np.float32)
        self._start = start

    def append(self, samples: np.ndarray) -> None:
        """Add samples that follow the buffered ones."""
        self._samples = np.concatenate([self._samples, samples.astype(np.float32, copy=False)])

    def window(self, start: float, end: float) -> np.ndarray:
        """The samples between media times `start` and `end` (clipped to what is held)."""
        first = max(0, round((start - self._start) * SAMPLE_RATE))
        last = max(first, round((end - self._start) * SAMPLE_RATE))
        return self._samples[first:last]

    def trim_before(self, t: float) -> None:
        """Forget audio before media time `t` (never beyond the end)."""
        drop = min(len(self._samples), round((t - self._start) * SAMPLE_RATE))
        if drop > 0:
            self._samples = self._samples[drop:]
            self._start += drop / SAMPLE_RATE


def committed_cut(
    commits: Sequence[Unit],
    *,
    buffer_start: float,
    last_final_end: float,
    keep_committed_s: float,
) -> float | None:
    """Where to cut a long buffer: the end of the latest committed word that leaves at least
    `keep_committed_s` of committed audio in the buffer (the decoder prefix), or None."""
    limit = last_final_end - keep_committed_s
    cuts = [u.end for u in commits if buffer_start < u.end <= limit]
    return max(cuts) if cuts else None


def forced_cut(
    commits: Sequence[Unit],
    *,
    buffer_start: float,
    last_final_end: float,
    committed_before: float,
    pending: Sequence[Unit],
    window_end: float,
    commit_until: float,
    keep_committed_s: float,
    epsilon: float = 0.02,
) -> float:
    """Where to cut after a pass that committed words by time (`commit_until`).

    Like `committed_cut` when the pass committed something, so the next pass still starts with
    committed words it is forced to repeat (and cannot duplicate); before the first pending
    word (or at the window end) when it committed nothing. Always strictly after
    `buffer_start`, so a forced pass always shrinks the buffer.
    """
    if last_final_end > committed_before:
        cut = committed_cut(
            commits,
            buffer_start=buffer_start,
            last_final_end=last_final_end,
            keep_committed_s=keep_committed_s,
        )
        if cut is None:
            cut = last_final_end
    else:
        cut = pending[0].start if pending else window_end
    if cut <= buffer_start + epsilon:
        cut = commit_until
    return min(cut, commit_until)
