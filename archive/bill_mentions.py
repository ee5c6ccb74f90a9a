"""Bills named in caption text: a sans-I/O matcher from the archive's bills to the mentions in one final.

A bill is named in a sitting two ways: by its title, "ร่างพระราชบัญญัติงบประมาณรายจ่ายประจำปีงบประมาณ พ.ศ. ๒๕๖๙"
(the act type, the subject, the Buddhist-era year, or "พ.ศ. ...." while the year is open), or by a short name,
"ร่าง พ.ร.บ. งบประมาณรายจ่ายประจำปีงบประมาณ", "พ.ร.บ.งบประมาณรายจ่ายประจำปีงบประมาณ", or the subject alone. The
matcher reduces each known title to its subject (the *core*) and finds cores in the text, compared with spaces and
zero-width characters removed and Thai digits read as Arabic ones, as captions spell them either way.

Rules, so that a link is right rather than merely likely:

* A core of fewer than ``min_standalone`` characters (a one-word subject) counts only after an act type
  ("ร่างพระราชบัญญัติ", "พ.ร.บ.", "พรบ", ...); a longer one counts on its own.
* Bills that share a core (each year's budget bill) are told apart by the year the text gives; without one, a core
  that several bills share links none of them. A title whose year is still open ("พ.ศ. ....") matches any year.
* Longer cores win over the shorter ones they contain, and mentions never overlap.
* A full title ("ร่าง<act type> … พ.ศ. <year>") of no known bill is still reported, with ``bill_id`` None: it is a
  mention, only not one the archive can link yet.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Act types as titles spell them, and their abbreviations with or without the dots (captions drop them).
_ACT = (
    r"(?:พระราชบัญญัติประกอบรัฐธรรมนูญ|พ\.?ร\.?ป\.?|พระราชบัญญัติ|พ\.?ร\.?บ\.?|พระราชกำหนด|พ\.?ร\.?ก\.?"
    r"|รัฐธรรมนูญแห่งราชอาณาจักรไทยแก้ไขเพิ่มเติม)"
)
_YEAR = r"(?:พ\.?ศ\.?|พุทธศักราช)(?P<year>\d{4}|[.…]{2,4})"
_EDITION = r"(?:\(ฉบับที่[^)]{0,12}\))"
_TITLE_PREFIX = re.compile(rf"^(?:ร่าง)?{_ACT}")
_TITLE_SUFFIX = re.compile(rf"{_EDITION}?(?:{_YEAR})?$")
_TRIGGER_BEFORE = re.compile(rf"(?:ร่าง)?{_ACT}$")
_AFTER_CORE = re.compile(rf"{_EDITION}?(?:{_YEAR})?")
_FULL_TITLE = re.compile(rf"ร่าง{_ACT}(?P<subject>[^.]{{2,160}}?){_EDITION}?{_YEAR}")
_DROP = re.compile("[\\s\u200b-\u200d\u2060\ufeff]")
_THAI_DIGITS = str.maketrans("๐๑๒๓๔๕๖๗๘๙", "0123456789")

DEFAULT_MIN_STANDALONE = 10


def fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """``text`` without spaces and zero-width characters, Thai digits as Arabic; and for each character kept, its
    index in ``text`` (plus one entry past the end, so a span's end maps too)."""
    kept: list[str] = []
    offsets: list[int] = []
    for i, ch in enumerate(text):
        if _DROP.match(ch):
            continue
        kept.append(ch.translate(_THAI_DIGITS))
        offsets.append(i)
    offsets.append(len(text))
    return "".join(kept), offsets


def fold(text: str) -> str:
    return fold_with_offsets(text)[0]


def _year(raw: str | None) -> str | None:
    """A four-digit year, or None for an open one ("....") or none at all."""
    return raw if raw is not None and raw.isdigit() else None


def title_core(title: str) -> tuple[str, str | None]:
    """A bill title's subject (folded, without the act type, edition and year) and its year, if it has one."""
    folded = fold(title)
    year = None
    suffix = _TITLE_SUFFIX.search(folded)
    if suffix is not None and suffix.group(0):
        year = _year(suffix.group("year"))
        folded = folded[: suffix.start()]
    prefix = _TITLE_PREFIX.match(folded)
    core = folded[prefix.end() :] if prefix else folded
    return core, year


@dataclass(frozen=True, slots=True)
class Mention:
    """A bill named in a text: where (``start``/``end`` index the original text), as written, and which bill
    (None for a title of no known bill, or a short name several bills share with no year to choose by)."""

    start: int
    end: int
    text: str
    bill_id: str | None


class BillMatcher:
    """Finds the mentions of ``bills`` (``(id, title)`` pairs) in texts. Pure and reusable: build one per set of
    bills and call :meth:`mentions` for each final."""

    def __init__(self, bills: Iterable[tuple[str, str]], *, min_standalone: int = DEFAULT_MIN_STANDALONE) -> None:
        self._min_standalone = min_standalone
        self._by_core: dict[str, list[tuple[str, str | None]]] = {}
        for bill_id, title in bills:
            core, year = title_core(title)
            if len(core) >= 2:
                self._by_core.setdefault(core, []).append((bill_id, year))
        cores = sorted(self._by_core, key=lambda c: (-len(c), c))
        # Longest first: at one position the regex takes the first alternative that matches.
        self._cores = re.compile("|".join(re.escape(c) for c in cores)) if cores else None

    def _pick(self, core: str, year: str | None) -> str | None:
        candidates = self._by_core[core]
        if year is not None:
            dated = [bill for bill, y in candidates if y == year]
            if dated:
                return dated[0] if len(dated) == 1 else None
            undated = [bill for bill, y in candidates if y is None]
            return undated[0] if len(undated) == 1 else None
        return candidates[0][0] if len(candidates) == 1 else None

    def mentions(self, text: str) -> list[Mention]:
        """Every mention in ``text``, in order, none overlapping."""
        folded, offsets = fold_with_offsets(text)
        spans: list[tuple[int, int, str | None]] = []
        if self._cores is not None:
            pos = 0
            while (match := self._cores.search(folded, pos)) is not None:
                core = match.group(0)
                trigger = _TRIGGER_BEFORE.search(folded, 0, match.start())
                if trigger is None and len(core) < self._min_standalone:
                    pos = match.start() + 1
                    continue
                start = trigger.start() if trigger is not None else match.start()
                after = _AFTER_CORE.match(folded, match.end())
                end = after.end() if after is not None else match.end()
                year = _year(after.group("year")) if after is not None else None
                spans.append((start, end, self._pick(core, year)))
                pos = end
        for match in _FULL_TITLE.finditer(folded):
            if not any(s < match.end() and match.start() < e for s, e, _ in spans):
                spans.append((match.start(), match.end(), None))
        spans.sort()
        return [Mention(offsets[s], offsets[e - 1] + 1, text[offsets[s] : offsets[e - 1] + 1], b) for s, e, b in spans]

    def bill_ids(self, text: str) -> list[str]:
        """The known bills ``text`` names, each once, in order of first mention."""
        found: list[str] = []
        for mention in self.mentions(text):
            if mention.bill_id is not None and mention.bill_id not in found:
                found.append(mention.bill_id)
        return found
