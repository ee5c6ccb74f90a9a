"""Plain text from the public and staff: cleaned, length-checked, and never interpreted as markup."""

from __future__ import annotations

import unicodedata
from typing import Any


def clean_text(value: Any, *, max_len: int, multiline: bool) -> str:
    """Plain text as the sender meant it: NFC, control characters dropped (newlines kept in ``multiline``),
    line ends as ``\\n``, ends trimmed. Raises ``ValueError`` for a non-string, empty or over-long value."""
    if not isinstance(value, str):
        raise ValueError("must be text")
    # Refuse before normalising: NFC and the regex passes cost time in the input's length.
    if len(value) > 4 * max_len:
        raise ValueError(f"must be at most {max_len} characters")
    text = unicodedata.normalize("NFC", value.replace("\r\n", "\n").replace("\r", "\n"))
    # Line breaks and tabs survive the filter; a one-line field then turns them (and runs of spaces) into one space.
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs"))
    if not multiline:
        text = " ".join(text.split())
    text = text.strip()
    if not text:
        raise ValueError("must not be empty")
    if len(text) > max_len:
        raise ValueError(f"must be at most {max_len} characters")
    return text
