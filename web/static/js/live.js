// The live protocol client (SPEC section 5): one websocket, msgpack frames (json if the msgpack
// library failed to load), subscriptions that resume with `since` after any drop.
//
// Every channel remembers the last seq it delivered. After a reconnect each channel is
// subscribed again from there, so the server replays exactly what was missed; an event at or
// below the remembered seq (a replay of something already seen) is dropped here. The page is
// told when the connection is lost and when it is back, and re-sends what the server keeps only
// per connection (which thread this tab is viewing).

const PING_EVERY_MS = 15000;
const PONG_WITHIN_MS = 8000;
const MAX_BACKOFF_MS = 8000;

export class LiveClient {
  constructor({ url, onEvent, onState, onOpen, onRetry }) {
    this.url = url;
    this.onRetry = onRetry || (() => {}); // (attempt): a reconnect is about to be tried
    this.onEvent = onEvent; // (channel, type, data, frame)
    this.onState = onState || (() => {}); // ("open" | "lost")
    this.onOpen = onOpen || (() => {});
    this.channels = new Map(); // channel -> { since: number|null }
    this.socket = null;
    this.attempt = 0;
    this.reconnectTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.state = "idle";
    this.closedForGood = false;
    this.msgpack = typeof globalThis.MessagePack === "object" ? globalThis.MessagePack : null;
    window.addEventListener("online", () => this.reconnectNow());
    window.addEventListener("offline", () => this.drop());
    window.addEventListener("pagehide", () => this.close());
  }

  /** Follow `channel`, replaying what came after `since` (a seq) when given. */
  subscribe(channel, since = null) {
    if (!this.channels.has(channel)) this.channels.set(channel, { since });
    this.sendSubscribe(channel);
  }

  unsubscribe(channel) {
    this.channels.delete(channel);
    this.send({ op: "unsubscribe", channel });
  }

  /** Forget a channel without telling the server (it ended it: access revoked). */
  forget(channel) {
    this.channels.delete(channel);
  }

  connect() {
    if (this.closedForGood) return;
    clearTimeout(this.reconnectTimer);
    const protocol = this.msgpack ? "msgpack" : "json";
    let socket;
    try {
      socket = new WebSocket(this.url, [protocol]);
    } catch (error) {
      this.scheduleReconnect();
      return;
    }
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.addEventListener("open", () => {
      if (socket !== this.socket) return;
      this.attempt = 0;
      for (const channel of this.channels.keys()) this.sendSubscribe(channel);
      this.setState("open");
      this.onOpen();
      this.startHeartbeat();
    });
    socket.addEventListener("message", (event) => {
      if (socket !== this.socket) return;
      this.heard();
      let frame;
      try {
        frame = this.decode(event.data);
      } catch (error) {
        return;
      }
      if (frame && typeof frame === "object") this.handle(frame);
    });
    socket.addEventListener("close", () => {
      if (socket === this.socket) this.lost();
    });
  }

  close() {
    this.closedForGood = true;
    this.stopHeartbeat();
    clearTimeout(this.reconnectTimer);
    if (this.socket) this.socket.close(1000, "page closed");
  }

  /** Give up on the socket now. With the network gone its close handshake may never finish,
   * and the page would go on believing it live: it is told at once, and a new socket is tried
   * (whatever the old one does later is ignored). */
  drop() {
    const socket = this.socket;
    if (!socket) return;
    this.lost();
    socket.close();
  }

  /** Reconnect at once (the browser says the network is back). */
  reconnectNow() {
    if (this.closedForGood || (this.socket && this.socket.readyState <= WebSocket.OPEN)) return;
    this.attempt = 0;
    this.connect();
  }

  send(frame) {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(this.msgpack ? this.msgpack.encode(frame) : JSON.stringify(frame));
    return true;
  }

  // ---- internals ----

  sendSubscribe(channel) {
    const entry = this.channels.get(channel);
    const frame = { op: "subscribe", channel };
    if (entry && entry.since != null) frame.since = entry.since;
    this.send(frame);
  }

  decode(data) {
    if (typeof data === "string") return JSON.parse(data);
    return this.msgpack.decode(new Uint8Array(data));
  }

  handle(frame) {
    const channel = frame.channel;
    const entry = channel ? this.channels.get(channel) : null;
    switch (frame.op) {
      case "subscribed":
        if (entry && entry.since == null && typeof frame.seq === "number") entry.since = frame.seq;
        return;
      case "event": {
        if (!entry) return;
        if (typeof frame.seq === "number") {
          if (entry.since != null && frame.seq <= entry.since) return; // seen already
          entry.since = frame.seq;
        }
        if (frame.type === "access.revoked") this.channels.delete(channel);
        this.onEvent(channel, frame.type, frame.data || {}, frame);
        return;
      }
      case "resync":
        // Too far behind to replay: the page refetches over HTTP and follows from here on.
        if (entry) entry.since = null;
        this.onEvent(channel, "resync", {}, frame);
        return;
      case "error":
        if (channel && frame.code === "forbidden") {
          this.channels.delete(channel);
          this.onEvent(channel, "access.revoked", { reason: "forbidden" }, frame);
        }
        return;
      default:
        return; // pong and anything newer: nothing to do beyond having heard the server
    }
  }

  /** The current socket is gone: tell the page and try again (unless the page is closing). */
  lost() {
    this.stopHeartbeat();
    this.socket = null;
    if (this.closedForGood) return;
    this.setState("lost");
    this.scheduleReconnect();
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }

  scheduleReconnect() {
    clearTimeout(this.reconnectTimer);
    const base = Math.min(MAX_BACKOFF_MS, 400 * 2 ** this.attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempt += 1;
    const attempt = this.attempt;
    this.reconnectTimer = setTimeout(() => {
      this.onRetry(attempt);
      this.connect();
    }, delay);
  }

  startHeartbeat() {
    this.stopHeartbeat();
    this.pingTimer = setInterval(() => {
      if (!this.send({ op: "ping" })) return;
      clearTimeout(this.pongTimer);
      // No frame at all within the grace time: the connection is dead even if the OS says not.
      this.pongTimer = setTimeout(() => this.drop(), PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  heard() {
    clearTimeout(this.pongTimer);
  }

  stopHeartbeat() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }
}
