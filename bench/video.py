"""Video benchmark: what live HLS and WebRTC cost and how late they are, against the video targets.

    .venv/bin/python bench/video.py                       # everything, about 7-8 minutes
    .venv/bin/python bench/video.py --quick               # everything, shorter windows (about 4 minutes)
    .venv/bin/python bench/video.py cpu [--paths remux,encode,demo] [--seconds 20] [--warmup 5]
    .venv/bin/python bench/video.py hls [--seconds 40] [--joins 4] [--lead 18] [--players watch,hlsjs]
                                        [--caption-lag 3] [--runs 3]
    .venv/bin/python bench/video.py whep [--seconds 30] [--levels 0,1,3,5,10] [--churn 3] [--size 640x360]
                                         [--fps 25] [--server-env MALLOC_ARENA_MAX=2]
    add --json PATH to any of them for every figure; stderr gets progress and the same JSON on one line

Measurements (targets from the issue in brackets):

1. ``cpu``: CPU of HLS per live feed [<= 10 % of one core]. A child process plays a cached source file with
   ``AudioSource(realtime=True, loop=True)`` and consumes its chunks (no caption engine), once with
   ``hls=HlsWriter(...)`` and once without; the HLS cost is the difference in process CPU (psutil, user + system,
   all threads) over the steady part (after ``--warmup`` s). Also reported: the writer thread's own CPU. Paths:
   ``remux`` (H.264 1280x720 25 fps ~2.5 Mbit/s, 2 s GOP, B-frames, + AAC 128k stereo: copied), ``encode``
   (MPEG-4 part 2 1280x720 25 fps + MP2: decoded, scaled to 854x480, x264, AAC) and ``demo`` (the bundled 16 kHz
   FLAC: AAC plus the title card picture).
2. ``hls``: glass-to-glass latency of HLS [p95 <= 6 s on the watch page]. The bench generates a live source in real
   time (1280x720 25 fps, re-encoded by an ``HlsWriter`` with its default 1 s segments, writing into the ``HLS_DIR``
   of a real ``server.py``, which answers blocking playlist reloads) whose picture carries a barcode: the wall clock
   (ms) when the frame was made, and its media time. Headless chromium plays ``/live/<id>/index.m3u8`` on the real
   watch page (``SaphaPlayer``: hls.js ``liveSyncDuration`` = the caption delay the master announces + 0.75 s) and,
   for comparison, on bare hls.js pages (``hlsjs``: hls.js defaults, the playlists' HOLD-BACK of 3 target durations;
   ``hlsjs2``: 2 target durations). Every 200 ms each page draws the video into a canvas, reads the barcode and
   compares it with its ``Date.now()``. Split: "edge age" (now minus the capture time of the newest media listed in
   the playlist: segmenting and publishing) + "behind edge" (what the player holds back on purpose). Players open
   after ``--lead`` s of stream (a viewer joining a sitting in progress) and re-join ``--joins`` times (page
   reloads): where in a segment a viewer joins fixes its delay for the whole session. ``--runs`` repeats the whole
   measurement (a fresh server and stream each time) and reports the median and range over runs.
3. ``whep`` (after 5): glass-to-glass of WebRTC [<= 1 s]. An aiortc peer in the bench publishes over WHIP
   (VP8 + Opus) frames whose barcode is their creation time; an aiortc WHEP viewer decodes each frame it receives
   and compares. Includes both encodes, the server's decode and per-viewer re-encode, and the viewer's decode;
   not a camera or a screen.
4. ``hls`` (same run): caption-to-picture offset in the HLS player [<= 0.5 s]. Captions are added to the writer
   with known media times (like the engine: final ``--caption-lag`` s after they end); on each page a
   ``cuechange`` listener reads the barcode's media time the moment a cue appears or disappears. Offset = media
   time in the picture - the cue's start (or end).
5. ``whep`` (run first, on the fresh server): memory and CPU per WHEP viewer. RSS (VmRSS, median of samples
   every 0.5 s) and CPU (utime + stime) of the server process over ``--window`` s with 0, 1, 3, 5, 10 aiortc
   viewers attached (all in the bench process, each decoding what it gets); per-viewer figures are least-squares
   slopes, over all levels and over the levels where viewers still got >= 90 % of the frames (beyond that the
   server, or the machine, is saturated and the slope flattens). Then ``--churn`` cycles of 5 viewers joining
   and leaving, with RSS after each: steady means retained, rising means leaking.

The server is ``server.py`` in a subprocess, on 127.0.0.1 only (ICE host candidates patched to loopback, no STUN),
with a temporary database and HLS directory and ``WHISPER_MODEL`` pointing nowhere, so that WHIP audio is not
captioned (the caption engine's cost is ``bench/captions.py``'s subject). Generated sources are cached in
``$TMPDIR/sapha-bench-video``. Chromium is Debian's ``/usr/bin/chromium``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CACHE = Path(tempfile.gettempdir()) / "sapha-bench-video"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
TOKEN = "bench-video-operator-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SDP = {"Content-Type": "application/sdp"}

# ---- the barcode ----------------------------------------------------------------------------------------------
# Three rows of 32 cells across the top half of the picture: the wall clock in ms (mod 2^32) when the frame was
# made, its media time in ms, and a check row (the two XORed with CHECK) that rejects misread frames. Fractions of
# the frame, so any scaling on the way keeps it readable; white is Y=235, black Y=16.
BITS = 32
CODE_X0, CODE_X1 = 0.04, 0.96
CODE_ROWS = ((0.06, 0.17), (0.21, 0.32), (0.36, 0.47))
CHECK = 0x5A5A_A5A5
MASK32 = 0xFFFF_FFFF
CELL = (CODE_X1 - CODE_X0) / BITS


def draw_code(y: np.ndarray, values: tuple[int, int]) -> None:
    """Paint ``(wall_ms, media_ms)`` (each mod 2^32) and their check row into a luma plane."""
    h, w = y.shape
    wall, media = values[0] & MASK32, values[1] & MASK32
    edges = [round((CODE_X0 + b * CELL) * w) for b in range(BITS + 1)]
    for (r0, r1), value in zip(CODE_ROWS, (wall, media, wall ^ media ^ CHECK), strict=True):
        band = y[round(r0 * h) : round(r1 * h)]
        for b in range(BITS):
            band[:, edges[b] : edges[b + 1]] = 235 if (value >> (BITS - 1 - b)) & 1 else 16


def read_code(y: np.ndarray) -> tuple[int, int] | None:
    """``(wall_ms, media_ms)`` from a luma plane, or ``None`` when the check row disagrees."""
    h, w = y.shape
    values = []
    for r0, r1 in CODE_ROWS:
        top, bottom = round((r0 + (r1 - r0) * 0.3) * h), round((r0 + (r1 - r0) * 0.7) * h)
        columns = y[top:bottom].mean(axis=0)
        value = 0
        for b in range(BITS):
            a, z = round((CODE_X0 + (b + 0.3) * CELL) * w), round((CODE_X0 + (b + 0.7) * CELL) * w)
            value = (value << 1) | int(columns[a:z].mean() > 128)
        values.append(value)
    if values[0] ^ values[1] ^ CHECK != values[2]:
        return None
    return values[0], values[1]


def wall_ms32() -> int:
    return int(time.time() * 1000) & MASK32


def age_ms(now_ms: int, stamped: int) -> int:
    """``now - stamped`` for ms clocks kept mod 2^32."""
    d = (now_ms - stamped) & MASK32
    return d - (1 << 32) if d >= 1 << 31 else d


# The same reader in the page: draws the video into a 320x180 canvas.
PAGE_JS = """
(layout) => {
  if (window.__bench) return;
  const B = (window.__bench = { samples: [], cues: [], waiting: 0, started: Date.now() });
  const W = 320, H = 180;
  const canvas = document.createElement("canvas");
  canvas.width = W; canvas.height = H;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const video = document.getElementById("video");
  video.addEventListener("waiting", () => { B.waiting += 1; });
  function read() {
    if (video.readyState < 2) return null;
    ctx.drawImage(video, 0, 0, W, H);
    const data = ctx.getImageData(0, 0, W, H).data;
    const vals = [];
    for (const [r0, r1] of layout.rows) {
      const top = Math.round((r0 + (r1 - r0) * 0.3) * H), bottom = Math.round((r0 + (r1 - r0) * 0.7) * H);
      let v = 0;
      for (let b = 0; b < layout.bits; b++) {
        const a = Math.round((layout.x0 + (b + 0.3) * layout.cell) * W);
        const z = Math.round((layout.x0 + (b + 0.7) * layout.cell) * W);
        let sum = 0, n = 0;
        for (let y = top; y < bottom; y++) for (let x = a; x < z; x++) {
          const i = (y * W + x) * 4; sum += data[i] + data[i + 1] + data[i + 2]; n += 3;
        }
        v = v * 2 + (sum / n > 128 ? 1 : 0);
      }
      vals.push(v);
    }
    if (((vals[0] ^ vals[1] ^ layout.check) >>> 0) !== vals[2]) return null;
    return { wall: vals[0], media: vals[1] };
  }
  function hls() {
    return window.hls || (window.sapha && window.sapha.player && window.sapha.player.hls) || null;
  }
  setInterval(() => {
    const now = Date.now();
    const code = read();
    const h = hls();
    B.samples.push({
      now, code, vt: video.currentTime, paused: video.paused, rs: video.readyState,
      lat: h ? h.latency : null, target: h ? h.targetLatency : null,
    });
  }, 200);
  const hooked = new Set();
  setInterval(() => {
    const tracks = Array.from(video.textTracks || []).filter(t => t.kind === "subtitles" || t.kind === "captions");
    for (const track of tracks) {
      if (hooked.has(track)) continue;
      hooked.add(track);
      let shown = new Set();
      track.addEventListener("cuechange", () => {
        const now = Date.now();
        const code = read();
        const active = new Set(Array.from(track.activeCues || []).map(c => c.text));
        const vt = video.currentTime;
        for (const text of active) if (!shown.has(text)) B.cues.push({ ev: "enter", text, now, code, vt });
        for (const text of shown) if (!active.has(text)) B.cues.push({ ev: "exit", text, now, code, vt });
        shown = active;
      });
    }
  }, 200);
}
"""
LAYOUT = {"rows": [list(r) for r in CODE_ROWS], "bits": BITS, "x0": CODE_X0, "cell": CELL, "check": CHECK}

BARE_PLAYER = """<!doctype html>
<html><head><meta charset="utf-8"><title>bench hls.js</title></head>
<body style="margin:0;background:#000">
<video id="video" muted autoplay playsinline style="width:640px;height:360px"></video>
<script src="/static/vendor/hls.js/hls.min.js"></script>
<script>
  const params = new URLSearchParams(location.search);
  const video = document.getElementById("video");
  const config = Object.assign({ enableWebVTT: true, renderTextTracksNatively: true, subtitleDisplay: true },
                               JSON.parse(params.get("config") || "{}"));
  const hls = (window.hls = new Hls(config));
  hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, (_, d) => { if (d.subtitleTracks.length) hls.subtitleTrack = 0; });
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
  hls.loadSource(params.get("src"));
  hls.attachMedia(video);
