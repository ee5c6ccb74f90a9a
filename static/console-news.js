// The editors' panel: news written in Markdown with images, published and unpublished, and the library of
// publications with their PDF. Every action is a call of desk/news_api.py's routes. The console shows the Markdown
// source and the titles as text (el() sets textContent). The one piece of HTML it inserts is the preview: the
// saved article's `html` from the API, which the server rendered from Markdown with raw HTML off and cleaned with
// nh3 against an allow-list (desk/news.py), exactly what the public page inserts; the console's CSP (script-src
// 'self', nothing inline) is the lock behind that. What the editor types never goes in as HTML: the preview is of
// the saved draft, and says so while the form holds unsaved changes.

import { $, el, thaiDate } from "/static/common.js";
import { act, api, can, notify, registerPanel } from "/static/console-api.js";

const LIST_LIMIT = 50;
const PUBLICATIONS_SHOWN = 10;
const NEWS_STATUS = { draft: "ร่าง", published: "เผยแพร่แล้ว" };
const KINDS = { paper: "บทความวิชาการ", report: "รายงาน", brief: "เอกสารสรุป", other: "อื่น ๆ" };

// item: the article being edited (the API's staff JSON), null for a new one; publication: one created whose PDF
// did not go up, so that sending the form again uploads the file instead of creating a second record.
const state = { item: null, publication: null };

const newsUrl = (slug, suffix = "") => `/api/news/${encodeURIComponent(slug)}${suffix}`;

const splitList = (text, separator) =>
  text
    .split(separator)
    .map((part) => part.trim())
    .filter(Boolean);

// ---- errors tied to their fields ---------------------------------------------------------------------------------

