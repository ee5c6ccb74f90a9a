// SaphaPlayer: plays a sitting's HLS (/live/<id>/index.m3u8) in a <video>, shared by /watch/<id> and /embed/<id>.
//
//   import { SaphaPlayer } from "/static/player.js";
//   const player = new SaphaPlayer(video, { src: `/live/${id}/index.m3u8`, onStatus(status, player) { ... } });
//   player.start();
//
// Engines. hls.js (vendored, loaded on first use) wherever Media Source Extensions exist, the browser's own HLS
// only where they do not (older iOS). Chromium now plays HLS natively too, but its native player ignores the
// playlist's WebVTT SUBTITLES rendition, and hls.js gives us the timestamps that map video time onto media time;
// so MSE wins even when `canPlayType("application/vnd.apple.mpegurl")` says "maybe".
//
// Status (`player.status`, and `onStatus`): "probing" (asking whether the stream exists), "novideo" (404: no
// stream yet; probed again with backoff), "loading", "ready" (attached; `live` says live or recording),
// "error" (failed; retried with backoff), "unsupported" (neither engine can play HLS here).
//
// Captions. The master playlist's Thai WebVTT rendition becomes a TextTrack of the <video> ("subtitles", "th")
// that is shown over the picture; style it with `video::cue`. `captionTrack()` returns it.
//
// How far behind live. Caption segments are written once captions are final (docs/hls.md), a few seconds after
// their picture; a player must stay that far behind the newest segment for each caption to be there before its
// picture. The writer measures that delay and announces it in the master playlist (EXT-X-SESSION-DATA
// "org.sapha.caption-delay", p95 seconds), so hls.js is told to stay `captionDelay + CAPTION_MARGIN_S` behind
// (at least MIN_TARGET_LATENCY_S; DEFAULT_TARGET_LATENCY_S while nothing is measured), and re-reads it every
// LATENCY_REFRESH_MS while live. `player.targetLatency` is the figure in use.
//
// Media time. Sapha stamps everything (captions, `#t=` links, transcript times) in media time: seconds since the
// start of the sitting's feed. stream/hls.py writes media time t as MPEG-TS timestamp TS_ORIGIN + t * 90 000.
// The <video>'s currentTime is the player's own timeline instead (hls.js starts it at the first segment it
// loaded, and a recording and a live window start in different places), so:
//
//   * hls.js reports, per discontinuity domain (`cc`), the `initPTS` it subtracted:
//       videoTime = (pts - initPTS) / timescale   and   pts = (TS_ORIGIN_S + mediaTime) * 90 000
//     hence   mediaTime = videoTime + initPTS / timescale - TS_ORIGIN_S   (the offset of that domain);
//   * a domain whose first segment has not been loaded yet (an earlier part of a recording with a reconnect in
//     it) is placed through EXT-X-PROGRAM-DATE-TIME, which the writer stamps as feed start + media time: one
//     known domain gives the feed's start, and every segment's date then gives its media time;
//   * native HLS gives neither, so there media time is taken to be currentTime: exact for a recording that starts
//     with the feed (Sapha's recordings do), and an approximation in a live window.

/** stream/hls.py's TS_ORIGIN in seconds: the MPEG-TS timestamp (over 90 kHz) that media time 0 is written as. */
export const TS_ORIGIN_S = 10;

export const HLS_JS_URL = "/static/vendor/hls.js/hls.min.js";

/** EXT-X-SESSION-DATA id under which stream/hls.py announces its captions' delay behind live (seconds, p95). */
export const CAPTION_DELAY_ID = "org.sapha.caption-delay";
/** Added to the announced caption delay: reloading the subtitle playlist, fetching and parsing a segment. 0.5 s left
 * the same few cues 0.5–0.64 s late in every benchmark run, 1.0 s put glass-to-glass at the 6 s edge; see
 * docs/benchmarks.md (Video). */
