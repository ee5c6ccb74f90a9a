// The watch page: /watch/<sitting id>.
//
// The video (static/player.js: the sitting's HLS, captions over the picture) starts at once and looks for the
// stream by itself; everything else comes from the API and the WebSocket, as below.
//
// Load order matters: the sitting's state (whose `position` is read before the state itself), then the
// transcript, then a subscription from that position. Anything already drawn that comes again in the replay is
// recognised by its archive id and skipped, so nothing is lost and nothing shows twice.

import { PictureCaptions } from "/static/picture-captions.js";
import { SaphaPlayer } from "/static/player.js";
import { SaphaClient } from "/static/sapha-client.js";
import { followControl } from "/static/follow.js";

const CHAMBERS = { senate: "วุฒิสภา", joint: "ประชุมร่วมกันของรัฐสภา", committee: "คณะกรรมาธิการ" };
const STATUSES = { scheduled: "ยังไม่เริ่ม", live: "กำลังประชุม", adjourned: "ปิดประชุมแล้ว" };
const CONN = {
  idle: "กำลังโหลด…",
  connecting: "กำลังเชื่อมต่อ…",
  live: "เชื่อมต่อสด · live",
  reconnecting: "กำลังเชื่อมต่อใหม่… · reconnecting…",
  offline: "ออฟไลน์ · offline",
  closed: "ปิดการเชื่อมต่อ",
};
const RESULTS = { passed: "ผ่าน · เห็นชอบ", rejected: "ไม่ผ่าน · ไม่เห็นชอบ" };
const PLAYER_MESSAGES = {
  idle: ["กำลังตรวจหาสัญญาณวิดีโอ…", ""],
  probing: ["กำลังตรวจหาสัญญาณวิดีโอ…", ""],
  novideo: ["ยังไม่มีภาพถ่ายทอด", "วิดีโอจะเริ่มเองเมื่อการถ่ายทอดเริ่ม · คำบรรยายสดแสดงต่อเนื่องในแผงคำบรรยาย"],
  loading: ["กำลังโหลดวิดีโอ…", ""],
  error: ["เชื่อมต่อวิดีโอไม่ได้ — กำลังลองใหม่…", "คำบรรยายสดแสดงต่อเนื่องในแผงคำบรรยาย"],
  unsupported: ["เบราว์เซอร์นี้เล่นวิดีโอไม่ได้", "อ่านคำบรรยายสดได้ในแผงคำบรรยาย"],
  ready: ["", ""],
};

const $ = (id) => document.getElementById(id);
const sittingId = decodeURIComponent(location.pathname.replace(/\/+$/, "").split("/").pop() || "");
const apiBase = `/api/sittings/${encodeURIComponent(sittingId)}`;

const scroller = $("caption-scroll");
const list = $("captions");
const partialBox = $("partials");
const jumpButton = $("jump-latest");

const finals = new Map(); // archive id -> <li>
const partials = new Map(); // ASR segment id -> <div>
let sitting = null;
let follow = true; // keep the newest caption in view until the reader scrolls up
let player = null;
let overPicture = null; // the live caption over the video until its WebVTT cue arrives

// ---- small helpers ---------------------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "href" || key === "title" || key === "lang") {
      node.setAttribute(key, value);
    } else node[key] = value;
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}:${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

function mediaAnchor(seconds) {
  return `#t=${Number((seconds || 0).toFixed(2))}`;
}

// The permalink of a moment: the same as GET /api/segments/<id> gives ("permalink"), made absolute to share.
function momentLink(seconds) {
  const t = Number((Math.max(seconds || 0, 0)).toFixed(3));
  return `${location.origin}/watch/${encodeURIComponent(sittingId)}?t=${t}`;
}

const dateFormat = new Intl.DateTimeFormat("th-TH", { dateStyle: "long", timeStyle: "short", timeZone: "Asia/Bangkok" });

function thaiDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : `${dateFormat.format(d)} น.`;
}

const numberFormat = new Intl.NumberFormat("th-TH");

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  const body = await response.json().catch(() => null);
  if (!response.ok || !body || body.ok !== true) {
    const error = new Error((body && body.error) || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function withRetry(task) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const result = await task();
      $("load-error").hidden = true;
      return result;
    } catch (err) {
      const wait = Math.min(30000, 1000 * 2 ** attempt) * (0.5 + Math.random() / 2);
      $("load-error").textContent =
        err.status === 404 ? "ไม่พบการประชุมนี้" : `โหลดข้อมูลไม่สำเร็จ (${err.message}) — กำลังลองใหม่…`;
      $("load-error").hidden = false;
      if (err.status === 404) throw err;
      await sleep(wait);
    }
  }
}

