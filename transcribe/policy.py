"""When a caption becomes final: LocalAgreement-2 on stable units, plus end-of-utterance commits.

Pure logic, no model: the engine hands in each decoding pass's hypothesis for the audio after the
committed text, and gets back the captions to emit.

Agreement is decided on characters and committed on word boundaries: the longest common prefix
of the keys (letters, marks, digits) of the last two hypotheses is computed, and the words of the
newer hypothesis that end inside it *and* end on a word boundary of the older one (or, inside a
run of Thai, on one of the newer) are committed. Thai needs this because whisper's own Thai
"words" are sub-word fragments that shift between passes, and even newmm words regroup when
the text that follows them changes ("เป็นเรื่อง" vs "เป็น|รึง"), while the characters stay put.
A word cut off by the end of the audio ("Amer" vs "Americans") has no shared boundary, so it
waits. Commits also stop short of a Thai fragment that is not a dictionary word
(the forced prefix of the next pass would end inside a word, and the decoder would start that
word again).

Besides agreement: end of utterance commits everything; `settle_before` commits words that are
old enough whatever the passes say; `commit_until` forces commits when the audio buffer must be
cut. A hypothesis that repeats the end of the committed text (re-heard audio) loses the repeat.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import accumulate

from transcribe.caption import Caption
from transcribe.text import Unit, clean, has_thai, is_known_word, join_units, unit_key


def _common_prefix_len(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _thai_junction(units: Sequence[Unit], i: int) -> bool:
    """Whether units i and i+1 are Thai words written together.

    There the older pass may have grouped the same characters into other words (newmm reads
    "เป็นเรื่อง" as one word when "เรื่อง" follows and as "เป็น" + "รึง" when it does not), and the
    characters agreeing is enough (`safe_boundary` still has the last word be a dictionary word).
    Not at the end of the hypothesis, where the word may be cut.
    """
    if i + 1 >= len(units) or units[i + 1].space_before:
        return False
    left, right = units[i].text, units[i + 1].text
    return bool(left and right) and has_thai(left[-1]) and has_thai(right[0])


def safe_boundary(units: Sequence[Unit], i: int) -> bool:
    """Whether the text may be committed up to and including units[i].

    The committed text becomes the forced start of the next pass. Cut inside a word ("ดูห" of
    "ดูหน่า"), the decoder starts the word again after it and the final text repeats the piece.
    A cut is safe at a space, at a change of script, or after a Thai dictionary word.
    """
    current = units[i]
    following = units[i + 1] if i + 1 < len(units) else None
    if following is not None and (
        following.space_before or not has_thai(following.text[:1]) or not has_thai(current.text[-1:])
    ):
        return True
    return is_known_word(current.text)


def agreed_count(older: Sequence[Unit], newer: Sequence[Unit]) -> int:
    """How many leading units of `newer` the `older` hypothesis confirms (see module docstring).

    Trailing punctuation after the last agreed word is included only where both have it, so a
    comma that one pass adds and the next drops is not committed on its own.
    """
    older_keys = [u.key for u in older]
    newer_keys = [u.key for u in newer]
    limit = _common_prefix_len("".join(older_keys), "".join(newer_keys))
    older_bounds = {end: i + 1 for i, end in enumerate(accumulate(len(k) for k in older_keys))}
    count = 0
    matched_older = 0
    pos = 0
    for i, key in enumerate(newer_keys):
        pos += len(key)
        if pos > limit:
            break
        if key and (pos in older_bounds or _thai_junction(newer, i)):
            count = i + 1
            matched_older = older_bounds.get(pos, matched_older)
    while count and not safe_boundary(newer, count - 1):
        count -= 1
    while (
        count
        and count < len(newer)
        and not newer_keys[count]
        and matched_older < len(older)
        and not older_keys[matched_older]
        and older[matched_older].text == newer[count].text
    ):
        count += 1
        matched_older += 1
    return count


def drop_repeated_start(committed: Sequence[Unit], hypothesis: Sequence[Unit], max_units: int) -> tuple[Unit, ...]:
    """`hypothesis` without a repeat of the end of `committed` at its start.

    A pass that re-hears the audio of the last committed words (after the buffer was cut) starts
    its hypothesis with them again. The longest run of up to `max_units` last committed words
    whose key starts the hypothesis is removed, even where the hypothesis groups the characters
    into different words (committed "พระ" re-heard as the start of "พระราชบัญญัติ"): the word it
    ends inside loses its repeated characters.
    """
    if not committed or not hypothesis:
        return tuple(hypothesis)
    tail = list(committed)[-max_units:]
    hyp_key = "".join(u.key for u in hypothesis)
    for k in range(len(tail), 0, -1):
        suffix = "".join(u.key for u in tail[-k:])
        if not suffix or not hyp_key.startswith(suffix):
            continue
        remaining = len(suffix)
        for i, unit in enumerate(hypothesis):
            size = len(unit.key)
            if remaining == 0:
                return tuple(hypothesis[i:])
            if size <= remaining:
                remaining -= size
                continue
            # The repeat ends inside this word: keep its new characters when they can be cut
            # cleanly (no punctuation inside).
            if unit.text == unit.key:
                return (replace(unit, text=unit.text[remaining:], space_before=False), *hypothesis[i + 1 :])
            break
        else:
            return ()
    return tuple(hypothesis)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Tunables of the commit policy."""

    # Longest run of committed words looked for at the start of a new hypothesis.
    repeat_max_units: int = 6
    # A hypothesis that starts this long after the last commit cannot be re-hearing it.
    repeat_window_s: float = 1.0
    # Committed words remembered for de-duplication, the decoder prefix and the prompt.
    recent_units: int = 96
    # Agreement commits only words ending this long before the end of the audio decoded.
    edge_margin_s: float = 0.0


