// What every page's script shares: DOM building (text only, never HTML), the API's JSON shape, retry with backoff,
// Thai dates and clocks, and the names of chambers, statuses and vote results. ES module; no dependencies.

export const CHAMBERS = { senate: "วุฒิสภา", joint: "ประชุมร่วมกันของรัฐสภา", committee: "คณะกรรมาธิการ" };
export const STATUSES = { scheduled: "ยังไม่เริ่ม", live: "กำลังประชุม", adjourned: "ปิดประชุมแล้ว" };
export const RESULTS = { passed: "ผ่าน · เห็นชอบ", rejected: "ไม่ผ่าน · ไม่เห็นชอบ" };

export const $ = (id) => document.getElementById(id);

// Build an element. `text` sets textContent, so user text can never become markup; `class`, `data-*`, `aria-*`,
// `href`, `title`, `lang`, `datetime` and `role` become attributes, anything else a property.
const ATTRIBUTES = new Set(["href", "title", "lang", "datetime", "role", "id", "for", "type"]);
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || ATTRIBUTES.has(key)) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

// H:MM:SS of a media time in seconds.
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}:${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

const dateFormat = new Intl.DateTimeFormat("th-TH", { dateStyle: "long", timeStyle: "short", timeZone: "Asia/Bangkok" });

// An ISO time as a Thai date and time in Bangkok ("26 พฤศจิกายน 2569 09:30 น."); "" when missing or invalid.
export function thaiDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : `${dateFormat.format(d)} น.`;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// GET a JSON document of the API; throws an Error with `.status` unless it answered {"ok": true, ...}.
export async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  const body = await response.json().catch(() => null);
  if (!response.ok || !body || body.ok !== true) {
    const error = new Error((body && body.error) || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

// Milliseconds to wait after `attempt` failures (0 for the first): exponential, capped at 30 s, "equal jitter" so
// a crowd of phones does not come back in lockstep (the same rule as common/backoff.py on the server).
export function backoffDelay(attempt, base = 1000, cap = 30000) {
  const step = Math.min(cap, base * 2 ** Math.min(attempt, 16));
  return step / 2 + Math.random() * (step / 2);
}

// Run `task` until it succeeds; a 404 (or any status in `giveUpOn`) is final. `onError(err, attempt)` and
// `onSuccess()` let a page show and clear its own message.
export async function withRetry(task, { onError = () => {}, onSuccess = () => {}, giveUpOn = [404] } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const result = await task();
      onSuccess();
      return result;
    } catch (err) {
      onError(err, attempt);
      if (giveUpOn.includes(err.status)) throw err;
      await sleep(backoffDelay(attempt));
    }
  }
}

// A search snippet: the API sends spans; a hit becomes a <mark> holding its text, the rest text nodes, so no
// stored text is ever parsed as HTML.
export function snippet(spans) {
  const p = el("p", { class: "search-snippet" });
  for (const span of spans) p.append(span.hit ? el("mark", { text: span.text }) : document.createTextNode(span.text));
  return p;
}

// The parameters `names` read through `get(name)`, trimmed, empty ones left out.
export function pickParams(get, names) {
  const params = new URLSearchParams();
  for (const name of names) {
    const value = (get(name) || "").trim();
    if (value) params.set(name, value);
  }
  return params;
}

// A search page whose state lives in the address (`path`?q=…&filter=…) and whose results come from the JSON twin
// `api` with the same parameters, a page at a time behind a "more" button that follows the answer's `next`.
// It uses the elements search-form, search-filters, results, more, search-status, load-error, main, json-twin
// and json-twin-footer. `resultItem(result)` builds one <li>; `noun` counts them in the status line; `title(q)`
// names the page for a query; `idle(params)` shows the page with no query and returns the twin's address;
// `afterSubmit()` runs after a submitted search; `focusNew` moves focus to the first result "more" brought.
// Wires the form, the button and the history; the caller calls `run()` once it is ready.
export function searchPage({ path, api, names, resultItem, noun, title, idle, afterSubmit = () => {}, focusNew = false }) {
  const form = $("search-form");
  const results = $("results");
  const more = $("more");
  let next = null; // the URL of the next page of the current search
  let generation = 0; // a newer search makes the answers of older ones stale

  function currentParams() {
    const from = new URLSearchParams(location.search);
    return pickParams((name) => from.get(name), names);
  }

  function fillForm(params) {
    for (const name of names) {
      const field = form.elements.namedItem(name);
      if (field) field.value = params.get(name) || "";
    }
    // Filters in use stay in view, so a reader sees why the results are narrowed.
    $("search-filters").open = names.some((name) => name !== "q" && params.has(name));
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
        shown === 0 ? `ไม่พบ “${body.q}”` : `พบ ${shown.toLocaleString("th-TH")}${next ? "+" : ""} ${noun}สำหรับ “${body.q}”`;
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
      setTwin(idle(params));
      return;
    }
    setTwin(`${api}?${params}`);
    document.title = title(params.get("q"));
    load(`${api}?${params}`, { append: false });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = pickParams((name) => form.elements.namedItem(name).value, names);
    history.pushState(null, "", `${path}?${params}`);
    run();
    afterSubmit();
  });

  more.addEventListener("click", () => {
    if (!next) return;
    const first = results.children.length;
    load(next, { append: true }).then(() => {
      // Keyboard and screen reader users continue from the first new result.
      const link = focusNew && results.children[first] && results.children[first].querySelector("a");
      if (link) link.focus();
    });
  });

  window.addEventListener("popstate", run);
  return { currentParams, showError, run };
}
