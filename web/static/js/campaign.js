// Campaign pages: the new-campaign form's body, and one campaign's progress, live.

import { boot, $, $$ } from "./dom.js";
import { bindCounter } from "./segments.js";

/** A CSV file's text: UTF-8 when it is, else Windows-1252 (as spreadsheets export it). */
async function csvText(file) {
  const bytes = await file.arrayBuffer();
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    return new TextDecoder("windows-1252").decode(bytes);
  }
}

/**
 * One typed line: a phone number, or a name and a phone number in either order, split by a
 * comma or a tab ("Maria Lopez, 617 555 0123"). The part with the most digits is the phone;
 * a name's first word is the first name, the rest the last name.
 */
function typedRecipient(line) {
  const parts = line.split(/[,\t]/).map((part) => part.trim()).filter(Boolean);
  if (parts.length < 2) return { phone: line };
  const digits = (part) => part.replace(/\D/g, "").length;
  const phone = parts.reduce((best, part) => (digits(part) > digits(best) ? part : best));
  const [first, ...rest] = parts.filter((part) => part !== phone).join(" ").split(/\s+/);
  return { phone, first_name: first, ...(rest.length ? { last_name: rest.join(" ") } : {}) };
}

/** The recipients a form's audience choice names, as the API takes them: filter, recipients or csv. */
export async function recipientSource(form) {
  const audience = form.querySelector('input[name="audience"]:checked').value;
  if (audience === "inboxes") {
    const ids = $$('input[name="inbox_ids"]:checked', form).map((box) => Number(box.value));
    return { filter: { inbox_ids: ids } };
  }
  if (audience === "phones") {
    const lines = form.elements.phones.value.split(/\n+/).map((line) => line.trim());
    return { recipients: lines.filter(Boolean).map(typedRecipient) };
  }
  if (audience === "csv") {
    const file = form.elements.csv_file.files[0];
    if (!file) throw new Error("Choose a CSV file first.");
    return { csv: await csvText(file) };
  }
  return { filter: { all: true } };
}

/** The JSON a new-campaign form sends: name, service, body, rate and its recipients. */
export async function campaignBody(form) {
  return {
    name: form.elements.name.value,
    messaging_service_id: Number(form.elements.messaging_service_id.value),
    body: form.elements.body.value,
    // Left empty: the API's default; anything typed goes as typed, for the API to judge.
    ...(form.elements.rate_per_second.value.trim()
      ? { rate_per_second: Number(form.elements.rate_per_second.value) }
      : {}),
    // datetime-local is the browser's local time; the API wants a moment with its zone.
    start_at: form.elements.start_at.value ? new Date(form.elements.start_at.value).toISOString() : undefined,
    ...(await recipientSource(form)),
  };
}

const SEGMENTS = ["delivered", "in_flight", "failed", "unknown", "skipped_opted_out", "canceled", "pending"];
const LABELS = { draft: "Draft", scheduled: "Scheduled", sending: "Sending", paused: "Paused", done: "Done", canceled: "Canceled" };
const PILLS = { sending: "pill--accent", done: "pill--ok", paused: "pill--warn", canceled: "pill--danger", scheduled: "pill--accent" };

/** "3 of 4 sent", and who was skipped, so a finished campaign does not look one short. */
function sentSummary(counts, total) {
  const skipped = counts.skipped_opted_out || 0;
  return `${counts.sent} of ${total} sent` + (skipped ? ` · ${skipped} skipped (opted out)` : "");
}

const percent = (value) => (value == null ? "—" : `${Math.round(value * 100)}%`);

function showActions(status) {
  for (const button of $$("[data-when]")) {
    button.hidden = !button.dataset.when.split(" ").includes(status);
  }
}

