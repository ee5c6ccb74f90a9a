"""Thai text handling for captions and the archive: normalisation, tokenising, line wrapping."""

from __future__ import annotations

import re
import unicodedata

from pythainlp.tokenize import word_tokenize

# Zero-width space/non-joiner/joiner, word joiner and BOM: invisible, but they break exact
# matching and search, and ASR or copy-paste from PDFs of bills often carries them. C0 control characters other
# than whitespace (NUL above all, which PostgreSQL cannot store) never belong in text either.
_ZERO_WIDTH = re.compile("[\u200b-\u200d\u2060\ufeff\x00-\x08\x0e-\x1f\x7f]")
_WHITESPACE = re.compile(r"\s+")
_THAI_DIGITS = str.maketrans("๐๑๒๓๔๕๖๗๘๙", "0123456789")


def normalize(text: str) -> str:
    """NFC, zero-width and control characters removed, whitespace runs collapsed to one space, ends stripped."""
    text = unicodedata.normalize("NFC", text)
    text = _ZERO_WIDTH.sub("", text)
    return _WHITESPACE.sub(" ", text).strip()


def thai_digits_to_arabic(text: str) -> str:
    """Replace Thai digits ๐-๙ with 0-9 (e.g. the Buddhist-era year ๒๕๖๐ becomes 2560)."""
    return text.translate(_THAI_DIGITS)


def words(text: str) -> list[str]:
    """Words of `text` by PyThaiNLP's dictionary-based newmm tokenizer, whitespace dropped."""
    return word_tokenize(text, engine="newmm", keep_whitespace=False)


def wrap_lines(text: str, width: int = 42) -> list[str]:
    """Break `text` into lines of at most `width` characters, only between newmm words.

    Thai has no spaces between words, so a break anywhere else would cut a word in half.
    A space between words is dropped where the line breaks there. A single word longer than
    `width` gets a line of its own rather than being cut.

    Width is plain len() in code points. Thai above/below vowels and tone marks are code
    points that take no column of their own, so a Thai line is visually narrower than its
    len(): the limit errs on the short side, which is the safe side for captions.
    """
    if width < 1:
        raise ValueError("width must be at least 1")
    lines: list[str] = []
    line = ""
    space_pending = False
    # keep_whitespace=True so we know where the original had spaces and can keep them.
    for token in word_tokenize(normalize(text), engine="newmm", keep_whitespace=True):
        if token.isspace():
            space_pending = True
            continue
        joined = f"{line} {token}" if (line and space_pending) else line + token
        space_pending = False
        if len(joined) <= width or not line:
            line = joined
        else:
            lines.append(line)
            line = token
    if line:
        lines.append(line)
    return lines


def _is_thai(ch: str) -> bool:
    return "\u0e00" <= ch <= "\u0e7f"


def join_pieces(left: str, right: str) -> str:
    """Join two caption pieces of one utterance as a reader expects: Thai runs join, other text gets a space.

    Thai writes words without spaces, so only a boundary with a non-Thai side (or punctuation) needs care.
    """
    if not left or not right:
        return left or right
    if (_is_thai(left[-1]) and _is_thai(right[0])) or not right[0].isalnum():
        return left + right
    return f"{left} {right}"
