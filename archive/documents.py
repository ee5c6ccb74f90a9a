"""Constitutions and laws split by section (มาตรา), sans I/O: the parser, the records, and the comparison of one
section with the other constitutions; plus the loader command that feeds them to a store.

Sources (docs/api.md "Documents"): the full text of the 2017 (B.E. 2560) Constitution and the Acts in
``../shared/data/text`` (krisdika.go.th scrapes, public domain), and the selected sections of all 20 Thai
constitutions from WeVis (MIT; read from there, never copied into this repository).

*Parsing* (`parse_sections`) reads the krisdika layout: a section starts on a line ``มาตรา <n>`` whose number is
followed by a no-break space (the scrape's mark of a heading; a cross-reference that happens to start a wrapped
line, ``มาตรา ๑๘ วรรคหนึ่ง``, has an ordinary space) or by the end of the line; ``หมวด <n>`` and ``ส่วนที่ <n>`` lines,
with the title on the next line, open a chapter and a part that every later section carries as context; a line
``บทเฉพาะกาล`` opens the transitory provisions. The signature block (``ผู้รับสนอง…``) ends the text: what follows in
a consolidated Act is the amending Acts' own sections and the footnotes. Thai digits are read as numbers, so
``มาตรา ๖/๑`` is section ``6/1`` at the URL key ``6-1``.

*The same subject across constitutions* (`compare`) is a weighted overlap of words: each section carries its
distinctive words (`subject_terms`: PyThaiNLP newmm words, stop words and numbers dropped, a handful of
synonyms folded to one spelling, e.g. the 1946 Senate ``พฤฒสภา`` to ``วุฒิสภา``), each word weighs its rarity over
the constitutions' sections (idf), and a section's match in another constitution is the section there with the
highest cosine similarity, if it clears `MIN_SIMILARITY`. The answer lists the shared words that weigh most, so
a reader sees why two sections were paired.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["constitution", "act"]
KINDS: tuple[Kind, ...] = ("constitution", "act")
BE_OFFSET = 543  # B.E. = C.E. + 543 for every document here (all from 1932 on)

_THAI_DIGITS = str.maketrans("๐๑๒๓๔๕๖๗๘๙", "0123456789")
# The scrape is cp1252 read as Latin-1 in places: its curly quotes and dashes arrive as C1 controls.
_C1 = str.maketrans({"\x91": "‘", "\x92": "’", "\x93": "“", "\x94": "”", "\x96": "–", "\x97": "—"})
_NUM = "[0-9๐-๙]+(?:/[0-9๐-๙]+)?"
_FOOTNOTE = re.compile(r"\[[0-9๐-๙]+\]")
# ทวิ, ตรี, … : Latin-ordinal names, for URL keys that stay ASCII.
SUFFIXES = {"ทวิ": "bis", "ตรี": "ter", "จัตวา": "quater", "เบญจ": "quinquies", "ฉ": "sexies", "สัตต": "septies"}
_SECTION = re.compile(
    rf"^มาตรา\s*(?P<num>{_NUM})(?:\s*(?P<suffix>{'|'.join(SUFFIXES)})(?![\u0e00-\u0e7f]))?"
    rf"(?P<notes>(?:\s*\[[0-9๐-๙]+\])*)(?:[ \t]*\xa0|\s*$)(?P<rest>.*)$"
)
_CHAPTER = re.compile(rf"^หมวด\s*(?P<num>{_NUM})(?:\s*\[[0-9๐-๙]+\])*$")
_PART = re.compile(rf"^ส่วนที่\s*(?P<num>{_NUM})(?:\s*\[[0-9๐-๙]+\])*$")
_TRANSITORY = "บทเฉพาะกาล"
_ITEM = re.compile(r"\([0-9๐-๙]+\)")
_SIGNATURE = re.compile(r"^ผู้รับสนอง(?:พระบรม|พระ)ราชโองการ")
KEY_REGEX = r"^[0-9]{1,4}(-[0-9]{1,3})?(-(bis|ter|quater|quinquies|sexies|septies))?$|^preamble$"


def to_arabic(text: str) -> str:
    """Thai digits as Arabic ones (``๒๕๖๐`` → ``2560``)."""
    return text.translate(_THAI_DIGITS)


def clean_line(line: str) -> str:
    """One line as shown: NFC, the scrape's C1 quotes mended, footnote marks dropped, spaces collapsed."""
    # NIKHAHIT + SARA AA, as the scrape often has it, is SARA AM to a reader.
    line = unicodedata.normalize("NFC", line).translate(_C1).replace("\u0e4d\u0e32", "\u0e33")
    line = _FOOTNOTE.sub("", line)
    line = re.sub(r"[\u200b-\u200d\u2060\ufeff\x00-\x08\x0b-\x1f\x7f]", "", line)
    return re.sub(r"\s+", " ", line).strip()


