"""Search over Thai transcripts, sans I/O: folding, query parsing, index terms, matching, snippets, cursors.

Thai is written without spaces, so neither of the usual indexes works on its own (measured on Thai text):
a word index (PyThaiNLP newmm) keeps compounds whole and misses `งบประมาณ` inside `ปีงบประมาณ`, and an FTS5
trigram index finds substrings but nothing shorter than three characters, while short words (`ปี`, `สว`) are
common. This module needs no word segmentation at all:

* Text and queries are *folded* to one search form (`fold`): NFC, zero-width characters dropped, Thai digits
  to Arabic (`๒๕๖๘` = `2568`), lower case, `ํา` to `ำ`; punctuation and spaces next to Thai are dropped (Thai
  spacing is inconsistent and `ส.ว.` is `สว`), other separator runs become one space.
* A segment's index terms (`index_terms`) are every trigram of its folded text plus every one- and two-character
  piece that starts and ends on a *cluster boundary* (never inside a Thai character cluster such as `วั`, never
  between two Latin letters or two digits). A query term of three or more characters selects candidates by its
  trigrams; a shorter one by itself. So `งบประมาณ` is found inside `ปีงบประมาณ`, `ปี` is found, and `สว` is not
  found inside `สวัสดี` (its `ว` belongs to the cluster `วั`).
* Candidates are verified here (`match`): every term must occur in the folded text starting and ending on a
  cluster boundary, no excluded term may. The index only narrows; this module decides.

Relevance is the number of occurrences of the query's terms (each term counted at most three times); ties go to
the more recent segment. A store pages through results with `Cursor`s: positions in the ranking, written as a
few integers (`CURSOR_REGEX`) so that an API can document exactly which cursors it accepts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

MAX_QUERY_CHARS = 200
# MAX_QUERY_CHARS bounds the number of terms too (at most 100: a character and a space each); what the terms cost
# is bounded by MAX_LOOKUP below and by the store's candidate window.
# Most index terms one query sends to the index lookup: a subset of the terms still narrows correctly.
MAX_LOOKUP = 32
# Longest run of trigrams one query term contributes to the index lookup: the lookup only narrows candidates
# (match() verifies), and a few spread-out trigrams narrow as well as forty.
MAX_GRAMS_PER_TERM = 12
MAX_COUNTED_HITS = 3

_ZERO_WIDTH = {cp: None for cp in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF)}
_ZERO_WIDTH_RE = re.compile("[" + "".join(chr(cp) for cp in _ZERO_WIDTH) + "]")
_DIGITS = {0x0E50 + i: ord("0") + i for i in range(10)}
_TRANSLATE = {**_ZERO_WIDTH, **_DIGITS}
# Thai marks are category Mn, which str.isalnum() and \w reject, but they are part of the word.
_MARKS = "\u0300-\u036f\u0e31\u0e34-\u0e3a\u0e47-\u0e4e"
_SEPARATORS = re.compile(rf"(?:[^\w{_MARKS}]|_)+")
# Characters that continue the cluster before them (above/below vowels, tone marks, ะ า ำ ๅ) and leading vowels
# (เ แ โ ใ ไ) that belong to the cluster after them.
_DEPENDENT = frozenset("\u0e30\u0e31\u0e32\u0e33\u0e34\u0e35\u0e36\u0e37\u0e38\u0e39\u0e3a\u0e45") | frozenset(
    chr(c) for c in range(0x0E47, 0x0E4F)
)
_LEADING = frozenset("\u0e40\u0e41\u0e42\u0e43\u0e44")


class QueryError(ValueError):
    """A query, filter or cursor the search cannot run; `field` names the offending parameter (`q`, `cursor`, …)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# -- folding ----------------------------------------------------------------------------------------------------


def _is_thai(ch: str) -> bool:
    return "\u0e00" <= ch <= "\u0e7f"


def _separator(text: str, start: int, end: int) -> str:
    # Drop separators at the ends and next to Thai; keep one space between other words ("covid 19").
    if start == 0 or end == len(text) or _is_thai(text[start - 1]) or _is_thai(text[end]):
        return ""
    return " "


def _prefold(text: str) -> str:
    text = unicodedata.normalize("NFC", text).translate(_TRANSLATE).lower()
    # NIKHAHIT + SARA AA looks exactly like SARA AM and keyboards produce both.
    return text.replace("\u0e4d\u0e32", "\u0e33")


def fold(text: str) -> str:
    """The search form of `text`; index and query both go through it, so equal forms match."""
    text = _prefold(text)
    return _SEPARATORS.sub(lambda m: _separator(text, m.start(), m.end()), text)


