"""The words of each alert: what happened and a link to the moment, in Thai with an English twin. Plain text only.

Every alert is an ``Alert``: a kind, the follow it concerns (``subject``, e.g. ``bill:42``), a Thai title and body,
English ones, and a link. The text is never HTML: titles of bills and captions are written in as they are (after
Unicode normalisation, with control characters removed and lengths capped), so every channel must show them as text
— a push notification and an email's text part do so by nature, the Atom feed marks them ``type="text"``, a
webhook receiver gets them as JSON strings.

Links are paths (``/bills/42``, ``/watch/7?t=3723``) that the caller joins to the public base URL; "being debated
now" and "mentioned in a caption" link to the moment in the sitting's recording: ``/watch/{sitting}?t=<seconds>``.

How it is meant to be wired: the alert matcher (a subscriber to ``bill:<id>`` and the sittings' channels) builds an
``Alert`` with these functions when an event matches a follow; the outbox stores ``alert.as_dict()``; the push
worker sends ``alert.push_payload(base_url)``, the webhook worker ``alert.as_dict()`` as the event's ``data``, the
email worker ``title``/``body`` and the Atom feed ``atom.entry_from_alert``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import asdict, dataclass
from datetime import date

from archive.bill_stages import Stage, label
from archive.senate_clock import ClockEvent, ClockReading
from common.thai import normalize

TITLE_MAX = 120
BODY_MAX = 400
EXCERPT_RADIUS = 60
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_THAI_MONTHS = ("ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.", "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค.")


@dataclass(frozen=True)
class BillRef:
    """What an alert needs of a bill: its id, the short name people know it by, and its full title."""

    id: str
    short_name: str
    title: str = ""

    @property
    def subject(self) -> str:
        return f"bill:{self.id}"

    @property
    def url(self) -> str:
        return f"/bills/{self.id}"


@dataclass(frozen=True)
class Alert:
    kind: str  # bill.stage_changed, bill.vote, bill.debating, caption.mention, bill.clock
    subject: str  # the follow it concerns: bill:<id>, keyword:<text>, speaker:<id>
    title: str
    body: str
    title_en: str
    body_en: str
    url: str  # a path; see the module docstring

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def push_payload(self, base_url: str) -> bytes:
        """The JSON the service worker shows: title, body, absolute url, and ``tag`` (one notification per
        subject on the screen: a newer one replaces the older)."""
        data = {"title": self.title, "body": self.body, "url": base_url.rstrip("/") + self.url, "tag": self.subject}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def plain(text: str, limit: int) -> str:
    """``text`` normalised (NFC, no zero-width or control characters, single spaces), at most ``limit`` characters,
    cut with "…" where needed and never between a Thai consonant and its vowel or tone marks."""
    text = normalize(_CONTROL.sub(" ", text))
    if len(text) <= limit:
        return text
    cut = limit - 1
    while cut > 0 and unicodedata.category(text[cut]) == "Mn":
        cut -= 1  # the character at ``cut`` would open the rest: keep marks with their base
    return text[:cut].rstrip() + "…"


def thai_date(day: date) -> str:
    """``8 ก.ย. 2567``: day, abbreviated Thai month, Buddhist-era year."""
    return f"{day.day} {_THAI_MONTHS[day.month - 1]} {day.year + 543}"


def watch_link(sitting_id: str, offset_s: float) -> str:
    """The viewer at a moment of a sitting: ``/watch/{sitting}?t=<whole seconds>``."""
    return f"/watch/{sitting_id}?t={max(0, int(offset_s))}"


def _name(bill: BillRef) -> str:
    return plain(bill.short_name or bill.title, 80)


def stage_changed(bill: BillRef, from_stage: Stage | None, to_stage: Stage, on: date) -> Alert:
    """The bill moved to another stage on ``on``."""
    name = _name(bill)
    was_th = f" (เดิม: {label(from_stage)})" if from_stage is not None else ""
    was_en = f" (was: {label(from_stage, 'en')})" if from_stage is not None else ""
    return Alert(
        kind="bill.stage_changed",
        subject=bill.subject,
        title=plain(f"{name}: {label(to_stage)}", TITLE_MAX),
        body=plain(f"{name} เข้าสู่ขั้น {label(to_stage)} เมื่อ {thai_date(on)}{was_th}", BODY_MAX),
        title_en=plain(f"{name}: {label(to_stage, 'en')}", TITLE_MAX),
        body_en=plain(f"{name} moved to {label(to_stage, 'en')} on {on.isoformat()}{was_en}", BODY_MAX),
        url=bill.url,
    )


def vote_result(
    bill: BillRef,
    *,
    motion: str,
    yes: int,
    no: int,
    abstain: int,
    not_voting: int,
    passed: bool,
    sitting_id: str,
    offset_s: float,
) -> Alert:
    """How a vote on the bill went, with the counts, linked to the moment of the vote."""
    name = _name(bill)
    verdict_th, verdict_en = ("ผ่าน", "passed") if passed else ("ไม่ผ่าน", "failed")
    counts_th = f"เห็นด้วย {yes} ไม่เห็นด้วย {no} งดออกเสียง {abstain} ไม่ลงคะแนน {not_voting}"
    counts_en = f"yes {yes}, no {no}, abstain {abstain}, not voting {not_voting}"
    return Alert(
        kind="bill.vote",
        subject=bill.subject,
        title=plain(f"ลงมติ{verdict_th}: {name}", TITLE_MAX),
        body=plain(f"{motion} — {counts_th} ({verdict_th})", BODY_MAX),
        title_en=plain(f"Vote {verdict_en}: {name}", TITLE_MAX),
        body_en=plain(f"{motion} — {counts_en} ({verdict_en})", BODY_MAX),
        url=watch_link(sitting_id, offset_s),
    )


def debating_now(bill: BillRef, *, agenda_title: str, sitting_id: str, offset_s: float) -> Alert:
    """The bill came up on the live agenda: watch it now, from the moment it came up."""
    name = _name(bill)
    item = plain(agenda_title, 200)
    return Alert(
        kind="bill.debating",
        subject=bill.subject,
        title=plain(f"กำลังพิจารณาอยู่ขณะนี้: {name}", TITLE_MAX),
        body=plain(f"วาระ: {item} — รับชมสดได้ทันที", BODY_MAX),
        title_en=plain(f"Being debated now: {name}", TITLE_MAX),
        body_en=plain(f"Agenda item: {item} — watch live now", BODY_MAX),
        url=watch_link(sitting_id, offset_s),
    )


def excerpt(text: str, match: str, radius: int = EXCERPT_RADIUS) -> str:
    """The part of ``text`` around the first occurrence of ``match`` (case-insensitive), with "…" where cut."""
    text = plain(text, 10_000)
    at = text.casefold().find(normalize(match).casefold())
    if at < 0:
        return plain(text, 2 * radius)
    start, end = max(0, at - radius), min(len(text), at + len(match) + radius)
    return ("…" if start > 0 else "") + text[start:end].strip() + ("…" if end < len(text) else "")


def caption_mention(
    *, subject: str, matched: str, text: str, sitting_id: str, offset_s: float, speaker: str | None = None
) -> Alert:
    """A live final caption mentions the followed bill or keyword (``matched`` is the name or keyword found)."""
    what = plain(matched, 80)
    who_th = f"{plain(speaker, 80)}: " if speaker else ""
    quote = excerpt(text, matched)
    return Alert(
        kind="caption.mention",
        subject=subject,
        title=plain(f"มีการกล่าวถึง “{what}” ในการประชุม", TITLE_MAX),
        body=plain(f"{who_th}“{quote}”", BODY_MAX),
        title_en=plain(f"“{what}” mentioned in the sitting", TITLE_MAX),
        body_en=plain(f"{who_th}“{quote}”", BODY_MAX),
        url=watch_link(sitting_id, offset_s),
    )


def clock_line(reading: ClockReading, lang: str = "th") -> str:
    """The bill page's line: ``วันที่ 41 จาก 60 วันในสมัยประชุม · ถือว่าวุฒิสภาให้ความเห็นชอบ 8 ก.ย. 2567``."""
    deemed = reading.deemed_approved_on
    if lang == "en":
        line = f"day {reading.day} of {reading.limit} in session"
        return line + (f"; deemed approved on {deemed.isoformat()}" if deemed else "; deadline not yet known")
    line = f"วันที่ {reading.day} จาก {reading.limit} วันในสมัยประชุม"
    return line + (f" · ถือว่าวุฒิสภาให้ความเห็นชอบ {thai_date(deemed)}" if deemed else " · ยังไม่ทราบวันครบกำหนด")