def section_key(number: str, suffix: str | None = None) -> str:
    """The URL key of section ``number`` (Thai or Arabic digits, ``6/1``) with an optional ทวิ-style suffix."""
    key = to_arabic(number).replace("/", "-")
    return f"{key}-{SUFFIXES[suffix]}" if suffix else key


def section_label(key: str) -> str:
    """``มาตรา 6/1 ทวิ`` for key ``6-1-bis``; ``คำปรารภ`` (the preamble) for ``preamble``."""
    if key == "preamble":
        return "คำปรารภ"
    names = {v: k for k, v in SUFFIXES.items()}
    parts = key.split("-")
    suffix = names.get(parts[-1])
    number = "/".join(parts[:-1] if suffix else parts)
    return f"มาตรา {number}" + (f" {suffix}" if suffix else "")


# -- records ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Section:
    """One section as loaded: ``key`` is its stable URL name, ``text`` its lines joined by ``\\n``."""

    key: str
    label: str
    text: str
    chapter: str | None = None
    part: str | None = None
    transitory: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "chapter": self.chapter,
            "part": self.part,
            "transitory": self.transitory,
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class Document:
    """A constitution or an Act. ``complete``: the full text, rather than selected sections."""

    slug: str
    title: str
    kind: Kind
    year_be: int
    in_force: bool
    complete: bool
    source: str
    licence: str
    sections: tuple[Section, ...] = field(default=(), compare=False)

    @property
    def year_ce(self) -> int:
        return self.year_be - BE_OFFSET

    def digest(self) -> str:
        """A hash of everything stored for the document: equal digests, nothing to reload."""
        h = hashlib.sha256()
        for value in (self.slug, self.title, self.kind, self.year_be, self.in_force, self.complete, self.source):
            h.update(f"{value}\x1f".encode())
        for s in self.sections:
            h.update(f"{s.key}\x1f{s.chapter}\x1f{s.part}\x1f{s.transitory}\x1f{s.text}\x1e".encode())
        return h.hexdigest()

    def meta(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "title": self.title,
            "kind": self.kind,
            "year_be": self.year_be,
            "year_ce": self.year_ce,
            "in_force": self.in_force,
            "complete": self.complete,
            "source": self.source,
            "licence": self.licence,
            "url": f"/documents/{self.slug}",
        }


# -- parsing ------------------------------------------------------------------------------------------------------


def _join_wrapped(lines: list[str]) -> list[str]:
    """Mend the scrape's wrapping where it is certain: a lone ``ๆ`` (it repeats the word before it), a
    cross-reference cut after ``มาตรา`` (whose number starts the next line), and an item number ``(๑)`` on a line
    of its own."""
    out: list[str] = []
    for line in lines:
        if out and (
            line.startswith("ๆ")
            or (out[-1].endswith("มาตรา") and re.match(r"[0-9๐-๙]", line))
            or _ITEM.fullmatch(out[-1])
        ):
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
    return out


