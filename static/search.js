// The search page: a form whose state lives in the address (/search?q=…&chamber=…), results fetched from its JSON
// twin /api/search with the same parameters. Snippets arrive as spans; a hit becomes a <mark> holding its text,
// everything else a text node, so no text of a transcript is ever parsed as HTML.

import { $, CHAMBERS, clock, el, getJSON } from "/static/common.js";

const PARAMS = ["q", "chamber", "from", "to", "speaker", "bill", "sitting"];
const dayFormat = new Intl.DateTimeFormat("th-TH", { dateStyle: "long", timeZone: "UTC" });
const form = $("search-form");
const results = $("results");
const more = $("more");
let next = null; // the URL of the next page of the current search
let generation = 0; // a newer search makes the answers of older ones stale

// The search's parameters from the address, empty ones left out.
function currentParams() {
  const from = new URLSearchParams(location.search);
  const params = new URLSearchParams();
  for (const name of PARAMS) {
    const value = (from.get(name) || "").trim();
    if (value) params.set(name, value);
  }
  return params;
}

function fillForm(params) {
  for (const name of PARAMS) {
    const field = form.elements.namedItem(name);
    if (field) field.value = params.get(name) || "";
  }
  // Filters in use stay in view, so a reader sees why the results are narrowed.
  $("search-filters").open = PARAMS.some((name) => name !== "q" && params.has(name));
}

function thaiDay(day) {
  const d = new Date(`${day}T00:00:00Z`);
  return Number.isNaN(d.getTime()) ? day : dayFormat.format(d);
}

function snippet(spans) {
  const p = el("p", { class: "search-snippet" });
  for (const span of spans) p.append(span.hit ? el("mark", { text: span.text }) : document.createTextNode(span.text));
  return p;
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

function setTwin(params) {
  const href = `/api/search?${params}`;
  for (const id of ["json-twin", "json-twin-footer"]) $(id).href = href;
}

function showError(err) {
  const what = err.status === 400 ? "คำค้นหรือตัวกรองใช้ไม่ได้" : "ค้นหาไม่สำเร็จ";
  $("load-error").textContent = `${what}: ${err.message}`;
  $("load-error").hidden = false;
}

async function load(url, { append }) {
  const mine = ++generation;
  $("load-error").hidden = true;
  $("main").setAttribute("aria-busy", "true");
  more.disabled = true;
  try {
    const body = await getJSON(url);
    if (mine !== generation) return;
    const items = body.results.map(resultItem);
    if (append) results.append(...items);
    else results.replaceChildren(...items);
    next = body.next;
    more.hidden = !next;
    const shown = results.children.length;
    $("search-status").textContent =
      shown === 0 ? `ไม่พบ “${body.q}”` : `พบ ${shown.toLocaleString("th-TH")}${next ? "+" : ""} รายการสำหรับ “${body.q}”`;
  } catch (err) {
    if (mine !== generation) return;
    if (!append) results.replaceChildren();
    more.hidden = true;
    $("search-status").textContent = "";
    showError(err);
  } finally {
    if (mine === generation) {
      $("main").removeAttribute("aria-busy");
      more.disabled = false;
    }
  }
}

function run() {
  const params = currentParams();
  fillForm(params);
  setTwin(params);
  next = null;
  if (!params.get("q")) {
    generation++;
    results.replaceChildren();
    more.hidden = true;
    $("load-error").hidden = true;
    $("search-status").textContent = "";
    document.title = "ค้นหาคำบรรยายการประชุม — Sapha";
    return;
  }
  document.title = `${params.get("q")} — ค้นหาคำบรรยาย — Sapha`;
  load(`/api/search?${params}`, { append: false });
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const params = new URLSearchParams();
  for (const name of PARAMS) {
    const value = (form.elements.namedItem(name).value || "").trim();
    if (value) params.set(name, value);
  }
  history.pushState(null, "", `/search?${params}`);
  run();
});

more.addEventListener("click", () => {
  if (!next) return;
  const first = results.children.length;
  load(next, { append: true }).then(() => {
    // Keyboard and screen reader users continue from the first new result.
    const link = results.children[first] && results.children[first].querySelector("a");
    if (link) link.focus();
  });
});

window.addEventListener("popstate", run);
run();