def fold_with_offsets(text: str) -> tuple[str, list[int], list[int]]:
    """`fold(text)` with, for each folded character i, the slice `text[starts[i]:ends[i]]` it came from.

    For snippets: a hit found in the folded form is highlighted in the text as written. Slower than fold();
    use it only on the handful of texts a page shows.
    """
    nfc = unicodedata.normalize("NFC", text)
    pre = _prefold(nfc)
    if len(pre) == len(nfc) and not _ZERO_WIDTH_RE.search(nfc) and "\u0e4d\u0e32" not in nfc:
        # The common case: every character maps to exactly one (digits, case), so only separators move offsets.
        # The general loop below costs a Python step per character, most of a results page's time.
        starts = list(range(len(nfc)))
        ends = list(range(1, len(nfc) + 1))
    else:
        pre, starts, ends = _prefold_with_offsets(nfc)
    folded: list[str] = []
    f_starts: list[int] = []
    f_ends: list[int] = []
    pos = 0
    for m in _SEPARATORS.finditer(pre):
        folded.append(pre[pos : m.start()])
        f_starts.extend(starts[pos : m.start()])
        f_ends.extend(ends[pos : m.start()])
        if _separator(pre, m.start(), m.end()):
            folded.append(" ")
            f_starts.append(starts[m.start()])
            f_ends.append(ends[m.end() - 1])
        pos = m.end()
    folded.append(pre[pos:])
    f_starts.extend(starts[pos:])
    f_ends.extend(ends[pos:])
    # Offsets refer to the NFC text; NFC of stored text (already normalised by the store) is the text itself.
    return "".join(folded), f_starts, f_ends


def _prefold_with_offsets(nfc: str) -> tuple[str, list[int], list[int]]:
    """`_prefold(nfc)` with, for each character, the slice of `nfc` it came from (any character may map to 0–n)."""
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i = 0
    while i < len(nfc):
        if nfc.startswith("\u0e4d\u0e32", i):
            chars.append("\u0e33")
            starts.append(i)
            ends.append(i + 2)
            i += 2
            continue
        for out in nfc[i].translate(_TRANSLATE).lower():
            chars.append(out)
            starts.append(i)
            ends.append(i + 1)
        i += 1
    return "".join(chars), starts, ends


_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# A *unit*: the text between two consecutive boundaries. A character continues the unit before it when it is a
# dependent mark, follows a leading vowel, or is a Latin letter after a Latin letter or a digit after a digit.
# One regex pass splits a run into units (index_terms' hot path: every segment is indexed through it).
_UNIT = re.compile(
    "(?s:.(?:[" + "".join(sorted(_DEPENDENT)) + "]|(?<=[" + "".join(sorted(_LEADING)) + "]).|(?<=[a-zA-Z])[a-zA-Z]"
    r"|(?<=\d)\d)*)"
)


def is_boundary(folded: str, pos: int) -> bool:
    """Whether a match may start or end at `pos`: not inside a Thai cluster, not between two Latin letters or digits."""
    if pos <= 0 or pos >= len(folded):
        return True
    # Plain set tests rather than a regex: score() asks this of every candidate occurrence.
    c, p = folded[pos], folded[pos - 1]
    return not (
        c in _DEPENDENT
        or p in _LEADING
        or (c in _ASCII_LETTERS and p in _ASCII_LETTERS)
        or (c.isdecimal() and p.isdecimal())
    )


# -- index terms --------------------------------------------------------------------------------------------------


def index_terms(folded: str) -> set[str]:
    """The terms a segment with this folded text is indexed under: trigrams, and boundary-aligned 1–2 char pieces."""
    terms: set[str] = set()
    for run in folded.split(" "):
        terms.update([run[i : i + 3] for i in range(len(run) - 2)])
        # A boundary-aligned piece of one or two characters is one unit of that length or two one-character units.
        units = _UNIT.findall(run)
        terms.update([u for u in units if len(u) <= 2])
        terms.update([a + b for a, b in zip(units, units[1:]) if len(a) == len(b) == 1])
    terms.discard("")
    return terms


def lookup_terms(folded_term: str) -> list[str]:
    """Index terms a segment must have to contain `folded_term` (a subset, spread along the term, in order)."""
    out: list[str] = []
    for run in folded_term.split(" "):
        if len(run) < 3:
            if run:
                out.append(run)
            continue
        grams = [run[i : i + 3] for i in range(len(run) - 2)]
        if len(grams) > MAX_GRAMS_PER_TERM:
            step = (len(grams) - 1) / (MAX_GRAMS_PER_TERM - 1)
            grams = [grams[round(k * step)] for k in range(MAX_GRAMS_PER_TERM)]
        out.extend(grams)
    return list(dict.fromkeys(out))