</script></body></html>"""

PLAYERS = {
    # name: (what it is, bare hls.js config or None for the real watch page)
    "watch": ("watch page: SaphaPlayer, target = announced caption delay + 0.75 s", None),
    "hlsjs": ("bare hls.js 1.7.4, defaults (HOLD-BACK, 3 target durations)", {}),
    "hlsjs2": ("bare hls.js 1.7.4, liveSyncDurationCount 2", {"liveSyncDurationCount": 2}),
}


# ---- small helpers ------------------------------------------------------------------------------------------------


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def slope(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 2 or len(set(xs)) < 2:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    import aiortc

    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "mem_total_kib": int(mem.split()[1]),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pyav": av.__version__,
        "ffmpeg": ".".join(str(x) for x in av.library_versions["libavcodec"]),
        "aiortc": aiortc.__version__,
    }


def uptime() -> str:
    """``uptime``'s line: the load that other helpers' work puts on this shared box, for the record."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"loadavg {os.getloadavg()}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_ice() -> None:
    """ICE host candidates on 127.0.0.1 only: this bench never touches another address."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


# ---- sources ------------------------------------------------------------------------------------------------------

SOURCE_SECONDS = 20
SOURCE_FPS = 25


def _texture(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(40, 200, size=(height // 8 + 2, width // 8 + 2), dtype=np.uint8)
    big = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)[:height, :width].astype(np.int16)
    fine = rng.integers(-12, 13, size=(height, width), dtype=np.int16)
    return np.clip(big + fine, 16, 235).astype(np.uint8)


def _source_frames(width: int, height: int, count: int) -> Iterator[av.VideoFrame]:
    """A panning textured picture with a moving box and the barcode: x264 has to spend real bits on it."""
    y_tex = _texture(width + 400, height, 1)
    c_tex = _texture((width + 400) // 2, height // 2, 2)
    for i in range(count):
        shift = (i * 3) % 400
        y = np.ascontiguousarray(y_tex[:, shift : shift + width])
        u = np.ascontiguousarray(c_tex[:, shift // 2 : shift // 2 + width // 2])
        v = 255 - u
        box = (i * 8) % (width - 120)
        y[height // 2 + 40 : height // 2 + 160, box : box + 120] = 235
        draw_code(y, (i * 40, i * 40))
        yuv = np.concatenate([y, u.reshape(-1, width), v.reshape(-1, width)])
        yield av.VideoFrame.from_ndarray(yuv, format="yuv420p")


def _source_audio(rate: int, seconds: float) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(3)
    total = int(rate * seconds)
    for start in range(0, total, 1024):
        n = min(1024, total - start)
        t = (np.arange(n) + start) / rate
        tone = 0.08 * np.sin(2 * np.pi * (220 + 40 * np.sin(t)) * t) + 0.02 * rng.standard_normal(n)
        yield np.stack([tone, tone]).astype(np.float32)


def make_source(path: Path, *, video_codec: str, audio_codec: str) -> None:
    """Encode ``SOURCE_SECONDS`` of 1280x720 25 fps video and 48 kHz stereo audio into ``path``."""
    tmp = path.with_suffix(".part" + path.suffix)
    width, height = 1280, 720
    with av.open(str(tmp), "w") as out:
        vs = out.add_stream(video_codec, rate=SOURCE_FPS)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        if video_codec == "libx264":
            vs.codec_context.options = {
                "preset": "veryfast",
                "b": "2500k",
                "maxrate": "3000k",
                "bufsize": "5000k",
                "x264-params": "keyint=50:min-keyint=50:scenecut=0",
            }
        else:
            vs.bit_rate = 3_000_000
            vs.codec_context.gop_size = 50
        aud = out.add_stream(audio_codec, rate=48_000)
        aud.layout = "stereo"
        aud.bit_rate = 128_000 if audio_codec == "aac" else 192_000
        frames = _source_frames(width, height, SOURCE_SECONDS * SOURCE_FPS)
        audio = _source_audio(48_000, SOURCE_SECONDS)
        sent = 0
        for index, frame in enumerate(frames):
            frame.pts = index
            frame.time_base = Fraction(1, SOURCE_FPS)
            out.mux(vs.encode(frame))
            while sent < (index + 1) * 48_000 // SOURCE_FPS:
                chunk = next(audio, None)
                if chunk is None:
                    break
                if audio_codec == "mp2":  # FFmpeg's MP2 encoder takes interleaved 16-bit samples
                    packed = (chunk.T.reshape(1, -1) * 32767).astype(np.int16)
                    a = av.AudioFrame.from_ndarray(packed, format="s16", layout="stereo")
                else:
                    a = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                a.sample_rate, a.pts, a.time_base = 48_000, sent, Fraction(1, 48_000)
                out.mux(aud.encode(a))
                sent += chunk.shape[1]
        out.mux(vs.encode(None))
        out.mux(aud.encode(None))
    tmp.rename(path)


def source_for(path_name: str) -> Path:
    """The cached source file of a CPU path (made on first use)."""
    if path_name == "demo":
        from stream.demo_media import DEMO_AUDIO

        return DEMO_AUDIO
    CACHE.mkdir(parents=True, exist_ok=True)
    if path_name == "remux":
        path, codecs = CACHE / "h264-aac-720p25-v1.mp4", ("libx264", "aac")
    elif path_name == "encode":
        path, codecs = CACHE / "mpeg4-mp2-720p25-v1.mkv", ("mpeg4", "mp2")
    else:
        raise SystemExit(f"unknown CPU path {path_name!r}: remux, encode or demo")
    if not path.exists():
        started = time.monotonic()
        print(f"making {path} ...", file=sys.stderr, flush=True)
        make_source(path, video_codec=codecs[0], audio_codec=codecs[1])
        print(f"  {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return path


def describe_source(path: Path) -> str:
    with av.open(str(path)) as c:
        parts = []
        for s in c.streams:
            ctx = s.codec_context
            if s.type == "video":
                parts.append(f"{ctx.name} {ctx.width}x{ctx.height} {float(s.average_rate or 0):g} fps")
            elif s.type == "audio":
                parts.append(f"{ctx.name} {ctx.sample_rate // 1000} kHz {ctx.channels} ch")
        rate = c.bit_rate / 1e6 if c.bit_rate else 0
        return " + ".join(parts) + (f", {rate:.1f} Mbit/s" if rate else "")


# ---- 1. CPU per feed ----------------------------------------------------------------------------------------------


def cpu_one(path_name: str, hls: bool, seconds: float, warmup: float) -> dict[str, Any]:
    """In this (child) process: play the path's source at 1x for warmup + seconds; CPU over the last part."""
    from stream.hls import HlsWriter
    from stream.source import AudioChunk, AudioSource
    from stream.titlecard import TitleCard

    src = source_for(path_name)
    proc = psutil.Process()

    async def main() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="bench-video-cpu-") as tmp:
            writer = HlsWriter(Path(tmp) / "s", picture=TitleCard("การประชุมวุฒิสภา")) if hls else None
            source = AudioSource(str(src), realtime=True, loop=True, hls=writer)
            began: float | None = None
            mark: tuple[float, float, float] | None = None
            audio_s = 0.0
            async with asyncio.timeout(warmup + seconds + 60):
                async for item in source:
                    now = time.monotonic()
                    if began is None:
                        began = now
                    if isinstance(item, AudioChunk) and mark is not None:
                        audio_s += item.duration
                    if mark is None and now - began >= warmup:
                        t = proc.cpu_times()
                        mark = (now, t.user + t.system, _thread_cpu(proc, writer))
                    if mark is not None and now - mark[0] >= seconds:
                        break
            assert mark is not None
            t = proc.cpu_times()
            wall = time.monotonic() - mark[0]
            cpu = t.user + t.system - mark[1]
            writer_cpu = _thread_cpu(proc, writer) - mark[2]
            source.stop()
            stats = None
            if writer is not None:
                writer.close()
                writer.wait_closed(30)
                s = writer.stats()
                stats = {
                    "segments": s.segments,
                    "video_dropped": s.video_dropped,
                    "encoders_opened": s.encoders_opened,
                    "failed": s.failed,
                }
            return {
                "path": path_name,
                "hls": hls,
                "wall_s": round(wall, 2),
                "audio_s": round(audio_s, 2),
                "cpu_pct": round(100 * cpu / wall, 2),
                "writer_thread_pct": round(100 * writer_cpu / wall, 2) if hls else None,
                "writer": stats,
            }

    return asyncio.run(main())


