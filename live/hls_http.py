"""Serving a sitting's HLS files: ``GET /live/{sitting_id}/{name}``, with headers a CDN can cache by.

Only plain names directly inside the sitting's directory are served, and only the kinds ``stream.hls`` writes;
everything else is a 404 in the API's JSON error shape. Caching follows what can change: a live playlist is
rewritten every segment (cache a second), a closed one (``EXT-X-ENDLIST``) and every segment never change again
(their names carry the writer's run id, so a restarted feed writes new files rather than new versions).
"""

from __future__ import annotations

import asyncio
import re
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


class HlsFiles:
    """Serves ``<root>/<sitting_id>/<name>``: ``Route("/live/{sitting_id}/{name:path}", files.handle)``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    async def handle(self, request: Request) -> Response:
        sitting_id = str(request.path_params.get("sitting_id", ""))
        name = str(request.path_params.get("name", ""))
        kind = Path(name).suffix
        if not (_NAME.fullmatch(sitting_id) and _NAME.fullmatch(name) and kind in CONTENT_TYPES):
            return _not_found(f"no such HLS file: {sitting_id}/{name}")
        path = self.root / sitting_id / name
        if kind == ".m3u8":
            text = await asyncio.to_thread(_read_text, path)
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
