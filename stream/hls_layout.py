"""What an ``HlsWriter``'s worker needs to know of its writer, fixed when the writer is made: where the files go,
the names they get, and the settings that shape them. The worker gets this instead of the writer itself, so that
the writer's parts never reach back into it (nor import ``stream.hls``).

The one thing not known up front is the epoch (the Unix time of media time 0): it is set by the first media the
writer is given and reaches the worker through the backlog, ahead of that media (``hls_items.Epoch``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.titlecard import TitleCard

MASTER_NAME = "index.m3u8"


@dataclass(frozen=True)
class HlsLayout:
    """One sitting's HLS directory and the run writing it; see ``stream.hls`` for the files."""

    out_dir: Path
    run_id: str  # names this run's playlists and segments, so a restarted feed never overwrites an earlier run
    segment_s: float  # target segment duration
    window: int  # segments in the live media playlist
    caption_wait_s: float  # how long a caption segment waits for final captions before it is written anyway
    picture: TitleCard | None  # the video of an audio-only input, if any

    @property
    def master_playlist(self) -> Path:
        return self.out_dir / MASTER_NAME

    @property
    def media_playlist(self) -> Path:
        return self.out_dir / f"media-{self.run_id}.m3u8"

    @property
    def subtitle_playlist(self) -> Path:
        return self.out_dir / f"subs-{self.run_id}.m3u8"

    @property
    def journal(self) -> Path:
        """Every segment of the run, one JSON line each, for the closing VOD playlists (not served over HTTP)."""
        return self.out_dir / f"{self.run_id}.segments.jsonl"

    def segment_path(self, seq: int) -> Path:
        """The .ts file of segment ``seq``; its caption segment has the same name ending .vtt."""
        return self.out_dir / f"{self.run_id}-{seq:05d}.ts"