// ---- sitting, agenda, speaker, vote ----------------------------------------------------------------------

function renderSitting(next) {
  sitting = { ...(sitting || {}), ...next };
  $("title").textContent = sitting.title || sittingId;
  document.title = `${sitting.title || sittingId} — Sapha`;
  const badge = $("status");
  badge.dataset.status = sitting.status || "";
  badge.textContent = STATUSES[sitting.status] || sitting.status || "";
  $("chamber").textContent = CHAMBERS[sitting.chamber] || sitting.chamber || "";
  $("when").textContent = thaiDate(sitting.started_at || sitting.scheduled_at || sitting.created_at);
  const reason = $("status-reason");
  reason.hidden = !sitting.reason;
  reason.textContent = sitting.reason ? `หมายเหตุ: ${sitting.reason}` : "";
}

function renderAgenda(item) {
  const box = $("agenda");
  if (!item) {
    box.replaceChildren(el("p", { class: "muted", text: "ยังไม่มีวาระ" }));
    return;
  }
  const title = el("p", { class: "agenda-title clamp", text: item.title, lang: "th" });
  const toggle = el("button", { class: "link-button", type: "button", text: "อ่านทั้งหมด", hidden: true });
  toggle.addEventListener("click", () => {
    const open = title.classList.toggle("clamp");
    toggle.textContent = open ? "อ่านทั้งหมด" : "ย่อ";
    toggle.setAttribute("aria-expanded", String(!open));
  });
  toggle.setAttribute("aria-expanded", "false");
  box.replaceChildren(
    el(
      "p",
      { class: "agenda-meta" },
      el("span", { class: "agenda-order", text: item.order ? `วาระที่ ${item.order}` : "วาระ" }),
      item.bill_id ? el("span", { class: "agenda-bill", text: `ร่างกฎหมาย ${item.bill_id}` }) : null,
    ),
    title,
    toggle,
    item.bill_id ? followControl(item.bill_id, { compact: true }) : null,
  );
  box.dataset.agendaId = item.id ?? "";
  requestAnimationFrame(() => {
    toggle.hidden = title.scrollHeight <= title.clientHeight + 1;
  });
}

function renderSpeaker(speaker) {
  const box = $("speaker");
  if (!speaker || !speaker.name) {
    box.replaceChildren(el("p", { class: "muted", text: "—" }));
    return;
  }
  box.replaceChildren(
    el("p", { class: "speaker-name", text: speaker.name }),
    speaker.role ? el("p", { class: "speaker-role", text: speaker.role }) : null,
  );
}

function renderVote(vote) {
  const box = $("vote");
  if (!vote) {
    box.replaceChildren(el("p", { class: "muted", text: "ยังไม่มีการลงมติ" }));
    return;
  }
  const counts = [
    ["yes", "เห็นด้วย", vote.yes],
    ["no", "ไม่เห็นด้วย", vote.no],
    ["abstain", "งดออกเสียง", vote.abstain],
    ["absent", "ไม่ลงคะแนน", vote.absent],
  ];
  const total = counts.reduce((sum, [, , n]) => sum + (n || 0), 0) || 1;
  const bar = el("div", { class: "vote-bar", "aria-hidden": "true" });
  for (const [key, , n] of counts) {
    const part = el("span", { class: `vote-bar-${key}` });
    part.style.flexGrow = String(n || 0);
    part.style.flexBasis = "0";
    if (!n) part.hidden = true;
    bar.append(part);
  }
  box.dataset.result = vote.result || "";
  box.replaceChildren(
    el("p", { class: "vote-result", "data-result": vote.result, text: RESULTS[vote.result] || vote.result }),
    el("p", { class: "vote-motion", text: vote.motion, lang: "th" }),
    bar,
    el(
      "dl",
      { class: "vote-counts" },
      ...counts.map(([key, label, n]) =>
        el(
          "div",
          { class: `vote-count vote-${key}`, title: `${Math.round(((n || 0) * 100) / total)}%` },
          el("dt", { text: label }),
          el("dd", { text: numberFormat.format(n || 0), "data-count": String(n || 0) }),
        ),
      ),
    ),
  );
}

// ---- captions --------------------------------------------------------------------------------------------

function captionsChanged() {
  $("captions-empty").hidden = finals.size > 0 || partials.size > 0;
  if (follow) scroller.scrollTop = scroller.scrollHeight;
  else jumpButton.hidden = false;
}

