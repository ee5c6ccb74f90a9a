// /documents: the list of constitutions and Acts, and a search over their sections. The search's state lives in
// the address (/documents?q=…&kind=…); results come from the JSON twin /api/documents/search with the same
// parameters. Snippets arrive as spans: a hit becomes a <mark> holding its text, the rest text nodes.

import { $, el, getJSON } from "/static/common.js";
import { KINDS, statusText, yearText } from "/static/documents-common.js";

const PARAMS = ["q", "kind", "in_force", "year_from", "year_to", "document"];
const form = $("search-form");
const results = $("results");
const more = $("more");
let next = null;
let generation = 0;

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
  $("search-filters").open = PARAMS.some((name) => name !== "q" && params.has(name));
}

function snippet(spans) {
  const p = el("p", { class: "search-snippet" });
  for (const span of spans) p.append(span.hit ? el("mark", { text: span.text }) : document.createTextNode(span.text));
  return p;
}

function resultItem(result) {
  const doc = result.document;
  const section = result.section;
  return el(
    "li",
    { class: "search-result card" },
    el(
      "p",
      { class: "sitting-meta" },
      el("span", { text: KINDS[doc.kind] || doc.kind }),
      el("span", { text: yearText(doc) }),
      el("span", { text: statusText(doc) }),
    ),
    el("h2", { class: "search-result-title" }, el("a", { href: result.url, text: `${section.label} — ${doc.title}` })),
    section.chapter ? el("p", { class: "muted", text: [section.chapter, section.part].filter(Boolean).join(" · ") }) : null,
    snippet(result.snippet),
  );
}

function documentItem(doc) {
  return el(
    "li",
    { class: "card" },
    el("a", { href: doc.url, text: doc.title }),
    el("p", {
      class: "muted",
      text: `${KINDS[doc.kind]} · ${yearText(doc)} · ${statusText(doc)} · ${doc.sections} มาตรา${doc.complete ? "" : " (เฉพาะบางมาตรา)"}`,
    }),
  );
}

function setTwin(href) {
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
      shown === 0 ? `ไม่พบ “${body.q}”` : `พบ ${shown.toLocaleString("th-TH")}${next ? "+" : ""} มาตราสำหรับ “${body.q}”`;
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
  next = null;
  if (!params.get("q")) {
    generation++;
    results.replaceChildren();
    more.hidden = true;
    $("search-status").textContent = "";
    setTwin("/api/documents");
    return;
  }
  setTwin(`/api/documents/search?${params}`);
  document.title = `${params.get("q")} — รัฐธรรมนูญและกฎหมาย — Sapha`;
  load(`/api/documents/search?${params}`, { append: false });
}

async function listDocuments() {
  try {
    const body = await getJSON("/api/documents");
    $("documents").replaceChildren(...body.documents.map(documentItem));
    const select = $("f-document");
    for (const doc of body.documents) select.append(el("option", { value: doc.slug, text: doc.title }));
    select.value = currentParams().get("document") || "";
  } catch (err) {
    showError(err);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const params = new URLSearchParams();
  for (const name of PARAMS) {
    const value = (form.elements.namedItem(name).value || "").trim();
    if (value) params.set(name, value);
  }
  history.pushState(null, "", `/documents?${params}`);
  run();
  results.focus();
});
more.addEventListener("click", () => next && load(next, { append: true }));
window.addEventListener("popstate", run);
listDocuments();
run();
