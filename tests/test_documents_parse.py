"""The documents parser and comparison, sans I/O, on real excerpts of the krisdika texts (public domain)."""

from __future__ import annotations

import pytest

from archive.documents import (
    Candidate,
    Document,
    compare,
    constitution_slug,
    idf,
    parse_sections,
    section_key,
    section_label,
    to_arabic,
)

pytestmark = pytest.mark.fast

NB = "\xa0"
# The 2017 Constitution as the scrape lays it out: CRLF, Thai digits, a no-break space after each section number,
# headings with their title on the next line, a cross-reference wrapped after "มาตรา", items on lines of their own,
# cp1252 quotes read as C1 controls, the transitory provisions and the signature block.
CONSTITUTION = "\r\n".join(
    [
        "รัฐธรรมนูญแห่งราชอาณาจักรไทย[๑]",
        NB,
        "หมวด ๑",
        "บททั่วไป",
        NB * 18 + " ",
        NB,
        f"มาตรา ๑ {NB}ประเทศไทยเป็นราชอาณาจักรอันหนึ่งอันเดียว",
        "จะแบ่งแยกมิได้",
        NB,
        "หมวด ๗",
        "รัฐสภา",
        "ส่วนที่ ๓",
        "วุฒิสภา",
        f"มาตรา ๑๐๙ {NB}อายุของวุฒิสภามีกำหนดคราวละห้าปีนับแต่วันประกาศผลการเลือก",
        "เมื่ออายุของวุฒิสภาสิ้นสุดลง ให้ดำเนินการตามมาตรา",
        "๑๐๗ ต่อไป",
        f"มาตรา ๑๓๗ {NB}เมื่อวุฒิสภาได้พิจารณาร่างพระราชบัญญัติเสร็จแล้ว",
        "(๑)",
        "ถ้าเห็นชอบด้วยกับสภาผู้แทนราษฎร ให้ดำเนินการต่อไปตามมาตรา ๘๑",
        "ข้าพระพุทธเจ้า \x93ขอถวายสัตย์ปฏิญาณ\x94 ต่าง",
        "ๆ",
        NB,
        "บทเฉพาะกาล",
        NB,
        f"มาตรา ๒๖๓ {NB}ในระหว่างที่ยังไม่มีสภาผู้แทนราษฎรและวุฒิสภาตามรัฐธรรมนูญนี้",
        NB,
        "ผู้รับสนองพระราชโองการ",
        "พลเอก ประยุทธ์ จันทร์โอชา",
        "[๑] ราชกิจจานุเบกษา เล่ม ๑๓๔/ตอนที่ ๔๐ ก/หน้า ๑/๖ เมษายน ๒๕๖๐",
    ]
)

# An Act: "มาตรา" alone on a line with its number on the next, footnote marks, a section added later (๖/๑).
ACT = "\n".join(
    [
        "พระราชบัญญัติ",
        "เครื่องแบบสมาชิกรัฐสภา",
        "มาตรา",
        f"๑{NB} พระราชบัญญัตินี้เรียกว่า \x93พระราชบัญญัติเครื่องแบบสมาชิกรัฐสภา พ.ศ. ๒๕๑๖\x94",
        NB,
        "มาตรา",
        f"๒[๑]{NB}",
        "พระราชบัญญัตินี้ให้ใช้บังคับตั้งแต่วันถัดจากวันประกาศในราชกิจจานุเบกษาเป็นต้นไป",
        f"มาตรา ๖/๑[๒]{NB} ผู้ใดไม่มีสิทธิแต่งเครื่องแบบ ต้องระวางโทษตามมาตรา ๖ วรรคหนึ่ง",
        f"มาตรา ๗ ทวิ{NB} ให้ประธานรัฐสภารักษาการตามพระราชบัญญัตินี้",
        "ผู้รับสนองพระบรมราชโองการ",
        f"มาตรา ๒{NB} พระราชบัญญัติแก้ไขเพิ่มเติมนี้ให้ใช้บังคับตั้งแต่วันถัดจากวันประกาศ",
    ]
)