export const CAPTION_MARGIN_S = 0.75;
/** Never closer to live than this: 3 target durations of 1 s segments (the playlists' HOLD-BACK). */
export const MIN_TARGET_LATENCY_S = 3;
/** Before any caption delay is announced: room for a captioner whose finals come within 4.5 s. */
export const DEFAULT_TARGET_LATENCY_S = 6;
const LATENCY_REFRESH_MS = 30000;

/** The caption delay a master playlist announces (seconds), or null. */
export function captionDelay(master) {
  for (const line of String(master || "").split("\n")) {
    if (!line.startsWith("#EXT-X-SESSION-DATA:") || !line.includes(`DATA-ID="${CAPTION_DELAY_ID}"`)) continue;
    const value = /VALUE="([0-9.]+)"/.exec(line);
    const delay = value ? Number.parseFloat(value[1]) : Number.NaN;
    return Number.isFinite(delay) && delay >= 0 ? delay : null;
  }
  return null;
}

/** How far behind the live edge to play, given the announced caption delay (null: none announced). */
export function targetLatencyFor(delay) {
  if (delay === null || delay === undefined) return DEFAULT_TARGET_LATENCY_S;
  return Math.max(delay + CAPTION_MARGIN_S, MIN_TARGET_LATENCY_S);
}

const NATIVE_TYPE = "application/vnd.apple.mpegurl";

let hlsLoading = null;

/** Load the vendored hls.js (a UMD script that sets window.Hls) once per page. */
export function loadHlsJs(url = HLS_JS_URL) {
  if (globalThis.Hls) return Promise.resolve(globalThis.Hls);
  hlsLoading ??= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = url;
    script.async = true;
    script.onload = () => (globalThis.Hls ? resolve(globalThis.Hls) : reject(new Error("hls.js did not define Hls")));
    script.onerror = () => {
      hlsLoading = null;
      script.remove();
      reject(new Error(`could not load ${url}`));
    };
    document.head.append(script);
  });
  return hlsLoading;
}

/** Whether two master playlists name the same run's playlists (bandwidth and caption delay change within a run). */
function sameRun(a, b) {
  const uris = (text) => String(text || "").split("\n").filter((line) => line && !line.startsWith("#")).join("\n");
  return a !== null && b !== null && uris(a) === uris(b);
}

function hasMse() {
  return "MediaSource" in globalThis || "ManagedMediaSource" in globalThis;
}

export class SaphaPlayer {
  /**
   * @param {HTMLVideoElement} video
   * @param {object} options
   * @param {string} options.src                 the master playlist, e.g. /live/<id>/index.m3u8
   * @param {(status: string, player: SaphaPlayer) => void} [options.onStatus]
   * @param {(seek: {requested: number, actual: number, clamped: boolean}) => void} [options.onSeek]
   *        told where each seekMedia() landed, once it has (a clamped seek was outside what the stream offers)
   * @param {"live"|"never"} [options.autoplay="live"]  start playing by itself when the stream is live
   * @param {number} [options.minRetry=1000]     first retry delay (ms) after a 404 or a failure, doubled each time
   * @param {number} [options.maxRetry=30000]    cap on the retry delay (ms)
   * @param {string} [options.hlsUrl]            where hls.js is served
   */
  constructor(video, options) {
    this.video = video;
    this.src = options.src;
    this.onStatus = options.onStatus || (() => {});
    this.onSeek = options.onSeek || (() => {});
    this.autoplay = options.autoplay ?? "live";
    this.minRetry = options.minRetry ?? 1000;
    this.maxRetry = options.maxRetry ?? 30000;
    this.hlsUrl = options.hlsUrl || HLS_JS_URL;

    this.status = "idle";
    /** "hls.js" | "native" | null */
    this.engine = null;
    /** true: live playlist; false: a recording (ENDLIST); null: not known yet. */
    this.live = null;
    /** True after the player muted itself because the browser refused to autoplay with sound. */
    this.autoMuted = false;
    this.hls = null;
    this.lastError = null;

    this._attempt = 0;
    this._timer = 0;
    this._master = null; // the master playlist text this session was attached with
    /** Seconds behind the live edge this player aims for (see "How far behind live"). */
    this.targetLatency = DEFAULT_TARGET_LATENCY_S;
    this._latencyTimer = 0;
    this._offsets = new Map(); // hls.js discontinuity domain (cc) -> media time minus video time
    this._epochMs = null; // feed start as a Unix time (ms), from a segment's PROGRAM-DATE-TIME and its offset
    this._latestCc = null;
    this._pendingSeek = null; // {t, play} waiting for the stream to be mappable
    this._waitingForNewRun = false; // a live stream ended: watching index.m3u8 for the feed's next run
    this._wasLive = false; // this session's stream was live at some point
    this._recoveries = 0;
    this._stopped = true;
    this._onEnded = () => this._endedWhileLive();
    this._onLoadedMetadata = () => this._nativeMetadata();
    this._nativeTracks = () => this._showCaptionTrack();
  }

