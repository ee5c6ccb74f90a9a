"""Transcript exports: JSON, text, and WebVTT/SRT checked by strict parsers written here."""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path

import pytest

from archive.exports import Transcript, cues, to_json, to_srt, to_text, to_webvtt, transcript_status
from archive.exports import render as render_export
from archive.models import Segment, Sitting
from common.thai import words

MANIFEST = Path("/work/shared/data/manifest.jsonl")
FALLBACK_THAI = [
    "มันเป็นเรื่องที่ดีที่การเดินทางย้อนเวลาไม่ได้มีอยู่จริง",
    "ฉันเดินทางไปเที่ยวที่จังหวัดเชียงใหม่ในช่วงฤดูหนาวเพื่อสัมผัสอากาศเย็นสบาย",
]
VTT_TIME = r"(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})"
SRT_TIME = r"(\d{2}):([0-5]\d):([0-5]\d),(\d{3})"
VTT_TIMING = re.compile(rf"^{VTT_TIME} --> {VTT_TIME}$")
SRT_TIMING = re.compile(rf"^{SRT_TIME} --> {SRT_TIME}$")
MAX_LINE = 42
MAX_LINES = 2


@dataclass(frozen=True)
class ParsedCue:
    ident: str
    start_ms: int
    end_ms: int
    lines: list[str]


Render = Callable[[Sitting, list[Segment]], str]
Parse = Callable[[str], list[ParsedCue]]


def _thai_sentences() -> list[str]:
    """Real Thai sentences from the shared manifest, or fixed ones when it is absent."""
    if not MANIFEST.is_file():
        return FALLBACK_THAI
    rows = [json.loads(line) for line in MANIFEST.read_text(encoding="utf-8").splitlines() if line.strip()]
    sentences = [row["text"] for row in rows if row.get("lang") == "th"]
    return sentences or FALLBACK_THAI


def _ms(match: re.Match[str], first: int) -> int:
    h, m, s, ms = (int(match.group(first + i)) for i in range(4))
    return ((h * 60 + m) * 60 + s) * 1000 + ms


def _parse_timing(pattern: re.Pattern[str], line: str) -> tuple[int, int]:
    match = pattern.match(line)
    assert match, f"bad timing line {line!r}"
    return _ms(match, 1), _ms(match, 5)


def parse_webvtt(document: str) -> list[ParsedCue]:
    """Strictly parse the WebVTT subset we emit; assert on anything malformed."""
    assert document.endswith("\n") and "\r" not in document
    header, *blocks = document.rstrip("\n").split("\n\n")
    assert header == "WEBVTT"
    parsed = []
    for block in blocks:
        ident, timing, *lines = block.split("\n")
        assert ident and "-->" not in ident
        start, end = _parse_timing(VTT_TIMING, timing)
        for line in lines:
            assert "-->" not in line and "<" not in line
            assert re.fullmatch(r"([^&]|&(amp|lt|gt);)*", line), f"unescaped & in {line!r}"
        parsed.append(ParsedCue(ident, start, end, [html.unescape(line) for line in lines]))
    return parsed


def parse_srt(document: str) -> list[ParsedCue]:
    """Strictly parse SRT: counters 1..n, comma timings, blank line between cues."""
    assert document.endswith("\n") and "\r" not in document
    parsed = []
    for counter, block in enumerate(document.rstrip("\n").split("\n\n"), start=1):
        ident, timing, *lines = block.split("\n")
        assert ident == str(counter)
        start, end = _parse_timing(SRT_TIMING, timing)
        parsed.append(ParsedCue(ident, start, end, lines))
    return parsed


def assert_well_formed(parsed: list[ParsedCue]) -> None:
    """Times monotonic and positive; cues non-empty with at most 2 lines of at most 42 chars."""
    assert parsed
    previous_start = -1
    for cue in parsed:
        assert cue.end_ms > cue.start_ms >= previous_start
        previous_start = cue.start_ms
        assert 1 <= len(cue.lines) <= MAX_LINES
        for line in cue.lines:
            assert line.strip() and line == line.strip()
            assert len(line) <= MAX_LINE


