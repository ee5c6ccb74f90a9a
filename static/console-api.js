// What every part of the staff console shares: the signed-in session, calls of the API with its CSRF token, the
// role check, and how an action reports success or failure. Panels (console-messages.js, console-news.js) register
// here and are refreshed when someone signs in, so console.js needs to know nothing of them but their import.

import { $ } from "/static/common.js";

// me: GET /api/staff/me's answer while signed in, else null; csrf: its token, sent back on every write.
export const session = { me: null, csrf: null, onUnauthorized: () => {} };

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.field = body && body.field;
  }
}

// A JSON call; a FormData (multipart) or a Blob/File (the raw bytes of an upload, typed by the browser from the
// file) is sent as is.
export async function api(method, url, body) {
  const headers = { Accept: "application/json" };
  const form = body instanceof FormData || body instanceof Blob;
  if (body !== undefined && !form) headers["Content-Type"] = "application/json";
  if (method !== "GET" && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : form ? body : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  const json = await response.json().catch(() => null);
  if (response.status === 401 && session.me) session.onUnauthorized();
  if (!response.ok || !json || json.ok !== true) throw new ApiError(response.status, json);
  return json;
}

export const can = (permission) => Boolean(session.me && session.me.principal.permissions.includes(permission));

export function notify(text) {
  $("notice").textContent = text;
}

export function showError(err, target = "error") {
  const node = $(target);
  node.textContent = err ? `ไม่สำเร็จ: ${err.message}` : "";
  if (target === "error") node.hidden = !err;
}

// Run an action from a form or a button: its error goes to the form's message, success is announced.
export async function act(action, { errorTarget = "error", done = "" } = {}) {
  showError(null, errorTarget);
  try {
    const result = await action();
    if (done) notify(done);
    return result;
  } catch (err) {
    showError(err, errorTarget);
    return null;
  }
}

// Panels in their own modules: { needs: a permission, refresh: called on sign-in when the account has it,
// signedOut (optional): called on any sign-out, by the button or an expired session, to drop what it showed }.
export const panels = [];
export function registerPanel(panel) {
  panels.push(panel);
}
