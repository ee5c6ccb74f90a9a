"""The stages a Thai bill passes through under the 2017 Constitution, and which stage may follow which.

Sans-I/O: an explicit transition table and the checks the operator API runs before it records a stage change.
Section numbers in the comments are sections of the Constitution of the Kingdom of Thailand B.E. 2560 (2017).

Two paths, chosen by the bill's type:

* ordinary and money bills (ร่างพระราชบัญญัติ, sec. 133-138): the House's three readings, then the Senate's
  (sec. 136: within 60 days in session, 30 for a money bill, see ``archive/senate_clock.py``); the Senate approves,
  withholds or amends (sec. 137); then the Prime Minister presents it for royal assent (sec. 81, 145).
* organic bills (sec. 132) and constitutional amendments (sec. 256): both houses sit together (รัฐสภา) for three
  readings; an organic bill then goes to the courts and independent organs for their opinion (sec. 132(2)-(3)),
  an amendment touching sec. 256(8) to a referendum.

"Lapsed" (ตกไป) is an end state, but the only one with a way out: a new Cabinet may ask, within 60 days of the new
Parliament's first sitting, for bills that lapsed at the dissolution to be taken up again (sec. 147 para. 2); that
revival is recorded as a change from ``lapsed`` to the stage where the bill resumes.

How it is meant to be wired (issue 9): the bill store keeps each bill's ``type`` and current ``stage`` and calls
``check_transition(current, requested, bill_type=...)`` inside the same transaction that appends the stage change;
a ``StageTransitionError`` becomes ``json_error(409, str(err), **err.details())`` and nothing is written;
``parse_stage``/``parse_bill_type`` turn request JSON into enums and raise ``UnknownValueError`` for a 422 that
names the field. Pages and alerts take their words from ``label(stage, lang)``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class BillType(StrEnum):
    ORDINARY = "ordinary"  # ร่างพระราชบัญญัติ
    MONEY = "money"  # ร่างพระราชบัญญัติเกี่ยวด้วยการเงิน (sec. 134); 30 days at the Senate (sec. 136)
    ORGANIC = "organic"  # ร่างพระราชบัญญัติประกอบรัฐธรรมนูญ (sec. 131, 132): joint sitting
    CONSTITUTIONAL_AMENDMENT = "constitutional_amendment"  # ร่างรัฐธรรมนูญแก้ไขเพิ่มเติม (sec. 256): joint sitting


class Stage(StrEnum):
    PUBLIC_HEARING = "public_hearing"
    HOUSE_FIRST_READING = "house_first_reading"
    HOUSE_COMMITTEE = "house_committee"
    HOUSE_SECOND_READING = "house_second_reading"
    HOUSE_THIRD_READING = "house_third_reading"
    SENATE_FIRST_READING = "senate_first_reading"
    SENATE_COMMITTEE = "senate_committee"
    SENATE_SECOND_READING = "senate_second_reading"
    SENATE_THIRD_READING = "senate_third_reading"
    RETURNED_TO_HOUSE = "returned_to_house"
    JOINT_COMMITTEE = "joint_committee"
    WITHHELD = "withheld"
    PARLIAMENT_FIRST_READING = "parliament_first_reading"
    PARLIAMENT_COMMITTEE = "parliament_committee"
    PARLIAMENT_SECOND_READING = "parliament_second_reading"
    PARLIAMENT_THIRD_READING = "parliament_third_reading"
    COURT_OPINION = "court_opinion"
    REFERENDUM = "referendum"
    PARLIAMENT_RECONSIDERATION = "parliament_reconsideration"
    CONSTITUTIONAL_COURT = "constitutional_court"
    SENT_FOR_ASSENT = "sent_for_assent"
    PUBLISHED = "published"
    BECAME_LAW = "became_law"
    LAPSED = "lapsed"
    REJECTED = "rejected"
    MERGED = "merged"


S = Stage

# The end states: the bill no longer moves (``lapsed`` may be revived, sec. 147 para. 2, see below).
END_STAGES: frozenset[Stage] = frozenset({S.BECAME_LAW, S.LAPSED, S.REJECTED, S.MERGED})

# While a bill is in one of these, the Senate's sec. 136 clock runs (``archive/senate_clock.py``).
SENATE_STAGES: frozenset[Stage] = frozenset(
    {S.SENATE_FIRST_READING, S.SENATE_COMMITTEE, S.SENATE_SECOND_READING, S.SENATE_THIRD_READING}
)

# Stages only one path uses; a stage in neither set is shared by every type.
_HOUSE_AND_SENATE_ONLY: frozenset[Stage] = frozenset(
    {
        S.HOUSE_FIRST_READING,
        S.HOUSE_COMMITTEE,
        S.HOUSE_SECOND_READING,
        S.HOUSE_THIRD_READING,
        *SENATE_STAGES,
        S.RETURNED_TO_HOUSE,
        S.JOINT_COMMITTEE,
        S.WITHHELD,
    }
)
_JOINT_SITTING_ONLY: frozenset[Stage] = frozenset(
    {S.PARLIAMENT_FIRST_READING, S.PARLIAMENT_COMMITTEE, S.PARLIAMENT_SECOND_READING, S.PARLIAMENT_THIRD_READING}
)
_STAGES_OF_TYPE: dict[BillType, frozenset[Stage]] = {
    BillType.ORDINARY: frozenset(Stage) - _JOINT_SITTING_ONLY - {S.COURT_OPINION, S.REFERENDUM},
    BillType.MONEY: frozenset(Stage) - _JOINT_SITTING_ONLY - {S.COURT_OPINION, S.REFERENDUM},
    BillType.ORGANIC: frozenset(Stage) - _HOUSE_AND_SENATE_ONLY - {S.REFERENDUM},
    BillType.CONSTITUTIONAL_AMENDMENT: frozenset(Stage) - _HOUSE_AND_SENATE_ONLY - {S.COURT_OPINION},
}

# Stages a lapsed bill may resume at (sec. 147 para. 2: only bills "not yet approved by Parliament" are revived).
_REVIVABLE: frozenset[Stage] = frozenset(
    {
        S.HOUSE_FIRST_READING,
        S.HOUSE_COMMITTEE,
        S.HOUSE_SECOND_READING,
        S.HOUSE_THIRD_READING,
        *SENATE_STAGES,
        S.RETURNED_TO_HOUSE,
        S.JOINT_COMMITTEE,
        *_JOINT_SITTING_ONLY,
    }
)

# The transition table. Every stage before Parliament's approval may also go to LAPSED: the House's term ends or it
# is dissolved (sec. 147 para. 1); that is added below rather than repeated on every line.
_NEXT: dict[Stage, frozenset[Stage]] = {
    # Sec. 77 para. 2: the state hears those concerned before any law is made; then the bill is proposed to the
    # House (sec. 133) or, organic bills and amendments, to Parliament (sec. 131, 256(2)). A hearing may also
    # end in a draft folded into another.
    S.PUBLIC_HEARING: frozenset({S.HOUSE_FIRST_READING, S.PARLIAMENT_FIRST_READING, S.MERGED}),
    # First reading: accept in principle and appoint a committee, or reject. Bills on the same principle are
    # accepted together and the committee works from one of them: the others are merged into it.
    S.HOUSE_FIRST_READING: frozenset({S.HOUSE_COMMITTEE, S.REJECTED, S.MERGED}),
    S.HOUSE_COMMITTEE: frozenset({S.HOUSE_SECOND_READING, S.MERGED}),
    # Second reading goes section by section: it amends, it does not reject the whole bill.
    S.HOUSE_SECOND_READING: frozenset({S.HOUSE_THIRD_READING}),
    # Sec. 136 para. 1: a bill the House approves goes to the Senate.
    S.HOUSE_THIRD_READING: frozenset({S.SENATE_FIRST_READING, S.REJECTED}),
    # Sec. 136 para. 3, 137 last para.: a Senate that does not finish in time is deemed to approve, whatever
    # reading it had reached, and the bill goes on under sec. 81; hence SENT_FOR_ASSENT from every Senate stage.
    # Sec. 137(2): a Senate that disagrees withholds the bill and returns it to the House.
    S.SENATE_FIRST_READING: frozenset({S.SENATE_COMMITTEE, S.WITHHELD, S.SENT_FOR_ASSENT}),
    S.SENATE_COMMITTEE: frozenset({S.SENATE_SECOND_READING, S.SENT_FOR_ASSENT}),
    S.SENATE_SECOND_READING: frozenset({S.SENATE_THIRD_READING, S.SENT_FOR_ASSENT}),
    # Sec. 137(1) approve → sec. 81; (2) disagree → withheld; (3) amend → back to the House.
    S.SENATE_THIRD_READING: frozenset({S.SENT_FOR_ASSENT, S.WITHHELD, S.RETURNED_TO_HOUSE}),
    # Sec. 137(3): the House agrees with the amendments → sec. 81; otherwise a joint committee of both houses.
    S.RETURNED_TO_HOUSE: frozenset({S.SENT_FOR_ASSENT, S.JOINT_COMMITTEE}),
    # Sec. 137(3): both houses approve the joint committee's draft → sec. 81; either disapproves → withheld.
    S.JOINT_COMMITTEE: frozenset({S.SENT_FOR_ASSENT, S.WITHHELD}),
    # Sec. 138: after 180 days (10 for a money bill) the House may take the bill up again; reaffirmed by more than
    # half of all its members, it counts as approved by Parliament and goes on under sec. 81; otherwise it fails.
    # Sec. 139: a bill on the same principle proposed meanwhile goes to the Constitutional Court (it does not move
    # the withheld one).
    S.WITHHELD: frozenset({S.SENT_FOR_ASSENT, S.REJECTED}),
    # Joint sitting (sec. 132(1) organic bills, sec. 256(2)-(6) amendments): three readings.
    S.PARLIAMENT_FIRST_READING: frozenset({S.PARLIAMENT_COMMITTEE, S.REJECTED, S.MERGED}),
    S.PARLIAMENT_COMMITTEE: frozenset({S.PARLIAMENT_SECOND_READING, S.MERGED}),
    # Sec. 256(5): an amendment waits 15 days between the second and third readings.
    S.PARLIAMENT_SECOND_READING: frozenset({S.PARLIAMENT_THIRD_READING}),
    # Organic: sec. 132(2) sent to the Supreme Court, Constitutional Court or independent organs for opinion.
    # Amendment: sec. 256(8) a referendum first when it touches chapters 1, 2 or 15 (and the like); sec. 256(9)
    # members may refer it to the Constitutional Court; otherwise it waits 15 days and goes on (sec. 256(7), 81).
    S.PARLIAMENT_THIRD_READING: frozenset(
        {S.COURT_OPINION, S.REFERENDUM, S.CONSTITUTIONAL_COURT, S.SENT_FOR_ASSENT, S.REJECTED}
    ),
    # Sec. 132(2): no objection within 10 days → Parliament goes on; (3) objections → it reconsiders within 30.
    S.COURT_OPINION: frozenset({S.SENT_FOR_ASSENT, S.PARLIAMENT_RECONSIDERATION}),
    # Sec. 256(8): approved by referendum → sec. 256(7); rejected → it fails.
    S.REFERENDUM: frozenset({S.SENT_FOR_ASSENT, S.CONSTITUTIONAL_COURT, S.REJECTED}),
    # Sec. 132(3) after the courts' opinion; sec. 146 after the King returns the bill or keeps it 90 days: Parliament
    # reaffirms (sec. 146: by two thirds) and it is presented again, or it fails.
    S.PARLIAMENT_RECONSIDERATION: frozenset({S.SENT_FOR_ASSENT, S.REJECTED}),
    # Sec. 148 (and 256(9) for amendments): while the Court decides, the bill may not be presented; an essential
    # provision found unconstitutional makes the bill lapse (ตกไป); otherwise it goes on under sec. 81. Sec. 256(9)
    # also sends an amendment found to touch sec. 256(8) to a referendum.
    S.CONSTITUTIONAL_COURT: frozenset({S.SENT_FOR_ASSENT, S.REFERENDUM, S.LAPSED}),
    # Sec. 81, 145: the Prime Minister waits 5 days (time for a sec. 148 referral), then presents it within 20;
    # published in the Royal Gazette it may be enforced as law. Sec. 146: the King may return it to Parliament.
    # Sec. 147 para. 1: a dissolution while assent is withheld makes it lapse (hence LAPSED is listed here too).
    S.SENT_FOR_ASSENT: frozenset({S.PUBLISHED, S.CONSTITUTIONAL_COURT, S.PARLIAMENT_RECONSIDERATION, S.LAPSED}),
    # Sec. 81: in force once published (on the day it names).
    S.PUBLISHED: frozenset({S.BECAME_LAW}),
    S.BECAME_LAW: frozenset(),
    S.LAPSED: _REVIVABLE,
    S.REJECTED: frozenset(),
    S.MERGED: frozenset(),
}
# Sec. 147 para. 1: a bill Parliament has not yet approved lapses when the House's term ends or it is dissolved.
_BEFORE_APPROVAL = frozenset(Stage) - END_STAGES - {S.SENT_FOR_ASSENT, S.PUBLISHED, S.CONSTITUTIONAL_COURT}
TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    stage: nxt | ({S.LAPSED} if stage in _BEFORE_APPROVAL else frozenset()) for stage, nxt in _NEXT.items()
}

# (Thai, English) for each stage, as the bill page and the alerts say it.
_LABELS: dict[Stage, tuple[str, str]] = {
    S.PUBLIC_HEARING: ("รับฟังความคิดเห็น", "Public hearing"),
    S.HOUSE_FIRST_READING: ("สภาผู้แทนราษฎร วาระที่หนึ่ง (รับหลักการ)", "House, first reading (principle)"),
    S.HOUSE_COMMITTEE: ("สภาผู้แทนราษฎร ชั้นกรรมาธิการ", "House committee"),
    S.HOUSE_SECOND_READING: ("สภาผู้แทนราษฎร วาระที่สอง (เรียงตามมาตรา)", "House, second reading (section by section)"),
    S.HOUSE_THIRD_READING: ("สภาผู้แทนราษฎร วาระที่สาม", "House, third reading"),
    S.SENATE_FIRST_READING: ("วุฒิสภา วาระที่หนึ่ง (รับหลักการ)", "Senate, first reading (principle)"),
    S.SENATE_COMMITTEE: ("วุฒิสภา ชั้นกรรมาธิการ", "Senate committee"),
    S.SENATE_SECOND_READING: ("วุฒิสภา วาระที่สอง (เรียงตามมาตรา)", "Senate, second reading (section by section)"),
    S.SENATE_THIRD_READING: ("วุฒิสภา วาระที่สาม", "Senate, third reading"),
    S.RETURNED_TO_HOUSE: ("ส่งคืนสภาผู้แทนราษฎร (วุฒิสภาแก้ไขเพิ่มเติม)", "Returned to the House (Senate amendments)"),
    S.JOINT_COMMITTEE: ("คณะกรรมาธิการร่วมกัน (มาตรา ๑๓๗)", "Joint committee (sec. 137)"),
    S.WITHHELD: ("ยับยั้งไว้ก่อน (มาตรา ๑๓๗–๑๓๘)", "Withheld (sec. 137–138)"),
    S.PARLIAMENT_FIRST_READING: ("รัฐสภา วาระที่หนึ่ง (รับหลักการ)", "Parliament, first reading (principle)"),
    S.PARLIAMENT_COMMITTEE: ("รัฐสภา ชั้นกรรมาธิการ", "Parliament committee"),
    S.PARLIAMENT_SECOND_READING: ("รัฐสภา วาระที่สอง (เรียงตามมาตรา)", "Parliament, second reading"),
    S.PARLIAMENT_THIRD_READING: ("รัฐสภา วาระที่สาม", "Parliament, third reading"),
    S.COURT_OPINION: ("ส่งศาลและองค์กรอิสระให้ความเห็น (มาตรา ๑๓๒)", "Sent to the courts for opinion (sec. 132)"),
    S.REFERENDUM: ("ออกเสียงประชามติ (มาตรา ๒๕๖)", "Referendum (sec. 256)"),
    S.PARLIAMENT_RECONSIDERATION: ("รัฐสภาพิจารณาใหม่", "Reconsidered by Parliament"),
    S.CONSTITUTIONAL_COURT: ("ศาลรัฐธรรมนูญพิจารณา", "Before the Constitutional Court"),
    S.SENT_FOR_ASSENT: (
        "นายกรัฐมนตรีนำขึ้นทูลเกล้าฯ (มาตรา ๘๑)",
        "Sent to the Prime Minister for royal assent (sec. 81)",
    ),
    S.PUBLISHED: ("ประกาศในราชกิจจานุเบกษา", "Published in the Royal Gazette"),
    S.BECAME_LAW: ("มีผลใช้บังคับเป็นกฎหมาย", "Became law"),
    S.LAPSED: ("ตกไป", "Lapsed"),
    S.REJECTED: ("ไม่ผ่านการพิจารณา", "Rejected"),
    S.MERGED: ("รวมกับร่างอื่น", "Merged into another bill"),
}

_TYPE_LABELS: dict[BillType, tuple[str, str]] = {
    BillType.ORDINARY: ("ร่างพระราชบัญญัติ", "Bill"),
    BillType.MONEY: ("ร่างพระราชบัญญัติเกี่ยวด้วยการเงิน", "Money bill"),
    BillType.ORGANIC: ("ร่างพระราชบัญญัติประกอบรัฐธรรมนูญ", "Organic bill"),
    BillType.CONSTITUTIONAL_AMENDMENT: ("ร่างรัฐธรรมนูญแก้ไขเพิ่มเติม", "Constitutional amendment"),
}


class UnknownValueError(ValueError):
    """A stage or bill type that does not exist: a 422 naming ``field`` and listing the ``allowed`` values."""

    def __init__(self, field: str, value: object, allowed: list[str]) -> None:
        super().__init__(f"{field}: unknown value {value!r}")
        self.field = field
        self.allowed = allowed

    def details(self) -> dict[str, Any]:
        return {"field": self.field, "allowed": self.allowed}


class StageTransitionError(ValueError):
    """A stage change the constitution does not allow from the bill's current stage: a 409.

    ``details()`` is the extra JSON for ``json_error``: the field, both stages and the stages that may follow.
    """

    def __init__(self, from_stage: Stage, to_stage: Stage, allowed: tuple[Stage, ...]) -> None:
        if allowed:
            tail = "allowed next: " + ", ".join(allowed)
        else:
            tail = f"{from_stage} is an end state"
        super().__init__(f"a bill cannot go from {from_stage} to {to_stage}; {tail}")
        self.from_stage = from_stage
        self.to_stage = to_stage
        self.allowed = allowed

    def details(self) -> dict[str, Any]:
        return {
            "field": "stage",
            "from": str(self.from_stage),
            "to": str(self.to_stage),
            "allowed": [str(s) for s in self.allowed],
        }


def parse_stage(value: object) -> Stage:
    """The stage named by ``value`` (its slug, e.g. ``"senate_committee"``), or ``UnknownValueError``."""
    if isinstance(value, str) and value in Stage.__members__.values():
        return Stage(value)
    raise UnknownValueError("stage", value, [str(s) for s in Stage])


def parse_bill_type(value: object) -> BillType:
    """The bill type named by ``value``, or ``UnknownValueError``."""
    if isinstance(value, str) and value in BillType.__members__.values():
        return BillType(value)
    raise UnknownValueError("type", value, [str(t) for t in BillType])


def stages_of(bill_type: BillType) -> frozenset[Stage]:
    """Every stage a bill of this type can be in."""
    return _STAGES_OF_TYPE[bill_type]


def first_stages(bill_type: BillType) -> tuple[Stage, ...]:
    """Where a new bill of this type may start: its hearing, or its first reading when recorded after the fact."""
    if bill_type in (BillType.ORGANIC, BillType.CONSTITUTIONAL_AMENDMENT):
        return (S.PUBLIC_HEARING, S.PARLIAMENT_FIRST_READING)
    return (S.PUBLIC_HEARING, S.HOUSE_FIRST_READING)


def next_stages(stage: Stage, bill_type: BillType | None = None) -> tuple[Stage, ...]:
    """The stages that may follow ``stage``, in the table's order; only those of ``bill_type``'s path when given."""
    allowed = TRANSITIONS[stage]
    if bill_type is not None:
        allowed = allowed & _STAGES_OF_TYPE[bill_type]
    # Enum order is the order of the legislative path, so the list reads naturally in an error message.
    return tuple(s for s in Stage if s in allowed)


def check_transition(from_stage: Stage, to_stage: Stage, bill_type: BillType | None = None) -> None:
    """Return if a bill (of ``bill_type``, when given) may go from ``from_stage`` to ``to_stage``; raise
    ``StageTransitionError`` carrying the allowed next stages otherwise. Staying in the same stage is not a change
    and is refused too."""
    allowed = next_stages(from_stage, bill_type)
    if to_stage not in allowed:
        raise StageTransitionError(from_stage, to_stage, allowed)


def is_end(stage: Stage) -> bool:
    """True for became law, lapsed, rejected and merged: the bill no longer moves (a lapsed one may be revived)."""
    return stage in END_STAGES


def at_senate(stage: Stage) -> bool:
    """True while the sec. 136 clock runs: the bill is in one of the Senate's readings."""
    return stage in SENATE_STAGES


def label(stage: Stage, lang: str = "th") -> str:
    """The stage's name in Thai (``"th"``, the default) or English (``"en"``)."""
    th, en = _LABELS[stage]
    return en if lang == "en" else th


def type_label(bill_type: BillType, lang: str = "th") -> str:
    """The bill type's name in Thai or English."""
    th, en = _TYPE_LABELS[bill_type]
    return en if lang == "en" else th
