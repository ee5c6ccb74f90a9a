"""Soak: does a caption engine stay flat (memory, lag, speed) over a long looped feed?

Plays the demo sitting audio in a loop through one ``CaptionEngine`` on the shared model, paced at ``--speed``
times real time (a 2-hour sitting at 1x does not fit a working session; a modest speed-up keeps the engine
inside its real-time budget so what grows is state, not backlog), and prints one row per media minute: process
RSS, engine lag, real-time factor and captions so far. Not a test: see docs/benchmarks.md.

    .venv/bin/python bench/soak.py --minutes 30 --speed 2.5
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time

import av
import numpy as np

from stream.demo_media import DEMO_AUDIO
from stream.source import SAMPLE_RATE
from transcribe.caption import Caption
from transcribe.engine import CaptionEngine
from transcribe.model import load_model

CHUNK_S = 0.5


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def demo_samples() -> np.ndarray:
    with av.open(str(DEMO_AUDIO)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        parts = [f.to_ndarray().reshape(-1) for frame in container.decode(audio=0) for f in resampler.resample(frame)]
    return np.concatenate(parts).astype(np.float32)


async def main(minutes: float, speed: float) -> None:
    model = load_model()
    audio = demo_samples()
    counts = {"partial": 0, "final": 0}

    async def on_caption(caption: Caption) -> None:
        counts[caption.kind] += 1

    engine = CaptionEngine(model, language="th", on_caption=on_caption)
    chunk = int(CHUNK_S * SAMPLE_RATE)
    total_chunks = int(minutes * 60 / CHUNK_S)
    started = time.monotonic()
    print("| media min | wall s | RSS MiB | max RSS MiB | lag s | RTF | partials | finals |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in range(total_chunks):
        offset = (n * chunk) % (len(audio) - chunk)
        await engine.feed(audio[offset : offset + chunk], n * CHUNK_S)
        # Pace against the wall clock so a slow pass delays the next chunk no more than live audio would.
        delay = started + (n + 1) * CHUNK_S / speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if (n + 1) % int(60 / CHUNK_S) == 0:
            stats = engine.stats()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"| {(n + 1) * CHUNK_S / 60:.0f} | {time.monotonic() - started:.0f} | {rss_mib():.0f} | {peak:.0f} | "
                f"{stats.lag_s:.2f} | {stats.rtf:.2f} | {counts['partial']} | {counts['final']} |",
                flush=True,
            )
    await engine.close()
    model.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="media minutes to play")
    parser.add_argument("--speed", type=float, default=2.5, help="times real time")
    args = parser.parse_args()
    asyncio.run(main(args.minutes, args.speed))
