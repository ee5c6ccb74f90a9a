"""Thai text helpers: normalisation, digits, tokenising and word-safe wrapping."""

from __future__ import annotations

import unicodedata

import pytest

from common.thai import normalize, thai_digits_to_arabic, words, wrap_lines

SENTENCE = "ฉันเดินทางไปเที่ยวที่จังหวัดเชียงใหม่ในช่วงฤดูหนาวเพื่อสัมผัสอากาศเย็นสบาย"


def _word_boundaries(text: str) -> set[int]:
    """Character offsets in `text` (spaces removed) where a newmm word starts or ends."""
    offsets = {0}
    position = 0
    for word in words(text):
        position += len(word)
        offsets.add(position)
    return offsets


def test_normalize_composes_to_nfc() -> None:
    """A decomposed character comes back in its composed (NFC) form."""
    decomposed = unicodedata.normalize("NFD", "café")
    assert decomposed != "café"
    assert normalize(decomposed) == "café"


def test_normalize_keeps_sara_am_whole() -> None:
    """Sara am (U+0E33) survives: normalisation is NFC, not NFKC which would split it in two."""
    assert normalize("น้ำ") == "น\u0e49\u0e33"


def test_normalize_strips_zero_width_characters() -> None:
    """U+200B-U+200D, U+2060 and U+FEFF vanish from the text."""
    dirty = "\ufeffสวัสดี\u200bครับ\u200c\u200d\u2060"
    assert normalize(dirty) == "สวัสดีครับ"


def test_normalize_collapses_and_strips_whitespace() -> None:
    """Runs of spaces, tabs and newlines become one space and the ends are trimmed."""
    assert normalize("  ร่าง \t\n พระราชบัญญัติ   ") == "ร่าง พระราชบัญญัติ"


def test_thai_digits_become_arabic() -> None:
    """The Buddhist-era year ๒๕๖๐ reads as 2560, other text untouched."""
    assert thai_digits_to_arabic("พ.ศ. ๒๕๖๐") == "พ.ศ. 2560"
    assert thai_digits_to_arabic("๐๑๒๓๔๕๖๗๘๙") == "0123456789"


def test_words_drops_whitespace() -> None:
    """Tokenising keeps every word and no whitespace tokens."""
    tokens = words("สวัสดี  ครับ ท่านประธาน")
    assert all(token.strip() == token and token for token in tokens)
    assert "".join(tokens) == "สวัสดีครับท่านประธาน"


@pytest.mark.parametrize("width", [8, 15, 20, 42])
def test_wrap_never_splits_a_word(width: int) -> None:
    """Every line break falls on a newmm word boundary of the original text."""
    text = SENTENCE * 3
    lines = wrap_lines(text, width)
    assert "".join(lines) == text
    boundaries = _word_boundaries(text)
    position = 0
    for line in lines[:-1]:
        position += len(line)
        assert position in boundaries


@pytest.mark.parametrize("width", [8, 15, 42])
def test_wrap_respects_width(width: int) -> None:
    """No line is longer than the width unless it is a single word that alone exceeds it."""
    for line in wrap_lines(SENTENCE * 2, width):
        assert len(line) <= width or words(line) == [line]


def test_wrap_gives_overlong_word_its_own_line() -> None:
    """A word longer than the width stands alone on its line rather than being cut."""
    lines = wrap_lines("ท่าน ประชาธิปไตย ครับ", width=5)
    assert lines == ["ท่าน", "ประชาธิปไตย", "ครับ"]


def test_wrap_breaks_at_spaces_and_drops_them() -> None:
    """Latin text breaks at spaces, which do not appear at line edges."""
    lines = wrap_lines("ask not what your country can do for you", width=12)
    assert " ".join(lines) == "ask not what your country can do for you"
    assert all(len(line) <= 12 and line == line.strip() for line in lines)


def test_wrap_of_blank_text_is_empty() -> None:
    """Whitespace-only text yields no lines at all."""
    assert wrap_lines(" \u200b \n") == []
