// The bill page: /bills/<bill id>. Everything the archive holds about one bill, newest first: the sittings that took
// it up, its agenda items, its votes, and the transcript lines that name it (each a permalink to its moment).
// Its JSON twin is /api/bills/<bill id>, the same document this page draws.

import { $, CHAMBERS, RESULTS, clock, el, getJSON, thaiDate } from "/static/common.js";
import { followControl } from "/static/follow.js";

const billId = decodeURIComponent(location.pathname.replace(/\/+$/, "").split("/").pop() || "");
const api = `/api/bills/${encodeURIComponent(billId)}`;

function seconds(ms) {
  const whole = Math.floor(Math.max(ms, 0) / 1000);
  const frac = Math.max(ms, 0) % 1000;
  return frac ? `${whole}.${String(frac).padStart(3, "0").replace(/0+$/, "")}` : String(whole);
}

const watch = (sittingId, ms) =>
  `/watch/${encodeURIComponent(sittingId)}${ms === null || ms === undefined ? "" : `?t=${seconds(ms)}`}`;

function fill(id, items, empty, draw) {
  const list = $(id);
  list.replaceChildren(...(items.length ? items.map(draw) : [el("li", { class: "muted", text: empty })]));
}

const dayFormat = new Intl.DateTimeFormat("th-TH", { dateStyle: "long", timeZone: "UTC" });

// A YYYY-MM-DD day as Thai words ("8 กันยายน 2567"); "" when missing.
function thaiDay(day) {
  if (!day) return "";
  const d = new Date(`${day}T00:00:00Z`);
  return Number.isNaN(d.getTime()) ? day : dayFormat.format(d);
}

function details(bill) {
  const rows = [
    ["ประเภท", bill.type_label],
    ["ขั้นตอนปัจจุบัน", bill.stage_label],
    ["ผู้เสนอ", bill.proposer],
    ["หน่วยงานที่เกี่ยวข้อง", (bill.agencies || []).join(", ")],
    ["หัวข้อ", (bill.topics || []).join(", ")],
  ].filter(([, value]) => value);
  $("bill-details").replaceChildren(...rows.flatMap(([term, value]) => [el("dt", { text: term }), el("dd", { text: value })]));
}

// "วันที่ 41 จาก 60 วันในสมัยประชุม; ถือว่าให้ความเห็นชอบ วันที่ …" (sec. 136, archive/senate_clock.py).
function clockText(c) {
  const deemed = c.deemed_approved_on
    ? `ถือว่าให้ความเห็นชอบ วันที่ ${thaiDay(c.deemed_approved_on)}`
    : "ยังคำนวณวันครบกำหนดไม่ได้ (ปฏิทินสมัยประชุมยังไม่ถึง หรือรอศาลรัฐธรรมนูญวินิจฉัย)";
  if (c.state === "expired") return `ครบ ${c.limit} วันในสมัยประชุมแล้ว; ${deemed}`;
  return `วันที่ ${c.day} จาก ${c.limit} วันในสมัยประชุม; ${deemed}`;
}

const CLOCK_STATES = {
  running: "กำลังนับวัน",
  out_of_session: "อยู่นอกสมัยประชุม — หยุดนับ",
  paused: "อยู่ระหว่างศาลรัฐธรรมนูญพิจารณา (มาตรา ๑๓๙) — หยุดนับ",
  not_arrived: "ยังไม่ถึงวุฒิสภา",
  expired: "พ้นกำหนดเวลาแล้ว",
};

function renderClock(body) {
  const c = body.clock;
  $("clock-card").hidden = !c;
  if (!c) return;
  $("clock").textContent = clockText(c);
  $("clock").dataset.state = c.state;
  const notes = [CLOCK_STATES[c.state] || c.state, `ถึงวุฒิสภา ${thaiDay(c.arrived_on)}`];
  if (c.extension_days) notes.push(`ขยายเวลา ${c.extension_days} วัน`);
  if (c.state !== "expired") notes.push(`เหลือ ${c.days_left} วัน`);
  $("clock-note").textContent = notes.join(" · ");
}