def _thread_cpu(proc: psutil.Process, writer: Any) -> float:
    thread = getattr(writer, "_thread", None) if writer is not None else None
    tid = getattr(thread, "native_id", None)
    if tid is None:
        return 0.0
    for t in proc.threads():
        if t.id == tid:
            return t.user_time + t.system_time
    return 0.0


def bench_cpu(paths: list[str], seconds: float, warmup: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in paths:
        src = source_for(name)  # made here, not inside a timed child
        runs = []
        for hls in (False, True):
            load0 = loadavg()
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "_cpu-one",
                "--path",
                name,
                "--hls",
                str(int(hls)),
                "--seconds",
                str(seconds),
                "--warmup",
                str(warmup),
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + warmup + 180, cwd=ROOT)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
            run = json.loads(done.stdout.strip().splitlines()[-1])
            run["load"] = [load0, loadavg()]
            runs.append(run)
            print(
                f"  cpu {name} hls={hls}: {run['cpu_pct']} % (load {run['load']})",
                file=sys.stderr,
                flush=True,
            )
        base, with_hls = runs
        results[name] = {
            "source": describe_source(src),
            "baseline_pct": base["cpu_pct"],
            "with_hls_pct": with_hls["cpu_pct"],
            "hls_pct": round(with_hls["cpu_pct"] - base["cpu_pct"], 2),
            "writer_thread_pct": with_hls["writer_thread_pct"],
            "runs": runs,
        }
    return results


