"""Attachments to the public's messages: type from the bytes, size and pixel caps, storage outside the web root.

Accepted: PNG, JPEG, WebP and PDF, each recognised by its magic number at offset 0 and then parsed (images
decoded in full by Pillow, restricted to the format the magic number named; PDFs checked for their header, an
end marker and no active content). Everything else is refused with 415, whatever its name or declared
Content-Type: SVG and HTML (script carriers), zip and the formats built on it (docx, xlsx, odt: zip bombs and
macros), files whose bytes start with one type's signature and go on as another are caught by the parse.

Images are bounded before decoding: the header's width × height must stay under ``MAX_PIXELS`` (far below
Pillow's own ``Image.MAX_IMAGE_PIXELS`` decompression-bomb guard, which stays armed as the second line: its
warning is raised as an error here), and animated images are refused, so a small file cannot make the
server allocate gigabytes.

Files go to a folder outside the web root, under random names (the sender's file name is never used for
anything), mode 0600. They are served only to moderators (permission ``attachment.read``) with
``download_headers``: ``Content-Disposition: attachment``, ``X-Content-Type-Options: nosniff`` and a sandboxing
CSP, so even a file that fooled the checks is downloaded, never rendered by the app's origin.

Wiring (to do): ``ATTACHMENTS_DIR`` setting (default ``var/attachments``); ``create_app`` builds
``AttachmentStore(settings.attachments_dir, web_roots=[STATIC_DIR, settings.hls_dir])``; ``POST /api/messages``
reads each part with a cap (``common.http.read_body_capped`` for the whole body, ``MAX_TOTAL_BYTES`` plus form
overhead), runs ``check`` then ``store.save`` in a thread, and passes the ``AttachmentMeta`` list to
``MessageStore.submit`` (on a refused submission the saved files are deleted again).
``GET /api/messages/{id}/attachments/{name}`` (moderators) answers ``FileResponse(store.path(name),
headers=download_headers(meta))``. ``MessageStore.erase`` returns the names to ``delete``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

MAX_BYTES = 5 * 1024 * 1024
MAX_FILES = 5
MAX_TOTAL_BYTES = 15 * 1024 * 1024
MAX_PIXELS = 40_000_000
MAX_SIDE = 12_000
assert Image.MAX_IMAGE_PIXELS is None or MAX_PIXELS < Image.MAX_IMAGE_PIXELS, (
    "our cap must be tighter than Pillow's bomb guard"
)

# content type → (Pillow format name or None for PDF, file extension for downloads)
TYPES: dict[str, tuple[str | None, str]] = {
    "image/png": ("PNG", "png"),
    "image/jpeg": ("JPEG", "jpg"),
    "image/webp": ("WEBP", "webp"),
    "application/pdf": (None, "pdf"),
}
_ZIP = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_NAME = re.compile(r"[0-9a-f]{32}")
# PDF names that run code or carry files; matched after #xx escapes are decoded (``/J#61vaScript``).
_ACTIVE_PDF = frozenset({b"JavaScript", b"JS", b"Launch", b"EmbeddedFile", b"RichMedia", b"XFA"})
_PDF_NAME = re.compile(rb"/([^\s/<>\[\]()%{}]+)")
_PDF_HEX = re.compile(rb"#([0-9A-Fa-f]{2})")


class Refused(ValueError):
    """An attachment refused: ``status`` is 400 (empty), 413 (too large) or 415 (type not accepted)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Checked:
    """Bytes that passed ``check``, with what was learnt about them."""

    data: bytes
    content_type: str
    width: int | None
    height: int | None


@dataclass(frozen=True, slots=True)
class AttachmentMeta:
    """A stored attachment, as messages_sqlite keeps it: ``name`` is the random file name in the store."""

    name: str
    content_type: str
    size: int
    width: int | None
    height: int | None
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "width": self.width,
            "height": self.height,
            "sha256": self.sha256,
        }


