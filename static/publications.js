// The library: publications from the JSON twin /api/publications with the address's q and kind (the archive's
// search grammar: Thai without spaces, "phrases", -excluded). Snippets arrive as spans; a hit becomes a <mark>
// holding its text, everything else a text node, so nothing an author wrote is ever parsed as HTML.

import { $, el, getJSON } from "/static/common.js";
import { KINDS } from "/static/news-common.js";

const form = $("search-form");
const params = new URLSearchParams();
for (const name of ["q", "kind"]) {
  const value = (new URLSearchParams(location.search).get(name) || "").trim();
  if (value) params.set(name, value);
  form.elements.namedItem(name).value = value;
}
const first = `/api/publications${params.size ? `?${params}` : ""}`;
let next = first;

function snippet(spans) {
  const p = el("p", { class: "search-snippet" });
  for (const span of spans) p.append(span.hit ? el("mark", { text: span.text }) : document.createTextNode(span.text));
  return p;
}

function item(pub) {
  return el(
    "li",
    { class: "search-result card publication-card", "data-publication-id": String(pub.id) },
    el(
      "p",
      { class: "sitting-meta" },
      el("span", { class: "badge", text: KINDS[pub.kind] || pub.kind }),
      el("span", { text: `พ.ศ. ${pub.year + 543}` }),
      el("span", { text: pub.authors.join(", ") }),
    ),
    el("h2", { class: "search-result-title" }, el("a", { href: pub.url, text: pub.title })),
    pub.snippet ? snippet(pub.snippet) : el("p", { class: "news-summary", text: pub.abstract.slice(0, 240) }),
    el(
      "p",
      { class: "search-result-links" },
      pub.pdf ? el("a", { href: pub.pdf.url, text: "ดาวน์โหลด PDF" }) : null,
      el("a", { class: "muted", href: `/api/publications/${pub.id}`, text: "JSON" }),
    ),
  );
}

async function load() {
  if (!next) return;
  $("more").disabled = true;
  try {
    const body = await getJSON(next);
    $("results").append(...body.publications.map(item));
    next = body.next;
    $("search-status").textContent = body.total
      ? `${params.has("q") ? "พบ" : "ทั้งหมด"} ${body.total.toLocaleString("th-TH")} รายการ`
      : "ไม่พบเอกสาร";
    $("load-error").hidden = true;
  } catch (err) {
    $("load-error").textContent =
      err.status === 400 ? `คำค้นนี้ใช้ไม่ได้: ${err.message}` : `โหลดรายการไม่สำเร็จ (${err.message})`;
    $("load-error").hidden = false;
    next = null;
  } finally {
    $("more").hidden = !next;
    $("more").disabled = false;
    $("main").removeAttribute("aria-busy");
  }
}

$("json-twin").href = first;
$("json-twin-footer").href = first;
$("json-twin-footer").textContent = `${decodeURIComponent(first)} (JSON)`;
$("more").addEventListener("click", load);
load();
