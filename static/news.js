// The news list: published articles, newest first, from its JSON twin /api/news (?topic= narrows it), ten at a
// time with a "more" button that follows the answer's `next`.

import { $, getJSON } from "/static/common.js";
import { newsCard } from "/static/news-common.js";

const topic = (new URLSearchParams(location.search).get("topic") || "").trim();
const first = topic ? `/api/news?${new URLSearchParams({ topic })}` : "/api/news";
let next = first;

async function load() {
  if (!next) return;
  $("more").disabled = true;
  try {
    const body = await getJSON(next);
    $("news").append(...body.news.map((item) => newsCard(item)));
    next = body.next;
    $("news-empty").hidden = body.total > 0;
    $("load-error").hidden = true;
  } catch (err) {
    $("load-error").textContent = `โหลดข่าวไม่สำเร็จ (${err.message})`;
    $("load-error").hidden = false;
  } finally {
    $("more").hidden = !next;
    $("more").disabled = false;
    $("main").removeAttribute("aria-busy");
  }
}

if (topic) {
  $("topic-name").textContent = topic;
  $("topic-filter").hidden = false;
  $("json-twin").href = first;
  $("json-twin-footer").href = first;
  $("json-twin-footer").textContent = `${decodeURIComponent(first)} (JSON)`;
}
$("more").addEventListener("click", load);
load();
