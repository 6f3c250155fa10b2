// wxpush's side of the console for one app: its token state (never the token), follower
// sync and quota (from /console/state and /v1), and its messages newest first
// (GET /v1/apps/{appid}/messages), a page at a time, updated as their status moves.

import { query } from "./api.js";
import { button, duration, el, problem, replace, stamp } from "./dom.js";

const PAGE = 20;

/** The status chip's look for each message status. */
const STATUS_CLASS = {
  sent: "chip",
  delivered: "chip ok",
  failed: "chip bad",
  user_blocked: "chip bad",
  blocked: "chip bad",
  unknown: "chip warn",
};

/** The app's header: kind, token, follower sync, and a quota button. */
export function drawApp(root, api, app) {
  const t = app.token;
  let token;
  if (t.state === "valid") token = `token valid for ${duration(t.expires_in)}`;
  else if (t.state === "expired") token = "token expired";
  else if (t.state === "none") token = "no token yet (fetched on the first call)";
  else token = `token: ${t.message ?? t.state}`;
  if (t.refreshing) token += " · refreshing";
  const lines = [el("span", { class: "app-token", text: token })];
  if (t.last_failure) {
    const f = t.last_failure;
    lines.push(el("span", { class: "chip bad", text: `last refresh failed: ${f.errcode ?? ""} ${f.message}` }));
  }
  const sync = app.follower_sync;
  if (sync && sync.phase) {
    const of = sync.total ? ` of ${sync.total}` : "";
    const text = `follower sync ${sync.state} (${sync.phase}): ${sync.followers} followers${of}`;
    lines.push(el("span", { class: sync.last_error ? "chip bad" : "chip", text }));
  }
  const quotaOut = el("output", { class: "quota" });
  const path = app.kind === "official_account" ? "/cgi-bin/message/template/send" : "/cgi-bin/message/subscribe/send";
  const quota = button("Quota", async () => {
    const answer = await api.get(`/v1/apps/${app.appid}/quota${query({ path })}`);
    quotaOut.textContent = answer.ok
      ? `${path}: ${answer.data.used} used of ${answer.data.daily_limit} today`
      : problem(answer);
  });
  const kind = app.kind === "official_account" ? "公众号 official account" : "小程序 mini program";
  const linked = app.linked_official_account ? ` · linked to ${app.linked_official_account}` : "";
  replace(
    root,
    el("div", { class: "app-title" }, el("strong", { text: app.appid }), ` ${kind}${linked}`),
    el("div", { class: "app-lines" }, lines, quota, quotaOut),
  );
}

/** The messages list of the chosen app, paged. */
export class Messages {
  constructor(root, api, say) {
    this.api = api;
    this.say = say;
    this.appid = null;
    this.cursor = null;
    this.before = [];
    this.json = "";
    this.body = el("tbody");
    this.table = el(
      "table",
      { class: "list", id: "messages" },
      el(
        "thead",
        {},
        el("tr", {}, ["time", "id", "type", "to", "status", "WeChat", "batch"].map((h) => el("th", { text: h }))),
      ),
      this.body,
    );
    this.pager = el("nav", { class: "pager" });
    replace(root, this.table, this.pager);
  }

  show(appid) {
    if (appid === this.appid) return;
    this.appid = appid;
    this.cursor = null;
    this.before = [];
    this.json = "";
  }

  async refresh() {
    const answer = await this.api.get(
      `/v1/apps/${this.appid}/messages${query({ limit: PAGE, cursor: this.cursor })}`,
    );
    if (!answer.ok) {
      this.say(`messages: ${problem(answer)}`);
      return;
    }
    const json = JSON.stringify(answer.data);
    if (json === this.json) return;
    this.json = json;
    const rows = answer.data.messages.map(row);
    if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: 7, class: "hint", text: "No messages yet." })));
    this.body.replaceChildren(...rows);
    replace(
      this.pager,
      this.before.length > 0 &&
        button("Newer", async () => {
          this.cursor = this.before.pop();
          await this.refresh();
        }),
      answer.data.next_cursor &&
        button("Older", async () => {
          this.before.push(this.cursor);
          this.cursor = answer.data.next_cursor;
          await this.refresh();
        }),
    );
  }
}

/** One message: when, id, type, recipient, status, what WeChat said, batch. */
function row(m) {
  const wechat = [];
  if (m.wechat_errcode !== undefined) wechat.push(`errcode ${m.wechat_errcode}`);
  if (m.delivery?.status) wechat.push(m.delivery.status);
  else if (m.wechat_msgid) wechat.push(`msgid ${m.wechat_msgid}`);
  if (m.error) wechat.push(m.error);
  return el(
    "tr",
    { dataset: { id: m.id } },
    el("td", { text: stamp(m.created_at) }),
    el("td", { class: "mono", text: short(m.id), title: m.id }),
    el("td", { text: m.type ?? "" }),
    el("td", { class: "mono", text: m.to?.openid ?? m.to?.unionid ?? "" }),
    el("td", {}, el("span", { class: STATUS_CLASS[m.status] ?? "chip", text: m.status })),
    el("td", { class: "wechat", text: wechat.join(" · ") }),
    el("td", { class: "mono", text: m.batch_id ? short(m.batch_id) : "" }),
  );
}

/** An id as `msg_…1a2b3c4d`: its kind and its last (random) digits. */
function short(id) {
  return `${id.slice(0, 4)}…${id.slice(-8)}`;
}