def test_sections_split_on_numbered_headings_with_thai_digits():
    """Each มาตรา becomes one section keyed by its number in Arabic digits, the signature block ends the text."""
    sections = parse_sections(CONSTITUTION)
    assert [s.key for s in sections] == ["1", "109", "137", "263"]
    assert [s.label for s in sections] == ["มาตรา 1", "มาตรา 109", "มาตรา 137", "มาตรา 263"]
    assert sections[0].text == "ประเทศไทยเป็นราชอาณาจักรอันหนึ่งอันเดียว\nจะแบ่งแยกมิได้"


def test_chapters_and_parts_are_kept_as_context():
    """หมวด and ส่วนที่ headings, with their titles, travel with every section under them."""
    s1, s109, s137, _ = parse_sections(CONSTITUTION)
    assert (s1.chapter, s1.part) == ("หมวด ๑ บททั่วไป", None)
    assert (s109.chapter, s109.part) == ("หมวด ๗ รัฐสภา", "ส่วนที่ ๓ วุฒิสภา")
    assert s137.part == "ส่วนที่ ๓ วุฒิสภา"


def test_transitory_provisions_are_included_and_marked():
    """Sections after บทเฉพาะกาล are loaded, flagged transitory, under that heading; earlier ones are not flagged."""
    sections = parse_sections(CONSTITUTION)
    assert [s.transitory for s in sections] == [False, False, False, True]
    assert sections[-1].chapter == "บทเฉพาะกาล"
    assert sections[-1].text == "ในระหว่างที่ยังไม่มีสภาผู้แทนราษฎรและวุฒิสภาตามรัฐธรรมนูญนี้"


def test_the_scrape_wrapping_is_mended_where_certain():
    """A cross-reference cut after มาตรา, an item number alone and a lone ๆ rejoin their line; quotes are mended."""
    s109, s137 = parse_sections(CONSTITUTION)[1:3]
    assert s109.text.splitlines()[-1] == "เมื่ออายุของวุฒิสภาสิ้นสุดลง ให้ดำเนินการตามมาตรา ๑๐๗ ต่อไป"
    lines = s137.text.splitlines()
    assert lines[1] == "(๑) ถ้าเห็นชอบด้วยกับสภาผู้แทนราษฎร ให้ดำเนินการต่อไปตามมาตรา ๘๑"
    assert lines[2] == "ข้าพระพุทธเจ้า “ขอถวายสัตย์ปฏิญาณ” ต่าง ๆ"


def test_act_headings_split_over_lines_footnotes_and_added_sections():
    """ "มาตรา" then its number on the next line is one heading; [๑] marks go; ๖/๑ and ๗ ทวิ get ASCII keys; the
    amending Act after the signature is not read."""
    sections = parse_sections(ACT)
    assert [s.key for s in sections] == ["1", "2", "6-1", "7-bis"]
    assert [s.label for s in sections] == ["มาตรา 1", "มาตรา 2", "มาตรา 6/1", "มาตรา 7 ทวิ"]
    assert sections[1].text == "พระราชบัญญัตินี้ให้ใช้บังคับตั้งแต่วันถัดจากวันประกาศในราชกิจจานุเบกษาเป็นต้นไป"
    assert "[" not in "".join(s.text for s in sections)
    assert sections[0].text.endswith("พ.ศ. ๒๕๑๖”")


def test_a_cross_reference_starting_a_line_is_not_a_heading():
    """ "มาตรา ๑๘ วรรคหนึ่ง" at the start of a wrapped line (an ordinary space after the number) stays text."""
    text = f"มาตรา ๒๒ {NB}ในระหว่างที่ได้แต่งตั้งผู้สำเร็จราชการแทนพระองค์ไว้ตาม\nมาตรา ๑๘ วรรคหนึ่ง ให้ผู้นั้นเป็นต่อไป"
    [section] = parse_sections(text)
    assert section.key == "22"
    assert section.text.endswith("มาตรา ๑๘ วรรคหนึ่ง ให้ผู้นั้นเป็นต่อไป")


