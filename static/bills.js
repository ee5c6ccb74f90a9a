// The bill list: /bills?stage=&type=&topic=&agency=&q=&offset=. Its JSON twin is /api/bills with the same query,
// the document this page draws; stage and type names come from that document (archive/bill_stages.py).

import { $, el, getJSON } from "/static/common.js";

const FILTERS = ["q", "stage", "type", "topic", "agency"];
const PAGE = 50;

// The filters in the page's address, without empty ones.
function current() {
  const params = new URLSearchParams(location.search);
  const out = new URLSearchParams();
  for (const name of [...FILTERS, "offset"]) {
    const value = (params.get(name) || "").trim();
    if (value) out.set(name, value);
  }
  return out;
}

function options(select, labels, chosen) {
  select.replaceChildren(select.options[0]);
  for (const [value, text] of Object.entries(labels)) {
    select.append(el("option", { value, text, selected: value === chosen }));
  }
}

export function billRow(bill) {
  const meta = [bill.type_label, bill.proposer, ...(bill.agencies || [])].filter(Boolean).join(" · ");
  return el(
    "li",
    { class: "bill-row", "data-bill-id": bill.id, "data-stage": bill.stage || "" },
    el("a", { class: "bill-row-title", href: bill.url, text: bill.short_name || bill.title }),
    el("span", { class: "bill-stage", text: bill.stage_label || "ยังไม่ระบุขั้นตอน" }),
    meta ? el("span", { class: "muted bill-row-meta", text: meta }) : null,
  );
}

function pageLink(anchor, params, offset) {
  if (offset === null) {
    anchor.hidden = true;
    return;
  }
  const next = new URLSearchParams(params);
  if (offset > 0) next.set("offset", String(offset));
  else next.delete("offset");
  anchor.href = `/bills${next.size ? `?${next}` : ""}`;
  anchor.hidden = false;
}

async function start() {
  const params = current();
  const api = `/api/bills?${new URLSearchParams([...params, ["limit", String(PAGE)]])}`;
  $("json-twin").href = api;
  $("json-link").href = api;
  for (const name of ["q", "topic", "agency"]) $(name === "q" ? "q" : `f-${name}`).value = params.get(name) || "";
  $("filters").addEventListener("submit", (event) => {
    // Only the filters that are set go into the address, so it stays short and shareable.
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const [name, value] of new FormData(event.target)) if (String(value).trim()) chosen.set(name, String(value).trim());
    location.assign(`/bills${chosen.size ? `?${chosen}` : ""}`);
  });
  try {
    const body = await getJSON(api);
    options($("f-stage"), body.labels.stages, params.get("stage"));
    options($("f-type"), body.labels.types, params.get("type"));
    const list = $("results");
    list.replaceChildren(...body.bills.map(billRow));
    $("status").textContent = body.total
      ? `พบ ${body.total} ฉบับ (แสดง ${body.offset + 1}–${body.offset + body.bills.length})`
      : "ไม่พบร่างกฎหมายตามตัวกรองนี้";
    pageLink($("prev"), params, body.offset > 0 ? Math.max(0, body.offset - body.limit) : null);
    pageLink($("next"), params, body.next ? body.offset + body.bills.length : null);
    $("load-error").hidden = true;
  } catch (err) {
    $("load-error").textContent = `โหลดรายการไม่สำเร็จ (${err.message})`;
    $("load-error").hidden = false;
  } finally {
    $("main").removeAttribute("aria-busy");
  }
}

start();
