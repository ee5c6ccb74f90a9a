"""Turning FFmpeg's errors into messages an operator can act on."""

from __future__ import annotations

import av

from stream.uri import is_network_uri, redact_uri, uri_scheme

# Errors that no amount of reconnecting will fix: the build lacks the protocol, demuxer or decoder,
# or the options are wrong. Everything else on a network source may be a stream that has not started yet.
_PERMANENT = (
    av.error.ProtocolNotFoundError,
    av.error.DemuxerNotFoundError,
    av.error.DecoderNotFoundError,
    av.error.OptionNotFoundError,
)


class SourceError(Exception):
    """An audio source cannot be opened or read; ``str(error)`` is a complete, human-readable sentence.

    ``retryable`` says whether reopening later might succeed (a refused connection, a stalled server),
    as opposed to a missing file, a text file or a protocol this FFmpeg build lacks.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def _detail(exc: BaseException) -> str:
    # FFmpeg errors carry the URL in str(); strerror alone avoids repeating an unredacted URL.
    strerror = getattr(exc, "strerror", None)
    return strerror if isinstance(strerror, str) and strerror else type(exc).__name__


def open_error(uri: str, exc: BaseException, *, waited: float, timeout: float) -> SourceError:
    """The ``SourceError`` for a failed ``av.open(uri)`` that gave up after ``waited`` seconds."""
    shown = redact_uri(uri)
    network = is_network_uri(uri)
    timed_out = waited >= timeout * 0.95
    if isinstance(exc, av.error.ProtocolNotFoundError):
        message = f"unsupported protocol {uri_scheme(uri)!r}: this FFmpeg build cannot open {shown}"
    elif isinstance(exc, _PERMANENT):
        message = f"cannot open {shown}: {_detail(exc)} (missing from this FFmpeg build or a bad option)"
    elif isinstance(exc, FileNotFoundError) and not network:
        message = f"audio file not found: {shown}"
    elif isinstance(exc, IsADirectoryError):
        message = f"{shown} is a directory, not a media file"
    elif isinstance(exc, PermissionError) and not network:
        message = f"permission denied reading {shown}"
    elif isinstance(exc, ConnectionRefusedError):
        message = f"connection refused for {shown}: is the stream server running?"
    elif isinstance(exc, av.error.HTTPError):
        message = f"the server for {shown} answered with an HTTP error: {_detail(exc)}"
    elif network and (timed_out or isinstance(exc, av.error.ExitError | TimeoutError)):
        # FFmpeg reports an open interrupted by the timeout as "exit requested" or, for RTSP, as invalid data.
        message = f"no media from {shown} within {timeout:g} s (connection timed out)"
    elif isinstance(exc, av.error.InvalidDataError):
        what = "the server did not send a media stream" if network else "not a media file"
        message = f"{what}: FFmpeg cannot recognise the data in {shown}"
    else:
        message = f"cannot open {shown}: {_detail(exc)}"
    return SourceError(message, retryable=network and not isinstance(exc, _PERMANENT))


def read_error(uri: str, exc: BaseException, *, timeout: float) -> SourceError:
    """The ``SourceError`` for a source that failed while being read (after a successful open)."""
    shown = redact_uri(uri)
    network = is_network_uri(uri)
    if isinstance(exc, av.error.ExitError | TimeoutError):
        message = f"no data from {shown} for {timeout:g} s"
    elif network and isinstance(exc, OSError):
        # FFmpeg reports a server hanging up mid-stream as a plain I/O error.
        message = f"connection to {shown} lost: {_detail(exc)}"
    else:
        message = f"reading {shown} failed: {_detail(exc)}"
    return SourceError(message, retryable=network)


def no_audio_error(uri: str, kinds: list[str]) -> SourceError:
    """The ``SourceError`` for media that opened but has no audio stream; ``kinds`` are its stream types."""
    found = ", ".join(kinds) if kinds else "no streams at all"
    # A live encoder may add its audio track a moment later, so a network source is worth retrying.
    return SourceError(f"no audio stream in {redact_uri(uri)} (it has: {found})", retryable=is_network_uri(uri))
