"""Which URLs the server may send alerts to: the guard against server-side request forgery.

A webhook URL, and a push subscription's endpoint, come from anyone on the internet; the server then POSTs to them
from inside the Senate's network. So a URL is refused unless it is ``http``/``https`` with a host name and no
credentials, and every address its host resolves to is a global unicast address — not loopback, private (RFC 1918,
unique-local), link-local (which includes cloud metadata at 169.254.169.254), shared (100.64/10), multicast,
unspecified or reserved. Every resolved address is checked, not only the first, because the HTTP client may connect
to any of them.

``allow_private`` (the ``WEBHOOK_ALLOW_PRIVATE`` setting) lifts the address check for tests on loopback and for
intranet deployments whose receivers are on private addresses; the scheme and credentials checks remain.

The check runs when a follow is created (a 4xx naming ``url``) and again before each delivery, so a name that has
since been pointed at an internal address is caught then. A name that changes between that check and the client's
own lookup (DNS rebinding within seconds) is the remaining gap; deliveries never follow redirects, so a public
receiver cannot bounce the request inward.

How it is meant to be wired: the follow API calls ``await check_url(url, allow_private=settings.webhook_allow_private)``
and answers ``json_error(422, str(err), field=err.field)`` on ``UrlRefused``; the delivery worker calls it again
before each POST and treats a refusal as a permanent failure of that endpoint.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import SplitResult, urlsplit

MAX_URL_LENGTH = 2048
# What str.isspace() calls a space (re's \s is the same set, Py_UNICODE_ISSPACE) and C0 controls: one regex search,
# not a Python loop per character (checked again before each delivery).
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f]")
ENV_ALLOW_PRIVATE = "WEBHOOK_ALLOW_PRIVATE"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


class UrlRefused(ValueError):
    """The URL may not be used; ``field`` is the request field it came from, the message says why."""

    def __init__(self, message: str, field: str = "url") -> None:
        super().__init__(message)
        self.field = field


class HostUnresolved(UrlRefused):
    """The host did not resolve (no answer, or none now): possibly a passing DNS failure. The follow API refuses it
    like any ``UrlRefused``; a sender retries later rather than dropping the endpoint."""


def allow_private_from_env(environ: dict[str, str] | None = None) -> bool:
    """``WEBHOOK_ALLOW_PRIVATE`` read as a boolean (1, true, yes, on); unset or anything else is False."""
    value = (environ if environ is not None else os.environ).get(ENV_ALLOW_PRIVATE, "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


def parse_url(url: object, *, field: str = "url", schemes: tuple[str, ...] = ("http", "https")) -> SplitResult:
    """The URL split, or ``UrlRefused``: a string of at most 2048 characters, an allowed scheme, a host, no
    user or password, a valid port. Sans-I/O: resolves nothing."""
    if not isinstance(url, str) or not url:
        raise UrlRefused(f"{field} must be a non-empty string", field)
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"{field} must be at most {MAX_URL_LENGTH} characters", field)
    if _SPACE_OR_CONTROL.search(url):
        raise UrlRefused(f"{field} must not contain spaces or control characters", field)
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise UrlRefused(f"{field} must be an {' or '.join(schemes)} URL", field)
    if parts.username is not None or parts.password is not None:
        # Credentials in a URL end up in logs and in the follow's listing; receivers authenticate by signature.
        raise UrlRefused(f"{field} must not carry a user name or password", field)
    if not parts.hostname:
        raise UrlRefused(f"{field} has no host", field)
    try:
        _ = parts.port  # urlsplit validates the port only when it is read
    except ValueError:
        raise UrlRefused(f"{field} has an invalid port", field) from None
    return parts


def refusal_reason(address: IPAddress) -> str | None:
    """Why alerts may not go to ``address`` (e.g. ``"loopback"``), or None for a global unicast address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    for reason, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return reason
    # Shared address space (100.64/10), documentation ranges, 6to4 relays and the like: not reachable publicly.
    return None if address.is_global else "not globally routable"


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, through the event loop's resolver (a thread, never blocking the loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


async def check_url(
    url: object,
    *,
    allow_private: bool = False,
    field: str = "url",
    schemes: tuple[str, ...] = ("http", "https"),
    resolver: Resolver = resolve,
) -> SplitResult:
    """The URL split if alerts may go to it; ``UrlRefused`` naming ``field`` otherwise (see the module docstring)."""
    parts = parse_url(url, field=field, schemes=schemes)
    if allow_private:
        return parts
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses: list[str] = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = await resolver(host, port)
        except OSError:
            raise HostUnresolved(f"{field}: the host {host!r} does not resolve", field) from None
        except UnicodeError:  # not a valid host name at all: no later lookup will do better
            raise UrlRefused(f"{field}: the host {host!r} does not resolve", field) from None
    if not addresses:
        raise HostUnresolved(f"{field}: the host {host!r} does not resolve", field)
    for text in addresses:
        reason = refusal_reason(ipaddress.ip_address(text.split("%", 1)[0]))
        if reason is not None:
            raise UrlRefused(f"{field}: {host} is a {reason} address ({text}); alerts go only to public hosts", field)
    return parts
