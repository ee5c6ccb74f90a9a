// The staff console. Every action is a call of the public API (see /openapi.json): the console is its JSON twin's
// client, nothing more. Signed in with the session cookie (HttpOnly, so never seen here) plus the CSRF token from
// /api/staff/me, sent back as X-CSRF-Token on every POST, PATCH and DELETE. Parts the account's roles do not allow
// are hidden (the server refuses them anyway).

import { $, CHAMBERS, RESULTS, STATUSES, el, getJSON, thaiDate } from "/static/common.js";
import { act, api, can, notify, panels, session, showError } from "/static/console-api.js";
import "/static/console-messages.js";
import "/static/console-news.js";

const HEALTH_MS = 5000;
const CAPTIONS_SHOWN = 8;
const state = { sitting: null, sittingBody: null, events: null, auditBefore: null, bill: null };

// ---- the API ---------------------------------------------------------------------------------------------------

const sittingUrl = (suffix = "") => `/api/sittings/${encodeURIComponent(state.sitting.id)}${suffix}`;

// ---- signing in and out -------------------------------------------------------------------------------------------

function signedOut(message = "") {
  session.me = null;
  session.csrf = null;
  for (const panel of panels) if (panel.signedOut) panel.signedOut();
  if (state.events) state.events.close();
  state.events = null;
  $("desk").hidden = true;
  $("who").hidden = true;
  $("logout").hidden = true;
  $("login-card").hidden = false;
  $("login-error").textContent = message;
}

function signedIn(me) {
  session.me = me;
  session.csrf = me.csrf;
  const who = me.account ? me.account.display_name || me.account.username : me.principal.username;
  $("who").textContent = who;
  $("who").hidden = false;
  $("logout").hidden = false;
  $("login-card").hidden = true;
  $("desk").hidden = false;
  for (const node of document.querySelectorAll("[data-needs]")) node.hidden = !can(node.dataset.needs);
  for (const node of document.querySelectorAll("[data-lacks]")) node.hidden = can(node.dataset.lacks);
  refreshSittings();
  searchBills("");
  if (can("feed.read")) refreshHealth();
  if (can("account.manage")) refreshAccounts();
  if (can("audit.read")) refreshAudit(true);
  for (const panel of panels) if (can(panel.needs)) panel.refresh();
}

session.onUnauthorized = () => signedOut("หมดเวลาการเข้าสู่ระบบ กรุณาเข้าสู่ระบบใหม่");

async function start() {
  try {
    signedIn(await api("GET", "/api/staff/me"));
  } catch {
    signedOut();
  }
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = $("login-username").value.trim();
  const password = $("login-password").value;
  if (!username || !password) {
    $("login-error").textContent = "กรุณากรอกชื่อผู้ใช้และรหัสผ่าน";
    $(username ? "login-password" : "login-username").focus();
    return;
  }
  try {
    await api("POST", "/api/staff/login", { username, password });
    $("login-password").value = "";
    signedIn(await api("GET", "/api/staff/me"));
    notify("เข้าสู่ระบบแล้ว");
    $("main").focus();
  } catch (err) {
    $("login-error").textContent =
      err.status === 429 ? "ลองผิดหลายครั้งเกินไป กรุณารอสักครู่แล้วลองใหม่" : "ชื่อผู้ใช้หรือรหัสผ่านไม่ถูกต้อง";
    $("login-password").focus();
  }
});

$("logout").addEventListener("click", async () => {
  await api("POST", "/api/staff/logout").catch(() => null);
  signedOut("ออกจากระบบแล้ว");
  $("login-username").focus();
});

// ---- sittings ------------------------------------------------------------------------------------------------------

