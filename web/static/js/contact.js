// The contact record's send box: pick the inbox to text from, see at once if the contact
// opted out of that inbox's messaging service, send, and land in the thread.

import { boot, $, api, formError } from "./dom.js";
import { bindCounter } from "./segments.js";

export function initContact() {
  const form = $("[data-contact-send]");
  if (!form) return;
  const options = new Map((boot.contact.options || []).map((o) => [String(o.inbox_id), o]));
  const select = $("[data-inbox-select]", form);
  const textarea = $("[data-composer-body]", form);
  const button = $("[data-send]", form);
  const blocked = $("[data-send-blocked]", form);
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
    button.disabled = Boolean(out);
    textarea.disabled = Boolean(out);
  };
  select.addEventListener("change", refresh);
  refresh();

  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.metaKey || event.ctrlKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!textarea.value.trim()) {
      formError(form, "Write something first.");
      return;
    }
    button.disabled = true;
    formError(form, "");
    try {
      const message = await api("POST", `/api/v1/contacts/${form.dataset.contactId}/messages`, {
        inbox_id: Number(select.value),
        body: textarea.value,
      });
      window.location.assign(`/conversations/${message.conversation_id}`);
    } catch (error) {
      formError(form, error.message);
      button.disabled = false;
    }
  });
}
