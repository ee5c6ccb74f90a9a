// /documents/{doc}/sections/{n}: one section's text (line breaks kept by CSS, set with textContent) from its
// JSON twin, links to the sections before and after it, and the same subject across the other constitutions.

import { $, el, getJSON } from "/static/common.js";
import { KINDS, statusText, yearText } from "/static/documents-common.js";

const [, , slug, , key] = location.pathname.split("/").map(decodeURIComponent);
const api = `/api/documents/${encodeURIComponent(slug)}/sections/${encodeURIComponent(key)}`;

function match(m) {
  return el(
    "li",
    { class: "doc-match" },
    el("h3", {}, el("a", { href: m.section.url, text: `${m.section.label} — ${m.document.title}` })),
    el("p", { class: "doc-text", text: m.section.text }),
    el("p", { class: "doc-shared muted", text: `คำที่ตรงกัน: ${m.shared.join(" · ")} (ความคล้าย ${m.similarity})` }),
  );
}

async function compare(url) {
  $("compare-json").href = url;
  try {
    const body = await getJSON(url);
    $("compare-method").textContent = body.method;
    $("matches").replaceChildren(...body.matches.map(match));
    $("compare-status").textContent =
      body.document.kind !== "constitution"
        ? "การเทียบมีเฉพาะรัฐธรรมนูญ"
        : body.matches.length
          ? `พบใน ${body.matches.length} ฉบับ`
          : "ไม่พบมาตราที่ว่าด้วยเรื่องเดียวกันในฉบับอื่น";
  } catch (err) {
    $("compare-status").textContent = `เทียบไม่สำเร็จ: ${err.message}`;
  }
}

async function main() {
  for (const id of ["json-twin", "json-twin-footer"]) $(id).href = api;
  try {
    const body = await getJSON(api);
    const doc = body.document;
    const section = body.section;
    document.title = `${section.label} — ${doc.title} — Sapha`;
    $("doc-link").href = doc.url;
    $("doc-link").textContent = `← ${doc.title}`;
    $("title").textContent = `${section.label}`;
    $("context").replaceChildren(
      el("span", { text: `${KINDS[doc.kind] || doc.kind} · ${yearText(doc)} · ${statusText(doc)}` }),
      ...[section.chapter, section.part].filter(Boolean).map((t) => el("span", { text: ` · ${t}` })),
    );
    $("section-text").textContent = section.text;
    for (const [id, href] of [["prev", body.prev], ["next", body.next]]) {
      $(id).hidden = !href;
      if (href) $(id).href = href;
    }
    compare(body.compare);
  } catch (err) {
    $("title").textContent = "ไม่พบมาตรานี้";
    $("load-error").textContent = err.message;
    $("load-error").hidden = false;
  } finally {
    $("main").removeAttribute("aria-busy");
  }
}

main();
