// Admin pages: every form, button and select writes through the JSON API and then shows the
// page again as the server sees it. Forms say what to call in data attributes:
//   <form data-api="POST /api/v1/inboxes" data-then="/admin/inboxes/{id}">  (else: reload)
//   <button data-api-click="PATCH /api/v1/users/3" data-body='{"active":false}' data-confirm="…">
//   <button data-api-click="DELETE /api/v1/inboxes/3" data-then="/admin/inboxes">  (else: reload)
//   <select data-api-change="PATCH /api/v1/phone-numbers/4" data-field="inbox_id" data-confirm="…">

import { $$, api, formError, onSubmit } from "./dom.js";
import { campaignBody, recipientSource } from "./campaign.js";

function splitCall(spec) {
  const [method, ...rest] = spec.trim().split(/\s+/);
  return [method, rest.join(" ")];
}

/** A field's value as the API wants it (data-type: int, int-or-null; checkboxes are booleans). */
function valueOf(field) {
  if (field.type === "checkbox") return field.checked;
  const type = field.dataset.type;
  if (type === "int") return Number(field.value);
  if (type === "int-or-null") return field.value === "" ? null : Number(field.value);
  return field.value;
}

/** A form's fields as a body; a field marked data-omit-empty and left blank is not sent (a
 * password left blank keeps the old one), while any other blank field is sent blank. */
function collect(form) {
  const body = {};
  for (const field of form.elements) {
    if (!field.name || field.disabled || field.type === "submit") continue;
    if (field.type === "radio" && !field.checked) continue;
    if ("omitEmpty" in field.dataset && field.value === "") continue;
    body[field.name] = valueOf(field);
  }
  return body;
}

const MAX_ALERT_MINUTES = 10080; // a week, the API's limit

/** The email-alerts form speaks in minutes and a members/list choice. */
function notificationsBody(form) {
  const fields = collect(form);
  const minutes = Number(fields.delay_minutes);
  if (fields.delay_minutes === "" || !Number.isInteger(minutes) || minutes < 1 || minutes > MAX_ALERT_MINUTES) {
    throw new Error(`The minutes must be a whole number from 1 to ${MAX_ALERT_MINUTES} (a week).`);
  }
  const addresses = String(fields.addresses || "")
    .split(/[\s,;]+/)
    .map((a) => a.trim())
    .filter(Boolean);
  return {
    notifications: {
      enabled: Boolean(fields.enabled),
      delay_seconds: minutes * 60,
      to: fields.to_kind === "members" ? "members" : addresses,
    },
  };
}

function warningsText(answer) {
  const warnings = (answer && answer.warnings) || [];
  return warnings.map((w) => w.detail).join(" ");
}

/** What a form sends: its fields, or the body its kind (data-notifications, …) builds. */
async function bodyOf(form) {
  if ("notifications" in form.dataset) return notificationsBody(form);
  if ("campaign" in form.dataset) return campaignBody(form);
  if ("campaignRecipients" in form.dataset) return recipientSource(form);
  return collect(form);
}

/** Send a form as its data-api says; true when the page is leaving (it reloads or moves on). */
async function submitForm(form) {
  let [method, path] = splitCall(form.dataset.api);
  const button = form.querySelector('[type="submit"]');
  if (button) button.disabled = true;
  formError(form, "");
  const saved = form.querySelector("[data-form-ok]");
  if (saved) saved.hidden = true;
  try {
    let body = await bodyOf(form);
    // A field marked data-path-param fills {its name} in the path instead of the body.
    for (const field of $$("[data-path-param]", form)) {
      path = path.replace(`{${field.name}}`, encodeURIComponent(field.value));
      delete body[field.name];
    }
    if (method === "PUT" && !Object.keys(body).length) body = undefined;
    // Any routing warning shows on the page as the server renders it next.
    const answer = await api(method, path, body);
    const then = form.dataset.then;
    if (saved && !then) {
      // The form already shows what was saved: say so, and stay.
      saved.hidden = false;
      if (button) button.disabled = false;
      return false;
    }
    if (then) window.location.assign(then.replace("{id}", answer && answer.id));
    else window.location.reload();
    return true;
  } catch (error) {
    formError(form, error.message);
    if (button) button.disabled = false;
    return false;
  }
}

export function initAdmin() {
  for (const form of $$("form[data-api]")) {
    onSubmit(form, () => submitForm(form));
  }

  for (const button of $$("[data-api-click]")) {
    button.addEventListener("click", async () => {
      if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
      const [method, path] = splitCall(button.dataset.apiClick);
      button.disabled = true;
      try {
        await api(method, path, button.dataset.body ? JSON.parse(button.dataset.body) : undefined);
        if (button.dataset.then) window.location.assign(button.dataset.then);
        else window.location.reload();
      } catch (error) {
        button.disabled = false;
        window.alert(error.message);
      }
    });
  }

  for (const select of $$("select[data-api-change]")) initSavingSelect(select);
}

/**
 * A select that saves as soon as a choice is made: with the mouse, or with Enter. Arrow keys
 * on a closed select change its value (and fire "change") at each press, so a choice made by
 * keys waits for Enter, and leaving the select without it puts the saved value back: a
 * keyboard user looking through the inboxes does not re-route a number on the way.
 */
function initSavingSelect(select) {
  let saved = select.value;
  let byKeys = false;
  const status = select.parentElement.querySelector("[data-change-status]");
  const say = (text) => {
    if (status) status.textContent = text;
  };

  let saving = false;
  async function save() {
    const chosen = select.value;
    if (saving || chosen === saved) return;
    saving = true;
    try {
      if (select.dataset.confirm && !window.confirm(select.dataset.confirm)) {
        select.value = saved;
        say("");
        return;
      }
      select.value = chosen; // the question took the focus: a blur may have put it back
      const [method, path] = splitCall(select.dataset.apiChange);
      const field = select.dataset.field;
      const value = field.endsWith("_id") ? (chosen === "" ? null : Number(chosen)) : chosen;
      select.disabled = true;
      say("Saving…");
      const answer = await api(method, path, { [field]: value });
      saved = chosen;
      const warning = warningsText(answer);
      if (status) {
        status.replaceChildren();
        const pill = document.createElement("span");
        pill.className = warning ? "pill pill--warn" : "pill pill--ok";
        pill.textContent = warning ? "Saved — inbox mixes blast numbers" : "Saved";
        if (warning) pill.title = warning;
        status.append(pill);
      }
    } catch (error) {
      select.value = saved;
      say(error.message);
    } finally {
      saving = false;
      select.disabled = false;
      if (byKeys) select.focus(); // disabling it took the keyboard's place away
    }
  }

  select.addEventListener("pointerdown", () => {
    byKeys = false;
  });
  select.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      save();
    } else if (event.key !== "Tab") {
      byKeys = true;
    }
  });
  select.addEventListener("change", () => {
    if (byKeys) say(select.value === saved ? "" : "Press Enter to save");
    else save();
  });
  select.addEventListener("blur", () => {
    if (saving || select.value === saved) return;
    select.value = saved;
    say("Not saved");
  });
}