function clearErrors(form) {
  for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

// Show `message` under the field `prefix-field` (the API names the field it refuses; an unknown one goes to
// `fallback`), mark the control invalid and move focus to it so a screen reader reads the error with it.
function fieldError(prefix, field, message, fallback) {
  let input = $(`${prefix}-${field}`);
  if (!input || !$(`${prefix}-${field}-error`)) input = $(`${prefix}-${fallback}`);
  const error = $(`${input.id}-error`);
  error.textContent = message;
  input.setAttribute("aria-invalid", "true");
  input.focus();
}

const failure = (err) => (err.status === 403 ? "ไม่มีสิทธิ์ทำรายการนี้" : `ไม่สำเร็จ: ${err.message}`);

// ---- the list ------------------------------------------------------------------------------------------------------

async function refreshNews() {
  let body;
  try {
    body = await api("GET", `/api/staff/news?limit=${LIST_LIMIT}`);
  } catch (err) {
    if (err.status !== 401) $("news-list-error").textContent = failure(err);
    return;
  }
  $("news-list-error").textContent = "";
  const editing = state.item && state.item.slug;
  $("news-list").replaceChildren(
    ...body.news.map((item) =>
      el(
        "li",
        { class: "console-row", "data-slug": item.slug },
        el("span", { class: "badge", "data-news": item.status, text: NEWS_STATUS[item.status] || item.status }),
        el("button", {
          class: "console-pick",
          type: "button",
          text: item.title,
          "aria-pressed": String(item.slug === editing),
          onclick: () => edit(item),
        }),
        el("span", {
          class: "muted",
          text: [thaiDate(item.published_at || item.updated_at), item.author].filter(Boolean).join(" · "),
        }),
        item.status === "published" ? el("a", { href: item.url, text: "หน้าสาธารณะ" }) : null,
      ),
    ),
  );
  $("news-empty").hidden = body.news.length > 0;
}

async function refreshPublications() {
  if (!can("document.write")) return;
  let body;
  try {
    body = await api("GET", `/api/publications?limit=${PUBLICATIONS_SHOWN}`);
  } catch {
    return; // the list is a convenience; the library's page is the record
  }
  $("publication-list").replaceChildren(
    ...body.publications.map((p) =>
      el(
        "li",
        { class: "console-row" },
        el("a", { href: p.url, text: p.title }),
        el("span", {
          class: "muted",
          text: `${KINDS[p.kind] || p.kind} · ${p.year} · ${p.pdf ? "มี PDF" : "ยังไม่มี PDF"}`,
        }),
      ),
    ),
  );
}

// ---- the preview ---------------------------------------------------------------------------------------------------

// Built here rather than in console.html: the region, its heading, the stale-note and the body as the public page's
// .article-body, placed before the publishing buttons (preview, then publish).
const draftPreview = el(
  "section",
  { id: "news-draft", class: "console-message news-draft", "aria-labelledby": "news-draft-h", hidden: true },
  el("h3", { id: "news-draft-h", class: "console-sub", text: "ตัวอย่างเนื้อข่าว (Preview)", tabIndex: -1 }),
  el("p", {
    id: "news-draft-note",
    class: "muted console-hint",
    text: "ฉบับที่บันทึกล่าสุด แสดงอย่างที่หน้าข่าวสาธารณะจะแสดง",
  }),
  el("p", {
    id: "news-draft-stale",
    class: "console-hint",
    text: "มีการแก้ไขที่ยังไม่บันทึก: กด “บันทึกและดูตัวอย่าง” เพื่อดูฉบับล่าสุด",
    hidden: true,
  }),
  el("div", { id: "news-draft-body", class: "article-body" }),
);
$("news-publishing").before(draftPreview);
$("news-form")
  .querySelector(".console-actions")
  .append(
    el("button", { id: "news-draft-show", class: "console-button console-quiet", type: "button", text: "บันทึกและดูตัวอย่าง" }),
  );

function showPreview(item) {
  draftPreview.hidden = !item;
  $("news-draft-stale").hidden = true;
  // item.html is the server's sanitised rendering (see the top of this file); nothing typed here goes in as HTML.
  if (item) $("news-draft-body").innerHTML = item.html;
  else $("news-draft-body").replaceChildren();
}

// Typing makes the shown preview older than the form: say so rather than render the editor's text here.
for (const id of ["news-title", "news-body"]) {
  $(id).addEventListener("input", () => {
    if (state.item) $("news-draft-stale").hidden = false;
  });
}

$("news-draft-show").addEventListener("click", async () => {
  const item = await save();
  if (!item) return;
  notify(`บันทึกร่างข่าวแล้ว แสดงตัวอย่างด้านล่าง: ${item.title}`);
  $("news-draft-h").focus();
  await refreshNews();
});

// ---- the editor ----------------------------------------------------------------------------------------------------

function showItem(item) {
  state.item = item;
  showPreview(item);
  $("news-form-h").textContent = item ? "แก้ไขข่าว" : "เขียนข่าวใหม่";
  $("news-meta").hidden = !item;
  $("news-summary").hidden = !(item && item.summary);
  $("news-summary").textContent = item ? `สรุป (จากเนื้อข่าว): ${item.summary}` : "";
  if (item) {
    $("news-status").dataset.news = item.status;
    $("news-status").textContent = NEWS_STATUS[item.status] || item.status;
    $("news-preview").href = item.url;
    $("news-preview").hidden = item.status !== "published";
  }
  const publishing = Boolean(item) && can("news.publish");
  $("news-publishing").hidden = !publishing;
  $("news-publish").hidden = !publishing || item.status === "published";
  $("news-unpublish").hidden = !publishing || item.status !== "published";
  for (const row of $("news-list").querySelectorAll("[data-slug] .console-pick")) {
    row.setAttribute("aria-pressed", String(Boolean(item) && row.closest("li").dataset.slug === item.slug));
  }
}

function edit(item, { focus = true } = {}) {
  clearErrors($("news-form"));
  $("news-publish-error").textContent = "";
  $("news-title").value = item ? item.title : "";
  $("news-body").value = item ? item.body_md : "";
  $("news-topics").value = item ? item.topics.join(", ") : "";
  showItem(item);
  if (focus) $("news-title").focus();
}

function readNews() {
  const title = $("news-title").value.trim();
  const body = $("news-body").value;
  const topics = splitList($("news-topics").value, ",");
  if (!title) return { error: ["title", "กรุณาใส่หัวข้อข่าว"] };
  if (!body.trim()) return { error: ["body", "กรุณาเขียนเนื้อข่าว"] };
  return { change: { title, body, topics } };
}

// Save the form (create the draft, or PATCH the article being edited); the saved item, or null with the error shown.
async function save() {
  const form = $("news-form");
  clearErrors(form);
  const { change, error } = readNews();
  if (error) {
    fieldError("news", error[0], error[1], "title");
    return null;
  }
  try {
    const result = state.item
      ? await api("PATCH", newsUrl(state.item.slug), change)
      : await api("POST", "/api/news", change);
    showItem(result.item);
    return result.item;
  } catch (err) {
    if (err.status !== 401) fieldError("news", err.field, failure(err), "title");
    return null;
  }
}

$("news-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const item = await save();
  if (!item) return;
  notify(`บันทึกร่างข่าวแล้ว: ${item.title}`);
  await refreshNews();
});

$("news-new").addEventListener("click", () => {
  edit(null);
  notify("เริ่มข่าวใหม่");
});

// Insert `text` into the body where the caret was (a textarea keeps its selection while focus is elsewhere).
function insertAtCursor(text) {
  const area = $("news-body");
  const start = area.selectionStart ?? area.value.length;
  const end = area.selectionEnd ?? start;
  const before = area.value.slice(0, start);
  const after = area.value.slice(end);
  // A Markdown image on its own line, so it is a paragraph of its own and not glued to a word.
  const lead = before && !before.endsWith("\n") ? "\n\n" : "";
  const tail = after && !after.startsWith("\n") ? "\n\n" : "";
  area.value = `${before}${lead}${text}${tail}${after}`;
  const caret = before.length + lead.length + text.length;
  area.setSelectionRange(caret, caret);
}

