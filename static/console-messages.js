// The moderators' panel: the public's complaints, suggestions and questions (desk/messages_api.py). Listed newest
// first a page at a time (the API's `next_before` cursor), opened one at a time, and triaged only through the API:
// assign, move the status (in review, forwarded to a committee, answered, closed), mark spam, publish an answered
// suggestion anonymised when its sender agreed. Everything a sender wrote is the public's text: it is only ever set
// with textContent (el's `text`), never parsed as HTML. The contact is personal data (PDPA): fetched only on an
// explicit "show contact" (each opening is audited server-side) and removed from the DOM when hidden or closed.

import { $, el, thaiDate } from "/static/common.js";
import { ApiError, act, api, can, notify, registerPanel, session } from "/static/console-api.js";

const PAGE = 20;
const KINDS = { complaint: "ร้องเรียน", suggestion: "ข้อเสนอแนะ", question: "คำถาม" };
const STATUS = {
  received: "ได้รับแล้ว",
  in_review: "กำลังพิจารณา",
  forwarded: "ส่งต่อคณะกรรมาธิการแล้ว",
  answered: "ตอบแล้ว",
  closed: "ปิดเรื่องแล้ว",
  spam: "สแปม",
};
// desk/messages.py's TRANSITIONS, to offer only the moves the server would take (it checks them again: 409).
const NEXT = {
  received: ["in_review", "closed", "spam"],
  in_review: ["forwarded", "answered", "closed", "spam"],
  forwarded: ["in_review", "answered", "closed"],
  answered: ["in_review", "closed"],
  closed: [],
  spam: ["in_review"],
};
// The status form's choices (spam has its own button).
const MOVES = { in_review: "กำลังพิจารณา", forwarded: "ส่งต่อคณะกรรมาธิการ", answered: "ตอบแล้ว", closed: "ปิดเรื่อง" };

const state = { before: null, filter: { status: "", kind: "" }, generation: 0, open: null, rows: new Map() };

const base = (id) => `/api/staff/messages/${encodeURIComponent(id)}`;

// ---- the list ------------------------------------------------------------------------------------------------------

function row(m) {
  return el(
    "li",
    { class: "console-row console-message-row", "data-message-id": m.id },
    el("span", { class: "badge", "data-message-status": m.status, text: STATUS[m.status] || m.status }),
    el("button", {
      class: "console-pick",
      type: "button",
      text: m.subject,
      "aria-pressed": String(state.open === m.id),
      onclick: () => openMessage(m.id),
    }),
    el("span", {
      class: "muted",
      text: [KINDS[m.kind] || m.kind, thaiDate(m.created_at), m.assigned_to ? `ผู้รับผิดชอบ: ${m.assigned_to}` : ""]
        .filter(Boolean)
        .join(" · "),
    }),
  );
}

// The API filters by status and kind. "Older" sends the filters of the list shown with its cursor, not what the
// selects say now: a page of another filter appended to it would mix two lists.
async function loadMessages(fromTop) {
  const mine = ++state.generation;
  if (fromTop) state.filter = { status: $("msg-status").value, kind: $("msg-kind").value };
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (state.filter.status) query.set("status", state.filter.status);
  if (state.filter.kind) query.set("kind", state.filter.kind);
  if (!fromTop && state.before) query.set("before", state.before);
  $("msg-more").disabled = true;
  const body = await act(() => api("GET", `/api/staff/messages?${query}`), { errorTarget: "msg-filter-error" });
  $("msg-more").disabled = false;
  if (!body || mine !== state.generation) return;
  if (fromTop) {
    state.rows.clear();
    $("msg-list").replaceChildren();
  }
  for (const m of body.messages) {
    if (state.rows.has(m.id)) continue;
    const li = row(m);
    state.rows.set(m.id, li);
    $("msg-list").append(li);
  }
  state.before = body.next_before;
  $("msg-more").hidden = body.next_before === null;
  $("msg-empty").hidden = state.rows.size > 0;
}

function updateRow(m) {
  const old = state.rows.get(m.id);
  if (!old) return;
  const fresh = row(m);
  old.replaceWith(fresh);
  state.rows.set(m.id, fresh);
}

