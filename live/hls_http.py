"""Serving a sitting's HLS files: ``GET /live/{sitting_id}/{name}``, with headers a CDN can cache by.

Only plain names directly inside the sitting's directory are served, and only the kinds ``stream.hls`` writes;
everything else is a 404 in the API's JSON error shape. Caching follows what can change: a live playlist is
rewritten every segment (cache a second), a closed one (``EXT-X-ENDLIST``) and every segment never change again
(their names carry the writer's run id, so a restarted feed writes new files rather than new versions).

Blocking playlist reload (Low-Latency HLS, RFC 8216bis 6.2.5.2): ``GET <playlist>?_HLS_msn=N[&_HLS_part=P]`` is
held until the playlist lists segment ``N`` (or has ended), so a player hears of each segment the moment it
is listed instead of polling for it. Parts are not published, so a listed segment satisfies any ``_HLS_part``. A
request for more than two segments beyond the last listed is a 400; one still unanswered after three target
durations gets the playlist as it is then (200), and the player asks again. The writer may be another process
(several workers, the benchmark), so changes are seen by watching the file: one poller per watched playlist,
every ``POLL_S``, however many requests wait on it, and only while some do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from common.http import json_error

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".vtt": "text/vtt; charset=utf-8",
}
LIVE_PLAYLIST_CACHE = "public, max-age=1"
CLOSED_PLAYLIST_CACHE = "public, max-age=31536000, immutable"
SEGMENT_CACHE = "public, max-age=31536000, immutable"
# The master always names the latest run's playlists, so it stays short-lived even after the sitting ends.
MASTER_NAME = "index.m3u8"
MASTER_CACHE = "public, max-age=1"
# Players and embedders fetch from other origins; the files are public, so any origin may read them.
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Content-Length, Content-Range"}

# One path segment of a safe alphabet, not starting with a dot: no "..", no hidden files. The writer's unfinished
# files ("*.part", "*.tmp") fall out with the suffix check.
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")
# A delivery directive's value: a non-negative integer of sane size.
_NUMBER = re.compile(r"[0-9]{1,10}")

# How often a playlist that requests are blocked on is checked for a change: the most a blocked player waits
# beyond the moment its segment is listed.
POLL_S = 0.02
# A blocked request gets the current playlist after this many target durations (RFC 8216bis: three), and never
# later than BLOCK_CAP_S whatever the target duration says.
BLOCK_TARGETS = 3
BLOCK_CAP_S = 30.0


class _Watched:
    """One playlist file that blocked requests wait on, and the task that polls it for them."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.waiters = 0
        self.task: asyncio.Task[None] | None = None


