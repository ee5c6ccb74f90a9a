"""Atom feeds (RFC 4287) built with ``feedgen``: one bill, a keyword, a speaker, and every bill change.

Entry ids are tag URIs (RFC 4151), ``tag:<authority>,<year>:<path>``, made from what the entry *is* (the archived
change, vote or caption), never from when the feed was rendered, so a feed reader that polls again sees the same
entry as the same entry and shows only new ones. The authority is the deployment's host name and the year the one
it started using it (both fixed in settings): ids must not change when the site moves.

All text is ``type="text"`` (never HTML: see ``alerts.messages``). Characters XML 1.0 cannot carry (C0 controls
other than tab and newline) are removed rather than letting one caption break the whole feed. A feed holds at most
``MAX_ENTRIES`` newest entries.

How it is meant to be wired: routes ``/bills/{id}/feed.atom``, ``/feeds/bills.atom``, ``/feeds/keywords.atom?q=…``
and ``/speakers/{id}/feed.atom`` read the newest entries from the archive (stage changes, votes, caption finals that
match), turn them into ``FeedEntry`` (``entry_from_alert`` for anything already phrased as an ``Alert``) and answer
``render(...)`` with ``media_type=ATOM_MEDIA_TYPE``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from feedgen.feed import FeedGenerator

from alerts.messages import Alert

ATOM_MEDIA_TYPE = "application/atom+xml; charset=utf-8"
MAX_ENTRIES = 50
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class FeedEntry:
    """One entry: ``key`` is its stable identity within the site (e.g. ``bill/42/change/17``)."""

    key: str
    title: str
    summary: str
    link: str  # a path on the site, or an absolute URL
    updated: datetime  # aware


@dataclass(frozen=True)
class FeedSpec:
    """What a feed is about: its stable key, its title and its own path and the page it mirrors."""

    key: str
    title: str
    self_path: str
    page_path: str


def tag_uri(authority: str, year: int, key: str) -> str:
    """``tag:senate.example,2025:bill/42/change/17`` — the stable id of ``key`` (RFC 4151)."""
    return f"tag:{authority},{year}:{quote(key, safe='/-._~:')}"


def bill_feed(bill_id: str, short_name: str) -> FeedSpec:
    return FeedSpec(
        f"feeds/bill/{bill_id}", f"ความคืบหน้า: {short_name}", f"/bills/{bill_id}/feed.atom", f"/bills/{bill_id}"
    )


def all_bills_feed() -> FeedSpec:
    return FeedSpec("feeds/bills", "ความคืบหน้าร่างกฎหมายทั้งหมด", "/feeds/bills.atom", "/bills")


def keyword_feed(keyword: str) -> FeedSpec:
    q = quote(keyword, safe="")
    return FeedSpec(f"feeds/keyword/{q}", f"คำค้น: {keyword}", f"/feeds/keywords.atom?q={q}", f"/search?q={q}")


def speaker_feed(speaker_id: str, name: str) -> FeedSpec:
    return FeedSpec(
        f"feeds/speaker/{speaker_id}",
        f"คำอภิปรายของ {name}",
        f"/speakers/{speaker_id}/feed.atom",
        f"/speakers/{speaker_id}",
    )


def entry_from_alert(alert: Alert, key: str, updated: datetime) -> FeedEntry:
    """An alert as a feed entry; ``key`` is the archived event's identity (the alert itself has none)."""
    return FeedEntry(key, alert.title, alert.body, alert.url, updated)


def _text(value: str) -> str:
    return _NOT_XML.sub("", value)


def _absolute(base_url: str, link: str) -> str:
    return link if "://" in link else base_url.rstrip("/") + "/" + link.lstrip("/")


def render(
    spec: FeedSpec,
    entries: Iterable[FeedEntry],
    *,
    base_url: str,
    authority: str,
    year: int,
    now: datetime,
) -> bytes:
    """The Atom document for ``spec`` with the ``MAX_ENTRIES`` newest ``entries``; ``now`` dates an empty feed."""
    newest = sorted(entries, key=lambda e: e.updated, reverse=True)[:MAX_ENTRIES]
    fg = FeedGenerator()
    fg.id(tag_uri(authority, year, spec.key))
    fg.title(_text(spec.title))
    fg.link(href=_absolute(base_url, spec.self_path), rel="self", type="application/atom+xml")
    fg.link(href=_absolute(base_url, spec.page_path), rel="alternate", type="text/html")
    fg.language("th")
    fg.author({"name": "วุฒิสภา"})
    fg.updated(newest[0].updated if newest else now.astimezone(UTC))
    # feedgen prepends each entry it is given; adding oldest first leaves the newest at the top of the document.
    for e in reversed(newest):
        fe = fg.add_entry()
        fe.id(tag_uri(authority, year, e.key))
        fe.title(_text(e.title))
        fe.summary(_text(e.summary), type="text")
        fe.link(href=_absolute(base_url, e.link), rel="alternate")
        fe.updated(e.updated)
    return bytes(fg.atom_str(pretty=False))