$("msg-filter").addEventListener("submit", (event) => {
  event.preventDefault();
  loadMessages(true);
});
$("msg-more").addEventListener("click", () => loadMessages(false));

// ---- one message ---------------------------------------------------------------------------------------------------

function closeMessage(focusRow = true) {
  const id = state.open;
  state.open = null;
  // Dropping the detail drops the contact with it: personal data stays in the DOM only while shown.
  $("msg").replaceChildren();
  $("msg").hidden = true;
  for (const b of document.querySelectorAll("#msg-list .console-pick")) b.setAttribute("aria-pressed", "false");
  const li = id && state.rows.get(id);
  if (focusRow && li) li.querySelector("button").focus();
}

async function openMessage(id) {
  const body = await act(() => api("GET", base(id)), { errorTarget: "msg-filter-error" });
  if (!body) return;
  state.open = id;
  for (const b of document.querySelectorAll("#msg-list .console-pick")) {
    b.setAttribute("aria-pressed", String(b.closest("li").dataset.messageId === id));
  }
  drawMessage(body.message);
  $("msg-subject").focus();
}

const sizeText = (n) =>
  n >= 1024 * 1024 ? `${(n / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} KB`;

// An error tied to its field: the message in the field's error element, the field marked invalid and focused.
function fieldError(errorId, message, input) {
  $(errorId).textContent = message;
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

function clearErrors(scope) {
  for (const node of scope.querySelectorAll(".field-error")) node.textContent = "";
  for (const node of scope.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

function errorText(err) {
  if (err.status === 403) return "ไม่มีสิทธิ์: ต้องมีบทบาทผู้ดูแลข้อความ";
  return `ไม่สำเร็จ: ${err.message}`;
}

// Run one triage call; success redraws the message and its row and is announced, failure goes to `fields`'s
// entry for the field the API named (else to `fallback`).
async function triage(form, call, done, fields, fallback) {
  clearErrors(form);
  try {
    const body = await call();
    drawMessage(body.message);
    updateRow(body.message);
    notify(done);
    $("msg-subject").focus();
  } catch (err) {
    if (err.status === 401) {
      closeMessage(false);
      return;
    }
    const target = (err instanceof ApiError && fields[err.field]) || fallback;
    fieldError(target.error, errorText(err), target.input);
  }
}

function labelled(id, text, input, errorId) {
  input.id = id;
  input.setAttribute("aria-describedby", errorId);
  return [el("label", { for: id, text }), input, el("p", { id: errorId, class: "field-error", role: "alert" })];
}

function drawMessage(m) {
  const box = $("msg");
  const meta = [
    el("span", {
      id: "msg-state",
      class: "badge",
      "data-message-status": m.status,
      text: STATUS[m.status] || m.status,
    }),
    el("span", { text: KINDS[m.kind] || m.kind }),
    el("time", { datetime: m.created_at, text: thaiDate(m.created_at) }),
    m.assigned_to ? el("span", { id: "msg-assignee", text: `ผู้รับผิดชอบ: ${m.assigned_to}` }) : null,
    m.committee ? el("span", { id: "msg-committee", text: `คณะกรรมาธิการ: ${m.committee}` }) : null,
    m.published_at ? el("span", { class: "badge", text: "เผยแพร่แล้ว" }) : null,
  ];
  const parts = [
    el("h3", { id: "msg-subject", class: "console-title", tabIndex: -1, text: m.subject }),
    el("p", { class: "sitting-meta" }, ...meta),
    el("p", { id: "msg-text", class: "console-message-text", text: m.text }),
  ];
  if (m.answer) {
    parts.push(
      el("h4", { class: "console-sub", text: "คำตอบ" }),
      el("p", { id: "msg-answer", class: "console-message-text", text: m.answer }),
    );
  }
  parts.push(attachmentsPart(m), contactPart(m));
  if (can("message.triage")) parts.push(assignPart(m), statusPart(m), publishPart(m));
  parts.push(
    el("button", {
      class: "console-button console-quiet",
      type: "button",
      text: "ปิดข้อความ",
      onclick: () => closeMessage(),
    }),
  );
  box.replaceChildren(...parts.filter(Boolean));
  box.dataset.messageId = m.id;
  box.hidden = false;
}

function attachmentsPart(m) {
  if (!m.attachments.length) return null;
  const section = el("section", { class: "console-panel", "aria-labelledby": "msg-files-h" });
  section.append(el("h4", { id: "msg-files-h", class: "console-sub", text: `ไฟล์แนบ (${m.attachments.length})` }));
  if (!can("attachment.read")) {
    section.append(el("p", { class: "muted", text: "บัญชีนี้ไม่มีสิทธิ์ดาวน์โหลดไฟล์แนบ" }));
    return section;
  }
  // Downloads only (the server answers Content-Disposition: attachment); never shown inline here.
  const list = el("ul", { id: "msg-files", class: "console-list" });
  m.attachments.forEach((a, i) => {
    list.append(
      el(
        "li",
        { class: "console-row" },
        el("a", {
          href: `${base(m.id)}/attachments/${encodeURIComponent(a.name)}`,
          download: "",
          text: `ดาวน์โหลดไฟล์แนบ ${i + 1}`,
        }),
        el("span", { class: "muted", text: `${a.content_type} · ${sizeText(a.size)}` }),
      ),
    );
  });
  section.append(list);
  return section;
}

function contactPart(m) {
  const section = el("section", { class: "console-panel", "aria-labelledby": "msg-contact-h" });
  section.append(el("h4", { id: "msg-contact-h", class: "console-sub", text: "ข้อมูลติดต่อผู้ส่ง" }));
  if (m.contact_erased_at) {
    const when = thaiDate(m.contact_erased_at);
    section.append(el("p", { class: "muted", text: `ลบตามระยะเวลาการเก็บรักษาแล้วเมื่อ ${when}` }));
    return section;
  }
  if (!m.has_contact) {
    section.append(el("p", { class: "muted", text: "ผู้ส่งไม่ได้ให้ข้อมูลติดต่อ" }));
    return section;
  }
  if (!can("message.contact.read")) {
    section.append(el("p", { class: "muted", text: "เฉพาะผู้ดูแลข้อความเท่านั้นที่ดูข้อมูลติดต่อได้" }));
    return section;
  }
  const shown = el("dl", { id: "msg-contact", class: "console-health" });
  const error = el("p", { id: "msg-contact-error", class: "field-error", role: "alert" });
  const button = el("button", {
    id: "msg-contact-toggle",
    class: "console-button console-quiet",
    type: "button",
    text: "แสดงข้อมูลติดต่อ",
    "aria-expanded": "false",
    "aria-controls": "msg-contact",
    "aria-describedby": "msg-contact-note msg-contact-error",
  });
  button.addEventListener("click", async () => {
    error.textContent = "";
    if (button.getAttribute("aria-expanded") === "true") {
      shown.replaceChildren();
      button.setAttribute("aria-expanded", "false");
      button.textContent = "แสดงข้อมูลติดต่อ";
      return;
    }
    try {
      const body = await api("GET", `${base(m.id)}/contact`);
      const c = body.contact || {};
      const pairs = [
        ["อีเมล", c.email],
        ["โทรศัพท์", c.phone],
      ].filter(([, v]) => v);
      shown.replaceChildren(
        ...(pairs.length
          ? pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])
          : [el("dt", { text: "ข้อมูลติดต่อ" }), el("dd", { text: "ไม่มี (ถูกลบแล้ว)" })]),
      );
      button.setAttribute("aria-expanded", "true");
      button.textContent = "ซ่อนข้อมูลติดต่อ";
    } catch (err) {
      if (err.status === 401) return closeMessage(false);
      fieldError("msg-contact-error", errorText(err), button);
    }
  });
  section.append(
    el("p", { id: "msg-contact-note", class: "muted console-hint", text: "ข้อมูลส่วนบุคคล: ทุกการเปิดดูถูกบันทึกไว้" }),
    button,
    error,
    shown,
  );
  return section;
}

function assignPart(m) {
  const input = el("input", { name: "assigned_to", maxLength: 32, autocomplete: "off", autocapitalize: "none" });
  const form = el("form", { id: "msg-assign-form", class: "console-form", noValidate: true });
  const me = currentUsername();
  const fields = { assigned_to: { error: "msg-assign-error", input } };
  const assign = (who, done) =>
    triage(form, () => api("POST", `${base(m.id)}/assign`, { assigned_to: who }), done, fields, fields.assigned_to);
  form.append(
    el("h4", { class: "console-sub", text: "มอบหมาย" }),
    ...labelled("msg-assign-to", "มอบหมายให้บัญชี (ชื่อผู้ใช้)", input, "msg-assign-error"),
    el(
      "span",
      { class: "console-actions" },
      el("button", { class: "console-button", type: "submit", text: "มอบหมาย" }),
      me
        ? el("button", {
            class: "console-button console-quiet",
            type: "button",
            text: "มอบหมายให้ฉัน",
            onclick: () => assign(me, `มอบหมายให้ ${me} แล้ว`),
          })
        : null,
      m.assigned_to
        ? el("button", {
            class: "console-button console-quiet",
            type: "button",
            text: "ยกเลิกการมอบหมาย",
            onclick: () => assign(null, "ยกเลิกการมอบหมายแล้ว"),
          })
        : null,
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(form);
    const who = input.value.trim();
    if (!who) {
      fieldError("msg-assign-error", "กรุณาใส่ชื่อผู้ใช้ที่จะมอบหมาย", input);
      return;
    }
    assign(who, `มอบหมายให้ ${who} แล้ว`);
  });
  return form;
}

// The signed-in account's username (the API assigns by username).
function currentUsername() {
  const me = session.me;
  return me ? (me.account ? me.account.username : me.principal.username) : null;
}

function statusPart(m) {
  const next = NEXT[m.status] || [];
  const moves = next.filter((s) => s in MOVES);
  const form = el("form", { id: "msg-status-form", class: "console-form", noValidate: true });
  form.append(el("h4", { class: "console-sub", text: "เปลี่ยนสถานะ" }));
  if (!next.length) {
    form.append(el("p", { class: "muted", text: "เรื่องนี้ปิดแล้ว เปลี่ยนสถานะไม่ได้อีก" }));
    return form;
  }
  const group = el(
    "fieldset",
    { id: "msg-moves", class: "console-radios", "aria-describedby": "msg-move-error" },
    el("legend", { text: "สถานะใหม่" }),
    ...moves.map((s, i) =>
      el("label", {}, el("input", { type: "radio", name: "status", value: s, checked: i === 0 }), ` ${MOVES[s]}`),
    ),
  );
  const committee = el("input", { name: "committee", maxLength: 200 });
  const answer = el("textarea", { name: "answer", maxLength: 5000, rows: 5 });
  const note = el("input", { name: "note", maxLength: 1000 });
  const committeeBox = el(
    "div",
    { class: "console-form" },
    ...labelled("msg-committee-in", "ชื่อคณะกรรมาธิการ", committee, "msg-committee-error"),
  );
  const answerBox = el(
    "div",
    { class: "console-form" },
    ...labelled("msg-answer-in", "คำตอบถึงผู้ส่ง", answer, "msg-answer-error"),
  );
  const chosen = () => (form.querySelector("input[name=status]:checked") || {}).value;
  const showFields = () => {
    committeeBox.hidden = chosen() !== "forwarded";
    answerBox.hidden = chosen() !== "answered";
  };
  group.addEventListener("change", showFields);
  const firstRadio = () => group.querySelector("input:checked") || group.querySelector("input");
  const fields = {
    status: { error: "msg-move-error", input: firstRadio() },
    committee: { error: "msg-committee-error", input: committee },
    answer: { error: "msg-answer-error", input: answer },
    note: { error: "msg-note-error", input: note },
  };
  if (moves.length) {
    form.append(
      group,
      el("p", { id: "msg-move-error", class: "field-error", role: "alert" }),
      committeeBox,
      answerBox,
      ...labelled("msg-note-in", "บันทึกภายใน (ถ้ามี)", note, "msg-note-error"),
      el("button", { class: "console-button", type: "submit", text: "บันทึกสถานะ" }),
    );
  }
  showFields();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(form);
    const status = chosen();
    if (!status) {
      fieldError("msg-move-error", "กรุณาเลือกสถานะใหม่", firstRadio());
      return;
    }
    const change = { status };
    if (status === "forwarded") {
      change.committee = committee.value.trim();
      if (!change.committee) return fieldError("msg-committee-error", "กรุณาใส่ชื่อคณะกรรมาธิการ", committee);
    }
    if (status === "answered") {
      change.answer = answer.value.trim();
      if (!change.answer) return fieldError("msg-answer-error", "กรุณาใส่คำตอบ", answer);
    }
    if (note.value.trim()) change.note = note.value.trim();
    fields.status.input = firstRadio();
    triage(form, () => api("POST", `${base(m.id)}/status`, change), `สถานะ: ${STATUS[status]}`, fields, fields.status);
  });
  if (next.includes("spam")) {
    const spamError = el("p", { id: "msg-spam-error", class: "field-error", role: "alert" });
    const spam = el("button", {
      id: "msg-spam",
      class: "console-button console-stop",
      type: "button",
      text: "ทำเครื่องหมายว่าเป็นสแปม",
      "aria-describedby": "msg-spam-error",
    });
    const target = { error: "msg-spam-error", input: spam };
    spam.addEventListener("click", () =>
      triage(form, () => api("POST", `${base(m.id)}/status`, { status: "spam" }), "ทำเครื่องหมายสแปมแล้ว", {}, target),
    );
    form.append(el("span", { class: "console-actions" }, spam), spamError);
  }
  return form;
}

