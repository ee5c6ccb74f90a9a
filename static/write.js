// The /write form: sent with fetch as multipart to POST /api/messages (its JSON twin). Each refusal the API names
// (`fields`, or `field`) is shown under its own input, tied to it by aria-describedby, the input marked
// aria-invalid; the tracking code of a message received is shown once, with the link to its status page.
// Nothing typed here is ever put into the page as HTML.

import { $ } from "/static/common.js";

const FIELDS = ["kind", "subject", "text", "email", "phone", "attachments", "consent"];
const MAX_FILES = 5;
const MAX_BYTES = 5 * 1024 * 1024;
const MAX_TOTAL = 15 * 1024 * 1024;
const TYPES = new Set(["image/png", "image/jpeg", "image/webp", "application/pdf"]);
// What to say under each field when the API refuses it (its own words are English and for developers).
const SAY = {
  kind: "กรุณาเลือกประเภทของเรื่อง",
  subject: "กรุณากรอกหัวข้อ ไม่เกิน 200 ตัวอักษร",
  text: "กรุณากรอกรายละเอียด ไม่เกิน 5,000 ตัวอักษร",
  email: "อีเมลไม่ถูกต้อง — ร้องเรียนและคำถามต้องมีอีเมลหรือเบอร์โทรศัพท์",
  phone: "เบอร์โทรศัพท์ไม่ถูกต้อง เช่น 081 234 5678",
  attachments: "ไฟล์แนบต้องเป็น PNG, JPEG, WebP หรือ PDF ไม่เกิน 5 ไฟล์ ไฟล์ละไม่เกิน 5 MB",
  consent: "กรุณายอมรับประกาศความเป็นส่วนตัวก่อนส่ง",
};

const form = $("write-form");
const formError = $("form-error");
const progress = $("write-progress");
const submit = $("write-submit");

function control(name) {
  return name === "kind" ? form.querySelector("input[name=kind]") : $(name);
}

function showError(name, message) {
  const box = $(`${name}-error`);
  box.textContent = message;
  box.hidden = false;
  if (name === "kind") form.querySelectorAll("input[name=kind]").forEach((i) => i.setAttribute("aria-invalid", "true"));
  else control(name).setAttribute("aria-invalid", "true");
}

function clearErrors() {
  formError.hidden = true;
  formError.textContent = "";
  for (const name of FIELDS) {
    const box = $(`${name}-error`);
    box.hidden = true;
    box.textContent = "";
    form.querySelectorAll(`[name=${name}]`).forEach((i) => i.removeAttribute("aria-invalid"));
  }
}

// The checks the browser can make before sending; the API makes them all again.
function localErrors() {
  const errors = {};
  if (!$("subject").value.trim()) errors.subject = SAY.subject;
  if (!$("text").value.trim()) errors.text = SAY.text;
  const kind = form.elements.namedItem("kind").value;
  if (kind !== "suggestion" && !$("email").value.trim() && !$("phone").value.trim()) {
    errors.email = "ร้องเรียนและคำถามต้องมีอีเมลหรือเบอร์โทรศัพท์อย่างน้อยหนึ่งช่องทาง";
  }
  const files = Array.from($("attachments").files);
  const total = files.reduce((sum, f) => sum + f.size, 0);
  if (files.length > MAX_FILES || total > MAX_TOTAL || files.some((f) => f.size > MAX_BYTES || !TYPES.has(f.type))) {
    errors.attachments = SAY.attachments;
  }
  if (!$("consent").checked) errors.consent = SAY.consent;
  return errors;
}

function showAll(errors) {
  const names = FIELDS.filter((name) => name in errors);
  for (const name of names) showError(name, errors[name]);
  formError.textContent = `กรุณาแก้ไข ${names.length} ช่องที่ระบุด้านล่าง`;
  formError.hidden = false;
  control(names[0]).focus();
}

function minutes(seconds) {
  return Math.max(1, Math.ceil(Number(seconds || 60) / 60));
}

function refused(status, body) {
  const fields = (body && body.fields) || (body && body.field && FIELDS.includes(body.field) ? { [body.field]: "" } : null);
  if (fields && Object.keys(fields).some((name) => FIELDS.includes(name))) {
    const errors = {};
    for (const name of Object.keys(fields)) if (FIELDS.includes(name)) errors[name] = SAY[name];
    showAll(errors);
    return;
  }
  if (status === 429) formError.textContent = `ส่งบ่อยเกินไป กรุณาลองใหม่ในอีกประมาณ ${minutes(body && body.retry_after)} นาที`;
  else if (status === 409) formError.textContent = "ได้รับข้อความเดียวกันนี้แล้ว ไม่ต้องส่งซ้ำ";
  else if (status === 413) formError.textContent = "ข้อมูลหรือไฟล์แนบมีขนาดใหญ่เกินไป";
  else formError.textContent = "ส่งไม่สำเร็จ กรุณาลองใหม่อีกครั้ง";
  formError.hidden = false;
  formError.focus();
}

function done(body) {
  form.hidden = true;
  $("tracking-code").textContent = body.code;
  $("status-link").href = body.status_url;
  $("write-done").hidden = false;
  $("done-title").focus();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  const errors = localErrors();
  if (Object.keys(errors).length) {
    showAll(errors);
    return;
  }
  submit.disabled = true;
  progress.textContent = "กำลังส่ง…";
  try {
    const response = await fetch("/api/messages", { method: "POST", body: new FormData(form), headers: { Accept: "application/json" } });
    const body = await response.json().catch(() => null);
    progress.textContent = "";
    if (response.ok && body && body.ok) done(body);
    else refused(response.status, body);
  } catch {
    progress.textContent = "";
    refused(0, null);
  } finally {
    submit.disabled = false;
  }
});

// Marks clear as the reader fixes a field.
for (const name of FIELDS) {
  form.querySelectorAll(`[name=${name}]`).forEach((input) =>
    input.addEventListener("change", () => {
      $(`${name}-error`).hidden = true;
      form.querySelectorAll(`[name=${name}]`).forEach((i) => i.removeAttribute("aria-invalid"));
    }),
  );
}
