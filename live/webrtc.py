"""WebRTC in and out of a sitting: WHIP ingest (RFC 9725) and WHEP low-latency playback, over HTTP.

``WebRtcGateway`` owns every peer connection. A WHIP publisher (OBS, a browser) POSTs its SDP offer with the
operator token and gets an answer; its audio becomes a ``WhipAudioSource`` handed to ``on_publish`` (the server
captions it with ``LiveFeed``), its frames go to the ``media_sink`` (the HLS writer), and a ``MediaRelay`` fans
them out to WHEP viewers, who POST their own offers, no token needed, up to ``max_viewers`` at a time. Beyond
that, or with no publisher, viewers are pointed to the sitting's HLS playlist.

No trickle ICE: answers are sent once ICE gathering is complete, so one POST is the whole negotiation. Pages on
other sites may call both (CORS, origins configurable); each client address may hold ``max_viewers_per_ip`` WHEP
sessions at a time. DTLS accepts publishers with RSA as well as ECDSA certificates (``stream.dtls``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError
from aiortc.sdp import MediaDescription, SessionDescription
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from archive.models import Sitting
from archive.store import Store
from broadcast.envelope import ID_PATTERN
from common.cors import CorsPolicy
from common.http import BodyTooLarge, json_error, read_body_capped
from stream.dtls import peer_connection
from stream.hls import HlsWriter
from stream.whep import Viewer
from stream.whip import MediaSink, Publication, WhipAudioSource

log = logging.getLogger(__name__)

SDP = "application/sdp"
MAX_SDP_BYTES = 64 * 1024  # real offers are a few KiB; this only stops abuse
NO_STREAM = "no live WebRTC stream for this sitting; use HLS"
SENDING = ("sendonly", "sendrecv")  # what a publisher's media sections must be
RECEIVING = ("recvonly", "sendrecv")  # what a viewer's must be
# A sitting id becomes a directory name (its HLS) and a key: anything else is no sitting, checked before any I/O.
_SITTING_ID = re.compile(ID_PATTERN)
# What a page on another origin may send and read. WHEP needs no token, but players send one if configured with it.
_REQUEST_HEADERS = ("Content-Type", "Authorization")
_EXPOSED = ("Location",)  # the session URL a browser must DELETE; hidden from cross-origin scripts unless exposed

# (sitting_id, the publisher's audio): runs while the publisher is connected.
PublishHandler = Callable[[str, WhipAudioSource], Awaitable[None]]
# (sitting_id, whether video is offered): the sink for the publisher's frames, or None.
SinkFactory = Callable[[str, bool], MediaSink | None]
Handler = Callable[[Request], Awaitable[Response]]


class BadOffer(ValueError):
    """The request body is not an SDP offer this endpoint can answer."""


def hls_url(sitting_id: str) -> str:
    """Where a viewer turned away from WebRTC can watch instead."""
    return f"/live/{sitting_id}/index.m3u8"


def parse_offer(text: str, *, need: Sequence[str], directions: Sequence[str]) -> SessionDescription:
    """Check that ``text`` is an SDP offer with a media section of a kind in ``need`` and a direction in
    ``directions`` (a publisher must send, a viewer must receive)."""
    if not text.startswith("v=0"):
        raise BadOffer("the body is not an SDP offer (it must start with v=0)")
    try:
        offer = SessionDescription.parse(text)
    # aiortc's parser reports malformed lines with whatever fails first, assertions included.
    except (AssertionError, ValueError, IndexError, KeyError, TypeError) as exc:
        raise BadOffer(f"malformed SDP: {exc or type(exc).__name__}") from None
    if not any(m.kind in need and _direction(m) in directions for m in offer.media):
        raise BadOffer(f"the offer has no {' or '.join(need)} media section that is {' or '.join(directions)}")
    return offer


def _direction(media: MediaDescription) -> str:
    return media.direction or "sendrecv"  # RFC 4566: no direction attribute means sendrecv


def media_start(sitting: Sitting, now: datetime | None = None) -> float:
    """Where the sitting's media timeline stands: seconds since it first went live, 0 if it never has.

    A publisher that reconnects thus continues the timeline (outages count, as they do for other live sources),
    and captions from successive publishers never overlap.
    """
    if sitting.started_at is None:
        return 0.0
    started = datetime.fromisoformat(sitting.started_at)
    return max(0.0, ((now or datetime.now(UTC)) - started).total_seconds())


async def _sdp_body(request: Request) -> str:
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != SDP:
        raise _Refused(415, f"the offer must be sent as Content-Type: {SDP}")
    try:
        raw = await read_body_capped(request, MAX_SDP_BYTES)
    except BodyTooLarge:
        raise _Refused(413, f"the offer must be at most {MAX_SDP_BYTES} bytes") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused(400, "the offer is not UTF-8 text") from None


def _with_cors(policy: CorsPolicy, handler: Handler) -> Handler:
    """``handler`` whose every answer, errors included (a player must read the 503's HLS URL), carries the CORS
    headers for the request's origin."""

    async def handle(request: Request) -> Response:
        return policy.apply(request, await handler(request))

    return handle


class _Refused(Exception):
    """A request turned away before any peer connection exists: its HTTP status and the reason."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error

    def response(self, **extra: object) -> Response:
        return json_error(self.status, self.error, **extra)


def _with_challenge(refused: Response) -> Response:
    if refused.status_code == 401:
        refused.headers["WWW-Authenticate"] = "Bearer"
    return refused


def _answer(sdp: str, location: str) -> Response:
    return Response(sdp, status_code=201, media_type=SDP, headers={"Location": location})


# Negotiation errors aiortc raises for offers it cannot accept (bad ICE credentials, unsupported setups).
_NEGOTIATION_ERRORS = (ValueError, InvalidAccessError, InvalidStateError, OperationError, InternalError)


class WebRtcGateway:
    """The WHIP and WHEP endpoints, and every peer connection they create.

    ``operator_auth(request)`` decides whether a WHIP request may publish: None when it may, else the refusal to
    answer (401, 403), so WHIP takes the same principals as the other operator endpoints. ``media_sink(sitting_id,
    video)`` makes the sink a publisher's frames are written to (``video``: whether the offer sends video); the
    gateway closes it when the publisher leaves (an ``HlsWriter`` is also ``audio.hls``, so ``LiveFeed`` adds the
    captions to it). ``on_publish(sitting_id, audio)`` runs as a task for as long as a publisher is connected; it
    should consume ``audio`` to its end (the gateway ends it when the publisher leaves) and is cancelled if it
    outlives ``close()`` by ``consumer_grace``. ``max_viewers`` caps WHEP sessions across all sittings (encoding
    is per viewer), ``max_viewers_per_ip`` those of one client address, so one client cannot take every slot.
    ``whep_origins`` and ``whip_origins`` are the origins whose pages may call WHEP and WHIP (``*``: any); the
    endpoints answer CORS preflights and expose ``Location`` to them.
    """

    def __init__(
        self,
        store: Store,
        *,
        operator_auth: Callable[[Request], Awaitable[Response | None]],
        on_publish: PublishHandler | None = None,
        media_sink: SinkFactory | None = None,
        max_viewers: int = 8,
        max_viewers_per_ip: int = 2,
        whep_origins: Iterable[str] = ("*",),
        whip_origins: Iterable[str] = (),
        ice_servers: Sequence[RTCIceServer] = (),
        connect_timeout: float = 30.0,
        consumer_grace: float = 15.0,
    ) -> None:
        if max_viewers < 0 or max_viewers_per_ip < 0:
            raise ValueError(f"viewer limits must not be negative, not {max_viewers} and {max_viewers_per_ip}")
        self._store = store
        self._authorised = operator_auth
        self._on_publish = on_publish
        self._media_sink = media_sink
        self.max_viewers = max_viewers
        self.max_viewers_per_ip = max_viewers_per_ip
        methods = ("POST", "DELETE")
        self._whep_cors = CorsPolicy(frozenset(whep_origins), methods, _REQUEST_HEADERS, _EXPOSED)
        self._whip_cors = CorsPolicy(frozenset(whip_origins), methods, _REQUEST_HEADERS, _EXPOSED)
        self._ice_servers = list(ice_servers)
        self._connect_timeout = connect_timeout
        self._consumer_grace = consumer_grace
        # A sitting maps to None while its publisher is being negotiated, so a second offer is refused at once.
        self._publishers: dict[str, Publication | None] = {}
        self._viewers: dict[str, Viewer] = {}
        self._viewer_slots = 0  # viewers plus offers being answered, so the cap holds under concurrent POSTs
        self._slots_by_ip: dict[str, int] = {}  # the same per client address; an address at 0 is removed
        self._peers: set[RTCPeerConnection] = set()
        self._consumers: set[asyncio.Task[None]] = set()
        self._chores: set[asyncio.Future[None]] = set()  # teardowns: awaited by close(), never cancelled
        self._watchers: set[asyncio.Task[None]] = set()  # connection deadlines: cancelled by close()
        self._closing = False

    # ---- what tests and /healthz may look at -----------------------------------------------------------------

    @property
    def peer_count(self) -> int:
        """Peer connections open right now, publishers and viewers alike."""
        return len(self._peers)

    @property
    def viewer_count(self) -> int:
        return len(self._viewers)

    def publication(self, sitting_id: str) -> Publication | None:
        return self._publishers.get(sitting_id)

    def routes(self) -> list[Route]:
        # PATCH (trickle ICE, ICE restarts) is not offered, and Starlette answers it 405 as RFC 9725 asks.
        whip, whep = self._whip_cors, self._whep_cors
        return [
            Route("/whip/{sitting_id}", _with_cors(whip, self.whip_post), methods=["POST"]),
            Route("/whip/{sitting_id}", whip.preflight, methods=["OPTIONS"]),
            Route("/whip/{sitting_id}/{session_id}", _with_cors(whip, self.whip_delete), methods=["DELETE"]),
            Route("/whip/{sitting_id}/{session_id}", whip.preflight, methods=["OPTIONS"]),
            Route("/whep/{sitting_id}", _with_cors(whep, self.whep_post), methods=["POST"]),
            Route("/whep/{sitting_id}", whep.preflight, methods=["OPTIONS"]),
            Route("/whep/{sitting_id}/{session_id}", _with_cors(whep, self.whep_delete), methods=["DELETE"]),
            Route("/whep/{sitting_id}/{session_id}", whep.preflight, methods=["OPTIONS"]),
        ]

    # ---- WHIP ------------------------------------------------------------------------------------------------

    async def whip_post(self, request: Request) -> Response:
        """Start publishing to a sitting: SDP offer in, SDP answer out (201, Location: the session)."""
        denied = await self._authorised(request)
        if denied is not None:
            return _with_challenge(denied)
        sitting_id = request.path_params["sitting_id"]
        try:
            sitting = await self._sitting(sitting_id)
            offer = await _sdp_body(request)
            parsed = parse_offer(offer, need=("audio",), directions=SENDING)
            if self._closing:
                raise _Refused(503, "the server is shutting down")
            if sitting_id in self._publishers:
                raise _Refused(409, f"sitting {sitting_id} already has a WebRTC publisher; DELETE its session first")
        except _Refused as refused:
            return refused.response()
        except BadOffer as exc:
            return json_error(400, str(exc))
        self._publishers[sitting_id] = None
        session_id = secrets.token_urlsafe(16)
        start = media_start(sitting)
        sink = self._make_sink(sitting_id, any(m.kind == "video" and _direction(m) in SENDING for m in parsed.media))
        hls = sink if isinstance(sink, HlsWriter) else None
        audio = WhipAudioSource(f"whip://{sitting_id}/{session_id}", start=start, hls=hls)
        pc = self._new_peer()
        publication = Publication(
            sitting_id,
            session_id,
            pc,
            audio,
            start=start,
            sink=sink,
            on_gone=lambda reason: self._chore(self._end_publication(sitting_id, session_id, reason)),
        )
        try:
            answer = await self._negotiate(pc, offer)
            if self._closing:
                raise _Refused(503, "the server is shutting down")
        except BaseException as exc:
            del self._publishers[sitting_id]
            await self._forget(publication.close(None), pc)
            if isinstance(exc, _Refused):
                return exc.response()
            if isinstance(exc, BadOffer):
                return json_error(400, str(exc))
            raise
        self._publishers[sitting_id] = publication
        if self._on_publish is None:
            audio.stop()  # nobody captions it: don't queue it
        else:
            consumer = asyncio.create_task(self._consume(sitting_id, audio), name=f"whip-consumer {sitting_id}")
            self._consumers.add(consumer)
            consumer.add_done_callback(self._consumers.discard)
        self._watch_connect(pc, lambda: self._end_publication(sitting_id, session_id, "the WebRTC connection failed"))
        log.info("sitting %s: WHIP publisher %s accepted", sitting_id, session_id)
        return _answer(answer, f"/whip/{sitting_id}/{session_id}")

    async def whip_delete(self, request: Request) -> Response:
        """Stop publishing: the publisher's WHIP session ends and its viewers' streams with it."""
        denied = await self._authorised(request)
        if denied is not None:
            return _with_challenge(denied)
        sitting_id, session_id = request.path_params["sitting_id"], request.path_params["session_id"]
        publication = self._publishers.get(sitting_id)
        if publication is None or publication.session_id != session_id:
            return json_error(404, "no such WHIP session")
        await self._end_publication(sitting_id, session_id, None)
        return Response(status_code=200)

    async def _consume(self, sitting_id: str, audio: WhipAudioSource) -> None:
        assert self._on_publish is not None
        try:
            await self._on_publish(sitting_id, audio)
        except Exception:
            log.exception("sitting %s: the WHIP audio consumer failed", sitting_id)
        finally:
            # Whatever the consumer did, its end means nobody reads this audio any more.
            audio.stop()

    def _make_sink(self, sitting_id: str, video: bool) -> MediaSink | None:
        if self._media_sink is None:
            return None
        try:
            return self._media_sink(sitting_id, video)
        except Exception:
            # Publishing (and captions) must not hinge on the recording: go on without it.
            log.exception("sitting %s: could not open the media sink; publishing without it", sitting_id)
            return None

    async def _end_publication(self, sitting_id: str, session_id: str, reason: str | None) -> None:
        publication = self._publishers.get(sitting_id)
        if publication is None or publication.session_id != session_id:
            return
        del self._publishers[sitting_id]
        if reason is not None:
            log.warning("sitting %s: WHIP publisher %s gone: %s", sitting_id, session_id, reason)
        viewers = [v for v in self._viewers.values() if v.sitting_id == sitting_id]
        await asyncio.gather(
            self._forget(publication.close(reason), publication.pc),
            *(self._end_viewer(v.session_id) for v in viewers),
        )

    # ---- WHEP ------------------------------------------------------------------------------------------------

    async def whep_post(self, request: Request) -> Response:
        """Watch a sitting over WebRTC: SDP offer in, SDP answer out; 503 with the HLS URL when it cannot."""
        sitting_id = request.path_params["sitting_id"]
        client = request.client.host if request.client is not None else ""
        try:
            await self._sitting(sitting_id)
            offer = await _sdp_body(request)
            parsed = parse_offer(offer, need=("audio", "video"), directions=RECEIVING)
            publication = self._live_publication(sitting_id)
            if self._slots_by_ip.get(client, 0) >= self.max_viewers_per_ip:
                raise _Refused(429, f"at most {self.max_viewers_per_ip} WebRTC viewers per address; use HLS")
            if self._viewer_slots >= self.max_viewers:
                raise _Refused(503, "WebRTC viewer limit reached; use HLS")
        except _Refused as refused:
            return refused.response(**({"hls": hls_url(sitting_id)} if refused.status in (429, 503) else {}))
        except BadOffer as exc:
            return json_error(400, str(exc))
        self._take_viewer_slot(client)
        session_id = secrets.token_urlsafe(16)
        pc = self._new_peer()
        viewer = Viewer(session_id, sitting_id, pc, [], client=client)
        try:
            wanted = {m.kind for m in parsed.media if _direction(m) in RECEIVING}
            answer = await self._negotiate(pc, offer, add_tracks=lambda: self._subscribe(viewer, publication, wanted))
            # The publisher may have left while this offer was being answered: its relay sends nothing more.
            if self._live_publication(sitting_id) is not publication:
                raise _Refused(503, NO_STREAM)
        except BaseException as exc:
            self._free_viewer_slot(client)
            await self._forget(viewer.close(), pc)
            if isinstance(exc, _Refused):
                return exc.response(hls=hls_url(sitting_id))
            if isinstance(exc, BadOffer):
                return json_error(400, str(exc))
            raise
        self._viewers[session_id] = viewer
        pc.on("connectionstatechange", lambda: self._viewer_state(viewer))
        self._watch_connect(pc, lambda: self._end_viewer(session_id))
        return _answer(answer, f"/whep/{sitting_id}/{session_id}")

    def _live_publication(self, sitting_id: str) -> Publication:
        publication = self._publishers.get(sitting_id)
        if publication is None or self._closing:
            raise _Refused(503, NO_STREAM)
        return publication

    async def whep_delete(self, request: Request) -> Response:
        """Stop watching."""
        viewer = self._viewers.get(request.path_params["session_id"])
        if viewer is None or viewer.sitting_id != request.path_params["sitting_id"]:
            return json_error(404, "no such WHEP session")
        await self._end_viewer(viewer.session_id)
        return Response(status_code=200)

    def _subscribe(self, viewer: Viewer, publication: Publication, wanted: set[str]) -> None:
        for track in publication.viewer_tracks():
            if track.kind in wanted:
                viewer.pc.addTrack(track)
                viewer.tracks.append(track)
            else:
                track.stop()
        if not viewer.tracks:
            raise BadOffer("the offer receives none of the kinds of media this sitting is publishing")

    def _take_viewer_slot(self, client: str) -> None:
        self._viewer_slots += 1
        self._slots_by_ip[client] = self._slots_by_ip.get(client, 0) + 1

    def _free_viewer_slot(self, client: str) -> None:
        self._viewer_slots -= 1
        left = self._slots_by_ip.pop(client) - 1
        if left:
            self._slots_by_ip[client] = left

    def _viewer_state(self, viewer: Viewer) -> None:
        if viewer.pc.connectionState in ("failed", "closed"):
            self._chore(self._end_viewer(viewer.session_id))

    async def _end_viewer(self, session_id: str) -> None:
        viewer = self._viewers.pop(session_id, None)
        if viewer is None:
            return
        self._free_viewer_slot(viewer.client)
        await self._forget(viewer.close(), viewer.pc)

    # ---- peer connections ------------------------------------------------------------------------------------

    def _new_peer(self) -> RTCPeerConnection:
        # An explicit (possibly empty) server list: aiortc's default would be a public STUN server.
        pc = peer_connection(RTCConfiguration(iceServers=list(self._ice_servers)))
        self._peers.add(pc)
        return pc

    async def _negotiate(self, pc: RTCPeerConnection, offer: str, add_tracks: Callable[[], None] | None = None) -> str:
        """The complete answer (ICE gathering done) to ``offer``; ``BadOffer`` if aiortc cannot accept it."""
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            if add_tracks is not None:
                add_tracks()
            await pc.setLocalDescription(await pc.createAnswer())
        except _NEGOTIATION_ERRORS as exc:
            raise BadOffer(f"cannot answer this offer: {exc or type(exc).__name__}") from None
        return pc.localDescription.sdp

    def _watch_connect(self, pc: RTCPeerConnection, give_up: Callable[[], Awaitable[None]]) -> None:
        """End a session whose peer does not complete ICE and DTLS in time, so a half-made offer cannot hold a
        slot; this also catches a failure that came before the session was registered."""
        task = asyncio.create_task(self._await_connect(pc, give_up), name="webrtc-connect-watch")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _await_connect(self, pc: RTCPeerConnection, give_up: Callable[[], Awaitable[None]]) -> None:
        settled = asyncio.Event()

        def check() -> None:
            if pc.connectionState in ("connected", "failed", "closed"):
                settled.set()

        pc.on("connectionstatechange", check)
        check()
        try:
            await asyncio.wait_for(settled.wait(), self._connect_timeout)
        except TimeoutError:
            pass
        finally:
            pc.remove_listener("connectionstatechange", check)
        if pc.connectionState != "connected":
            # A chore, not awaited here: close() cancels watchers, and a teardown must never be cut short.
            self._chore(give_up())

    async def _forget(self, closing: Awaitable[None], pc: RTCPeerConnection) -> None:
        try:
            await closing
        finally:
            self._peers.discard(pc)

    def _chore(self, work: Awaitable[None]) -> None:
        """Run ``work`` in the background, kept track of so ``close()`` can wait for it."""
        task = asyncio.ensure_future(work)
        self._chores.add(task)
        task.add_done_callback(self._chore_done)

    def _chore_done(self, task: asyncio.Future[None]) -> None:
        self._chores.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("WebRTC housekeeping failed", exc_info=task.exception())

    async def _sitting(self, sitting_id: str) -> Sitting:
        if not _SITTING_ID.fullmatch(sitting_id):
            raise _Refused(404, "no such sitting")  # and never a path or a key: it cannot exist
        sitting = await self._store.get_sitting(sitting_id)
        if sitting is None:
            raise _Refused(404, "no such sitting")
        return sitting

    # ---- shutdown --------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """End every session and close every peer connection; wait for the audio consumers, then cancel them."""
        self._closing = True
        for watcher in list(self._watchers):
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        publications = [p for p in self._publishers.values() if p is not None]
        await asyncio.gather(
            *(self._end_publication(p.sitting_id, p.session_id, None) for p in publications),
            *(self._end_viewer(session_id) for session_id in list(self._viewers)),
        )
        if self._consumers:
            _, late = await asyncio.wait(set(self._consumers), timeout=self._consumer_grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        while self._chores:
            await asyncio.gather(*self._chores, return_exceptions=True)