# -- queries ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Term:
    text: str  # as the user wrote it
    folded: str
    phrase: bool


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: every `include` term must occur, no `exclude` term may."""

    raw: str
    include: tuple[Term, ...]
    exclude: tuple[Term, ...] = field(default=())

    def lookup(self) -> list[str]:
        """Index terms every match has (the union over the included terms), for the index to narrow with."""
        return list(dict.fromkeys(g for t in self.include for g in lookup_terms(t.folded)))[:MAX_LOOKUP]


_TOKEN = re.compile(r'(-?)"([^"]*)"|(\S+)')

# Exactly the queries an API accepts, as one regex (Python and ECMA-262 alike) for its documented schema: words
# and "phrases" separated by spaces, each holding at least one character that folding keeps (a Thai letter, vowel
# or digit, a Latin letter or a digit), `-` excluding, at least one term not excluded; MAX_QUERY_CHARS is the
# schema's maxLength. Every string it matches parses (tests/test_search_core.py), and everything parse_query
# refuses it refuses too, so no query the document calls valid is answered with a 400. It is stricter than the
# parser in one way: a term of punctuation alone ("a , b"), which the parser skips, is refused.
_SPACE = "\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"  # str.isspace
_KEPT = "0-9A-Za-z\\u0e01-\\u0e2e\\u0e30-\\u0e3a\\u0e40-\\u0e4e\\u0e50-\\u0e59"
_WORD = f'[^"{_SPACE}]'
_EXCLUDED = f'-(?:{_WORD}*?[{_KEPT}]{_WORD}*|"[^"]*?[{_KEPT}][^"]*")'
_INCLUDED = f'(?:(?:[{_KEPT}]|[^"\\-{_SPACE}]{_WORD}*?[{_KEPT}]){_WORD}*|"[^"]*?[{_KEPT}][^"]*")'
QUERY_REGEX = (
    f"^[{_SPACE}]*(?:{_EXCLUDED}[{_SPACE}]+)*{_INCLUDED}(?:[{_SPACE}]+(?:{_INCLUDED}|{_EXCLUDED}))*[{_SPACE}]*$"
)


def parse_query(raw: str) -> Query:
    """Parse `words "a phrase" -excluded -"excluded phrase"`; raises QueryError(field="q") when it cannot run."""
    if not isinstance(raw, str) or not raw.strip():
        raise QueryError("q", "the query is empty")
    if len(raw) > MAX_QUERY_CHARS:
        raise QueryError("q", f"the query is longer than {MAX_QUERY_CHARS} characters")
    if raw.count('"') % 2:
        raise QueryError("q", "the query has an unbalanced double quote")
    include: list[Term] = []
    exclude: list[Term] = []
    for m in _TOKEN.finditer(raw):
        negated, phrase, word = m.group(1), m.group(2), m.group(3)
        is_phrase = phrase is not None
        text = phrase if is_phrase else word
        if not is_phrase and text.startswith("-"):
            negated, text = "-", text[1:]
        folded = fold(text)
        if not folded.strip():
            if is_phrase or negated:
                raise QueryError("q", f"nothing to search for in {m.group(0)!r}")
            continue  # punctuation on its own between words, e.g. "a , b"
        (exclude if negated else include).append(Term(text, folded, is_phrase))
    if not include:
        if exclude:
            raise QueryError("q", "the query only excludes; add a word to search for")
        raise QueryError("q", "the query has nothing to search for")
    return Query(raw, tuple(include), tuple(exclude))


# -- matching -----------------------------------------------------------------------------------------------------


def occurrences(folded: str, term: str) -> Iterable[int]:
    """Start positions of `term` in `folded` that begin and end on a cluster boundary, non-overlapping."""
    start = folded.find(term)
    while start >= 0:
        end = start + len(term)
        if is_boundary(folded, start) and is_boundary(folded, end):
            yield start
            start = folded.find(term, end)
        else:
            start = folded.find(term, start + 1)


def score(query: Query, folded: str) -> int | None:
    """Relevance of a segment's folded text to `query`, or None when it does not match."""
    for term in query.exclude:
        if next(iter(occurrences(folded, term.folded)), None) is not None:
            return None
    total = 0
    for term in query.include:
        hits = 0
        for _ in occurrences(folded, term.folded):
            hits += 1
            if hits == MAX_COUNTED_HITS:
                break
        if not hits:
            return None
        total += hits
    return total


