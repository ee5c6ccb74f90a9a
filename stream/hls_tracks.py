"""Where the HLS writer's video and audio come from, per input and per track: packets copied as they are
(``remux``), decoded frames re-encoded (``encode``), or, for the video of an audio-only input, the layout's title
card drawn in step with the audio (``picture``). ``Tracks`` turns what the backlog brings into ``Out`` packets on
the media clock for the segmenter, and answers the segmenter's questions about each track (``TrackSource``).
Used on the writer's worker thread only.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from datetime import UTC, datetime

import av
from av.stream import Stream

from stream.hls_clock import JUMP_TICKS, MPEGTS_HZ, ticks
from stream.hls_encode import MAX_FPS, _AudioEncoder, _VideoEncoder, aac_codec, avc_codec, fit
from stream.hls_items import KINDS, Input, Kind, Mode, Out, Remux
from stream.hls_layout import HlsLayout


class Tracks:
    """The current input's tracks and the encoders behind them (kept across inputs, so the output stays one
    H.264 and one AAC stream wherever it can)."""

    def __init__(self, layout: HlsLayout) -> None:
        self._card = layout.picture
        self._segment = ticks(layout.segment_s)  # forced keyframes this far apart
        self.epoch: float | None = None  # Unix time at media time 0, for the title card's wall clock
        # Until begin_input says otherwise, frames are expected for both tracks (a WHIP-style producer).
        self._modes: dict[Kind, Mode] = {"video": "encode", "audio": "encode"}
        self._remux_templates: dict[Kind, Stream] = {}
        self._codecs: dict[Kind, str] = {}
        self._video_enc: _VideoEncoder | None = None
        self._audio_enc: _AudioEncoder | None = None
        self._picture_origin: int | None = None
        self._picture_count = 0
        self.encoders_opened = 0

    # -- what the segmenter asks (TrackSource) --------------------------------------------------------------------

    def expected(self) -> Collection[Kind]:
        return self._modes.keys()

    def template(self, kind: Kind) -> Stream | None:
        mode = self._modes.get(kind)
        if mode == "remux":
            return self._remux_templates[kind]
        encoder = self._video_enc if kind == "video" else self._audio_enc
        return encoder.template if encoder is not None and mode is not None else None

    def codec(self, kind: Kind) -> str:
        return self._codecs.get(kind, "")

    # -- what the backlog brings ------------------------------------------------------------------------------------

    def begin_input(self, item: Input) -> None:
        self._modes = {}
        self._remux_templates = {}
        for kind in KINDS:
            spec = item.video if kind == "video" else item.audio
            if isinstance(spec, Stream):
                self._modes[kind] = "remux"
                self._remux_templates[kind] = spec
                if kind == "video":
                    self._codecs["video"] = avc_codec(spec.codec_context.extradata) or self._codecs.get("video", "")
                else:
                    self._codecs["audio"] = aac_codec(spec.codec_context.profile)
            elif spec:
                self._modes[kind] = "encode"
        if "video" not in self._modes and self._card is not None and "audio" in self._modes:
            self._modes["video"] = "picture"

    def remux(self, item: Remux) -> list[Out]:
        if self._modes.get(item.kind) != "remux":
            return []  # a packet for a stream the input did not declare
        out = self._draw_picture(item.pts, item.pts + item.duration) if item.kind == "audio" else []
        return [*out, Out(item.kind, item.packet, item.pts, item.dts, item.duration, item.key)]

    def video_frame(self, frame: av.VideoFrame, pts: int) -> list[Out]:
        if self._modes.get("video") == "picture":
            self._modes["video"] = "encode"  # real pictures arrived after all: they replace the card
        if self._modes.get("video") != "encode":
            return []
        return self._encode_video(frame, pts)

    def audio_frame(self, frame: av.AudioFrame, pts: int) -> list[Out]:
        if self._modes.get("audio") != "encode":
            return []
        out = self._draw_picture(pts, pts + ticks(frame.samples / frame.sample_rate))
        if self._audio_enc is None:
            self._audio_enc = _AudioEncoder(frame.layout.nb_channels)
            self.encoders_opened += 1
            self._codecs["audio"] = aac_codec("LC")
        return out + _placed("audio", self._audio_enc.encode(frame, pts))

    def flush(self) -> list[Out]:
        """What the encoders still hold, at the end."""
        out: list[Out] = []
        if self._video_enc is not None and self._modes.get("video") in ("encode", "picture"):
            out += _placed("video", self._video_enc.flush())
        if self._audio_enc is not None and self._modes.get("audio") == "encode":
            out += _placed("audio", self._audio_enc.flush())
        return out

    # -- encoding ---------------------------------------------------------------------------------------------------

    def _encode_video(self, frame: av.VideoFrame, pts: int) -> list[Out]:
        encoder = self._video_enc
        if encoder is None:
            encoder = self._video_enc = _VideoEncoder(*fit(frame.width, frame.height))
            self.encoders_opened += 1
        if encoder.last_pts is not None and pts - encoder.last_pts < MPEGTS_HZ // MAX_FPS:
            return []  # x264 needs rising timestamps, and more than MAX_FPS is wasted on a sitting
        if encoder.last_pts is not None and pts - encoder.last_pts > JUMP_TICKS:
            encoder.next_key = None  # after a gap a new segment starts: it must start with a keyframe
        key = encoder.next_key is None or pts >= encoder.next_key - ticks(0.001)
        if key:
            encoder.next_key = pts if encoder.next_key is None else encoder.next_key
            while encoder.next_key <= pts + ticks(0.001):
                encoder.next_key += self._segment
        packets = encoder.encode(frame, pts, key)
        for packet in packets:
            if not self._codecs.get("video"):
                self._codecs["video"] = avc_codec(bytes(packet)) or ""
        return _placed("video", packets)

    def _draw_picture(self, start: int, until: int) -> list[Out]:
        """Encode title-card frames for audio from ``start`` to ``until`` (ticks), at the card's frame rate."""
        card = self._card
        if card is None or self._modes.get("video") != "picture":
            return []
        if self._picture_origin is None or start - self._next_picture(card.fps) > JUMP_TICKS:
            self._picture_origin, self._picture_count = start, 0
        epoch = self.epoch or time.time()
        out: list[Out] = []
        while (at := self._next_picture(card.fps)) < until:
            self._picture_count += 1
            frame = card.frame(at / MPEGTS_HZ, datetime.fromtimestamp(epoch + at / MPEGTS_HZ, UTC))
            out += self._encode_video(frame, at)
        return out

    def _next_picture(self, fps: float) -> int:
        assert self._picture_origin is not None
        return self._picture_origin + round(self._picture_count * MPEGTS_HZ / fps)


def _placed(kind: Kind, packets: list[av.Packet]) -> list[Out]:
    """Encoder output on the media clock; packets with no timestamp at all cannot be placed and are left out."""
    out: list[Out] = []
    for packet in packets:
        tb = packet.time_base
        stamp = packet.pts if packet.pts is not None else packet.dts
        if tb is None or stamp is None:
            continue
        pts = round(stamp * tb * MPEGTS_HZ)
        dts = round(packet.dts * tb * MPEGTS_HZ) if packet.dts is not None else pts
        duration = round(packet.duration * tb * MPEGTS_HZ) if packet.duration else 0
        out.append(Out(kind, packet, pts, dts, duration, kind == "audio" or packet.is_keyframe))
    return out