async function refreshSittings() {
  const body = await act(() => api("GET", "/api/sittings?limit=50"));
  if (!body) return;
  $("sitting-list").replaceChildren(
    ...body.sittings.map((s) =>
      el(
        "li",
        { class: "console-row", "data-sitting-id": s.id },
        el("span", { class: "badge", "data-status": s.status, text: STATUSES[s.status] || s.status }),
        el("button", {
          class: "console-pick",
          type: "button",
          text: s.title,
          "aria-pressed": String(Boolean(state.sitting && state.sitting.id === s.id)),
          onclick: () => selectSitting(s.id),
        }),
        el("span", { class: "muted", text: `${CHAMBERS[s.chamber] || s.chamber} · ${s.id}` }),
      ),
    ),
  );
  $("sitting-empty").hidden = body.sittings.length > 0;
}

$("sitting-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const title = $("sitting-title").value.trim();
  if (!title) {
    $("sitting-title-error").textContent = "กรุณาใส่ชื่อการประชุม";
    $("sitting-title").focus();
    return;
  }
  const body = await act(() => api("POST", "/api/sittings", { title, chamber: $("sitting-chamber").value }), {
    errorTarget: "sitting-title-error",
    done: "สร้างการประชุมแล้ว",
  });
  if (!body) return;
  $("sitting-title").value = "";
  await refreshSittings();
  await selectSitting(body.sitting.id);
});

// ---- one sitting ---------------------------------------------------------------------------------------------------

const speakersKey = () => `sapha.console.speakers.${state.sitting.id}`;

function savedSpeakers() {
  try {
    const list = JSON.parse(localStorage.getItem(speakersKey()) || "[]");
    return Array.isArray(list) ? list.filter((s) => s && typeof s.name === "string") : [];
  } catch {
    return [];
  }
}

function rememberSpeaker(name, role) {
  const list = savedSpeakers().filter((s) => s.name !== name);
  list.push({ name, role: role || null });
  localStorage.setItem(speakersKey(), JSON.stringify(list.slice(-50)));
}

async function selectSitting(id) {
  const body = await act(() => getJSON(`/api/sittings/${encodeURIComponent(id)}`));
  if (!body) return;
  const changed = !state.sitting || state.sitting.id !== id;
  state.sitting = body.sitting;
  drawSitting(body);
  for (const button of document.querySelectorAll("#sitting-list .console-pick")) {
    button.setAttribute("aria-pressed", String(button.closest("li").dataset.sittingId === id));
  }
  if (changed) {
    $("caption-list").replaceChildren();
    $("caption-empty").hidden = false;
    followCaptions();
  }
}

function tap(label, detail, current, onclick) {
  return el(
    "li",
    {},
    el(
      "button",
      { class: "console-tap", type: "button", "aria-pressed": String(current), onclick },
      el("span", { class: "console-tap-label", text: label }),
      detail ? el("span", { class: "console-tap-detail", text: detail }) : null,
    ),
  );
}

function drawSitting(body) {
  const s = body.sitting;
  state.sittingBody = body;
  drawStageLinks();
  $("control-empty").hidden = true;
  $("control").hidden = false;
  $("control").dataset.sittingId = s.id;
  $("control-title").textContent = s.title;
  $("control-status").textContent = STATUSES[s.status] || s.status;
  $("control-status").dataset.status = s.status;
  $("control-watch").href = `/watch/${encodeURIComponent(s.id)}`;
  $("start").disabled = s.status === "live";
  $("adjourn").disabled = s.status !== "live";

  // The order of business: each distinct item once, in its order; the current one pressed.
  const current = body.current_agenda_item;
  const seen = new Map();
  for (const item of body.agenda) seen.set(`${item.order}\u0000${item.title}\u0000${item.bill_id || ""}`, item);
  const items = [...seen.values()].sort((a, b) => (a.order ?? 1e9) - (b.order ?? 1e9));
  $("agenda-list").replaceChildren(
    ...items.map((item) =>
      tap(
        `${item.order ? `${item.order}. ` : ""}${item.title}`,
        item.bill_id,
        Boolean(current && current.title === item.title && current.order === item.order),
        () => setAgenda({ title: item.title, bill_id: item.bill_id || undefined, order: item.order || undefined }),
      ),
    ),
  );

  const speaker = body.speaker;
  const speakers = savedSpeakers();
  if (speaker && !speakers.some((p) => p.name === speaker.name)) speakers.push(speaker);
  $("speaker-list").replaceChildren(
    ...speakers.map((p) =>
      tap(p.name, p.role, Boolean(speaker && speaker.name === p.name), () => setSpeaker(p.name, p.role)),
    ),
  );

  const vote = body.votes[body.votes.length - 1];
  $("vote-last").textContent = vote
    ? `ล่าสุด: ${vote.motion} — ${RESULTS[vote.result] || vote.result} (${vote.yes}/${vote.no}/${vote.abstain}/${vote.absent})`
    : "";
}