function copyButton(start) {
  return el("button", {
    class: "caption-copy",
    type: "button",
    "data-start": String(start),
    "aria-label": `คัดลอกลิงก์ไปยังช่วงเวลา ${clock(start)} · copy link to this moment`,
    title: "คัดลอกลิงก์ไปยังช่วงเวลานี้",
  }, linkIcon());
}

// A drawn chain-link icon rather than the 🔗 emoji: boxes without an emoji font (kiosks, some Linux desktops) show
// the emoji as an empty square.
const SVG = "http://www.w3.org/2000/svg";
function linkIcon() {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "16");
  svg.setAttribute("height", "16");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  for (const d of ["M10 14a5 5 0 0 0 7 0l3-3a5 5 0 0 0-7-7l-1 1", "M14 10a5 5 0 0 0-7 0l-3 3a5 5 0 0 0 7 7l1-1"]) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "2");
    path.setAttribute("stroke-linecap", "round");
    svg.append(path);
  }
  return svg;
}

function addFinal({ archiveId, segmentId, seq, start, end, text, corrected = false }) {
  if (segmentId !== null && segmentId !== undefined) removePartial(segmentId);
  if (archiveId === null || archiveId === undefined || finals.has(archiveId)) return false;
  const anchor = mediaAnchor(start);
  const item = el(
    "li",
    {
      class: "caption final",
      id: `c-${archiveId}`,
      "data-archive-id": String(archiveId),
      "data-segment-id": segmentId === null || segmentId === undefined ? "" : String(segmentId),
      "data-seq": seq === null || seq === undefined ? "" : String(seq),
      "data-start": String(start),
      "data-end": String(end),
    },
    el("a", { class: "caption-time", href: anchor, title: `ลิงก์ไปยังเวลา ${clock(start)} ของการประชุม`, text: clock(start) }),
    el("span", { class: "caption-text", text }),
    copyButton(start),
  );
  if (corrected) markCorrected(item);
  // Pieces of one utterance continue the same paragraph visually, yet each keeps its own link to its moment.
  const previous = list.lastElementChild;
  if (item.dataset.segmentId && previous && previous.dataset.segmentId === item.dataset.segmentId) {
    item.classList.add("cont");
  }
  list.append(item);
  finals.set(archiveId, item);
  return true;
}

function markCorrected(item) {
  item.classList.add("corrected");
  item.querySelector(".caption-text").setAttribute("title", "ข้อความนี้แก้ไขโดยเจ้าหน้าที่ · corrected");
}

// An operator's correction: the line keeps its place, time and link; only its words change, visibly marked.
function applyCorrection({ archive_id: archiveId, text }) {
  const item = finals.get(archiveId);
  if (!item || typeof text !== "string") return;
  item.querySelector(".caption-text").textContent = text;
  markCorrected(item);
}

function showPartial({ segment_id: segmentId, text, start }, seq) {
  if (segmentId === undefined || segmentId === null) return;
  let node = partials.get(segmentId);
  if (!node) {
    node = el(
      "div",
      { class: "caption partial", "data-segment-id": String(segmentId) },
      el("span", { class: "caption-time", text: clock(start) }),
      el("span", { class: "caption-text" }),
    );
    partials.set(segmentId, node);
    partialBox.append(node);
  }
  node.dataset.seq = String(seq);
  node.querySelector(".caption-text").textContent = text;
}

function removePartial(segmentId) {
  const node = partials.get(segmentId);
  if (node) {
    node.remove();
    partials.delete(segmentId);
  }
}

function clearCaptions() {
  list.replaceChildren();
  partialBox.replaceChildren();
  finals.clear();
  partials.clear();
}

scroller.addEventListener(
  "scroll",
  () => {
    follow = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
    if (follow) jumpButton.hidden = true;
  },
  { passive: true },
);

// "Copy link to this moment": the permalink onto the clipboard; where the Clipboard API is missing or refused (an
// http: page, an old browser), a selected text field and execCommand, and failing that the link shown to copy.
async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const field = el("textarea", { class: "copy-buffer", readOnly: true, "aria-hidden": "true" });
    field.value = text;
    document.body.append(field);
    field.select();
    let done = false;
    try {
      done = document.execCommand("copy");
    } catch {
      done = false;
    }
    field.remove();
    return done;
  }
}

