// The contact record and texting a contact: the record's Edit (names and email) and send box
// (pick the inbox, see at once if the contact opted out of its messaging service), and the
// contacts page's form for a number nobody has texted yet; a text lands you in the thread.

import { boot, $, $$, api, formError, onSubmit } from "./dom.js";
import { bindCounter } from "./segments.js";

/** Ctrl/Cmd+Enter in the message sends, as in a thread. */
function sendOnCtrlEnter(form, textarea) {
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.metaKey || event.ctrlKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}

/** Text `contactId` from `inboxId`, then open the conversation it lands in. */
async function sendAndOpen(contactId, inboxId, body) {
  const message = await api("POST", `/api/v1/contacts/${contactId}/messages`, { inbox_id: inboxId, body });
  window.location.assign(`/conversations/${message.conversation_id}`);
}

/** The Details card's Edit: the names and email in a form, saved through the API. */
function initEdit() {
  const form = $("[data-contact-edit]");
  if (!form) return;
  const details = $("[data-contact-details]");
  const toggle = $('.card__head [data-action="edit-contact"]');
  const show = (editing) => {
    form.hidden = !editing;
    details.hidden = editing;
    toggle.hidden = editing;
    toggle.setAttribute("aria-expanded", String(editing));
    if (editing) form.elements.first_name.focus();
    else formError(form, "");
  };
  for (const button of $$('[data-action="edit-contact"]')) {
    button.addEventListener("click", () => show(form.hidden));
  }
  onSubmit(form, async () => {
    const { first_name: first, last_name: last, email } = form.elements;
    formError(form, "");
    try {
      await api("PATCH", `/api/v1/contacts/${form.dataset.contactId}`, {
        first_name: first.value,
        last_name: last.value,
        email: email.value,
      });
      window.location.reload();
      return true;
    } catch (error) {
      formError(form, error.message);
      return false;
    }
  });
}

/** The record's opt-out marks, after a STOP or START arrives (the send box follows). */
function showOptChange(change, names) {
  const state = $(`[data-service-id="${change.messaging_service_id}"] [data-opt-state]`);
  if (state) {
    state.className = `pill ${change.opted_out ? "pill--danger" : "pill--ok"}`;
    state.textContent = change.opted_out ? "Opted out · just now" : "Opted back in";
  }
  const pill = $("[data-opted-out-pill]");
  if (pill) pill.hidden = !$$("[data-opt-state].pill--danger").length;
  const name = $(`[data-service-id="${change.messaging_service_id}"] .cell-main`);
  if (name) {
    names.delete(name.textContent);
    if (change.opted_out) names.add(name.textContent);
  }
}

export function initContact({ on }) {
  initEdit();
  const optedOutOf = new Set(boot.contact.opted_out_of || []);
  const sendBox = initSendBox(optedOutOf);
  on((channel, type, data) => {
    if (type !== "contact.opted_out" && type !== "contact.opted_in") return;
    if (data.contact_id !== boot.contact.id) return;
    showOptChange(data, optedOutOf);
    if (sendBox) sendBox(data);
  });
}

/**
 * The record's send box: pick the inbox, see at once if the contact opted out of its
 * service. Returns what to do when an opt-out changes (null without a send box).
 */
function initSendBox(optedOutOf) {
  const form = $("[data-contact-send]");
  if (!form) return null;
  const options = new Map((boot.contact.options || []).map((o) => [String(o.inbox_id), o]));
  const select = $("[data-inbox-select]", form);
  const textarea = $("[data-composer-body]", form);
  const button = $("[data-send]", form);
  const blocked = $("[data-send-blocked]", form);
  const caution = $("[data-send-caution]", form);
  bindCounter(textarea, $("[data-counter]", form));

  const refresh = () => {
    const option = options.get(select.value);
    const out = option && option.opted_out;
    blocked.hidden = !out;
    if (out) {
      const service = option.service || "this messaging service";
      $("[data-send-blocked-text]", blocked).textContent =
        `Opted out of texts from ${service} (replied STOP): nobody can text them from ${option.inbox} until they text START.`;
    }
    // A STOP holds for its own messaging service only: sending from another is allowed, but
    // staff should know they asked to stop.
    const elsewhere = out || !option ? [] : [...optedOutOf].filter((name) => name !== option.service);
    caution.hidden = !elsewhere.length;
    if (elsewhere.length) {
      $("[data-send-caution-text]", caution).textContent =
        `They replied STOP to ${elsewhere.join(", ")}. This text goes from ${option.service}, which they have not opted out of: be sure they want it.`;
    }
    button.disabled = Boolean(out);
    textarea.disabled = Boolean(out);
  };
  select.addEventListener("change", refresh);
  refresh();

  sendOnCtrlEnter(form, textarea);

  onSubmit(form, async () => {
    if (!textarea.value.trim()) {
      formError(form, "Write something first.");
      return false;
    }
    button.disabled = true;
    formError(form, "");
    try {
      await sendAndOpen(form.dataset.contactId, Number(select.value), textarea.value);
      return true;
    } catch (error) {
      formError(form, error.message);
      button.disabled = false;
      return false;
    }
  });

  return (change) => {
    for (const option of options.values()) {
      if (option.service_id !== change.messaging_service_id) continue;
      option.opted_out = change.opted_out;
      const choice = $(`option[value="${option.inbox_id}"]`, select);
      choice.textContent = choice.dataset.label + (change.opted_out ? " (opted out)" : "");
    }
    refresh();
  };
}

/** The contact for a number: added now, or the one it already is when I may text it. */
async function contactFor(fields) {
  try {
    return (await api("POST", "/api/v1/contacts", fields)).id;
  } catch (error) {
    if (error.status === 409 && error.data && error.data.id) return error.data.id;
    if (error.status === 409) {
      throw new Error(`${fields.phone} already texts with an inbox you are not in: ask an admin.`);
    }
    throw error;
  }
}

export function initNewText() {
  const form = $("[data-new-text]");
  if (!form) return;
  const textarea = $("[data-composer-body]", form);
  const button = $('[type="submit"]', form);
  bindCounter(textarea, $("[data-counter]", form));
  sendOnCtrlEnter(form, textarea);

  onSubmit(form, async () => {
    const { phone, first_name: first, last_name: last, inbox_id: inbox } = form.elements;
    if (!phone.value.trim()) return formError(form, "Give the number to text.");
    if (!textarea.value.trim()) return formError(form, "Write something first.");
    button.disabled = true;
    formError(form, "");
    try {
      const fields = { phone: phone.value.trim(), first_name: first.value, last_name: last.value };
      await sendAndOpen(await contactFor(fields), Number(inbox.value), textarea.value);
      return true;
    } catch (error) {
      formError(form, error.message);
      button.disabled = false;
      return false;
    }
  });
}
