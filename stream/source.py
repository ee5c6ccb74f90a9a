"""A sitting's audio from any FFmpeg input, as 16 kHz mono float32 chunks stamped with media time.

``AudioSource`` opens a local file or a network stream (HTTP(S) MP4 or HLS, RTSP, RTMP, SRT where the FFmpeg
build has it) through PyAV. All blocking PyAV work runs on one worker thread per iteration; chunks reach the
event loop through a bounded ``asyncio.Queue``. Live sources that drop are reopened with capped, jittered
exponential backoff, and the outage is reported in-band as ``SourceGap`` items rather than raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.stream import Disposition, Stream

from common.backoff import backoff_delay
from stream.chunker import Chunker
from stream.errors import SourceError, no_audio_error, open_error, read_error
from stream.resample import SAMPLE_RATE, MonoResampler
from stream.uri import is_network_uri, redact_uri

if TYPE_CHECKING:
    from stream.hls import HlsWriter

__all__ = [
    "SAMPLE_RATE",
    "AudioChunk",
    "AudioSource",
    "SourceError",
    "SourceGap",
    "Source",
    "is_network_uri",
    "open_audio",
]

log = logging.getLogger(__name__)

# How much decoded audio may wait for a slow consumer before the decoder blocks.
_QUEUE_SECONDS = 10.0
# HLS can block a single read for a whole target duration (often 6-10 s) before the next segment exists,
# so a stall is only declared after this long even when opening uses a shorter timeout.
_READ_TIMEOUT_FLOOR = 20.0
# How often a decoder blocked on a full queue checks whether it has been stopped.
_PUT_POLL_SECONDS = 0.1
# How long a finished iteration waits for its decoder thread to wind down. Past this the thread is left to
# end by itself (a network read only gives up at its timeout); once stopped it sends nothing more.
_STOP_GRACE_SECONDS = 2.0
# A file played as live that also feeds HLS is read at most this far ahead of the wall clock, so the HLS writer
# gets it at live pace (its video backlog is sized for that) instead of ten seconds of pictures in one burst.
_HLS_LEAD_SECONDS = 1.0


@dataclass(frozen=True)
class AudioChunk:
    """A run of contiguous audio: the next chunk starts where this one ends, unless a ``SourceGap`` comes between."""

    samples: np.ndarray  # float32, 16 kHz mono
    start: float  # seconds of media time from the start of the sitting's feed (monotonic across loops and reopens)

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True)
class SourceGap:
    """A live source dropped: audio stopped at media time ``at`` because of ``reason``.

    Each outage is reported twice: once when audio stops (``duration`` is ``None``: still out, reconnecting),
    and once when the source is back (``duration`` is how far media time skipped; the next chunk starts at
    ``at + duration``). Publish the first as the sitting's status, the second as its recovery.
    """

    reason: str
    at: float  # media time where audio stopped
    duration: float | None

    @property
    def resumed(self) -> bool:
        return self.duration is not None


class Source(Protocol):
    """A sitting's audio as the live feed consumes it: ``AudioSource`` (files and URLs) and
    ``stream.whip.WhipAudioSource`` (a WHIP publisher) implement it.

    The contract:

    * ``probe()`` returns once audio can be read, or raises ``SourceError`` (nothing to read, never arrived);
    * iterating yields ``AudioChunk``s of 16 kHz mono float32 in media-time order, media time never going back;
      where audio was lost (a live source dropped, a publisher vanished) a ``SourceGap`` says so in-band, and
      the iteration ends only when the source has nothing more (a finite file, a publisher that left), never
      for a recoverable outage (a failure retrying cannot fix raises ``SourceError``). One iteration at a time;
    * ``stop()`` ends the current iteration promptly (and any later one), from the consumer's side; it is
      repeatable and never waits;
    * ``uri`` names the source in logs and status events with any secret in it masked;
    * ``hls`` is the HLS writer the same media also feeds, or None: the feed adds the captions to it and closes
      it when the audio ends.
    """

    @property
    def uri(self) -> str: ...

    @property
    def hls(self) -> HlsWriter | None: ...

    async def probe(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[AudioChunk | SourceGap]: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class _Failed:
    error: SourceError


# What the decoder thread sends the consumer; ``None`` ends the iteration.
_Item = AudioChunk | SourceGap | _Failed | None


@dataclass(frozen=True)
class _Settings:
    uri: str
    loop: bool
    reconnect: bool
    chunk_samples: int
    min_backoff: float
    max_backoff: float
    open_timeout: float
    read_timeout: float


def open_audio(uri: str, *, open_timeout: float, read_timeout: float) -> tuple[InputContainer, AudioStream]:
    """Open ``uri`` and pick its best audio stream; blocking. Raises ``SourceError``; the caller closes it."""
    started = time.monotonic()
    try:
        container = av.open(uri, mode="r", timeout=(open_timeout, read_timeout))
    except Exception as exc:  # any failure to open is reported the same way, with the cause chained
        raise open_error(uri, exc, waited=time.monotonic() - started, timeout=open_timeout) from exc
    stream = container.streams.best("audio")
    if stream is None:
        kinds: list[str] = [s.type for s in container.streams]
        container.close()
        raise no_audio_error(uri, kinds)
    return container, cast(AudioStream, stream)  # best("audio") is an AudioStream; PyAV types it as Stream


class _Stopped(Exception):
    """The consumer has gone: the decoder thread unwinds without sending anything more."""


class _Outbox:
    """The decoder thread's end of the bounded queue: ``put`` blocks while the queue is full."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[_Item], stop: threading.Event) -> None:
        self._loop = loop
        self._queue = queue
        self._stop = stop

    def put(self, item: _Item) -> None:
        if self._stop.is_set() or self._loop.is_closed():
            raise _Stopped
        try:
            future = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
        except RuntimeError as exc:  # the loop closed between the check and the call
            raise _Stopped from exc
        while True:
            try:
                future.result(timeout=_PUT_POLL_SECONDS)
                return
            except TimeoutError:
                if self._stop.is_set() or self._loop.is_closed():
                    future.cancel()
                    raise _Stopped from None
            except CancelledError:
                raise _Stopped from None