async function setStatus(status, done) {
  const body = await act(() => api("POST", sittingUrl("/status"), { status }), { done });
  if (body) await Promise.all([selectSitting(state.sitting.id), refreshSittings()]);
}

$("start").addEventListener("click", () => setStatus("live", "เริ่มประชุมแล้ว"));
$("adjourn").addEventListener("click", () => setStatus("adjourned", "ปิดประชุมแล้ว"));

// `form`, when given, is cleared as soon as the call succeeds: before the redraw, so that nothing typed meanwhile
// is lost.
async function setAgenda(item, errorTarget = "error", form = null) {
  const body = await act(() => api("POST", sittingUrl("/agenda"), item), {
    errorTarget,
    done: `วาระปัจจุบัน: ${item.title}`,
  });
  if (!body) return null;
  if (form) form.reset();
  await selectSitting(state.sitting.id);
  return body;
}

$("agenda-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const title = $("agenda-title").value.trim();
  const billId = $("agenda-bill").value.trim();
  const order = $("agenda-order").value ? Number($("agenda-order").value) : undefined;
  if (!title) {
    $("agenda-error").textContent = "กรุณาใส่ชื่อวาระ";
    $("agenda-title").focus();
    return;
  }
  await setAgenda({ title, bill_id: billId || undefined, order }, "agenda-error", $("agenda-form"));
});

async function setSpeaker(name, role, errorTarget = "error", form = null) {
  const body = await act(() => api("POST", sittingUrl("/speaker"), { name, role: role || undefined }), {
    errorTarget,
    done: `ผู้อภิปราย: ${name}`,
  });
  if (!body) return null;
  if (form) form.reset();
  rememberSpeaker(name, role);
  await selectSitting(state.sitting.id);
  return body;
}

$("speaker-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("speaker-name").value.trim();
  if (!name) {
    $("speaker-error").textContent = "กรุณาใส่ชื่อผู้อภิปราย";
    $("speaker-name").focus();
    return;
  }
  await setSpeaker(name, $("speaker-role").value.trim(), "speaker-error", $("speaker-form"));
});

$("vote-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData($("vote-form"));
  const motion = String(form.get("motion") || "").trim();
  const counts = {};
  for (const name of ["yes", "no", "abstain", "absent"]) {
    const raw = String(form.get(name) || "");
    if (!/^[0-9]{1,6}$/.test(raw)) {
      $("vote-error").textContent = "กรุณาใส่จำนวนเสียงเป็นตัวเลข";
      $(`vote-${name}`).focus();
      return;
    }
    counts[name] = Number(raw);
  }
  if (!motion) {
    $("vote-error").textContent = "กรุณาใส่ญัตติ";
    $("vote-motion").focus();
    return;
  }
  const vote = { motion, ...counts, result: form.get("result") };
  const body = await act(() => api("POST", sittingUrl("/votes"), vote), {
    errorTarget: "vote-error",
    done: "บันทึกผลการลงมติแล้ว",
  });
  if (!body) return;
  $("vote-form").reset();
  await selectSitting(state.sitting.id);
});

// ---- live captions, corrected in place -------------------------------------------------------------------------------

