// What the news, publications and home pages share: an article's card, topic links, the kinds of publication, and
// Bangkok dates. Titles, topics, authors and abstracts are plain text (set as text, never parsed); only an
// article's body is HTML, rendered and sanitised by the server (desk/news.py), and only news-article.js inserts it.

import { el, thaiDate } from "/static/common.js";

export const KINDS = { paper: "บทความวิชาการ", report: "รายงาน", brief: "เอกสารสรุป", other: "เอกสารอื่น ๆ" };

const dayKey = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Bangkok" });

// YYYY-MM-DD of an ISO time in Bangkok ("" when missing), comparable as strings.
export function bangkokDay(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : dayKey.format(d);
}

// Links to /news?topic=… for each topic, in a list (empty list when none).
export function topicList(topics, base = "/news") {
  return el(
    "ul",
    { class: "topics", "aria-label": "หัวข้อ" },
    ...topics.map((t) => el("li", {}, el("a", { class: "topic", href: `${base}?topic=${encodeURIComponent(t)}`, text: t }))),
  );
}

// One article in a list: date, title linking to its page, summary, topics. `heading` is h2 or h3 by context.
export function newsCard(item, heading = "h2") {
  return el(
    "li",
    { class: "news-card", "data-slug": item.slug },
    el(
      "p",
      { class: "sitting-meta" },
      item.published_at ? el("time", { datetime: item.published_at, text: thaiDate(item.published_at) }) : null,
    ),
    el(heading, { class: "news-card-title" }, el("a", { href: item.url, text: item.title })),
    el("p", { class: "news-summary", text: item.summary }),
    item.topics.length ? topicList(item.topics) : null,
  );
}