function applyProgress(view) {
  const counts = view.counts || {};
  const total = counts.total || 0;
  const values = {
    delivered: counts.delivered || 0,
    in_flight: Math.max(0, (counts.sent || 0) - (counts.delivered || 0)),
    failed: counts.failed || 0,
    unknown: counts.unknown || 0,
    skipped_opted_out: counts.skipped_opted_out || 0,
    canceled: counts.canceled || 0,
    pending: (counts.queued || 0) + (counts.sending || 0),
  };
  let x = 0;
  for (const key of SEGMENTS) {
    const rect = $(`[data-bar] [data-seg="${key}"]`);
    const width = total ? (100 * values[key]) / total : 0;
    if (rect) {
      rect.setAttribute("x", x.toFixed(3));
      rect.setAttribute("width", width.toFixed(3));
    }
    x += width;
  }
  const svg = $("[data-bar] svg");
  if (svg) svg.setAttribute("aria-label", `${counts.sent} of ${total} sent, ${counts.delivered} delivered, ${counts.failed} failed`);
  for (const el of $$("[data-count]")) {
    const key = el.dataset.count;
    el.textContent = key === "summary" ? sentSummary(counts, total) : String(counts[key] ?? 0);
  }
  // The recipient filters: each count's size; one with nobody in it is hidden (not Everyone,
  // nor the one being shown).
  const sizes = { ...counts, sent: (counts.sent || 0) - (counts.delivered || 0) };
  for (const link of $$("[data-filter]")) {
    const size = sizes[link.dataset.filter] || 0;
    $("[data-filter-count]", link).textContent = String(size);
    const kept = link.dataset.filter === "total" || link.hasAttribute("aria-current");
    if (!kept) link.hidden = size === 0;
  }
  const figures = view.figures || {};
  for (const el of $$("[data-figure]")) el.textContent = percent(figures[el.dataset.figure]);
  const pill = $("[data-campaign-status]");
  if (pill && view.status) {
    pill.dataset.campaignStatus = view.status;
    pill.textContent = LABELS[view.status] || view.status;
    pill.className = `pill ${PILLS[view.status] || ""}`.trim();
    showActions(view.status);
  }
}

/** Using a choice's own field (an inbox, the phone list, a file) picks that choice. */
function pickAudienceOnUse(form) {
  const choices = { inbox_ids: "inboxes", phones: "phones", csv_file: "csv" };
  form.addEventListener("input", (event) => {
    const choice = choices[event.target.name];
    const radio = choice && form.querySelector(`input[name="audience"][value="${choice}"]`);
    if (radio) radio.checked = true;
  });
}

// The recipients card, and the campaigns list, follow the sending: after progress, they are
// taken again from the page as the server renders it now, at most once per REFRESH_MS.
const REFRESH_MS = 2000;
let refreshing = null;

function refreshSoon(selector) {
  if (refreshing) return;
  refreshing = setTimeout(async () => {
    try {
      const response = await fetch(window.location.href, { headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      const now = $(selector);
      const next = fresh.querySelector(selector);
      if (now && next) now.replaceWith(document.importNode(next, true));
    } catch (error) {
      /* offline for a moment: the next progress tries again */
    } finally {
      refreshing = null;
    }
  }, REFRESH_MS);
}

export function initCampaign({ on }) {
  const textarea = $("form[data-campaign] [data-composer-body]");
  if (textarea) bindCounter(textarea, $("form[data-campaign] [data-counter]"));
  for (const form of $$("form[data-campaign], form[data-campaign-recipients]")) pickAudienceOnUse(form);
  if ($("[data-campaign-list]")) {
    on((channel, type) => {
      if (channel.startsWith("campaign:") && type === "campaign.progress") refreshSoon("[data-campaign-list]");
    });
  }
  if (!boot.campaign) return;
  const pill = $("[data-campaign-status]");
  if (pill) showActions(pill.dataset.campaignStatus);
  on((channel, type, data) => {
    if (channel === boot.campaign.channel && type === "campaign.progress") {
      applyProgress(data);
      refreshSoon('[aria-labelledby="recipients-title"] .card__body');
    }
  });
}
