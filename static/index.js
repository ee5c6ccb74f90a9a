// The index page: every sitting, live ones first, each linking to its watch page. Its JSON twin is
// /api/sittings; the list is refetched every 30 s while the tab is visible.

const CHAMBERS = { senate: "วุฒิสภา", joint: "ประชุมร่วมกันของรัฐสภา", committee: "คณะกรรมาธิการ" };
const STATUSES = { scheduled: "ยังไม่เริ่ม", live: "กำลังประชุม", adjourned: "ปิดประชุมแล้ว" };
const STATUS_ORDER = { live: 0, scheduled: 1, adjourned: 2 };
const REFRESH_MS = 30000;

const $ = (id) => document.getElementById(id);
const dateFormat = new Intl.DateTimeFormat("th-TH", { dateStyle: "long", timeStyle: "short", timeZone: "Asia/Bangkok" });

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function thaiDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : `${dateFormat.format(d)} น.`;
}

function card(sitting) {
  const href = `/watch/${encodeURIComponent(sitting.id)}`;
  const when = sitting.started_at || sitting.scheduled_at || sitting.created_at;
  return el(
    "li",
    { class: "sitting-card", "data-sitting-id": sitting.id, "data-status": sitting.status },
    el(
      "p",
      { class: "sitting-meta" },
      el("span", { class: "badge", "data-status": sitting.status, text: STATUSES[sitting.status] || sitting.status }),
      el("span", { text: CHAMBERS[sitting.chamber] || sitting.chamber }),
      when ? el("time", { datetime: when, text: thaiDate(when) }) : null,
    ),
    el("h2", { class: "sitting-card-title" }, el("a", { href, text: sitting.title })),
    el(
      "p",
      { class: "sitting-card-links" },
      el("a", { class: "button", href, text: sitting.status === "live" ? "▶ ชมสด" : "ดูคำบรรยาย" }),
      el("a", { class: "muted", href: `/api/sittings/${encodeURIComponent(sitting.id)}`, text: "JSON" }),
    ),
  );
}

async function refresh() {
  try {
    const response = await fetch("/api/sittings", { headers: { Accept: "application/json" }, cache: "no-store" });
    const body = await response.json();
    if (!response.ok || !body.ok) throw new Error(body.error || `HTTP ${response.status}`);
    const sittings = body.sittings
      .map((s, i) => [s, i])
      .sort(([a, i], [b, j]) => (STATUS_ORDER[a.status] ?? 3) - (STATUS_ORDER[b.status] ?? 3) || i - j)
      .map(([s]) => s);
    $("sittings").replaceChildren(...sittings.map(card));
    $("sittings-empty").hidden = sittings.length > 0;
    $("load-error").hidden = true;
  } catch (err) {
    $("load-error").textContent = `โหลดรายการไม่สำเร็จ (${err.message}) — จะลองใหม่อัตโนมัติ`;
    $("load-error").hidden = false;
  } finally {
    $("main").removeAttribute("aria-busy");
  }
}

refresh();
setInterval(() => {
  if (document.visibilityState === "visible") refresh();
}, REFRESH_MS);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refresh();
});
