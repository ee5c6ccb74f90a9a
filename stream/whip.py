"""WHIP ingest: what one publisher's WebRTC media becomes.

A ``Publication`` is the sole reader of each track the publisher sends (aiortc's receive queues are unbounded,
so every track must be drained whether or not anyone wants its frames). Each decoded frame goes, without any
await in between, to:

* the caption path (audio only): ``WhipAudioSource``, 16 kHz mono ``AudioChunk``s that ``LiveFeed`` iterates;
* the viewers: a bounded ``FrameTee`` that ``MediaRelay`` fans out to WHEP sessions;
* the archive/HLS path: a ``MediaSink`` (``stream.hls.HlsWriter``), fed on a worker thread in batches.

Every hand-over is bounded and drops the oldest when its reader lags, so a slow consumer costs frames, never the
peer connection's event handling.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import av
import numpy as np
from aiortc import RTCPeerConnection
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.frame import Frame

from stream.chunker import Chunker
from stream.errors import SourceError
from stream.resample import SAMPLE_RATE, MonoResampler
from stream.source import AudioChunk, Source, SourceGap
from stream.whep import AUDIO_TEE_FRAMES, VIDEO_TEE_FRAMES, FrameTee

if TYPE_CHECKING:
    from stream.hls import HlsWriter

log = logging.getLogger(__name__)

# RTP gaps up to this long (lost packets, DTX silence) are filled with silence so captions keep their timing;
# longer ones move media time on without samples, as an outage would.
_MAX_FILL_S = 2.0
# Below this an RTP timestamp jump is rounding, not lost audio.
_GAP_TOLERANCE_S = 0.005
# Frames that may wait for the HLS writer: all the audio of a few seconds, but only a moment of video, since a
# lagging encoder is better served by skipped video frames than by growing latency.
_SINK_AUDIO_FRAMES = 250  # 5 s of 20 ms Opus frames
_SINK_VIDEO_FRAMES = 15


class MediaSink(Protocol):
    """Where a publisher's frames are recorded and re-encoded for HLS (``stream.hls.HlsWriter``).

    Called from one worker thread at a time, never concurrently; ``t`` is media time in seconds on the sitting's
    timeline, the same clock as the captions. Each frame it gets is its own copy, which it may change (the HLS
    writer restamps frames): the originals are shared with the WebRTC viewers' encoders.
    """

    def add_video_frame(self, frame: av.VideoFrame, t: float) -> object: ...

    def add_audio_frame(self, frame: av.AudioFrame, t: float) -> object: ...

    def close(self) -> object: ...


class _AudioTimeline:
    """Received audio frames as 16 kHz chunks whose media time follows the sender's RTP clock."""

    def __init__(self, start: float, chunk_samples: int) -> None:
        self._chunker = Chunker(chunk_samples)
        self._chunker.skip(start)
        self._resampler = MonoResampler()
        self._next_pts: int | None = None
        self._time = start  # media time of the next sample to go in

    def push(self, frame: av.AudioFrame) -> tuple[float, list[AudioChunk]]:
        """The frame's media time and the chunks it completes."""
        chunks = self._fill_gap(frame)
        at = self._time
        for samples in self._resampler.convert(frame):
            chunks.extend(self._add(samples))
        self._time = at + frame.samples / frame.sample_rate
        if frame.pts is not None:
            self._next_pts = frame.pts + frame.samples
        return at, chunks

    def flush(self) -> list[AudioChunk]:
        chunks: list[AudioChunk] = []
        for samples in self._resampler.flush():
            chunks.extend(self._add(samples))
        rest = self._chunker.flush()
        if rest is not None:
            chunks.append(AudioChunk(samples=rest[1], start=rest[0]))
        return chunks

    @property
    def now(self) -> float:
        """Media time where the chunks handed out so far end."""
        return self._chunker.now

    def _fill_gap(self, frame: av.AudioFrame) -> list[AudioChunk]:
        if frame.pts is None or self._next_pts is None or frame.time_base is None:
            return []
        gap = float((frame.pts - self._next_pts) * frame.time_base)
        if gap <= _GAP_TOLERANCE_S:
            return []
        self._time += gap
        if gap <= _MAX_FILL_S:
            return self._add(np.zeros(round(gap * SAMPLE_RATE), dtype=np.float32))
        chunks = self.flush()
        self._chunker.skip(gap)
        return chunks

    def _add(self, samples: np.ndarray) -> list[AudioChunk]:
        return [AudioChunk(samples=s, start=start) for start, s in self._chunker.push(samples)]


