// The embeddable player: /embed/<sitting id>, made for <iframe>s. docs/embed.md has the snippet and the API.
//
// Query parameters:
//   origin=<origin>[,<origin>...]  only these host origins receive messages and may send commands (default: any)
//   autoplay=0                     do not start a live stream by itself (default: live streams autoplay)
//   muted=1                        start muted
//
// Messages to the host page (window.parent), all {"source": "sapha", "version": 1, "sitting": <id>, "type": ...}:
//   ready    {title, chamber, status, agenda: <item> | null, commands: [...]}  (status: the sitting's; nulls if unknown)
//   caption  {kind: "partial" | "final", text, start, end, segment_id, archive_id}   (live WebSocket captions)
//   agenda   {item: {id, order, title, bill_id, ...}}                                (the agenda moved on)
//   state    {state, time, live, muted}                                              (playback; see docs/embed.md)
//   error    {error, command}                                                        (a command it could not take)
// Commands from the host: {"source": "sapha-host", "command": "play" | "pause" | "seek" | "mute" | "unmute"},
// seek with "time": media seconds (the clock of caption start/end and of #t= links).

import { $, getJSON, withRetry } from "/static/common.js";
import { SaphaPlayer } from "/static/player.js";
import { SaphaClient } from "/static/sapha-client.js";

const VERSION = 1;
const COMMANDS = ["play", "pause", "seek", "mute", "unmute"];
const TIME_EVERY_MS = 1000; // while playing, a state message at most this often (plus one on every change)
const MESSAGES = {
  idle: "กำลังตรวจหาสัญญาณวิดีโอ…",
  probing: "กำลังตรวจหาสัญญาณวิดีโอ…",
  novideo: "ยังไม่มีภาพถ่ายทอด",
  loading: "กำลังโหลดวิดีโอ…",
  error: "เชื่อมต่อวิดีโอไม่ได้ — กำลังลองใหม่…",
  unsupported: "เบราว์เซอร์นี้เล่นวิดีโอไม่ได้",
  ready: "",
};

const sittingId = decodeURIComponent(location.pathname.replace(/\/+$/, "").split("/").pop() || "");
const apiBase = `/api/sittings/${encodeURIComponent(sittingId)}`;
const params = new URLSearchParams(location.search);
const video = $("video");
const framed = window.parent !== window;

// ---- where messages may go ---------------------------------------------------------------------------------

/** null: any origin; otherwise the allowed origins (an ?origin= with nothing valid in it allows none). */
function allowedOrigins(value) {
  if (value === null || value.trim() === "") return null;
  const origins = [];
  for (const part of value.split(/[\s,]+/)) {
    if (!part) continue;
    try {
      const origin = new URL(part).origin;
      if (origin !== "null" && !origins.includes(origin)) origins.push(origin);
    } catch {
      console.warn(`Sapha embed: ignoring ?origin= entry that is not an origin: ${part}`);
    }
  }
  return origins;
}

const allowed = allowedOrigins(params.get("origin"));

// The parent's origin where the browser tells it (Chromium, Safari); elsewhere unknown.
const parentOrigin = framed && location.ancestorOrigins && location.ancestorOrigins.length ? location.ancestorOrigins[0] : null;

function post(type, payload = {}) {
  if (!framed) return;
  const message = { source: "sapha", version: VERSION, sitting: sittingId, type, ...payload };
  if (allowed === null) {
    // targetOrigin "*": every message carries only what this public page shows anyone anyway (captions, agenda,
    // playback state), and an embed has to work on any host page without configuration. A host that wants the
    // messages delivered to its own origin only passes ?origin=.
    window.parent.postMessage(message, "*");
    return;
  }
  if (parentOrigin !== null) {
    if (allowed.includes(parentOrigin)) window.parent.postMessage(message, parentOrigin);
    return;
  }
  // The parent's origin is unknown here: postMessage delivers only where targetOrigin matches the recipient,
  // so posting once per allowed origin reaches the parent exactly when it is one of them.
  for (const origin of allowed) window.parent.postMessage(message, origin);
}

// ---- commands from the host ----------------------------------------------------------------------------------

/** Why a message addressed to us cannot be obeyed, or null when it can. */
function problemWith(data) {
  if (typeof data.command !== "string" || !COMMANDS.includes(data.command)) {
    return `unknown command; expected one of ${COMMANDS.join(", ")}`;
  }
  if (data.command === "seek" && !(typeof data.time === "number" && Number.isFinite(data.time) && data.time >= 0)) {
    return "seek needs time: a number of media seconds, 0 or more";
  }
  return null;
}

let playWhenReady = false;

function obey(data) {
  switch (data.command) {
    case "play":
      if (player.status !== "ready") {
        playWhenReady = true; // no stream yet: play when it comes
        break;
      }
      player.play().then((ok) => {
        if (!ok) post("error", { error: "the browser refused to play", command: "play" });
      });
      break;
    case "pause":
      playWhenReady = false;
      video.pause();
      break;
    case "seek":
      if (!player.seekMedia(data.time)) post("error", { error: "that time is not in the stream", command: "seek" });
      break;
    case "mute":
      video.muted = true;
      break;
    case "unmute":
      // Browsers that allow autoplay only when muted may pause a video unmuted without a click inside the frame;
      // the state message that follows says so.
      video.muted = false;
      break;
    default:
      break;
  }
}

