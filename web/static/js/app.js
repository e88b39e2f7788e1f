// Entry point of every signed-in page: starts the live connection and the page's parts.

import { boot, $, api } from "./dom.js";
import { LiveClient } from "./live.js";
import { initShell, rememberTimeZone } from "./shell.js";
import { initList } from "./list.js";
import { initThread } from "./thread.js";
import { initContact, initNewText } from "./contact.js";
import { initAdmin } from "./admin.js";
import { initCampaign } from "./campaign.js";
import { initSimulator } from "./simulator.js";

rememberTimeZone();

/** Page parts register handlers here; every live event goes to all of them. */
const handlers = [];
const onEvent = (channel, type, data, frame) => {
  for (const handler of handlers) {
    try {
      handler(channel, type, data, frame);
    } catch (error) {
      console.error("live event handler failed", type, error);
    }
  }
};

const openHooks = [];
const banner = $("[data-conn-banner]");
let bannerTimer = null;

const live = new LiveClient({
  url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
  onEvent,
  onOpen: () => openHooks.forEach((hook) => hook()),
  // A socket refused again and again may mean the session ended (signed out elsewhere, while
  // this page was away): asking who I am sends a signed-out page to the sign-in form.
  onRetry: (attempt) => {
    if (attempt % 3 === 0) api("GET", "/api/v1/auth/me").catch(() => {});
  },
  onState: (state) => {
    document.body.dataset.live = state;
    clearTimeout(bannerTimer);
    if (state === "open") {
      banner.hidden = true;
    } else {
      // A blip shorter than this (a quick reconnect) needs no alarm.
      bannerTimer = setTimeout(() => {
        banner.hidden = false;
      }, 700);
    }
  },
});

const context = {
  live,
  on: (handler) => handlers.push(handler),
  onOpen: (hook) => openHooks.push(hook),
};

initShell(context);
const page = document.body.dataset.page;
if (page === "inbox" || page === "thread") initList(context);
if (page === "thread") initThread(context);
if (page === "contact") initContact(context);
if (page === "contacts") initNewText(context);
if (page && page.startsWith("admin")) initAdmin(context);
if (page === "admin-campaigns" || page === "admin-campaign") initCampaign(context);
if (page === "simulator") initSimulator(context);

for (const { channel, since } of boot.channels || []) live.subscribe(channel, since);
live.connect();
