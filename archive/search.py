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
the more recent segment. A store pages through results with `Cursor`s, opaque base64 strings bound to the query
that produced them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MAX_QUERY_CHARS = 200
MAX_TERMS = 10
# Longest run of trigrams one query term contributes to the index lookup: the lookup only narrows candidates
# (match() verifies), and a few spread-out trigrams narrow as well as forty.
MAX_GRAMS_PER_TERM = 12
MAX_COUNTED_HITS = 3

_ZERO_WIDTH = {cp: None for cp in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF)}
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
    pre = "".join(chars)
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


_NOT_BOUNDARY = re.compile(
    "(?=[" + "".join(sorted(_DEPENDENT)) + "])|(?<=[" + "".join(sorted(_LEADING)) + "])"
    r"|(?<=[a-zA-Z])(?=[a-zA-Z])|(?<=\d)(?=\d)"
)


def is_boundary(folded: str, pos: int) -> bool:
    """Whether a match may start or end at `pos`: not inside a Thai cluster, not between two Latin letters or digits."""
    if pos <= 0 or pos >= len(folded):
        return True
    return _NOT_BOUNDARY.match(folded, pos) is None


def _boundaries(run: str) -> list[bool]:
    ok = [True] * (len(run) + 1)
    for m in _NOT_BOUNDARY.finditer(run, 1, len(run)):
        ok[m.start()] = False
    ok[0] = ok[-1] = True
    return ok


# -- index terms --------------------------------------------------------------------------------------------------


def index_terms(folded: str) -> set[str]:
    """The terms a segment with this folded text is indexed under: trigrams, and boundary-aligned 1–2 char pieces."""
    terms: set[str] = set()
    for run in folded.split(" "):
        n = len(run)
        terms |= {run[i : i + 3] for i in range(n - 2)}
        ok = _boundaries(run)
        terms.update(run[i : i + 1] for i in range(n) if ok[i] and ok[i + 1])
        terms.update(run[i : i + 2] for i in range(n - 1) if ok[i] and ok[i + 2])
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
        return list(dict.fromkeys(g for t in self.include for g in lookup_terms(t.folded)))

    def fingerprint(self) -> str:
        """A short stable hash of what the query means, so a cursor cannot be replayed against another query."""
        key = json.dumps([[t.folded for t in self.include], sorted(t.folded for t in self.exclude)])
        return hashlib.sha256(key.encode()).hexdigest()[:12]


_TOKEN = re.compile(r'(-?)"([^"]*)"|(\S+)')


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
    if len(include) + len(exclude) > MAX_TERMS:
        raise QueryError("q", f"the query has more than {MAX_TERMS} terms")
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


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a results page ended.

    `top`: the highest document id the search considers, pinned on the first page so that segments indexed
    while a reader pages do not shift the pages. `after`: the (score, at, doc) of the last hit shown, or None to
    start the window at `top`. The store defines windows; this type only carries and checks the values.
    """

    fingerprint: str
    top: int
    after: tuple[int, int, int] | None

    def encode(self) -> str:
        payload = [1, self.fingerprint, self.top, list(self.after) if self.after else None]
        data = json.dumps(payload, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, query: Query) -> Cursor:
        """Parse a cursor from a previous page of the same query; QueryError(field="cursor") for anything else."""
        if not isinstance(token, str) or not token or len(token) > 200:
            raise QueryError("cursor", "the cursor is not valid")
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise QueryError("cursor", "the cursor is not valid") from None
        if not (isinstance(data, list) and len(data) == 4 and data[0] == 1):
            raise QueryError("cursor", "the cursor is not valid")
        _, fingerprint, top, after = data
        if not isinstance(fingerprint, str) or not _is_int(top) or top < 0:
            raise QueryError("cursor", "the cursor is not valid")
        if after is not None and not (isinstance(after, list) and len(after) == 3 and all(map(_is_int, after))):
            raise QueryError("cursor", "the cursor is not valid")
        if fingerprint != query.fingerprint():
            raise QueryError("cursor", "the cursor belongs to a different query")
        return cls(fingerprint, top, tuple(after) if after is not None else None)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