# -- snippets -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Span:
    """A piece of a snippet; `hit` pieces are what the query matched. Plain text: render it escaped."""

    text: str
    hit: bool

    def to_dict(self) -> dict[str, object]:
        return {"text": self.text, "hit": self.hit}


def snippet(query: Query, text: str, context: int = 60) -> list[Span]:
    """`text` around its first hit, every hit in that window marked; ellipses mark cut ends.

    `text` is the segment as stored (normalised); the spans concatenate to a substring of it (plus "…").
    """
    text = unicodedata.normalize("NFC", text)
    folded, starts, ends = fold_with_offsets(text)
    ranges: list[tuple[int, int]] = []
    for term in query.include:
        for pos in occurrences(folded, term.folded):
            ranges.append((starts[pos], ends[pos + len(term.folded) - 1]))
    if not ranges:
        return [Span(text[: 2 * context], False)] if text else []
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for a, b in ranges:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    lo = max(0, merged[0][0] - context)
    hi = min(len(text), merged[0][1] + context)
    # Cut at a space near the window's edge when there is one, and never inside a Thai cluster.
    space = text.find(" ", lo, merged[0][0])
    if lo > 0 and space != -1 and space - lo <= context // 2:
        lo = space + 1
    while 0 < lo and (text[lo] in _DEPENDENT or text[lo - 1] in _LEADING):
        lo -= 1
    space = text.rfind(" ", merged[0][1], hi)
    if hi < len(text) and space != -1 and hi - space <= context // 2:
        hi = space
    while hi < len(text) and (text[hi] in _DEPENDENT or text[hi - 1] in _LEADING):
        hi += 1
    spans: list[Span] = []
    if lo > 0:
        spans.append(Span("…", False))
    pos = lo
    for a, b in merged:
        if a >= hi:
            break
        if a > pos:
            spans.append(Span(text[pos:a], False))
        spans.append(Span(text[a : min(b, hi)], True))
        pos = min(b, hi)
    if pos < hi:
        spans.append(Span(text[pos:hi], False))
    if hi < len(text):
        spans.append(Span("…", False))
    return spans


# -- ranking and cursors --------------------------------------------------------------------------------------------


def rank_key(score: int, at: int, doc: int) -> tuple[int, int, int]:
    """Sort key: higher relevance first, then more recent (`at`, ms), then the higher document id."""
    return (-score, -at, -doc)


# `top`, then optionally the `after` key (score, at, doc); at most 18 digits each, so always a 64-bit integer.
CURSOR_REGEX = r"^[0-9]{1,18}(\.[0-9]{1,18}\.-?[0-9]{1,18}\.[0-9]{1,18})?$"
_CURSOR = re.compile(CURSOR_REGEX.removeprefix("^").removesuffix("$"))


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a results page ended.

    `top`: the highest document id the search considers, pinned on the first page so that segments indexed
    while a reader pages do not shift the pages. `after`: the (score, at, doc) of the last hit shown, or None to
    start the window at `top`. The store defines windows; this type only carries and checks the values.

    A cursor is a position in a ranking, not a capability: given with another query (or other filters) it pages
    that search from the same position, which is harmless, so every cursor of the documented form is valid.
    """

    top: int
    after: tuple[int, int, int] | None

    def encode(self) -> str:
        return ".".join(str(v) for v in (self.top, *(self.after or ())))

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Parse a cursor written by `encode`; QueryError(field="cursor") for anything else."""
        if not isinstance(token, str) or not _CURSOR.fullmatch(token):
            raise QueryError("cursor", "the cursor is not valid; pass next_cursor from the previous page unchanged")
        top, *after = (int(v) for v in token.split("."))
        return cls(top, (after[0], after[1], after[2]) if after else None)


def parse_filters(params: Mapping[str, str], allowed: Iterable[str]) -> dict[str, str]:
    """The filter parameters in `params` (besides q, cursor, limit); QueryError naming an unknown one."""
    allowed = set(allowed)
    out: dict[str, str] = {}
    for key, value in params.items():
        if key in ("q", "cursor", "limit"):
            continue
        if key not in allowed:
            raise QueryError(key, f"unknown filter {key!r}; known: {', '.join(sorted(allowed))}")
        out[key] = value
    return out


# -- filters and results ----------------------------------------------------------------------------------------

