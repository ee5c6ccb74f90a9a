"""The HLS player on /watch and /embed, driven in headless Debian chromium against the real app and real HLS.

The stream is made here: H.264/AAC pictures and tone encoded by ``stream.hls.HlsWriter`` (which this chromium
plays through hls.js and MSE), with captions given to the writer's ``add_caption`` for the WebVTT rendition.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from chromium import needs_chromium
from live_server import Running, serve, test_settings
from playwright.async_api import Frame, Page, expect

from stream.hls import CAPTION_DELAY_ID, MPEGTS_HZ, TS_ORIGIN, HlsWriter

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]

FPS = 25
AUDIO_RATE = 48_000
# (start, end, text) in media seconds, given to the HLS writer for the WebVTT rendition.
RECORDING_S = 10.0
OPENING = (0.2, 5.0, "ท่านประธานที่เคารพ")
MOTION = (6.0, 9.5, "ขอเสนอญัตติด่วน")
# A live stream of 12 s whose window shows media seconds 7-11; playback waits at its end inside LIVE_SECOND.
LIVE_FIRST = (7.5, 8.8, "ที่ประชุมรับทราบ")
LIVE_SECOND = (9.2, 11.0, "ขอเชิญท่านสมาชิกอภิปราย")

VIDEO = "document.getElementById('video')"
# Truthy once a cue with this text is showing on the video: then the media time it shows at.
ACTIVE_CUE = """text => {
    const player = window.sapha && window.sapha.player;
    const track = player && player.captionTrack();
    const on = !!track && !!track.activeCues && Array.from(track.activeCues).some(cue => cue.text === text);
    return on && {t: player.mediaTime()};
}"""


# ---- the stream ----------------------------------------------------------------------------------------------


def write_hls(
    directory: Path, *, seconds: float, captions: list[tuple[float, float, str]], close: bool, window: int = 8
) -> HlsWriter:
    """Encode `seconds` of moving pictures and tone as 1 s HLS segments with captions; closed (ENDLIST) or live.

    A closed stream appears in `directory` at once, complete (written elsewhere, then the directory renamed into
    place), so that a player polling for it finds a finished recording rather than a live stream that ends.
    """
    staging = directory.with_name(directory.name + ".staging") if close else directory
    writer = HlsWriter(staging, segment_s=1.0, window=window, caption_wait_s=60.0)
    writer.begin_input(video=True, audio=True, block=True)
    sent = 0
    for index in range(round(seconds * FPS)):
        image = np.zeros((180, 320, 3), np.uint8)
        image[:, : (index * 5) % 320] = 220
        image[..., 1] = 90
        writer.add_video_frame(av.VideoFrame.from_ndarray(image, format="rgb24"), index / FPS, block=True)
        while sent < (index + 1) * AUDIO_RATE // FPS:
            t = (np.arange(1024) + sent) / AUDIO_RATE
            tone = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate = AUDIO_RATE
            writer.add_audio_frame(frame, sent / AUDIO_RATE, block=True)
            sent += 1024
    for start, end, text in captions:
        writer.add_caption(start, end, text)
    writer.captions_final_until(seconds)
    if close:
        writer.close()
        assert writer.wait_closed(60)
        staging.rename(directory)
    else:
        assert writer.sync(60)
    assert writer.stats().failed is None
    return writer


# ---- the app -------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Site:
    running: Running
    hls_root: Path

    @property
    def url(self) -> str:
        return self.running.url


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    root = tmp_path / "hls"
    async with serve(test_settings(tmp_path, hls_dir=str(root))) as running:
        yield Site(running, root)


async def create_sitting(site: Site, sitting_id: str) -> str:
    async with httpx.AsyncClient(base_url=site.url, headers=site.running.auth) as client:
        r = await client.post("/api/sittings", json={"id": sitting_id, "title": "การประชุมวุฒิสภา", "chamber": "senate"})
        assert r.status_code == 201, r.text
        r = await client.post(f"/api/sittings/{sitting_id}/status", json={"status": "live"})
        assert r.status_code == 200, r.text
    return sitting_id


# ---- the watch page --------------------------------------------------------------------------------------------


async def test_watch_page_waits_for_the_stream_then_plays_the_recording_with_captions_on_the_picture(
    site: Site, page: Page
):
    """No stream: a 'no video yet' notice, retried; then the closed HLS plays from 0 with its WebVTT cue shown."""
    sid = await create_sitting(site, "senate-video")
    await page.goto(f"{site.url}/watch/{sid}")
    player = page.locator("#player")
    await expect(player).to_have_attribute("data-status", "novideo")
    await expect(page.locator("#player-message")).to_have_text("ยังไม่มีภาพถ่ายทอด")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")  # captions go on meanwhile

    await asyncio.to_thread(write_hls, site.hls_root / sid, seconds=RECORDING_S, captions=[OPENING, MOTION], close=True)
    await expect(player).to_have_attribute("data-status", "ready", timeout=20_000)
    await expect(player).to_have_attribute("data-live", "false")  # ENDLIST: a recording
    await expect(player).to_have_attribute("data-engine", "hls.js")
    await expect(page.locator(".player-poster")).to_be_hidden()
    assert await page.evaluate(f"{VIDEO}.paused && {VIDEO}.currentTime === 0")  # from the start, not the end

    await page.evaluate(f"{VIDEO}.play()")
    await page.wait_for_function(f"{VIDEO}.currentTime > 1")
    await page.wait_for_function(ACTIVE_CUE, arg=OPENING[2])
    track = await page.evaluate(
        "(t => ({kind: t.kind, lang: t.language, mode: t.mode}))(window.sapha.player.captionTrack())"
    )
    assert track == {"kind": "subtitles", "lang": "th", "mode": "showing"}
    font = await page.evaluate("getComputedStyle(document.getElementById('video'), '::cue').fontFamily")
    assert "Noto Sans Thai" in font


async def test_caption_time_links_and_deep_links_seek_the_video_to_media_time(site: Site, page: Page):
    """A transcript time link seeks the playing video to that media time; #t= on load seeks a recording there."""
    sid = await create_sitting(site, "senate-seek")
    await asyncio.to_thread(write_hls, site.hls_root / sid, seconds=RECORDING_S, captions=[OPENING, MOTION], close=True)
    recorder = site.running.app.state.recorder
    await recorder.caption_final(sid, "u-1", OPENING[2], OPENING[0], OPENING[1])
    await recorder.caption_final(sid, "u-2", MOTION[2], MOTION[0], MOTION[1])

    await page.goto(f"{site.url}/watch/{sid}")
    await expect(page.locator("#player")).to_have_attribute("data-status", "ready")
    await page.evaluate(
        f"""() => {{
            window.seeks = [];
            {VIDEO}.addEventListener("seeking", () => window.seeks.push(window.sapha.player.mediaTime()));
        }}"""
    )
    link = page.locator('#captions .caption.final[data-segment-id="u-2"] a.caption-time')
    await expect(link).to_have_attribute("href", "#t=6")
    await link.click()
    await expect(page).to_have_url(re.compile(r"#t=6$"))
    await page.wait_for_function(ACTIVE_CUE, arg=MOTION[2])
    # The page's seek, to the caption's start; hls.js may then nudge the playhead a little on past a gap.
    seeks = [t for t in await page.evaluate("window.seeks") if t > 1]
    assert seeks and seeks[0] == pytest.approx(MOTION[0], abs=0.05)
    assert not await page.evaluate(f"{VIDEO}.paused")  # following a time link means watching from there
    await expect(page.locator("#captions .caption.target .caption-text")).to_have_text(MOTION[2])

    deep = await page.context.new_page()
    await deep.goto(f"{site.url}/watch/{sid}#t=6.5")
    await expect(deep.locator("#player")).to_have_attribute("data-status", "ready")
    await deep.wait_for_function("Math.abs(window.sapha.player.mediaTime() - 6.5) < 0.05")
    assert await deep.evaluate(f"{VIDEO}.paused")  # a recording waits for the viewer
    await expect(deep.locator("#captions .caption.target .caption-text")).to_have_text(MOTION[2])
    await deep.close()


