// PictureCaptions: the live caption over the picture while the HLS WebVTT track does not have it yet.
//
//   import { PictureCaptions } from "/static/picture-captions.js";
//   const over = new PictureCaptions(playerBox, () => player);   // player: a SaphaPlayer
//   over.partial(event.data);   // each caption.partial event
//   over.final(event.data);     // each caption.final event
//
// The WebVTT track carries finals only, and only once the segment they fall in is written (docs/hls.md), so a
// player close to live can reach a picture before its caption segment. The page already has the words from the
// WebSocket: partials as they are heard, finals as soon as they are final. So, for the media time of the picture
// playing now (SaphaPlayer.mediaTime: the video's position mapped through the stream's timestamps), this shows
//
//   * nothing, when a cue of the WebVTT track is showing (the browser draws it, styled with `video::cue`);
//   * else the final whose time span holds that moment (it arrived before its caption segment);
//   * else the partial of the utterance being spoken at that moment, until its final replaces it.
//
// Caption times are media time, the HLS stream's clock, so each is shown while its own picture plays, not when it
// arrives. The element is aria-hidden: the captions panel is the accessible copy of the same words.

/** How often the picture's media time is checked: a caption appears within this of its picture. */
const TICK_MS = 100;
/** A partial stays on this long past its last word while the utterance goes on (its next words are coming). */
const PARTIAL_HOLD_S = 1.5;
/** Finals remembered for the picture: the newest this many (a live player is seconds, not minutes, behind). */
const RECENT_FINALS = 64;
/** Partials remembered at most (one per utterance in progress; a lost final must not grow this). */
const MAX_PARTIALS = 16;
/** The tail of a long partial that fits two lines over the picture. */
const MAX_CHARS = 84;

// Thai vowels and tone marks written above or below a consonant: a cut must not leave one without its consonant.
const COMBINING = /^[\u0E31\u0E34-\u0E3A\u0E47-\u0E4E]+/;

function tail(text) {
  if (text.length <= MAX_CHARS) return text;
  return `…${text.slice(-MAX_CHARS).replace(COMBINING, "")}`;
}

export class PictureCaptions {
  /**
   * @param {HTMLElement} box       the element around the <video> (positioned), where the caption is drawn
   * @param {() => object|null} getPlayer  the SaphaPlayer (or null before there is one)
   */
  constructor(box, getPlayer) {
    this.getPlayer = getPlayer;
    this.node = document.createElement("div");
    this.node.id = "picture-caption";
    this.node.className = "player-caption";
    this.node.setAttribute("aria-hidden", "true");
    this.node.lang = "th";
    this.node.hidden = true;
    this.text = document.createElement("span");
    this.node.append(this.text);
    box.append(this.node);
    this._partials = new Map(); // ASR segment id -> {start, end, text}
    this._finals = []; // {start, end, text}, oldest first, at most RECENT_FINALS
    this._timer = setInterval(() => this.update(), TICK_MS);
  }

  /** A caption.partial event's data: the utterance so far, from `start` to `end` (media seconds). */
  partial({ segment_id: id, text, start, end }) {
    if (id === undefined || id === null || typeof text !== "string" || !Number.isFinite(start)) return;
    this._partials.delete(id);
    this._partials.set(id, { start, end: Number.isFinite(end) ? end : start, text });
    while (this._partials.size > MAX_PARTIALS) this._partials.delete(this._partials.keys().next().value);
    this.update();
  }

  /** A caption.final event's data: it replaces its utterance's partial. */
  final({ segment_id: id, text, start, end }) {
    if (id !== undefined && id !== null) this._partials.delete(id);
    if (typeof text === "string" && Number.isFinite(start) && Number.isFinite(end)) {
      this._finals.push({ start, end, text });
      if (this._finals.length > RECENT_FINALS) this._finals.shift();
    }
    this.update();
  }

  clear() {
    this._partials.clear();
    this._finals = [];
    this.update();
  }

  /** What is over the picture now: {kind: "final"|"partial", text}, or null. */
  current() {
    const player = this.getPlayer();
    if (!player || player.status !== "ready") return null;
    const track = player.captionTrack();
    if (track && track.mode === "showing" && track.activeCues && track.activeCues.length) return null;
    const t = player.mediaTime();
    if (t === null) return null;
    for (let i = this._finals.length - 1; i >= 0; i -= 1) {
      const cue = this._finals[i];
      if (cue.start - 0.05 <= t && t < cue.end) return { kind: "final", text: cue.text };
    }
    let best = null;
    for (const cue of this._partials.values()) {
      if (cue.start - 0.05 <= t && t <= cue.end + PARTIAL_HOLD_S && (!best || cue.start > best.start)) best = cue;
    }
    return best && { kind: "partial", text: tail(best.text) };
  }

  update() {
    const shown = this.current();
    this.node.hidden = !shown;
    this.node.dataset.kind = shown ? shown.kind : "";
    if (shown && this.text.textContent !== shown.text) this.text.textContent = shown.text;
  }

  destroy() {
    clearInterval(this._timer);
    this.node.remove();
  }
}
