"""Caption text hygiene and the stable units that the commit policy agrees on.

Whisper's Thai "words" are byte-level BPE fragments that shift between decoding passes, so two
passes rarely agree on them even when they agree on the text. Re-segmenting the text with
PyThaiNLP's dictionary tokenizer gives units that are stable as long as the characters are.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from pythainlp.corpus.common import thai_words
from pythainlp.tokenize import word_tokenize

from common.thai import join_pieces

# Zero-width space/non-joiner/joiner, word joiner, soft hyphen and BOM: invisible, but they break
# agreement between passes and exact search in the archive.
_ZERO_WIDTH = re.compile("[\u00ad\u200b-\u200d\u2060\ufeff]")
_WHITESPACE = re.compile(r"\s+")
_PUNCT_RUN = re.compile(r"([^\w\s\u0e00-\u0e7f])\1{2,}")
_THAI = re.compile("[\u0e00-\u0e7f]")


def clean(text: str) -> str:
    """NFC, zero-width characters removed, whitespace runs collapsed to one space, ends stripped,
    and runs of three or more of the same punctuation mark (a decoder loop: "Ask not......")
    cut to one."""
    text = unicodedata.normalize("NFC", text)
    text = _ZERO_WIDTH.sub("", text)
    text = _PUNCT_RUN.sub(r"\1", text)
    return _WHITESPACE.sub(" ", text).strip()


def has_thai(text: str) -> bool:
    """True when `text` contains at least one character of the Thai block."""
    return _THAI.search(text) is not None


def unit_key(text: str) -> str:
    """What two units must share to count as the same: casefolded letters, marks and digits only.

    Thai vowels and tone marks are combining marks (category M), which `\\W` would strip, so
    they are kept explicitly.
    """
    folded = unicodedata.normalize("NFC", text).casefold()
    return "".join(ch for ch in folded if ch.isalnum() or unicodedata.category(ch).startswith("M"))


def is_known_word(text: str) -> bool:
    """False for Thai text that is not a dictionary word (a fragment such as the lone "ห" newmm
    leaves of a misheard or cut-off word); True for dictionary words, numbers and non-Thai text."""
    return not has_thai(text) or text in thai_words() or text.isdigit()


@dataclass(frozen=True, slots=True)
class Unit:
    """One word of a hypothesis with media times in seconds and whether a space precedes it."""

    text: str
    start: float
    end: float
    space_before: bool = False

    @property
    def key(self) -> str:
        """The agreement key (see `unit_key`)."""
        return unit_key(self.text)


def join_units(units: tuple[Unit, ...] | list[Unit]) -> str:
    """Text of `units`, with a space wherever the decoder put one (never before the first)."""
    parts: list[str] = []
    for i, unit in enumerate(units):
        if i and unit.space_before:
            parts.append(" ")
        parts.append(unit.text)
    return "".join(parts)


def join_text(left: str, right: str) -> str:
    """Append caption `right` to `left` as a reader expects: Thai runs join, other text gets a space.

    Finals of one segment are emitted with their ends stripped; the transcript exports and the HLS captions join
    them the same way, so there is one rule, in `common.thai`.
    """
    return join_pieces(left, right)


@dataclass(frozen=True, slots=True)
class TimedPiece:
    """A piece of decoded text (a whisper word or fragment) with its aligned media times."""

    text: str
    start: float
    end: float


def segment_units(pieces: list[TimedPiece] | tuple[TimedPiece, ...]) -> tuple[Unit, ...]:
    """Re-segment timed decoder pieces into newmm words, each timed by the pieces it overlaps.

    The pieces' text is cleaned and concatenated; every character remembers which piece it came
    from, so a word's start is the start of the piece holding its first character and its end is
    the end of the piece holding its last.
    """
    chars: list[str] = []
    owner: list[int] = []
    for index, piece in enumerate(pieces):
        text = unicodedata.normalize("NFC", _ZERO_WIDTH.sub("", piece.text))
        for ch in text:
            if ch.isspace():
                # Collapse runs: one space marks a word gap. A leading one is kept so the first
                # unit knows the decoder separated it from the text before (the prefix).
                if chars and chars[-1] == " ":
                    continue
                ch = " "
            chars.append(ch)
            owner.append(index)
    text = "".join(chars).rstrip()
    if not text.strip():
        return ()
    units: list[Unit] = []
    offset = 0
    space_pending = False
    for token in word_tokenize(text, engine="newmm", keep_whitespace=True):
        if token.isspace():
            space_pending = True
            offset += len(token)
            continue
        first, last = pieces[owner[offset]], pieces[owner[offset + len(token) - 1]]
        units.append(
            Unit(
                text=token,
                start=first.start,
                end=max(last.end, first.start),
                space_before=space_pending,
            )
        )
        space_pending = False
        offset += len(token)
    return tuple(units)
