"""What travels inside the HLS writer: the items producers put in the backlog for the worker (``Input``, ``Remux``,
``Raw``, ``Epoch``, ``FinalUntil``, ``Barrier``, ``Close``; captions travel as ``hls_playlist.Cue``) and the
packets the worker's tracks hand its segmenter (``Out``). Timestamps here are media ticks (``hls_clock``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

import av
from av.stream import Stream

Kind = Literal["video", "audio"]
KINDS: tuple[Kind, ...] = ("video", "audio")  # also the order of the streams in a segment
Mode = Literal["remux", "encode", "picture"]


# ---- producers to the worker --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Input:
    """A (re)opened input; per track a parameter copy of the stream to remux, True to encode frames, False for none."""

    video: Stream | bool
    audio: Stream | bool


@dataclass(frozen=True)
class Remux:
    """A demuxed packet to copy into the segments."""

    kind: Kind
    packet: av.Packet
    pts: int
    dts: int
    duration: int
    key: bool


@dataclass(frozen=True)
class Raw:
    """A decoded frame to encode."""

    frame: av.VideoFrame | av.AudioFrame
    pts: int


@dataclass(frozen=True)
class Epoch:
    """Media time 0 was this Unix time: sent once, before the first media."""

    at: float


@dataclass(frozen=True)
class FinalUntil:
    """Every caption ending before media time ``t`` (seconds) has been sent."""

    t: float


@dataclass(frozen=True)
class Barrier:
    """Set ``reached`` once everything sent before has been handled."""

    reached: threading.Event


class Close:
    """Finish the files and stop."""


# ---- tracks to the segmenter --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Out:
    """A packet on its way into a segment."""

    kind: Kind
    packet: av.Packet
    pts: int
    dts: int
    duration: int
    key: bool