function captionRow(data) {
  const input = el("input", {
    id: `caption-${data.archive_id}`,
    class: "console-caption-text",
    value: data.text,
    maxLength: 4000,
    "aria-label": `แก้ไขคำบรรยายเวลา ${Math.floor(data.start || 0)} วินาที`,
  });
  const error = el("span", { class: "field-error", id: `caption-${data.archive_id}-error`, role: "alert" });
  input.setAttribute("aria-describedby", error.id);
  const form = el(
    "form",
    { class: "console-caption", noValidate: true },
    input,
    el("button", { class: "console-button console-quiet", type: "submit", text: "บันทึก" }),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) {
      error.textContent = "คำบรรยายต้องไม่ว่าง";
      return;
    }
    await act(() => api("PATCH", `/api/segments/${data.archive_id}`, { text }), {
      errorTarget: error.id,
      done: "แก้ไขคำบรรยายแล้ว",
    });
  });
  return el("li", { "data-archive-id": String(data.archive_id) }, form);
}

function onCaption(data) {
  if (!data || !data.archive_id) return;
  const list = $("caption-list");
  const existing = list.querySelector(`[data-archive-id="${data.archive_id}"]`);
  if (existing) {
    const input = existing.querySelector("input");
    if (document.activeElement !== input) input.value = data.text;
    return;
  }
  list.prepend(captionRow(data));
  while (list.children.length > CAPTIONS_SHOWN) list.lastElementChild.remove();
  $("caption-empty").hidden = true;
}

function followCaptions() {
  if (state.events) state.events.close();
  if (!can("caption.correct")) return;
  const channel = encodeURIComponent(`sitting:${state.sitting.id}`);
  const source = new EventSource(`/api/channels/${channel}/events`);
  const handle = (event) => {
    try {
      const message = JSON.parse(event.data);
      onCaption(message.data || message);
    } catch {
      /* a frame that is not JSON carries nothing for us */
    }
  };
  source.addEventListener("caption.final", handle);
  source.addEventListener("caption.correction", handle);
  state.events = source;
}

// ---- bills: find one, see its stage, move it to one of the stages that may follow (operators) -------------------------

// Where each field's error is shown: the API names the field it refuses (`field`), the console ties the message to it.
const STAGE_FIELDS = {
  stage: { error: "stage-error", focus: () => document.querySelector("#stage-choices input") },
  to: { error: "stage-error", focus: () => document.querySelector("#stage-choices input") },
  on: { error: "stage-on-error", focus: () => $("stage-on") },
  note: { error: "stage-note-error", focus: () => $("stage-note") },
  sitting_id: { error: "stage-link-error", focus: () => linkControl("sitting") },
  agenda_item_id: { error: "stage-link-error", focus: () => linkControl("agenda") },
  vote_id: { error: "stage-link-error", focus: () => linkControl("vote") },
};

// A link's checkbox may be disabled by the time the API answers (the sitting's agenda moved on, its vote is gone):
// focus() on it does nothing and the operator loses their place. So the nearest enabled box of the same group, or
// else the group itself (focusable from script only; its aria-describedby already names the error).
function linkControl(name) {
  const box = $(`stage-link-${name}`);
  if (!box.disabled) return box;
  const group = box.closest("fieldset");
  const boxes = [...group.querySelectorAll("input")];
  const at = boxes.indexOf(box);
  const distance = (b) => Math.abs(boxes.indexOf(b) - at);
  const enabled = boxes.filter((b) => !b.disabled).sort((x, y) => distance(x) - distance(y));
  if (enabled.length) return enabled[0];
  group.tabIndex = -1;
  return group;
}
const STAGE_ERRORS = [...new Set(Object.values(STAGE_FIELDS).map((f) => f.error))];

