// /documents: the list of constitutions and Acts, and a search over their sections. The search's state lives in
// the address (/documents?q=…&kind=…); results come from the JSON twin /api/documents/search with the same
// parameters. The form, pager and status line are common.js's searchPage; this file says what a result looks like.

import { $, el, getJSON, searchPage, snippet } from "/static/common.js";
import { KINDS, statusText, yearText } from "/static/documents-common.js";

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

const page = searchPage({
  path: "/documents",
  api: "/api/documents/search",
  names: ["q", "kind", "in_force", "year_from", "year_to", "document"],
  resultItem,
  noun: "มาตรา",
  title: (q) => `${q} — รัฐธรรมนูญและกฎหมาย — Sapha`,
  idle: () => "/api/documents",
  afterSubmit: () => $("results").focus(),
});

async function listDocuments() {
  try {
    const body = await getJSON("/api/documents");
    $("documents").replaceChildren(...body.documents.map(documentItem));
    const select = $("f-document");
    for (const doc of body.documents) select.append(el("option", { value: doc.slug, text: doc.title }));
    select.value = page.currentParams().get("document") || "";
  } catch (err) {
    page.showError(err);
  }
}

listDocuments();
page.run();
