// The simulator's fake phone: texts go in as signed webhooks; what our side sends to this
// phone shows up live (an admin follows every inbox, so every message event reaches here).

import { $, $$, api, clock, formError, onSubmit, parseTime, prettyPhone } from "./dom.js";

// Twilio answers STOP and START itself, before anything reaches us, and tells us nothing of
// its answer; the fake phone shows what a real phone would get (Twilio's default wording).
const TWILIO_REPLIES = {
  opted_out:
    "You have successfully been unsubscribed. You will not receive any more messages from this number. Reply START to resubscribe.",
  opted_in:
    "You have successfully been re-subscribed to messages from this number. Reply HELP for help. Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
};

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

  function append(mine, text, when, note) {
    const el = document.createElement("div");
    el.className = `msg ${mine ? "msg--phone-out" : "msg--phone-in"}`;
    const body = document.createElement("div");
    body.className = "msg__bubble";
    body.textContent = text;
    const meta = document.createElement("div");
    meta.className = "msg__meta";
    const time = document.createElement("time");
    time.textContent = clock(parseTime(when));
    meta.append(time);
    if (note) {
      const from = document.createElement("span");
      from.textContent = note;
      meta.append(from);
    }
    el.append(body, meta);
    messages.append(el);
    messages.scrollTop = messages.scrollHeight;
    return el;
  }

  function bubble(message) {
    if (shown.has(message.id)) return;
    shown.add(message.id);
    const mine = message.direction === "inbound"; // inbound to us = sent by this phone
    append(mine, message.body, message.created_at).dataset.messageId = String(message.id);
    const reply = mine && TWILIO_REPLIES[message.opt_change];
    if (reply) {
      append(false, reply, message.created_at, "Automatic reply from Twilio").dataset.twilioReply =
        message.opt_change;
    }
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

  onSubmit(compose, async () => {
    const input = compose.elements.body;
    const body = input.value;
    if (!body.trim()) return;
    const button = compose.querySelector("button");
    button.disabled = true;
    input.value = ""; // at once: the answer must not wipe the next text being typed
    try {
      // Always what the fields say now, whatever the last thread loaded was.
      const sent = await api("POST", "/simulator/messages", {
        phone: fromInput.value.trim(),
        number: numberInput.value.trim(),
        body,
      });
      phone = sent.phone;
      number = sent.number;
      load(); // not awaited: the phone takes its next text while the thread reloads
    } catch (error) {
      if (!input.value) input.value = body;
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