FILTER_FIELDS = ("sitting", "from", "to", "chamber", "speaker", "bill", "agenda_item")
_CHAMBERS = ("senate", "joint", "committee")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """What a search is limited to; None is no limit. A `date_from` after `date_to` is an empty range, not an error."""

    sitting: str | None = None
    date_from: str | None = None  # YYYY-MM-DD, inclusive, the sitting's Bangkok date
    date_to: str | None = None
    chamber: str | None = None
    speaker: str | None = None
    bill: str | None = None
    agenda_item: int | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> SearchFilters:
        """Filters from query-string parameters (`sitting`, `from`, `to`, …); QueryError names a bad or unknown one.

        `q`, `cursor` and `limit` are ignored here (they are the search's own parameters).
        """
        values = parse_filters(params, FILTER_FIELDS)
        for key, value in values.items():
            if not value.strip() or len(value) > 200:
                raise QueryError(key, f"{key} must be 1 to 200 characters")
        for key in ("from", "to"):
            if key in values:
                _parse_day(key, values[key])
        if "chamber" in values and values["chamber"] not in _CHAMBERS:
            raise QueryError("chamber", f"chamber must be one of {', '.join(_CHAMBERS)}")
        agenda_item = None
        if "agenda_item" in values:
            item = values["agenda_item"]
            if not item.isascii() or not item.isdigit() or len(item) > 18:
                raise QueryError("agenda_item", "agenda_item must be a whole number")
            agenda_item = int(values["agenda_item"])
        return cls(
            sitting=values.get("sitting"),
            date_from=values.get("from"),
            date_to=values.get("to"),
            chamber=values.get("chamber"),
            speaker=values.get("speaker"),
            bill=values.get("bill"),
            agenda_item=agenda_item,
        )

    def conditions(self, mark: str) -> tuple[list[str], list[Any]]:
        """The WHERE conditions over ``search_docs d`` for these filters, with ``mark`` as the database's
        placeholder (``?`` or ``%s``), and their values."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value, op in (
            ("d.sitting_id", self.sitting, "="),
            ("d.day", self.date_from, ">="),
            ("d.day", self.date_to, "<="),
            ("d.chamber", self.chamber, "="),
            ("d.speaker", self.speaker, "="),
            ("d.bill_id", self.bill, "="),
            ("d.agenda_item_id", self.agenda_item, "="),
        ):
            if value is not None:
                clauses.append(f"{column} {op} {mark}")
                params.append(value)
        return clauses, params


def _parse_day(key: str, value: str) -> date:
    try:
        if not _DAY.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise QueryError(key, f"{key} must be a date as YYYY-MM-DD") from None


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One matching segment: where it is (sitting, media time), its context, and the snippet to show."""

    segment_id: int
    sitting_id: str
    start_ms: int
    day: str
    speaker: str | None
    agenda_item_id: int | None
    bill_id: str | None
    score: int
    snippet: list[Span]

    def to_dict(self) -> dict[str, Any]:
        return {
            "segment_id": self.segment_id,
            "sitting_id": self.sitting_id,
            "start_ms": self.start_ms,
            "day": self.day,
            "speaker": self.speaker,
            "agenda_item_id": self.agenda_item_id,
            "bill_id": self.bill_id,
            "score": self.score,
            "snippet": [s.to_dict() for s in self.snippet],
        }


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of hits, best first; `next_cursor` continues it (None on the last page)."""

    hits: list[SearchHit]
    next_cursor: str | None
    # True when this page's ranking saw every candidate; False when older candidates lie beyond its window,
    # reached through next_cursor once this window's pages are read (see the module docstring).
    exhaustive: bool


def rank_window(
    query: Query,
    rows: Iterable[tuple[int, int, str]],
    *,
    top: int,
    position: Cursor | None,
    limit: int,
    exhaustive: bool,
    lowest: int | None,
) -> tuple[list[tuple[tuple[int, int, int], int]], str | None]:
    """One window's candidate ``rows`` (doc, at, folded) verified and ranked: the page after ``position`` as
    (rank key, score) pairs, and the cursor of what follows — within this window while it has more, else the next
    window below ``lowest`` (the smallest doc read) unless the window held every candidate. Both backends page so."""
    ranked: list[tuple[tuple[int, int, int], int]] = []
    for doc, at, folded in rows:
        s = score(query, folded)
        if s is not None:
            ranked.append((rank_key(s, at, doc), s))
    ranked.sort()
    if position is not None and position.after is not None:
        after = rank_key(*position.after)
        ranked = [r for r in ranked if r[0] > after]
    page = ranked[:limit]
    if len(ranked) > limit:
        key = page[-1][0]
        return page, Cursor(top, (-key[0], -key[1], -key[2])).encode()
    if not exhaustive and lowest is not None and lowest > 1:
        return page, Cursor(lowest - 1, None).encode()
    return page, None