def test_a_repeated_number_keeps_one_key_and_loses_no_text():
    """A number met again (an amending Act's section slipped in) is appended to the section before it."""
    text = f"มาตรา ๑{NB}ข้อหนึ่ง\nมาตรา ๒{NB}ข้อสอง\nมาตรา ๑{NB}ข้อซ้ำ"
    sections = parse_sections(text)
    assert [s.key for s in sections] == ["1", "2"]
    assert sections[1].text == "ข้อสอง\nมาตรา ๑ ข้อซ้ำ"


def test_keys_labels_slugs_and_digits():
    """Keys and labels round-trip; WeVis ids become slugs; Thai digits read as Arabic."""
    assert section_key("๖/๑") == "6-1" and section_label("6-1") == "มาตรา 6/1"
    assert section_key("๔", "ทวิ") == "4-bis" and section_label("4-bis") == "มาตรา 4 ทวิ"
    assert section_label("preamble") == "คำปรารภ"
    assert constitution_slug("con2475temp") == "constitution-2475-temp"
    assert constitution_slug("con2560") == "constitution-2560"
    assert to_arabic("พ.ศ. ๒๕๖๐") == "พ.ศ. 2560"
    with pytest.raises(ValueError):
        constitution_slug("2560")


def test_the_digest_changes_with_the_text_only():
    """Equal documents have equal digests (a reload skips them); a changed section changes it."""
    sections = tuple(parse_sections(CONSTITUTION))
    a = Document("constitution-2560", "t", "constitution", 2560, True, True, "s", "l", sections)
    b = Document("constitution-2560", "t", "constitution", 2560, True, True, "s", "l", sections)
    assert a.digest() == b.digest() and a.year_ce == 2017
    changed = Document("constitution-2560", "t", "constitution", 2560, True, True, "s", "l", sections[:-1])
    assert changed.digest() != a.digest()


def _c(slug: str, key: str, lead: str, rest: str = "", transitory: bool = False) -> Candidate:
    return Candidate.from_terms(slug, key, f"{lead} | {rest}", transitory)


def test_compare_pairs_each_other_document_with_its_closest_section():
    """The best section of each other document is chosen by rare shared words, with the words that paired them."""
    target = _c("c-2560", "109", "วาระ วุฒิสภา กำหนด คราว ปี")
    candidates = [
        target,
        _c("c-2560", "1", "ประเทศ ราชอาณาจักร"),
        _c("c-2492", "83", "วาระ วุฒิสภา กำหนด คราว ปี", "แต่งตั้ง"),
        _c("c-2492", "84", "วุฒิสภา ประชุม"),
        _c("c-2540", "130", "วาระ วุฒิสภา ดำรงตำแหน่ง คราว ปี"),
        _c("c-2540", "1", "ประเทศ ราชอาณาจักร"),
        _c("c-2475", "1", "ประเทศ ราชอาณาจักร"),
    ]
    matches = compare(target, candidates, idf(candidates))
    assert [(m.slug, m.key) for m in matches] == [("c-2492", "83"), ("c-2540", "130")]
    assert "กำหนด" in matches[0].shared and "วุฒิสภา" not in matches[0].shared[:1]
    assert all(m.similarity >= 0.2 for m in matches)


def test_compare_keeps_transitory_provisions_apart():
    """A transitory section is compared only with transitory ones, and the rest with the rest."""
    target = _c("a", "1", "วาระ วุฒิสภา")
    others = [_c("c", "1", "ประเทศ"), _c("d", "1", "ราชอาณาจักร"), _c("e", "1", "ศาล")]
    candidates = [target, _c("b", "9", "วาระ วุฒิสภา", transitory=True), _c("b", "2", "วาระ วุฒิสภา ประชุม"), *others]
    assert [(m.slug, m.key) for m in compare(target, candidates)] == [("b", "2")]


def test_compare_finds_nothing_without_shared_words():
    """No shared word, or a similarity under the threshold: no match for that document."""
    target = _c("a", "1", "วาระ")
    assert compare(target, [target, _c("b", "1", "ประเทศ")]) == []
