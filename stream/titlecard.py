"""A picture for audio-only feeds: the sitting's title and a running clock, drawn as video frames.

HLS players show a video area whatever the stream holds, and an audio-only sitting would leave it black. The card
gives it the sitting's title (Thai, set in a TLWG font where the system has one) and two clocks, Bangkok wall time
and time since the feed began, so a viewer can see the stream is live. It is meant to be cheap: the picture is
redrawn only when a clock's text changes (once a second) and the same frame is handed out in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFont
from pythainlp.tokenize import word_tokenize

from common.thai import normalize

# Thailand keeps UTC+7 all year, so a fixed offset needs no time zone database.
BANGKOK = timezone(timedelta(hours=7), "ICT")
THAI_FONT_DIR = Path("/usr/share/fonts/truetype/tlwg")
# Loopless sans faces read best on screen; the rest are there in case a distribution ships only some of them.
THAI_FONTS = ("Sawasdee.ttf", "Garuda.ttf", "Loma.ttf", "Umpush.ttf", "Kinnari.ttf", "Norasi.ttf", "TlwgTypo.ttf")
FALLBACK_TITLE = "Live sitting"

_BACKGROUND = (16, 32, 64)
_BAND = (196, 150, 40)
_TEXT = (245, 245, 245)
_MUTED = (180, 196, 220)
_MAX_TITLE_LINES = 3

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def find_thai_font(directory: Path = THAI_FONT_DIR, names: Sequence[str] = THAI_FONTS) -> Path | None:
    """The first of ``names`` present in ``directory``, or ``None`` where no Thai font is installed."""
    for name in names:
        path = directory / name
        if path.is_file():
            return path
    return None


def _is_latin(text: str) -> bool:
    return all(ord(ch) < 0x250 for ch in text)


def clock(seconds: float) -> str:
    """``H:MM:SS`` for a duration (hours grow past 99 rather than wrapping)."""
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class TitleCard:
    """Renders the card at ``width``x``height`` as yuv420p ``av.VideoFrame``s, ``fps`` of them per second of feed.

    With no Thai font the card falls back to Latin text: the title is replaced by ``fallback_title`` unless it is
    Latin already, and the clock labels are English. Not thread-safe: one writer thread draws from it.
    """

    def __init__(
        self,
        title: str,
        *,
        width: int = 640,
        height: int = 360,
        fps: float = 5.0,
        font: Path | None = None,
        font_dir: Path = THAI_FONT_DIR,
        fallback_title: str = FALLBACK_TITLE,
    ) -> None:
        if width % 2 or height % 2 or width < 64 or height < 64:
            raise ValueError(f"the card needs an even size of at least 64x64, not {width}x{height}")
        if not 0 < fps <= 30:
            raise ValueError(f"fps must be in (0, 30], not {fps}")
        self.width = width
        self.height = height
        self.fps = fps
        self.font_path = font if font is not None and font.is_file() else find_thai_font(font_dir)
        self.thai = self.font_path is not None
        self.title = title if self.thai or _is_latin(title) else fallback_title
        self._title_font = self._font(height // 12)
        self._clock_font = self._font(height // 14)
        # Drawn on first use, on the HLS writer's thread: breaking a Thai title into words loads a dictionary.
        self._background: Image.Image | None = None
        self._key: tuple[str, str] | None = None
        self._frame: av.VideoFrame | None = None
        self.renders = 0

    def _font(self, size: int) -> Font:
        if self.font_path is not None:
            return ImageFont.truetype(str(self.font_path), size)
        return ImageFont.load_default(size)

    def frame(self, media_time: float, wall: datetime) -> av.VideoFrame:
        """The card at ``media_time`` seconds into the feed, which was live at ``wall``.

        The same frame object comes back until a clock's text changes; the caller may set its ``pts`` and
        ``pict_type`` but must not change its picture.
        """
        local = wall.astimezone(BANGKOK).strftime("%H:%M:%S")
        key = (local, clock(media_time))
        if self._frame is None or key != self._key:
            self._frame = self._render(*key)
            self._key = key
        return self._frame

    def _render(self, local: str, elapsed: str) -> av.VideoFrame:
        if self._background is None:
            self._background = self._draw_background()
        image = self._background.copy()
        draw = ImageDraw.Draw(image)
        if self.thai:
            lines = (f"{local} น. เวลาประเทศไทย", f"ถ่ายทอดมาแล้ว {elapsed}")
        else:
            lines = (f"{local} Bangkok time", f"On air for {elapsed}")
        margin = self.width // 16
        step = self.height // 11
        y = self.height - margin - 2 * step
        draw.text((margin, y), lines[0], font=self._clock_font, fill=_TEXT)
        draw.text((margin, y + step), lines[1], font=self._clock_font, fill=_MUTED)
        self.renders += 1
        return av.VideoFrame.from_image(image).reformat(format="yuv420p")

    def _draw_background(self) -> Image.Image:
        image = Image.new("RGB", (self.width, self.height), _BACKGROUND)
        draw = ImageDraw.Draw(image)
        margin = self.width // 16
        draw.rectangle((0, 0, self.width, self.height // 60 + 2), fill=_BAND)
        y = self.height // 6
        step = self.height // 9
        for line in self._wrap(self.title, self.width - 2 * margin)[:_MAX_TITLE_LINES]:
            draw.text((margin, y), line, font=self._title_font, fill=_TEXT)
            y += step
        return image

    def _wrap(self, text: str, width: int) -> list[str]:
        # Thai has no spaces between words: break only between the words the tokenizer finds (or at spaces).
        pieces = word_tokenize(normalize(text), engine="newmm", keep_whitespace=True)
        lines: list[str] = []
        line = ""
        for piece in pieces:
            candidate = line + piece
            if line.strip() and not piece.isspace() and self._title_font.getlength(candidate.strip()) > width:
                lines.append(line.strip())
                line = piece
            else:
                line = candidate
        if line.strip():
            lines.append(line.strip())
        return lines