_Item = AudioChunk | SourceGap | None  # None ends the iteration


class WhipAudioSource:
    """A WHIP publisher's audio as ``AudioChunk``s (and a ``SourceGap`` if the peer vanishes): a ``Source``, as
    ``AudioSource`` is, which ``live.feed.LiveFeed`` consumes unchanged.

    Media time starts at ``start`` (where the sitting's timeline stands when the publisher connects) and then
    follows the sender's RTP clock. The publication pushes frames; nothing it does ever waits on the consumer:
    when more than ``queue_seconds`` of audio is waiting, the oldest is dropped (the caption engine bridges the
    jump in media time) and ``dropped_s`` counts it.

    ``hls``: the sitting's HLS writer the publication also feeds, if any; ``LiveFeed`` adds the captions to it
    and closes it when the audio ends, as for any ``AudioSource``.

    One iteration; ``stop()`` ends it from the consumer's side, ``end()`` from the publisher's.
    """

    def __init__(
        self,
        uri: str,
        *,
        start: float = 0.0,
        chunk_seconds: float = 0.5,
        queue_seconds: float = 10.0,
        first_audio_timeout: float = 20.0,
        hls: HlsWriter | None = None,
    ) -> None:
        if not chunk_seconds > 0 or not queue_seconds >= chunk_seconds:
            raise ValueError(f"need 0 < chunk_seconds <= queue_seconds, not {chunk_seconds} and {queue_seconds}")
        self._uri = uri
        self._hls = hls
        self._timeline = _AudioTimeline(start, max(1, round(chunk_seconds * SAMPLE_RATE)))
        self._inbox: deque[_Item] = deque()
        self._capacity = max(2, round(queue_seconds / chunk_seconds))
        self._ready = asyncio.Event()
        self._heard = asyncio.Event()  # first audio, or the end: what probe() waits for
        self._first_audio_timeout = first_audio_timeout
        self._ended = False
        self._stopped = False
        self._iterating = False
        self.frames = 0
        self.dropped_s = 0.0

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def hls(self) -> HlsWriter | None:
        return self._hls

    # ---- the publication's side ------------------------------------------------------------------------------

    def push(self, frame: av.AudioFrame) -> float:
        """Take one received audio frame; returns its media time. Never waits."""
        self.frames += 1
        at, chunks = self._timeline.push(frame)
        if not self._ended and not self._stopped:
            for chunk in chunks:
                self._put(chunk)
        return at

    def end(self, reason: str | None) -> None:
        """The publisher is gone: deliver what is buffered, then a ``SourceGap`` (if ``reason``), then the end."""
        if self._ended:
            return
        for chunk in self._timeline.flush():
            self._put(chunk)
        if reason is not None:
            self._put(SourceGap(reason=reason, at=self._timeline.now, duration=None))
        self._put(None)
        self._ended = True

    def _put(self, item: _Item) -> None:
        if len(self._inbox) >= self._capacity:
            oldest = self._inbox.popleft()
            if isinstance(oldest, AudioChunk):
                if not self.dropped_s:
                    log.warning("%s: captions lag behind the publisher; dropping the oldest audio", self._uri)
                self.dropped_s += oldest.duration
        self._inbox.append(item)
        self._ready.set()
        self._heard.set()

    # ---- the consumer's side ---------------------------------------------------------------------------------

    async def probe(self) -> None:
        """Wait until the publisher's audio flows; ``SourceError`` if it ends first or takes too long."""
        try:
            await asyncio.wait_for(self._heard.wait(), self._first_audio_timeout)
        except TimeoutError:
            raise SourceError(f"{self._uri}: no audio within {self._first_audio_timeout:g} s") from None
        if not self.frames:
            raise SourceError(f"{self._uri}: the publisher left before sending any audio")

    def __aiter__(self) -> _Chunks:
        if self._iterating:
            raise RuntimeError(f"{self._uri} is already being iterated")
        self._iterating = True
        return _Chunks(self)

    async def _next(self) -> AudioChunk | SourceGap | None:
        while not self._inbox and not self._stopped:
            self._ready.clear()
            await self._ready.wait()
        if self._stopped:
            return None
        item = self._inbox.popleft()
        if item is None:
            self._stopped = True
        return item

    def stop(self) -> None:
        """End the iteration now (what is still queued is discarded). Repeatable."""
        self._stopped = True
        self._inbox.clear()
        self._ready.set()


