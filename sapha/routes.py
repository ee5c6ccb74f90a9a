"""The whole route table, in one list: pages, then the API grouped by module, then live delivery and static files.

Order matters only where paths overlap (Starlette takes the first match); operator routes go through
``api.operator(handler, permission)``, which checks the bearer token or staff session and the permission.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from sapha.pages import ServerStatus, page_routes
from sapha.services import Services
from sapha.settings import STATIC


def routes(s: Services) -> list[BaseRoute]:
    api, bills, documents, op = s.api, s.bills, s.documents, s.api.operator
    status = ServerStatus(s)
    return [
        *page_routes(s.store),
        Route("/healthz", status.healthz),
        Route("/metrics", status.metrics_endpoint),
        Route("/openapi.json", status.openapi),
        # -- alerts: follows, Web Push key, Atom feeds (alerts/api.py)
        *s.alerts_api.routes(),
        # -- sittings, votes, agenda, speakers, captions (archive/api.py)
        Route("/api/sittings", api.list_sittings, methods=["GET"]),
        Route("/api/sittings", op(api.create_sitting, "sitting.manage"), methods=["POST"]),
        Route("/api/sittings/{sitting_id}", api.get_sitting, methods=["GET"]),
        Route("/api/sittings/{sitting_id}/transcript", api.transcript, methods=["GET"]),
        Route("/api/sittings/{sitting_id}/status", op(api.set_status, "sitting.manage"), methods=["POST"]),
        Route("/api/sittings/{sitting_id}/agenda", op(api.set_agenda, "agenda.set"), methods=["POST"]),
        Route("/api/sittings/{sitting_id}/votes", op(api.record_vote, "vote.record"), methods=["POST"]),
        Route("/api/sittings/{sitting_id}/speaker", op(api.set_speaker, "speaker.set"), methods=["POST"]),
        # -- bills and parliamentary sessions (archive/bills_api.py)
        Route("/api/bills", bills.list_bills, methods=["GET"]),
        Route("/api/bills", op(bills.create_bill, "bill.stage"), methods=["POST"]),
        Route("/api/bills/{bill_id}", bills.get_bill, methods=["GET"]),
        Route("/api/bills/{bill_id}", op(api.set_bill, "bill.stage"), methods=["POST"]),
        Route("/api/bills/{bill_id}", op(bills.patch_bill, "bill.stage"), methods=["PATCH"]),
        Route("/api/bills/{bill_id}/stages", op(bills.change_stage, "bill.stage"), methods=["POST"]),
        Route("/api/bills/{bill_id}/clock", op(bills.set_clock, "bill.stage"), methods=["PUT"]),
        Route("/api/sessions", bills.list_sessions, methods=["GET"]),
        Route("/api/sessions", op(bills.create_session, "bill.stage"), methods=["POST"]),
        # -- caption corrections (archive/api.py)
        Route("/api/segments/{segment_id}", api.get_segment, methods=["GET"]),
        Route("/api/segments/{segment_id}", op(api.revise_segment, "caption.correct"), methods=["PATCH"]),
        Route("/api/segments/{segment_id}/revisions", api.segment_revisions, methods=["GET"]),
        Route("/api/sittings/{sitting_id}/reviewed", op(api.set_reviewed, "caption.correct"), methods=["POST"]),
        # -- search and documents (archive/search_api.py, archive/documents_api.py)
        Route("/api/search", s.search.search, methods=["GET"]),
        Route("/api/documents", documents.listing, methods=["GET"]),
        Route("/api/documents/search", documents.search, methods=["GET"]),
        Route("/api/documents/{doc}", documents.document, methods=["GET"]),
        Route("/api/documents/{doc}/sections/{n}", documents.section, methods=["GET"]),
        Route("/api/documents/{doc}/sections/{n}/compare", documents.compare, methods=["GET"]),
        # -- live delivery: SSE and HLS (broadcast/sse.py, live/hls_http.py)
        Route("/api/channels/{channel}/events", s.sse.handle, methods=["GET"]),
        Route("/live/{sitting_id}/{name:path}", s.hls_files.handle, methods=["GET"]),
        # -- the staff desk: accounts, messages, news (desk/)
        *s.staff.routes(),
        *s.messages_api.routes(),
        *s.news_api.routes(),
        Route("/api/staff/feeds", s.staff.guarded("feed.read", status.staff_feeds), methods=["GET"]),
        # -- WebSocket (served before the router by server.ServerEntry; here for in-process clients), WHIP/WHEP
        WebSocketRoute("/ws", s.socket.handle),
        *s.webrtc.routes(),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
