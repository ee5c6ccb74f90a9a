// One article, from its JSON twin /api/news/{slug}. The title and topics are set as text. The body is the one
// piece of HTML the app inserts: the server rendered it from Markdown with raw HTML off and cleaned it with nh3
// against an allow-list (no scripts, no event handlers, http(s)/mailto links only, images only from /media/news),
// and the page's CSP (script-src 'self', no inline) is the lock behind that.

import { $, getJSON, thaiDate } from "/static/common.js";
import { topicList } from "/static/news-common.js";

const slug = decodeURIComponent(location.pathname.split("/").pop() || "");
const api = `/api/news/${encodeURIComponent(slug)}`;

async function load() {
  $("json-twin").href = api;
  $("json-twin-footer").href = api;
  $("json-twin-footer").textContent = `${decodeURIComponent(api)} (JSON)`;
  try {
    const { item } = await getJSON(api);
    document.title = `${item.title} — ข่าววุฒิสภา`;
    $("title").textContent = item.title;
    $("published").dateTime = item.published_at || "";
    $("published").textContent = thaiDate(item.published_at);
    if (item.topics.length) $("topics").replaceChildren(topicList(item.topics));
    $("article-body").innerHTML = item.html; // sanitised server-side: see the comment at the top
  } catch (err) {
    $("load-error").textContent =
      err.status === 404 ? "ไม่พบข่าวนี้ หรือข่าวนี้ถูกถอนการเผยแพร่แล้ว" : `โหลดข่าวไม่สำเร็จ (${err.message})`;
    $("load-error").hidden = false;
    $("article").hidden = true;
  } finally {
    $("main").removeAttribute("aria-busy");
  }
}

load();
