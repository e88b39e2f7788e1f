// An open thread: live messages and status ticks, read markers and "seen by", typing and
// who else is viewing, older messages on demand, and the composer.

import {
  boot,
  $,
  $$,
  api,
  clock,
  contactName,
  dayLabel,
  fillSlot,
  formError,
  fromTemplate,
  isNamed,
  listNames,
  onSubmit,
  parseTime,
  personName,
  prettyPhone,
  setAvatar,
  slot,
} from "./dom.js";
import { bindCounter } from "./segments.js";
import { showRevoked } from "./shell.js";

// Statuses only move forward (SPEC section 2); a late or replayed older one changes nothing.
const RANK = {
  sending: 0,
  accepted: 1,
  scheduled: 1,
  queued: 2,
  sent: 3,
  delivered: 4,
  undelivered: 4,
  failed: 4,
  partially_delivered: 4,
  canceled: 4,
  unknown: 4,
  read: 5,
};
const TYPING_SHOWN_MS = 6500;
const TYPING_SEND_EVERY_MS = 2500;
const NEAR_BOTTOM_PX = 160;

const tables = boot.labels || { status: {}, kinds: {}, errors: {}, tags: {} };

export function statusWords(status) {
  if (!status) return "";
  return tables.status[status] || status.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

export function errorWords(code, message) {
  if (code == null || code === "") return message || "";
  const text = tables.errors[String(code)] || message || "Twilio reported an error";
  return `${text} (error ${code})`;
}

const isProblem = (status) => tables.kinds[status] === "problem";

export function initThread({ live, on, onOpen }) {
  const root = $("[data-thread]");
  if (!root) return;
  const thread = boot.thread;
  const me = boot.user.id;
  const conversationId = thread.id;
  const inboxChannel = `inbox:${thread.inbox_id}`;
  const conversationChannel = `conversation:${conversationId}`;
  const container = $("[data-messages]", root);
  const readers = Object.fromEntries(Object.entries(thread.readers || {}).map(([k, v]) => [k, Number(v)]));
  let myMarker = readers[String(me)] || 0;
  let olderCursor = thread.older_cursor;

  const messageEl = (id) => container.querySelector(`.msg[data-message-id="${id}"]`);
  const allMessages = () => $$(".msg", container);
  const nearBottom = () => container.scrollHeight - container.scrollTop - container.clientHeight < NEAR_BOTTOM_PX;
  const toBottom = () => {
    container.scrollTop = container.scrollHeight;
  };

  function optWords(message) {
    const number = message.direction === "inbound" ? message.to : message.from;
    const service = (thread.services || {})[number];
    if (message.opt_change === "opted_out") {
      return `Opted out${service ? ` of texts from ${service}` : ""} — no more messages can be sent until they text START`;
    }
    if (message.opt_change === "opted_in") return `Opted back in${service ? ` to texts from ${service}` : ""}`;
    return "";
  }

  function fillStatus(el, message) {
    const out = message.direction === "outbound";
    const problem = out && isProblem(message.status);
    const kind = tables.kinds[message.status] || "pending";
    el.dataset.status = message.status;
    el.classList.toggle("msg--problem", problem);
    const status = slot(el, "status");
    status.hidden = !out;
    status.dataset.kind = kind;
    status.className = `status status--${kind}`;
    fillSlot(el, "status-words", out ? statusWords(message.status) : "", { hideEmpty: false });
    const error = problem && (message.error_code || message.error_message);
    fillSlot(el, "error", error ? errorWords(message.error_code, message.error_message) : "");
  }

  function build(message) {
    const el = fromTemplate("tpl-message");
    const out = message.direction === "outbound";
    el.dataset.messageId = String(message.id);
    el.dataset.direction = message.direction;
    el.dataset.createdAt = message.created_at;
    el.className = `msg ${out ? "msg--out" : "msg--in"}${message.tag === "campaign" ? " msg--campaign" : ""}`;
    fillSlot(el, "body", message.body, { hideEmpty: false });
    const tag = fillSlot(el, "tag", out ? tables.tags[message.tag] || "" : "");
    tag.className = `tag tag--${message.tag}`;
    fillSlot(el, "who", out && message.sent_by ? personName(message.sent_by) : "");
    fillSlot(el, "to", !out && boot.thread.unrouted ? `to ${prettyPhone(message.to)}` : "");
    const time = slot(el, "time");
    const when = parseTime(message.created_at);
    time.dateTime = message.created_at;
    time.textContent = clock(when);
    time.title = `${dayLabel(when)}, ${clock(when)}`;
    const opt = fillSlot(el, "opt", optWords(message));
    opt.className = `msg__opt${message.opt_change ? ` msg__opt--${message.opt_change}` : ""}`;
    fillStatus(el, message);
    return el;
  }

  function update(el, message) {
    const before = RANK[el.dataset.status] ?? 0;
    const after = RANK[message.status] ?? 0;
    if (after >= before) fillStatus(el, message);
  }

  function daySeparator(label) {
    const el = fromTemplate("tpl-day");
    el.textContent = label;
    return el;
  }

  /** Day separators from scratch, after messages went in anywhere but the end. */
  function rebuildDays() {
    $$(".day", container).forEach((el) => el.remove());
    let previous = null;
    for (const el of allMessages()) {
      const label = dayLabel(parseTime(el.dataset.createdAt));
      if (label !== previous) container.insertBefore(daySeparator(label), el);
      previous = label;
    }
  }

  /** Add or update one message; returns true when it was new to this page. */
  function upsert(message, { animate = true } = {}) {
    if (message.conversation_id !== conversationId) return false;
    const existing = messageEl(message.id);
    if (existing) {
      update(existing, message);
      return false;
    }
    const stick = nearBottom() || (message.direction === "outbound" && message.sent_by === me);
    const el = build(message);
    const messages = allMessages();
    const last = messages[messages.length - 1];
    if (!last || Number(last.dataset.messageId) < message.id) {
      const label = dayLabel(parseTime(message.created_at));
      const lastLabel = last ? dayLabel(parseTime(last.dataset.createdAt)) : null;
      if (label !== lastLabel) container.append(daySeparator(label));
      container.append(el);
    } else {
      const after = messages.find((other) => Number(other.dataset.messageId) > message.id);
      container.insertBefore(el, after);
      rebuildDays();
    }
    if (animate) el.classList.add("is-new");
    if (stick) toBottom();
    return true;
  }

  // ---- read markers and "seen by" ----

  function latestId(direction) {
    const messages = allMessages().filter((el) => !direction || el.dataset.direction === direction);
    return messages.length ? Number(messages[messages.length - 1].dataset.messageId) : 0;
  }

  function renderSeen() {
    $$('[data-slot="seen"]', container).forEach((el) => {
      el.hidden = true;
    });
    const inboundId = latestId("inbound");
    if (!inboundId) return;
    const names = Object.entries(readers)
      .filter(([userId, messageId]) => Number(userId) !== me && messageId >= inboundId)
      .map(([userId]) => personName(userId))
      .sort();
    if (!names.length) return;
    fillSlot(messageEl(inboundId), "seen", `Seen by ${listNames(names)}`);
  }

  let reading = false;
  async function markRead() {
    if (document.visibilityState !== "visible" || reading || root.dataset.revoked) return;
    const newest = latestId();
    if (!newest || latestId("inbound") <= myMarker) return;
    reading = true;
    try {
      await api("POST", `/api/v1/conversations/${conversationId}/read`, { message_id: newest });
      myMarker = Math.max(myMarker, newest);
    } catch (error) {
      /* tried again on the next message or when the tab shows */
    } finally {
      reading = false;
    }
  }

  // ---- typing and presence ----

  const typers = new Map(); // user id -> expiry time
  const typingText = $("[data-typing-text]");
  const typingDots = $("[data-typing-dots]");
  function renderTyping() {
    const now = Date.now();
    for (const [userId, until] of typers) if (until <= now) typers.delete(userId);
    const names = Array.from(typers.keys()).map(personName).sort();
    typingDots.hidden = !names.length;
    typingText.textContent = names.length ? `${listNames(names)} ${names.length === 1 ? "is" : "are"} typing…` : "";
  }
  setInterval(renderTyping, 1000);

  const viewers = $("[data-viewers]", root);
  function renderViewers(ids) {
    const others = Array.from(new Set(ids.map(Number))).filter((id) => id && id !== me);
    viewers.hidden = !others.length;
    const faces = $("[data-viewer-faces]", viewers);
    faces.replaceChildren();
    for (const id of others.slice(0, 4)) {
      const face = document.createElement("span");
      face.className = "avatar avatar--small";
      setAvatar(face, personName(id), id);
      face.title = personName(id);
      faces.append(face);
    }
    const names = others.map(personName).sort();
    const label = $("[data-viewer-label]", viewers);
    label.textContent = names.length ? `${listNames(names)} ${names.length === 1 ? "is" : "are"} viewing` : "";
    viewers.setAttribute("aria-label", label.textContent);
  }

  function presenceIds(data) {
    const list = data.viewers || data.users || data.user_ids || data.viewing || [];
    return list.map((item) => (typeof item === "object" && item ? item.user_id ?? item.id : item));
  }

  onOpen(() => live.send({ op: "viewing", conversation: conversationId }));

  // ---- composer ----

  const composer = $("[data-composer]", root);
  const blocked = $("[data-composer-blocked]", root);
  const textarea = $("[data-composer-body]", root);
  const contact = thread.contact;
  let called = contactName(contact);

  /** Someone corrected the contact's name: the header, title and messages name them anew. */
  function renameContact(updated) {
    const old = called;
    Object.assign(contact, updated);
    called = contactName(contact);
    $(".thread-head__name", root).textContent = called;
    $("[data-contact-phone]", root).hidden = !isNamed(contact);
    setAvatar($(".thread-head .avatar", root), contact.name, contact.phone);
    document.title = document.title.replace(old, called);
  }
  const state = thread.composer;

  function showBlocked(reason) {
    $("[data-blocked-title]", blocked).textContent = `Can't text ${called}`;
    $("[data-blocked-text]", blocked).textContent = reason;
    blocked.hidden = false;
    composer.hidden = true;
  }
  function optedOutReason() {
    const service = state.service || "this messaging service";
    return `They opted out of texts from ${service} (they replied STOP). They have to text START to one of its numbers before anyone can message them again.`;
  }
  function unblock() {
    blocked.hidden = true;
    composer.hidden = false;
  }

  if (composer) {
    const recount = bindCounter(textarea, $("[data-counter]", composer));
    const grow = () => {
      textarea.style.height = "auto";
      textarea.style.height = `${Math.min(textarea.scrollHeight, window.innerHeight * 0.4)}px`;
    };
    // A half-written reply outlives a reload or a trip Back, in this tab only (a shared
    // office computer keeps no one's drafts once the tab is closed).
    const draftKey = `switchboard:draft:${me}:${conversationId}`;
    const keepDraft = () => {
      try {
        if (textarea.value) sessionStorage.setItem(draftKey, textarea.value);
        else sessionStorage.removeItem(draftKey);
      } catch (error) {
        /* storage full or refused: the draft just is not kept */
      }
    };
    try {
      if (!textarea.value) textarea.value = sessionStorage.getItem(draftKey) || "";
    } catch (error) {
      /* storage refused: nothing to restore */
    }
    // The browser may put a form's text back after the scripts ran (Back, reload).
    window.addEventListener("pageshow", () => {
      recount();
      grow();
    });
    recount();
    let lastTyping = 0;
    textarea.addEventListener("input", () => {
      grow();
      keepDraft();
      formError(composer, "");
      const now = Date.now();
      if (textarea.value.trim() && now - lastTyping > TYPING_SEND_EVERY_MS) {
        if (live.send({ op: "typing", conversation: conversationId })) lastTyping = now;
      }
    });
    // Enter sends with a keyboard; on a touch screen it is a new line (there is a Send button).
    const enterSends = window.matchMedia("(pointer: fine)").matches;
    textarea.addEventListener("keydown", (event) => {
      if (enterSends && event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        composer.requestSubmit();
      }
    });
    // "Could not reach the server" goes once the connection is back: the draft is still there.
    let unreachable = false;
    onOpen(() => {
      if (unreachable) formError(composer, "");
      unreachable = false;
    });
    onSubmit(composer, async () => {
      const body = textarea.value;
      if (!body.trim()) {
        formError(composer, "Write something first.");
        return;
      }
      const button = $("[data-send]", composer);
      button.disabled = true;
      formError(composer, "");
      // The box empties at once, so that the answer cannot wipe what is typed next; a text
      // that did not go comes back into it (unless something new was typed meanwhile).
      textarea.value = "";
      textarea.dispatchEvent(new Event("input"));
      try {
        const message = await api("POST", `/api/v1/conversations/${conversationId}/messages`, { body });
        upsert(message);
        toBottom();
      } catch (error) {
        if (!textarea.value) {
          textarea.value = body;
          textarea.dispatchEvent(new Event("input"));
        }
        if (error.code === "opted_out") showBlocked(optedOutReason());
        else formError(composer, error.message);
        unreachable = error.code === "network";
      } finally {
        button.disabled = false;
        textarea.focus();
      }
    });
  }

  // ---- older messages ----

  const older = $("[data-load-older]", container);
  async function loadOlder() {
    if (!olderCursor || !older || older.disabled) return;
    older.disabled = true;
    older.textContent = "Loading…";
    try {
      const page = await api(
        "GET",
        `/api/v1/conversations/${conversationId}/messages?before=${encodeURIComponent(olderCursor)}`,
      );
      const height = container.scrollHeight;
      const top = container.scrollTop;
      const first = allMessages()[0];
      for (const message of page.items.slice().reverse()) {
        if (!messageEl(message.id)) container.insertBefore(build(message), first);
      }
      olderCursor = page.next_cursor;
      rebuildDays();
      renderSeen();
      container.scrollTop = top + (container.scrollHeight - height);
    } catch (error) {
      older.textContent = "Could not load — try again";
      older.disabled = false;
      return;
    }
    if (olderCursor) {
      older.textContent = "Load earlier messages";
      older.disabled = false;
    } else {
      const start = document.createElement("p");
      start.className = "messages__start";
      start.textContent = `Start of the conversation with ${called}`;
      older.replaceWith(start);
    }
  }
  if (older) {
    older.addEventListener("click", loadOlder);
    container.addEventListener("scroll", () => {
      if (container.scrollTop < 80) loadOlder();
    });
  }

  async function refetch() {
    try {
      const page = await api("GET", `/api/v1/conversations/${conversationId}/messages`);
      for (const message of page.items.slice().reverse()) upsert(message, { animate: false });
      renderSeen();
      markRead();
    } catch (error) {
      /* the next event or reconnect tries again */
    }
  }

  // ---- live events ----

  on((channel, type, data) => {
    if (channel !== inboxChannel && channel !== conversationChannel) return;
    if (type === "access.revoked") {
      root.dataset.revoked = "1";
      showRevoked();
      return;
    }
    if (type === "resync") {
      refetch();
      return;
    }
    if (type === "typing" && channel === conversationChannel) {
      const userId = Number(data.user_id);
      if (userId && userId !== me) {
        if (data.typing === false) typers.delete(userId);
        else typers.set(userId, Date.now() + TYPING_SHOWN_MS);
        renderTyping();
      }
      return;
    }
    if (type === "presence" && channel === conversationChannel) {
      renderViewers(presenceIds(data));
      return;
    }
    if (type === "contact.updated" && data.id === contact.id) {
      renameContact(data);
      return;
    }
    if (data.conversation_id !== conversationId && data.contact_id !== contact.id) return;
    if (type === "message.created" || type === "message.status") {
      const added = upsert(data);
      if (added && data.direction === "outbound" && data.sent_by) {
        typers.delete(Number(data.sent_by));
        renderTyping();
      }
      if (added && data.direction === "inbound") {
        renderSeen();
        markRead();
      }
    } else if (type === "conversation.read" && data.conversation_id === conversationId) {
      const key = String(data.user_id);
      readers[key] = Math.max(readers[key] || 0, Number(data.message_id) || 0);
      if (Number(data.user_id) === me) myMarker = Math.max(myMarker, readers[key]);
      renderSeen();
    } else if (type === "contact.opted_out" && data.contact_id === contact.id) {
      if (data.messaging_service_id === state.service_id) {
        state.opted_out = true;
        showBlocked(optedOutReason());
      }
    } else if (type === "contact.opted_in" && data.contact_id === contact.id) {
      if (data.messaging_service_id === state.service_id && state.from) {
        state.opted_out = false;
        unblock();
      }
    }
  });

  document.addEventListener("visibilitychange", markRead);
  toBottom();
  renderSeen();
  markRead();
  if (composer && !composer.hidden && window.matchMedia("(min-width: 861px)").matches) textarea.focus();
}
