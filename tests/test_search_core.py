"""The sans-I/O search core: Thai folding, query parsing, matching, snippets and cursors."""

from __future__ import annotations

import pytest

from archive.search import (
    MAX_QUERY_CHARS,
    Cursor,
    QueryError,
    fold,
    fold_with_offsets,
    index_terms,
    parse_query,
    score,
    snippet,
)

pytestmark = pytest.mark.fast


def matches(q: str, text: str) -> bool:
    query = parse_query(q)
    found = score(query, fold(text)) is not None
    if found:
        # Whatever matches must be reachable through the index: every lookup term is an index term of the text.
        assert set(query.lookup()) <= index_terms(fold(text))
    return found


def test_thai_word_inside_unspaced_text() -> None:
    """A word is found in the middle of unspaced Thai."""
    assert matches("งบประมาณ", "ที่ประชุมพิจารณางบประมาณรายจ่ายประจำปี")


def test_word_inside_compound() -> None:
    """A word inside a compound newmm keeps whole (งบประมาณ in ปีงบประมาณ, มติ in มีมติ) is found."""
    assert matches("งบประมาณ", "ในปีงบประมาณนี้")
    assert matches("มติ", "ที่ประชุมมีมติเห็นชอบ")


def test_one_and_two_syllable_words() -> None:
    """Short words (ปี, สว, ณ) are found, including สว written ส.ว."""
    assert matches("ปี", "ในปีงบประมาณนี้")
    assert matches("สว", "ส.ว. สมชาย ลุกขึ้นอภิปราย")
    assert matches("ส.ว.", "สว สมชาย ลุกขึ้นอภิปราย")
    assert matches("ณ", "ตราไว้ ณ วันที่ ๖ เมษายน")


def test_short_words_do_not_match_inside_a_cluster() -> None:
    """A short term never matches part of a Thai cluster: สว is not in สวัสดี, ที is not in ที่, รา is not in เรา."""
    assert not matches("สว", "สวัสดีครับท่านประธาน")
    assert not matches("ที", "ที่ประชุม")
    assert not matches("รา", "พวกเราทุกคน")


def test_thai_and_arabic_digits_match_each_other() -> None:
    """๒๕๖๘ finds 2568 and 2568 finds ๒๕๖๘; numbers match whole (68 is not in 2568)."""
    assert matches("๒๕๖๘", "ปีงบประมาณ พ.ศ. 2568")
    assert matches("2568", "ปีงบประมาณ พ.ศ. ๒๕๖๘")
    assert matches("พ.ศ. 2568", "พ.ศ.๒๕๖๘")
    assert not matches("68", "พ.ศ. 2568")


def test_nfc_and_zero_width_never_break_a_match() -> None:
    """Zero-width characters, decomposed sara am and stray spaces between Thai words on either side still match."""
    assert matches("งบประมาณ", "งบ\u200bประ\u200cมาณ")
    assert matches("งบ\ufeffประมาณ", "งบประมาณ")
    assert matches("ประจำปี", "ประจ\u0e4d\u0e32ปี")
    assert matches("ร่างพระราชบัญญัติ", "ร่าง พระราชบัญญัติ")
    assert matches("café", "cafe\u0301 ใหม่")


def test_latin_terms_match_whole_words() -> None:
    """Latin words are case-insensitive and whole: ai is not in said."""
    assert matches("COVID", "สถานการณ์ covid-19 ระบาด")
    assert not matches("ai", "he said")


def test_phrases_keep_order() -> None:
    """A quoted phrase must occur as written; its words in another order do not match."""
    assert matches('"งบประมาณ รายจ่าย"', "ร่างงบประมาณรายจ่ายประจำปี")
    assert not matches('"รายจ่าย งบประมาณ"', "ร่างงบประมาณรายจ่ายประจำปี")
    assert matches("รายจ่าย งบประมาณ", "ร่างงบประมาณรายจ่ายประจำปี")


def test_exclusion() -> None:
    """-word and -"phrase" exclude segments that contain them."""
    assert matches("งบประมาณ -กลาโหม", "งบประมาณการศึกษา")
    assert not matches("งบประมาณ -กลาโหม", "งบประมาณกลาโหม")
    assert not matches('งบประมาณ -"งบ กลาง"', "งบประมาณและงบกลาง")


@pytest.mark.parametrize(
    ("q", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ก" * (MAX_QUERY_CHARS + 1), "longer"),
        ('"งบประมาณ', "unbalanced"),
        ("-งบประมาณ", "only excludes"),
        ('-"งบ กลาง" -ภาษี', "only excludes"),
        ('""', "nothing to search"),
        ("... ,,,", "nothing to search"),
    ],
)
def test_bad_queries_name_the_field(q: str, reason: str) -> None:
    """Queries that cannot run raise QueryError naming the field q, with a reason a person can act on."""
    with pytest.raises(QueryError) as err:
        parse_query(q)
    assert err.value.field == "q"
    assert reason in err.value.message