async def test_a_live_stream_autoplays_from_the_live_window_and_maps_video_time_to_media_time(site: Site, page: Page):
    """Live HLS autoplays in its window; media time = video time + the window's start, and cues sit on that clock."""
    sid = await create_sitting(site, "senate-live-video")
    writer = await asyncio.to_thread(
        write_hls, site.hls_root / sid, seconds=12.0, captions=[LIVE_FIRST, LIVE_SECOND], close=False, window=4
    )
    try:
        assert await asyncio.to_thread(lambda: "#EXT-X-ENDLIST" not in writer.media_playlist.read_text())
        await page.goto(f"{site.url}/watch/{sid}")
        await expect(page.locator("#player")).to_have_attribute("data-status", "ready")
        await expect(page.locator("#player")).to_have_attribute("data-live", "true")
        await page.wait_for_function(f"!{VIDEO}.paused && {VIDEO}.currentTime > 0")
        assert await page.evaluate(f"{VIDEO}.muted") is False  # autoplay was allowed with sound here

        # 11 one-second segments are complete (the 12th is still being written) and the window shows the last 4:
        # media seconds 7-11. The player's clock starts at the window, so media time = video time + about 7.
        offset = await page.evaluate(f"window.sapha.player.mediaTime() - {VIDEO}.currentTime")
        assert offset == pytest.approx(7.0, abs=0.1)
        shown = await page.wait_for_function(ACTIVE_CUE, arg=LIVE_SECOND[2])
        assert LIVE_SECOND[0] - 0.05 <= (await shown.json_value())["t"] <= LIVE_SECOND[1]
        # hls.js placed the WebVTT cues (media time, by X-TIMESTAMP-MAP) on the video clock with the same offset.
        cues: list[list[Any]] = await page.evaluate(
            "Array.from(window.sapha.player.captionTrack().cues).map(c => [c.startTime, c.endTime, c.text])"
        )
        starts = {text: start + offset for start, _, text in cues}
        assert starts[LIVE_SECOND[2]] == pytest.approx(LIVE_SECOND[0], abs=0.01)
        assert await page.evaluate("window.sapha.player.videoTime(9.5)") == pytest.approx(9.5 - offset, abs=0.01)
        assert await page.evaluate("window.sapha.player.videoTime(3)") is None  # slid out of the live window
        origin = await page.evaluate("async () => (await import('/static/player.js')).TS_ORIGIN_S")
        assert origin == TS_ORIGIN / MPEGTS_HZ  # the page's media clock is the writer's
    finally:
        await writer.aclose()


