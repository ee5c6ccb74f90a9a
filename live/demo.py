"""The demo sitting that ``make run`` starts: bundled Thai speech played as live, plus a scripted operator.

The script stands in for the operator console: it moves the agenda on, changes speaker and records a vote, so a
new user sees every kind of event on ``/watch/demo`` within seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from archive.recorder import Recorder
from archive.store import Conflict

log = logging.getLogger(__name__)

DEMO_SITTING_ID = "demo"
DEMO_TITLE = "การประชุมวุฒิสภา (ตัวอย่างการถ่ายทอดสด)"

# Titles in the style of real Senate agenda items; the Acts they amend are public-domain Thai law titles.
_AGENDA = (
    (
        "ร่างพระราชบัญญัติประกอบรัฐธรรมนูญว่าด้วยการได้มาซึ่งสมาชิกวุฒิสภา (ฉบับที่ ..) พ.ศ. .... ซึ่งสภาผู้แทนราษฎรลงมติเห็นชอบแล้ว",
        "demo-bill-senators",
    ),
    ("ร่างพระราชบัญญัติคำสั่งเรียกของคณะกรรมาธิการของสภาผู้แทนราษฎรและวุฒิสภา (ฉบับที่ ..) พ.ศ. ....", "demo-bill-summons"),
)
_SPEAKERS = (("ประธานวุฒิสภา", "ประธานที่ประชุม"), ("สมาชิกวุฒิสภา ผู้อภิปราย", "สมาชิกวุฒิสภา"))


async def prepare_demo_sitting(recorder: Recorder) -> str:
    """Create the demo sitting unless it exists (a restarted demo goes on where it was)."""
    try:
        await recorder.create_sitting(DEMO_SITTING_ID, DEMO_TITLE, "senate")
    except Conflict:
        pass
    return DEMO_SITTING_ID


async def run_demo_script(recorder: Recorder, sitting_id: str = DEMO_SITTING_ID, step_s: float = 8.0) -> None:
    """Loop through agenda items, speakers and votes forever, one step every ``step_s`` seconds."""
    for n in itertools.count():
        title, bill_id = _AGENDA[n % len(_AGENDA)]
        await recorder.set_agenda_item(sitting_id, title, bill_id)
        await recorder.set_speaker(sitting_id, *_SPEAKERS[0])
        await asyncio.sleep(step_s)
        await recorder.set_speaker(sitting_id, *_SPEAKERS[1])
        await asyncio.sleep(step_s)
        yes = 150 + (n * 7) % 40
        await recorder.record_vote(
            sitting_id, "รับหลักการแห่งร่างพระราชบัญญัติ", yes, 200 - yes - 20, 12, 8, "passed", bill_id
        )
        await asyncio.sleep(step_s)