  /** Begin: probe for the stream, then play it; retries by itself until destroy(). */
  start() {
    if (!this._stopped) return this;
    this._stopped = false;
    this.video.addEventListener("ended", this._onEnded);
    this._probe();
    return this;
  }

  /** Stop everything and release the media element. */
  destroy() {
    this._stopped = true;
    clearTimeout(this._timer);
    this.video.removeEventListener("ended", this._onEnded);
    this._detach();
    this._setStatus("idle");
  }

  /** The Thai subtitles TextTrack on the video, once the stream has announced it. */
  captionTrack() {
    const tracks = Array.from(this.video.textTracks || []);
    const subtitles = tracks.filter((t) => t.kind === "subtitles" || t.kind === "captions");
    return subtitles.find((t) => (t.language || "").toLowerCase().startsWith("th")) || subtitles[0] || null;
  }

  /** Whether media times can be mapped onto the video (and so seeked to). */
  canMap() {
    if (this.status !== "ready") return false;
    return this.engine === "native" || this._offsets.size > 0;
  }

  /** Media time (seconds since the feed started) at a video time (default: now); null when not known. */
  mediaTime(videoTime = this.video.currentTime) {
    if (!this.canMap() || !Number.isFinite(videoTime)) return null;
    if (this.engine === "native") return videoTime;
    const fragment = this._fragmentAtVideo(videoTime);
    const offset = this._offsetOf(fragment);
    return offset === null ? null : videoTime + offset;
  }

  /** The video time at which media time `t` plays; null when it is not in what the playlist offers. */
  videoTime(t) {
    if (!this.canMap() || !Number.isFinite(t)) return null;
    if (this.engine === "native") return this._withinSeekable(t) ? t : null;
    const fragments = this._fragments();
    if (!fragments.length) return null;
    const slack = 0.25; // cue times and segment edges may differ by a frame or two
    for (const fragment of fragments) {
      const offset = this._offsetOf(fragment);
      if (offset === null) continue;
      const start = fragment.start + offset;
      if (t >= start - slack && t < start + fragment.duration) return Math.max(fragment.start, t - offset);
    }
    return null;
  }

  /** The media times the playlist offers now, {start, end} (a recording: all of it; live: the DVR window). */
  mediaRange() {
    if (!this.canMap()) return null;
    if (this.engine === "native") {
      const ranges = this.video.seekable;
      return ranges.length ? { start: ranges.start(0), end: ranges.end(ranges.length - 1) } : null;
    }
    const fragments = this._fragments();
    if (!fragments.length) return null;
    const first = fragments[0];
    const last = fragments[fragments.length - 1];
    const firstOffset = this._offsetOf(first);
    const lastOffset = this._offsetOf(last);
    if (firstOffset === null || lastOffset === null) return null;
    return { start: first.start + firstOffset, end: last.start + last.duration + lastOffset };
  }

