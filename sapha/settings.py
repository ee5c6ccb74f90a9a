"""Settings: every knob the server reads from the environment, in one frozen dataclass, grouped by concern.

The README's configuration table lists each variable ``from_env`` reads (tests/test_docs.py checks it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from alerts.delivery import sender_procs_from_env
from alerts.url_policy import allow_private_from_env
from common.cors import parse_origins

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "static"


@dataclass(frozen=True)
class Settings:
    """What the server is told by its environment (``from_env``); tests build one with keyword arguments."""

    # -- serving -----------------------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    # PUBLIC_URL: what alert links and feeds are made of (base_url()).
    public_url: str = ""
    operator_token: str = ""
    cors_origins: tuple[str, ...] = ("*",)
    max_connections_per_ip: int = 50
    # -- event bus (broadcast/) --------------------------------------------------------------------------------
    redis_url: str | None = None
    redis_prefix: str = "sapha"
    redis_socket_timeout: float = 3.0
    redis_connect_timeout: float = 3.0
    # About half an hour of a busy caption feed (~75 events a minute); a phone away longer reloads the transcript
    # (`recovered: false`), which is one request instead of thousands of replayed partials.
    history_size: int = 2_000
    ws_outbox: int = 1000
    ws_ping_interval: float = 20.0
    # -- archive (archive/) ------------------------------------------------------------------------------------
    database_url: str = "sqlite:///var/sapha.db"
    # The constitutions and Acts loaded at start-up into an empty collection; "" loads nothing.
    documents_data: str = str(ROOT.parent / "shared" / "data" / "text")
    # -- live video and captions (live/, stream/, transcribe/) -------------------------------------------------
    whisper_language: str = "th"
    hls_dir: str = "var/hls"
    whep_max_viewers: int = 8
    whep_max_viewers_per_ip: int = 2
    whep_cors_origins: tuple[str, ...] = ("*",)
    whip_cors_origins: tuple[str, ...] = ()
    # -- staff desk: accounts, messages, news (desk/) ----------------------------------------------------------
    staff_db: str = ""
    session_lifetime: float = 12 * 3600.0
    session_idle: float = 30 * 60.0
    desk_contact_keys: str = ""
    messages_retention_days: int = 365
    attachments_dir: str = ""
    # -- alerts: follows, push, email, webhooks (alerts/) ------------------------------------------------------
    alerts_db: str = ""
    alert_workers: bool = True
    alert_sender_nice: int = 0
    alert_sender_idle: bool = False
    alert_sender_procs: int = 1
    smtp_url: str = ""
    smtp_from: str = "sapha@localhost"
    webhook_allow_private: bool = False
    vapid_key_file: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            host=env.get("HOST", cls.host),
            port=int(env.get("PORT", cls.port)),
            log_level=env.get("LOG_LEVEL", cls.log_level),
            public_url=env.get("PUBLIC_URL", ""),
            operator_token=env.get("OPERATOR_TOKEN", ""),
            cors_origins=tuple(sorted(parse_origins(env.get("CORS_ORIGINS", "*")))),
            max_connections_per_ip=int(env.get("MAX_CONNECTIONS_PER_IP", cls.max_connections_per_ip)),
            redis_url=env.get("REDIS_URL") or None,
            redis_prefix=env.get("REDIS_PREFIX", cls.redis_prefix),
            redis_socket_timeout=float(env.get("REDIS_SOCKET_TIMEOUT", cls.redis_socket_timeout)),
            redis_connect_timeout=float(env.get("REDIS_CONNECT_TIMEOUT", cls.redis_connect_timeout)),
            history_size=int(env.get("HISTORY_SIZE", cls.history_size)),
            ws_outbox=int(env.get("WS_OUTBOX", cls.ws_outbox)),
            ws_ping_interval=float(env.get("WS_PING_INTERVAL", cls.ws_ping_interval)),
            database_url=env.get("DATABASE_URL", cls.database_url),
            documents_data=env.get("DOCUMENTS_DATA", cls.documents_data),
            whisper_language=env.get("WHISPER_LANGUAGE", cls.whisper_language),
            hls_dir=env.get("HLS_DIR", cls.hls_dir),
            whep_max_viewers=int(env.get("WHEP_MAX_VIEWERS", cls.whep_max_viewers)),
            whep_max_viewers_per_ip=int(env.get("WHEP_MAX_VIEWERS_PER_IP", cls.whep_max_viewers_per_ip)),
            whep_cors_origins=tuple(sorted(parse_origins(env.get("WHEP_CORS_ORIGINS", "*")))),
            whip_cors_origins=tuple(sorted(parse_origins(env.get("WHIP_CORS_ORIGINS", "")))),
            staff_db=env.get("STAFF_DB", cls.staff_db),
            session_lifetime=float(env.get("SESSION_LIFETIME", cls.session_lifetime)),
            session_idle=float(env.get("SESSION_IDLE", cls.session_idle)),
            desk_contact_keys=env.get("DESK_CONTACT_KEYS", ""),
            messages_retention_days=int(env.get("MESSAGES_RETENTION_DAYS", cls.messages_retention_days)),
            attachments_dir=env.get("ATTACHMENTS_DIR", ""),
            alerts_db=env.get("ALERTS_DB", ""),
            alert_workers=_flag(env.get("ALERT_WORKERS"), default=True),
            alert_sender_nice=int(env.get("ALERT_SENDER_NICE", "0")),
            alert_sender_idle=_flag(env.get("ALERT_SENDER_IDLE"), default=False),
            alert_sender_procs=sender_procs_from_env(env),
            smtp_url=env.get("SMTP_URL", ""),
            smtp_from=env.get("SMTP_FROM", cls.smtp_from),
            webhook_allow_private=allow_private_from_env(dict(env)),
            vapid_key_file=env.get("VAPID_KEY_FILE", ""),
        )

    def staff_db_path(self) -> Path:
        """Where staff accounts live: ``STAFF_DB``, else the archive's SQLite file, else ``var/staff.db``."""
        if self.staff_db:
            return Path(self.staff_db)
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///"))
        return Path("var/staff.db")

    def attachments_path(self) -> Path:
        """``ATTACHMENTS_DIR``, else ``attachments/`` beside the staff database (``var/attachments``)."""
        return Path(self.attachments_dir) if self.attachments_dir else self.staff_db_path().parent / "attachments"

    def news_files_path(self) -> Path:
        """News attachments: ``news-files/`` beside the staff database."""
        return self.staff_db_path().parent / "news-files"

    def alerts_db_path(self) -> Path:
        """``ALERTS_DB``, else ``alerts.sqlite3`` beside the staff database (``var/alerts.sqlite3``)."""
        return Path(self.alerts_db) if self.alerts_db else self.staff_db_path().parent / "alerts.sqlite3"

    def vapid_key_path(self) -> Path:
        """``VAPID_KEY_FILE``, else ``vapid_private.pem`` beside the alerts database."""
        return Path(self.vapid_key_file) if self.vapid_key_file else self.alerts_db_path().parent / "vapid_private.pem"

    def base_url(self) -> str:
        """``PUBLIC_URL``, else this server's own address: what alert links and feeds are made of."""
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"

    def contact_keys_path(self) -> Path:
        """Where the contact-data key is generated when ``DESK_CONTACT_KEYS`` is unset: beside the staff database."""
        return self.staff_db_path().parent / "desk_contact_keys"


def _flag(raw: str | None, *, default: bool) -> bool:
    """An on/off setting: ``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off`` (any case); unset or
    anything else is ``default``."""
    value = (raw or "").strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    return default
