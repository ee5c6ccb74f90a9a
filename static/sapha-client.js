// SaphaClient: a small WebSocket client for Sapha's /ws endpoint that never loses or repeats an event.
//
// It is an ES module with no dependencies, served as /static/sapha-client.js:
//
//   import { SaphaClient } from "/static/sapha-client.js";
//
//   const client = new SaphaClient({
//     onEvent(event) { ... },              // {channel, seq, epoch, type, ts, data}; each event exactly once, in order
//     onReset(channel, frame) { ... },     // the position is no longer valid: refetch the state, then carry on
//     onState(state) { ... },              // "connecting" | "live" | "reconnecting" | "offline" | "closed"
//   });
//   client.subscribe("sitting:senate-20250101-abc123", { since: state.position.seq, epoch: state.position.epoch });
//   client.connect();
//
// What it does for you:
//   * remembers the last (epoch, seq) seen per channel and resubscribes with `since`/`epoch` after any drop;
//   * reconnects after every close (network loss, 4008 slow consumer, 1001/1012 server restart, missed pong)
//     with exponential backoff and jitter, and at once when the browser comes back online;
//   * drops duplicate events (seq <= last seq in the same epoch), so replays are harmless;
//   * calls onReset(channel) when the server answers `recovered: false` (history trimmed or epoch changed);
//   * sends its own {"op":"ping"} every 25 s and treats a silent connection as dead;
//   * keeps the last error frame in `client.lastError` and the last close in `client.lastClose`.
// See docs/websocket.md for the protocol itself.

export const CLOSE_CODES = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TOO_MANY_ERRORS: 4002,
  SLOW_CONSUMER: 4008,
});

// Used only by the client itself, when it drops a connection it no longer trusts (not sent by the server).
const CLIENT_RESYNC = 4000;

const noop = () => {};