async def test_the_watch_page_plays_low_latency_hls_and_shows_a_partial_then_its_final_over_the_picture(
    site: Site, page: Page
):
    """The player sits the announced caption delay (plus margin, at least 3 s) behind live, reloads the playlist by
    blocking; a partial for the picture playing shows over it until the WebVTT has a cue, then its final does."""
    sid = await create_sitting(site, "senate-low-latency")
    recorder = site.running.app.state.recorder
    blocking: list[str] = []
    blocked = asyncio.Event()

    def on_request(request: Any) -> None:
        if "_HLS_msn=" in request.url:
            blocking.append(request.url)
            blocked.set()

    page.on("request", on_request)
    writer = await asyncio.to_thread(
        write_hls, site.hls_root / sid, seconds=12.0, captions=[LIVE_FIRST], close=False, window=16
    )
    try:
        master = await asyncio.to_thread(writer.master_playlist.read_text)
        delay = writer.stats().caption_delay
        assert delay is not None and f'DATA-ID="{CAPTION_DELAY_ID}",VALUE="{delay:.2f}"' in master
        await page.goto(f"{site.url}/watch/{sid}")
        await expect(page.locator("#player")).to_have_attribute("data-live", "true")
        target = max(delay + 0.75, 3.0)  # player.js: caption delay + CAPTION_MARGIN_S, at least MIN_TARGET_LATENCY_S
        assert await page.evaluate("window.sapha.player.targetLatency") == pytest.approx(target)
        assert await page.evaluate("window.sapha.player.hls.config.liveSyncDuration") == pytest.approx(target)
        # Playback runs up to the newest picture (media 11 s, the 12th segment is not closed) and waits there.
        await page.wait_for_function("window.sapha.player.mediaTime() > 10.2")
        assert await page.evaluate("window.sapha.player.hls.latestLevelDetails.canBlockReload") is True
        await asyncio.wait_for(blocked.wait(), 30)  # waiting at the edge: it asks for the next segment by blocking
        last = writer.stats().segments - 1
        assert any(f"_HLS_msn={last + 1}" in url for url in blocking), blocking

        caption = page.locator("#player #picture-caption")
        await expect(caption).to_be_hidden()  # no cue for this moment yet, and no words
        await recorder.caption_partial(sid, "u-live", "ขอเชิญท่าน", 10.0, 11.5)
        await expect(caption).to_be_visible()
        await expect(caption).to_have_attribute("data-kind", "partial")
        await expect(caption).to_have_text("ขอเชิญท่าน")
        await recorder.caption_partial(sid, "u-live", "ขอเชิญท่านสมาชิก", 10.0, 11.9)
        await expect(caption).to_have_text("ขอเชิญท่านสมาชิก")
        await recorder.caption_final(sid, "u-live", "ขอเชิญท่านสมาชิกอภิปราย", 10.0, 12.0)
        await expect(caption).to_have_attribute("data-kind", "final")
        await expect(caption).to_have_text("ขอเชิญท่านสมาชิกอภิปราย")
        # Over the picture: inside the video's box, in its lower part.
        video_box = await page.locator("#video").bounding_box()
        caption_box = await caption.bounding_box()
        assert video_box is not None and caption_box is not None
        assert video_box["y"] + video_box["height"] / 2 < caption_box["y"] < video_box["y"] + video_box["height"]
    finally:
        await writer.aclose()