async function searchBills(q) {
  $("bill-q-error").textContent = "";
  const query = new URLSearchParams({ limit: "20" });
  if (q) query.set("q", q);
  const body = await act(() => getJSON(`/api/bills?${query}`), { errorTarget: "bill-q-error" });
  if (!body) return;
  $("bill-list").replaceChildren(
    ...body.bills.map((b) =>
      el(
        "li",
        { class: "console-row", "data-bill-id": b.id },
        el("button", {
          class: "console-pick",
          type: "button",
          text: b.short_name || b.title,
          "aria-pressed": String(Boolean(state.bill && state.bill.id === b.id)),
          onclick: () => selectBill(b.id),
        }),
        el("span", { class: "muted", text: `${b.stage_label || "ยังไม่มีขั้นตอน"} · ${b.id}` }),
      ),
    ),
  );
  $("bill-empty").hidden = body.bills.length > 0;
}

$("bill-search").addEventListener("submit", (event) => {
  event.preventDefault();
  searchBills($("bill-q").value.trim());
});

async function selectBill(id) {
  const body = await act(() => getJSON(`/api/bills/${encodeURIComponent(id)}`));
  if (!body) return;
  state.bill = body.bill;
  drawBill(body);
  for (const button of document.querySelectorAll("#bill-list .console-pick")) {
    button.setAttribute("aria-pressed", String(button.closest("li").dataset.billId === id));
  }
}

function drawBill(body) {
  const b = body.bill;
  $("bill").hidden = false;
  $("bill").dataset.billId = b.id;
  $("bill-title").textContent = b.title;
  $("bill-stage").textContent = b.stage_label || "ยังไม่มีขั้นตอน";
  $("bill-stage").dataset.stage = b.stage || "";
  $("bill-page").href = b.url;
  const legend = $("stage-choices").querySelector("legend");
  $("stage-choices").replaceChildren(
    legend,
    ...body.next_stages.map((s, i) =>
      el(
        "label",
        {},
        el("input", { type: "radio", name: "stage", value: s.stage, checked: i === 0 }),
        ` ${s.label}`,
      ),
    ),
  );
  $("stage-choices").hidden = body.next_stages.length === 0;
  $("stage-none").hidden = body.next_stages.length > 0;
  $("bill-history").replaceChildren(
    ...body.stages.map((c) => el("li", { class: "console-row", text: `${c.on} — ${c.stage_label}${c.note ? ` (${c.note})` : ""}` })),
  );
  drawStageLinks();
}

// The sitting chosen above, its current agenda item and its latest vote, offered as the change's references.
function drawStageLinks() {
  const body = state.sittingBody;
  const item = body && body.current_agenda_item;
  const vote = body && body.votes[body.votes.length - 1];
  const offers = [
    ["sitting", body ? `การประชุม: ${body.sitting.title}` : "การประชุม (ยังไม่ได้เลือก)", Boolean(body)],
    ["agenda", item ? `วาระปัจจุบัน: ${item.title}` : "วาระปัจจุบัน (ไม่มี)", Boolean(item)],
    ["vote", vote ? `ผลการลงมติล่าสุด: ${vote.motion}` : "ผลการลงมติล่าสุด (ไม่มี)", Boolean(vote)],
  ];
  for (const [name, text, available] of offers) {
    $(`stage-link-${name}-text`).textContent = text;
    const box = $(`stage-link-${name}`);
    box.disabled = !available;
    if (!available) box.checked = false;
  }
}

function clearStageErrors() {
  for (const id of STAGE_ERRORS) $(id).textContent = "";
  for (const node of document.querySelectorAll("#stage-form [aria-invalid]")) node.removeAttribute("aria-invalid");
}

function stageError(field, message) {
  const target = STAGE_FIELDS[field] || STAGE_FIELDS.stage;
  $(target.error).textContent = message;
  const input = target.focus();
  if (input) {
    input.setAttribute("aria-invalid", "true");
    // The control focused must name the error itself: a checkbox or radio has it only through its group.
    const described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
    if (!described.includes(target.error)) input.setAttribute("aria-describedby", [...described, target.error].join(" "));
    input.focus();
  }
}

