"""What kind of input a source URI names, and how to show it without leaking credentials."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

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


def redact_url(uri: str) -> str:
    """How a source URI is shown (logs, ``/healthz``, status events, errors): its scheme and host only.

    ``rtsp://user:pass@cam.example:554/live?token=abc`` becomes ``rtsp://cam.example:554``: besides passwords,
    stream keys and access tokens live in paths and query strings, and an operator needs no more than the host
    to tell which feed is meant. Local paths are the operator's own and are shown as they are.
    """
    scheme = uri_scheme(uri)
    if scheme is None:
        return uri
    rest = uri.split("://", 1)[1]
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    hostport = netloc.rpartition("@")[2]
    try:
        parts = urlsplit(f"//{hostport}")
        host, port = parts.hostname or "", parts.port
    except ValueError:  # a malformed port or bracket: keep the host, drop what cannot be parsed
        host, port = hostport.split(":", 1)[0].strip("[]"), None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


# A URL inside free text (an FFmpeg message, an exception): runs to the next space or quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://[^\s'\"<>]+")


def redact_urls(text: str) -> str:
    """``text`` with every URL in it shown as ``redact_url`` shows it (for messages that quote a URL)."""

    def shown(match: re.Match[str]) -> str:
        # Punctuation closing the sentence ("... rtsp://host:554: refused") is the message's, not the URL's.
        url = match.group(0).rstrip(".,;:)]")
        return redact_url(url) + match.group(0)[len(url) :]

    return _URL_IN_TEXT.sub(shown, text)


def redact_uri(uri: str) -> str:
    """The name the stream modules use for ``redact_url``: one rule for showing a source everywhere."""
    return redact_url(uri)