def test_snippet_marks_hits_in_the_text_as_written() -> None:
    """Snippet spans are plain text cut from the original (Thai digits, zero-width, markup kept) with hits marked."""
    text = "<b>ประธาน</b> แจ้งว่า ปีงบ\u200bประมาณ ๒๕๖๘ " + "ก" * 100 + " งบประมาณ"
    spans = snippet(parse_query("งบประมาณ 2568"), text, context=20)
    hits = [s.text for s in spans if s.hit]
    assert hits == ["งบ\u200bประมาณ", "๒๕๖๘"]
    assert spans[0].text == "…" and spans[-1].text == "…"
    assert "".join(s.text for s in spans[1:-1]) in text
    assert spans[1].text == "แจ้งว่า ปี"  # cut at a space, never inside a cluster


def test_fold_offsets_agree_with_fold() -> None:
    """fold_with_offsets produces exactly fold()'s output, and each character maps back to its source."""
    for text in ["ส.ว. สมชาย ๒๕๖๘", "covid-19  ระบาด!", "ประจ\u0e4d\u0e32ปี", "  a\u200bB  ", "“ร่าง” พ.ร.บ."]:
        folded, starts, ends = fold_with_offsets(text)
        assert folded == fold(text)
        assert len(starts) == len(ends) == len(folded)
        assert all(fold(text[a:b]) in (c, "") or c == " " for c, a, b in zip(folded, starts, ends, strict=True))


def test_fold_offsets_fast_path_agrees_with_the_character_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Texts that fold one character to one take a shortcut; it gives the character loop's folding and offsets."""
    import archive.search as core

    texts = ["ส.ว. สมชาย ๒๕๖๘", "COVID-19  ระบาด!", "“ร่าง” พ.ร.บ. ปีงบประมาณ", "  İstanbul ǅ ß  ", "ประจ\u0e4d\u0e32ปี"]
    fast = [fold_with_offsets(t) for t in texts]
    # Force the loop for every text: a _prefold whose output never has the input's length.
    monkeypatch.setattr(core, "_prefold", lambda text: "")
    assert [fold_with_offsets(t) for t in texts] == fast


def test_relevance_counts_occurrences() -> None:
    """More occurrences of the query's terms score higher, capped so one repetitive segment cannot dominate."""
    q = parse_query("งบ")
    assert score(q, fold("งบ งบ งบ งบ งบ")) == 3 > score(q, fold("งบ และ งบ")) == 2 > score(q, fold("งบ")) == 1


def test_cursor_round_trip_and_refusals() -> None:
    """A cursor decodes to what was encoded; garbage, tampering and numbers beyond 64 bits fail, naming the field."""
    cursor = Cursor(1234, (2, 1_750_000_000_000, 99))
    assert Cursor.decode(cursor.encode()) == cursor
    assert Cursor.decode(Cursor(5, None).encode()).after is None
    assert Cursor.decode(Cursor(7, (1, -2_000_000_000_000, 3)).encode()).after == (1, -2_000_000_000_000, 3)
    for bad in ["", "not a cursor", "!!!!", "1.2", "1.2.3", "1.2.3.4.5", "-1", "9" * 19, "1.2.3.4\n", "x" * 500]:
        with pytest.raises(QueryError) as err:
            Cursor.decode(bad)
        assert err.value.field == "cursor"


def test_index_terms_are_every_trigram_and_every_boundary_aligned_short_piece() -> None:
    """index_terms (one regex pass over units) equals its definition, checked by brute force with is_boundary."""
    import random

    from archive.search import is_boundary

    rng = random.Random(8)
    alphabet = "กขคงสวปีัาำิีึืุูเแโใไ่้๊๋็์ๅะabcZ019٣ ๑"
    texts = ["ปีงบประมาณ ๒๕๖๘", "ส.ว. สวัสดี covid 19", "เเไ", "ั"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in range(3000)]
    for text in texts:
        folded = fold(text)
        expected: set[str] = set()
        for run in folded.split(" "):
            expected |= {run[i : i + 3] for i in range(len(run) - 2)}
            for size in (1, 2):
                expected |= {
                    run[i : i + size]
                    for i in range(len(run) - size + 1)
                    if is_boundary(run, i) and is_boundary(run, i + size)
                }
        expected.discard("")
        assert index_terms(folded) == expected, repr(folded)