def assert_words_whole(parsed: list[ParsedCue], original: str) -> None:
    """Each line re-tokenises into words of the original, and breaks fall on its word boundaries."""
    original_words = set(words(original))
    for cue in parsed:
        for line in cue.lines:
            assert set(words(line)) <= original_words, line
    squashed = original.replace(" ", "")
    boundaries = {0}
    position = 0
    for word in words(original):
        position += len(word)
        boundaries.add(position)
    position = 0
    for cue in parsed:
        for line in cue.lines:
            assert position in boundaries
            position += len(line.replace(" ", ""))
    assert position == len(squashed)


SITTING = Sitting(
    id="s1",
    title="การประชุมวุฒิสภา ครั้งที่ ๑",
    chamber="senate",
    status="adjourned",
    scheduled_at=None,
    created_at="2026-05-01T02:00:00.000Z",
    started_at="2026-05-01T02:30:00.000Z",
    ended_at="2026-05-01T05:00:00.000Z",
)


def _segment(id: int, start_ms: int, end_ms: int, text: str) -> Segment:
    return Segment(
        id=id,
        sitting_id="s1",
        seq=id * 10,
        start_ms=start_ms,
        end_ms=end_ms,
        wall_time="2026-05-01T02:31:00.000Z",
        text=text,
        agenda_item_id=None,
        speaker_id=None,
        revision=1,
    )


@pytest.fixture
def long_thai() -> str:
    return "".join(_thai_sentences())


@pytest.fixture
def segments(long_thai: str) -> list[Segment]:
    sentences = _thai_sentences()
    return [
        _segment(1, 0, 3_000, sentences[0]),
        _segment(2, 3_000, 30_000, long_thai),  # long: split across several cues
        _segment(3, 3_723_000, 3_725_500, sentences[-1]),
    ]


@pytest.mark.parametrize("render,parse", [(to_webvtt, parse_webvtt), (to_srt, parse_srt)])
def test_caption_files_are_well_formed(segments: list[Segment], render: Render, parse: Parse) -> None:
    """VTT and SRT parse strictly, with monotonic times and short, bounded cues."""
    assert_well_formed(parse(render(SITTING, segments)))


@pytest.mark.parametrize("render,parse", [(to_webvtt, parse_webvtt), (to_srt, parse_srt)])
def test_long_segment_split_keeps_words_and_text(long_thai: str, render: Render, parse: Parse) -> None:
    """A long Thai segment splits into cues whose lines are whole words and rebuild the text."""
    parsed = parse(render(SITTING, [_segment(7, 10_000, 40_000, long_thai)]))
    assert len(parsed) > 1
    assert_well_formed(parsed)
    assert_words_whole(parsed, long_thai)
    assert parsed[0].start_ms == 10_000 and parsed[-1].end_ms == 40_000
    for before, after in pairwise(parsed):
        assert before.end_ms == after.start_ms


def test_split_time_is_proportional_to_text(long_thai: str) -> None:
    """Each split cue's share of the duration tracks its share of the characters."""
    split = cues([_segment(7, 0, 100_000, long_thai)])
    total_chars = sum(len("".join(c.lines)) for c in split)
    for cue in split:
        share = len("".join(cue.lines)) / total_chars
        assert abs((cue.end_ms - cue.start_ms) - share * 100_000) <= 1


def test_vtt_cue_ids_are_segment_ids(segments: list[Segment]) -> None:
    """A whole segment's cue id is its segment id; split parts are '<id>-<n>'."""
    idents = [cue.ident for cue in parse_webvtt(to_webvtt(SITTING, segments))]
    assert idents[0] == "1" and idents[-1] == "3"
    middle = idents[1:-1]
    assert middle == [f"2-{n}" for n in range(1, len(middle) + 1)]


