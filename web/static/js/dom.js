// Small helpers every page script shares: the boot blob, DOM filling, the JSON API, formatting.
// User-written text only ever goes into the page through textContent.

const bootElement = document.getElementById("sb-boot");
export const boot = bootElement ? JSON.parse(bootElement.textContent) : {};

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** The element of `root` marked data-slot=`name`. */
export const slot = (root, name) => root.querySelector(`[data-slot="${name}"]`);

/** Put `text` into a slot and show it (or hide it when empty, unless keep is set). */
export function fillSlot(root, name, text, { hideEmpty = true } = {}) {
  const el = slot(root, name);
  if (!el) return null;
  el.textContent = text == null ? "" : String(text);
  if (hideEmpty) el.hidden = !text;
  return el;
}

/** A fresh copy of the first element inside <template id=...>. */
export function fromTemplate(id) {
  const template = document.getElementById(id);
  return template.content.firstElementChild.cloneNode(true);
}

/** A count badge: its number (before the screen-reader-only " unread"), hidden at zero. */
export function setBadge(badge, count) {
  const first = badge.firstChild;
  if (first && first.nodeType === Node.TEXT_NODE) first.nodeValue = String(count);
  else badge.insertBefore(document.createTextNode(String(count)), first);
  badge.hidden = !count;
}

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

export class ApiError extends Error {
  constructor(status, code, detail, data) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.data = data;
  }
}

/** Call the JSON API with the session cookie and the CSRF token; the parsed answer or ApiError. */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, "network", "Could not reach the server. Check your connection.");
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch (error) {
    data = null;
  }
  if (!response.ok) {
    const code = data && data.error;
    const detail = (data && data.detail) || `The server answered ${response.status}.`;
    if (response.status === 401 && path !== "/api/v1/auth/login") {
      window.location.assign(`/?next=${encodeURIComponent(location.pathname + location.search)}`);
    }
    throw new ApiError(response.status, code, detail, data);
  }
  return data;
}

/**
 * Handle a form's submits one at a time: one made while the last is still in flight (Enter
 * pressed twice, a double tap) is dropped, so a text is never sent twice. A disabled Send
 * button alone does not stop `requestSubmit()`. `handler` resolves `true` when the page is
 * leaving (it navigated): the form then takes no more submits.
 */
export function onSubmit(form, handler) {
  let busy = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    busy = true;
    let leaving = false;
    try {
      leaving = (await handler(event)) === true;
    } finally {
      busy = leaving;
    }
  });
}

let toastTimer = null;
/** A short message in the corner, for outcomes that have no better place on the page. */
export function toast(text, kind = "info") {
  const el = document.querySelector("[data-toast]");
  if (!el) return;
  el.textContent = text;
  el.classList.toggle("toast--error", kind === "error");
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.hidden = true;
  }, 5000);
}

/** Show `message` in the form's [data-form-error] (or hide it when empty). */
export function formError(form, message) {
  const el = form.querySelector("[data-form-error]");
  if (!el) {
    if (message) toast(message, "error");
    return;
  }
  el.textContent = message || "";
  el.hidden = !message;
}

// ---- formatting: the same rules as server/templating.py ----

const US_NUMBER = /^\+1(\d{3})(\d{3})(\d{4})$/;

export function prettyPhone(number) {
  if (!number) return "";
  const match = US_NUMBER.exec(number);
  return match ? `(${match[1]}) ${match[2]}-${match[3]}` : number;
}

/** Whether a contact has a name of its own (the API names a nameless one by its number). */
export const isNamed = (contact) => Boolean(contact.name) && contact.name !== contact.phone;

/** How a contact is called on a page: its name, else its number written for people. */
export const contactName = (contact) => (isNamed(contact) ? contact.name : prettyPhone(contact.phone));

export function initials(name) {
  const words = String(name || "")
    .split(/[\s.@_-]+/)
    .filter((word) => word && /[\p{L}\p{N}]/u.test(word[0]));
  if (!words.length) return "#";
  if (words.length === 1) return /\p{L}/u.test(words[0][0]) ? words[0].slice(0, 2).toUpperCase() : "#";
  return (words[0][0] + words[words.length - 1][0]).toUpperCase();
}

const encoder = new TextEncoder();
export function hue(seed) {
  return encoder.encode(String(seed)).reduce((sum, byte) => sum + byte, 0) % 12;
}

export function setAvatar(el, name, seed) {
  el.textContent = initials(name);
  el.className = el.className.replace(/\bhue-\d+\b/g, "").trim() + ` hue-${hue(seed)}`;
}

const clockFormat = new Intl.DateTimeFormat("en-US", { hour: "numeric", minute: "2-digit" });
const weekday = new Intl.DateTimeFormat("en-US", { weekday: "short" });
const weekdayLong = new Intl.DateTimeFormat("en-US", { weekday: "long" });
const monthShort = new Intl.DateTimeFormat("en-US", { month: "short" });
const monthLong = new Intl.DateTimeFormat("en-US", { month: "long" });

const startOfDay = (date) => new Date(date.getFullYear(), date.getMonth(), date.getDate());
const daysBetween = (a, b) => Math.round((startOfDay(b) - startOfDay(a)) / 86400000);

export const parseTime = (value) => (value ? new Date(value) : null);

export function clock(date) {
  return clockFormat.format(date).replace(/\u202f/g, " ");
}

export function shortWhen(date, now = new Date()) {
  const days = daysBetween(date, now);
  if (days === 0) return clock(date);
  if (days > 0 && days <= 6) return weekday.format(date);
  if (date.getFullYear() === now.getFullYear()) return `${monthShort.format(date)} ${date.getDate()}`;
  return `${monthShort.format(date)} ${date.getDate()}, ${date.getFullYear()}`;
}

export function dayLabel(date, now = new Date()) {
  const days = daysBetween(date, now);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  const base = `${monthLong.format(date)} ${date.getDate()}`;
  if (date.getFullYear() === now.getFullYear()) return `${weekdayLong.format(date)}, ${base}`;
  return `${base}, ${date.getFullYear()}`;
}

/** Names joined the way a sentence lists them: "Ann", "Ann and Ben", "Ann, Ben and Cy". */
export function listNames(names) {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

/** A person's name from the boot blob's team list. */
export function personName(userId) {
  const people = boot.people || {};
  return people[String(userId)] || "Someone";
}
