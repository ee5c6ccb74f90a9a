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