# ---- the server under test ----------------------------------------------------------------------------------------


def serve_main() -> None:
    """``_serve``: server.py's main() with ICE host candidates on loopback only."""
    loopback_ice()
    import server

    server.main([])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    hls_dir: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


@contextlib.asynccontextmanager
async def run_server(
    tmp: Path, *, max_viewers: int = 20, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Server]:
    import httpx

    port = free_port()
    hls_dir = tmp / "hls"
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tmp / 'sapha.db'}",
        "OPERATOR_TOKEN": TOKEN,
        "LOG_LEVEL": "warning",
        "HLS_DIR": str(hls_dir),
        "WHEP_MAX_VIEWERS": str(max_viewers),
        "WHEP_MAX_VIEWERS_PER_IP": str(max_viewers),  # every bench viewer is on 127.0.0.1
        "WHISPER_MODEL": str(tmp / "no-model"),  # WHIP audio is not captioned: ModelError, logged once
    }
    env.pop("REDIS_URL", None)
    env.update(extra_env or {})
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "_serve"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(300):
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited: {(tmp / 'server.log').read_text()[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("server did not start within 30 s")
        yield Server(url, proc, hls_dir)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(proc.wait, 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait, 5)
        log.close()


async def create_sitting(server: Server, sitting_id: str) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=server.url, headers=AUTH) as client:
        r = await client.post("/api/sittings", json={"id": sitting_id, "title": "การประชุมวุฒิสภา", "chamber": "senate"})
        r.raise_for_status()
        r = await client.post(f"/api/sittings/{sitting_id}/status", json={"status": "live"})
        r.raise_for_status()


# ---- 2 + 4. HLS glass-to-glass and caption offset -----------------------------------------------------------------


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def cue_schedule(seconds: float) -> list[Cue]:
    """A cue every 3 s, 1.5 s long, starting at varied fractions of a second (not on frame or segment edges)."""
    cues = []
    k = 0
    while (start := 3.0 * k + 1.0 + 0.113 * (k % 9)) + 1.5 < seconds:
        cues.append(Cue(round(start, 3), round(start + 1.5, 3), f"คำบรรยายทดสอบที่ {k}"))
        k += 1
    return cues


class LiveSource(threading.Thread):
    """Feeds an ``HlsWriter`` in real time: 1280x720 25 fps pictures carrying the barcode, a tone, and captions
    added ``lag`` s after they end with ``captions_final_until`` trailing by the same lag."""

    def __init__(self, writer: Any, *, seconds: float, cues: list[Cue], lag: float, fps: int = 25) -> None:
        super().__init__(name="bench live source", daemon=True)
        self.writer = writer
        self.seconds = seconds
        self.cues = list(cues)
        self.lag = lag
        self.fps = fps
        self.stop = threading.Event()
        self.started_at: float | None = None
        self.frames = 0
        self.late_frames = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the caller
            self.error = exc

    def _run(self) -> None:
        width, height = 1280, 720
        y_tex = _texture(width + 400, height, 1)
        chroma = np.full((height // 2, width), 128, np.uint8)
        rate = 48_000
        sent = 0
        pending = list(self.cues)
        start = self.started_at = time.time()
        n = 0
        while not self.stop.is_set() and n < self.seconds * self.fps:
            t = n / self.fps
            delay = start + t - time.time()
            if delay > 0:
                self.stop.wait(delay)
            elif delay < -0.04:
                self.late_frames += 1
            shift = (n * 3) % 400
            y = np.ascontiguousarray(y_tex[:, shift : shift + width])
            box = (n * 8) % (width - 120)
            y[height // 2 + 40 : height // 2 + 160, box : box + 120] = 235
            draw_code(y, (wall_ms32(), round(t * 1000)))
            frame = av.VideoFrame.from_ndarray(np.concatenate([y, chroma]), format="yuv420p")
            self.writer.add_video_frame(frame, t)
            while sent < (n + 1) * rate // self.fps:
                s = (np.arange(1024) + sent) / rate
                tone = (0.05 * np.sin(2 * np.pi * 440 * s)).astype(np.float32)[None, :]
                a = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                a.sample_rate = rate
                self.writer.add_audio_frame(a, sent / rate)
                sent += 1024
            while pending and pending[0].end + self.lag <= t:
                cue = pending.pop(0)
                self.writer.add_caption(cue.start, cue.end, cue.text)
            if n % (self.fps // 5) == 0:
                self.writer.captions_final_until(max(0.0, t - self.lag))
            self.frames = n = n + 1


class PlaylistWatch(threading.Thread):
    """Notes when each segment is first listed in the media playlist (polled every 50 ms)."""

    def __init__(self, writer: Any) -> None:
        super().__init__(name="bench playlist watch", daemon=True)
        self.writer = writer
        self.stop = threading.Event()
        self.segments: list[dict[str, Any]] = []  # name, listed (unix s), pdt (unix s), duration
        self.delays: list[float] = []  # the caption delay the writer announced, once per poll that saw one

    def run(self) -> None:
        seen: set[str] = set()
        while not self.stop.wait(0.05):
            try:
                text = self.writer.media_playlist.read_text()
            except OSError:
                continue
            listed = time.time()
            delay = self.writer.stats().caption_delay
            if delay is not None:
                self.delays.append(delay)
            pdt = duration = None
            for line in text.splitlines():
                if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
                    pdt = datetime.fromisoformat(line.split(":", 1)[1]).timestamp()
                elif line.startswith("#EXTINF:"):
                    duration = float(line[8:].split(",")[0])
                elif line and not line.startswith("#"):
                    if line not in seen and pdt is not None and duration is not None:
                        seen.add(line)
                        self.segments.append({"name": line, "listed": listed, "pdt": pdt, "duration": duration})
                    pdt = duration = None


SETTLE_S = 6.0  # after a player (re)loads, before its samples count: it finds its live position


async def bench_hls(seconds: float, lead: float, players: list[str], lag: float, joins: int) -> dict[str, Any]:
    """Players join ``joins`` times (page reloads), each then sampled for ``seconds / joins``: where in a segment a
    viewer joins decides how far behind it plays for the rest of its session, so one join says little about p95."""
    from playwright.async_api import async_playwright

    from stream.hls import HlsWriter

    per_join = seconds / joins
    total = lead + joins * (SETTLE_S + per_join + 5) + 20
    cues = cue_schedule(total)
    with tempfile.TemporaryDirectory(prefix="bench-video-hls-") as tmp_name:
        tmp = Path(tmp_name)
        async with run_server(tmp) as server:
            sid = "bench-hls"
            await create_sitting(server, sid)
            writer = HlsWriter(server.hls_dir / sid)
            writer.begin_input(video=True, audio=True)
            live = LiveSource(writer, seconds=total, cues=cues, lag=lag)
            watch = PlaylistWatch(writer)
            load = [loadavg()]
            live.start()
            watch.start()
            pages: dict[str, Any] = {}
            try:
                await asyncio.sleep(lead)
                async with async_playwright() as p:
                    browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    try:
                        src = f"/live/{sid}/index.m3u8"
                        for name in players:
                            context = await browser.new_context(viewport={"width": 1280, "height": 900})
                            page = await context.new_page()
                            errors: list[str] = []
                            page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                            config = PLAYERS[name][1]
                            if config is None:
                                url = f"{server.url}/watch/{sid}"
                            else:
                                bare = f"{server.url}/__bench/hlsjs.html"
                                await page.route(
                                    lambda url, bare=bare: url.startswith(bare),
                                    lambda route: route.fulfill(
                                        status=200, content_type="text/html; charset=utf-8", body=BARE_PLAYER
                                    ),
                                )
                                url = f"{bare}?src={src}&config={json.dumps(config)}"
                            pages[name] = {"page": page, "url": url, "errors": errors, "joins": []}

                        async def join(info: dict[str, Any]) -> None:
                            await info["page"].goto(info["url"])
                            await info["page"].evaluate(PAGE_JS, LAYOUT)

                        for _ in range(joins):
                            await asyncio.gather(*(join(info) for info in pages.values()))
                            await asyncio.sleep(SETTLE_S)
                            for info in pages.values():
                                await info["page"].evaluate(
                                    "() => { const b = window.__bench; b.samples = []; b.cues = []; b.waiting = 0; }"
                                )
                            load.append(loadavg())
                            await asyncio.sleep(per_join)
                            for info in pages.values():
                                info["joins"].append(await info["page"].evaluate("window.__bench"))
                        load.append(loadavg())
                    finally:
                        await browser.close()
            finally:
                live.stop.set()
                watch.stop.set()
                live.join(10)
                watch.join(5)
                await writer.aclose()
            if live.error is not None:
                raise live.error
            stats = writer.stats()
            return {
                "load": load,
                "joins": joins,
                "seconds_per_join": per_join,
                "source": {
                    "frames": live.frames,
                    "late_frames": live.late_frames,
                    "video_dropped": stats.video_dropped,
                    "segments": stats.segments,
                    "late_captions": stats.late_captions,
                    "failed": stats.failed,
                },
                "segments": _segment_summary(watch.segments, live.started_at or 0.0),
                "players": {name: _player_summary(name, info, watch.segments, cues) for name, info in pages.items()},
                "caption_lag_s": lag,
                "caption_delay_s": {
                    "announced_at_end": stats.caption_delay,
                    "min": min(watch.delays, default=None),
                    "max": max(watch.delays, default=None),
                },
            }


def _segment_summary(segments: list[dict[str, Any]], started: float) -> dict[str, Any]:
    # The writer's epoch is the source's start, so PROGRAM-DATE-TIME + duration is when a segment's last frame was
    # made (to within the source's pacing): its delay is what segmenting and writing add after the last frame.
    delays = [s["listed"] - (s["pdt"] + s["duration"]) for s in segments[1:]]
    return {
        "count": len(segments),
        "duration_mean_s": round(statistics.fmean(s["duration"] for s in segments), 3) if segments else None,
        "listed_after_last_frame_ms": {
            "p50": fmt_ms(pct(delays, 0.5)),
            "p95": fmt_ms(pct(delays, 0.95)),
            "max": fmt_ms(max(delays, default=None)),
        },
        "epoch_vs_source_start_ms": round(1000 * (segments[0]["pdt"] - started), 1) if segments else None,
    }


def hls_across_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per player, the median over runs of each run's figure, with the range: "median (min-max)"."""

    def spread(values: list[float | None]) -> str | None:
        known = [v for v in values if v is not None]
        if not known:
            return None
        return f"{statistics.median(known):.2f} ({min(known):.2f}–{max(known):.2f})"

    players: dict[str, Any] = {}
    for name in runs[0]["players"]:
        per = [run["players"][name] for run in runs]
        players[name] = {
            "player": per[0]["player"],
            "g2g_p50_s": spread([r["g2g_s"]["p50"] for r in per]),
            "g2g_p95_s": spread([r["g2g_s"]["p95"] for r in per]),
            "caption_max_abs_s": spread([r["captions"]["max_abs_s"] for r in per]),
            "cues_shown": [f"{r['captions']['shown']}/{r['captions']['expected']}" for r in per],
            "target_latency_s": spread([r["hlsjs_target_latency_s"] for r in per]),
        }
    return {
        "runs": len(runs),
        "players": players,
        "caption_delay_s": [run["caption_delay_s"] for run in runs],
        "load": [run["load"] for run in runs],
    }


def fmt_ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 1)


def _stats(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": rnd(pct(values, 0.5)),
        "p95": rnd(pct(values, 0.95)),
        "min": rnd(min(values, default=None)),
        "max": rnd(max(values, default=None)),
    }


def _player_summary(name: str, info: dict[str, Any], segments: list[dict[str, Any]], cues: list[Cue]) -> dict:
    g2g, edge_age, behind, lat, target = [], [], [], [], []
    per_join, stalls, samples_n, decoded_n = [], 0, 0, 0
    offsets: dict[str, list[float]] = {"enter": [], "exit": []}
    late_enters: list[dict[str, Any]] = []
    unread = events = 0
    expected: set[str] = set()
    seen: set[str] = set()
    by_text = {c.text: c for c in cues}
    for data in info["joins"]:
        samples = data["samples"]
        decoded = [s for s in samples if s["code"] is not None and not s["paused"]]
        samples_n += len(samples)
        decoded_n += len(decoded)
        stalls += data["waiting"]
        join_g2g = []
        for s in decoded:
            now_s = s["now"] / 1000
            g = age_ms(s["now"] & MASK32, s["code"]["wall"]) / 1000
            join_g2g.append(g)
            newest = next((seg for seg in reversed(segments) if seg["listed"] <= now_s), None)
            if newest is not None:
                edge = newest["pdt"] + newest["duration"]
                edge_age.append(now_s - edge)
                behind.append(g - (now_s - edge))
            if s["lat"] is not None:
                lat.append(s["lat"])
            if s["target"] is not None:
                target.append(s["target"])
        g2g += join_g2g
        per_join.append(rnd(statistics.median(join_g2g), 2) if join_g2g else None)
        media = [s["code"]["media"] / 1000 for s in decoded]
        if media:
            expected |= {c.text for c in cues if min(media) <= c.start and c.end <= max(media)}
        for ev in data["cues"]:
            cue = by_text.get(ev["text"])
            if cue is None:
                continue
            events += 1
            if ev["code"] is None:
                unread += 1
                continue
            shown = ev["code"]["media"] / 1000
            offset = shown - (cue.start if ev["ev"] == "enter" else cue.end)
            offsets[ev["ev"]].append(offset)
            if ev["ev"] == "enter":
                seen.add(cue.text)
                if offset > 0.2:
                    late_enters.append({"cue": cue.text, "offset_s": rnd(offset)})
    both = offsets["enter"] + offsets["exit"]
    return {
        "player": PLAYERS[name][0],
        "samples": samples_n,
        "decoded": decoded_n,
        "stalls": stalls,
        "page_errors": info["errors"],
        "g2g_s": _stats(g2g),
        "g2g_median_per_join_s": per_join,
        "edge_age_s": _stats(edge_age),
        "behind_edge_s": _stats(behind),
        "hlsjs_latency_s": rnd(pct(lat, 0.5)),
        "hlsjs_target_latency_s": rnd(pct(target, 0.5)),
        "captions": {
            "expected": len(expected),
            "shown": len(seen & expected),
            "events": events,
            "unreadable_picture": unread,
            "enter_offset_s": _stats(offsets["enter"]),
            "exit_offset_s": _stats(offsets["exit"]),
            "late_enters": late_enters,
            "mean_abs_s": rnd(statistics.fmean(abs(x) for x in both)) if both else None,
            "max_abs_s": rnd(max((abs(x) for x in both), default=None)),
        },
    }


def rnd(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# ---- 3 + 5. WebRTC: WHEP glass-to-glass, memory and CPU per viewer -----------------------------------------------


class CodeTrack:
    """Builds the publisher's video track lazily (aiortc is imported only for the WebRTC part)."""

    @staticmethod
    def make(width: int, height: int, fps: int) -> Any:
        from aiortc.mediastreams import MediaStreamTrack

        class _Track(MediaStreamTrack):
            kind = "video"

            def __init__(self) -> None:
                super().__init__()
                self.n = 0
                self.start: float | None = None
                self.y_tex = _texture(width + 400, height, 1)
                self.chroma = np.full((height // 2, width), 128, np.uint8)

            async def recv(self) -> av.VideoFrame:
                if self.start is None:
                    self.start = time.time()
                delay = self.start + self.n / fps - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                shift = (self.n * 2) % 400
                y = np.ascontiguousarray(self.y_tex[:, shift : shift + width])
                draw_code(y, (wall_ms32(), round(self.n * 1000 / fps)))
                frame = av.VideoFrame.from_ndarray(np.concatenate([y, self.chroma]), format="yuv420p")
                frame.pts = round(self.n * 90_000 / fps)
                frame.time_base = Fraction(1, 90_000)
                self.n += 1
                return frame

        return _Track()


def luma(frame: av.VideoFrame) -> np.ndarray:
    if frame.format.name in ("yuv420p", "yuvj420p"):
        plane = frame.planes[0]
        return np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, : frame.width]
    return frame.to_ndarray(format="gray")


@dataclass
class Viewer:
    pc: Any
    location: str | None = None
    video: int = 0
    audio: int = 0
    unreadable: int = 0
    latencies: list[float] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    def reset(self) -> None:
        self.video = self.audio = self.unreadable = 0
        self.latencies = []

    def on_track(self, track: Any) -> None:
        self.readers.append(asyncio.create_task(self._read(track)))

    async def _read(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if track.kind == "audio":
                self.audio += 1
                continue
            now = wall_ms32()
            self.video += 1
            code = read_code(luma(frame))
            if code is None:
                self.unreadable += 1
            else:
                self.latencies.append(age_ms(now, code[0]) / 1000)


async def open_viewer(server: Server, sitting_id: str) -> Viewer:
    import httpx
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    viewer = Viewer(pc)
    pc.on("track", viewer.on_track)
    for kind in ("audio", "video"):
        pc.addTransceiver(kind, direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(base_url=server.url) as client:
        r = await client.post(f"/whep/{sitting_id}", content=pc.localDescription.sdp, headers=SDP)
    if r.status_code != 201:
        await pc.close()
        raise RuntimeError(f"WHEP viewer refused: {r.status_code} {r.text}")
    viewer.location = r.headers["location"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    return viewer


async def close_viewer(server: Server, viewer: Viewer) -> None:
    import httpx

    if viewer.location:
        async with httpx.AsyncClient(base_url=server.url) as client:
            with contextlib.suppress(httpx.HTTPError):
                await client.delete(viewer.location)
    await viewer.pc.close()
    for reader in viewer.readers:
        reader.cancel()
    await asyncio.gather(*viewer.readers, return_exceptions=True)


async def until(check: Any, deadline: float, what: str) -> None:
    async with asyncio.timeout(deadline):
        while not check():
            await asyncio.sleep(0.05)


# --server-env: extra environment for the server under test (A/B of allocator settings, say).
SERVER_ENV: dict[str, str] = {}


async def bench_whep(
    seconds: float,
    levels: list[int],
    size: tuple[int, int],
    fps: int,
    settle: float,
    window: float,
    churn_cycles: int = 3,
    churn_viewers: int = 5,
) -> dict[str, Any]:
    import httpx
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack

    loopback_ice()
    me = psutil.Process()
    result: dict[str, Any] = {"size": f"{size[0]}x{size[1]}", "fps": fps}
    with tempfile.TemporaryDirectory(prefix="bench-video-whep-") as tmp_name:
        tmp = Path(tmp_name)
        async with run_server(tmp, max_viewers=max(20, *levels), extra_env=SERVER_ENV) as server:
            sid = "bench-whep"
            await create_sitting(server, sid)
            pub = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            tracks = [AudioStreamTrack(), CodeTrack.make(size[0], size[1], fps)]
            for track in tracks:
                pub.addTransceiver(track, direction="sendonly")
            await pub.setLocalDescription(await pub.createOffer())
            async with httpx.AsyncClient(base_url=server.url) as client:
                r = await client.post(f"/whip/{sid}", content=pub.localDescription.sdp, headers={**SDP, **AUTH})
                if r.status_code != 201:
                    raise RuntimeError(f"WHIP refused: {r.status_code} {r.text}")
                whip_location = r.headers["location"]
            await pub.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
            viewers: list[Viewer] = []
            try:
                await until(lambda: pub.connectionState == "connected", 20, "publisher connected")
                await asyncio.sleep(2)

                # 5. N viewers: server RSS and CPU, first, while no viewer has left memory behind to blur the slope
                rows = []
                for level in levels:
                    while len(viewers) < level:
                        viewers.append(await open_viewer(server, sid))
                    await until(lambda: all(v.video > 0 for v in viewers), 60, "every viewer's first frame")
                    await asyncio.sleep(settle)
                    for v in viewers:
                        v.reset()
                    load0 = loadavg()
                    cpu0, mine0, t0 = proc_cpu_s(server.pid), me.cpu_times(), time.monotonic()
                    rss: list[int] = []
                    while time.monotonic() - t0 < window:
                        rss.append(proc_rss_kib(server.pid))
                        await asyncio.sleep(0.5)
                    wall = time.monotonic() - t0
                    cpu1, mine1 = proc_cpu_s(server.pid), me.cpu_times()
                    lat = [x for v in viewers for x in v.latencies]
                    got = statistics.median(v.video for v in viewers) / wall if viewers else None
                    row = {
                        "viewers": level,
                        "rss_kib": int(statistics.median(rss)),
                        "server_cpu_pct": round(100 * (cpu1 - cpu0) / wall, 1),
                        "bench_cpu_pct": round(100 * (mine1.user + mine1.system - mine0.user - mine0.system) / wall, 1),
                        "fps_per_viewer": rnd(got, 1),
                        "g2g_p50_ms": fmt_ms(pct(lat, 0.5)),
                        "g2g_p95_ms": fmt_ms(pct(lat, 0.95)),
                        "load": [load0, loadavg()],
                    }
                    rows.append(row)
                    print(f"  viewers: {row}", file=sys.stderr, flush=True)
                for v in viewers:
                    await close_viewer(server, v)
                viewers = []
                await asyncio.sleep(settle)
                rss_after = proc_rss_kib(server.pid)
                # Churn: viewers that come and go. RSS that keeps rising cycle after cycle would be a leak;
                # RSS that stays where the peak left it is the allocator keeping freed memory.
                churn = []
                for _ in range(churn_cycles):
                    for _ in range(churn_viewers):
                        viewers.append(await open_viewer(server, sid))
                    await until(lambda: all(v.video > 0 for v in viewers), 60, "every viewer's first frame")
                    await asyncio.sleep(2)
                    for v in viewers:
                        await close_viewer(server, v)
                    viewers = []
                    await asyncio.sleep(settle)
                    churn.append(proc_rss_kib(server.pid))
                print(f"  after: {rss_after} KiB, churn {churn}", file=sys.stderr, flush=True)
                # Where viewers get (nearly) every frame, the server kept up; beyond, the slopes flatten because the
                # work is not done, not because it is cheap.
                kept_up = [r for r in rows if r["viewers"] == 0 or (r["fps_per_viewer"] or 0) >= 0.9 * fps]
                result["viewers"] = {
                    "rows": rows,
                    "rss_kib_per_viewer": rnd(slope([r["viewers"] for r in rows], [r["rss_kib"] for r in rows]), 1),
                    "cpu_pct_per_viewer": rnd(
                        slope([r["viewers"] for r in rows], [r["server_cpu_pct"] for r in rows]), 2
                    ),
                    "kept_up_levels": [r["viewers"] for r in kept_up],
                    "rss_kib_per_viewer_kept_up": rnd(
                        slope([r["viewers"] for r in kept_up], [r["rss_kib"] for r in kept_up]), 1
                    ),
                    "cpu_pct_per_viewer_kept_up": rnd(
                        slope([r["viewers"] for r in kept_up], [r["server_cpu_pct"] for r in kept_up]), 2
                    ),
                    "rss_kib_after_all_left": rss_after,
                    "churn": {"viewers": churn_viewers, "rss_kib_after_each_cycle": churn},
                }

                # 3. one viewer: glass-to-glass
                viewer = await open_viewer(server, sid)
                await until(lambda: viewer.video > 0, 20, "first WHEP frame")
                await asyncio.sleep(3)
                viewer.reset()
                load0, t0 = loadavg(), time.monotonic()
                await asyncio.sleep(seconds)
                wall = time.monotonic() - t0
                lat = list(viewer.latencies)
                result["latency"] = {
                    "seconds": round(wall, 1),
                    "frames": viewer.video,
                    "fps": round(viewer.video / wall, 1),
                    "unreadable": viewer.unreadable,
                    "p50_ms": fmt_ms(pct(lat, 0.5)),
                    "p95_ms": fmt_ms(pct(lat, 0.95)),
                    "max_ms": fmt_ms(max(lat, default=None)),
                    "load": [load0, loadavg()],
                }
                print(f"  whep g2g: {result['latency']}", file=sys.stderr, flush=True)
                await close_viewer(server, viewer)
            finally:
                for v in viewers:
                    await close_viewer(server, v)
                async with httpx.AsyncClient(base_url=server.url) as client:
                    with contextlib.suppress(httpx.HTTPError):
                        await client.delete(whip_location, headers=AUTH)
                for track in tracks:
                    track.stop()
                await pub.close()
    return result


# ---- report -------------------------------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> str:
    lines = ["| measurement | figure | target | met |", "|---|---|---|---|"]
    cpu = results.get("cpu", {})
    for name, r in cpu.items():
        label = {
            "remux": "HLS CPU, remux",
            "encode": "HLS CPU, re-encode",
            "demo": "HLS CPU, demo audio + title card",
        }
        lines.append(
            f"| {label.get(name, name)} ({r['source']}) | {r['hls_pct']:.1f} % of a core "
            f"({r['with_hls_pct']:.1f} − {r['baseline_pct']:.1f}; writer thread {r['writer_thread_pct']:.1f}) "
            f"| ≤ 10 % | {'yes' if r['hls_pct'] <= 10 else 'no'} |"
        )
    for n, hls in enumerate(results.get("hls_runs", []), 1):
        run = f"run {n}: " if len(results["hls_runs"]) > 1 else ""
        for name, r in hls["players"].items():
            g = r["g2g_s"]
            met = g["p95"] is not None and g["p95"] <= 6
            lines.append(
                f"| {run}HLS glass-to-glass, {r['player']} | p50 {fmt(g['p50'], 2)} s, p95 {fmt(g['p95'], 2)} s "
                f"(edge age p50 {fmt(r['edge_age_s']['p50'], 2)} + behind edge p50 {fmt(r['behind_edge_s']['p50'], 2)};"
                f" hls.js target {fmt(r['hlsjs_target_latency_s'], 2)}; per join {r['g2g_median_per_join_s']})"
                f" | ≤ 6 s | {'yes' if met else 'no'} |"
            )
        for name, r in hls["players"].items():
            c = r["captions"]
            # A cue that never showed is a miss however well the others were placed.
            met = c["max_abs_s"] is not None and c["max_abs_s"] <= 0.5 and c["shown"] == c["expected"]
            lines.append(
                f"| {run}caption-to-picture, {r['player']} | mean \\|offset\\| {fmt(c['mean_abs_s'], 3)} s, max "
                f"{fmt(c['max_abs_s'], 3)} s (cues shown {c['shown']}/{c['expected']}) | ≤ 0.5 s | "
                f"{'yes' if met else 'no'} |"
            )
    across = results.get("hls")
    if across and len(results.get("hls_runs", [])) > 1:
        for name, r in across["players"].items():
            lines.append(
                f"| median of {across['runs']} runs, {r['player']} | glass-to-glass p50 {r['g2g_p50_s']}, "
                f"p95 {r['g2g_p95_s']} s; caption max \\|offset\\| {r['caption_max_abs_s']} s; "
                f"cues shown {r['cues_shown']} | – | – |"
            )
    whep = results.get("whep")
    if whep:
        lat = whep["latency"]
        met = lat["p95_ms"] is not None and lat["p95_ms"] <= 1000
        lines.append(
            f"| WHEP glass-to-glass ({whep['size']} {whep['fps']} fps VP8, aiortc → server → aiortc) | "
            f"p50 {fmt(lat['p50_ms'])} ms, p95 {fmt(lat['p95_ms'])} ms ({lat['fps']} fps received) | ≤ 1 s | "
            f"{'yes' if met else 'no'} |"
        )
        v = whep["viewers"]
        lines.append(
            f"| server RSS per WHEP viewer, slope over {v['kept_up_levels']} (all {[r['viewers'] for r in v['rows']]})"
            f" | {fmt(v['rss_kib_per_viewer_kept_up'])} KiB ({fmt(v['rss_kib_per_viewer'])} KiB) | – | – |"
        )
        lines.append(
            f"| server CPU per WHEP viewer, slope over {v['kept_up_levels']} (all levels) | "
            f"{fmt(v['cpu_pct_per_viewer_kept_up'], 1)} % of a core ({fmt(v['cpu_pct_per_viewer'], 1)} %) | – | – |"
        )
    out = "\n".join(lines)
    if whep:
        out += "\n\n| WHEP viewers | server RSS MiB | server CPU % | fps / viewer | g2g p50 / p95 ms | bench CPU % "
        out += "| load |\n"
        out += "|---:|---:|---:|---:|---|---:|---|\n"
        for r in whep["viewers"]["rows"]:
            out += (
                f"| {r['viewers']} | {r['rss_kib'] / 1024:.1f} | {r['server_cpu_pct']} | {fmt(r['fps_per_viewer'], 1)}"
                f" | {fmt(r['g2g_p50_ms'])} / {fmt(r['g2g_p95_ms'])} | {r['bench_cpu_pct']} | {r['load']} |\n"
            )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench/video.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", default="all", choices=["all", "cpu", "hls", "whep", "_cpu-one", "_serve"])
    parser.add_argument("--quick", action="store_true", help="shorter windows everywhere")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--paths", default="remux,encode,demo", help="cpu: remux, encode, demo")
    parser.add_argument("--seconds", type=float, help="measured seconds (cpu 20, hls 40, whep 30)")
    parser.add_argument("--warmup", type=float, default=5.0, help="cpu: seconds before measuring")
    parser.add_argument("--lead", type=float, default=18.0, help="hls: seconds of stream before players open")
    parser.add_argument("--players", default="watch,hlsjs", help=f"hls: any of {','.join(PLAYERS)}")
    parser.add_argument("--runs", type=int, default=1, help="hls: repeat the measurement, report median and range")
    parser.add_argument("--joins", type=int, default=4, help="hls: times each player (re)joins the stream")
    parser.add_argument("--caption-lag", type=float, default=3.0, help="hls: captions final this long after they end")
    parser.add_argument("--levels", default="0,1,3,5,10", help="whep: viewer counts for memory and CPU")
    parser.add_argument("--size", default="640x360", help="whep: publisher picture size")
    parser.add_argument("--fps", type=int, default=25, help="whep: publisher frame rate")
    parser.add_argument("--settle", type=float, default=5.0, help="whep: seconds after viewers join before measuring")
    parser.add_argument("--window", type=float, default=10.0, help="whep: seconds measured per viewer count")
    parser.add_argument("--churn", type=int, default=3, help="whep: cycles of 5 viewers joining and leaving")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="whep: extra environment for server.py",
    )
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--hls", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.what == "_serve":
        serve_main()
        return
    if args.what == "_cpu-one":
        print(json.dumps(cpu_one(args.path, bool(args.hls), args.seconds or 20, args.warmup)))
        return

    quick = args.quick
    SERVER_ENV.update(item.split("=", 1) for item in args.server_env)
    results: dict[str, Any] = {
        "machine": machine(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_start": os.getloadavg(),
        "uptime_start": uptime(),
        "argv": sys.argv[1:],
    }
    if args.what in ("all", "cpu"):
        print("cpu ...", file=sys.stderr, flush=True)
        results["cpu"] = bench_cpu(
            args.paths.split(","), args.seconds or (10 if quick else 20), 3 if quick else args.warmup
        )
    if args.what in ("all", "hls"):
        print("hls ...", file=sys.stderr, flush=True)
        players = [p for p in args.players.split(",") if p]
        unknown = set(players) - set(PLAYERS)
        if unknown:
            parser.error(f"unknown players {sorted(unknown)}")
        runs = []
        for n in range(args.runs):
            print(f"hls run {n + 1} of {args.runs} ({uptime()})", file=sys.stderr, flush=True)
            run = asyncio.run(
                bench_hls(
                    args.seconds or (16 if quick else 40),
                    12 if quick else args.lead,
                    players,
                    args.caption_lag,
                    2 if quick else args.joins,
                )
            )
            run["uptime_after"] = uptime()
            runs.append(run)
        results["hls_runs"] = runs
        results["hls"] = hls_across_runs(runs)
    if args.what in ("all", "whep"):
        print("whep ...", file=sys.stderr, flush=True)
        w, h = (int(x) for x in args.size.split("x"))
        levels = [int(x) for x in args.levels.split(",")]
        results["whep"] = asyncio.run(
            bench_whep(
                args.seconds or (10 if quick else 30),
                levels,
                (w, h),
                args.fps,
                3 if quick else args.settle,
                5 if quick else args.window,
                1 if quick else args.churn,
            )
        )
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["load_end"] = os.getloadavg()
    results["uptime_end"] = uptime()
    print(json.dumps(results, ensure_ascii=False, default=str), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str))
    print(report(results))


if __name__ == "__main__":
    main()
