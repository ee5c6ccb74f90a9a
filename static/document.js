// /documents/{doc}: a document's table of contents from its JSON twin /api/documents/{doc}, sections grouped
// under their chapter (หมวด) and part (ส่วน) headings. Text only, never HTML.

import { $, el, getJSON } from "/static/common.js";
import { KINDS, statusText, yearText } from "/static/documents-common.js";

const slug = decodeURIComponent(location.pathname.split("/")[2] || "");
const api = `/api/documents/${encodeURIComponent(slug)}`;

function toc(sections) {
  const body = [];
  let chapter = null;
  let part = null;
  let list = null;
  for (const section of sections) {
    if (section.chapter !== chapter || list === null) {
      chapter = section.chapter;
      part = null;
      if (chapter) body.push(el("h3", { text: chapter }));
      list = null;
    }
    if (section.part !== part) {
      part = section.part;
      if (part) body.push(el("h3", { class: "muted", text: part }));
      list = null;
    }
    if (list === null) {
      list = el("ul", { class: "doc-toc" });
      body.push(list);
    }
    list.append(el("li", {}, el("a", { href: section.url, text: section.label })));
  }
  return body;
}

async function main() {
  for (const id of ["json-twin", "json-twin-footer"]) $(id).href = api;
  $("f-document").value = slug;
  try {
    const body = await getJSON(api);
    const doc = body.document;
    document.title = `${doc.title} — Sapha`;
    $("title").textContent = doc.title;
    $("meta").replaceChildren(
      el("span", { text: KINDS[doc.kind] || doc.kind }),
      document.createTextNode(" · "),
      el("span", { text: yearText(doc) }),
      document.createTextNode(" · "),
      el("span", { class: "doc-badge", text: statusText(doc) }),
    );
    $("source").textContent = `ที่มา: ${doc.source} · ${doc.licence}${doc.complete ? "" : " · เฉพาะบางมาตรา"}`;
    $("toc-body").replaceChildren(...toc(body.sections));
  } catch (err) {
    $("title").textContent = "ไม่พบเอกสาร";
    $("load-error").textContent = err.message;
    $("load-error").hidden = false;
  } finally {
    $("main").removeAttribute("aria-busy");
  }
}

main();