def senate_clock(bill: BillRef, reading: ClockReading, event: ClockEvent) -> Alert:
    """The sec. 136 clock: 7 days in session left, or the time ran out and the Senate is deemed to approve."""
    name = _name(bill)
    if event is ClockEvent.SEVEN_DAYS_LEFT:
        title_th, title_en = f"วุฒิสภาเหลือเวลา 7 วัน: {name}", f"Senate has 7 days left: {name}"
        body_th = f"{clock_line(reading)} (รัฐธรรมนูญ มาตรา ๑๓๖)"
        body_en = f"{clock_line(reading, 'en')} (Constitution, sec. 136)"
    else:
        title_th, title_en = f"ครบกำหนดเวลาของวุฒิสภา: {name}", f"Senate deadline passed: {name}"
        body_th = "วุฒิสภาพิจารณาไม่เสร็จภายในกำหนด จึงถือว่าให้ความเห็นชอบ (รัฐธรรมนูญ มาตรา ๑๓๖ และ ๑๓๗)"
        body_en = "The Senate did not finish in time and is deemed to have approved the bill (sec. 136, 137)"
    return Alert(
        kind="bill.clock",
        subject=bill.subject,
        title=plain(title_th, TITLE_MAX),
        body=plain(body_th, BODY_MAX),
        title_en=plain(title_en, TITLE_MAX),
        body_en=plain(body_en, BODY_MAX),
        url=bill.url,
    )


