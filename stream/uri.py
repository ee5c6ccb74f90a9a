"""What kind of input a source URI names, and how to show it without leaking credentials."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# A scheme followed by "//": FFmpeg's own local pseudo-protocols ("pipe:", "concat:", "data:") have no "//",
# and a one-letter scheme is a Windows drive ("C://x" is a path), not a protocol.
_NETWORK_URI = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+)://")
_LOCAL_SCHEMES = frozenset({"file"})


def uri_scheme(uri: str) -> str | None:
    """The lower-cased URL scheme of a network URI (``"rtsp"``, ``"https"``), or ``None`` for local input."""
    match = _NETWORK_URI.match(uri)
    if match is None:
        return None
    scheme = match["scheme"].lower()
    return None if scheme in _LOCAL_SCHEMES else scheme


def is_network_uri(uri: str) -> bool:
    """True when ``uri`` is read over the network (HTTP, HLS, RTSP, RTMP, SRT, ...), false for local files."""
    return uri_scheme(uri) is not None


def redact_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***``, safe for error messages, logs and status events."""
    if not is_network_uri(uri):
        return uri
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))