$("news-image-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors($("news-image-form"));
  const file = $("news-image").files[0];
  if (!file) {
    fieldError("news", "image", "กรุณาเลือกไฟล์รูปภาพ", "image");
    return;
  }
  // An image belongs to an article: a new one is saved as a draft first (its errors show on its own fields).
  const item = state.item || (await save());
  if (!item) return;
  try {
    const result = await api("POST", newsUrl(item.slug, "/images"), file);
    insertAtCursor(result.markdown);
    $("news-image").value = "";
    // The body now holds the reference: save it, so the draft and its image stay together.
    const saved = await save();
    if (saved) {
      notify("อัปโหลดรูปและแทรกในเนื้อข่าวแล้ว");
      await refreshNews();
    }
  } catch (err) {
    if (err.status !== 401) fieldError("news", "image", failure(err), "image");
  }
});

async function setPublished(publish) {
  $("news-publish-error").textContent = "";
  const button = $(publish ? "news-publish" : "news-unpublish");
  // What is published is what the editor sees: the form is saved first.
  const item = await save();
  if (!item) return;
  const result = await act(() => api("POST", newsUrl(item.slug, publish ? "/publish" : "/unpublish")), {
    errorTarget: "news-publish-error",
    done: publish ? `เผยแพร่ข่าวแล้ว: ${item.title}` : `ถอนการเผยแพร่แล้ว: ${item.title}`,
  });
  if (!result) {
    button.focus();
    return;
  }
  showItem(result.item);
  await refreshNews();
  // The button pressed is now hidden: keep focus on its counterpart rather than losing it to the page.
  $(publish ? "news-unpublish" : "news-publish").focus();
}

$("news-publish").addEventListener("click", () => setPublished(true));
$("news-unpublish").addEventListener("click", () => setPublished(false));

// ---- publications ------------------------------------------------------------------------------------------------

function readPublication() {
  const title = $("publication-title").value.trim();
  const authors = splitList($("publication-authors").value, /\n/);
  const yearText = $("publication-year").value.trim();
  const year = Number(yearText);
  const file = $("publication-pdf").files[0];
  if (!title) return { error: ["title", "กรุณาใส่ชื่อเอกสาร"] };
  if (!authors.length) return { error: ["authors", "กรุณาใส่ชื่อผู้แต่งอย่างน้อยหนึ่งชื่อ"] };
  if (!yearText || !Number.isInteger(year) || year < 1900 || year > 2100)
    return { error: ["year", "กรุณาใส่ปี ค.ศ. ระหว่าง 1900 ถึง 2100"] };
  if (!file) return { error: ["pdf", "กรุณาเลือกไฟล์ PDF"] };
  const fields = {
    title,
    authors,
    year,
    kind: $("publication-kind").value,
    abstract: $("publication-abstract").value.trim(),
    topics: splitList($("publication-topics").value, ","),
  };
  return { fields, file };
}

$("publication-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = $("publication-form");
  clearErrors(form);
  const { fields, file, error } = readPublication();
  if (error) {
    fieldError("publication", error[0], error[1], "title");
    return;
  }
  let publication = state.publication;
  if (!publication) {
    try {
      publication = (await api("POST", "/api/publications", fields)).publication;
    } catch (err) {
      if (err.status !== 401) fieldError("publication", err.field, failure(err), "title");
      return;
    }
  }
  try {
    publication = (await api("PUT", `/api/publications/${publication.id}/file`, file)).publication;
  } catch (err) {
    // The record exists: sending again uploads a file to it instead of creating another.
    state.publication = publication;
    if (err.status !== 401) fieldError("publication", "pdf", `${failure(err)} (บันทึกข้อมูลเอกสารแล้ว เลือกไฟล์ใหม่แล้วส่งอีกครั้ง)`, "pdf");
    await refreshPublications();
    return;
  }
  state.publication = null;
  form.reset();
  notify(`เพิ่มเอกสารแล้ว: ${publication.title}`);
  await refreshPublications();
});

// Editing the record's fields after a failed upload means a new record: forget the one waiting for its file.
for (const id of ["publication-title", "publication-authors", "publication-year", "publication-kind"]) {
  $(id).addEventListener("input", () => {
    state.publication = null;
  });
}

registerPanel({
  needs: "news.write",
  refresh: async () => {
    edit(null, { focus: false }); // on sign-in, focus is the page's to place
    // Whoever signed in before may have left a half-filled form behind.
    $("publication-form").reset();
    clearErrors($("publication-form"));
    state.publication = null;
    await Promise.all([refreshNews(), refreshPublications()]);
  },
});
