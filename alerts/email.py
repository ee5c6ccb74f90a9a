"""Alerts by email through SMTP (``SMTP_URL``) with ``aiosmtplib``: the confirmation message, one alert, a digest.

``SMTP_URL`` is ``smtp://[user:password@]host[:port]`` (STARTTLS when the server offers it), ``smtps://…`` (TLS from
the start, port 465 by default) or ``smtp+plain://host:port`` (no TLS at all: a relay on the same host, tests).
``SMTP_FROM`` is the sender address.

Messages are plain text (``text/plain; charset=utf-8``; alert texts are never HTML) and every alert or digest carries
an unsubscribe link, in the body and as ``List-Unsubscribe`` with ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``
(RFC 8058), so a mail client's own button works. Building is sans-I/O; ``send`` is the thin driver and maps SMTP's
answer to ``alerts.schedule``: accepted → delivered; the recipient refused with a 5xx → ``gone`` (the address is
disabled); anything else (4xx, no connection, timeout) → retried.

How it is meant to be wired: ``server.py`` reads ``SmtpConfig.from_url(os.environ["SMTP_URL"], sender=...)`` when
``SMTP_URL`` is set and passes it to ``alerts.delivery.DeliveryWorkers``; without it email follows are refused with
a 422 naming ``channel.type``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aiosmtplib

from alerts.messages import Alert
from alerts.schedule import AttemptResult, Outcome

DEFAULT_TIMEOUT_S = 10.0
# The default policy folds at 78 characters and RFC 2047-encodes a long header with no spaces (an unsubscribe URL),
# which mail clients then cannot use; RFC 5322 allows 998.
_POLICY = policy.SMTPUTF8.clone(max_line_length=998)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    use_tls: bool = False  # TLS from the start (smtps)
    start_tls: bool | None = None  # None: when the server offers it; False: never (smtp+plain)
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str, *, sender: str) -> SmtpConfig:
        """Parse ``SMTP_URL`` (module docstring); ``ValueError`` naming what is wrong."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps", "smtp+plain") or not parts.hostname:
            raise ValueError("SMTP_URL must be smtp://host[:port], smtps://host[:port] or smtp+plain://host:port")
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if tls else 25),
            sender=sender,
            use_tls=tls,
            start_tls=False if parts.scheme == "smtp+plain" or tls else None,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def _message(config: SmtpConfig, to: str, subject: str, text: str, unsubscribe_url: str | None) -> EmailMessage:
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = config.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=config.sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"
    if unsubscribe_url is not None:
        msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        text += f"\n\n--\nเลิกติดตาม / Unsubscribe: {unsubscribe_url}\n"
    msg.set_content(text, charset="utf-8")
    return msg


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/api/follows/unsubscribe?token={quote(token, safe='')}"


def confirmation(config: SmtpConfig, to: str, *, base_url: str, token: str, target: dict[str, Any]) -> EmailMessage:
    """The double opt-in message: the only thing sent to an address before its owner confirms."""
    link = f"{base_url.rstrip('/')}/api/follows/confirm?token={quote(token, safe='')}"
    what = f"{target.get('kind')}: {target.get('value')}"
    text = (
        f"มีผู้ขอให้ส่งการแจ้งเตือนเรื่อง “{what}” มาที่อีเมลนี้\n"
        f"หากเป็นคุณ กรุณายืนยันที่ลิงก์นี้ภายใน 48 ชั่วโมง: {link}\n"
        "หากไม่ใช่ ไม่ต้องทำอะไร จะไม่มีอีเมลใดส่งมาอีก\n\n"
        f"Someone asked for alerts about “{what}” at this address. If it was you, confirm within 48 hours: {link}\n"
        "If not, ignore this message: nothing more will be sent.\n"
    )
    return _message(config, to, "ยืนยันการติดตาม / Confirm your alert", text, None)


def alert_message(config: SmtpConfig, to: str, alert: Alert, *, base_url: str, unsubscribe: str) -> EmailMessage:
    link = base_url.rstrip("/") + alert.url
    text = f"{alert.title}\n{alert.body}\n\n{alert.title_en}\n{alert.body_en}\n\n{link}"
    return _message(config, to, alert.title, text, unsubscribe)


def digest_message(
    config: SmtpConfig, to: str, alerts: Sequence[Alert], *, base_url: str, unsubscribe: str
) -> EmailMessage:
    """One message with a day's alerts, oldest first."""
    parts = [f"• {a.title}\n  {a.body}\n  {a.title_en}\n  {base_url.rstrip('/') + a.url}" for a in alerts]
    text = "สรุปการแจ้งเตือนประจำวัน / Daily digest\n\n" + "\n\n".join(parts)
    return _message(config, to, f"สรุปการแจ้งเตือน {len(alerts)} รายการ / {len(alerts)} alerts", text, unsubscribe)


async def send(
    config: SmtpConfig, message: EmailMessage, *, timeout: float = DEFAULT_TIMEOUT_S
) -> tuple[Outcome, AttemptResult]:
    """Send one message; never raises for the server's faults (module docstring)."""
    try:
        # Flattened here: aiosmtplib would re-flatten with its own 78-character policy (see ``_POLICY``).
        await aiosmtplib.send(
            message.as_bytes(policy=_POLICY),
            sender=config.sender,
            recipients=[str(message["To"])],
            hostname=config.host,
            port=config.port,
            use_tls=config.use_tls,
            start_tls=config.start_tls,
            username=config.username,
            password=config.password,
            timeout=timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        outcome = Outcome.GONE if codes and all(c >= 500 for c in codes) else Outcome.RETRY
        return outcome, AttemptResult(codes[0] if codes else None, error=str(exc)[:200])
    except aiosmtplib.SMTPResponseException as exc:
        return Outcome.RETRY, AttemptResult(exc.code, error=exc.message[:200])
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return Outcome.RETRY, AttemptResult(None, error=f"{type(exc).__name__}: {exc}"[:200])
    return Outcome.DELIVERED, AttemptResult(250)