class _Chunks:
    """The async iterator over a ``WhipAudioSource``: a plain class, so an abandoned iteration leaves no
    suspended generator behind to be finalised later."""

    def __init__(self, source: WhipAudioSource) -> None:
        self._source = source

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> AudioChunk | SourceGap:
        item = await self._source._next()
        if item is None:
            raise StopAsyncIteration
        return item


class _VideoClock:
    """Media time of video frames: anchored at the first frame's arrival, then following its RTP timestamps."""

    def __init__(self, start: float, since: float) -> None:
        self._start = start
        self._since = since  # loop time at which media time was `start`
        self._anchor: float | None = None

    def at(self, frame: av.VideoFrame, now: float) -> float:
        arrival = self._start + (now - self._since)
        if frame.pts is None or frame.time_base is None:
            return arrival
        pts = float(frame.pts * frame.time_base)
        if self._anchor is None:
            self._anchor = arrival - pts
        return self._anchor + pts


class _SinkFeeder:
    """Hands frames to a ``MediaSink`` on a worker thread, in batches, oldest first.

    The sink's encoding must not run on the event loop, and one thread hop per batch (not per frame) keeps the
    overhead small. If the sink fails it is logged once and fed no more: the live captions and viewers matter
    more than the recording.
    """

    def __init__(self, sink: MediaSink, name: str) -> None:
        self._sink = sink
        self._name = name
        self._audio: deque[tuple[av.AudioFrame, float]] = deque(maxlen=_SINK_AUDIO_FRAMES)
        self._video: deque[tuple[av.VideoFrame, float]] = deque(maxlen=_SINK_VIDEO_FRAMES)
        self._wake = asyncio.Event()
        self._closing = False
        self._broken = False
        self.dropped_video = 0
        self._task = asyncio.create_task(self._run(), name=f"media-sink {name}")

    def audio(self, frame: av.AudioFrame, t: float) -> None:
        if not self._broken:
            self._audio.append((frame, t))
            self._wake.set()

    def video(self, frame: av.VideoFrame, t: float) -> None:
        if self._broken:
            return
        if len(self._video) == self._video.maxlen:
            self.dropped_video += 1
        self._video.append((frame, t))
        self._wake.set()

    async def close(self) -> None:
        """Write what is queued, then close the sink (on the worker thread too)."""
        self._closing = True
        self._wake.set()
        await self._task
        try:
            await asyncio.to_thread(self._sink.close)
        except Exception:
            log.exception("%s: closing the media sink failed", self._name)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch: list[tuple[av.AudioFrame | av.VideoFrame, float]] = [*self._audio, *self._video]
            self._audio.clear()
            self._video.clear()
            if batch and not self._broken:
                batch.sort(key=lambda item: item[1])
                try:
                    await asyncio.to_thread(self._write, batch)
                except Exception:
                    log.exception("%s: the media sink failed; no more frames go to it", self._name)
                    self._broken = True
            if self._closing and not self._audio and not self._video:
                return

    def _write(self, batch: list[tuple[av.AudioFrame | av.VideoFrame, float]]) -> None:
        for frame, t in batch:
            if isinstance(frame, av.VideoFrame):
                self._sink.add_video_frame(_video_copy(frame), t)
            else:
                self._sink.add_audio_frame(_audio_copy(frame), t)


def _video_copy(frame: av.VideoFrame) -> av.VideoFrame:
    # reformat() hands back the very same frame when nothing changes, so a same-format copy goes through numpy.
    if frame.format.name == "yuv420p":
        copy = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
    else:
        copy = frame.reformat(format="yuv420p")
    copy.pts, copy.time_base = frame.pts, frame.time_base
    return copy


def _audio_copy(frame: av.AudioFrame) -> av.AudioFrame:
    copy = av.AudioFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name, layout=frame.layout.name)
    copy.sample_rate = frame.sample_rate
    copy.pts, copy.time_base = frame.pts, frame.time_base
    return copy


@dataclass(frozen=True)
class PublicationStats:
    audio_frames: int
    video_frames: int
    audio_dropped_s: float
    video_dropped_for_sink: int