@dataclass
class _Outage:
    reason: str
    at: float
    since: float  # time.monotonic() when audio stopped


class _Feed:
    """The decoding half of one iteration, run on a worker thread: open, decode, resample, chunk, reconnect."""

    def __init__(self, settings: _Settings, outbox: _Outbox, stop: threading.Event, hls: _HlsTap | None = None) -> None:
        self._s = settings
        self._out = outbox
        self._stop = stop
        self._hls = hls
        self._chunker = Chunker(settings.chunk_samples)
        # Media time at the end of all audio decoded so far (the chunker's clock plus what it still buffers):
        # where a reopened input's first sample lands.
        self._pushed = 0
        self._skipped = 0.0
        self._resampler = MonoResampler()
        self._rng = random.Random()
        self._got_audio = False  # whether the current connection has produced audio yet
        self._shown = redact_uri(settings.uri)

    def run(self) -> None:
        try:
            self._run()
            self._out.put(None)
        except _Stopped:
            pass
        except SourceError as exc:
            self._send_failure(exc)
        except Exception as exc:  # a bug here must still end the consumer's iteration, with context
            log.exception("audio source %s failed", self._shown)
            self._send_failure(SourceError(f"audio source {self._shown} failed unexpectedly: {exc!r}"))

    def _send_failure(self, error: SourceError) -> None:
        with contextlib.suppress(_Stopped):
            self._out.put(_Failed(error))

    def _run(self) -> None:
        failures = 0
        outage: _Outage | None = None
        while not self._stop.is_set():
            try:
                container, stream = open_audio(
                    self._s.uri, open_timeout=self._s.open_timeout, read_timeout=self._s.read_timeout
                )
            except SourceError as exc:
                if not (self._s.reconnect and exc.retryable):
                    raise
                outage = outage or self._audio_stopped(str(exc))
                failures += 1
                self._back_off(failures, str(exc))
                continue
            with container:
                if outage is not None:
                    self._audio_resumed(outage)
                    outage = None
                # A known duration means finite media (a file, an MP4, a finished HLS playlist); live feeds
                # have none, so reaching their end means the publisher went away.
                finite = container.duration is not None
                self._got_audio = False
                problem: SourceError | None = None
                try:
                    self._pump(container, stream)
                except (av.error.FFmpegError, OSError) as exc:
                    problem = read_error(self._s.uri, exc, timeout=self._s.read_timeout)
                    problem.__cause__ = exc
            if self._stop.is_set():
                return
            if self._got_audio:
                failures = 0
            if problem is None and finite:
                if self._s.loop and self._got_audio:
                    continue
                self._flush()
                return
            reason = str(problem) if problem is not None else f"the live stream {self._shown} ended"
            if not self._s.reconnect:
                self._flush()
                if problem is not None:
                    raise problem
                return
            outage = self._audio_stopped(reason)
            failures += 1
            self._back_off(failures, reason)

    def _pump(self, container: InputContainer, stream: AudioStream) -> None:
        """Decode until the input ends, noting in ``_got_audio`` whether any audio came out (even if it fails)."""
        hls = self._hls
        video = hls.open(container, stream, self._media_end()) if hls is not None else []
        for packet in container.demux(stream, *video):
            if self._stop.is_set():
                raise _Stopped
            if hls is not None and packet.stream_index != stream.index:
                hls.video_packet(packet)
                continue
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                # One corrupt packet costs its few milliseconds of audio, not the whole feed.
                continue
            for frame in frames:
                if not isinstance(frame, av.AudioFrame):  # an audio packet decodes to audio frames only
                    continue
                for samples in self._resampler.convert(frame):
                    self._got_audio = self._got_audio or samples.size > 0
                    self._push(samples)
                if hls is not None:
                    hls.audio_frame(frame)
            if hls is not None:
                hls.audio_packet(packet)  # after decoding: the HLS writer takes the packet over
        for samples in self._resampler.flush():
            self._push(samples)

    def _push(self, samples: np.ndarray) -> None:
        self._pushed += samples.size
        self._send(self._chunker.push(samples))

    def _media_end(self) -> float:
        return self._skipped + self._pushed / SAMPLE_RATE

    def _send(self, chunks: list[tuple[float, np.ndarray]]) -> None:
        for start, samples in chunks:
            self._out.put(AudioChunk(samples=samples, start=start))

    def _flush(self) -> None:
        for samples in self._resampler.flush():
            self._push(samples)
        rest = self._chunker.flush()
        if rest is not None:
            self._send([rest])

    def _audio_stopped(self, reason: str) -> _Outage:
        self._flush()
        outage = _Outage(reason=reason, at=self._chunker.now, since=time.monotonic())
        self._out.put(SourceGap(reason=reason, at=outage.at, duration=None))
        return outage

    def _audio_resumed(self, outage: _Outage) -> None:
        # Media time follows the wall clock through an outage, so captions stay aligned with a recording.
        skipped = time.monotonic() - outage.since
        self._chunker.skip(skipped)
        self._skipped += max(0.0, skipped)
        self._out.put(SourceGap(reason=outage.reason, at=outage.at, duration=skipped))

    def _back_off(self, failures: int, reason: str) -> None:
        delay = backoff_delay(failures, base=self._s.min_backoff, cap=self._s.max_backoff, rng=self._rng)
        log.warning("audio source %s: %s; reconnecting in %.3g s", self._shown, reason, delay)
        if self._stop.wait(delay):
            raise _Stopped


