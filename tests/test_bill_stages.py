"""The legislative stages' transition table: the constitution's paths are allowed, everything else is refused."""

from __future__ import annotations

import pytest

from archive.bill_stages import (
    END_STAGES,
    TRANSITIONS,
    BillType,
    Stage,
    StageTransitionError,
    UnknownValueError,
    at_senate,
    check_transition,
    first_stages,
    is_end,
    label,
    next_stages,
    parse_bill_type,
    parse_stage,
    stages_of,
    type_label,
)

pytestmark = pytest.mark.fast

S = Stage

ORDINARY_PATH = [
    S.PUBLIC_HEARING,
    S.HOUSE_FIRST_READING,
    S.HOUSE_COMMITTEE,
    S.HOUSE_SECOND_READING,
    S.HOUSE_THIRD_READING,
    S.SENATE_FIRST_READING,
    S.SENATE_COMMITTEE,
    S.SENATE_SECOND_READING,
    S.SENATE_THIRD_READING,
    S.SENT_FOR_ASSENT,
    S.PUBLISHED,
    S.BECAME_LAW,
]


def walk(path: list[Stage], bill_type: BillType) -> None:
    for a, b in zip(path, path[1:], strict=False):
        check_transition(a, b, bill_type)


def test_ordinary_bill_path_is_allowed():
    """Hearing, three House readings, three Senate readings, assent, Gazette, law: every step is allowed."""
    walk(ORDINARY_PATH, BillType.ORDINARY)
    walk(ORDINARY_PATH, BillType.MONEY)


def test_senate_amendment_paths_follow_section_137():
    """Senate amends → House agrees, or joint committee → assent or withheld → reaffirmed after 180 days."""
    walk([S.SENATE_THIRD_READING, S.RETURNED_TO_HOUSE, S.SENT_FOR_ASSENT], BillType.ORDINARY)
    walk([S.SENATE_THIRD_READING, S.RETURNED_TO_HOUSE, S.JOINT_COMMITTEE, S.SENT_FOR_ASSENT], BillType.ORDINARY)
    walk([S.RETURNED_TO_HOUSE, S.JOINT_COMMITTEE, S.WITHHELD, S.SENT_FOR_ASSENT], BillType.ORDINARY)
    walk([S.SENATE_THIRD_READING, S.WITHHELD, S.REJECTED], BillType.MONEY)


def test_senate_deemed_approval_from_any_reading():
    """When the sec. 136 time runs out the bill goes to the Prime Minister from whatever Senate reading it was in."""
    for stage in (S.SENATE_FIRST_READING, S.SENATE_COMMITTEE, S.SENATE_SECOND_READING, S.SENATE_THIRD_READING):
        check_transition(stage, S.SENT_FOR_ASSENT, BillType.ORDINARY)
        assert at_senate(stage)
    assert not at_senate(S.HOUSE_THIRD_READING)


def test_joint_sitting_paths_for_organic_bills_and_amendments():
    """Organic bills go through Parliament's readings and the courts' opinion; amendments may go to a referendum."""
    joint = [S.PUBLIC_HEARING, S.PARLIAMENT_FIRST_READING, S.PARLIAMENT_COMMITTEE, S.PARLIAMENT_SECOND_READING]
    walk([*joint, S.PARLIAMENT_THIRD_READING, S.COURT_OPINION, S.SENT_FOR_ASSENT, S.PUBLISHED], BillType.ORGANIC)
    walk([S.COURT_OPINION, S.PARLIAMENT_RECONSIDERATION, S.SENT_FOR_ASSENT], BillType.ORGANIC)
    walk(
        [*joint, S.PARLIAMENT_THIRD_READING, S.REFERENDUM, S.SENT_FOR_ASSENT, S.PUBLISHED],
        BillType.CONSTITUTIONAL_AMENDMENT,
    )


@pytest.mark.parametrize(
    ("bill_type", "frm", "to"),
    [
        (BillType.ORDINARY, S.PUBLIC_HEARING, S.PARLIAMENT_FIRST_READING),  # ordinary bills go to the House
        (BillType.ORGANIC, S.PUBLIC_HEARING, S.HOUSE_FIRST_READING),  # organic bills go to Parliament
        (BillType.ORDINARY, S.PARLIAMENT_THIRD_READING, S.REFERENDUM),  # not a stage of an ordinary bill
        (BillType.ORGANIC, S.PARLIAMENT_THIRD_READING, S.REFERENDUM),  # referendums are for amendments
        (BillType.CONSTITUTIONAL_AMENDMENT, S.PARLIAMENT_THIRD_READING, S.COURT_OPINION),  # sec. 132 is organic
    ],
)
def test_other_paths_stages_are_refused_for_a_type(bill_type: BillType, frm: Stage, to: Stage):
    """A stage of the other path is refused for a bill of the wrong type."""
    with pytest.raises(StageTransitionError):
        check_transition(frm, to, bill_type)