def test_vtt_times_are_exact(segments: list[Segment]) -> None:
    """Media times render as HH:MM:SS.mmm in VTT and HH:MM:SS,mmm in SRT."""
    vtt = to_webvtt(SITTING, segments)
    srt = to_srt(SITTING, segments)
    assert "01:02:03.000 --> 01:02:05.500" in vtt
    assert "01:02:03,000 --> 01:02:05,500" in srt


def test_vtt_escapes_markup() -> None:
    """&, < and > in caption text are escaped in VTT and come back unchanged."""
    text = "มาตรา 5 <ร่าง> & ข้อ > 3"
    parsed = parse_webvtt(to_webvtt(SITTING, [_segment(1, 0, 1_000, text)]))
    assert " ".join(line for cue in parsed for line in cue.lines) == text


@pytest.mark.parametrize("start,end", [(5_000, 5_000), (5_000, 4_000), (-20, -10)])
def test_degenerate_durations_still_valid(start: int, end: int) -> None:
    """A segment ending at or before its start becomes a valid cue ending after it starts."""
    for render, parse in ((to_webvtt, parse_webvtt), (to_srt, parse_srt)):
        (cue,) = parse(render(SITTING, [_segment(1, start, end, "ขอบคุณครับ")]))
        assert cue.start_ms == max(start, 0) and cue.end_ms > cue.start_ms


def test_tiny_duration_split_into_many_cues_stays_monotonic(long_thai: str) -> None:
    """Splitting a long segment over 1 ms still gives every cue a positive duration."""
    assert_well_formed(parse_webvtt(to_webvtt(SITTING, [_segment(1, 100, 101, long_thai)])))


def test_empty_segments_produce_no_cues() -> None:
    """Blank or zero-width-only segments are skipped, never emitted as empty cues."""
    segments = [_segment(1, 0, 1_000, " \u200b "), _segment(2, 1_000, 2_000, "ครับ")]
    (cue,) = parse_srt(to_srt(SITTING, segments))
    assert cue.lines == ["ครับ"]
    assert parse_webvtt(to_webvtt(SITTING, segments))[0].ident == "2"


def test_no_segments_gives_header_only_vtt_and_empty_srt() -> None:
    """With nothing said, VTT is just its header and SRT is empty."""
    assert to_webvtt(SITTING, []) == "WEBVTT\n"
    assert to_srt(SITTING, []) == ""


def test_out_of_order_input_is_sorted(segments: list[Segment]) -> None:
    """Segments given out of order come out in media order."""
    parsed = parse_srt(to_srt(SITTING, list(reversed(segments))))
    assert [c.start_ms for c in parsed] == sorted(c.start_ms for c in parsed)


def test_json_export(segments: list[Segment]) -> None:
    """JSON holds the sitting and its segments and serialises with Thai intact."""
    data = to_json(SITTING, list(reversed(segments)))
    assert data["sitting"] == SITTING.to_dict()
    assert [s["id"] for s in data["segments"]] == [1, 2, 3]
    assert data["segments"][0] == segments[0].to_dict()
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data


@pytest.mark.parametrize("count", [0, 3])
def test_json_document_is_the_json_data_written_compactly(segments: list[Segment], count: int) -> None:
    """The JSON export, written a segment at a time, is byte for byte the compact dump of its data."""
    transcript = Transcript(SITTING, list(reversed(segments[:count])))
    data = {"ok": True, **to_json(SITTING, segments[:count]), "transcript_status": transcript_status(SITTING)}
    assert render_export("json", transcript) == json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def test_text_export(segments: list[Segment]) -> None:
    """Plain text is one '[HH:MM:SS] text' line per segment with the text whole."""
    lines = to_text(SITTING, segments).splitlines()
    assert len(lines) == 3
    assert lines[0] == f"[00:00:00] {segments[0].text}"
    assert lines[2] == f"[01:02:03] {segments[2].text}"
    assert lines[1].removeprefix("[00:00:03] ") == segments[1].text