  /**
   * Seek to media time `t`. Before the stream is ready (or mappable) the seek waits and happens then, so a
   * `#t=` or `?t=` deep link works on load. With `clamp`, a `t` outside the stream (past the end of a recording,
   * or out of a live window) goes to the nearest moment it has, and `onSeek` says so. Returns true when done (or
   * queued), false when `t` is outside the stream and not clamped.
   */
  seekMedia(t, { play = false, clamp = false } = {}) {
    if (!Number.isFinite(t) || t < 0) return false;
    if (!this.canMap()) {
      this._pendingSeek = { t, play, clamp };
      return true;
    }
    this._pendingSeek = null;
    const target = this._target(t, clamp);
    if (target === null) return false;
    this.video.currentTime = target.video;
    if (play) this.play();
    this._reportSeek(t, target.media);
    return true;
  }

  /** play(), falling back to muted playback when the browser refuses sound without a user gesture. */
  async play() {
    try {
      await this.video.play();
      return true;
    } catch (err) {
      if (err && err.name === "NotAllowedError" && !this.video.muted) {
        this.video.muted = true;
        this.autoMuted = true;
        try {
          await this.video.play();
          this._setStatus(this.status, true);
          return true;
        } catch {
          return false;
        }
      }
      return false;
    }
  }

  // ---- internals ----------------------------------------------------------------------------------------

  _setStatus(status, force = false) {
    if (this.status === status && !force) return;
    this.status = status;
    try {
      this.onStatus(status, this);
    } catch (err) {
      console.error("SaphaPlayer onStatus handler failed", err);
    }
  }

