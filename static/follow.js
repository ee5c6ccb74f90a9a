// The "ติดตาม / follow" control of a bill: Web Push in this browser (a service worker, /sw.js), an email form
// (a confirmation message first: double opt-in), and the bill's Atom feed. Used on /bills/<id> and on the watch
// page's agenda item. docs/alerts.md has the API it calls.
//
// Every outcome is said in the control's status line (an aria-live region), never only by colour or a dialog.
// The management token of a push follow made here is kept in localStorage, so the same button can end it.

import { el } from "/static/common.js";

let counter = 0;
const TOKENS = "sapha.follows";

function tokens() {
  try {
    return JSON.parse(localStorage.getItem(TOKENS) || "{}");
  } catch {
    return {};
  }
}

function saveToken(key, token) {
  const all = tokens();
  if (token) all[key] = token;
  else delete all[key];
  try {
    localStorage.setItem(TOKENS, JSON.stringify(all));
  } catch {
    // private mode: the follow still works; only this page forgets it made it
  }
}

function keyBytes(base64url) {
  const text = atob(base64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (base64url.length % 4)) % 4));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

async function postFollow(target, channel) {
  const response = await fetch("/api/follows", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ target, channel }),
  });
  const body = await response.json().catch(() => ({}));
  return { status: response.status, body };
}

async function pushSubscription() {
  const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
  await navigator.serviceWorker.ready;
  const existing = await registration.pushManager.getSubscription();
  if (existing) return existing;
  const vapid = await fetch("/api/push/vapid", { headers: { Accept: "application/json" } }).then((r) => r.json());
  return registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(vapid.key) });
}

// A follow control for a bill. Returns the element to put on the page.
export function followControl(billId, { compact = false } = {}) {
  counter += 1;
  const id = `follow-${counter}`;
  const target = { kind: "bill", value: billId };
  const key = `bill:${billId}`;
  const status = el("p", { class: "follow-status", id: `${id}-status`, role: "status", "aria-live": "polite" });
  const say = (text) => {
    status.textContent = text;
  };
  const button = el("button", { class: "follow-button", type: "button", "aria-describedby": status.id });
  const draw = () => {
    const following = Boolean(tokens()[key]);
    button.textContent = following ? "เลิกติดตาม · Unfollow" : "ติดตาม · Follow";
    button.setAttribute("aria-pressed", String(following));
  };
  draw();

  button.addEventListener("click", async () => {
    const token = tokens()[key];
    button.disabled = true;
    try {
      if (token) {
        const response = await fetch(`/api/follows/${encodeURIComponent(token)}`, { method: "DELETE" });
        if (response.ok || response.status === 404) {
          saveToken(key, null);
          say("เลิกติดตามแล้ว · Unfollowed");
        } else say(`เลิกติดตามไม่สำเร็จ (HTTP ${response.status})`);
        return;
      }
      if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
        say("เบราว์เซอร์นี้รับการแจ้งเตือนไม่ได้ — ใช้อีเมลหรือฟีดแทน · This browser cannot receive push alerts");
        return;
      }
      say("กำลังขอรับการแจ้งเตือน… · Subscribing…");
      const subscription = await pushSubscription();
      const { status: code, body } = await postFollow(target, { type: "push", subscription: subscription.toJSON() });
      if (code === 201) {
        saveToken(key, body.token);
        say("ติดตามแล้ว: จะแจ้งเตือนในเบราว์เซอร์นี้ · Following: alerts will appear in this browser");
      } else if (code === 409 && body.field === "target") {
        say("เบราว์เซอร์นี้ติดตามร่างนี้อยู่แล้ว · Already following in this browser");
      } else say(`ติดตามไม่สำเร็จ: ${body.error || `HTTP ${code}`}`);
    } catch (err) {
      const denied = typeof Notification !== "undefined" && Notification.permission === "denied";
      say(denied ? "การแจ้งเตือนถูกปิดไว้ในเบราว์เซอร์ · Notifications are blocked" : `ติดตามไม่สำเร็จ: ${err.message}`);
    } finally {
      button.disabled = false;
      draw();
    }
  });

  const input = el("input", { id: `${id}-email`, type: "email", name: "email", autocomplete: "email", required: true });
  const form = el(
    "form",
    { class: "follow-email" },
    el("label", { for: input.id, text: "อีเมล · Email" }),
    input,
    el("button", { type: "submit", class: "follow-email-submit", text: "รับทางอีเมล · Email me" }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { status: code, body } = await postFollow(target, { type: "email", email: input.value.trim() });
    if (code === 201) {
      form.reset();
      say("ส่งอีเมลยืนยันแล้ว — กดลิงก์ในอีเมลเพื่อเริ่มรับ · Check your email to confirm");
    } else say(`สมัครไม่สำเร็จ: ${body.error || `HTTP ${code}`}`);
  });
  const feed = el("a", {
    class: "follow-feed",
    href: `/feeds/bills/${encodeURIComponent(billId)}.atom`,
    type: "application/atom+xml",
    text: "ฟีด Atom",
  });
  const more = el(
    "details",
    { class: "follow-more" },
    el("summary", { text: "อีเมล · ฟีด" }),
    form,
    feed,
  );
  return el("div", { class: compact ? "follow follow-compact" : "follow", "data-bill-id": billId }, button, more, status);
}
