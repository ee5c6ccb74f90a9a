"""WHEP playback: each viewer is one peer connection fed, through ``MediaRelay``, from the publisher's frames.

The publisher's decoded frames go into one ``FrameTee`` per kind; the relay reads each tee once and hands every
frame to all viewers' proxy tracks, so the source is decoded once however many watch. aiortc still *encodes* per
sender (Opus and VP8/H.264 for every viewer), which is what caps the number of viewers a process can serve.
"""

from __future__ import annotations

import asyncio
from collections import deque

from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.frame import Frame

# Frames a tee holds for the relay. The relay drains it as soon as a viewer is watching; with nobody watching
# it fills, and the oldest frames make way so a viewer who joins later starts near live, not seconds behind.
AUDIO_TEE_FRAMES = 10  # 200 ms of 20 ms Opus frames
VIDEO_TEE_FRAMES = 3


class FrameTee(MediaStreamTrack):
    """A live track fed by ``push`` and read by ``MediaRelay``: bounded, oldest frames dropped first."""

    def __init__(self, kind: str, capacity: int) -> None:
        super().__init__()
        self.kind = kind
        self._frames: deque[Frame | None] = deque(maxlen=capacity)
        self._ready = asyncio.Event()
        self._ended = False
        self.dropped = 0

    def push(self, frame: Frame) -> None:
        """Offer a frame to viewers; never waits, so the publisher's receive loop is never held up."""
        if self._ended:
            return
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1
        self._frames.append(frame)
        self._ready.set()

    def end(self) -> None:
        """No more frames: the relay's reader stops and every viewer's proxy track ends."""
        if self._ended:
            return
        self._ended = True
        self._frames.clear()
        self._frames.append(None)
        self._ready.set()

    async def recv(self) -> Frame:
        if self.readyState != "live":
            raise MediaStreamError
        while not self._frames:
            self._ready.clear()
            await self._ready.wait()
        frame = self._frames.popleft()
        if frame is None:
            self.stop()
            raise MediaStreamError
        return frame


class Viewer:
    """One WHEP session: its peer connection, the relay proxy tracks it sends, and the client address it came from
    (what per-address viewer limits count)."""

    def __init__(
        self,
        session_id: str,
        sitting_id: str,
        pc: RTCPeerConnection,
        tracks: list[MediaStreamTrack],
        *,
        client: str = "",
    ) -> None:
        self.session_id = session_id
        self.sitting_id = sitting_id
        self.client = client
        self.pc = pc
        self.tracks = tracks
        self._closed = False

    async def close(self) -> None:
        """Stop its proxy tracks (so the relay forgets them) and close the peer connection. Repeatable."""
        if self._closed:
            return
        self._closed = True
        for track in self.tracks:
            track.stop()
        await self.pc.close()