def test_segment_dict_is_json_ready() -> None:
    """A segment's dict carries integer media times and the 'Z' wall time."""
    data = replace(_segment(1, 0, 10, "x"), seq=None).to_dict()
    assert data["start_ms"] == 0 and data["end_ms"] == 10 and data["seq"] is None
    assert data["wall_time"].endswith("Z")


def test_pieces_of_one_utterance_are_joined_in_text_and_cues():
    """Final pieces sharing an utterance id read as one line (Thai joined without a space) and one cue."""
    from archive.exports import utterances

    sitting = Sitting("s", "t", "senate", "live", None, "2026-01-01T00:00:00.000Z", None, None)

    def piece(id: int, start: int, end: int, text: str, utterance: str | None) -> Segment:
        return Segment(id, "s", id, start, end, "2026-01-01T00:00:00.000Z", text, None, None, 1, utterance)

    segments = [
        piece(1, 1000, 1400, "มัน", "u1"),
        piece(2, 1400, 3000, "เป็นเรื่องที่ดี", "u1"),
        piece(3, 3000, 4000, "ask not", "u2"),
        piece(4, 4000, 5000, "what your country", "u2"),
        piece(5, 6000, 7000, "แยก", None),
        piece(6, 7000, 8000, "กัน", None),
    ]
    merged = utterances(segments)
    assert [(s.id, s.text, s.start_ms, s.end_ms) for s in merged] == [
        (1, "มันเป็นเรื่องที่ดี", 1000, 3000),
        (3, "ask not what your country", 3000, 5000),
        (5, "แยก", 6000, 7000),
        (6, "กัน", 7000, 8000),
    ]
    assert to_text(sitting, segments).splitlines()[0] == "[00:00:01] มันเป็นเรื่องที่ดี"
    assert "00:00:01.000 --> 00:00:03.000\nมันเป็นเรื่องที่ดี" in to_webvtt(sitting, segments)


# ---- serving exports: off the event loop, bounded, cached ------------------------------------------------------

SPEECH = "ท่านประธานที่เคารพ กระผมขออภิปรายในร่างพระราชบัญญัติงบประมาณรายจ่ายประจำปี ซึ่งมีความสำคัญต่อประชาชนทุกคน"