list.addEventListener("click", async (event) => {
  const button = event.target.closest("button.caption-copy");
  if (!button) return;
  const link = momentLink(Number.parseFloat(button.dataset.start));
  const copied = await copyText(link);
  const status = $("copy-status");
  status.textContent = copied ? `คัดลอกลิงก์แล้ว: ${link}` : `คัดลอกไม่ได้ — ลิงก์: ${link}`;
  button.dataset.copied = copied ? "true" : "false";
});

jumpButton.addEventListener("click", () => {
  follow = true;
  jumpButton.hidden = true;
  scroller.scrollTop = scroller.scrollHeight;
});

function seekNote(text) {
  const note = $("seek-note");
  note.textContent = text;
  note.hidden = !text;
}

// The moment a link asks for: #t=<seconds> (a transcript time link followed on this page) wins over ?t=<seconds>
// (a permalink). Seconds, or H:MM:SS. NaN when there is one but it is no time; null when there is none.
function requestedTime() {
  const hash = /^#t=(.*)$/.exec(location.hash);
  const raw = hash ? decodeURIComponent(hash[1]) : new URLSearchParams(location.search).get("t");
  if (raw === null) return null;
  if (/^\d+(?:\.\d+)?$/.test(raw)) return Number.parseFloat(raw);
  const hms = /^(?:(\d+):)?([0-5]?\d):([0-5]\d(?:\.\d+)?)$/.exec(raw);
  if (hms) return Number(hms[1] || 0) * 3600 + Number(hms[2]) * 60 + Number.parseFloat(hms[3]);
  return Number.NaN;
}

// Where the player landed: a moment outside the recording (or the live window) was clamped, and the page says so
// instead of failing.
function onSeek({ requested, actual, clamped }) {
  if (!clamped) return;
  // The transcript keeps its line at the moment asked for (it may reach further than the video does).
  const why = sitting && sitting.status === "live" ? "ไม่อยู่ในช่วงที่ย้อนชมได้" : "เกินความยาวของวิดีโอ";
  seekNote(`เวลา ${clock(requested)} ${why} — เปิดวิดีโอที่ ${clock(actual)} แทน`);
}

// ?t= / #t= picks the caption being spoken at that moment of the sitting's media, and seeks the video there
// (media time: seconds since the start of the sitting's feed, the clock of captions and of the HLS stream).
function seekToHash({ play = false } = {}) {
  const t = requestedTime();
  if (t === null) return;
  if (!Number.isFinite(t)) {
    seekNote("ลิงก์เวลาไม่ถูกต้อง — แสดงการประชุมตั้งแต่ต้น");
    return;
  }
  seekNote("");
  // A moment after the last line of a finished sitting is past its end: the last line, and a note saying so.
  let last = -Infinity;
  for (const item of finals.values()) last = Math.max(last, Number.parseFloat(item.dataset.end));
  if (sitting && sitting.status === "adjourned" && Number.isFinite(last) && t > last) {
    seekNote(`เวลา ${clock(t)} เกินความยาวของบันทึก — แสดงช่วงท้ายแทน`);
  }
  // The player clamps into what the video has by itself, and says so through onSeek.
  if (player) player.seekMedia(t, { play, clamp: true });
  highlightAt(Number.isFinite(last) ? Math.min(t, last) : t);
}

function highlightAt(t) {
  let target = null;
  let best = -Infinity;
  for (const item of finals.values()) {
    const start = Number.parseFloat(item.dataset.start);
    if (start <= t + 0.005 && start > best) {
      best = start;
      target = item;
    }
  }
  if (!target) return;
  for (const old of list.querySelectorAll(".caption.target")) old.classList.remove("target");
  target.classList.add("target");
  follow = false;
  scroller.scrollTop = target.offsetTop - scroller.clientHeight / 3;
}

// A followed time link (or back/forward between them) is a request to watch that moment.
window.addEventListener("hashchange", () => seekToHash({ play: true }));

list.addEventListener("click", (event) => {
  const link = event.target.closest("a.caption-time");
  if (!link) return;
  // The same link twice changes no hash, so no hashchange: seek from here.
  if (link.hash === location.hash) seekToHash({ play: true });
  if (!navigator.clipboard) return;
  // After the default action has put the moment into the address bar, offer the link on the clipboard too.
  setTimeout(() => navigator.clipboard.writeText(location.href).catch(() => {}), 0);
});

// ---- state and events ------------------------------------------------------------------------------------