def parse_sections(text: str) -> list[Section]:
    """The sections of a krisdika-layout text, in order, each with its chapter, part and transitory flag.

    A number met again (an amending Act's own ``มาตรา ๒`` that slipped in) keeps the first section of that
    number and appends the later text to the section before it, so keys stay unique and no text is lost.
    """
    raw = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines: list[str] = []
    for line in raw:
        line = unicodedata.normalize("NFC", line).translate(_C1)
        stripped = line.strip(" \t\xa0")
        if _SIGNATURE.match(stripped):
            break
        # A heading split over two lines: "มาตรา" then "๑\xa0 ข้อความ".
        if lines and lines[-1] == "มาตรา" and re.match(r"[0-9๐-๙]", stripped):
            lines[-1] = "มาตรา " + line.lstrip(" \t")
            continue
        lines.append(stripped if stripped in ("มาตรา", "") else line.strip(" \t"))

    sections: list[Section] = []
    seen: set[str] = set()
    chapter: str | None = None
    part: str | None = None
    transitory = False
    current: dict[str, Any] | None = None
    body: list[str] = []
    i = 0

    def flush() -> None:
        if current is None:
            return
        mended = _join_wrapped([t for t in (clean_line(b) for b in body) if t])
        if current["key"] in seen:
            if sections and mended:  # see the docstring: text kept, under the section before
                prev = sections[-1]
                sections[-1] = Section(
                    prev.key, prev.label, f"{prev.text}\n{current['head']} " + "\n".join(mended),
                    prev.chapter, prev.part, prev.transitory,
                )  # fmt: skip
            return
        seen.add(current["key"])
        sections.append(Section(current["key"], current["label"], "\n".join(mended), chapter_of, part_of, trans_of))

    chapter_of: str | None = None
    part_of: str | None = None
    trans_of = False
    while i < len(lines):
        line = lines[i]
        plain = clean_line(line)
        if _CHAPTER.match(plain) or _PART.match(plain):
            title, j = _heading_title(lines, i + 1)
            heading = f"{plain} {title}".strip()
            if _CHAPTER.match(plain):
                chapter, part = heading, None
            else:
                part = heading
            i = j
            continue
        if plain == _TRANSITORY:
            chapter, part, transitory = _TRANSITORY, None, True
            i += 1
            continue
        m = _SECTION.match(line)
        if m:
            flush()
            key = section_key(m["num"], m["suffix"])
            current = {"key": key, "label": section_label(key), "head": clean_line(line[: m.start("rest")])}
            chapter_of, part_of, trans_of = chapter, part, transitory
            body = [m["rest"]]
        elif current is not None:
            body.append(line)
        i += 1
    flush()
    return sections


def _heading_title(lines: list[str], start: int) -> tuple[str, int]:
    """The title line after a ``หมวด``/``ส่วนที่`` line (the next non-blank one unless it is a section), and where
    reading goes on."""
    j = start
    while j < len(lines) and not clean_line(lines[j]):
        j += 1
    if j < len(lines):
        title = clean_line(lines[j])
        if not _SECTION.match(lines[j]) and not _CHAPTER.match(title) and not _PART.match(title):
            return title, j + 1
    return "", start


def paragraphs_text(text: str) -> str:
    """WeVis section text (paragraphs separated by blank lines) as lines, one per paragraph."""
    return "\n".join(t for t in (clean_line(p) for p in text.replace("\r\n", "\n").split("\n")) if t)


# -- the same subject across constitutions ----------------------------------------------------------------------

MIN_SIMILARITY = 0.2
SHARED_SHOWN = 6
# Spellings of one thing that differ between constitutions; folded to the right-hand form before weighing.
SYNONYMS = {
    "พฤฒสภา": "วุฒิสภา",
    "สภาผู้แทน": "สภาผู้แทนราษฎร",
    "สมาชิกภาพ": "วาระ",
    "สมาชิกวุฒิสภา": "วุฒิสภา",
    "สมาชิกพฤฒสภา": "วุฒิสภา",
    "สมาชิกสภาผู้แทนราษฎร": "สภาผู้แทนราษฎร",
    "อายุ": "วาระ",
    "กำหนดเวลา": "กำหนด",
}
# Function words, and words every section uses. PyThaiNLP's stop word list is not used: it holds words that carry
# the subject here (กำหนด, คราว, ภายใน, เสร็จ: "within sixty days", "a term of six years").
STOP_WORDS = frozenset(
    "ของ มี ละ ที่ ให้ นั้น มา แห่ง การ ความ ต้อง หรือ และ ซึ่ง ตาม ใน จะ ได้ ไม่ เป็น แต่ ก็ โดย กับ แก่ ต่อ ด้วย นี้"
    " ว่า ถ้า เมื่อ อยู่ ไป แล้ว อัน ทั้ง ยัง ผู้ ดัง กรณี ใด ดังกล่าว เว้นแต่ ทั้งนี้ บรรดา เช่น ว่า นี้ มาตรา วรรค"
    " หนึ่ง สอง สาม สี่ ตาม ไว้ เพื่อ จาก ถึง อื่น ซึ่งได้ ส่วน คน ท่าน นับ แต่วัน นับแต่ ตั้งแต่ วันที่ จนกว่า ต่อไป"
    " ขึ้น ใหม่ ภายหลัง ก่อน".split()
)


