// The embed example host page's script (embed-example.html): load the embed, log its messages, send commands.

const params = new URLSearchParams(location.search);
const sitting = params.get("sitting") || "demo";
const server = new URL(params.get("server") || location.origin).origin;
const frame = document.getElementById("sapha");

// ?origin= tells the embed to talk to this page's origin only (and to take commands only from it).
frame.src = `${server}/embed/${encodeURIComponent(sitting)}?origin=${encodeURIComponent(location.origin)}`;

// Every message from the embed, for the log below (and for the browser tests).
window.saphaMessages = [];

function send(command, extra = {}) {
  // targetOrigin: the embed's origin, so that the command reaches nobody else if the frame navigated away.
  frame.contentWindow.postMessage({ source: "sapha-host", command, ...extra }, server);
}

window.addEventListener("message", (event) => {
  // Trust only our iframe, from the Sapha server's origin, speaking the Sapha protocol.
  if (event.source !== frame.contentWindow || event.origin !== server) return;
  const message = event.data;
  if (!message || typeof message !== "object" || message.source !== "sapha") return;
  window.saphaMessages.push(message);
  const log = document.getElementById("log");
  log.textContent = `${JSON.stringify(message)}\n${log.textContent}`.slice(0, 20000);
  switch (message.type) {
    case "ready":
      if (message.agenda) document.getElementById("agenda").textContent = message.agenda.title;
      break;
    case "caption": {
      const box = document.getElementById("caption");
      box.textContent = message.text;
      box.dataset.kind = message.kind;
      break;
    }
    case "agenda":
      document.getElementById("agenda").textContent = message.item.title;
      break;
    case "state":
      document.getElementById("state").textContent =
        `${message.state}` + (message.time === null ? "" : ` · ${message.time.toFixed(1)} s`) +
        (message.live === true ? " · live" : message.live === false ? " · recording" : "") +
        (message.muted ? " · muted" : "");
      break;
    default:
      break; // "error", and types added later
  }
});

for (const button of document.querySelectorAll("button[data-command]")) {
  button.addEventListener("click", () => send(button.dataset.command));
}
document.getElementById("seek").addEventListener("click", () => {
  send("seek", { time: Number(document.getElementById("seek-time").value) });
});