// The stage history, oldest first, each step with its date and the sitting (at the agenda item's moment) behind it.
function renderStages(body, titles) {
  const agenda = new Map(body.agenda_items.map((a) => [a.id, a]));
  const items = body.stages.map((change, i) => {
    const links = [];
    if (change.sitting_id) {
      const item = agenda.get(change.agenda_item_id);
      const sitting = titles.get(change.sitting_id) || change.sitting_id;
      links.push(el("a", { href: watch(change.sitting_id, item ? item.media_ms : null), text: sitting }));
      if (item) links.push(el("span", { class: "muted", text: ` · วาระที่ ${item.order}` }));
      if (change.vote_id !== null) links.push(el("span", { class: "muted", text: " · มีการลงมติ" }));
    }
    return el(
      "li",
      { class: "bill-step", "data-stage": change.stage, "aria-current": i === body.stages.length - 1 ? "step" : null },
      el("time", { class: "bill-step-date", datetime: change.on, text: thaiDay(change.on) }),
      el("span", { class: "bill-step-label", text: ` ${change.stage_label}` }),
      change.note ? el("span", { class: "muted", text: ` — ${change.note}` }) : null,
      links.length ? el("span", { class: "bill-step-links" }, " · ", ...links) : null,
    );
  });
  $("stages").replaceChildren(...(items.length ? items : [el("li", { class: "muted", text: "ยังไม่มีการบันทึกขั้นตอน" })]));
  const next = body.next_stages.map((n) => n.label).join(" / ");
  $("next-stages").textContent = next ? `ขั้นตอนถัดไปที่เป็นไปได้: ${next}` : "";
}

function render(body) {
  const { bill } = body;
  const titles = new Map(body.sittings.map((s) => [s.id, s.title]));
  document.title = `${bill.title} — Sapha`;
  $("title").textContent = bill.title;
  $("bill-id").textContent = `ร่างกฎหมาย ${bill.id}`;
  $("bill-status").textContent = bill.status ? `สถานะ: ${bill.status}` : "";
  details(bill);
  renderClock(body);
  renderStages(body, new Map(body.sittings.map((s) => [s.id, s.title])));

  fill("sittings", body.sittings, "ยังไม่มีการประชุมที่พิจารณา", (s) => {
    const when = s.started_at || s.scheduled_at || s.created_at;
    return el(
      "li",
      { class: "bill-item", "data-sitting-id": s.id },
      el("a", { href: watch(s.id), text: s.title }),
      el("span", { class: "muted", text: ` · ${CHAMBERS[s.chamber] || s.chamber} · ${thaiDate(when)}` }),
    );
  });
  fill("agenda", body.agenda_items, "ยังไม่มีวาระ", (a) =>
    el(
      "li",
      { class: "bill-item", "data-agenda-id": String(a.id) },
      el("a", { href: watch(a.sitting_id, a.media_ms), text: `วาระที่ ${a.order}: ${a.title}` }),
      el("span", { class: "muted", text: ` · ${titles.get(a.sitting_id) || a.sitting_id} · ${thaiDate(a.started_at)}` }),
    ),
  );
  fill("votes", body.votes, "ยังไม่มีการลงมติ", (v) =>
    el(
      "li",
      { class: "bill-item", "data-vote-id": String(v.id) },
      el("span", { class: "vote-result", "data-result": v.result, text: RESULTS[v.result] || v.result }),
      el("span", { text: ` ${v.motion} — เห็นด้วย ${v.yes} · ไม่เห็นด้วย ${v.no} · งดออกเสียง ${v.abstain}` }),
      el("span", { class: "muted", text: ` · ${titles.get(v.sitting_id) || v.sitting_id} · ${thaiDate(v.recorded_at)}` }),
    ),
  );
  fill("segments", body.segments, "ยังไม่มีคำอภิปรายที่กล่าวถึง", (s) =>
    el(
      "li",
      { class: "bill-item", "data-segment-id": String(s.id) },
      el("a", { class: "caption-time", href: watch(s.sitting_id, s.start_ms), text: clock(s.start_ms / 1000) }),
      el("span", { class: "caption-text", lang: "th", text: ` ${s.text}` }),
      el("span", { class: "muted", text: ` · ${titles.get(s.sitting_id) || s.sitting_id}` }),
    ),
  );
}

async function start() {
  $("json-link").href = api;
  $("json-twin").href = api;
  try {
    render(await getJSON(api));
    $("follow-box").replaceChildren(followControl(billId));
    $("load-error").hidden = true;
  } catch (err) {
    $("title").textContent = err.status === 404 ? "ไม่พบร่างกฎหมายนี้" : "โหลดข้อมูลไม่สำเร็จ";
    $("load-error").textContent = err.status === 404 ? "ไม่พบร่างกฎหมายนี้" : `โหลดข้อมูลไม่สำเร็จ (${err.message})`;
    $("load-error").hidden = false;
  } finally {
    $("main").removeAttribute("aria-busy");
  }
}

start();
