"""Status notices to the public's senders: the worker that drains ``desk_message_notices`` by email and Web Push.

A moderator's status change only writes notice rows, in the change's own transaction (desk/messages_sqlite.py):
the request never waits on a mail server or a push service. This worker, one per process beside the alerts'
delivery workers (sapha/services.py), leases due rows (``MessageStore.claim_notices``: two processes never send
the same row at once, and a process that dies mid-send leaves its rows to the next lease), sends each, and records
the answer:

* email (``SMTP_URL``; ``alerts.email.send``): accepted → ``sent_at``; the recipient refused with a 5xx → failed,
  never retried; anything else → retried;
* push (``alerts.push``: encrypted for the subscription's keys, signed with the deployment's VAPID key, through
  the URL policy again): 2xx → ``sent_at``; 404/410, or a host that now resolves to an address the policy refuses
  → the subscription is deleted (RFC 8030 sec. 7.3) with its pending notices; anything else → retried, a host that
  does not resolve at all included (a DNS outage must not cost senders their subscriptions).

Retries follow ``alerts.schedule`` (5 s, 5 min, 30 min, 2 h … jittered, ``Retry-After`` honoured, eight attempts),
then the notice is marked failed. An attempt is counted when it is claimed, so a notice whose results cannot be
recorded (its lease runs out each time) still ends failed after the eighth claim rather than going round forever.
Without ``SMTP_URL`` email notices wait (retried on the schedule) rather than being dropped: configuring SMTP later
sends what is still within the schedule.

What a notice says: Thai first, then English; the new status and the status page's link, and nothing else of the
message (not its subject or text, not the answer: the status page shows those to whoever holds the code). The
email names the tracking code too (the mailbox is the sender's); when the kept code cannot be opened, it goes
without it, pointing to /write, where the sender enters their code. The push payload is the service worker's
``{title, body, url, tag}`` (static/sw.js): its visible title and body never name the code — a lock screen shows
them to anyone nearby, and the code opens, exports and erases the message — only the ``url`` the click opens does.

``check_subscription`` validates a subscription the sender's status page posts (``POST /api/messages/{code}/push``)
exactly as the alerts' follow API does (``alerts.push.parse_subscription`` and ``alerts.url_policy.check_url``),
raising ``desk.messages.InvalidMessage`` naming the field; ``desk/messages_api.py`` is given it at wiring, since
desk may not import alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid

import httpx
from py_vapid import Vapid02

from alerts import email, push
from alerts.schedule import MAX_ATTEMPTS, AttemptResult, DeliveryState, Outcome, after_outcome, classify
from alerts.url_policy import HostUnresolved, Resolver, UrlRefused, check_url, resolve
from desk.messages import InvalidMessage
from desk.messages_sqlite import MessageStore, Notice, PushTarget

log = logging.getLogger(__name__)

STATUS_TH = {
    "received": "ได้รับแล้ว",
    "in_review": "กำลังพิจารณา",
    "forwarded": "ส่งต่อคณะกรรมาธิการแล้ว",
    "answered": "ตอบแล้ว",
    "closed": "ปิดเรื่องแล้ว",
    "spam": "ไม่รับพิจารณา",
}
STATUS_EN = {
    "received": "received",
    "in_review": "in review",
    "forwarded": "forwarded to a committee",
    "answered": "answered",
    "closed": "closed",
    "spam": "not accepted",
}
DEFAULT_TIMEOUT_S = 10.0
POLL_S = 30.0
BATCH = 50
PUSH_TTL_S = 7 * 24 * 3600  # a status change is worth telling a phone that was off for a week
_POLICY = policy.SMTPUTF8.clone(max_line_length=998)


def status_url(base_url: str, code: str | None) -> str:
    """The sender's status page, or the form's page when the code was not kept (a message from before)."""
    return f"{base_url.rstrip('/')}/write/status/{code}" if code else f"{base_url.rstrip('/')}/write"


def notice_email(config: email.SmtpConfig, notice: Notice, *, base_url: str) -> EmailMessage:
    """The plain-text message for an email notice (sans-I/O)."""
    assert notice.email is not None
    th, en = STATUS_TH.get(notice.status, notice.status), STATUS_EN.get(notice.status, notice.status)
    link = status_url(base_url, notice.code)
    code_th = f"รหัสติดตาม: {notice.code}\n" if notice.code else ""
    code_en = f"Tracking code: {notice.code}\n" if notice.code else ""
    # Without the code (not kept, or no longer opening) the link is the form's page, where the code is entered.
    see_th = "ดูรายละเอียดได้ที่" if notice.code else "ดูรายละเอียดด้วยรหัสติดตามของคุณได้ที่"
    see_en = "Details" if notice.code else "Details, with your tracking code"
    text = (
        "ข้อความที่คุณส่งถึงวุฒิสภามีความคืบหน้า\n"
        f"{code_th}สถานะใหม่: {th}\n"
        f"{see_th}: {link}\n\n"
        "Your message to the Senate has a new status.\n"
        f"{code_en}New status: {en}\n"
        f"{see_en}: {link}\n\n"
        "--\nอีเมลนี้ส่งอัตโนมัติเพราะคุณให้อีเมลไว้เมื่อส่งข้อความ ลบข้อความและข้อมูลของคุณได้ที่หน้าสถานะ\n"
        "Sent because you gave this address with your message; you can erase it on the status page.\n"
    )
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = config.sender
    msg["To"] = notice.email
    msg["Subject"] = f"สถานะข้อความของคุณ: {th} / Your message: {en}"
    msg["Message-ID"] = make_msgid(domain=config.sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text, charset="utf-8")
    return msg


def notice_payload(notice: Notice) -> bytes:
    """The push message for the service worker (static/sw.js): a relative link, same-origin by construction. The
    title and body show on a lock screen, so they never name the tracking code; only the link the click opens does."""
    th = STATUS_TH.get(notice.status, notice.status)
    data = {
        "title": "สถานะข้อความของคุณเปลี่ยนแล้ว",
        "body": f"สถานะใหม่: {th}",
        "url": f"/write/status/{notice.code}" if notice.code else "/write",
        # One notification per message on the screen: a newer status replaces the older one.
        "tag": f"message-{push.topic_for('message:' + notice.message_id)[:12]}",
    }
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


async def check_subscription(value: object, *, allow_private: bool = False, resolver: Resolver = resolve) -> PushTarget:
    """A subscription from the status page, checked as the follow API checks one; ``InvalidMessage`` naming the
    field (``subscription.keys.p256dh``…) otherwise."""
    try:
        sub = push.parse_subscription(value, allow_http=allow_private)
    except push.SubscriptionError as exc:
        field = "subscription" + ("" if exc.field == "subscription" else f".{exc.field}")
        raise InvalidMessage({field: str(exc)}) from None
    try:
        schemes = ("https", "http") if allow_private else ("https",)
        await check_url(
            sub.endpoint,
            allow_private=allow_private,
            field="subscription.endpoint",
            schemes=schemes,
            resolver=resolver,
        )
    except UrlRefused as exc:
        raise InvalidMessage({exc.field: str(exc)}) from None
    return PushTarget(sub.endpoint, sub.p256dh, sub.auth)


class NoticeWorker:
    """One process's sender of status notices (module docstring). ``clock`` and ``rng`` are injectable for tests."""

    def __init__(
        self,
        messages: MessageStore,
        *,
        base_url: str,
        smtp: email.SmtpConfig | None,
        vapid: Vapid02 | None,
        vapid_subject: str = "mailto:webmaster@localhost",
        allow_private: bool = False,
        resolver: Resolver = resolve,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        poll_s: float = POLL_S,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.messages = messages
        self.base_url = base_url.rstrip("/")
        self.smtp = smtp
        self.vapid = vapid
        self.vapid_subject = vapid_subject
        self.allow_private = allow_private
        self.resolver = resolver
        self.timeout_s = timeout_s
        # One attempt is cut off at ``attempt_s`` whatever it waits on (the resolver has no timeout of its own, and
        # an SMTP exchange is several steps of ``timeout_s`` each); the lease outlasts it and the recording, so a
        # slow send is never claimed by another process while it is still under way.
        self.attempt_s = timeout_s + 20
        self.lease_s = 2 * timeout_s + 30
        self.poll_s = poll_s
        self.clock = clock
        self.rng = rng or random.Random()
        self.sent = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def wake(self) -> None:
        """Look for due notices now (a moderator just changed a status)."""
        self._wake.set()

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.timeout_s)
        self._task = asyncio.create_task(self._run(), name="message-notices")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while True:
            # Cleared before looking, never after: a wake-up that comes while this pass sends is kept for the next.
            self._wake.clear()
            try:
                while await self.run_once() == BATCH:
                    pass
                due = await asyncio.to_thread(self.messages.next_notice_s)
            except Exception:
                log.exception("sending message notices failed; trying again in %s s", self.poll_s)
                due = None
            wait = self.poll_s if due is None else min(self.poll_s, max(0.05, due - self.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def run_once(self) -> int:
        """Claim and send the notices due now; how many were claimed."""
        claimed = await asyncio.to_thread(
            self.messages.claim_notices, lease_s=self.lease_s, limit=BATCH, max_attempts=MAX_ATTEMPTS
        )
        if claimed:
            await asyncio.gather(*(self._deliver(n) for n in claimed))
        return len(claimed)

    async def _deliver(self, notice: Notice) -> None:
        try:
            async with asyncio.timeout(self.attempt_s):
                if notice.channel == "email":
                    outcome, result = await self._email(notice)
                else:
                    outcome, result = await self._push(notice)
        except TimeoutError:
            outcome, result = Outcome.RETRY, AttemptResult(None, error=f"no answer within {self.attempt_s:g} s")
        except Exception as exc:  # a bug in one notice must not stop the others
            log.exception("message notice %s failed", notice.id)
            outcome, result = Outcome.RETRY, AttemptResult(None, error=f"{type(exc).__name__}: {exc}"[:200])
        self.sent += 1
        if outcome is Outcome.DELIVERED:
            await asyncio.to_thread(self.messages.notice_sent, notice.id)
            return
        if outcome is Outcome.GONE and notice.push_id is not None:
            await asyncio.to_thread(self.messages.remove_push, notice.push_id)
            return
        error = f"{result.status} {result.error or ''}".strip() if result.status is not None else result.error
        if error and notice.email:
            # A refusing mail server echoes the address (aiosmtplib's SMTPRecipientsRefused names it): the contact
            # is kept only sealed, so it must not land in plain text in ``last_error``.
            error = re.sub(re.escape(notice.email), "<recipient>", error, flags=re.IGNORECASE)
        now = self.clock()
        state = after_outcome(DeliveryState(notice.attempts, None), outcome, result.retry_after, now=now, rng=self.rng)
        if state.next_at is None:
            await asyncio.to_thread(self.messages.notice_failed, notice.id, attempts=state.attempts, error=error)
        else:
            await asyncio.to_thread(
                self.messages.notice_retry, notice.id, attempts=state.attempts, next_s=state.next_at, error=error
            )

    async def _email(self, notice: Notice) -> tuple[Outcome, AttemptResult]:
        if self.smtp is None:
            return Outcome.RETRY, AttemptResult(None, error="SMTP_URL is not set")
        message = notice_email(self.smtp, notice, base_url=self.base_url)
        return await email.send(self.smtp, message, timeout=self.timeout_s)

    async def _push(self, notice: Notice) -> tuple[Outcome, AttemptResult]:
        assert notice.push is not None and self._client is not None
        if self.vapid is None:
            return Outcome.RETRY, AttemptResult(None, error="no VAPID key configured")
        schemes = ("https", "http") if self.allow_private else ("https",)
        try:
            await check_url(
                notice.push.endpoint, allow_private=self.allow_private, schemes=schemes, resolver=self.resolver
            )
        except HostUnresolved as exc:
            return Outcome.RETRY, AttemptResult(None, error=str(exc))
        except UrlRefused as exc:
            return Outcome.GONE, AttemptResult(None, error=f"refused: {exc}")
        sub = push.PushSubscription(notice.push.endpoint, notice.push.p256dh, notice.push.auth)
        request = await asyncio.to_thread(
            push.build_push,
            sub,
            notice_payload(notice),
            vapid=self.vapid,
            subject=self.vapid_subject,
            now=self.clock(),
            ttl=PUSH_TTL_S,
            urgency="normal",
            topic=push.topic_for(f"message:{notice.message_id}"),
        )
        result = await push.send(self._client, request, timeout=self.timeout_s)
        return classify(result.status, gone=push.PUSH_GONE), result