class _HlsTap:
    """The decoder thread's hand-off to an ``HlsWriter``: packets HLS carries as they are, decoded frames otherwise.

    Timestamps are moved onto the feed's media time: a connection's first audio sample is where the audio clock
    stood when it opened, so HLS, captions and chunks share one clock across loops and reconnects.
    """

    def __init__(self, writer: HlsWriter, *, block: bool, pace: bool, stop: threading.Event) -> None:
        self._writer = writer
        self._block = block  # a file read faster than real time waits for the writer rather than dropping video
        self._pace = pace
        self._stop = stop
        self._shift = 0.0  # media time minus input time, for the current connection
        self._remux_video = False
        self._remux_audio = False
        self._anchor: tuple[float, float] | None = None  # (monotonic time, media time) pacing counts from

    def open(self, container: InputContainer, audio: AudioStream, media_start: float) -> list[Stream]:
        """A new connection (or loop) of the input; returns the video stream to demux too, if there is one."""
        # Cover art in a music file is a one-picture "video" stream: an audio-only source for HLS purposes.
        video = next((s for s in container.streams.video if not s.disposition & Disposition.attached_pic), None)
        self._remux_video = video is not None and self._writer.can_remux(video)
        self._remux_audio = self._writer.can_remux(audio)
        if audio.start_time is not None and audio.time_base is not None:
            origin = float(audio.start_time * audio.time_base)
        else:
            origin = container.start_time / av.time_base if container.start_time is not None else 0.0
        self._shift = media_start - origin
        self._writer.begin_input(
            video=video if video is not None and self._remux_video else video is not None,
            audio=audio if self._remux_audio else True,
            block=self._block,
        )
        return [video] if video is not None else []

    def video_packet(self, packet: av.Packet) -> None:
        if self._remux_video:
            self._wait_for(packet)
            self._writer.add_packet(packet, self._shift, block=self._block)
            return
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            return  # a corrupt picture costs a frame of video, never the audio
        for frame in frames:
            if frame.time is not None:
                t = frame.time + self._shift
                self._wait_until(t)
                self._writer.add_video_frame(frame, t, block=self._block)

    def audio_packet(self, packet: av.Packet) -> None:
        if self._remux_audio:
            self._wait_for(packet)
            self._writer.add_packet(packet, self._shift, block=self._block)

    def audio_frame(self, frame: av.AudioFrame) -> None:
        if not self._remux_audio and frame.time is not None:
            t = frame.time + self._shift
            self._wait_until(t)
            self._writer.add_audio_frame(frame, t, block=self._block)

    def _wait_for(self, packet: av.Packet) -> None:
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is not None and packet.time_base is not None:
            self._wait_until(float(stamp * packet.time_base) + self._shift)

    def _wait_until(self, t: float) -> None:
        if not self._pace:
            return
        now = time.monotonic()
        if self._anchor is None:
            self._anchor = (now, t)
        wall, media = self._anchor
        delay = wall + (t - media) - _HLS_LEAD_SECONDS - now
        if delay > 0 and self._stop.wait(delay):
            raise _Stopped


