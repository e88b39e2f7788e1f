// The conversation list of an inbox: live rows, unread badges, infinite scroll, arrow keys.

import {
  boot,
  $,
  $$,
  api,
  contactName,
  fillSlot,
  fromTemplate,
  isNamed,
  parseTime,
  prettyPhone,
  setAvatar,
  setBadge,
  shortWhen,
  slot,
} from "./dom.js";

export function initList({ on }) {
  const pane = $("[data-conv-pane]");
  if (!pane) return;
  const list = $("[data-conv-list]", pane);
  const scroller = $("[data-conv-scroll]", pane);
  const foot = $("[data-list-foot]", pane);
  const inboxId = Number(pane.dataset.inboxId);
  const filter = pane.dataset.filter;
  const me = boot.user.id;
  const currentId = boot.thread ? boot.thread.id : null;
  let cursor = boot.next_cursor || null;
  let loading = false;

  const rowOf = (id) => list.querySelector(`.conv[data-conversation-id="${id}"]`);

  function setUnread(row, count) {
    row.dataset.unread = String(count);
    row.classList.toggle("is-unread", count > 0);
    setBadge(slot(row, "badge"), count);
  }

  function previewPrefix(message) {
    if (!message || message.direction !== "outbound") return "";
    if (message.tag === "campaign") return "Campaign: ";
    if (message.sent_by === me) return "You: ";
    const name = (boot.people || {})[String(message.sent_by)];
    return name ? `${name.split(" ")[0]}: ` : "Sent: ";
  }

  function setLast(row, message, at) {
    fillSlot(row, "prefix", previewPrefix(message), { hideEmpty: false });
    fillSlot(row, "preview", message ? message.body : "", { hideEmpty: false });
    const time = slot(row, "time");
    const when = parseTime(at || (message && message.created_at));
    if (when) {
      time.dateTime = when.toISOString();
      time.textContent = shortWhen(when);
      row.dataset.lastAt = when.toISOString();
    }
    if (message) row.dataset.lastMessageId = String(message.id);
  }

  /** The row's contact: avatar, name (or the number when nameless) and number. */
  function setContact(row, contact) {
    row.dataset.contactId = String(contact.id);
    setAvatar(slot(row, "avatar"), contact.name, contact.phone);
    fillSlot(row, "name", contactName(contact), { hideEmpty: false });
    fillSlot(row, "phone", isNamed(contact) ? prettyPhone(contact.phone) : "");
  }

  /** A row from the API's conversation shape. */
  function buildRow(conversation) {
    const row = fromTemplate("tpl-conv");
    row.dataset.conversationId = String(conversation.id);
    row.dataset.inboxId = String(conversation.inbox_id);
    const link = row.querySelector("a");
    link.href = `/conversations/${conversation.id}${filter === "unread" ? "?filter=unread" : ""}`;
    setContact(row, conversation.contact);
    setLast(row, conversation.last_message, conversation.last_message_at);
    setUnread(row, conversation.id === currentId ? 0 : conversation.unread_count || 0);
    if (conversation.id === currentId) {
      row.classList.add("is-current");
      link.setAttribute("aria-current", "page");
    }
    return row;
  }

  const atOf = (row) => Date.parse(row.dataset.lastAt || "") || 0;

  /** Put a row where its last message time sorts it (newest first; on a tie, it goes first). */
  function place(row) {
    const at = atOf(row);
    const before = Array.from(list.children).find((other) => other !== row && atOf(other) <= at);
    if (before) {
      if (row.nextElementSibling !== before) list.insertBefore(row, before);
    } else if (row.parentElement !== list) {
      list.append(row);
    }
  }

  function updateFoot() {
    if (!list.children.length) {
      foot.textContent = filter === "unread" ? "Nothing unread — you're all caught up." : "No conversations yet.";
    } else {
      foot.textContent = cursor ? "Loading more…" : "";
      // The pane said there was nothing yet; now there is something to pick.
      const title = $("[data-empty-title]");
      if (title) title.textContent = "Pick a conversation";
      const text = $("[data-empty-text]");
      if (text) text.textContent = "Its messages will show here.";
    }
  }

  function upsert(conversation, { flash = false } = {}) {
    if (filter === "unread" && !rowOf(conversation.id) && !conversation.unread_count) return;
    let row = rowOf(conversation.id);
    if (row) {
      const lastId = Number(row.dataset.lastMessageId || 0);
      const message = conversation.last_message;
      if (!message || message.id >= lastId) setLast(row, message, conversation.last_message_at);
      // conversation.updated carries no count (it is per user): only the API's shape sets it.
      if (typeof conversation.unread_count === "number" && conversation.id !== currentId) {
        setUnread(row, conversation.unread_count);
      }
    } else {
      row = buildRow(conversation);
    }
    place(row);
    if (flash) {
      row.classList.remove("is-new");
      void row.offsetWidth;
      row.classList.add("is-new");
    }
    updateFoot();
  }

  async function fetchConversation(id) {
    try {
      upsert(await api("GET", `/api/v1/conversations/${id}`), { flash: true });
    } catch (error) {
      /* gone or hidden: nothing to show */
    }
  }

  function onMessage(message) {
    const row = rowOf(message.conversation_id);
    if (!row) {
      fetchConversation(message.conversation_id);
      return;
    }
    const lastId = Number(row.dataset.lastMessageId || 0);
    if (message.id < lastId) return; // an older message (or a replay): the row is newer already
    const isNew = message.id > lastId;
    setLast(row, message, message.created_at);
    if (isNew && message.direction === "inbound" && message.conversation_id !== currentId) {
      setUnread(row, Number(row.dataset.unread || 0) + 1);
    }
    place(row);
    if (isNew) {
      row.classList.remove("is-new");
      void row.offsetWidth;
      row.classList.add("is-new");
    }
  }

  async function refetch() {
    try {
      const page = await api("GET", `/api/v1/inboxes/${inboxId}/conversations?filter=${filter}`);
      for (const conversation of page.items.slice().reverse()) upsert(conversation);
    } catch (error) {
      /* next event or reconnect tries again */
    }
  }

  async function loadMore() {
    if (!cursor || loading) return;
    loading = true;
    try {
      const page = await api(
        "GET",
        `/api/v1/inboxes/${inboxId}/conversations?filter=${filter}&cursor=${encodeURIComponent(cursor)}`,
      );
      cursor = page.next_cursor;
      for (const conversation of page.items) {
        if (!rowOf(conversation.id)) list.append(buildRow(conversation));
      }
    } catch (error) {
      foot.textContent = "Could not load more conversations.";
      loading = false;
      return;
    }
    loading = false;
    updateFoot();
    // A tall screen may show the end of the list at once: keep going until it scrolls.
    if (cursor && scroller.scrollHeight <= scroller.clientHeight + 40) loadMore();
  }

  if ("IntersectionObserver" in window) {
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting)) loadMore();
      },
      { root: scroller, rootMargin: "200px" },
    );
    observer.observe(foot);
  }
  scroller.addEventListener("scroll", () => {
    if (scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 200) loadMore();
  });

  // Arrow keys move between conversations; Enter opens one (it is a link).
  list.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const links = $$(".conv__link", list);
    const index = links.indexOf(document.activeElement);
    if (index < 0) return;
    const next = links[index + (event.key === "ArrowDown" ? 1 : -1)];
    if (next) {
      event.preventDefault();
      next.focus();
    }
  });

  on((channel, type, data) => {
    if (channel === `user:${me}` && type === "conversation.read") {
      const row = rowOf(data.conversation_id);
      if (row && data.user_id === me) {
        setUnread(row, typeof data.unread_count === "number" ? data.unread_count : 0);
      }
      return;
    }
    if (channel !== `inbox:${inboxId}`) return;
    if (type === "message.created") onMessage(data);
    else if (type === "conversation.updated" && data.contact) upsert(data);
    else if (type === "contact.updated") {
      for (const row of $$(`[data-contact-id="${data.id}"]`, list)) setContact(row, data);
    }
    else if (type === "resync") refetch();
  });

  // Keep relative times ("Mon", "2:05 PM") right when the page stays open past midnight.
  setInterval(() => {
    for (const time of $$(".conv__time", list)) {
      const when = parseTime(time.dateTime);
      if (when) time.textContent = shortWhen(when);
    }
  }, 60000);

  updateFoot();
  if (cursor && scroller.scrollHeight <= scroller.clientHeight + 40) loadMore();
}
