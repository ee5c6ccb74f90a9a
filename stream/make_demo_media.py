"""Rebuild the bundled demo audio, ``stream/media/demo_th.flac``, and its clip list, ``demo_th.json``.

The demo is three real Thai Common Voice clips (CC0-1.0, attributed in NOTICE) from the project's shared
data, resampled to 16 kHz mono and laid end to end as a short "sitting": 1.5 s of silence, then each clip
followed by 3 s of silence (1.5 s after the last), so a captioner sees utterances separated by pauses.

Run from the repository root; the output is byte-for-byte reproducible for a given PyAV/FFmpeg::

    .venv/bin/python -m stream.make_demo_media                      # reads ../shared/data
    .venv/bin/python -m stream.make_demo_media --data /path/to/shared/data --out stream/media

Each input's sha256 is checked against ``manifest.jsonl`` first, so a changed clip cannot slip in.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from stream.demo_media import DEMO_AUDIO, DEMO_CLIPS
from stream.resample import SAMPLE_RATE, MonoResampler

LEAD_IN_S = 1.5
GAP_S = 3.0
TAIL_S = 1.5
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass(frozen=True)
class ClipSource:
    name: str
    audio: str  # path inside the shared data directory
    common_voice_clip: str | None


# Only CC0 clips may be bundled (see the shared data README); the order is the order they are spoken.
CLIPS = (
    ClipSource("cv7_th_25686161", "audio/th/cv7_th_25686161.wav", "common_voice_th_25686161"),
    ClipSource("cv6_th_23657550_trim", "audio/th/cv6_th_23657550_trim.wav", "common_voice_th_23657550"),
    # The notebook it comes from does not record the clip id; its sentence matches common_voice_th_26561511.
    ClipSource("cv7_th_vistec_notebook_sample", "audio/th/cv7_th_vistec_notebook_sample.wav", None),
)


def read_manifest(data: Path) -> dict[str, dict[str, object]]:
    rows = (json.loads(line) for line in (data / "manifest.jsonl").read_text(encoding="utf-8").splitlines())
    return {str(row["audio"]): row for row in rows}


def decode_mono16k(path: Path) -> np.ndarray:
    """The whole file as 16 kHz mono float32, resampled exactly as ``AudioSource`` would."""
    resampler = MonoResampler()
    parts: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            parts.extend(resampler.convert(frame))
    parts.extend(resampler.flush())
    return np.concatenate(parts)


def to_s16(samples: np.ndarray) -> np.ndarray:
    # Scaling by 32768 makes s16 -> float -> s16 lossless for the clips that are already 16 kHz.
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)


def write_flac(path: Path, samples: np.ndarray) -> None:
    # bitexact keeps the FFmpeg version string out of the file, so rebuilding gives identical bytes.
    with av.open(str(path), "w", format="flac", container_options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream("flac", rate=SAMPLE_RATE, layout="mono", format="s16", options={"flags": "+bitexact"})
        block = 4096
        for offset in range(0, len(samples), block):
            frame = av.AudioFrame.from_ndarray(
                samples[offset : offset + block].reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate = SAMPLE_RATE
            frame.pts = offset
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def build(data: Path, out_dir: Path) -> dict[str, object]:
    """Write demo_th.flac and demo_th.json into ``out_dir``; returns the clip list that was written."""
    manifest = read_manifest(data)
    pieces: list[np.ndarray] = [np.zeros(round(LEAD_IN_S * SAMPLE_RATE), dtype=np.float32)]
    cursor = len(pieces[0])
    clips: list[dict[str, object]] = []
    for index, clip in enumerate(CLIPS):
        path = data / clip.audio
        row = manifest[clip.audio]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != row["sha256"]:
            raise SystemExit(f"{path}: sha256 {digest} does not match manifest.jsonl ({row['sha256']})")
        speech = decode_mono16k(path)
        last = index == len(CLIPS) - 1
        silence = np.zeros(round((TAIL_S if last else GAP_S) * SAMPLE_RATE), dtype=np.float32)
        clips.append(
            {
                "name": clip.name,
                "common_voice_clip": clip.common_voice_clip,
                "start_s": cursor / SAMPLE_RATE,
                "end_s": (cursor + len(speech)) / SAMPLE_RATE,
                "start_sample": cursor,
                "end_sample": cursor + len(speech),
                "text": row["text"],
                "lang": row["lang"],
                "license": row["license"],
                "source": row["source"],
                "source_file": clip.audio,
                "source_sha256": digest,
            }
        )
        pieces += [speech, silence]
        cursor += len(speech) + len(silence)
    audio = to_s16(np.concatenate(pieces))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_flac(out_dir / DEMO_AUDIO.name, audio)
    listing: dict[str, object] = {
        "audio": DEMO_AUDIO.name,
        "sample_rate": SAMPLE_RATE,
        "duration_s": len(audio) / SAMPLE_RATE,
        "samples": len(audio),
        "layout": {"lead_in_s": LEAD_IN_S, "gap_s": GAP_S, "tail_s": TAIL_S},
        "license": "CC0-1.0 (Mozilla Common Voice); see NOTICE",
        "built_by": "stream/make_demo_media.py",
        "clips": clips,
    }
    text = json.dumps(listing, ensure_ascii=False, indent=2) + "\n"
    (out_dir / DEMO_CLIPS.name).write_text(text, encoding="utf-8")
    return listing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data dir (has manifest.jsonl)")
    parser.add_argument("--out", type=Path, default=DEMO_AUDIO.parent, help="where to write the demo files")
    args = parser.parse_args()
    listing = build(args.data, args.out)
    print(f"wrote {args.out / DEMO_AUDIO.name}: {listing['duration_s']} s, {len(CLIPS)} clips")


if __name__ == "__main__":
    main()
