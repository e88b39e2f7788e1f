// Campaign pages: the new-campaign form's body, and one campaign's progress, live.

import { boot, $, $$ } from "./dom.js";
import { bindCounter } from "./segments.js";

/** The JSON a campaign form sends: name, service, body, rate and one recipient source. */
export function campaignBody(form) {
  const body = {
    name: form.elements.name.value,
    messaging_service_id: Number(form.elements.messaging_service_id.value),
    body: form.elements.body.value,
    rate_per_second: Number(form.elements.rate_per_second.value) || 10,
  };
  const audience = form.querySelector('input[name="audience"]:checked').value;
  if (audience === "inboxes") {
    const ids = $$('input[name="inbox_ids"]:checked', form).map((box) => Number(box.value));
    body.filter = { inbox_ids: ids };
  } else if (audience === "phones") {
    body.recipients = form.elements.phones.value
      .split(/\n+/)
      .map((line) => line.trim())
      .filter(Boolean)
      .map((phone) => ({ phone }));
  } else {
    body.filter = { all: true };
  }
  return body;
}

const SEGMENTS = ["delivered", "in_flight", "failed", "unknown", "skipped_opted_out", "canceled", "pending"];
const LABELS = { draft: "Draft", scheduled: "Scheduled", sending: "Sending", paused: "Paused", done: "Done", canceled: "Canceled" };
const PILLS = { sending: "pill--accent", done: "pill--ok", paused: "pill--warn", canceled: "pill--danger", scheduled: "pill--accent" };

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
    el.textContent = key === "summary" ? `${counts.sent} of ${total} sent` : String(counts[key] ?? 0);
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

export function initCampaign({ on }) {
  const textarea = $("form[data-campaign] [data-composer-body]");
  if (textarea) bindCounter(textarea, $("form[data-campaign] [data-counter]"));
  if (!boot.campaign) return;
  const pill = $("[data-campaign-status]");
  if (pill) showActions(pill.dataset.campaignStatus);
  on((channel, type, data) => {
    if (channel === boot.campaign.channel && type === "campaign.progress") applyProgress(data);
  });
}
