"""A sitting's feed as live HLS: MPEG-TS segments, a sliding live playlist, and the Thai captions as WebVTT.

Files, all directly in ``out_dir`` (one directory per sitting), named by a run id so that a restarted feed never
overwrites what an earlier run wrote (segments are served as immutable)::

    index.m3u8                  master playlist: one variant, the "ไทย" SUBTITLES rendition (latest run) and the
                                captions' measured delay behind live (EXT-X-SESSION-DATA, ``hls_captions``)
    media-<run>.m3u8            media playlist: live, the last ``window`` segments, with blocking reload offered
                                (EXT-X-SERVER-CONTROL); at close, all, with ENDLIST (plain VOD)
    subs-<run>.m3u8             subtitle playlist: the same segments as WebVTT, trailing while captions settle
    <run>-00000.ts, ...         media segments (H.264 + AAC in MPEG-TS)
    <run>-00000.vtt, ...        caption segments, one per media segment, same sequence numbers and durations

One clock: media time, seconds since the start of the sitting's feed, as ``AudioSource`` stamps its chunks and the
caption engine stamps captions. Media time ``t`` is written as MPEG-TS timestamp ``TS_ORIGIN + t * 90 000``, and
every WebVTT segment carries ``X-TIMESTAMP-MAP=MPEGTS:<TS_ORIGIN>,LOCAL:00:00:00.000`` with cue times in media
time, so players put a caption on the picture it was spoken over.

Video is copied as is when it is H.264 (4:2:0) and audio when it is AAC; anything else is re-encoded (libx264
ultrafast/zerolatency at most ``MAX_WIDTH`` x ``MAX_HEIGHT`` with a keyframe every segment; AAC at 48 kHz).
An audio-only feed gets the writer's ``TitleCard`` as its picture when it has one.

All PyAV output work runs on one worker thread per writer, fed through a ``Backlog``: the ``add_*`` calls never
block unless asked to, video is dropped (and counted) when the worker falls behind, audio never is.

The work is split by concern, each part a module of its own next to this one: ``hls_clock`` (media time on the
MPEG-TS clock), ``hls_layout`` (``HlsLayout``: the directory, names and settings, fixed when the writer is made),
``hls_backlog`` (the bounded queue from producers to the worker), ``hls_items`` (what travels through it),
``hls_encode`` (remux or re-encode, codec strings, the encoders), ``hls_tracks`` (per track: remux, encode or the
title card), ``hls_segmenter`` (packets into MPEG-TS segment files), ``hls_captions`` (the caption track, sans
I/O: roll-up, which cues go into which WebVTT segment, and when each is due), ``hls_playlist`` (playlists and
WebVTT as text), ``hls_playlist_writer`` (putting them in place atomically) and ``hls_worker`` (the worker thread's
driver that joins them). The worker knows the writer only through its ``HlsLayout``: none of those modules imports
this one. This module keeps the public ``HlsWriter`` and re-exports the names other code imports from
``stream.hls``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import av
from av.stream import Stream

from stream.hls_backlog import BACKLOG_LIMITS, Backlog
from stream.hls_captions import ROLL_UP_UTTERANCES
from stream.hls_clock import MPEGTS_HZ, TIMESTAMP_MAP, TS_ORIGIN, ticks
from stream.hls_encode import (
    AUDIO_RATE,
    MAX_FPS,
    MAX_HEIGHT,
    MAX_WIDTH,
    X264_OPTIONS,
    _holder,
    aac_codec,
    avc_codec,
    can_remux,
    fit,
)
from stream.hls_items import KINDS, Barrier, Close, Epoch, FinalUntil, Input, Kind, Mode, Raw, Remux
from stream.hls_layout import MASTER_NAME, HlsLayout
from stream.hls_playlist import (
    CAPTION_DELAY_ID,
    SUBTITLE_NAME,
    Cue,
    render_master_playlist,
    render_media_playlist,
    render_vtt,
    target_duration,
)
from stream.hls_worker import Worker
from stream.titlecard import TitleCard

__all__ = [
    "AUDIO_RATE",
    "BACKLOG_LIMITS",
    "CAPTION_DELAY_ID",
    "KINDS",
    "MASTER_NAME",
    "MAX_FPS",
    "MAX_HEIGHT",
    "MAX_WIDTH",
    "MPEGTS_HZ",
    "ROLL_UP_UTTERANCES",
    "SUBTITLE_NAME",
    "TIMESTAMP_MAP",
    "TS_ORIGIN",
    "X264_OPTIONS",
    "Backlog",
    "HlsLayout",
    "HlsStats",
    "HlsWriter",
    "Kind",
    "Mode",
    "aac_codec",
    "avc_codec",
    "can_remux",
    "fit",
    "render_master_playlist",
    "render_media_playlist",
    "render_vtt",
    "target_duration",
    "ticks",
]

log = logging.getLogger(__name__)


# ---- stats --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HlsStats:
    segments: int
    subtitle_segments: int
    video_dropped: int  # video packets or frames not written because the worker was behind
    audio_dropped: int  # only ever non-zero when the worker was stuck
    late_captions: int  # captions that came after their WebVTT segments had been written
    caption_delay: float | None  # how far behind live the caption segments are written (p95 s), as announced
    encoders_opened: int  # 0 for a pure remux
    mux_errors: int
    failed: str | None


# ---- the public writer --------------------------------------------------------------------------------------------


class HlsWriter:
    """Writes one sitting's feed as HLS into ``out_dir``; see the module docstring for the files.

    Producers: one ingest at a time calls ``begin_input`` then ``add_packet`` (remux) and ``add_video_frame`` /
    ``add_audio_frame`` (re-encode) from any single thread, the event loop included: none of them blocks unless
    given ``block=True`` (for ingest threads that read files faster than real time). Frames and packets handed
    over belong to the writer from then on. ``add_caption`` and ``captions_final_until`` may come from any thread.
    ``close()`` ends the sitting's HLS: the playlists are rewritten whole with ``EXT-X-ENDLIST``.
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        segment_s: float = 1.0,
        window: int = 16,
        picture: TitleCard | None = None,
        caption_wait_s: float = 10.0,
    ) -> None:
        if not segment_s >= 0.5:
            raise ValueError(f"segment_s must be at least 0.5, not {segment_s}")
        if window < 3:
            raise ValueError(f"window must be at least 3 segments, not {window}")
        if not caption_wait_s >= 0:
            raise ValueError(f"caption_wait_s must not be negative, not {caption_wait_s}")
        self.layout = HlsLayout(
            out_dir=Path(out_dir),
            run_id=f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(2)}",
            segment_s=segment_s,
            window=window,
            caption_wait_s=caption_wait_s,
            picture=picture,
        )
        self.epoch: float | None = None  # Unix time at media time 0: the live moment the clock counts from
        self._backlog = Backlog(BACKLOG_LIMITS)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._worker = Worker(self.layout)
        self._kinds: dict[int, Kind] = {}  # input stream index -> track, for add_packet
        self._video_resync = False  # waiting for a keyframe after dropping remuxed video
        self._resync_dropped = 0
        self._failed: str | None = None

    # The layout, read-only, under the names the writer has always had.

    @property
    def out_dir(self) -> Path:
        return self.layout.out_dir

    @property
    def run_id(self) -> str:
        return self.layout.run_id

    @property
    def segment_s(self) -> float:
        return self.layout.segment_s

    @property
    def window(self) -> int:
        return self.layout.window

    @property
    def picture(self) -> TitleCard | None:
        return self.layout.picture

    @property
    def caption_wait_s(self) -> float:
        return self.layout.caption_wait_s

    @property
    def master_playlist(self) -> Path:
        return self.layout.master_playlist

    @property
    def media_playlist(self) -> Path:
        return self.layout.media_playlist

    @property
    def subtitle_playlist(self) -> Path:
        return self.layout.subtitle_playlist

    # -- producers --------------------------------------------------------------------------------------------------

    def begin_input(self, *, video: Stream | bool, audio: Stream | bool = True, block: bool = False) -> None:
        """A (re)opened input: which streams follow, as packets to remux (the input's ``Stream``), as frames to
        encode (``True``), or not at all (``False``; an audio-only input then shows the title card).

        Call it on the thread that owns the input, while it is open: remuxed streams' parameters are copied here.
        Without it the writer expects frames for both video and audio.
        """
        copies: dict[Kind, Stream | bool] = {"video": video, "audio": audio}
        self._kinds = {}
        for kind, spec in list(copies.items()):
            if isinstance(spec, Stream):
                self._kinds[spec.index] = kind
                copies[kind] = _holder().add_stream_from_template(spec)
        self._video_resync = isinstance(video, Stream)
        self._offer(Input(video=copies["video"], audio=copies["audio"]), "control", block=block)

    def add_packet(self, packet: av.Packet, shift: float, *, block: bool = False) -> bool:
        """Remux a demuxed packet of a stream given to ``begin_input``; media time = packet time + ``shift``.

        Returns ``False`` when it was dropped (video behind a slow worker, or waiting for the next keyframe).
        """
        kind = self._kinds.get(packet.stream_index)
        stamp = packet.pts if packet.pts is not None else packet.dts
        if self._closed or kind is None or not packet.size or stamp is None or packet.time_base is None:
            return False
        tb = packet.time_base
        pts = ticks(float(stamp * tb) + shift)
        dts = ticks(float(packet.dts * tb) + shift) if packet.dts is not None else pts
        duration = ticks(float(packet.duration * tb)) if packet.duration else 0
        key = kind == "audio" or packet.is_keyframe
        if kind == "video" and self._video_resync and not key:
            self._resync_dropped += 1
            return False
        item = Remux(kind, packet, pts, dts, duration, key)
        accepted = self._offer(item, "packet" if kind == "video" else "audio", block=block, at=pts)
        if kind == "video":
            self._video_resync = not accepted
        return accepted

    def add_video_frame(self, frame: av.VideoFrame, t: float, *, block: bool = False) -> bool:
        """Encode a decoded picture shown at media time ``t``; ``False`` if dropped because the worker is behind."""
        return self._offer(Raw(frame, ticks(t)), "frame", block=block, at=ticks(t))

    def add_audio_frame(self, frame: av.AudioFrame, t: float, *, block: bool = False) -> bool:
        """Encode decoded audio starting at media time ``t``. Audio is never dropped for being slow."""
        return self._offer(Raw(frame, ticks(t)), "audio", block=block, at=ticks(t))

    can_remux = staticmethod(can_remux)

    def add_caption(self, start: float, end: float, text: str, utterance: str | None = None) -> None:
        """A final caption, in media seconds, for the WebVTT rendition.

        Pieces of one ``utterance`` (the engine's ``segment_id``) roll up: each cue shows the utterance so far,
        its last two lines, rather than the few words of the piece alone.
        """
        if text.strip():
            self._offer(Cue(start, max(start, end), text, utterance), "control")

    def captions_final_until(self, t: float) -> None:
        """Every caption ending before media time ``t`` has been added: caption segments up to ``t`` can be written."""
        self._offer(FinalUntil(t), "control")

    def _offer(self, item: object, cls: str, *, block: bool = False, at: int | None = None) -> bool:
        with self._lock:
            if self._closed or self._failed is not None:
                return False
            if at is not None and self.epoch is None:
                self.epoch = time.time() - at / MPEGTS_HZ
                # Ahead of the media that set it, so the worker dates every segment by it.
                self._backlog.offer(Epoch(self.epoch), "control", force=True)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"hls {self.out_dir.name}", daemon=True)
                self._thread.start()
        accepted = self._backlog.offer(item, cls, block=block)
        if not accepted and cls == "audio" and self._backlog.dropped("audio") % 1000 == 1:
            log.error("HLS writer for %s is stuck: audio is being dropped", self.out_dir)
        return accepted

    # -- lifecycle --------------------------------------------------------------------------------------------------

    def sync(self, timeout: float | None = None) -> bool:
        """Block until everything offered before this call has been written. For threads and tests."""
        reached = threading.Event()
        if not self._offer(Barrier(reached), "control"):
            return self._thread is None or not self._thread.is_alive()
        return reached.wait(timeout)

    def close(self) -> None:
        """End the HLS (idempotent, returns at once): the worker finishes the files, then exits."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._thread is None:
                return
        self._backlog.offer(Close(), "control", force=True)
        self._backlog.shut()

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until the worker has finished after ``close()``; ``False`` on timeout."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    async def aclose(self) -> None:
        """``close()``, then wait (off the event loop) until the closed playlists are written."""
        self.close()
        if self._thread is not None:
            await asyncio.to_thread(self.wait_closed)

    def stats(self) -> HlsStats:
        # Read from another thread while the worker runs: each figure is a single int, read whole.
        w = self._worker
        return HlsStats(
            segments=w.playlists.count,
            subtitle_segments=w.playlists.captioned,
            video_dropped=self._backlog.dropped("frame") + self._backlog.dropped("packet") + self._resync_dropped,
            audio_dropped=self._backlog.dropped("audio"),
            late_captions=w.captions.late,
            caption_delay=w.captions.delay(),
            encoders_opened=w.tracks.encoders_opened,
            mux_errors=w.segmenter.mux_errors,
            failed=self._failed,
        )

    def _run(self) -> None:
        worker = self._worker
        try:
            while True:
                item = self._backlog.take(worker.next_deadline())
                if isinstance(item, Close):
                    worker.finish()
                    return
                if item is not None:
                    worker.handle(item)
                worker.write_due_captions()
        except Exception as exc:  # the feed's captions and archive must go on without its video
            log.exception("HLS writer for %s failed", self.out_dir)
            self._failed = repr(exc)
            for left in self._backlog.abandon():
                if isinstance(left, Barrier):
                    left.reached.set()
        finally:
            self._backlog.shut()