LEAD_WEIGHT = 2.0


def subject_terms(text: str) -> str:
    """The words a section is compared by, stored as text: newmm words, numbers, stop words and single letters
    dropped, synonyms folded, each once in order of first use; the words of the first line (where a section
    states its subject: "the Senate's term is …") before a ``|``, the rest after it."""
    from common.thai import words  # imported here: the tokenizer's dictionary takes a moment to load

    seen: set[str] = set()
    lines: list[list[str]] = [[], []]
    for n, line in enumerate(text.split("\n", 1)):
        for word in words(to_arabic(line)):
            word = SYNONYMS.get(word.strip(), word.strip())
            if len(word) < 2 or word in STOP_WORDS or word in seen or not re.search(r"[\u0e01-\u0e2e]", word):
                continue
            seen.add(word)
            lines[n].append(word)
    return " ".join(lines[0]) + " | " + " ".join(lines[1])


@dataclass(frozen=True, slots=True)
class Candidate:
    """A section that may be compared: where it is, and its words (`subject_terms`): ``lead`` from its first
    line, ``rest`` from the others."""

    slug: str
    key: str
    lead: frozenset[str]
    rest: frozenset[str]
    transitory: bool = False

    @classmethod
    def from_terms(cls, slug: str, key: str, stored: str, transitory: bool = False) -> Candidate:
        lead, _, rest = stored.partition("|")
        return cls(slug, key, frozenset(lead.split()), frozenset(rest.split()), transitory)

    @property
    def terms(self) -> frozenset[str]:
        return self.lead | self.rest

    def weights(self, idf: Mapping[str, float]) -> dict[str, float]:
        """Each word's weight in this section: its idf, times LEAD_WEIGHT for a word of the first line."""
        return {t: idf.get(t, 0.0) * (LEAD_WEIGHT if t in self.lead else 1.0) for t in self.terms}


@dataclass(frozen=True, slots=True)
class Match:
    """The section of another document that reads most like the one compared; ``shared``: the words that weigh
    most in the pairing, heaviest first."""

    slug: str
    key: str
    similarity: float
    shared: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "key": self.key,
            "similarity": round(self.similarity, 3),
            "shared": list(self.shared),
        }


def idf(candidates: Iterable[Candidate]) -> dict[str, float]:
    """Each word's rarity over the candidates: log(N / sections using it)."""
    df: Counter[str] = Counter()
    n = 0
    for c in candidates:
        n += 1
        df.update(c.terms)
    return {t: math.log(n / d) for t, d in df.items()} if n else {}


def compare(
    target: Candidate,
    candidates: Sequence[Candidate],
    weights: Mapping[str, float] | None = None,
    *,
    min_similarity: float = MIN_SIMILARITY,
) -> list[Match]:
    """For every other document among `candidates`, its one section most like `target`, if any clears
    `min_similarity`; best first. Cosine similarity of the two sections' words, each weighing its idf (twice that
    in a first line). Transitory provisions are compared only with transitory provisions, the rest with the rest:
    "the first Senate serves three years" is not what the Senate's term is."""
    weights = weights if weights is not None else idf(candidates)
    mine = target.weights(weights)
    norm_mine = math.sqrt(sum(w * w for w in mine.values()))
    if not norm_mine:
        return []
    best: dict[str, Match] = {}
    for c in candidates:
        if c.slug == target.slug or c.transitory != target.transitory or not (c.terms & mine.keys()):
            continue
        theirs = c.weights(weights)
        norm_theirs = math.sqrt(sum(w * w for w in theirs.values()))
        if not norm_theirs:
            continue
        products = {t: mine[t] * theirs[t] for t in mine.keys() & theirs.keys()}
        similarity = sum(products.values()) / (norm_mine * norm_theirs)
        known = best.get(c.slug)
        if similarity >= min_similarity and (known is None or similarity > known.similarity):
            top = sorted(products, key=lambda t: (-products[t], t))[:SHARED_SHOWN]
            best[c.slug] = Match(c.slug, c.key, similarity, tuple(top))
    return sorted(best.values(), key=lambda m: -m.similarity)


# -- what stores answer --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DocumentFilters:
    """What a document search is limited to; None is no limit. Years are B.E., inclusive."""

    document: str | None = None
    kind: Kind | None = None
    year_from: int | None = None
    year_to: int | None = None
    in_force: bool | None = None


