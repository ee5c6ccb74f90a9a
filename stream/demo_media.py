"""The sample sitting audio bundled for ``--demo`` mode, and the clip list that describes it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MEDIA_DIR = Path(__file__).resolve().parent / "media"
DEMO_AUDIO = MEDIA_DIR / "demo_th.flac"
DEMO_CLIPS = MEDIA_DIR / "demo_th.json"


@dataclass(frozen=True)
class DemoClip:
    """One utterance in the demo audio: where it lies in the file and what is said."""

    name: str
    start: float  # seconds from the start of demo_th.flac
    end: float
    text: str  # the Common Voice reference sentence
    common_voice_clip: str | None  # e.g. "common_voice_th_25686161"; None where the source did not record it


@dataclass(frozen=True)
class DemoMedia:
    audio: Path
    duration: float
    sample_rate: int
    clips: tuple[DemoClip, ...]


def load_demo_media(manifest: Path = DEMO_CLIPS) -> DemoMedia:
    """Read the demo's clip list (written by ``stream/make_demo_media.py``)."""
    data = json.loads(manifest.read_text(encoding="utf-8"))
    clips = tuple(
        DemoClip(
            name=c["name"],
            start=c["start_s"],
            end=c["end_s"],
            text=c["text"],
            common_voice_clip=c["common_voice_clip"],
        )
        for c in data["clips"]
    )
    return DemoMedia(
        audio=manifest.parent / data["audio"],
        duration=data["duration_s"],
        sample_rate=data["sample_rate"],
        clips=clips,
    )