$("stage-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearStageErrors();
  const chosen = document.querySelector("#stage-choices input:checked");
  if (!chosen) {
    stageError("stage", "กรุณาเลือกขั้นตอนถัดไป");
    return;
  }
  const change = { stage: chosen.value };
  if ($("stage-on").value) change.on = $("stage-on").value;
  const note = $("stage-note").value.trim();
  if (note) change.note = note;
  const body = state.sittingBody;
  if (body && $("stage-link-sitting").checked) change.sitting_id = body.sitting.id;
  if (body && $("stage-link-agenda").checked && body.current_agenda_item) {
    change.sitting_id = body.sitting.id;
    change.agenda_item_id = body.current_agenda_item.id;
  }
  if (body && $("stage-link-vote").checked && body.votes.length) {
    change.sitting_id = body.sitting.id;
    change.vote_id = body.votes[body.votes.length - 1].id;
  }
  const id = state.bill.id;
  try {
    const result = await api("POST", `/api/bills/${encodeURIComponent(id)}/stages`, change);
    $("stage-form").reset();
    notify(`ย้ายร่างไปขั้นตอน: ${result.change.stage_label}`);
    await selectBill(id);
    searchBills($("bill-q").value.trim());
  } catch (err) {
    if (err.status === 403) stageError("stage", "ไม่มีสิทธิ์: การเปลี่ยนขั้นตอนร่างกฎหมายต้องใช้บทบาทผู้ควบคุมการประชุม");
    else if (err.status === 401) return;
    else stageError(err.field, `ไม่สำเร็จ: ${err.message}`);
  }
});

// ---- feed health ---------------------------------------------------------------------------------------------------

async function refreshHealth() {
  if (!can("feed.read")) return;
  try {
    const h = await api("GET", "/api/staff/feeds");
    const viewers = Object.values(h.viewers).reduce((a, b) => a + b, 0);
    const pairs = [
      ["ระบบกระจายข้อมูล", h.broker === "ok" ? "ปกติ" : "ขัดข้อง"],
      ["ผู้ชมที่เชื่อมต่อ", String(viewers)],
      ["การติดตามช่อง", String(h.subscriptions)],
    ];
    $("health").replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
    $("feeds").replaceChildren(
      ...(h.feeds.length
        ? h.feeds.map((f) =>
            el("li", {
              class: "console-row",
              text: `${f.sitting_id}: ${f.state}${f.lag_s == null ? "" : ` · ล่าช้า ${f.lag_s.toFixed(1)} วินาที`}${f.error ? ` · ${f.error}` : ""}`,
            }),
          )
        : [el("li", { class: "muted", text: "ไม่มีสัญญาณถ่ายทอดที่กำลังทำงาน" })]),
    );
  } catch {
    /* shown again on the next tick; a sign-out is handled by api() */
  }
}

setInterval(() => {
  if (session.me && document.visibilityState === "visible") refreshHealth();
}, HEALTH_MS);

// ---- accounts and tokens (admins) -----------------------------------------------------------------------------------

const ROLE_NAMES = { operator: "ผู้ควบคุมการประชุม", editor: "บรรณาธิการข่าว", moderator: "ผู้ดูแลข้อความ", admin: "ผู้ดูแลระบบ" };

async function refreshAccounts() {
  const body = await act(() => api("GET", "/api/staff/accounts"));
  if (!body) return;
  $("account-list").replaceChildren(...body.accounts.map(accountRow));
}