function defaultUrl() {
  const loc = globalThis.location;
  if (!loc) throw new Error("SaphaClient: pass options.url outside a browser");
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/ws`;
}

export class SaphaClient {
  /**
   * @param {object} [options]
   * @param {string} [options.url]            WebSocket URL; defaults to /ws on the page's own host.
   * @param {(event: object) => void} [options.onEvent]
   * @param {(channel: string, frame: object) => void} [options.onReset]
   * @param {(frame: object) => void} [options.onSubscribed]  every `subscribed` frame, after bookkeeping
   * @param {(state: string, detail: object) => void} [options.onState]
   * @param {(frame: object) => void} [options.onError]   every `{"op":"error"}` frame
   * @param {number} [options.pingInterval=25000]  ms between app-level pings
   * @param {number} [options.pongTimeout=10000]   ms of silence after a ping before the connection counts as dead
   * @param {number} [options.minDelay=500]        first reconnect delay (ms), doubled per failed attempt
   * @param {number} [options.maxDelay=30000]      cap on the reconnect delay (ms)
   * @param {number} [options.stableAfter=10000]   ms a connection must stay up before the backoff resets
   * @param {typeof WebSocket} [options.WebSocket]  WebSocket constructor (for non-browser runtimes)
   */
  constructor(options = {}) {
    this.url = options.url || defaultUrl();
    this.onEvent = options.onEvent || noop;
    this.onReset = options.onReset || noop;
    this.onSubscribed = options.onSubscribed || noop;
    this.onState = options.onState || noop;
    this.onError = options.onError || noop;
    this.pingInterval = options.pingInterval ?? 25000;
    this.pongTimeout = options.pongTimeout ?? 10000;
    this.minDelay = options.minDelay ?? 500;
    this.maxDelay = options.maxDelay ?? 30000;
    this.stableAfter = options.stableAfter ?? 10000;
    this.WebSocket = options.WebSocket || globalThis.WebSocket;

    /** "idle" until connect(), then "connecting" | "live" | "reconnecting" | "offline" | "closed". */
    this.state = "idle";
    /** The last {"op":"error"} frame the server sent, for debugging. */
    this.lastError = null;
    /** The last close seen: {code, reason, at}. */
    this.lastClose = null;
    /** Counters, handy when debugging a flaky network. */
    this.stats = { connects: 0, reconnects: 0, events: 0, duplicates: 0, resets: 0, gaps: 0 };

    this._channels = new Map(); // channel -> {epoch, seq, confirmed}
    this._ws = null;
    this._attempt = 0;
    this._wanted = false;
    this._timers = { retry: 0, ping: 0, pong: 0, stable: 0 };
    this._listening = false;
    this._onOnline = () => this._wake(true);
    this._onOffline = () => {
      if (!this._isOpen()) this._setState("offline");
      else this._sendPing(); // the socket may already be dead; a ping finds out
    };
    this._onVisible = () => {
      if (globalThis.document && globalThis.document.visibilityState === "visible") this._wake(false);
    };
  }

  /** Start (or keep) a subscription. `since`/`epoch` come from the JSON state (its `position`). */
  subscribe(channel, { since, epoch } = {}) {
    const known = this._channels.get(channel);
    const entry = known || { epoch: null, seq: null, confirmed: false };
    if (!known) {
      if (Number.isInteger(since) && since >= 0) entry.seq = since;
      if (typeof epoch === "string" && epoch) entry.epoch = epoch;
      this._channels.set(channel, entry);
    }
    if (this._isOpen() && !entry.confirmed) this._sendSubscribe(channel, entry);
    return this;
  }

  /** Stop receiving a channel. */
  unsubscribe(channel) {
    const entry = this._channels.get(channel);
    if (!entry) return this;
    this._channels.delete(channel);
    if (this._isOpen()) this._send({ op: "unsubscribe", channel });
    this._updateLive();
    return this;
  }

  /** The last position seen on a channel: {epoch, seq}, or null when not subscribed. */
  position(channel) {
    const entry = this._channels.get(channel);
    return entry ? { epoch: entry.epoch, seq: entry.seq } : null;
  }

  /** Open the connection; it is kept open (reconnecting as needed) until close(). */
  connect() {
    this._wanted = true;
    this._listen(true);
    if (!this._ws) this._open();
    return this;
  }

  /** Close for good: no reconnects until connect() is called again. */
  close() {
    this._wanted = false;
    this._listen(false);
    this._clearTimers();
    this._detach(CLOSE_CODES.NORMAL, "client closed");
    this._setState("closed");
  }

  /** Drop the current connection and reconnect at once, resuming where it left off. */
  reconnect() {
    if (!this._wanted) return this.connect();
    this._dropped(CLIENT_RESYNC, "client asked to reconnect", 0);
    return this;
  }

  // ---- internals ----------------------------------------------------------------------------------------

  _isOpen() {
    return !!this._ws && this._ws.readyState === 1;
  }

  _setState(state, detail = {}) {
    if (this.state === state) return;
    this.state = state;
    try {
      this.onState(state, detail);
    } catch (err) {
      console.error("SaphaClient onState handler failed", err);
    }
  }

  _listen(on) {
    if (on === this._listening || typeof globalThis.addEventListener !== "function") return;
    this._listening = on;
    const method = on ? "addEventListener" : "removeEventListener";
    globalThis[method]("online", this._onOnline);
    globalThis[method]("offline", this._onOffline);
    if (globalThis.document) globalThis.document[method]("visibilitychange", this._onVisible);
  }

  _clearTimers() {
    clearTimeout(this._timers.retry);
    clearInterval(this._timers.ping);
    clearTimeout(this._timers.pong);
    clearTimeout(this._timers.stable);
    this._timers = { retry: 0, ping: 0, pong: 0, stable: 0 };
  }

  _open() {
    clearTimeout(this._timers.retry);
    this._timers.retry = 0;
    if (globalThis.navigator && globalThis.navigator.onLine === false) {
      // The "online" event brings us back at once; the backoff timer is only a safety net.
      this._schedule();
      return;
    }
    this._setState(this.stats.connects === 0 && this._attempt === 0 ? "connecting" : "reconnecting");
    let ws;
    try {
      ws = new this.WebSocket(this.url);
    } catch (err) {
      this._dropped(1006, String(err));
      return;
    }
    this._ws = ws;
    for (const entry of this._channels.values()) entry.confirmed = false;
    ws.onopen = () => {
      this.stats.connects += 1;
      if (this.stats.connects > 1) this.stats.reconnects += 1;
      for (const [channel, entry] of this._channels) this._sendSubscribe(channel, entry);
      this._timers.ping = setInterval(() => this._sendPing(), this.pingInterval);
      this._timers.stable = setTimeout(() => {
        this._attempt = 0;
      }, this.stableAfter);
      this._updateLive();
    };
    ws.onmessage = (msg) => this._receive(msg.data);
    ws.onclose = (ev) => this._dropped(ev.code, ev.reason);
    ws.onerror = noop; // a close event always follows
  }

  _send(frame) {
    if (!this._isOpen()) return false;
    this._ws.send(JSON.stringify(frame));
    return true;
  }

  _sendSubscribe(channel, entry) {
    const frame = { op: "subscribe", channel };
    if (entry.seq !== null) frame.since = entry.seq;
    if (entry.seq !== null && entry.epoch) frame.epoch = entry.epoch;
    this._send(frame);
  }

  _sendPing() {
    if (!this._send({ op: "ping" })) return;
    if (!this._timers.pong) {
      this._timers.pong = setTimeout(() => this._dropped(CLIENT_RESYNC, "no answer to ping"), this.pongTimeout);
    }
  }

  _receive(raw) {
    // Any frame proves the connection is alive.
    clearTimeout(this._timers.pong);
    this._timers.pong = 0;
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    switch (frame.op) {
      case undefined:
        this._event(frame);
        return;
      case "subscribed":
        this._subscribed(frame);
        return;
      case "error":
        this.lastError = { ...frame, at: new Date().toISOString() };
        console.warn("Sapha server error frame", frame);
        this._call(this.onError, frame);
        return;
      default: // "pong", "unsubscribed"
        return;
    }
  }

  _subscribed(frame) {
    const entry = this._channels.get(frame.channel);
    if (!entry) return;
    entry.confirmed = true;
    const reset = frame.recovered === false;
    if (reset || entry.seq === null) {
      // Start counting from the server's position; on a reset everything up to it comes from a refetch.
      entry.seq = frame.seq;
    }
    entry.epoch = frame.epoch;
    this._call(this.onSubscribed, frame);
    if (reset) {
      this.stats.resets += 1;
      this._call(this.onReset, frame.channel, frame);
    }
    this._updateLive();
  }

  _event(event) {
    const entry = this._channels.get(event.channel);
    if (!entry || !Number.isInteger(event.seq)) return;
    if (entry.epoch === event.epoch && entry.seq !== null) {
      if (event.seq <= entry.seq) {
        this.stats.duplicates += 1;
        return;
      }
      if (event.seq > entry.seq + 1) {
        // Never expected from the server; resubscribing from our position fills the hole.
        this.stats.gaps += 1;
        this._dropped(CLIENT_RESYNC, `gap: expected seq ${entry.seq + 1}, got ${event.seq}`, 0);
        return;
      }
    }
    const epochChanged = entry.epoch !== null && entry.epoch !== event.epoch;
    entry.epoch = event.epoch;
    entry.seq = event.seq;
    this.stats.events += 1;
    if (epochChanged) {
      // The history this client counted in is gone; state must be refetched.
      this.stats.resets += 1;
      this._call(this.onReset, event.channel, { op: "subscribed", channel: event.channel, recovered: false, seq: event.seq, epoch: event.epoch });
    }
    this._call(this.onEvent, event);
  }

  _call(fn, ...args) {
    try {
      fn(...args);
    } catch (err) {
      console.error("SaphaClient handler failed", err);
    }
  }

  _updateLive() {
    if (!this._isOpen()) return;
    for (const entry of this._channels.values()) if (!entry.confirmed) return;
    this._setState("live");
  }

  /** Forget the current socket without waiting for it (a dead peer may never answer a close). */
  _detach(code, reason) {
    const ws = this._ws;
    this._ws = null;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      if (ws.readyState === 0 || ws.readyState === 1) ws.close(code === CLOSE_CODES.NORMAL ? 1000 : CLIENT_RESYNC, reason);
    } catch {
      /* already closing */
    }
  }

  _dropped(code, reason, delay) {
    this.lastClose = { code, reason: reason || "", at: new Date().toISOString() };
    clearInterval(this._timers.ping);
    clearTimeout(this._timers.pong);
    clearTimeout(this._timers.stable);
    this._timers.ping = this._timers.pong = this._timers.stable = 0;
    this._detach(code, reason);
    for (const entry of this._channels.values()) entry.confirmed = false;
    if (!this._wanted) return;
    this._schedule(delay);
  }

  _schedule(delay) {
    clearTimeout(this._timers.retry);
    if (delay === undefined) {
      // Exponential backoff with jitter: half fixed, half random, so a restarted server is not stampeded.
      const ceiling = Math.min(this.maxDelay, this.minDelay * 2 ** Math.min(this._attempt, 16));
      delay = ceiling / 2 + Math.random() * (ceiling / 2);
      this._attempt += 1;
    }
    const offline = globalThis.navigator && globalThis.navigator.onLine === false;
    this._setState(offline ? "offline" : "reconnecting", { delay, close: this.lastClose });
    this._timers.retry = setTimeout(() => this._open(), delay);
  }

  /** The network or the tab came back: reconnect now instead of waiting out the backoff. */
  _wake(resetBackoff) {
    if (!this._wanted || this._ws) return;
    if (resetBackoff) this._attempt = 0;
    this._open();
  }
}
