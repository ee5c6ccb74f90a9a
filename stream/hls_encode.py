"""What HLS can carry as is and how the rest is re-encoded: ``can_remux`` decides between copying and encoding, the
RFC 6381 codec strings (``avc_codec``, ``aac_codec``) name what a variant holds, and the two encoders turn decoded
frames into H.264 (libx264, at most ``MAX_WIDTH`` x ``MAX_HEIGHT``, see ``fit``) and 48 kHz AAC on the media clock.
The encoders are used on the writer's worker thread only.
"""

from __future__ import annotations

import io
from fractions import Fraction
from types import MappingProxyType

import av
import numpy as np
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.stream import Stream
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from stream.hls_clock import MPEGTS_HZ

MAX_WIDTH, MAX_HEIGHT = 854, 480
MAX_FPS = 30
AUDIO_RATE = 48_000
X264_OPTIONS = MappingProxyType(
    {"preset": "ultrafast", "tune": "zerolatency", "crf": "26", "maxrate": "1200k", "bufsize": "2400k"}
)


def can_remux(stream: Stream) -> bool:
    """Whether HLS can carry ``stream`` as is: H.264 4:2:0 video or AAC audio."""
    name = stream.codec_context.name
    if stream.type == "audio":
        return name == "aac"
    if stream.type != "video" or name != "h264":
        return False
    # 4:2:2 and 10-bit H.264 (studio feeds) play in no browser: those are re-encoded.
    ctx = stream.codec_context
    return isinstance(ctx, VideoCodecContext) and ctx.pix_fmt in (None, "yuv420p", "yuvj420p")


def avc_codec(data: bytes | None) -> str | None:
    """The RFC 6381 ``avc1.PPCCLL`` string from an avcC record or an Annex B stream holding an SPS."""
    if not data:
        return None
    if data[0] == 1 and len(data) >= 4:
        return f"avc1.{data[1]:02x}{data[2]:02x}{data[3]:02x}"
    start = 0
    while (found := data.find(b"\x00\x00\x01", start)) >= 0:
        nal = data[found + 3 : found + 7]
        if len(nal) == 4 and nal[0] & 0x1F == 7:
            return f"avc1.{nal[1]:02x}{nal[2]:02x}{nal[3]:02x}"
        start = found + 3
    return None


def aac_codec(profile: str | None) -> str:
    """The RFC 6381 string for an AAC profile name as FFmpeg gives it."""
    return {"HE-AAC": "mp4a.40.5", "HE-AACv2": "mp4a.40.29"}.get(profile or "", "mp4a.40.2")


def fit(width: int, height: int) -> tuple[int, int]:
    """The largest even size within ``MAX_WIDTH`` x ``MAX_HEIGHT`` with the same shape, never upscaled."""
    scale = min(MAX_WIDTH / width, MAX_HEIGHT / height, 1.0)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


# ---- encoders -----------------------------------------------------------------------------------------------------


def _holder() -> OutputContainer:
    # A never-written container whose streams hold codec parameters (or an open encoder) that each segment's
    # container copies: PyAV creates output streams from templates, and input streams die with their input.
    return av.open(io.BytesIO(), "w", format="mpegts")


class _VideoEncoder:
    """libx264 at a fixed size; the caller decides which frames are keyframes."""

    def __init__(self, width: int, height: int) -> None:
        self.size = (width, height)
        self._holder = _holder()
        stream = self._holder.add_stream("libx264", rate=MAX_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, MPEGTS_HZ)
        # Without a global header x264 repeats SPS/PPS at every IDR: each segment decodes on its own.
        stream.codec_context.options = {**X264_OPTIONS, "forced-idr": "1", "x264-params": "scenecut=0:keyint=600"}
        stream.codec_context.thread_count = 1  # cheap at this size; leaves the other cores to captioning
        self._holder.start_encoding()
        self.template: VideoStream = stream
        self._scaler = VideoReformatter()
        self.last_pts: int | None = None
        self.next_key: int | None = None

    def encode(self, frame: av.VideoFrame, pts: int, key: bool) -> list[av.Packet]:
        width, height = self.size
        if (frame.width, frame.height, frame.format.name) != (width, height, "yuv420p"):
            frame = self._scaler.reformat(frame, width=width, height=height, format="yuv420p", interpolation="BILINEAR")
        frame.pts = pts
        frame.time_base = Fraction(1, MPEGTS_HZ)
        frame.pict_type = PictureType.I if key else PictureType.NONE
        self.last_pts = pts
        return list(self.template.encode(frame))

    def flush(self) -> list[av.Packet]:
        return list(self.template.encode(None))


class _AudioEncoder:
    """AAC-LC at 48 kHz, mono or stereo as the first input was, on a sample clock anchored to media time."""

    def __init__(self, channels: int) -> None:
        self._layout = "mono" if channels == 1 else "stereo"
        self._holder = _holder()
        stream = self._holder.add_stream("aac", rate=AUDIO_RATE)
        stream.layout = self._layout
        stream.bit_rate = 64_000 if channels == 1 else 128_000
        stream.codec_context.time_base = Fraction(1, AUDIO_RATE)
        self._holder.start_encoding()
        self.template: AudioStream = stream
        self._frame_size = stream.codec_context.frame_size
        self._resampler: AudioResampler | None = None
        self._input: tuple[str, str, int] | None = None
        self._next: int | None = None  # sample clock position of the next output sample

    def encode(self, frame: av.AudioFrame, pts: int) -> list[av.Packet]:
        start = round(pts * AUDIO_RATE / MPEGTS_HZ)
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        packets: list[av.Packet] = []
        # A jump of more than 0.1 s (a reconnect) re-anchors the clock; the resampler's own delay is far less.
        if self._next is None or shape != self._input or abs(start - self._next) > AUDIO_RATE // 10:
            packets += self._finish_frames()
            self._next = start if self._next is None else max(start, self._next)
            self._resampler = AudioResampler(
                format="fltp", layout=self._layout, rate=AUDIO_RATE, frame_size=self._frame_size
            )
            self._input = shape
        assert self._resampler is not None
        for out in self._resampler.resample(frame):
            packets += self._encode(out)
        return packets

    def flush(self) -> list[av.Packet]:
        return self._finish_frames() + list(self.template.encode(None))

    def _encode(self, frame: av.AudioFrame) -> list[av.Packet]:
        assert self._next is not None
        frame.pts = self._next
        frame.time_base = Fraction(1, AUDIO_RATE)
        self._next += frame.samples
        return list(self.template.encode(frame))

    def _finish_frames(self) -> list[av.Packet]:
        """Encode what the resampler holds, padded with silence to a whole AAC frame (AAC takes no short ones)."""
        if self._resampler is None:
            return []
        packets: list[av.Packet] = []
        for out in self._resampler.resample(None):
            if out.samples < self._frame_size:
                planes = out.to_ndarray()
                padded = np.zeros((planes.shape[0], self._frame_size), dtype=planes.dtype)
                padded[:, : out.samples] = planes
                out = av.AudioFrame.from_ndarray(padded, format="fltp", layout=self._layout)
                out.sample_rate = AUDIO_RATE
            packets += self._encode(out)
        self._resampler = None
        return packets