class _Pacer:
    """Holds each chunk back until the wall clock reaches its end, so a file plays out like a live feed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._anchor: tuple[float, float] | None = None  # (loop time, media time) pacing counts from

    async def wait(self, item: AudioChunk | SourceGap) -> None:
        if isinstance(item, SourceGap):
            self._anchor = None
            return
        if self._anchor is None:
            self._anchor = (self._loop.time(), item.start)
        wall, media = self._anchor
        delay = wall + (item.end - media) - self._loop.time()
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class _Run:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[_Item]
    stop: threading.Event

    def wake(self) -> None:
        # A consumer waiting on an empty queue needs an item to notice the stop; a full one has items already.
        if not self.queue.full():
            self.queue.put_nowait(None)


class AudioSource:
    """Audio of one sitting's feed, iterated as ``AudioChunk``s and ``SourceGap``s.

    ``realtime`` paces output at 1x media time, so a file plays as if live. ``loop`` replays finite media
    forever, media time still rising. ``reconnect`` (default: on for network URIs, off for files) reopens a
    source that drops or cannot be opened yet, waiting ``min_backoff`` doubling up to ``max_backoff`` seconds
    (jittered) between attempts; only errors that retrying cannot fix (an unsupported protocol) are raised.
    Without it, an open or read failure raises ``SourceError``. Finite media without ``loop`` ends the
    iteration at its end.

    Backpressure: nothing is dropped. When the consumer is slower than the decoder, the decoder thread blocks
    once ``_QUEUE_SECONDS`` of audio is queued; for a file that simply slows decoding. For a live source it
    lets the network buffers fill: the server then drops or stalls the connection, which is reported as a
    ``SourceGap`` and reconnected like any other outage, so lost audio is always announced, never silent.

    ``hls``: the same demux pass also feeds this writer (H.264/AAC packets remuxed, anything else decoded and
    re-encoded), on the same media-time clock as the chunks. A file played ``realtime`` is then read at most
    ``_HLS_LEAD_SECONDS`` ahead of the wall clock; one read as fast as possible waits for the writer. The source
    never closes the writer: its owner does, when the feed ends.

    One iteration runs at a time; ``stop()`` ends it (and any later one).
    """

    def __init__(
        self,
        uri: str,
        *,
        realtime: bool = False,
        loop: bool = False,
        chunk_seconds: float = 0.5,
        reconnect: bool | None = None,
        min_backoff: float = 1.0,
        max_backoff: float = 30.0,
        open_timeout: float = 10.0,
        hls: HlsWriter | None = None,
    ) -> None:
        if not chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be positive, not {chunk_seconds}")
        if not 0 < min_backoff <= max_backoff:
            raise ValueError(f"need 0 < min_backoff <= max_backoff, not {min_backoff} and {max_backoff}")
        if not open_timeout > 0:
            raise ValueError(f"open_timeout must be positive, not {open_timeout}")
        self._settings = _Settings(
            uri=uri,
            loop=loop,
            reconnect=is_network_uri(uri) if reconnect is None else reconnect,
            chunk_samples=max(1, round(chunk_seconds * SAMPLE_RATE)),
            min_backoff=min_backoff,
            max_backoff=max_backoff,
            open_timeout=open_timeout,
            read_timeout=max(open_timeout, _READ_TIMEOUT_FLOOR),
        )
        self._realtime = realtime
        self._hls = hls
        self._queue_size = max(2, math.ceil(_QUEUE_SECONDS / chunk_seconds))
        self._stopped = threading.Event()
        self._run: _Run | None = None

    @property
    def uri(self) -> str:
        """The source URI with any password masked, for logs and status events."""
        return redact_uri(self._settings.uri)

    @property
    def reconnect(self) -> bool:
        return self._settings.reconnect

    @property
    def hls(self) -> HlsWriter | None:
        """The HLS writer this source also feeds, if any (its owner closes it)."""
        return self._hls

    async def probe(self) -> None:
        """Open the source once and check it has an audio stream; raises ``SourceError`` if not."""
        await asyncio.to_thread(self._probe)

    def _probe(self) -> None:
        container, _ = open_audio(
            self._settings.uri, open_timeout=self._settings.open_timeout, read_timeout=self._settings.read_timeout
        )
        container.close()

    def __aiter__(self) -> AsyncIterator[AudioChunk | SourceGap]:
        return self.chunks()

    async def chunks(self) -> AsyncIterator[AudioChunk | SourceGap]:
        """Audio chunks in media-time order, with ``SourceGap``s where a live source dropped."""
        if self._stopped.is_set():
            return
        if self._run is not None:
            raise RuntimeError(f"audio source {self.uri} is already being iterated")
        loop = asyncio.get_running_loop()
        run = _Run(loop=loop, queue=asyncio.Queue(maxsize=self._queue_size), stop=threading.Event())
        finished = asyncio.Event()
        tap = None
        if self._hls is not None:
            # Files read as fast as possible wait for the writer; anything live drops video rather than fall behind.
            pace = self._realtime and not is_network_uri(self._settings.uri)
            tap = _HlsTap(self._hls, block=not self._realtime, pace=pace, stop=run.stop)
        feed = _Feed(self._settings, _Outbox(loop, run.queue, run.stop), run.stop, tap)
        thread = threading.Thread(
            target=_run_then(feed.run, lambda: loop.call_soon_threadsafe(finished.set)),
            name=f"audio-source {self.uri}",
            daemon=True,
        )
        self._run = run
        thread.start()
        pacer = _Pacer(loop) if self._realtime else None
        try:
            while True:
                item = await run.queue.get()
                if item is None or run.stop.is_set():
                    return
                if isinstance(item, _Failed):
                    raise item.error
                if pacer is not None:
                    await pacer.wait(item)
                    if run.stop.is_set():
                        return
                yield item
        finally:
            run.stop.set()
            self._run = None
            # Normally the thread is gone within a poll interval, leaving no stray work behind the iteration.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), _STOP_GRACE_SECONDS)

    def stop(self) -> None:
        """End the current iteration promptly, and any later one at once. Safe from any thread, repeatable."""
        self._stopped.set()
        run = self._run
        if run is None:
            return
        run.stop.set()
        with contextlib.suppress(RuntimeError):  # the loop has already closed: nothing left to wake
            run.loop.call_soon_threadsafe(run.wake)


def _run_then(work: Callable[[], None], then: Callable[[], object]) -> Callable[[], None]:
    def target() -> None:
        try:
            work()
        finally:
            with contextlib.suppress(RuntimeError):  # the loop closed first; nobody is waiting
                then()

    return target


if TYPE_CHECKING:  # the type checker proves the protocol is met
    _audio_source_is_a_source: type[Source] = AudioSource
