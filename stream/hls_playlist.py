"""The text ``stream.hls`` publishes, rendered by pure functions from records of what has been written: media
playlists (of .ts or, for the captions, .vtt segments), the master playlist with its Thai SUBTITLES rendition, and
WebVTT caption segments with cue times in media time. No I/O: ``hls_playlist_writer`` puts the text in place.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from common.cues import Utterance, vtt_cue_block
from common.cues import cues as caption_cues
from stream.hls_clock import MPEGTS_HZ, TIMESTAMP_MAP

SUBTITLE_NAME = "ไทย"
# EXT-X-SESSION-DATA of the master playlist: how far behind live the captions are in the subtitle playlist (p95,
# seconds), so that a player can sit just far enough back for every caption to be on its picture.
CAPTION_DELAY_ID = "org.sapha.caption-delay"


# ---- records ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cue:
    """A caption in media seconds; ``utterance`` (the engine's segment id) groups the pieces that roll up."""

    start: float
    end: float
    text: str
    utterance: str | None = None


@dataclass(frozen=True)
class Segment:
    """A media segment as written: its .ts file and, by the same name, its .vtt caption segment."""

    seq: int
    name: str
    start: int  # media ticks
    duration: int  # ticks
    discontinuity: bool
    date: str  # EXT-X-PROGRAM-DATE-TIME
    size: int  # bytes
    closed_at: float  # time.monotonic() when it was written

    @property
    def end(self) -> int:
        return self.start + self.duration

    def vtt_name(self) -> str:
        return self.name.removesuffix(".ts") + ".vtt"


@dataclass(frozen=True)
class Variant:
    """What the master playlist announces of the stream: RFC 6381 codec strings and the picture size."""

    codecs: str
    resolution: tuple[int, int] | None


# ---- playlists and WebVTT (pure) --------------------------------------------------------------------------------


def target_duration(longest: float) -> int:
    """EXT-X-TARGETDURATION for segments up to ``longest`` seconds long."""
    # RFC 8216: every EXTINF, rounded to the nearest integer, must be at most the target duration.
    return max(1, math.floor(longest + 0.5))


def render_media_playlist(
    segments: Sequence[Segment], *, target: int, ended: bool, discontinuities_before: int, subtitles: bool = False
) -> str:
    """A media playlist listing ``segments`` (their .ts, or with ``subtitles`` their .vtt).

    Live, it says the server answers blocking reloads (``_HLS_msn``, ``live.hls_http``), so a player learns of a
    new segment the moment it is listed instead of at its next poll; ended, it is a plain VOD playlist.
    """
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}"]
    if not ended:
        # HOLD-BACK: the least RFC 8216bis allows (3 target durations), for players with no better idea.
        lines.append(f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,HOLD-BACK={3 * target:.1f}")
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{segments[0].seq if segments else 0}")
    if discontinuities_before:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuities_before}")
    for segment in segments:
        if segment.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{segment.date}")
        lines.append(f"#EXTINF:{segment.duration / MPEGTS_HZ:.3f},")
        lines.append(segment.vtt_name() if subtitles else segment.name)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def render_master_playlist(
    variant: Variant,
    *,
    bandwidth: int,
    average: int,
    media_uri: str,
    subtitles_uri: str,
    caption_delay: float | None = None,
) -> str:
    """The master playlist: one variant, with the captions as a default WebVTT SUBTITLES rendition, and the
    captions' measured delay behind live (``CAPTION_DELAY_ID``) once there is one."""
    subs = (
        f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="{SUBTITLE_NAME}",LANGUAGE="th",'
        f'DEFAULT=YES,AUTOSELECT=YES,FORCED=NO,URI="{subtitles_uri}"'
    )
    attributes = [f"BANDWIDTH={bandwidth}", f"AVERAGE-BANDWIDTH={average}", f'CODECS="{variant.codecs}"']
    if variant.resolution is not None:
        attributes.append(f"RESOLUTION={variant.resolution[0]}x{variant.resolution[1]}")
    attributes += ['SUBTITLES="subs"', "CLOSED-CAPTIONS=NONE"]
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if caption_delay is not None:
        lines.append(f'#EXT-X-SESSION-DATA:DATA-ID="{CAPTION_DELAY_ID}",VALUE="{caption_delay:.2f}"')
    lines.append(subs)
    lines += ["#EXT-X-STREAM-INF:" + ",".join(attributes), media_uri]
    return "\n".join(lines) + "\n"


def render_vtt(captions: Iterable[Cue]) -> str:
    """A WebVTT segment: cue times are media time, mapped onto the MPEG-TS clock by ``TIMESTAMP_MAP``."""
    pieces = [Utterance(n, round(c.start * 1000), round(c.end * 1000), c.text) for n, c in enumerate(captions)]
    blocks = [f"WEBVTT\n{TIMESTAMP_MAP}", *(vtt_cue_block(cue) for cue in caption_cues(pieces))]
    # A blank line after every block, the last too: parsers that read segments back to back (FFmpeg's) would
    # otherwise take the next segment's header for more text of this segment's last cue.
    return "".join(block + "\n\n" for block in blocks)


def program_date_time(epoch: float, media_ticks: int) -> str:
    """EXT-X-PROGRAM-DATE-TIME of media time ``media_ticks`` when media time 0 was Unix time ``epoch``."""
    moment = datetime.fromtimestamp(epoch + media_ticks / MPEGTS_HZ, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