async def test_a_caption_over_the_picture_gives_way_to_the_webvtt_cue_and_follows_media_time(site: Site, page: Page):
    """Over a recording with its cues: a final with a WebVTT cue is drawn by the browser only; one for another
    moment of the sitting waits for its own picture."""
    sid = await create_sitting(site, "senate-overlay")
    await asyncio.to_thread(write_hls, site.hls_root / sid, seconds=RECORDING_S, captions=[OPENING], close=True)
    recorder = site.running.app.state.recorder
    await page.goto(f"{site.url}/watch/{sid}")
    await expect(page.locator("#player")).to_have_attribute("data-status", "ready")
    await page.wait_for_function("window.sapha && window.sapha.client.state === 'live'")
    await recorder.caption_final(sid, "o-1", OPENING[2], OPENING[0], OPENING[1])
    await recorder.caption_final(sid, "o-2", "ยังไม่ถึงเวลา", 7.0, 8.0)
    caption = page.locator("#player #picture-caption")
    await page.evaluate(f"{VIDEO}.play()")
    await page.wait_for_function(ACTIVE_CUE, arg=OPENING[2])
    await expect(caption).to_be_hidden()  # the WebVTT cue is showing: the browser draws it
    await page.wait_for_function("window.sapha.player.mediaTime() > 7.1")
    await expect(caption).to_have_text("ยังไม่ถึงเวลา")  # no WebVTT cue here: the final, at its own moment


# ---- the embed ---------------------------------------------------------------------------------------------------


async def embed_frame(page: Page) -> Frame:
    for _ in range(200):
        frame = next((f for f in page.frames if "/embed/" in f.url), None)
        if frame is not None:
            return frame
        await page.wait_for_timeout(50)
    raise AssertionError("the embed iframe never loaded")


