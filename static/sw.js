// The service worker for alerts: served at /sw.js so that its scope is the whole site. It only shows Web Push
// alerts and opens their link; it caches nothing and handles no fetches.
//
// A push carries JSON {title, body, url, tag} (alerts/messages.py Alert.push_payload): shown as a notification,
// one per tag (a newer alert on the same bill replaces the older one on the screen). Clicking it opens the link,
// or focuses a tab already showing it. Links to another origin are not opened: only this site's pages.

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

function readPush(event) {
  if (!event.data) return {};
  try {
    return event.data.json();
  } catch {
    return { body: event.data.text() };
  }
}

self.addEventListener("push", (event) => {
  const data = readPush(event);
  const title = typeof data.title === "string" && data.title ? data.title : "สภา Sapha";
  const options = {
    body: typeof data.body === "string" ? data.body : "",
    tag: typeof data.tag === "string" ? data.tag : undefined,
    lang: "th",
    data: { url: typeof data.url === "string" ? data.url : "/" },
  };
  event.waitUntil(self.registration.showNotification(title, options));
});

function sameOrigin(link) {
  try {
    const url = new URL(link, self.location.origin);
    return url.origin === self.location.origin ? url.href : new URL("/", self.location.origin).href;
  } catch {
    return new URL("/", self.location.origin).href;
  }
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = sameOrigin((event.notification.data && event.notification.data.url) || "/");
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      for (const win of windows) if (win.url === target && "focus" in win) return win.focus();
      return self.clients.openWindow(target);
    }),
  );
});