def rank_at(year_be: int, ord: int) -> int:
    """The `at` of archive/search.py's rank key for a section: newer documents first, then document order."""
    return year_be * 10_000 + (9_999 - min(ord, 9_999))


@dataclass(frozen=True, slots=True)
class DocumentHit:
    """One matching section, its document, and the snippet to show."""

    document: Document
    section: Section
    score: int
    snippet: list[Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "document": self.document.meta(),
            "section": {k: v for k, v in self.section.to_dict().items() if k != "text"},
            "score": self.score,
            "snippet": [s.to_dict() for s in self.snippet],
            "url": section_url(self.document.slug, self.section.key),
        }


@dataclass(frozen=True, slots=True)
class DocumentPage:
    """One page of sections, best first; `next_cursor` continues it (None on the last page)."""

    hits: list[DocumentHit]
    next_cursor: str | None
    exhaustive: bool


@dataclass(frozen=True, slots=True)
class SectionView:
    """A section with its document and the keys of the sections before and after it (None at the ends)."""

    document: Document
    section: Section
    prev: str | None
    next: str | None


def section_url(slug: str, key: str) -> str:
    return f"/documents/{slug}/sections/{key}"


# -- the sources (I/O from here on: reading ../shared/data/text, and the `load` command) -------------------------

# The 20 constitutions and charters, as WeVis names them, with their official titles.
CONSTITUTIONS: dict[str, tuple[int, str]] = {
    "con2475temp": (2475, "พระราชบัญญัติธรรมนูญการปกครองแผ่นดินสยามชั่วคราว พุทธศักราช ๒๔๗๕"),
    "con2475": (2475, "รัฐธรรมนูญแห่งราชอาณาจักรสยาม พุทธศักราช ๒๔๗๕"),
    "con2489": (2489, "รัฐธรรมนูญแห่งราชอาณาจักรไทย พุทธศักราช ๒๔๘๙"),
    "con2490temp": (2490, "รัฐธรรมนูญแห่งราชอาณาจักรไทย (ฉบับชั่วคราว) พุทธศักราช ๒๔๙๐"),
    "con2492": (2492, "รัฐธรรมนูญแห่งราชอาณาจักรไทย พุทธศักราช ๒๔๙๒"),
    "con2495": (2495, "รัฐธรรมนูญแห่งราชอาณาจักรไทย พุทธศักราช ๒๔๗๕ แก้ไขเพิ่มเติม พุทธศักราช ๒๔๙๕"),
    "con2502temp": (2502, "ธรรมนูญการปกครองราชอาณาจักร พุทธศักราช ๒๕๐๒"),
    "con2511": (2511, "รัฐธรรมนูญแห่งราชอาณาจักรไทย พุทธศักราช ๒๕๑๑"),
    "con2515temp": (2515, "ธรรมนูญการปกครองราชอาณาจักร พุทธศักราช ๒๕๑๕"),
    "con2517": (2517, "รัฐธรรมนูญแห่งราชอาณาจักรไทย พุทธศักราช ๒๕๑๗"),
    "con2519": (2519, "รัฐธรรมนูญแห่งราชอาณาจักรไทย พุทธศักราช ๒๕๑๙"),
    "con2520temp": (2520, "ธรรมนูญการปกครองราชอาณาจักร พุทธศักราช ๒๕๒๐"),
    "con2521": (2521, "รัฐธรรมนูญแห่งราชอาณาจักรไทย พุทธศักราช ๒๕๒๑"),
    "con2534temp": (2534, "ธรรมนูญการปกครองราชอาณาจักร พุทธศักราช ๒๕๓๔"),
    "con2534": (2534, "รัฐธรรมนูญแห่งราชอาณาจักรไทย พุทธศักราช ๒๕๓๔"),
    "con2540": (2540, "รัฐธรรมนูญแห่งราชอาณาจักรไทย พุทธศักราช ๒๕๔๐"),
    "con2549temp": (2549, "รัฐธรรมนูญแห่งราชอาณาจักรไทย (ฉบับชั่วคราว) พุทธศักราช ๒๕๔๙"),
    "con2550": (2550, "รัฐธรรมนูญแห่งราชอาณาจักรไทย พุทธศักราช ๒๕๕๐"),
    "con2557temp": (2557, "รัฐธรรมนูญแห่งราชอาณาจักรไทย (ฉบับชั่วคราว) พุทธศักราช ๒๕๕๗"),
    "con2560": (2560, "รัฐธรรมนูญแห่งราชอาณาจักรไทย พุทธศักราช ๒๕๖๐"),
}
IN_FORCE_CONSTITUTION = "con2560"
# WeVis ids as written in a few rows of its data.
_WEVIS_ALIASES = {"ชั่วคราว 2549": "con2549temp"}
# Acts in ../shared/data/text/laws/acts that a later Act repealed (the rest were in force when scraped).
REPEALED_ACTS = {
    "322497": "พระราชบัญญัติประกอบรัฐธรรมนูญว่าด้วยคณะกรรมการสิทธิมนุษยชนแห่งชาติ พ.ศ. 2560",
    "742584": "พระราชบัญญัติประกอบรัฐธรรมนูญว่าด้วยพรรคการเมือง พ.ศ. 2560",
    "646678": "พระราชบัญญัติตำรวจแห่งชาติ พ.ศ. 2565",
}
FULL_2560 = "constitution/constitution_th_2560_full_krisdika_774606.txt"
WEVIS = "constitution/wevis_constitution_sections.jsonl"
ACTS = "laws/acts"
KRISDIKA = "krisdika.go.th via PyThaiNLP/thai-law"
PUBLIC_DOMAIN = "public domain (Thai Copyright Act B.E. 2537 s.7)"