function publishPart(m) {
  if (m.kind !== "suggestion") return null;
  const section = el("section", { class: "console-panel", "aria-labelledby": "msg-publish-h" });
  section.append(el("h4", { id: "msg-publish-h", class: "console-sub", text: "เผยแพร่ข้อเสนอแนะ" }));
  // Offered only when the sender opted in: the public list shows subject, text, committee and answer, no sender.
  if (!m.publish_ok) {
    section.append(el("p", { class: "muted", text: "ผู้ส่งไม่ได้อนุญาตให้เผยแพร่" }));
    return section;
  }
  if (!m.answer || !["answered", "closed"].includes(m.status)) {
    section.append(el("p", { class: "muted", text: "เผยแพร่ได้เมื่อตอบข้อเสนอแนะนี้แล้ว" }));
    return section;
  }
  const published = Boolean(m.published_at);
  const error = el("p", { id: "msg-publish-error", class: "field-error", role: "alert" });
  const button = el("button", {
    id: "msg-publish",
    class: "console-button",
    type: "button",
    text: published ? "ถอนการเผยแพร่" : "เผยแพร่แบบไม่ระบุตัวตน",
    "aria-describedby": "msg-publish-hint msg-publish-error",
  });
  const target = { error: "msg-publish-error", input: button };
  button.addEventListener("click", () =>
    triage(
      section,
      () => api("POST", `${base(m.id)}/publish`, { published: !published }),
      published ? "ถอนการเผยแพร่แล้ว" : "เผยแพร่แบบไม่ระบุตัวตนแล้ว",
      {},
      target,
    ),
  );
  section.append(
    el("p", {
      id: "msg-publish-hint",
      class: "muted console-hint",
      text: "ผู้ส่งอนุญาตแล้ว แสดงเฉพาะเรื่อง ข้อความ และคำตอบ ไม่แสดงผู้ส่ง",
    }),
    button,
    error,
  );
  return section;
}

// Signing out, by the button or by an expired session: nothing of the senders' stays behind in the page.
function forget() {
  closeMessage(false);
  state.generation += 1;
  state.rows.clear();
  $("msg-list").replaceChildren();
}
registerPanel({
  needs: "message.read",
  signedOut: forget,
  refresh() {
    closeMessage(false);
    state.before = null;
    loadMessages(true);
  },
});
