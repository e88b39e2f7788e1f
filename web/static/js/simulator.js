// The simulator's fake phone: texts go in as signed webhooks; what our side sends to this
// phone shows up live (an admin follows every inbox, so every message event reaches here).

import { $, $$, api, clock, formError, parseTime, prettyPhone } from "./dom.js";

export function initSimulator({ on }) {
  const phoneEl = $("[data-phone]");
  if (!phoneEl) return;
  const fromInput = $("[data-phone-from]");
  const numberInput = $("[data-phone-number]");
  const messages = $("[data-phone-messages]");
  const compose = $("[data-phone-compose]");
  const settings = fromInput.closest(".card__body");
  let phone = "";
  let number = "";
  const shown = new Set();

  function bubble(message) {
    if (shown.has(message.id)) return;
    shown.add(message.id);
    const mine = message.direction === "inbound"; // inbound to us = sent by this phone
    const el = document.createElement("div");
    el.className = `msg ${mine ? "msg--phone-out" : "msg--phone-in"}`;
    el.dataset.messageId = String(message.id);
    const body = document.createElement("div");
    body.className = "msg__bubble";
    body.textContent = message.body;
    const meta = document.createElement("div");
    meta.className = "msg__meta";
    const time = document.createElement("time");
    time.textContent = clock(parseTime(message.created_at));
    meta.append(time);
    el.append(body, meta);
    messages.append(el);
    messages.scrollTop = messages.scrollHeight;
  }

  let loads = 0;
  async function load() {
    const from = fromInput.value.trim();
    const to = numberInput.value.trim();
    if (!from || !to) return;
    const mine = ++loads;
    try {
      const answer = await api(
        "GET",
        `/simulator/thread?phone=${encodeURIComponent(from)}&number=${encodeURIComponent(to)}`,
      );
      if (mine !== loads) return; // a newer choice of phone or number is on its way
      formError(settings, "");
      phone = answer.phone;
      number = answer.number;
      messages.replaceChildren();
      shown.clear();
      answer.items.forEach(bubble);
      $("[data-phone-title]").textContent = prettyPhone(number);
      const pick = $(`[data-pick-number="${number}"]`);
      $("[data-phone-sub]").textContent = pick ? pick.dataset.inbox : "Not one of our numbers: Unrouted";
    } catch (error) {
      formError(settings, error.message);
    }
  }

  fromInput.addEventListener("change", load);
  numberInput.addEventListener("change", load);
  $$("[data-pick-number]").forEach((button) =>
    button.addEventListener("click", () => {
      numberInput.value = button.dataset.pickNumber;
      load();
    }),
  );

  compose.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = compose.elements.body;
    const body = input.value;
    if (!body.trim()) return;
    const button = compose.querySelector("button");
    button.disabled = true;
    try {
      // Always what the fields say now, whatever the last thread loaded was.
      const sent = await api("POST", "/simulator/messages", {
        phone: fromInput.value.trim(),
        number: numberInput.value.trim(),
        body,
      });
      phone = sent.phone;
      number = sent.number;
      input.value = "";
      await load();
    } catch (error) {
      formError(settings, error.message);
    } finally {
      button.disabled = false;
      input.focus();
    }
  });

  on((channel, type, data) => {
    if (type !== "message.created" || !phone) return;
    const between =
      (data.from === phone && data.to === number) || (data.from === number && data.to === phone);
    if (between) bubble(data);
  });

  load();
}
