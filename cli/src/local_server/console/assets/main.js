// The console's entry point: takes the API key from the URL fragment (`#key=…`, which no
// request ever carries) into sessionStorage and off the address bar, or asks for it; then
// draws the apps, wxpush's side and (with --sandbox) the phones, and keeps them up to date
// by polling while the page is visible.

import { Api } from "./api.js";
import { el, problem, replace } from "./dom.js";
import { Phones } from "./phones.js";
import { drawSendForm } from "./send.js";
import { drawTools } from "./tools.js";
import { PagedList } from "./lists.js";
import { batchRow, eventRow, messageRow } from "./rows.js";
import { AppPanel } from "./wxpush.js";

const KEY = "wxpush.console.key";
const POLL_MS = 1500;

const $ = (id) => document.getElementById(id);

/** The key from `#key=…` (kept in sessionStorage, the fragment removed), else the kept one. */
function takeKey() {
  const found = /(?:^#|&)key=([^&]+)/.exec(location.hash);
  if (found) {
    sessionStorage.setItem(KEY, decodeURIComponent(found[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY);
}

/** Asks for the key; `why` says what went wrong with the last one. */
function askForKey(why) {
  $("main").hidden = true;
  const form = $("key-form");
  form.hidden = false;
  $("key-problem").textContent = why ?? "";
  form.onsubmit = (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY, key);
    $("key-input").value = "";
    form.hidden = true;
    start(key).catch((err) => say(`wxpush did not answer: ${err.message}; reload to try again`));
  };
}

function say(text) {
  $("status").textContent = text;
}

async function start(key) {
  const api = new Api(key);
  let refused = false;
  api.onUnauthorized = () => {
    if (refused) return;
    refused = true;
    sessionStorage.removeItem(KEY);
    askForKey("wxpush refused this key (401): paste the key `wxpush serve` printed, or the value of WXPUSH_API_KEY.");
  };
  const first = await api.get("/console/state");
  if (!first.ok) {
    if (first.status !== 401) say(`console state: ${problem(first)}`);
    return;
  }
  const view = new View(api, first.data);
  $("main").hidden = false;
  const tick = async () => {
    if (refused) return;
    if (!document.hidden) {
      try {
        await view.refresh();
        say(`updated ${new Date().toLocaleTimeString("zh-CN", { hour12: false })}`);
      } catch (err) {
        say(`wxpush did not answer: ${err.message}`);
      }
    }
    setTimeout(tick, POLL_MS);
  };
  await tick();
}

/** Everything drawn for the chosen app. */
class View {
  constructor(api, state) {
    this.api = api;
    this.state = state;
    this.appid = state.apps[0]?.appid ?? null;
    this.panel = new AppPanel($("app-state"), api);
    this.lists = [
      new PagedList($("messages-box"), api, say, {
        what: "messages",
        columns: ["time", "id", "type", "to", "status", "WeChat", "batch"],
        row: messageRow,
        empty: "No messages yet.",
      }),
      new PagedList($("batches-box"), api, say, {
        what: "batches",
        columns: ["created", "id", "state", "progress", "counts"],
        row: batchRow,
        empty: "No batches yet.",
      }),
      new PagedList($("events-box"), api, say, {
        what: "events",
        columns: ["received", "event", "from", "forwarding"],
        row: eventRow,
        empty: "Nothing pushed yet.",
      }),
    ];
    this.phones = state.sandbox ? new Phones($("phones-box"), api, say) : null;
    $("sandbox").hidden = !state.sandbox;
    const refresh = () => this.refresh();
    this.updateTools = this.phones
      ? drawTools($("sandbox-tools"), api, () => this.app(), () => this.choices().templates, say, refresh)
      : () => {};
    this.updateSendForm = drawSendForm($("send-form"), api, () => this.app(), () => this.choices(), refresh);
    this.drawTabs();
  }

  app() {
    return this.state.apps.find((a) => a.appid === this.appid);
  }

  /** The phones' openids and the app's templates, to suggest in the send form. */
  choices() {
    const page = this.phones?.lastPage;
    return {
      openids: page?.phones.map((p) => p.openid) ?? [],
      templates: page?.apps[0]?.templates ?? [],
    };
  }

  drawTabs() {
    const tabs = this.state.apps.map((a) => {
      const label = `${a.kind === "official_account" ? "公众号" : "小程序"} ${a.appid}`;
      const tab = el("button", { type: "button", class: "tab", "aria-pressed": String(a.appid === this.appid), text: label });
      tab.addEventListener("click", async () => {
        this.appid = a.appid;
        this.drawTabs();
        await this.refresh();
      });
      return tab;
    });
    replace($("apps"), tabs);
  }

  async refresh() {
    const state = await this.api.get("/console/state");
    if (!state.ok) return;
    this.state = state.data;
    const app = this.app();
    if (!app) return;
    this.panel.show(app);
    for (const list of this.lists) list.show(app.appid);
    this.phones?.show(app.appid);
    await Promise.all([...this.lists.map((l) => l.refresh()), this.phones?.refresh()]);
    this.updateSendForm();
    this.updateTools();
  }
}

const key = takeKey();
if (key) start(key).catch((err) => say(`wxpush did not answer: ${err.message}; reload to try again`));
else askForKey();