def agenda_mention(*, subject: str, matched: str, agenda_title: str, sitting_id: str, offset_s: float) -> Alert:
    """An agenda item matching a followed keyword came up live: watch it from that moment."""
    what = plain(matched, 80)
    item = plain(agenda_title, 200)
    return Alert(
        kind="agenda.mention",
        subject=subject,
        title=plain(f"วาระที่ตรงกับ “{what}” กำลังพิจารณาอยู่ขณะนี้", TITLE_MAX),
        body=plain(f"วาระ: {item} — รับชมสดได้ทันที", BODY_MAX),
        title_en=plain(f"An agenda item matching “{what}” is being debated now", TITLE_MAX),
        body_en=plain(f"Agenda item: {item} — watch live now", BODY_MAX),
        url=watch_link(sitting_id, offset_s),
    )


def speaker_speaking(*, speaker_id: str, speaker: str, text: str, sitting_id: str, offset_s: float) -> Alert:
    """A followed speaker is speaking in a live sitting (the first words of the caption quoted)."""
    who = plain(speaker or speaker_id, 80)
    quote = plain(text, 2 * EXCERPT_RADIUS)
    return Alert(
        kind="speaker.speaking",
        subject=f"speaker:{speaker_id}",
        title=plain(f"{who} กำลังอภิปราย", TITLE_MAX),
        body=plain(f"“{quote}”", BODY_MAX),
        title_en=plain(f"{who} is speaking", TITLE_MAX),
        body_en=plain(f"“{quote}”", BODY_MAX),
        url=watch_link(sitting_id, offset_s),
    )


def sitting_started(*, chamber: str, title: str, sitting_id: str) -> Alert:
    """A sitting of a followed chamber has started: watch it live."""
    name = plain(title, 200)
    return Alert(
        kind="sitting.started",
        subject=f"sittings:{chamber}",
        title=plain(f"เริ่มการประชุมแล้ว: {name}", TITLE_MAX),
        body=plain(f"{name} — รับชมสดได้ทันที", BODY_MAX),
        title_en=plain(f"Sitting started: {name}", TITLE_MAX),
        body_en=plain(f"{name} — watch live now", BODY_MAX),
        url=watch_link(sitting_id, 0),
    )