def test_impossible_transition_carries_the_allowed_next_stages():
    """Skipping the Senate is refused with the stages that may follow, for the 409 body."""
    with pytest.raises(StageTransitionError) as err:
        check_transition(S.HOUSE_THIRD_READING, S.SENT_FOR_ASSENT, BillType.ORDINARY)
    assert err.value.allowed == (S.SENATE_FIRST_READING, S.LAPSED, S.REJECTED)
    assert err.value.details() == {
        "field": "stage",
        "from": "house_third_reading",
        "to": "sent_for_assent",
        "allowed": ["senate_first_reading", "lapsed", "rejected"],
    }
    assert "senate_first_reading" in str(err.value)


def test_same_stage_is_not_a_change():
    """Recording the stage a bill is already in is refused."""
    with pytest.raises(StageTransitionError):
        check_transition(S.SENATE_COMMITTEE, S.SENATE_COMMITTEE)


def test_end_states_do_not_move_except_a_lapsed_revival():
    """Became law, rejected and merged lead nowhere; lapsed may resume a reading (sec. 147 para. 2), never assent."""
    for stage in (S.BECAME_LAW, S.REJECTED, S.MERGED):
        assert next_stages(stage) == ()
        with pytest.raises(StageTransitionError, match="end state"):
            check_transition(stage, S.HOUSE_FIRST_READING)
    assert END_STAGES == {S.BECAME_LAW, S.LAPSED, S.REJECTED, S.MERGED} and is_end(S.LAPSED)
    check_transition(S.LAPSED, S.SENATE_COMMITTEE, BillType.ORDINARY)
    with pytest.raises(StageTransitionError):
        check_transition(S.LAPSED, S.SENT_FOR_ASSENT)


def test_every_stage_before_approval_can_lapse():
    """A dissolution (sec. 147) can end any bill Parliament has not yet approved."""
    for stage in (S.PUBLIC_HEARING, S.HOUSE_COMMITTEE, S.SENATE_SECOND_READING, S.WITHHELD, S.JOINT_COMMITTEE):
        assert S.LAPSED in next_stages(stage)
    assert S.LAPSED not in next_stages(S.PUBLISHED)


def test_table_is_closed_and_every_stage_reachable():
    """Every stage has a row, every target is a stage, and every stage but the hearing can be reached."""
    assert set(TRANSITIONS) == set(Stage)
    reached = {t for targets in TRANSITIONS.values() for t in targets}
    assert reached == set(Stage) - {S.PUBLIC_HEARING}
    for bill_type in BillType:
        for start in first_stages(bill_type):
            assert start in stages_of(bill_type)


def test_every_stage_and_type_has_thai_and_english_labels():
    """Each stage and type has a Thai and an English label, and they differ."""
    for stage in Stage:
        assert label(stage) and label(stage, "en") and label(stage) != label(stage, "en")
    assert label(S.SENT_FOR_ASSENT) == "นายกรัฐมนตรีนำขึ้นทูลเกล้าฯ (มาตรา ๘๑)"
    assert type_label(BillType.MONEY) == "ร่างพระราชบัญญัติเกี่ยวด้วยการเงิน"
    for bill_type in BillType:
        assert type_label(bill_type, "en")


def test_unknown_stage_or_type_names_the_field():
    """A stage or type that does not exist is an error naming the field and listing the allowed values."""
    assert parse_stage("withheld") is S.WITHHELD
    assert parse_bill_type("money") is BillType.MONEY
    for bad in ("senate", "", None, 3, ["withheld"]):
        with pytest.raises(UnknownValueError) as err:
            parse_stage(bad)
        assert err.value.field == "stage" and "withheld" in err.value.allowed
    with pytest.raises(UnknownValueError) as err2:
        parse_bill_type("budget")
    assert err2.value.details()["field"] == "type"


def test_every_stage_is_in_the_alerts_doc():
    """docs/alerts.md's stages table has a row for every stage."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "alerts.md").read_text()
    for stage in Stage:
        assert f"| `{stage}` | {label(stage)} |" in doc, stage
