// The embeddable bill tracker: /embed/bills?agency=<agency>[&topic=<topic>], made for <iframe>s on an agency's own
// site (docs/embed.md). It lists the agency's bills with their stages, keeps each row live over the WebSocket
// (one bill:<id> channel per bill shown, bill.status events) and re-reads the list every few minutes for new bills.

import { $, el, getJSON } from "/static/common.js";
import { SaphaClient } from "/static/sapha-client.js";

const LIMIT = 30; // at most this many rows, each a channel: within the server's 32 channels per connection
const REFRESH_MS = 5 * 60 * 1000;

const params = new URLSearchParams(location.search);
const filters = new URLSearchParams();
for (const name of ["agency", "topic", "stage", "type"]) {
  const value = (params.get(name) || "").trim();
  if (value) filters.set(name, value);
}
const api = `/api/bills?${new URLSearchParams([...filters, ["limit", String(LIMIT)]])}`;
const rows = new Map(); // bill id -> <li>

function row(bill) {
  const meta = [bill.type_label, bill.proposer].filter(Boolean).join(" · ");
  return el(
    "li",
    { class: "bill-row", "data-bill-id": bill.id, "data-stage": bill.stage || "" },
    el("a", { class: "bill-row-title", href: bill.url, target: "_blank", rel: "noopener", text: bill.short_name || bill.title }),
    el("span", { class: "bill-stage", text: bill.stage_label || "ยังไม่ระบุขั้นตอน" }),
    meta ? el("span", { class: "muted bill-row-meta", text: meta }) : null,
  );
}

const client = new SaphaClient({
  onEvent(event) {
    if (event.type !== "bill.status") return;
    const bill = event.data;
    const old = rows.get(bill.id);
    if (!old) return;
    const fresh = row(bill);
    old.replaceWith(fresh);
    rows.set(bill.id, fresh);
  },
  onReset() {
    load();
  },
});

function follow(ids) {
  for (const id of rows.keys()) if (!ids.includes(id)) client.unsubscribe(`bill:${id}`);
  for (const id of ids) if (!rows.has(id)) client.subscribe(`bill:${id}`);
}

async function load() {
  try {
    const body = await getJSON(api);
    const ids = body.bills.map((b) => b.id);
    follow(ids);
    rows.clear();
    const items = body.bills.map((b) => {
      const li = row(b);
      rows.set(b.id, li);
      return li;
    });
    $("bills").replaceChildren(...items);
    $("status").textContent = body.total
      ? `${body.total} ฉบับ${body.total > body.bills.length ? ` (แสดง ${body.bills.length} ฉบับล่าสุด)` : ""}`
      : "ยังไม่มีร่างกฎหมาย";
  } catch (err) {
    $("status").textContent = `โหลดรายการไม่สำเร็จ (${err.message}) — จะลองใหม่`;
  } finally {
    $("main").removeAttribute("aria-busy");
  }
}

const agency = filters.get("agency");
const topic = filters.get("topic");
$("tracker-title").textContent = agency
  ? `ร่างกฎหมายที่เกี่ยวกับ${agency}`
  : topic
    ? `ร่างกฎหมายหัวข้อ ${topic}`
    : "ร่างกฎหมาย";
document.title = `${$("tracker-title").textContent} — Sapha`;
$("more").href = `/bills${filters.size ? `?${filters}` : ""}`;
$("json-link").href = api;
client.connect();
load();
setInterval(load, REFRESH_MS);
