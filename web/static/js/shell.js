// The app shell: the sidebar (my inboxes with live unread counts), the phone-width menu,
// sign-out, and what happens when access to an inbox ends while it is on screen.

import { boot, $, $$, api, setBadge, toast } from "./dom.js";

const TZ_COOKIE = "sb_tz";

/** Tell the server the viewer's time zone, so rendered times read like the live ones. */
export function rememberTimeZone() {
  let zone = "";
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    zone = "";
  }
  if (!zone || !/^[A-Za-z0-9_+\-/]+$/.test(zone)) return;
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${TZ_COOKIE}=${zone}; Path=/; Max-Age=31536000; SameSite=Lax${secure}`;
}

function inboxIdOf(channel) {
  return channel.startsWith("inbox:") ? Number(channel.slice(6)) : null;
}

export function initShell({ on, live }) {
  const toggles = $$('[data-action="toggle-nav"]');
  const scrim = $(".scrim");
  const menuButton = $(".topbar__menu");
  const setNav = (open) => {
    document.body.classList.toggle("nav-open", open);
    if (scrim) scrim.hidden = !open;
    if (menuButton) menuButton.setAttribute("aria-expanded", String(open));
    if (open) {
      const first = $(".sidebar a");
      if (first) first.focus();
    }
  };
  toggles.forEach((el) => el.addEventListener("click", () => setNav(!document.body.classList.contains("nav-open"))));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && document.body.classList.contains("nav-open")) {
      setNav(false);
      if (menuButton) menuButton.focus();
    }
  });

  $$('[data-action="sign-out"]').forEach((button) =>
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api("POST", "/api/v1/auth/logout");
      } catch (error) {
        if (error.status !== 401) {
          toast(error.message, "error");
          button.disabled = false;
          return;
        }
      }
      window.location.assign("/");
    }),
  );

  // Unread counts: the server is the judge (its count is per conversation, by my marker), so
  // after anything that can change them the shell asks again, at most a few times a second.
  let refreshTimer = null;
  const refreshCounts = () => {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(async () => {
      try {
        const answer = await api("GET", "/api/v1/inboxes");
        applyCounts(answer.items || []);
      } catch (error) {
        /* the next event tries again */
      }
    }, 250);
  };

  on((channel, type, data) => {
    const me = boot.user && boot.user.id;
    if (channel === `user:${me}`) {
      if (type === "access.revoked") {
        window.location.assign("/");
        return;
      }
      if (type === "conversation.read") refreshCounts();
      if (type === "inbox.added" && addInbox(data)) {
        live.subscribe(`inbox:${data.id}`);
        refreshCounts();
      }
      return;
    }
    const inboxId = inboxIdOf(channel);
    if (inboxId === null) return;
    if (type === "access.revoked") {
      removeInbox(inboxId);
      return;
    }
    if (type === "message.created" && data.direction === "inbound") refreshCounts();
    if (type === "resync") refreshCounts();
  });
}

/** Add an inbox I was just given to the sidebar (once); true if it was not there. */
function addInbox(inbox) {
  const list = $("[data-nav-inboxes]");
  if (!list || list.querySelector(`[data-nav-inbox="${inbox.id}"]`)) return false;
  list.append(inboxHolder("#nav-inbox-template", inbox));
  const empty = $("[data-nav-empty]");
  if (empty) empty.hidden = true;
  // The home page lists my inboxes as cards too.
  const cards = $("[data-inbox-cards]");
  if (cards) {
    cards.append(inboxHolder("#inbox-card-template", inbox));
    cards.hidden = false;
    const homeEmpty = $("[data-home-empty]");
    if (homeEmpty) homeEmpty.hidden = true;
  }
  toast(`You were added to ${inbox.name}`);
  return true;
}

/** A sidebar item or home card for `inbox`, from its template. */
function inboxHolder(templateSelector, inbox) {
  const holder = $(templateSelector).content.firstElementChild.cloneNode(true);
  holder.dataset.navInbox = String(inbox.id);
  const link = holder.matches("a") ? holder : holder.querySelector("a");
  link.href = `/inboxes/${inbox.id}`;
  holder.querySelector('[data-slot="label"]').textContent = inbox.name;
  return holder;
}

function applyCounts(items) {
  let total = 0;
  for (const item of items) {
    const count = item.unread_count || 0;
    total += count;
    for (const holder of $$(`[data-nav-inbox="${item.id}"]`)) {
      const badge = holder.querySelector('[data-slot="badge"]');
      if (badge) setBadge(badge, count);
      const link = holder.matches("a") ? holder : holder.querySelector("a");
      if (link) link.classList.toggle("has-unread", count > 0);
      const meta = holder.querySelector('[data-slot="meta"]');
      if (meta && !item.is_unrouted) meta.textContent = count ? `${count} unread` : "All read";
    }
    const pane = $(`[data-conv-pane][data-inbox-id="${item.id}"] [data-inbox-unread]`);
    if (pane) pane.textContent = String(count);
  }
  document.title = (total ? `(${total}) ` : "") + document.title.replace(/^\(\d+\) /, "");
  const summary = $("[data-home-summary]");
  if (summary) {
    summary.textContent = total
      ? `${total} unread conversation${total === 1 ? "" : "s"}.`
      : "You're all caught up.";
  }
  const topbar = $("[data-total-unread]");
  if (topbar) {
    topbar.textContent = String(total);
    topbar.hidden = total === 0;
  }
}

/** Access to an inbox ended: it leaves the sidebar, and its page says so in place. */
function removeInbox(inboxId) {
  $$(`[data-nav-inbox="${inboxId}"]`).forEach((el) => el.remove());
  const list = $("[data-nav-inboxes]");
  const empty = $("[data-nav-empty]");
  if (list && empty && !list.children.length) empty.hidden = false;
  const pane = $(`[data-conv-pane][data-inbox-id="${inboxId}"]`);
  if (pane) showRevoked();
}

export function showRevoked() {
  const main = $("#main");
  if (!main || main.dataset.revoked) return;
  main.dataset.revoked = "1";
  main.replaceChildren();
  const box = document.createElement("div");
  box.className = "error-page revoked";
  box.setAttribute("role", "alert");
  const inner = document.createElement("div");
  const title = document.createElement("h1");
  title.textContent = "You no longer have access to this inbox";
  const text = document.createElement("p");
  text.className = "muted";
  text.textContent = "An admin removed you from it. Your other inboxes are in the sidebar.";
  const back = document.createElement("p");
  const link = document.createElement("a");
  link.className = "btn";
  link.href = "/";
  link.textContent = "Back to your inboxes";
  back.append(link);
  inner.append(title, text, back);
  box.append(inner);
  main.append(box);
}