class Publication:
    """One WHIP publisher: its peer connection, the tracks it sends, and where their frames go.

    ``on_gone(reason)`` is called once if the peer goes away by itself (its tracks end, ICE or DTLS fails);
    whoever owns the publication then calls ``close(reason)``.
    """

    def __init__(
        self,
        sitting_id: str,
        session_id: str,
        pc: RTCPeerConnection,
        audio: WhipAudioSource,
        *,
        start: float,
        sink: MediaSink | None,
        on_gone: Callable[[str], None],
    ) -> None:
        self.sitting_id = sitting_id
        self.session_id = session_id
        self.pc = pc
        self.audio = audio
        self.relay = MediaRelay()
        self.tees: dict[str, FrameTee] = {}
        self._loop = asyncio.get_running_loop()
        self._video_clock = _VideoClock(start, self._loop.time())
        self._sink = _SinkFeeder(sink, f"{sitting_id}/{session_id}") if sink is not None else None
        self._on_gone = on_gone
        self._pumps: list[asyncio.Task[None]] = []
        self._gone = False
        self._closed = False
        self.video_frames = 0
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_state)

    @property
    def connected(self) -> bool:
        return self.pc.connectionState == "connected"

    def stats(self) -> PublicationStats:
        return PublicationStats(
            audio_frames=self.audio.frames,
            video_frames=self.video_frames,
            audio_dropped_s=self.audio.dropped_s,
            video_dropped_for_sink=self._sink.dropped_video if self._sink else 0,
        )

    def viewer_tracks(self) -> list[MediaStreamTrack]:
        """A fresh relay subscription per track, for one more viewer; unbuffered, so a slow viewer skips frames."""
        return [self.relay.subscribe(tee, buffered=False) for tee in self.tees.values()]

    def _on_track(self, track: MediaStreamTrack) -> None:
        if self._closed or track.kind not in ("audio", "video") or track.kind in self.tees:
            # Still drained: an unread remote track queues every frame it decodes, without bound.
            self._pumps.append(asyncio.create_task(self._drain(track), name=f"whip-drain {self.session_id}"))
            return
        capacity = AUDIO_TEE_FRAMES if track.kind == "audio" else VIDEO_TEE_FRAMES
        tee = self.tees[track.kind] = FrameTee(track.kind, capacity)
        self._pumps.append(asyncio.create_task(self._pump(track, tee), name=f"whip-{track.kind} {self.session_id}"))

    def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self._peer_gone(f"the WebRTC connection {self.pc.connectionState}")

    def _peer_gone(self, reason: str) -> None:
        if not self._gone and not self._closed:
            self._gone = True
            self._on_gone(reason)

    async def _pump(self, track: MediaStreamTrack, tee: FrameTee) -> None:
        try:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    break
                if not isinstance(frame, Frame):  # aiortc's remote tracks decode; an encoded packet is a bug
                    raise TypeError(f"expected a decoded frame, got {type(frame).__name__}")
                self._route(frame)
                tee.push(frame)
        except Exception:  # a bug here must end the publication visibly, not leave a silent, undrained track
            log.exception("%s/%s: receiving %s failed", self.sitting_id, self.session_id, track.kind)
            self._peer_gone(f"receiving the publisher's {track.kind} failed")
            return
        self._peer_gone(f"the publisher's {track.kind} track ended")

    def _route(self, frame: Frame) -> None:
        if isinstance(frame, av.AudioFrame):
            t = self.audio.push(frame)
            if self._sink is not None:
                self._sink.audio(frame, t)
        elif isinstance(frame, av.VideoFrame):
            self.video_frames += 1
            if self._sink is not None:
                self._sink.video(frame, self._video_clock.at(frame, self._loop.time()))

    async def _drain(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return

    async def close(self, reason: str | None) -> None:
        """Stop everything: audio ends (with a gap if ``reason``), viewers' tracks end, the peer connection and
        the sink close. Repeatable."""
        if self._closed:
            return
        self._closed = True
        self.audio.end(reason)
        for tee in self.tees.values():
            tee.end()
        for task in self._pumps:
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        await self.pc.close()
        if self._sink is not None:
            await self._sink.close()


if TYPE_CHECKING:  # the type checker proves the protocol is met
    _whip_audio_is_a_source: type[Source] = WhipAudioSource