async def messages(page: Page, kind: str) -> list[dict[str, Any]]:
    return await page.evaluate("kind => window.saphaMessages.filter(m => m.type === kind)", kind)


async def test_the_embed_posts_captions_agenda_and_state_to_its_host_and_obeys_its_commands(site: Site, page: Page):
    """From another origin, the example host gets ready/caption/agenda/state messages; its play and pause work."""
    sid = await create_sitting(site, "senate-embed")
    await asyncio.to_thread(write_hls, site.hls_root / sid, seconds=RECORDING_S, captions=[OPENING, MOTION], close=True)
    recorder = site.running.app.state.recorder
    # The host page on http://localhost:<port>, the embed on http://127.0.0.1:<port>: two origins.
    host = site.url.replace("127.0.0.1", "localhost")
    await page.goto(f"{host}/static/embed-example.html?sitting={sid}&server={site.url}")
    await page.wait_for_function("window.saphaMessages.some(m => m.type === 'ready')")
    first = await page.evaluate("window.saphaMessages[0]")
    assert first["type"] == "ready" and first["source"] == "sapha" and first["sitting"] == sid
    assert first["title"] == "การประชุมวุฒิสภา" and first["status"] == "live" and first["agenda"] is None
    assert first["commands"] == ["play", "pause", "seek", "mute", "unmute"]
    frame = await embed_frame(page)
    assert frame.url.startswith(f"{site.url}/embed/{sid}?origin=")
    await frame.wait_for_function("window.sapha && window.sapha.client.state === 'live'")

    await recorder.caption_partial(sid, "e-1", "ท่านประธาน", 1.0, 2.0)
    await recorder.caption_final(sid, "e-1", "ท่านประธานที่เคารพ ขอเปิดการประชุม", 1.0, 2.8)
    await page.wait_for_function("window.saphaMessages.some(m => m.type === 'caption' && m.kind === 'final')")
    captions = await messages(page, "caption")
    assert [(m["kind"], m["text"], m["start"], m["segment_id"]) for m in captions] == [
        ("partial", "ท่านประธาน", 1.0, "e-1"),
        ("final", "ท่านประธานที่เคารพ ขอเปิดการประชุม", 1.0, "e-1"),
    ]
    assert isinstance(captions[1]["archive_id"], int)
    await expect(page.locator("#caption")).to_have_text("ท่านประธานที่เคารพ ขอเปิดการประชุม")

    await recorder.set_agenda_item(sid, "ระเบียบวาระที่ ๒ เรื่องที่ประธานจะแจ้งต่อที่ประชุม", None, 2)
    await page.wait_for_function("window.saphaMessages.some(m => m.type === 'agenda')")
    (agenda,) = await messages(page, "agenda")
    assert agenda["item"]["title"] == "ระเบียบวาระที่ ๒ เรื่องที่ประธานจะแจ้งต่อที่ประชุม" and agenda["item"]["order"] == 2

    await expect(frame.locator("#player")).to_have_attribute("data-status", "ready")
    await page.locator("button[data-command=play]").click()
    await page.wait_for_function("window.saphaMessages.some(m => m.type === 'state' && m.state === 'playing')")
    await frame.wait_for_function(f"{VIDEO}.currentTime > 0.5")
    await page.locator("button[data-command=pause]").click()
    await frame.wait_for_function(f"{VIDEO}.paused")
    await page.wait_for_function("window.saphaMessages.some(m => m.type === 'state' && m.state === 'paused')")
    paused = await page.evaluate("window.saphaMessages.findLast(m => m.type === 'state' && m.state === 'paused')")
    assert paused["live"] is False and paused["muted"] is False and paused["time"] > 0.5

    await page.evaluate(
        "server => document.getElementById('sapha').contentWindow.postMessage("
        "{source: 'sapha-host', command: 'seek'}, server)",
        site.url,
    )
    await page.wait_for_function("window.saphaMessages.some(m => m.type === 'error')")
    (error,) = await messages(page, "error")
    assert error["command"] == "seek" and "time" in error["error"]
