// One publication, from its JSON twin /api/publications/{id}: its metadata as text, the PDF as a download (the
// server sends it as an attachment, never rendered by this origin), and its stable address.

import { $, getJSON } from "/static/common.js";
import { KINDS, topicList } from "/static/news-common.js";

const id = location.pathname.split("/").pop();
const api = `/api/publications/${encodeURIComponent(id)}`;

async function load() {
  $("json-twin").href = api;
  $("json-twin-footer").href = api;
  $("json-twin-footer").textContent = `${api} (JSON)`;
  try {
    const { publication: pub } = await getJSON(api);
    document.title = `${pub.title} — Sapha`;
    $("title").textContent = pub.title;
    $("kind").textContent = KINDS[pub.kind] || pub.kind;
    $("year").textContent = `พ.ศ. ${pub.year + 543}`;
    $("authors").textContent = pub.authors.join(", ");
    $("abstract").textContent = pub.abstract;
    if (pub.topics.length) $("topics").replaceChildren(topicList(pub.topics, "/publications"));
    for (const a of $("topics").querySelectorAll("a")) a.href = `/publications?q=${encodeURIComponent(`"${a.textContent}"`)}`;
    if (pub.pdf) {
      $("pdf").href = pub.pdf.url;
      $("pdf-size").textContent = `(${Math.max(1, Math.round(pub.pdf.size / 1024)).toLocaleString("th-TH")} KB)`;
      $("pdf-row").hidden = false;
    }
    $("permalink").href = pub.url;
    $("permalink").textContent = new URL(pub.url, location.href).href;
  } catch (err) {
    $("load-error").textContent = err.status === 404 ? "ไม่พบเอกสารนี้" : `โหลดเอกสารไม่สำเร็จ (${err.message})`;
    $("load-error").hidden = false;
    $("publication").hidden = true;
  } finally {
    $("main").removeAttribute("aria-busy");
  }
}

load();