def constitution_slug(wevis_id: str) -> str:
    """``con2475temp`` → ``constitution-2475-temp``; ``con2560`` → ``constitution-2560``."""
    m = re.fullmatch(r"con(\d{4})(temp)?", wevis_id)
    if m is None:
        raise ValueError(f"not a WeVis constitution id: {wevis_id!r}")
    return f"constitution-{m[1]}" + ("-temp" if m[2] else "")


def read_documents(data: Any) -> list[Document]:
    """Every document the data folder (``../shared/data/text``) holds, parsed; missing files are skipped.

    The 2017 Constitution comes from its full text when present, else from WeVis's selection of its sections.
    """
    import csv
    import json
    from pathlib import Path

    root = Path(data)
    docs: list[Document] = []
    full = root / FULL_2560
    if full.is_file():
        year, title = CONSTITUTIONS[IN_FORCE_CONSTITUTION]
        sections = tuple(parse_sections(full.read_text(encoding="utf-8")))
        docs.append(
            Document(constitution_slug(IN_FORCE_CONSTITUTION), title, "constitution", year, True, True,
                     f"{KRISDIKA}, Royal Gazette vol. 134 part 40 ก (6 April 2017)", PUBLIC_DOMAIN, sections)
        )  # fmt: skip
    wevis = root / WEVIS
    if wevis.is_file():
        grouped: dict[str, list[dict[str, str]]] = {}
        for line in wevis.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            cid = _WEVIS_ALIASES.get(row.get("constitution_id", ""), row.get("constitution_id", ""))
            if cid in CONSTITUTIONS and row.get("text", "").strip():
                grouped.setdefault(cid, []).append(row)
        for cid, (year, title) in CONSTITUTIONS.items():
            if cid not in grouped or (cid == IN_FORCE_CONSTITUTION and full.is_file()):
                continue
            docs.append(
                Document(constitution_slug(cid), title, "constitution", year, cid == IN_FORCE_CONSTITUTION, False,
                         "WeVis, wevisdemo/reconstitution (selected sections)", "MIT (WeVis, 2021)",
                         tuple(_wevis_sections(grouped[cid])))
            )  # fmt: skip
    acts = root / ACTS
    index = acts / "INDEX.tsv"
    if index.is_file():
        with index.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                path = acts / row["file"]
                if not path.is_file():
                    continue
                docs.append(_act(row["sysid"], row["title"], path.read_text(encoding="utf-8")))
    return docs


def _act(sysid: str, raw_title: str, text: str) -> Document:
    consolidated = "ฉบับ Update ล่าสุด" in raw_title
    title = clean_line(re.sub(r"\(ฉบับ Update ล่าสุด\)", "", raw_title))
    year = re.search(r"พ\.ศ\.\s*([0-9๐-๙]{4})", title)
    source = f"{KRISDIKA}, sysid {sysid}" + (" (consolidated)" if consolidated else "")
    return Document(
        f"act-{sysid}", title, "act", int(to_arabic(year[1])) if year else 0, sysid not in REPEALED_ACTS, True,
        source, PUBLIC_DOMAIN, tuple(parse_sections(text)),
    )  # fmt: skip