  _retry(status) {
    this._setStatus(status);
    clearTimeout(this._timer);
    // Exponential backoff with jitter, so that a sitting's viewers do not all ask at the same instant.
    const ceiling = Math.min(this.maxRetry, this.minRetry * 2 ** Math.min(this._attempt, 16));
    this._attempt += 1;
    this._timer = setTimeout(() => this._probe(), ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  async _probe() {
    if (this._stopped) return;
    if (!this._waitingForNewRun && this.status !== "novideo" && this.status !== "error") this._setStatus("probing");
    let text = null;
    let missing = false;
    try {
      const response = await fetch(this.src, { cache: "no-store" });
      if (response.ok) text = await response.text();
      else missing = response.status === 404;
    } catch (err) {
      this.lastError = String(err);
    }
    if (this._stopped) return;
    if (text === null || !text.startsWith("#EXTM3U")) {
      this._retry(missing ? "novideo" : "error");
      return;
    }
    if (this._waitingForNewRun && sameRun(text, this._master)) {
      // The stream we played has ended and no new one has started: stay on the recording, look again later.
      this._retry("ready");
      return;
    }
    this._waitingForNewRun = false;
    this._attempt = 0;
    this._master = text;
    await this._attach();
  }

  async _attach() {
    this._detach();
    this._setStatus("loading");
    const nativeOk = !!this.video.canPlayType && this.video.canPlayType(NATIVE_TYPE) !== "";
    let Hls = null;
    if (hasMse()) {
      try {
        Hls = await loadHlsJs(this.hlsUrl);
      } catch (err) {
        this.lastError = String(err);
      }
      if (this._stopped) return;
    }
    if (Hls && Hls.isSupported()) this._attachHlsJs(Hls);
    else if (nativeOk) this._attachNative();
    else this._setStatus("unsupported");
  }

  _detach() {
    clearInterval(this._latencyTimer);
    this._latencyTimer = 0;
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    if (this.engine === "native") {
      this.video.removeEventListener("loadedmetadata", this._onLoadedMetadata);
      this.video.textTracks?.removeEventListener?.("addtrack", this._nativeTracks);
      this.video.removeAttribute("src");
      this.video.load();
    }
    this.engine = null;
    this.live = null;
    this._wasLive = false;
    this._offsets.clear();
    this._epochMs = null;
    this._latestCc = null;
    this._recoveries = 0;
  }

  _attachHlsJs(Hls) {
    const hls = new Hls({
      enableWebVTT: true,
      renderTextTracksNatively: true, // cues become a TextTrack of the <video>, rendered (and styled) natively
      subtitleDisplay: true,
      // Live: stay behind the newest segment by the measured caption delay and a margin, no more: the WebVTT
      // segments trail the media while captions settle (docs/hls.md), and captions belong on their picture.
      liveSyncDuration: this._updateTargetLatency(this._master),
      // Drift back to that target after a stall (at most 10 % faster; pitch is kept).
      maxLiveSyncPlaybackRate: 1.1,
      // Keep a minute and a half behind the playhead, to rewind a little without refetching.
      backBufferLength: 90,
    });
    this.hls = hls;
    this.engine = "hls.js";
    const E = Hls.Events;
    hls.on(E.LEVEL_LOADED, (_, data) => {
      const first = this.live === null;
      const live = !!data.details.live;
      if (!first && live === this.live) return;
      this.live = live; // a live playlist that gains ENDLIST has become the recording
      this._wasLive ||= live;
      clearInterval(this._latencyTimer);
      if (live) this._latencyTimer = setInterval(() => this._refreshLatency(), LATENCY_REFRESH_MS);
      this._setStatus("ready", true);
      if (first && live && this.autoplay === "live" && !this._pendingSeek) this.play();
    });
    hls.on(E.INIT_PTS_FOUND, (_, data) => {
      if (data.id !== "main" || !Number.isFinite(data.initPTS) || !data.timescale) return;
      const offset = data.initPTS / data.timescale - TS_ORIGIN_S;
      this._offsets.set(data.frag.cc, offset);
      this._latestCc = data.frag.cc;
      if (Number.isFinite(data.frag.programDateTime)) {
        this._epochMs = data.frag.programDateTime - (data.frag.start + offset) * 1000;
      }
      this._applyPendingSeek();
    });
    hls.on(E.SUBTITLE_TRACKS_UPDATED, (_, data) => {
      const thai = (data.subtitleTracks || []).findIndex((t) => (t.lang || "").toLowerCase().startsWith("th"));
      if (thai >= 0 && hls.subtitleTrack !== thai) hls.subtitleTrack = thai;
    });
    hls.on(E.SUBTITLE_TRACK_SWITCH, () => this._showCaptionTrack());
    hls.on(E.ERROR, (_, data) => {
      if (!data.fatal) return;
      this.lastError = `${data.type}: ${data.details}`;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && this._recoveries < 2) {
        this._recoveries += 1;
        hls.recoverMediaError();
        return;
      }
      // The playlist went away (a restarted feed, a cleaned-up sitting) or the network failed: start over,
      // once hls.js has finished dispatching this event.
      const status = data.response && data.response.code === 404 ? "novideo" : "error";
      setTimeout(() => {
        if (this.hls !== hls) return;
        this._detach();
        this._retry(status);
      }, 0);
    });
    hls.loadSource(this.src);
    hls.attachMedia(this.video);
  }

  /** Aim `targetLatency` at what `master` announces; tells hls.js when it is already playing. */
  _updateTargetLatency(master) {
    const target = targetLatencyFor(captionDelay(master));
    const hls = this.hls;
    if (hls && target !== this.targetLatency) {
      hls.targetLatency = target;
      // hls.js only ever speeds up to reach its target; captions that got slower need the player further back,
      // which the back buffer usually holds already: step back there.
      const latency = hls.latency;
      if (this.live && Number.isFinite(latency) && latency > 0 && latency < target - 0.5) {
        this.video.currentTime = Math.max(0, this.video.currentTime - (target - latency));
      }
    }
    this.targetLatency = target;
    return target;
  }

  /** While live, follow the caption delay as the writer re-measures it (a captioner that slows down or catches up). */
  async _refreshLatency() {
    const hls = this.hls;
    try {
      const response = await fetch(this.src, { cache: "no-store" });
      const text = response.ok ? await response.text() : null;
      if (this.hls === hls && text !== null && sameRun(text, this._master)) this._updateTargetLatency(text);
    } catch {
      // The next refresh, or the player's own retries, will do.
    }
  }

  _attachNative() {
    this.engine = "native";
    this.video.addEventListener("loadedmetadata", this._onLoadedMetadata);
    this.video.textTracks?.addEventListener?.("addtrack", this._nativeTracks);
    this.video.src = this.src;
  }

  _nativeMetadata() {
    this.live = this.video.duration === Infinity;
    this._wasLive ||= this.live;
    this._setStatus("ready", true);
    this._showCaptionTrack();
    this._applyPendingSeek();
    if (this.live && this.autoplay === "live" && !this._pendingSeek) this.play();
  }

  _showCaptionTrack() {
    const track = this.captionTrack();
    if (track && track.mode !== "showing") track.mode = "showing";
  }

  /** Where media time `t` plays ({video, media}), clamped into the stream when asked; null when not there. */
  _target(t, clamp) {
    const video = this.videoTime(t);
    if (video !== null) return { video, media: t };
    const range = clamp ? this.mediaRange() : null;
    if (!range) return null;
    // Just inside the ends: the last fragment's end is no frame at all, and a window's start may slide away.
    const media = Math.min(Math.max(t, range.start + 0.05), Math.max(range.start, range.end - 0.25));
    const clamped = this.videoTime(media);
    return clamped === null ? null : { video: clamped, media };
  }

  _reportSeek(requested, actual) {
    try {
      this.onSeek({ requested, actual, clamped: Math.abs(actual - requested) > 0.01 });
    } catch (err) {
      console.error("SaphaPlayer onSeek handler failed", err);
    }
  }

  _applyPendingSeek() {
    const pending = this._pendingSeek;
    if (!pending || !this.canMap()) return;
    this._pendingSeek = null;
    const target = this._target(pending.t, pending.clamp);
    if (target !== null) {
      this.video.currentTime = target.video;
      if (pending.play || (this.live && this.autoplay === "live")) this.play();
      this._reportSeek(pending.t, target.media);
    } else if (this.live && this.autoplay === "live") {
      this.play(); // the moment has left the live window: play live instead
    }
  }

  _endedWhileLive() {
    // A live stream that ends was closed by its feed: it may come back as a new run (a restarted feed writes new
    // playlists and points index.m3u8 at them). Keep looking, without leaving the recording we have.
    if (this._stopped || this.engine === null || !this._wasLive) return;
    this._waitingForNewRun = true;
    this._attempt = Math.max(this._attempt, 2);
    this._retry("ready");
  }

  _fragments() {
    const details = this.hls && (this.hls.latestLevelDetails || this.hls.levels?.[this.hls.currentLevel]?.details);
    return (details && details.fragments) || [];
  }

  _fragmentAtVideo(videoTime) {
    let found = null;
    for (const fragment of this._fragments()) {
      if (fragment.start <= videoTime + 0.001) found = fragment;
      else break;
    }
    return found;
  }

  _offsetOf(fragment) {
    if (fragment && this._offsets.has(fragment.cc)) return this._offsets.get(fragment.cc);
    if (fragment && this._epochMs !== null && Number.isFinite(fragment.programDateTime)) {
      return (fragment.programDateTime - this._epochMs) / 1000 - fragment.start;
    }
    return this._latestCc === null ? null : this._offsets.get(this._latestCc);
  }

  _withinSeekable(t) {
    const ranges = this.video.seekable;
    for (let i = 0; i < ranges.length; i += 1) if (t >= ranges.start(i) && t <= ranges.end(i)) return true;
    return false;
  }
}