class PlaylistWatch:
    """Wakes requests waiting for playlist files to change. Entries exist only while a request waits on them, so
    what it holds is bounded by the requests in flight (on files that exist)."""

    def __init__(self, poll_s: float = POLL_S) -> None:
        self.poll_s = poll_s
        self._watched: dict[Path, _Watched] = {}

    @contextlib.contextmanager
    def watching(self, path: Path) -> Iterator[_Watched]:
        """Within it, the entry's ``changed`` event, taken before reading the file, is set at its next change."""
        entry = self._watched.get(path)
        if entry is None:
            entry = self._watched[path] = _Watched()
            entry.task = asyncio.get_running_loop().create_task(self._poll(path, entry, _stamp(path)))
        entry.waiters += 1
        try:
            yield entry
        finally:
            entry.waiters -= 1
            if entry.waiters == 0:
                # The last one out stops the poller: nothing is watched that nobody waits on.
                del self._watched[path]
                if entry.task is not None:
                    entry.task.cancel()

    async def _poll(self, path: Path, entry: _Watched, stamp: tuple[int, int, int] | None) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            now = _stamp(path)
            if now != stamp:
                stamp = now
                # Everyone waiting now wakes; later waiters wait for the change after this one.
                entry.changed.set()
                entry.changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._watched)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when the writer renames a new version into place (inode, size, mtime)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class HlsFiles:
    """Serves ``<root>/<sitting_id>/<name>``: ``Route("/live/{sitting_id}/{name:path}", files.handle)``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.watch = PlaylistWatch()

    async def handle(self, request: Request) -> Response:
        sitting_id = str(request.path_params.get("sitting_id", ""))
        name = str(request.path_params.get("name", ""))
        kind = Path(name).suffix
        if not (_NAME.fullmatch(sitting_id) and _NAME.fullmatch(name) and kind in CONTENT_TYPES):
            return _not_found(f"no such HLS file: {sitting_id}/{name}")
        path = self.root / sitting_id / name
        if kind == ".m3u8":
            directives = _directives(request) if name != MASTER_NAME else None
            if isinstance(directives, Response):
                return directives
            text: str | Response | None
            if directives is None:
                text = await asyncio.to_thread(_read_text, path)
            else:
                text = await self._blocking_read(path, *directives)
            if isinstance(text, Response):
                return text
            if text is None:
                return _not_found(f"no such HLS file: {sitting_id}/{name}")
            if name == MASTER_NAME:
                cache = MASTER_CACHE
            else:
                cache = CLOSED_PLAYLIST_CACHE if "#EXT-X-ENDLIST" in text else LIVE_PLAYLIST_CACHE
            return Response(text, media_type=CONTENT_TYPES[kind], headers={"Cache-Control": cache, **CORS})
        if not await asyncio.to_thread(path.is_file):
            return _not_found(f"no such HLS file: {sitting_id}/{name}")
        return FileResponse(path, media_type=CONTENT_TYPES[kind], headers={"Cache-Control": SEGMENT_CACHE, **CORS})

    async def _blocking_read(self, path: Path, msn: int, part: int | None) -> str | Response | None:
        """The playlist once it lists segment ``msn`` (or has ended, or the wait timed out); ``None``: no file."""
        deadline: float | None = None
        while True:
            with self.watch.watching(path) as watched:
                changed = watched.changed  # taken before reading: a change after the read sets it
                text = await asyncio.to_thread(_read_text, path)
                if text is None:
                    return None
                last, target, ended = _summary(text)
                if ended or last >= msn:
                    return text
                if msn > last + 2:
                    return _bad_request(
                        f"_HLS_msn={msn} is more than two segments beyond the playlist's last ({last})",
                        last_msn=last,
                    )
                now = time.monotonic()
                if deadline is None:
                    deadline = now + min(BLOCK_CAP_S, BLOCK_TARGETS * max(target, 1))
                if now >= deadline:
                    return text
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), deadline - now)


def _directives(request: Request) -> tuple[int, int | None] | Response | None:
    """``(_HLS_msn, _HLS_part)`` of a blocking reload, ``None`` for a plain request, or a 400 for bad values."""
    query = request.query_params
    msn, part = query.get("_HLS_msn"), query.get("_HLS_part")
    if msn is None:
        return _bad_request("_HLS_part needs _HLS_msn") if part is not None else None
    if not _NUMBER.fullmatch(msn) or (part is not None and not _NUMBER.fullmatch(part)):
        return _bad_request("_HLS_msn and _HLS_part must be non-negative integers")
    return int(msn), None if part is None else int(part)


def _summary(text: str) -> tuple[int, int, bool]:
    """A media playlist's last media sequence number (-1 when it lists none), target duration and whether it ended."""
    first = count = target = 0
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            first = int(line.partition(":")[2] or 0)
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            target = int(line.partition(":")[2] or 0)
        elif line and not line.startswith("#"):
            count += 1
    return first + count - 1, target, "#EXT-X-ENDLIST" in text


def _bad_request(message: str, **extra: object) -> Response:
    response = json_error(400, message, **extra)
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(CORS)
    return response


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _not_found(message: str) -> Response:
    response = json_error(404, message)
    # A playlist that does not exist yet will soon: a CDN must not remember the miss.
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(CORS)
    return response
