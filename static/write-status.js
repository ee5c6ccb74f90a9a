// /write/status/{code}: the sender's message, its status history and the answer, from its JSON twin
// /api/messages/{code}. Every text the sender or a moderator wrote is set with textContent (never as HTML).
// Export and erasure (PDPA) go through the same code.

import { $, el, getJSON, thaiDate } from "/static/common.js";

const KINDS = { complaint: "ร้องเรียน", suggestion: "ข้อเสนอแนะ", question: "คำถาม" };
const STATUS = {
  received: "ได้รับแล้ว",
  in_review: "กำลังพิจารณา",
  forwarded: "ส่งต่อคณะกรรมาธิการแล้ว",
  answered: "ตอบแล้ว",
  closed: "ปิดเรื่องแล้ว",
  spam: "ไม่รับพิจารณา",
};

const code = decodeURIComponent(location.pathname.replace(/^\/write\/status\//, ""));
const api = `/api/messages/${encodeURIComponent(code)}`;
for (const link of [$("json-twin"), $("json-twin-footer")]) link.href = api;

function fail(message) {
  $("status-loading").textContent = "";
  $("load-error").textContent = message;
  $("load-error").hidden = false;
}

function render(m) {
  $("m-kind").textContent = KINDS[m.kind] || m.kind;
  $("m-received").replaceChildren(el("time", { datetime: m.received_at, text: `ส่งเมื่อ ${thaiDate(m.received_at)}` }));
  $("m-subject").textContent = m.subject;
  $("m-status").textContent = STATUS[m.status] || m.status;
  $("m-status").dataset.status = m.status;
  $("m-text").textContent = m.text;
  if (m.answer) {
    $("m-answer").textContent = m.answer;
    $("m-answer-box").hidden = false;
  }
  if (m.committee) {
    $("m-committee").textContent = `ส่งถึง: ${m.committee}`;
    $("m-committee").hidden = false;
  }
  $("m-history").replaceChildren(
    ...m.history.map((h) =>
      el("li", {}, el("time", { datetime: h.at, text: thaiDate(h.at) }), " — ", el("span", { text: STATUS[h.status] || h.status })),
    ),
  );
  $("status-loading").textContent = "";
  $("message").hidden = false;
  $("export-link").href = `${api}/export`;
  $("my-data").hidden = false;
}

async function load() {
  try {
    const body = await getJSON(api);
    render(body.message);
  } catch (err) {
    if (err.status === 404) fail("ไม่พบข้อความที่มีรหัสติดตามนี้ กรุณาตรวจสอบรหัสอีกครั้ง");
    else if (err.status === 429) fail("ตรวจสอบบ่อยเกินไป กรุณาลองใหม่ในอีกสักครู่");
    else fail("โหลดสถานะไม่สำเร็จ กรุณาลองใหม่อีกครั้ง");
  }
}

$("erase").addEventListener("click", () => {
  $("erase-confirm-row").hidden = false;
  $("erase-confirm").focus();
});

$("erase-confirm").addEventListener("click", async () => {
  const response = await fetch(api, { method: "DELETE", headers: { Accept: "application/json" } }).catch(() => null);
  if (response && response.ok) {
    $("message").hidden = true;
    $("erase-confirm-row").hidden = true;
    $("erase").hidden = true;
    $("export-link").parentElement.hidden = true;
    $("erase-done").textContent = "ลบข้อความและข้อมูลของคุณแล้ว";
  } else {
    $("erase-done").textContent = "ลบไม่สำเร็จ กรุณาลองใหม่อีกครั้ง";
  }
});

load();