class CommitPolicy:
    """Turns successive hypotheses into partial and final captions for one feed.

    State is bounded: the previous hypothesis (at most one buffer of words) and the last
    `recent_units` committed words.
    """

    def __init__(self, *, segment_prefix: str = "", config: PolicyConfig = PolicyConfig()) -> None:
        self._config = config
        self._segment_prefix = segment_prefix
        self._segment_index = 0
        self._segment_used = False
        self._previous: tuple[Unit, ...] = ()
        self._recent: deque[Unit] = deque(maxlen=config.recent_units)
        self._utterance: deque[Unit] = deque(maxlen=config.recent_units)
        self._shown_partial = ""
        self._last_final_end = 0.0

    @property
    def segment_id(self) -> str:
        """Id of the segment (utterance) that captions are currently being made for."""
        return f"{self._segment_prefix}{self._segment_index}"

    @property
    def last_final_end(self) -> float:
        """Media end time of the last final caption (0.0 before any)."""
        return self._last_final_end

    @property
    def pending(self) -> tuple[Unit, ...]:
        """The uncommitted words of the last hypothesis."""
        return self._previous

    def committed_since(self, start: float) -> tuple[Unit, ...]:
        """Committed words of the current utterance that start at or after `start` (decoder prefix)."""
        return tuple(u for u in self._utterance if u.start >= start)

    def utterance_commits(self) -> tuple[Unit, ...]:
        """Committed words of the current utterance that are still remembered."""
        return tuple(self._utterance)

    def context_before(self, start: float, max_chars: int, max_gap_s: float) -> str:
        """Committed text said just before media time `start`: at most `max_chars`, cut at a word,
        and only back to the first pause longer than `max_gap_s` (context from before a long
        silence is another speaker or topic, and small models copy it into the new text)."""
        words: list[Unit] = []
        size = 0
        edge = start
        for unit in reversed(self._recent):
            if unit.start >= start:
                continue
            if edge - unit.end > max_gap_s:
                break
            size += len(unit.text) + 1
            if size > max_chars:
                break
            words.append(unit)
            edge = unit.start
        return clean(join_units(words[::-1]))

    def recent_text(self, max_chars: int) -> str:
        """The end of the committed transcript, at most `max_chars`, cut at a word boundary."""
        words: list[Unit] = []
        size = 0
        for unit in reversed(self._recent):
            size += len(unit.text) + 1
            if size > max_chars:
                break
            words.append(unit)
        return clean(join_units(words[::-1]))

    def observe(
        self,
        hypothesis: Sequence[Unit],
        *,
        end_of_utterance: bool = False,
        commit_until: float | None = None,
        follows_commit: bool = False,
        audio_end: float | None = None,
        settle_before: float | None = None,
        agree: bool = True,
    ) -> list[Caption]:
        """Take one pass's hypothesis (the words after the committed text); return captions to emit.

        `end_of_utterance` commits the whole hypothesis and closes the segment. `commit_until`
        additionally commits the leading words that end by that media time (used when the audio
        buffer must be cut even though passes have not agreed). `follows_commit` says the decoder
        was forced to start from the committed text, so the hypothesis cannot repeat it and is
        not checked for a repeat (a check that would eat a word legitimately said twice).
        `audio_end` (media time the decoded audio ends) holds back words within
        `edge_margin_s` of it. `settle_before` commits, without agreement, the leading words
        that end by that media time, as far as a safe cut allows (bounds final latency when
        passes keep disagreeing). `agree=False` commits nothing by agreement (the engine's passes
        over too short a window): the hypothesis is kept for the next pass to agree with.
        """
        hypothesis = tuple(hypothesis)
        if (
            not follows_commit
            and self._recent
            and hypothesis
            and hypothesis[0].start <= (self._recent[-1].end + self._config.repeat_window_s)
        ):
            hypothesis = drop_repeated_start(self._recent, hypothesis, self._config.repeat_max_units)
        if end_of_utterance:
            count = len(hypothesis)
        else:
            count = agreed_count(self._previous, hypothesis) if agree else 0
            if audio_end is not None:
                # Words at the very edge of the audio had no right context in either pass.
                while count and hypothesis[count - 1].end > audio_end - self._config.edge_margin_s:
                    count -= 1
            if settle_before is not None:
                # Words this old that two passes still disagree on will not settle by waiting:
                # commit the newer pass's version, up to a safe cut.
                aged = count
                while aged < len(hypothesis) and hypothesis[aged].end <= settle_before:
                    aged += 1
                while aged > count and not safe_boundary(hypothesis, aged - 1):
                    aged -= 1
                count = aged
            if commit_until is not None:
                forced = count
                while forced < len(hypothesis) and hypothesis[forced].end <= commit_until:
                    forced += 1
                # Back off to a safe cut, unless that would undo the forcing altogether.
                safe = forced
                while safe > count and not safe_boundary(hypothesis, safe - 1):
                    safe -= 1
                count = safe if safe > count else forced
        captions: list[Caption] = []
        final = self._commit(hypothesis[:count])
        if final is not None:
            captions.append(final)
        self._previous = hypothesis[count:]
        if end_of_utterance:
            captions.extend(self.end_utterance())
        else:
            partial = self._partial(self._previous)
            if partial is not None:
                captions.append(partial)
        return captions

    def end_utterance(self) -> list[Caption]:
        """Close the current segment without committing anything more (pending words are dropped)."""
        captions: list[Caption] = []
        if self._shown_partial:
            # Nothing final superseded the partial on screen: clear it explicitly.
            captions.append(Caption("partial", "", self._last_final_end, self._last_final_end, self.segment_id))
            self._shown_partial = ""
        if self._segment_used:
            self._segment_index += 1
            self._segment_used = False
        self._previous = ()
        self._utterance.clear()
        return captions

    def _commit(self, units: tuple[Unit, ...]) -> Caption | None:
        text = clean(join_units(units))
        if not text:
            return None
        start = max(units[0].start, self._last_final_end)
        end = max(units[-1].end, start)
        self._recent.extend(units)
        self._utterance.extend(units)
        self._last_final_end = end
        if not unit_key(text):
            # Agreement can settle on a lone "," after the words before it were already final: it is
            # committed (no later pass repeats it) but is no caption line of its own.
            return None
        self._segment_used = True
        # A final supersedes the segment's partial on screen.
        self._shown_partial = ""
        return Caption("final", text, start, end, self.segment_id)

    def _partial(self, units: tuple[Unit, ...]) -> Caption | None:
        text = clean(join_units(units))
        if not unit_key(text):
            # A lone "." is not worth a caption line.
            text = ""
        if text == self._shown_partial:
            return None
        self._shown_partial = text
        if not text:
            return Caption("partial", "", self._last_final_end, self._last_final_end, self.segment_id)
        self._segment_used = True
        start = max(units[0].start, self._last_final_end)
        return Caption("partial", text, start, max(units[-1].end, start), self.segment_id)
