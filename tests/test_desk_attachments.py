"""Attachments: the type comes from the bytes, sizes and pixels are capped, files live outside the web root."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import Image

from desk import attachments as att
from desk.attachments import AttachmentStore, Refused

pytestmark = pytest.mark.fast


def image(fmt: str, size: tuple[int, int] = (32, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG file whose header claims ``width`` × ``height``: a pixel bomb if anyone decoded it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def zipped(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in names:
            z.writestr(name, "0" * 100_000)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("fmt", "content_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_real_images_are_accepted_with_their_dimensions(fmt: str, content_type: str) -> None:
    """PNG, JPEG and WebP made by an encoder pass, typed by their bytes, with width and height."""
    checked = att.check(image(fmt))
    assert (checked.content_type, checked.width, checked.height) == (content_type, 32, 24)


def test_a_plain_pdf_is_accepted() -> None:
    """A PDF with a header and an end marker passes as application/pdf."""
    assert att.check(PDF).content_type == "application/pdf"


LIES = {
    "html named .png": b"<!doctype html><script>alert(1)</script>",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
    "svg with xml prolog": b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>x</script></svg>',
    "gif": b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
    "exe": b"MZ\x90\x00" + b"\x00" * 100,
    "html then png bytes": b"<html>" + image("PNG"),
    "bom then pdf": b"\xef\xbb\xbf" + PDF,
    "pdf after junk": b"junk\n" + PDF,
    "png magic, html body": b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>",
    "jpeg magic, png body": b"\xff\xd8\xff" + image("PNG")[3:],
    "png magic, jpeg body": b"\x89PNG\r\n\x1a\n" + image("JPEG"),
    "truncated png": image("PNG")[:40],
    "riff that is not webp": b"RIFF\x10\x00\x00\x00WAVEfmt " + b"\x00" * 20,
    "webp magic, garbage": b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 20,
    "pdf magic, no end": b"%PDF-1.7\n1 0 obj <<>> endobj\n",
    "pdf magic, bad version": b"%PDF-x\n%%EOF",
}


@pytest.mark.parametrize("name", sorted(LIES))
def test_files_that_lie_about_their_type_are_refused(name: str) -> None:
    """A file is what its bytes parse as: wrong or missing magic numbers, and bodies that do not decode as the
    type their magic names, are all 415."""
    with pytest.raises(Refused) as err:
        att.check(LIES[name])
    assert err.value.status == 415


@pytest.mark.parametrize("entries", [["word/document.xml", "[Content_Types].xml"], ["bomb.txt"]])
def test_zip_and_docx_are_unsupported(entries: list[str]) -> None:
    """Zip archives and the Office formats built on them are refused unopened, whatever they hold."""
    with pytest.raises(Refused, match="zip") as err:
        att.check(zipped(entries))
    assert err.value.status == 415


@pytest.mark.parametrize(
    "pdf",
    [
        PDF.replace(b"/Type /Catalog", b"/Type /Catalog /OpenAction << /S /JavaScript /JS (app.alert(1)) >>"),
        PDF.replace(b"/Type /Catalog", b"/Type /Catalog /OpenAction << /S /J#61vaScript >>"),
        PDF.replace(b"/Type /Catalog", b"/Type /Catalog /OpenAction << /S /Launch /F (cmd.exe) >>"),
        PDF.replace(b"/Type /Catalog", b"/Type /Catalog /Names << /EmbeddedFiles << >> >> /EmbeddedFile"),
    ],
)
def test_pdfs_with_active_content_are_refused(pdf: bytes) -> None:
    """Scripts (also hex-escaped names), launch actions and embedded files make a PDF unacceptable."""
    with pytest.raises(Refused, match="scripts"):
        att.check(pdf)


def test_empty_and_oversized_files_are_refused() -> None:
    """An empty file is 400, one byte over the cap 413, before any parsing."""
    with pytest.raises(Refused) as empty:
        att.check(b"")
    with pytest.raises(Refused) as big:
        att.check(b"%PDF-1.4\n" + b"0" * att.MAX_BYTES)
    assert (empty.value.status, big.value.status) == (400, 413)


def test_count_and_total_size_per_message_are_capped() -> None:
    """More than MAX_FILES files, or more than MAX_TOTAL_BYTES together, are refused with 413."""
    with pytest.raises(Refused) as many:
        att.check_all([PDF] * (att.MAX_FILES + 1))
    with pytest.raises(Refused) as total:
        att.check_all([b"0" * (att.MAX_BYTES - 1)] * 4)
    assert (many.value.status, total.value.status) == (413, 413)
    assert len(att.check_all([PDF, image("PNG")])) == 2


@pytest.mark.parametrize("size", [(100_000, 100_000), (20_000, 1), (7000, 7000), (2**31 - 1, 2**31 - 1)])
def test_pixel_bombs_are_refused_from_the_header_before_decoding(size: tuple[int, int]) -> None:
    """A few hundred bytes claiming a huge image are refused with 413 by their header alone, under the cap that
    sits below Pillow's own decompression-bomb limit."""
    bomb = png_header_only(*size)
    assert len(bomb) < 2000
    with pytest.raises(Refused) as err:
        att.check(bomb)
    assert err.value.status == 413
    assert Image.MAX_IMAGE_PIXELS is not None and att.MAX_PIXELS < Image.MAX_IMAGE_PIXELS


def test_animated_images_are_refused() -> None:
    """An animated PNG (frames multiply the decoded size) is refused."""
    buf = io.BytesIO()
    frames = [Image.new("RGB", (8, 8), c) for c in ((0, 0, 0), (255, 255, 255))]
    frames[0].save(buf, format="PNG", save_all=True, append_images=frames[1:])
    with pytest.raises(Refused, match="animated"):
        att.check(buf.getvalue())


def test_store_writes_random_names_privately_outside_the_web_root(tmp_path: Path) -> None:
    """Saved files get a random name (not the sender's), mode 0600, and read back; a root inside the web root is
    refused; names that are not the store's own (path tricks) are refused."""
    web = tmp_path / "static"
    web.mkdir()
    with pytest.raises(ValueError):
        AttachmentStore(web / "uploads", web_roots=[web])
    with pytest.raises(ValueError):
        AttachmentStore(web, web_roots=[web])
    store = AttachmentStore(tmp_path / "private", web_roots=[web])
    data = image("PNG")
    first, second = store.save(att.check(data)), store.save(att.check(data))
    assert first.name != second.name and len(first.name) == 32
    assert store.read(first.name) == data and first.size == len(data) and first.content_type == "image/png"
    assert stat.S_IMODE(store.path(first.name).stat().st_mode) == 0o600
    assert sorted(p.name for p in (tmp_path / "private").iterdir()) == sorted([first.name, second.name])
    for bad in ("../static/x", "/etc/passwd", first.name + ".png", first.name.upper(), ""):
        with pytest.raises(ValueError):
            store.path(bad)
    store.delete(first.name)
    store.delete(first.name)
    assert not store.path(first.name).exists()


def test_downloads_are_attachments_never_sniffed_or_rendered() -> None:
    """Moderators' downloads carry attachment disposition, nosniff, a sandbox CSP and no shared caching; the file
    name is built from a safe stem, never from the sender."""
    meta = att.AttachmentMeta(
        name="c" * 32, content_type="application/pdf", size=1, width=None, height=None, sha256="0" * 64
    )
    headers = att.download_headers(meta, stem='msg-1"; filename=evil.html')
    assert headers["Content-Disposition"] == 'attachment; filename="msg-1___filename_evil_html.pdf"'
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in headers["Content-Security-Policy"] and headers["Cache-Control"] == "private, no-store"
