// The search page: a form whose state lives in the address (/search?q=…&chamber=…), results fetched from its JSON
// twin /api/search with the same parameters. The form, pager and status line are common.js's searchPage; this
// file says what a result looks like.

import { $, CHAMBERS, clock, el, searchPage, snippet } from "/static/common.js";

const dayFormat = new Intl.DateTimeFormat("th-TH", { dateStyle: "long", timeZone: "UTC" });

function thaiDay(day) {
  const d = new Date(`${day}T00:00:00Z`);
  return Number.isNaN(d.getTime()) ? day : dayFormat.format(d);
}

function resultItem(result) {
  const sitting = result.sitting;
  const moment = clock(result.t);
  return el(
    "li",
    { class: "search-result card", "data-segment-id": String(result.segment_id) },
    el(
      "p",
      { class: "sitting-meta" },
      el("span", { text: CHAMBERS[sitting.chamber] || sitting.chamber }),
      el("time", { datetime: sitting.date, text: thaiDay(sitting.date) }),
      result.speaker ? el("span", { class: "search-speaker", text: result.speaker }) : null,
    ),
    el("h2", { class: "search-result-title" }, el("a", { href: `/watch/${encodeURIComponent(sitting.id)}`, text: sitting.title })),
    snippet(result.snippet),
    el(
      "p",
      { class: "search-result-links" },
      el(
        "a",
        { class: "button search-permalink", href: result.permalink, "aria-label": `เปิดวิดีโอที่ ${moment} — ${sitting.title}` },
        `▶ ${moment}`,
      ),
      el("a", { class: "muted", href: `/api/segments/${result.segment_id}`, text: "JSON" }),
    ),
  );
}

const page = searchPage({
  path: "/search",
  api: "/api/search",
  names: ["q", "chamber", "from", "to", "speaker", "bill", "sitting"],
  resultItem,
  noun: "รายการ",
  title: (q) => `${q} — ค้นหาคำบรรยาย — Sapha`,
  idle(params) {
    $("load-error").hidden = true;
    document.title = "ค้นหาคำบรรยายการประชุม — Sapha";
    return `/api/search?${params}`;
  },
  focusNew: true,
});
page.run();