function accountRow(a) {
  const tokens = el("ul", { class: "console-tokens" });
  const row = el(
    "li",
    { class: "console-row console-account", "data-account-id": String(a.id) },
    el("strong", { text: a.display_name || a.username }),
    el("span", { class: "muted", text: `${a.username} · ${a.roles.map((r) => ROLE_NAMES[r] || r).join(", ")}` }),
    a.disabled ? el("span", { class: "badge", text: "ระงับแล้ว" }) : null,
    el(
      "span",
      { class: "console-actions" },
      el("button", {
        class: "console-button console-quiet",
        type: "button",
        text: a.disabled ? "เปิดใช้" : "ระงับ",
        onclick: async () => {
          if (await act(() => api("PATCH", `/api/staff/accounts/${a.id}`, { disabled: !a.disabled }))) refreshAccounts();
        },
      }),
      el("button", {
        class: "console-button console-quiet",
        type: "button",
        text: "สร้างโทเค็น API",
        onclick: () => newToken(a, tokens),
      }),
      el("button", {
        class: "console-button console-quiet",
        type: "button",
        text: "ดูโทเค็น",
        onclick: () => listTokens(a, tokens),
      }),
    ),
    tokens,
  );
  return row;
}

async function newToken(account, list) {
  const body = await act(() => api("POST", `/api/staff/accounts/${account.id}/tokens`, { label: "console" }), {
    done: "สร้างโทเค็นแล้ว",
  });
  if (!body) return;
  $("token-label").textContent = `โทเค็นใหม่ของ ${account.username} (${body.api_token.prefix})`;
  $("token-value").textContent = body.token;
  $("token-box").hidden = false;
  $("token-value").focus();
  await listTokens(account, list);
}

async function listTokens(account, list) {
  const body = await act(() => api("GET", `/api/staff/accounts/${account.id}/tokens`));
  if (!body) return;
  list.replaceChildren(
    ...body.tokens.map((t) =>
      el(
        "li",
        { class: "console-row" },
        el("code", { class: "console-code", text: `sapha_${t.prefix}_…` }),
        el("span", { class: "muted", text: `${t.label || ""} · ${thaiDate(t.created_at)}` }),
        t.revoked_at
          ? el("span", { class: "badge", text: "เพิกถอนแล้ว" })
          : el("button", {
              class: "console-button console-quiet",
              type: "button",
              text: "เพิกถอน",
              onclick: async () => {
                if (await act(() => api("DELETE", `/api/staff/tokens/${t.id}`), { done: "เพิกถอนโทเค็นแล้ว" })) {
                  listTokens(account, list);
                }
              },
            }),
      ),
    ),
    ...(body.tokens.length ? [] : [el("li", { class: "muted", text: "ยังไม่มีโทเค็น" })]),
  );
}

$("account-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData($("account-form"));
  const account = {
    username: String(form.get("username") || "").trim(),
    display_name: String(form.get("display_name") || "").trim(),
    password: String(form.get("password") || ""),
    roles: form.getAll("roles").map(String),
  };
  if (!account.username || account.password.length < 12 || account.roles.length === 0) {
    $("account-error").textContent = "กรุณาใส่ชื่อผู้ใช้ รหัสผ่านอย่างน้อย 12 ตัวอักษร และเลือกบทบาทอย่างน้อยหนึ่งบทบาท";
    return;
  }
  const body = await act(() => api("POST", "/api/staff/accounts", account), {
    errorTarget: "account-error",
    done: "สร้างบัญชีแล้ว",
  });
  if (!body) return;
  $("account-form").reset();
  refreshAccounts();
  if (can("audit.read")) refreshAudit(true);
});

// ---- the audit log (admins) ----------------------------------------------------------------------------------------

async function refreshAudit(fromTop) {
  const before = fromTop ? "" : `&before=${state.auditBefore}`;
  const body = await act(() => api("GET", `/api/staff/audit?limit=50${before}`));
  if (!body) return;
  const rows = body.entries.map((e) =>
    el(
      "tr",
      {},
      el("td", {}, el("time", { datetime: e.at, text: thaiDate(e.at) })),
      el("td", { text: e.actor }),
      el("td", { text: e.action }),
      el("td", { text: e.target || "" }),
    ),
  );
  if (fromTop) $("audit-rows").replaceChildren(...rows);
  else $("audit-rows").append(...rows);
  state.auditBefore = body.next_before;
  $("audit-more").hidden = body.next_before === null;
}

$("audit-more").addEventListener("click", () => refreshAudit(false));

start();