window.addEventListener("message", (event) => {
  if (!framed || event.source !== window.parent) return; // only the page that embeds us gives commands
  if (allowed !== null && !allowed.includes(event.origin)) return;
  const data = event.data;
  if (!data || typeof data !== "object" || Array.isArray(data) || data.source !== "sapha-host") return; // not ours
  const problem = problemWith(data);
  if (problem) {
    post("error", { error: problem, command: typeof data.command === "string" ? data.command : null });
    return;
  }
  obey(data);
});

// ---- playback state ------------------------------------------------------------------------------------------

function playbackState() {
  if (player.status !== "ready") {
    if (player.status === "novideo" || player.status === "unsupported") return player.status;
    return "loading";
  }
  if (video.ended) return "ended";
  if (video.paused) return "paused";
  return video.readyState < 3 ? "buffering" : "playing";
}

let lastStatePost = 0;
let readySent = false; // "ready" is always the first message

function postState() {
  if (!readySent) return;
  lastStatePost = performance.now();
  const time = player.mediaTime();
  post("state", {
    state: playbackState(),
    time: time === null ? null : Math.round(time * 1000) / 1000,
    live: player.live,
    muted: video.muted,
  });
}

for (const name of ["play", "playing", "pause", "waiting", "seeked", "ended", "volumechange"]) {
  video.addEventListener(name, postState);
}
video.addEventListener("timeupdate", () => {
  if (!video.paused && performance.now() - lastStatePost >= TIME_EVERY_MS) postState();
});

// ---- the player ----------------------------------------------------------------------------------------------

function renderPlayer(status, p) {
  const box = $("player");
  box.dataset.status = status;
  box.dataset.live = p.live === null ? "" : String(p.live);
  box.dataset.engine = p.engine || "";
  $("player-message").textContent = MESSAGES[status] ?? MESSAGES.error;
  $("unmute").hidden = !(p.autoMuted && video.muted);
  if (status === "ready" && playWhenReady) {
    playWhenReady = false;
    p.play();
  }
  postState();
}

if (params.get("muted") === "1") video.muted = true;
const player = new SaphaPlayer(video, {
  src: `/live/${encodeURIComponent(sittingId)}/index.m3u8`,
  autoplay: params.get("autoplay") === "0" ? "never" : "live",
  onStatus: renderPlayer,
});
$("unmute").addEventListener("click", () => {
  video.muted = false;
  $("unmute").hidden = true;
});
$("embed-link").href = `/watch/${encodeURIComponent(sittingId)}`;

// ---- captions and agenda from the live WebSocket ----------------------------------------------------------

let agendaId = null;

function showCaption(kind, text) {
  const box = $("embed-caption");
  box.dataset.kind = kind;
  box.textContent = text;
}

function agendaChanged(item) {
  if (!item || item.id === agendaId) return;
  agendaId = item.id;
  post("agenda", { item });
}

function onEvent(event) {
  const data = event.data || {};
  switch (event.type) {
    case "caption.partial":
    case "caption.final": {
      const kind = event.type === "caption.final" ? "final" : "partial";
      showCaption(kind, data.text || "");
      post("caption", {
        kind,
        text: data.text || "",
        start: data.start ?? null,
        end: data.end ?? null,
        segment_id: data.segment_id ?? null,
        archive_id: data.archive_id ?? null,
      });
      break;
    }
    case "agenda.item":
      agendaChanged(data);
      break;
    case "sitting.status":
      if (data.title) $("embed-title").textContent = data.title;
      break;
    default:
      break;
  }
}

// The sitting's state, retried with backoff until it answers (a 404 is final).
const getStateWithRetry = () => withRetry(() => getJSON(apiBase));

async function onReset() {
  // The event history was lost: what changed meanwhile is in the state. Captions are live only, so none to redo.
  const state = await getStateWithRetry().catch(() => null);
  if (state) agendaChanged(state.current_agenda_item);
}

async function start() {
  player.start();
  let state = null;
  try {
    state = await getStateWithRetry();
  } catch {
    $("player-message").textContent = "ไม่พบการประชุมนี้";
    player.destroy();
  }
  const sitting = state && state.sitting;
  if (sitting) {
    $("embed-title").textContent = sitting.title || sittingId;
    document.title = `${sitting.title || sittingId} — Sapha`;
  }
  agendaId = state && state.current_agenda_item ? state.current_agenda_item.id : null;
  post("ready", {
    title: sitting ? sitting.title : null,
    chamber: sitting ? sitting.chamber : null,
    status: sitting ? sitting.status : null,
    agenda: (state && state.current_agenda_item) || null,
    commands: COMMANDS,
  });
  readySent = true;
  postState();
  if (!state) return;
  const client = new SaphaClient({ onEvent, onReset });
  window.sapha = { client, player, sittingId };
  client.subscribe(state.channel, { since: state.position.seq, epoch: state.position.epoch });
  client.connect();
}

start();