def _wevis_sections(rows: list[dict[str, str]]) -> list[Section]:
    def order(row: dict[str, str]) -> tuple[int, int]:
        number = to_arabic(row["section"])
        return (0, 0) if not number.isdigit() else (1, int(number))

    sections: list[Section] = []
    seen: set[str] = set()
    for row in sorted(rows, key=order):
        number = to_arabic(row["section"].strip())
        key = "preamble" if not number.isdigit() else number
        if key in seen:
            continue
        seen.add(key)
        chapter = clean_line(row.get("chapter", "")).strip("-").strip() or None
        part = clean_line(row.get("part", "").split("\n")[0]).strip("-").strip() or None
        transitory = chapter == _TRANSITORY or clean_line(row.get("topic", "")) == _TRANSITORY
        sections.append(Section(key, section_label(key), paragraphs_text(row["text"]), chapter, part, transitory))
    return sections


def _subject_terms_of(doc: Document) -> list[str]:
    return [subject_terms(s.text) for s in doc.sections]


def default_data_dir() -> Any:
    """``../shared/data/text`` beside the repository (relative to its root, wherever it is checked out)."""
    from pathlib import Path

    return Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "text"


async def load(store: Any, data: Any, *, log: Any = None) -> dict[str, int]:
    """Put every document of `data` into `store`, replacing those whose content changed; idempotent.

    Returns counts: ``loaded`` (written), ``unchanged`` (same digest already stored), ``sections`` (written).
    """
    import asyncio

    docs = await asyncio.to_thread(read_documents, data)
    counts = {"loaded": 0, "unchanged": 0, "sections": 0}
    stored = await store.document_digests()
    for doc in docs:
        digest = doc.digest()
        if stored.get(doc.slug) == digest:
            counts["unchanged"] += 1
            continue
        terms = await asyncio.to_thread(_subject_terms_of, doc)
        await store.put_document(doc, digest, terms)
        counts["loaded"] += 1
        counts["sections"] += len(doc.sections)
        if log is not None:
            log.info("documents: loaded %s (%d sections)", doc.slug, len(doc.sections))
    return counts


async def load_if_empty(store: Any, data: str, log: Any) -> None:
    """The server's start-up load: when the collection is empty and `data` names a folder, `load` it. Never
    raises: a missing folder or a failed load is logged and the server goes on without documents."""
    from pathlib import Path

    if not data:
        return
    try:
        if await store.document_digests():
            return
        if not Path(data).is_dir():
            log.warning("documents: no data folder at %s; the documents collection stays empty", data)
            return
        counts = await load(store, data)
        log.info("documents: %d loaded (%d sections)", counts["loaded"], counts["sections"])
    except Exception:
        log.exception("documents: loading from %s failed; the server goes on without them", data)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m archive.documents load [--data DIR]``: load the documents into the archive at DATABASE_URL."""
    import argparse
    import asyncio
    import logging
    import os

    parser = argparse.ArgumentParser(prog="python -m archive.documents", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("load", help="load (or refresh) the constitutions and Acts; idempotent")
    cmd.add_argument("--data", default=None, help="the data folder (default: ../shared/data/text of the repository)")
    cmd.add_argument("--database-url", default=os.environ.get("DATABASE_URL", "sqlite:///var/sapha.db"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = args.data or default_data_dir()

    from pathlib import Path

    if not Path(data).is_dir():
        print(f"no data folder at {data}", flush=True)
        return 1

    async def run() -> dict[str, int]:
        from archive.store_postgres import PostgresStore
        from archive.store_sqlite import SqliteStore

        url: str = args.database_url
        if url.startswith("sqlite:///"):
            store: Any = SqliteStore(url.removeprefix("sqlite:///"))
        elif url.startswith(("postgres://", "postgresql://")):
            store = PostgresStore(url)
        else:
            raise SystemExit("DATABASE_URL must start with sqlite:/// or postgresql://")
        async with store:
            return await load(store, data, log=logging.getLogger("sapha"))

    counts = asyncio.run(run())
    print(f"{counts['loaded']} documents loaded ({counts['sections']} sections), {counts['unchanged']} unchanged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
