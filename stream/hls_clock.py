"""The one clock of ``stream.hls``: media time, seconds since the start of a sitting's feed, written on the MPEG-TS
90 kHz clock. Segments carry media time ``t`` as ``TS_ORIGIN + ticks(t)`` and every WebVTT segment maps its cue times
onto that clock with ``TIMESTAMP_MAP``, which is what keeps a caption on the picture it was spoken over.
"""

from __future__ import annotations

MPEGTS_HZ = 90_000
# Media time 0 is written as this MPEG-TS timestamp: the headroom keeps B-frame decode times and AAC priming,
# which start a little before the first picture, positive as MPEG-TS requires.
TS_ORIGIN = 10 * MPEGTS_HZ
TIMESTAMP_MAP = f"X-TIMESTAMP-MAP=MPEGTS:{TS_ORIGIN},LOCAL:00:00:00.000"


def ticks(seconds: float) -> int:
    """Media time in MPEG-TS clock ticks (1/90 000 s)."""
    return round(seconds * MPEGTS_HZ)


# A track whose timestamps jump on by more than this (a reconnect, an RTP outage) starts a new segment marked
# EXT-X-DISCONTINUITY, and encoders start it on a keyframe; shorter holes stay inside a segment, where players step
# over them.
JUMP_TICKS = ticks(1.0)