def sniff(data: bytes) -> str | None:
    """The accepted type the leading bytes announce, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def check(data: bytes, *, max_bytes: int = MAX_BYTES) -> Checked:
    """Accept ``data`` as one of ``TYPES`` or raise ``Refused``; the declared type and file name play no part."""
    if not data:
        raise Refused(400, "the file is empty")
    if len(data) > max_bytes:
        raise Refused(413, f"a file must be at most {max_bytes} bytes")
    content_type = sniff(data)
    if content_type is None:
        if data.startswith(_ZIP):
            raise Refused(415, "zip archives and documents built on them (docx, xlsx, odt) are not accepted")
        raise Refused(415, "only PNG, JPEG, WebP images and PDF documents are accepted")
    if content_type == "application/pdf":
        _check_pdf(data)
        return Checked(data=data, content_type=content_type, width=None, height=None)
    width, height = _check_image(data, content_type)
    return Checked(data=data, content_type=content_type, width=width, height=height)


def check_all(files: Sequence[bytes]) -> list[Checked]:
    """``check`` each file, with the per-message caps on their number and total size."""
    if len(files) > MAX_FILES:
        raise Refused(413, f"at most {MAX_FILES} files per message")
    if sum(len(f) for f in files) > MAX_TOTAL_BYTES:
        raise Refused(413, f"the files together must be at most {MAX_TOTAL_BYTES} bytes")
    return [check(f) for f in files]


def _check_image(data: bytes, content_type: str) -> tuple[int, int]:
    pil_format = TYPES[content_type][0]
    assert pil_format is not None
    name = pil_format.lower()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # formats=[...]: only the decoder the magic number named may open it, never a guess of Pillow's.
            with Image.open(io.BytesIO(data), formats=[pil_format]) as image:
                width, height = image.size
                if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
                    raise Refused(413, f"an image must be at most {MAX_PIXELS} pixels and {MAX_SIDE} px a side")
                if getattr(image, "n_frames", 1) > 1:
                    raise Refused(415, "animated images are not accepted")
                image.load()
    except Refused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Refused(413, "the image is too large when decoded") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise Refused(415, f"the file does not decode as a {name.upper()} image") from exc
    return width, height


def _check_pdf(data: bytes) -> None:
    if not re.match(rb"%PDF-[12]\.[0-9]", data):
        raise Refused(415, "the file does not start like a PDF document")
    if b"%%EOF" not in data[-1024:]:
        raise Refused(415, "the PDF document is incomplete (no end marker)")
    for match in _PDF_NAME.finditer(data):
        name = _PDF_HEX.sub(lambda m: bytes([int(m.group(1), 16)]), match.group(1))
        if name in _ACTIVE_PDF:
            raise Refused(415, "PDF documents with scripts, launch actions or embedded files are not accepted")


def download_headers(meta: AttachmentMeta, *, stem: str = "attachment") -> dict[str, str]:
    """Headers for a moderator's download: never inline, never sniffed, never cached by a shared cache."""
    extension = TYPES[meta.content_type][1]
    safe_stem = re.sub(r"[^A-Za-z0-9_-]", "_", stem)[:60] or "attachment"
    return {
        "Content-Type": meta.content_type,
        "Content-Disposition": f'attachment; filename="{safe_stem}.{extension}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store",
    }


class AttachmentStore:
    """Files under ``root`` by random name; refuses a root inside any of ``web_roots``. Blocking calls."""

    def __init__(self, root: str | Path, *, web_roots: Sequence[str | Path] = ()) -> None:
        self.root = Path(root).resolve()
        for web in (Path(w).resolve() for w in web_roots):
            if self.root == web or web in self.root.parents:
                raise ValueError(f"attachments must be stored outside the web root {web}")
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, name: str) -> Path:
        """The file of a stored ``name``; anything but a name this store made is refused (no path tricks)."""
        if not _NAME.fullmatch(name):
            raise ValueError("not an attachment name")
        return self.root / name

    def save(self, checked: Checked) -> AttachmentMeta:
        name = secrets.token_hex(16)
        final = self.path(name)
        temp = final.with_name(f".{name}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(checked.data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return AttachmentMeta(
            name=name,
            content_type=checked.content_type,
            size=len(checked.data),
            width=checked.width,
            height=checked.height,
            sha256=hashlib.sha256(checked.data).hexdigest(),
        )

    def read(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)