function renderAll(state, transcript) {
  renderSitting(state.sitting);
  renderAgenda(state.current_agenda_item);
  renderSpeaker(state.speaker);
  renderVote(state.votes && state.votes.length ? state.votes[state.votes.length - 1] : null);
  list.setAttribute("aria-busy", "true");
  clearCaptions();
  for (const segment of transcript.segments || []) {
    addFinal({
      archiveId: segment.id,
      segmentId: segment.utterance_id ?? null,
      seq: segment.seq,
      start: segment.start_ms / 1000,
      end: segment.end_ms / 1000,
      text: segment.text,
      corrected: segment.revision > 1,
    });
  }
  list.removeAttribute("aria-busy");
  captionsChanged();
}

async function loadAll() {
  const state = await getJSON(apiBase);
  const transcript = await getJSON(`${apiBase}/transcript?format=json`);
  renderAll(state, transcript);
  return state;
}

function apply(event) {
  const data = event.data || {};
  switch (event.type) {
    case "sitting.status":
      renderSitting({
        status: data.status,
        title: data.title ?? sitting?.title,
        chamber: data.chamber ?? sitting?.chamber,
        started_at: data.started_at ?? sitting?.started_at,
        reason: data.reason || null,
      });
      break;
    case "agenda.item":
      renderAgenda(data);
      break;
    case "speaker":
      renderSpeaker(data);
      break;
    case "vote.result":
      renderVote(data);
      break;
    case "caption.partial":
      overPicture?.partial(data);
      showPartial(data, event.seq);
      captionsChanged();
      break;
    case "caption.correction":
      applyCorrection(data);
      break;
    case "caption.final":
      overPicture?.final(data);
      addFinal({
        archiveId: data.archive_id,
        segmentId: data.segment_id,
        seq: event.seq,
        start: data.start,
        end: data.end,
        text: data.text,
      });
      captionsChanged();
      break;
    default:
      break;
  }
}

// While the state is being refetched after a reset, live events wait here and are applied on top of it.
let resetting = false;
let resetAgain = false;
let pending = [];

function onEvent(event) {
  if (resetting) pending.push(event);
  else apply(event);
}

async function onReset() {
  pending = [];
  if (resetting) {
    resetAgain = true;
    return;
  }
  resetting = true;
  try {
    do {
      resetAgain = false;
      await withRetry(loadAll);
    } while (resetAgain);
  } finally {
    resetting = false;
    const queued = pending;
    pending = [];
    for (const event of queued) apply(event);
  }
}

function setConnection(state) {
  const conn = $("conn");
  conn.dataset.state = state;
  $("conn-label").textContent = CONN[state] || state;
}

function setExportLinks() {
  $("json-link").href = apiBase;
  for (const format of ["txt", "vtt", "srt", "json", "akn"]) $(`tr-${format}`).href = `${apiBase}/transcript?format=${format}`;
}

// ---- video ---------------------------------------------------------------------------------------------

function renderPlayer(status, p) {
  const box = $("player");
  box.dataset.status = status;
  box.dataset.live = p.live === null ? "" : String(p.live);
  box.dataset.engine = p.engine || "";
  const [message, note] = PLAYER_MESSAGES[status] || PLAYER_MESSAGES.error;
  $("player-message").textContent = message;
  $("player-note").textContent = note;
  $("unmute").hidden = !(p.autoMuted && p.video.muted);
}

function startPlayer() {
  const video = $("video");
  player = new SaphaPlayer(video, {
    src: `/live/${encodeURIComponent(sittingId)}/index.m3u8`,
    onStatus: renderPlayer,
    onSeek,
  });
  $("unmute").addEventListener("click", () => {
    video.muted = false;
    $("unmute").hidden = true;
  });
  video.addEventListener("volumechange", () => {
    if (!video.muted) $("unmute").hidden = true;
  });
  player.start();
  overPicture = new PictureCaptions($("player"), () => player);
}

async function start() {
  setExportLinks();
  startPlayer();
  let state;
  try {
    state = await withRetry(loadAll);
  } catch {
    $("title").textContent = "ไม่พบการประชุมนี้";
    player.destroy();
    setConnection("closed");
    return;
  } finally {
    $("main").removeAttribute("aria-busy");
  }
  seekToHash();
  const client = new SaphaClient({ onEvent, onReset, onState: setConnection });
  // For debugging from the console (and for the browser tests): the client, its stats and last error frame.
  window.sapha = {
    client,
    player,
    sittingId,
    state: () => ({ sitting, finals: finals.size, partials: partials.size }),
  };
  client.subscribe(state.channel, { since: state.position.seq, epoch: state.position.epoch });
  client.connect();
}

start();
