// The home page, the app's front door: what is live now (with a link to watch), today's and upcoming sittings,
// bills that moved in the last seven days, the latest news, the way to write in, and past sittings. Its JSON twins
// are /api/sittings, /api/bills and /api/news; all are refetched every 30 s while the tab is visible.

import { $, CHAMBERS, STATUSES, el, getJSON, thaiDate } from "/static/common.js";
import { bangkokDay, newsCard } from "/static/news-common.js";

const REFRESH_MS = 30000;
const PAST_SHOWN = 6;
const BILLS_SHOWN = 6;
const WEEK_MS = 7 * 24 * 3600 * 1000;

// A bill that moved: its short name (or title) linking to its page, the stage it reached, when.
function billCard(bill) {
  return el(
    "li",
    { class: "news-card bill-card", "data-bill-id": bill.id },
    el("p", { class: "sitting-meta" }, el("time", { datetime: bill.updated_at, text: thaiDate(bill.updated_at) })),
    el("h3", { class: "news-card-title" }, el("a", { href: bill.url, text: bill.short_name || bill.title })),
    bill.stage_label ? el("p", { class: "news-summary", text: bill.stage_label }) : null,
  );
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
    el("h3", { class: "sitting-card-title" }, el("a", { href, text: sitting.title })),
    el(
      "p",
      { class: "sitting-card-links" },
      el("a", { class: "button", href, text: sitting.status === "live" ? "▶ ชมสด" : "ดูคำบรรยาย" }),
      el("a", { class: "muted", href: `/api/sittings/${encodeURIComponent(sitting.id)}`, text: "JSON" }),
    ),
  );
}

// live now; today's and upcoming (scheduled, or held today); the rest, newest first. Each sitting once.
function split(sittings) {
  const today = bangkokDay(new Date().toISOString());
  const live = [];
  const upcoming = [];
  const past = [];
  for (const s of sittings) {
    if (s.status === "live") live.push(s);
    else if (s.status === "scheduled" && (!s.scheduled_at || bangkokDay(s.scheduled_at) >= today)) upcoming.push(s);
    else if (bangkokDay(s.started_at || s.scheduled_at || s.created_at) === today) upcoming.push(s);
    else past.push(s);
  }
  const at = (s) => s.scheduled_at || s.started_at || s.created_at || "";
  upcoming.sort((a, b) => at(a).localeCompare(at(b)));
  return { live, upcoming, past: past.slice(0, PAST_SHOWN) };
}

function show(list, items, render) {
  $(list).replaceChildren(...items.map(render));
  $(`${list}-empty`).hidden = items.length > 0;
}

async function refresh() {
  const [sittings, news, bills] = await Promise.allSettled([
    getJSON("/api/sittings"),
    getJSON("/api/news?limit=3"),
    getJSON(`/api/bills?limit=${BILLS_SHOWN}`),
  ]);
  const failed = [sittings, news, bills].filter((r) => r.status === "rejected").map((r) => r.reason.message);
  if (sittings.status === "fulfilled") {
    const parts = split(sittings.value.sittings);
    show("live", parts.live, card);
    show("upcoming", parts.upcoming, card);
    show("past", parts.past, card);
  }
  if (bills.status === "fulfilled") {
    // Most recently changed first: the ones changed within the week are the bills moving now.
    const since = Date.now() - WEEK_MS;
    show("bills", bills.value.bills.filter((b) => Date.parse(b.updated_at) >= since), billCard);
  }
  if (news.status === "fulfilled") {
    $("latest-news").replaceChildren(...news.value.news.map((item) => newsCard(item, "h3")));
    $("news-empty").hidden = news.value.news.length > 0;
  }
  $("load-error").textContent = failed.length ? `โหลดข้อมูลบางส่วนไม่สำเร็จ (${failed.join(", ")}) — จะลองใหม่อัตโนมัติ` : "";
  $("load-error").hidden = failed.length === 0;
  $("main").removeAttribute("aria-busy");
}

refresh();
setInterval(() => {
  if (document.visibilityState === "visible") refresh();
}, REFRESH_MS);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refresh();
});