def _bulk_segments(db: Path, sitting_id: str, n: int, every_ms: int = 3600) -> None:
    """``n`` Thai caption segments straight into the archive file, one transaction (a sitting's worth in seconds)."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO segments (sitting_id, start_ms, end_ms, wall_time, text, revision, utterance_id)"
                " VALUES (?, ?, ?, '2026-05-01T09:30:00.000Z', ?, 1, ?)",
                [(sitting_id, i * every_ms, i * every_ms + every_ms - 100, f"{SPEECH} {i}", f"u{i}") for i in range(n)],
            )
    finally:
        conn.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path):
    from archive.store_sqlite import SqliteStore

    store = SqliteStore(tmp_path / "archive.db")
    await store.open()
    await store.create_sitting("s1", "การประชุม", "senate")
    try:
        yield store
    finally:
        await store.close()


async def test_exports_are_cached_until_the_segments_change(sqlite_store):
    """A second export of an unchanged sitting is served from the cache; a new segment or a seq written back makes
    the next export render again."""
    from archive.export_cache import TranscriptExports

    exports_ = TranscriptExports(sqlite_store)
    await sqlite_store.add_segment("s1", 0, 2000, "ขอเปิดการประชุม")
    sitting = await sqlite_store.get_sitting("s1")
    first = await exports_.render(sitting, "vtt")
    assert await exports_.render(sitting, "vtt") == first and exports_.renders == 1
    segment = await sqlite_store.add_segment("s1", 2000, 4000, "ระเบียบวาระที่ ๑")
    assert "ระเบียบวาระที่ ๑" in (await exports_.render(sitting, "vtt")).decode() and exports_.renders == 2
    await sqlite_store.set_segment_seq(segment.id, 7)
    assert json.loads(await exports_.render(sitting, "json"))["segments"][1]["seq"] == 7


async def test_exports_over_the_concurrency_limit_are_refused(sqlite_store, tmp_path: Path):
    """With every render slot and waiting place taken, another export raises Busy instead of queueing forever."""
    from archive.export_cache import Busy, TranscriptExports

    _bulk_segments(tmp_path / "archive.db", "s1", 1500)
    sitting = await sqlite_store.get_sitting("s1")
    exports_ = TranscriptExports(sqlite_store, max_concurrent=1, max_waiting=0)
    first = asyncio.ensure_future(exports_.render(sitting, "vtt"))
    await asyncio.sleep(0.05)
    with pytest.raises(Busy):
        await exports_.render(sitting, "srt")
    assert (await first).startswith(b"WEBVTT")


@pytest.mark.fast
def test_byte_lru_evicts_least_recently_used_by_size() -> None:
    """The cache holds at most max_bytes: the least recently read entries go first; a too-big entry is not kept."""
    from archive.export_cache import ByteLRU

    lru = ByteLRU(10)
    lru.put("a", b"1234")
    lru.put("b", b"1234")
    assert lru.get("a") == b"1234"
    lru.put("c", b"1234")
    assert lru.get("b") is None and lru.get("a") is not None and lru.size == 8
    lru.put("huge", b"x" * 11)
    assert lru.get("huge") is None and len(lru) == 2


async def test_a_six_hour_vtt_export_does_not_stall_live_events(tmp_path: Path):
    """While a six-hour sitting (6,000 Thai segments) is exported as WebVTT, a WebSocket client keeps receiving the
    events published every 50 ms: all of them, and never held up for more than a third of the export's time."""
    import time

    import httpx
    import websockets
    from live_server import serve, test_settings

    from broadcast.envelope import sitting_channel

    async with serve(test_settings(tmp_path)) as running:
        await running.app.state.store.create_sitting("long", "การประชุมยาว", "senate")
        _bulk_segments(tmp_path / "sapha.db", "long", 6000)
        channel = sitting_channel("long")
        hub = running.app.state.hub
        received: list[tuple[int, float]] = []
        async with websockets.connect(running.ws_url) as ws:
            await ws.send(json.dumps({"op": "subscribe", "channel": channel}))
            assert json.loads(await ws.recv())["op"] == "subscribed"
            stop = asyncio.Event()

            async def publish() -> int:
                count = 0
                while not stop.is_set():
                    await hub.publish(channel, "caption.partial", {"text": f"กำลังพูด {count}"})
                    count += 1
                    await asyncio.sleep(0.05)
                return count

            async def receive() -> None:
                while True:
                    received.append((json.loads(await ws.recv())["seq"], time.monotonic()))

            publisher = asyncio.create_task(publish())
            receiver = asyncio.create_task(receive())
            await asyncio.sleep(0.3)
            async with httpx.AsyncClient(base_url=running.url, timeout=120) as client:
                started = time.monotonic()
                r = await client.get("/api/sittings/long/transcript", params={"format": "vtt"})
                export_s = time.monotonic() - started
            await asyncio.sleep(0.3)
            stop.set()
            published = await publisher
            deadline = time.monotonic() + 10
            while len(received) < published and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)

    assert r.status_code == 200 and r.headers["content-type"].startswith("text/vtt")
    assert r.text.startswith("WEBVTT") and r.text.count(" --> ") >= 6000
    # Only meaningful if the export spans many publish intervals.
    assert export_s > 10 * 0.05, f"export took {export_s:.2f} s: too short to tell"
    assert [seq for seq, _ in received] == list(range(1, published + 1))
    max_gap = max(b - a for (_, a), (_, b) in pairwise(received))
    assert max_gap < export_s / 3, f"events stalled {max_gap:.2f} s during a {export_s:.2f} s export"
